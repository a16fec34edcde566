import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bnncore.golden import BACKENDS, backend_names, default_backend, infer, pack_bits, unpack_bits
from bnncore.network import ConvLayer, DenseLayer, FoldedLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer


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


@pytest.mark.parametrize("backend", backend_names())
@settings(max_examples=60, deadline=None)
@given(case=networks())
def test_golden_equals_naive(case, backend):
    net, bits = case
    out = infer(net, bits, return_layers=True, batch_size=16, backend=backend)
    classes, scores, acts = naive(net, bits)
    assert np.array_equal(out.classes, classes)
    assert np.array_equal(out.scores, scores)
    assert all(np.array_equal(a, b) for a, b in zip(out.activations, acts))
    assert np.array_equal(infer(net, bits, backend=backend).classes, classes)


@st.composite
def conv_networks(draw):
    """Random CNNs over the shapes where the compiled kernels' word handling could slip:
    channel counts on either side of 64 and 128, kernels 1/3/5, padding with either bit,
    mixed OR/AND pools, 8-bit first layers (conv or dense), thresholds at both extremes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    in_bits = draw(st.sampled_from([1, 8]))
    top = 2**in_bits - 1
    c = draw(st.sampled_from([1, 2, 3, 63, 64, 65]))
    h, w = draw(st.integers(5, 11)), draw(st.integers(5, 11))
    shape, layers = (c, h, w), []
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.sampled_from([1, 3, 5]))
        pad = draw(st.integers(0, k - 1))
        if shape[1] + 2 * pad < k or shape[2] + 2 * pad < k:
            break
        out = draw(st.sampled_from([1, 5, 64, 65, 130]))
        bits = in_bits if not layers else 1
        scale = top if not layers else 1
        fan = k * k * shape[0]
        t = rng.integers(0, scale * fan + 2, out)
        t[rng.random(out) < 0.1] = 0
        t[rng.random(out) < 0.1] = scale * fan + 1
        conv = ConvLayer(rng.integers(0, 2, (out, k, k, shape[0])), t, shape, pad,
                         pad_value=int(rng.integers(0, scale + 1)), in_bits=bits)
        layers.append(conv)
        shape = conv.out_shape
        if draw(st.booleans()) and min(shape[1:]) >= 2:
            layers.append(PoolLayer(shape, rng.integers(0, 2, shape[0]), 2))
            shape = layers[-1].out_shape
    n = int(np.prod(shape))
    if draw(st.booleans()):
        bits, scale = (in_bits, top) if not layers else (1, 1)
        m = draw(st.integers(1, 70))
        layers.append(DenseLayer(rng.integers(0, 2, (m, n)), rng.integers(0, scale * n + 2, m), in_bits=bits))
        n = m
    if not layers:
        in_bits = 1                                  # the head reads bits
    classes = draw(st.integers(2, 10))
    head = OutputHead(rng.integers(0, 2, (classes, n)), rng.integers(-2, 3, classes))
    net = FoldedNetwork(tuple(layers), head, InputScheme("uint8" if in_bits == 8 else "threshold"))
    values = rng.integers(0, 2**in_bits, (draw(st.integers(1, 20)), c * h * w)).astype(np.uint8)
    return net, values


@pytest.mark.skipif(len(backend_names()) < 2, reason="Numba is not installed")
@settings(max_examples=80, deadline=None)
@given(conv_networks())
def test_backends_agree_bit_for_bit(case):
    net, values = case
    a, b = (infer(net, values, return_layers=True, batch_size=8, backend=name) for name in ("numba", "numpy"))
    assert np.array_equal(a.classes, b.classes) and np.array_equal(a.scores, b.scores)
    for x, y in zip(a.activations, b.activations):
        assert x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)


@settings(max_examples=20, deadline=None)
@given(conv_networks())
def test_scores_without_the_layers(case):
    """return_scores: the scores return_layers gives, without the activations; none asked, none given."""
    net, values = case
    full = infer(net, values, return_layers=True, batch_size=8)
    for inputs, n in ((values, len(values)), (values[:0], 0)):
        out = infer(net, inputs, return_scores=True, batch_size=8)
        assert out.activations is None and out.scores.shape == (n, net.head.n_out)
        assert np.array_equal(out.scores, full.scores[:n]) and np.array_equal(out.classes, full.classes[:n])
    assert infer(net, values).scores is None


def test_backend_choice(monkeypatch):
    assert set(backend_names()) <= set(BACKENDS) and "numpy" in backend_names()
    monkeypatch.setenv("BNN_GOLDEN_BACKEND", "numpy")
    assert default_backend() == "numpy"
    net = FoldedNetwork((), OutputHead(np.ones((2, 3), np.uint8), np.zeros(2, np.int64)))
    with pytest.raises(ValueError, match=r"^unknown golden-model backend 'fast'; expected one of numba, numpy$"):
        infer(net, np.zeros((1, 3), np.uint8), backend="fast")


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
