from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bnncore.golden import infer
from bnncore.hw.accelerator import AcceleratorCore, SimAccelerator
from bnncore.hw.plan import make_plan, read_group
from bnncore.hw.timing import timing
from bnncore.network import FoldedLayer, FoldedNetwork, OutputHead

from .amaranth_bench import run


def random_net(sizes, rng, extremes=0.2):
    layers = []
    for i, o in zip(sizes[:-2], sizes[1:-1]):
        t = rng.integers(0, i + 2, o)
        t[rng.random(o) < extremes] = 0
        t[rng.random(o) < extremes] = i + 1
        layers.append(FoldedLayer(rng.integers(0, 2, (o, i)), t))
    head = OutputHead(rng.integers(0, 2, (sizes[-1], sizes[-2])), rng.integers(-3, 4, sizes[-1]))
    return FoldedNetwork(tuple(layers), head)


@st.composite
def cases(draw):
    sizes = draw(st.lists(st.integers(1, 24), min_size=2, max_size=4))
    sizes[-1] = draw(st.integers(2, 12))  # classes
    folds = [(draw(st.integers(1, o)), draw(st.integers(1, i))) for i, o in zip(sizes[:-1], sizes[1:])]
    seed = draw(st.integers(0, 2**31))
    return sizes, folds, seed, draw(st.sampled_from([2, 3])), draw(st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from([(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.4, 0.6)]))
def test_accelerator_equals_golden(case, gaps):
    """Random topologies, PE/SIMD (non-dividing too), thresholds at the extremes, with random
    input gaps and output backpressure: classes and scores equal the golden model's."""
    sizes, folds, seed, banks, pipelined = case
    rng = np.random.default_rng(seed)
    net = random_net(sizes, rng)
    plan = make_plan(sizes, folds, banks=banks, pipelined=pipelined)
    bits = rng.integers(0, 2, (12, sizes[0])).astype(np.uint8)
    gold = infer(net, bits, return_layers=True)
    r = run(plan, net, bits, gap=gaps[0], stall=gaps[1], seed=seed, junk_padding=True)
    assert r["classes"].tolist() == gold.classes.tolist()
    assert r["scores"].tolist() == gold.scores.tolist()


@pytest.mark.parametrize("folds", [[(3, 40), (2, 7)], [(2, 33), (1, 4)], [(7, 50), (3, 7)]])
def test_popcount_chunks_equal_golden(folds):
    """Pipelined engines add popcounts of 16-bit chunks: SIMD of several chunks, whole and
    partial, give the golden model's scores."""
    sizes = (50, 7, 3)
    rng = np.random.default_rng(len(folds[0]) + folds[0][1])
    net = random_net(sizes, rng)
    bits = rng.integers(0, 2, (10, sizes[0])).astype(np.uint8)
    gold = infer(net, bits, return_layers=True)
    r = run(make_plan(sizes, folds), net, bits, gap=0.3, stall=0.3, seed=1)
    assert r["scores"].tolist() == gold.scores.tolist() and r["classes"].tolist() == gold.classes.tolist()


@pytest.mark.parametrize("banks", [2, 3])
def test_register_buffer_read_in_groups_equals_golden(banks):
    """Pipelined engines read a register-array buffer in two cycles, one of G words, then one
    of those: 15 synapse folds (G = 8: 2 groups, the last partial) over 2 or 3 banks, with gaps
    and backpressure, give the golden model's results and the model's timing."""
    sizes, folds = (20, 30, 3), [(3, 5), (1, 2)]
    rng = np.random.default_rng(banks)
    net = random_net(sizes, rng)
    plan = make_plan(sizes, folds, banks=banks)
    assert plan.layers[1].sf == 15 and read_group(15, banks) == 8
    bits = rng.integers(0, 2, (16, sizes[0])).astype(np.uint8)
    gold = infer(net, bits, return_layers=True)
    r = run(plan, net, bits, gap=0.3, stall=0.3, seed=banks)
    assert r["scores"].tolist() == gold.scores.tolist() and r["classes"].tolist() == gold.classes.tolist()
    r = run(plan, net, bits)
    assert r["t_out"][0] - r["t_in"][0] == timing(plan).latency


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("sizes, folds, banks", [
    ((13, 7, 5, 3), [(3, 4), (2, 3), (2, 2)], 2),
    ((13, 7, 5, 3), [(3, 4), (2, 3), (2, 2)], 3),
    ((20, 16, 16, 10), [(4, 5), (4, 4), (5, 4)], 2),        # balanced: II set by the bank loops
    ((20, 16, 16, 10), [(4, 5), (4, 4), (5, 4)], 3),        # a third bank hides them
    ((8, 4, 2), [(4, 8), (2, 4)], 2),                       # fully parallel: 1 cycle per layer
    ((30, 9, 4), [(1, 7), (4, 9)], 2),                      # one slow layer
])
def test_timing_matches_model(sizes, folds, banks, pipelined):
    rng = np.random.default_rng(0)
    net = random_net(sizes, rng)
    plan = make_plan(sizes, folds, banks=banks, pipelined=pipelined)
    n = 40
    r = run(plan, net, rng.integers(0, 2, (n, sizes[0])).astype(np.uint8))
    model = timing(plan)
    assert r["t_out"][0] - r["t_in"][0] == model.latency
    # steady state is periodic over 1, 2 or 3 images (the loops of the model span 1, the
    # banks or the FIFO depth): over the last 24 intervals the mean equals the model exactly
    window = 24
    measured = Fraction(int(r["t_out"][-1] - r["t_out"][-1 - window]), window)
    assert measured == model.ii


def test_reset_mid_stream_recovers():
    rng = np.random.default_rng(3)
    sizes = (11, 6, 4)
    net = random_net(sizes, rng)
    plan = make_plan(sizes, [(2, 3), (3, 2)])
    bits = rng.integers(0, 2, (10, sizes[0])).astype(np.uint8)
    gold = infer(net, bits, return_layers=True)
    for cycle in (3, 17, 40, 61):     # mid-beat, mid-layer, with results in the FIFO, ...
        r = run(plan, net, bits, reset_at=(cycle, 4), stall=0.3, seed=cycle)
        assert r["classes"].tolist() == gold.classes[4:].tolist()
        assert r["scores"].tolist() == gold.scores[4:].tolist()


def test_core_validation():
    with pytest.raises(TypeError, match=r"^plan must be a Plan, not 3$"):
        AcceleratorCore(plan=3)
    net = random_net((5, 3, 2), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^network 5-3-2 differs from the design \(5-4-2\) in what its logic fixes: layer 0 outputs: the design has 4, the network 3"):
        SimAccelerator(plan=make_plan((5, 4, 2), [(1, 1), (1, 1)]), net=net)
