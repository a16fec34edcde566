import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bnncore.golden import infer, pack_bits, unpack_bits
from bnncore.network import FoldedLayer, FoldedNetwork, OutputHead


@given(st.integers(1, 200), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_pack_unpack(n, rows, seed):
    bits = np.random.default_rng(seed).integers(0, 2, (rows, n)).astype(np.uint8)
    packed = pack_bits(bits)
    assert packed.shape == (rows, -(-n // 64)) and packed.dtype == np.dtype("<u8")
    assert np.array_equal(unpack_bits(packed, n), bits)
    # bit i is bit i % 64 of word i // 64
    i = n - 1
    assert ((packed[:, i // 64] >> np.uint64(i % 64)) & np.uint64(1)).tolist() == bits[:, i].tolist()


def naive(net, bits):
    """Integer inference with +-1 arithmetic, written directly from the definitions."""
    x = bits.astype(np.int64) * 2 - 1
    acts = []
    for layer in net.layers:
        w = layer.weights.astype(np.int64) * 2 - 1
        p = (x @ w.T + layer.n_in) // 2                 # popcount(xnor) = (dot + n) / 2
        a = (p >= layer.thresholds).astype(np.uint8)
        acts.append(a)
        x = a.astype(np.int64) * 2 - 1
    w = net.head.weights.astype(np.int64) * 2 - 1
    scores = x @ w.T + net.head.bias
    classes = np.array([min(np.flatnonzero(s == s.max())) for s in scores])
    return classes, scores, acts


@st.composite
def networks(draw):
    sizes = draw(st.lists(st.integers(1, 140), min_size=2, max_size=5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layers = []
    for k, (i, o) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        t = rng.integers(0, i + 2, o)
        t[rng.random(o) < 0.2] = 0          # extremes: always and never fire
        t[rng.random(o) < 0.2] = i + 1
        layers.append(FoldedLayer(rng.integers(0, 2, (o, i)), t, name=f"layer {k}"))
    # small biases make ties between classes common
    head = OutputHead(rng.integers(0, 2, (sizes[-1], sizes[-2])), rng.integers(-2, 3, sizes[-1]))
    return FoldedNetwork(tuple(layers), head), rng.integers(0, 2, (draw(st.integers(1, 70)), sizes[0]))


@settings(max_examples=60, deadline=None)
@given(networks())
def test_golden_equals_naive(case):
    net, bits = case
    out = infer(net, bits, return_layers=True, batch_size=16)
    classes, scores, acts = naive(net, bits)
    assert np.array_equal(out.classes, classes)
    assert np.array_equal(out.scores, scores)
    assert all(np.array_equal(a, b) for a, b in zip(out.activations, acts))
    assert np.array_equal(infer(net, bits).classes, classes)


def test_ties_go_to_lowest_class():
    head = OutputHead(np.ones((4, 3), np.uint8), np.array([0, 1, 1, 0]))
    net = FoldedNetwork((), head)
    assert infer(net, np.array([[1, 0, 1], [0, 0, 0]])).classes.tolist() == [1, 1]


def test_threshold_extremes():
    layer = FoldedLayer(np.zeros((3, 4), np.uint8), np.array([0, 5, 2]))
    head = OutputHead(np.eye(3, dtype=np.uint8), np.zeros(3, np.int64))
    out = infer(FoldedNetwork((layer,), head), np.array([[0, 0, 0, 0], [1, 1, 1, 1]]), return_layers=True)
    # all-zero input agrees with all-zero weights on 4 positions, all-one input on none
    assert out.activations[0].tolist() == [[1, 0, 1], [1, 0, 0]]


def test_input_shape_error():
    net = FoldedNetwork((), OutputHead(np.ones((2, 3), np.uint8), np.zeros(2, np.int64)))
    with pytest.raises(ValueError, match=r"^input must have shape \(N, 3\), got \(2, 4\)$"):
        infer(net, np.zeros((2, 4)))
