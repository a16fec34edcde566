import numpy as np
import pytest

from bnncore.data import InputBinarization
from bnncore.network import FoldedLayer, FoldedNetwork, NetworkError, OutputHead, summary, summary_table


def small_net(rng=np.random.default_rng(0), sizes=(12, 7, 5, 3)):
    layers = tuple(FoldedLayer(rng.integers(0, 2, (o, i)), rng.integers(0, i + 2, o), name=f"layer {k}")
                   for k, (i, o) in enumerate(zip(sizes[:-2], sizes[1:-1])))
    return FoldedNetwork(layers, OutputHead(rng.integers(0, 2, (sizes[-1], sizes[-2])), rng.integers(-3, 4, sizes[-1])))


def test_topology_and_equality():
    a, b = small_net(np.random.default_rng(1)), small_net(np.random.default_rng(1))
    assert a.topology == (12, 7, 5, 3) and a == b and a != small_net(np.random.default_rng(2))
    assert not a.layers[0].weights.flags.writeable and not a.head.bias.flags.writeable
    assert repr(a) == "FoldedNetwork(12-7-5-3, input=threshold@128)"


@pytest.mark.parametrize("make, message", [
    (lambda: FoldedLayer(np.full((2, 3), 2), [0, 0], name="layer 1"), r"layer 1: weights must be 0 or 1, found 2 at neuron 0, input 0"),
    (lambda: FoldedLayer(np.zeros((2, 3)), [0, 0], name="layer 1"), r"layer 1: weights must be integer 0/1 bits, got dtype float64"),
    (lambda: FoldedLayer(np.zeros(3, int), [0], name="layer 1"), r"layer 1: weights must be a non-empty 2-D array \(neurons, inputs\), got shape \(3,\)"),
    (lambda: FoldedLayer(np.zeros((2, 3), int), [0, 5], name="layer 2"), r"layer 2: thresholds must be in \[0, 4\] for 3 inputs, found 5 at neuron 1"),
    (lambda: FoldedLayer(np.zeros((2, 3), int), [0, -1]), r"layer: thresholds must be in \[0, 4\] for 3 inputs, found -1 at neuron 1"),
    (lambda: FoldedLayer(np.zeros((2, 3), int), [0]), r"layer: thresholds must have shape \(2,\), one per neuron, got \(1,\)"),
    (lambda: FoldedLayer(np.zeros((2, 3), int), [0.5, 1.0]), r"layer: thresholds must be integers, got dtype float64"),
    (lambda: OutputHead(np.zeros((2, 3), int), [0, 2**31]), r"output: bias must be in \[-2147483644, 2147483644\] so scores fit 32 bits, found 2147483648 at class 1"),
    (lambda: FoldedNetwork((FoldedLayer(np.zeros((4, 3), int), [0] * 4),), OutputHead(np.zeros((2, 5), int), [0, 0])),
     r"output head: has 5 inputs, expected 4 \(the outputs of layer 0\)"),
    (lambda: FoldedNetwork((), OutputHead(np.zeros((2, 5), int), [0, 0]), InputBinarization("none")),
     r"input: input scheme 'none' \(float pixels\) has no integer representation; train with --input threshold, probability or uint8"),
    (lambda: FoldedNetwork(("x",), OutputHead(np.zeros((2, 5), int), [0, 0])), r"layer 0: expected a DenseLayer, ConvLayer, PoolLayer or a layer of a registered kind \(bnncore.kinds\), got str"),
])
def test_validation_messages(make, message):
    with pytest.raises(NetworkError, match=rf"^{message}"):
        make()


def test_summary():
    net = FoldedNetwork((FoldedLayer(np.zeros((1024, 784), int), np.full(1024, 392)),),
                        OutputHead(np.zeros((10, 1024), int), np.arange(-5, 5)))
    s = summary(net)
    l0, out = s["layers"]
    assert l0["weight_bits"] == 784 * 1024 and l0["popcount_bits"] == 10 and l0["threshold_bits"] == 10
    assert out["score_bits"] == 12  # scores in [-1029, 1028] need 11 bits + sign
    assert s["total"]["macs_per_image"] == 784 * 1024 + 10240
    assert s["total"]["compression_vs_float32"] > 30
    assert "layer 0" in summary_table(net)
