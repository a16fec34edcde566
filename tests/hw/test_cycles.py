"""The cycle model of the accelerator's control (hw/cycles.py) against the closed form of an
MLP's timing and against the RTL of CNNs in Amaranth's simulator, to the cycle."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bnncore.hw.cycles import simulate
from bnncore.hw.plan import make_plan, plan_for
from bnncore.hw.timing import timing

from .amaranth_bench import run
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer
from bnncore.topology import Conv, Pool, parse

from .test_conv_accelerator import _thresholds, conv_nets, images


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=2, max_size=5), st.data())
def test_model_equals_closed_form_of_mlps(sizes, data):
    """On an MLP the model's units (input stage, engines, output FIFO) give the closed form's
    interval and latency: every bank loop and the output loop."""
    folds = [(data.draw(st.integers(1, o)), data.draw(st.integers(1, i))) for i, o in zip(sizes, sizes[1:])]
    plan = make_plan(sizes, folds, banks=data.draw(st.sampled_from([2, 3, 4])),
                     out_depth=data.draw(st.integers(1, 3)), pipelined=data.draw(st.booleans()))
    model, closed = simulate(plan), timing(plan)
    assert model.latency == closed.latency
    if model.period is not None:       # else a layer a little faster than the slowest loop
        assert model.ii == closed.ii   # fills its buffers over hundreds of images


def _measured(plan, net, n, seed):
    """Latency and result cycles of ``n`` images back to back in Amaranth's simulator."""
    x = images(net, n, np.random.default_rng(seed))
    r = run(plan, net, x, max_cycles=2_000_000)
    assert len(r["t_out"]) == n
    return int(r["t_out"][0] - r["t_in"][0]), [int(t) for t in r["t_out"]]


def _check_interval(t, t_out):
    """The mean interval over whole periods of the steady state equals the model's."""
    assert t.exact and t.period is not None
    n = len(t_out)
    span = (n - 1 - t.steady_from) // t.period * t.period
    assert span >= 1, f"{n} results hold no whole period of {t.period} from result {t.steady_from}"
    assert Fraction(t_out[-1] - t_out[-1 - span], span) == t.ii


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conv_nets())
def test_conv_latency_and_interval_equal_rtl(case):
    """Random CNNs (window units, collectors, pools, 8-bit first layers, random foldings and
    banks): the first image's latency and the steady state's interval, to the cycle."""
    net, folds, seed, banks, pipelined = case
    plan = plan_for(net, folds, banks=banks, pipelined=pipelined)
    t = timing(plan)
    latency, t_out = _measured(plan, net, 2 * t.period + t.steady_from + 2 if t.period else 3, seed)
    assert latency == t.latency
    if t.period is not None:
        _check_interval(t, t_out)


@pytest.mark.parametrize("spec, folds, ii", [
    # the first layer the slowest (the window writer waits on free rows)
    ("1x9x9-4c3p1-mp2-6c3-10", [(1, 1), (6, 4), (10, 6)], 2916),
    # a fast first layer ahead of a slow second one: it fills the line buffer, then waits
    ("2x8x7-3c3-5c3p1-mp2-4", [(3, 2), (1, 1), (4, 5)], 4050),
    # a 1x1 kernel of one word per window, 8-bit input: no layer's cycles (36, 4, 3) but the
    # loop of the window unit and its engine (window, issue, buffer complete, bank free) sets
    # the interval, at 2 cycles per window
    ("3x6x6-4c1-mp3-5-3", [(4, 3), (5, 4), (1, 5)], 72),
])
def test_conv_timing_of_uneven_layers(spec, folds, ii):
    net = _random_net(spec, np.random.default_rng(len(spec)), in_bits=8 if spec.startswith("3x") else 1)
    plan = plan_for(net, folds)
    t = timing(plan)
    assert t.ii == ii
    latency, t_out = _measured(plan, net, t.steady_from + 3 * t.period + 2, 0)
    assert latency == t.latency
    _check_interval(t, t_out)


def _random_net(spec, rng, in_bits=1):
    t = parse(spec)
    layers = []
    for l in t.layers:
        bits, top = (in_bits, 2**in_bits - 1) if not layers else (1, 1)
        if isinstance(l, Conv):
            layers.append(ConvLayer(rng.integers(0, 2, (l.channels, l.kernel, l.kernel, l.in_shape[0])),
                                    _thresholds(rng, l.channels, top * l.fan_in), l.in_shape, l.padding,
                                    int(rng.integers(0, top + 1)), in_bits=bits))
        elif isinstance(l, Pool):
            layers.append(PoolLayer(l.in_shape, rng.integers(0, 2, l.in_shape[0]), l.size))
        else:
            layers.append(DenseLayer(rng.integers(0, 2, (l.n_out, l.n_in)), _thresholds(rng, l.n_out, l.n_in)))
    head = OutputHead(rng.integers(0, 2, (t.head.n_out, t.head.n_in)), rng.integers(-3, 4, t.head.n_out))
    return FoldedNetwork(tuple(layers), head, InputScheme("uint8" if in_bits == 8 else "threshold"))
