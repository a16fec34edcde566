"""QONNX export: qonnx's own executor gives our golden model's scores, exactly, on random
MLPs and CNNs and on a trained network over the whole MNIST test set; qonnx's cleanup
accepts the model."""

import os

import numpy as np
import pytest
from hypothesis import assume, given, settings

if not os.environ.get("CI"):                # CI installs the extra (make setup): there it must be present
    pytest.importorskip("qonnx", reason="QONNX needs bnncore[interop]")

from bnncore.cli import main  # noqa: E402
from bnncore.exports import load  # noqa: E402
from bnncore.golden import infer  # noqa: E402
from bnncore.interop import export_qonnx, qonnx_model, run_qonnx  # noqa: E402

from .test_golden import conv_networks  # noqa: E402


def _pixels(net, values, rng):
    """Pixels that give ``values`` as input: raw values of an 8-bit network, else pixels on
    either side of the threshold level."""
    if net.input.scheme == "uint8":
        return values
    level = net.input.level
    low = rng.integers(0, level, values.shape)
    high = rng.integers(level, 256, values.shape)
    return np.where(values == 1, high, low).astype(np.uint8)


@settings(max_examples=30, deadline=None)
@given(conv_networks())
def test_qonnx_scores_equal_the_golden_model(case):
    net, values = case
    pixels = _pixels(net, values, np.random.default_rng(0))
    gold = infer(net, net.input.bits(pixels), return_layers=True)
    scores = run_qonnx(qonnx_model(net), pixels)
    assert scores.dtype == np.float32 and np.array_equal(scores, gold.scores)


@settings(max_examples=15, deadline=None)
@given(conv_networks())
def test_every_matmul_and_conv_reads_bipolar_weights_and_activations(case):
    """The form FINN's ConvertBipolarMatMulToXnorPopcount and its binary MVAU conversion take:
    ±1 weights, and ±1 inputs except an 8-bit first layer's UINT8 pixels."""
    net, _ = case
    model = qonnx_model(net)
    ops = [n for n in model.graph.node if n.op_type in ("MatMul", "Conv")]
    assert len(ops) == len(net.stages) - sum(s.kind == "pool" for s in net.stages)
    for k, n in enumerate(ops):
        x, w = (model.get_tensor_datatype(t).name for t in n.input[:2])
        assert w == "BIPOLAR" and x == ("UINT8" if k == 0 and net.input.scheme == "uint8" else "BIPOLAR"), (k, x)


def test_a_trained_network_over_the_test_set_and_through_cleanup(tmp_path, mnist_dir, mnist):
    """Train, fold, `bnn export DIR --qonnx`: 0 of 10,000 MNIST test images differ, before and
    after qonnx's cleanup transforms."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model
    data = ["--data-dir", str(mnist_dir.parent)]
    assert main(["train", "--topology", "784-64-32-10", "--epochs", "1", "--limit", "5000", "-o",
                 str(tmp_path / "run"), "--no-progress", *data]) == 0
    assert main(["fold", str(tmp_path / "run" / "best.pt"), "-o", str(tmp_path / "net"), *data]) == 0
    assert main(["export", str(tmp_path / "net"), "--qonnx", str(tmp_path / "net.onnx")]) == 0
    net = load(tmp_path / "net")
    images = mnist.test_images
    gold = infer(net, net.input.bits(images), return_layers=True)
    scores = run_qonnx(tmp_path / "net.onnx", images)
    assert np.array_equal(scores, gold.scores) and np.array_equal(scores.argmax(1), gold.classes)
    clean = cleanup_model(ModelWrapper(str(tmp_path / "net.onnx")))
    assert np.array_equal(run_qonnx(clean, images[:500]), gold.scores[:500])
    assert clean.get_tensor_datatype(clean.graph.input[0].name).name == "UINT8"
    # FINN's first BNN step, in qonnx: every MatMul becomes an XNOR-popcount, same scores
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
    xnor = clean.transform(ConvertBipolarMatMulToXnorPopcount())
    assert [n.op_type for n in xnor.graph.node].count("XnorPopcountMatMul") == 3
    assert "MatMul" not in [n.op_type for n in xnor.graph.node]
    assert np.array_equal(run_qonnx(xnor, images[:500]), gold.scores[:500])


def test_export_needs_somewhere_to_write(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "nothing to write" in capsys.readouterr().err


def test_the_file_is_written_whole(tmp_path):
    from bnncore.network import DenseLayer, FoldedNetwork, OutputHead
    rng = np.random.default_rng(3)
    net = FoldedNetwork((DenseLayer(rng.integers(0, 2, (4, 9)), rng.integers(0, 10, 4)),),
                        OutputHead(rng.integers(0, 2, (3, 4)), [0, 1, -1]))
    path = export_qonnx(net, tmp_path / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"] and path.stat().st_mode & 0o777 != 0o600


def _with_table(net, rng):
    """``net`` (8-bit input) with a random non-decreasing input table, as CNV's quantizer."""
    from bnncore.network import FoldedNetwork, InputScheme
    table = np.sort(rng.integers(0, 256, 256))
    return FoldedNetwork(net.layers, net.head, InputScheme("table", table=tuple(table)), net.inputs)


@settings(max_examples=15, deadline=None)
@given(conv_networks())
def test_a_table_input_exports_and_imports_exactly(case):
    """A table input (bnncore.network.InputScheme 'table') goes out as FINN's input quantizer, a
    MultiThreshold of 255 thresholds: qonnx's executor gives the golden model's scores on every
    pixel value, and the model imports back, with no option, as the network exported."""
    import tempfile

    from bnncore.qonnx_import import import_qonnx
    net, _ = case
    assume(net.input.scheme == "uint8")          # a table replaces an 8-bit input
    rng = np.random.default_rng(5)
    net = _with_table(net, rng)
    pixels = rng.integers(0, 256, (16, net.n_inputs), dtype=np.uint8)
    pixels[0, :] = np.arange(net.n_inputs) % 256            # every pixel value somewhere
    gold = infer(net, net.input.bits(pixels), return_scores=True).scores
    assert np.array_equal(run_qonnx(qonnx_model(net), pixels), gold)
    with tempfile.TemporaryDirectory() as tmp:
        back = import_qonnx(export_qonnx(net, f"{tmp}/m.onnx")).net
    assert back.input.scheme == "table"       # its levels may start elsewhere: the thresholds take the offset
    assert np.array_equal(infer(back, back.input.bits(pixels), return_scores=True).scores, gold)


def test_a_decreasing_table_has_no_qonnx_form():
    from bnncore.errors import UsageError
    from bnncore.network import FoldedNetwork, InputScheme
    from tests.hw.test_accelerator import random_net
    net = random_net((16, 8, 4), np.random.default_rng(0))
    from bnncore.network import DenseLayer
    first = DenseLayer(net.layers[0].weights, np.full(8, 900), in_bits=8)
    net = FoldedNetwork((first,), net.head, InputScheme("table", table=tuple(range(255, -1, -1))))
    with pytest.raises(UsageError, match="its input table decreases somewhere"):
        qonnx_model(net)
