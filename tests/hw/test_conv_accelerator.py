"""The convolutional accelerator (window units, pixel collectors, pools, 8-bit first layers) in
Amaranth's simulator against the golden model, on random networks, foldings and stimuli."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bnncore.golden import infer
from bnncore.hw.plan import LayerFold, Window, plan_for
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer

from .amaranth_bench import run


def _thresholds(rng, n, top, extremes=0.15):
    t = rng.integers(0, top + 2, n)
    t[rng.random(n) < extremes] = 0
    t[rng.random(n) < extremes] = top + 1
    return t


@st.composite
def conv_nets(draw):
    """Random small CNNs: odd sizes, kernels 1/3/5, padding 0/1 of either value, channels not
    multiples of 8, pools of OR and AND channels in any order, 8-bit first layers, dense
    layers after the maps, and random foldings (SIMD dividing the window's channels, any PE)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    uint8 = draw(st.booleans())
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 8)), draw(st.integers(3, 8))
    layers, shape = [], (c, h, w)
    for i in range(draw(st.integers(1, 2))):
        k = draw(st.sampled_from([1, 3, 5]))
        pad = draw(st.integers(0, min(1, k - 1)))
        if shape[1] + 2 * pad < k or shape[2] + 2 * pad < k:
            k, pad = 1, 0
        bits = 8 if uint8 and i == 0 else 1
        o = draw(st.integers(1, 5))
        n = k * k * shape[0]
        layers.append(ConvLayer(rng.integers(0, 2, (o, k, k, shape[0])), _thresholds(rng, o, n * (2**bits - 1)), shape,
                                pad, int(rng.integers(0, 256)) if bits == 8 else int(rng.integers(0, 2)), in_bits=bits))
        shape = layers[-1].out_shape
        while shape[1] >= 2 and shape[2] >= 2 and draw(st.booleans()):
            size = draw(st.integers(2, min(3, shape[1], shape[2])))
            layers.append(PoolLayer(shape, rng.integers(0, 2, shape[0]), size))
            shape = layers[-1].out_shape
    n = int(np.prod(shape))
    if draw(st.booleans()):
        o = draw(st.integers(1, 6))
        layers.append(DenseLayer(rng.integers(0, 2, (o, n)), _thresholds(rng, o, n)))
        n = o
    classes = draw(st.integers(2, 6))
    net = FoldedNetwork(tuple(layers), OutputHead(rng.integers(0, 2, (classes, n)), rng.integers(-3, 4, classes)),
                        InputScheme("uint8") if uint8 else InputScheme())
    folds = []
    for f in plan_shapes(net):
        divisors = [s for s in range(1, f.n_in + 1) if f.window is None or f.window.channels % s == 0]
        folds.append((draw(st.integers(1, f.n_out)), draw(st.sampled_from(divisors))))
    return net, folds, int(rng.integers(0, 2**31)), draw(st.sampled_from([2, 3])), draw(st.booleans())


def plan_shapes(net):
    from bnncore.hw.plan import layer_shapes
    return layer_shapes(net)


def images(net, n, rng):
    top = 256 if net.input.scheme == "uint8" else 2
    return rng.integers(0, top, (n, net.n_inputs)).astype(np.uint8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conv_nets(), st.sampled_from([(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.3, 0.6)]))
def test_conv_accelerator_equals_golden(case, gaps):
    net, folds, seed, banks, pipelined = case
    plan = plan_for(net, folds, banks=banks, pipelined=pipelined)
    rng = np.random.default_rng(seed)
    x = images(net, 3, rng)
    gold = infer(net, x, return_layers=True)
    r = run(plan, net, x, gap=gaps[0], stall=gaps[1], seed=seed, max_cycles=400000)
    assert r["classes"].tolist() == gold.classes.tolist()
    assert r["scores"].tolist() == gold.scores.tolist()
