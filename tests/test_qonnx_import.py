"""QONNX import: Brevitas W1A1 models, trained for a few steps and given BatchNorm statistics
with negative scales, exported with Brevitas' own ``export_qonnx``, imported, and compared with
qonnx's executor on MNIST test images: every class and every hidden bit, exactly."""

import os
import re

import numpy as np
import pytest
from hypothesis import given, settings

if not os.environ.get("CI"):                # CI installs the extra (make setup): there it must be present
    pytest.importorskip("brevitas", reason="QONNX import tests need bnncore[interop] (Brevitas, qonnx)")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bnncore.cli import main  # noqa: E402
from bnncore.exports import load  # noqa: E402
from bnncore.golden import infer  # noqa: E402
from bnncore.interop import export_qonnx  # noqa: E402
from bnncore.network import DenseLayer, FoldedNetwork  # noqa: E402
from bnncore.qonnx_import import QonnxImportError, import_qonnx, verify_qonnx  # noqa: E402
from bnncore.thresholds import to_yxc  # noqa: E402

from .test_golden import conv_networks  # noqa: E402

brevitas_nn = pytest.importorskip("brevitas.nn")
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst  # noqa: E402


class Weights(SignedBinaryWeightPerTensorConst):
    """±1 weights, as FINN's BNN examples quantize them (scaling_const 1)."""
    scaling_const = 1.0


def sign():
    return brevitas_nn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


def linear(n_in, n_out, **kw):
    return brevitas_nn.QuantLinear(n_in, n_out, bias=False, weight_quant=Weights, **kw)


def conv(c_in, c_out, k=3, **kw):
    return brevitas_nn.QuantConv2d(c_in, c_out, k, bias=False, weight_quant=Weights, **kw)


def norm(m):
    """Random BatchNorm statistics, a third of the scales negative."""
    g = torch.Generator().manual_seed(m.num_features)
    with torch.no_grad():
        m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 3)
        m.running_var.copy_(torch.rand(m.num_features, generator=g) * 4 + 0.5)
        m.weight.copy_(torch.randn(m.num_features, generator=g).abs() + 0.1)
        m.weight[::3] *= -1
        m.bias.copy_(torch.randn(m.num_features, generator=g))
    return m


class Model(nn.Module):
    """x in [0, 1] (pixel / 255); ``pm1``: the input as 2x - 1, as FINN's examples feed it."""

    def __init__(self, *layers, pm1=True, flat=False):
        super().__init__()
        self.body = nn.Sequential(*layers)
        self.pm1, self.flat = pm1, flat

    def forward(self, x):
        if self.flat:
            x = x.reshape(x.shape[0], -1)
        return self.body(2.0 * x - 1.0 if self.pm1 else x)


def sfc_like():
    """SFC's shape, smaller: input sign, three binary hidden layers, a binary output layer."""
    return Model(sign(), linear(784, 96), norm(nn.BatchNorm1d(96)), sign(), linear(96, 64), norm(nn.BatchNorm1d(64)),
                 sign(), linear(64, 48), norm(nn.BatchNorm1d(48)), sign(), linear(48, 10), flat=True)


def cnn_both_pools():
    """conv -> BN -> sign -> pool (OR), conv -> pool -> BN -> sign (AND where the scale is
    negative), then a flatten of 6 channels (the column order matters) and two dense layers."""
    return Model(sign(), conv(1, 5), norm(nn.BatchNorm2d(5)), sign(), nn.MaxPool2d(2),
                 conv(5, 6), nn.MaxPool2d(2), norm(nn.BatchNorm2d(6)), sign(), nn.Flatten(),
                 linear(150, 24), norm(nn.BatchNorm1d(24)), sign(), linear(24, 10))


def cnn_norm_then_pool():
    """conv -> BN -> pool -> sign: the pool sees BatchNorm's output, so every channel is an OR,
    negative scales included (it is the ops after a pool that turn it into an AND)."""
    return Model(sign(), conv(1, 5), norm(nn.BatchNorm2d(5)), nn.MaxPool2d(2), sign(), nn.Flatten(),
                 linear(5 * 13 * 13, 10))


class Affine(nn.Module):
    """A scalar scale and offset after the last layer, as FINN's TensorNorm."""

    def forward(self, x):
        return x * 0.5 + 3.0


def cnn_uint8():
    """No input quantizer: the first conv sees pixel / 255 (zero padding is pixel 0)."""
    return Model(conv(1, 4, padding=1), norm(nn.BatchNorm2d(4)), sign(), nn.MaxPool2d(2), nn.Flatten(),
                 linear(4 * 14 * 14, 16), norm(nn.BatchNorm1d(16)), sign(), linear(16, 10), Affine(), pm1=False)


def trained(model, mnist, steps=20):
    """A few steps of Adam on MNIST, then eval mode (BatchNorm then has its running statistics,
    re-randomised so that negative scales stay)."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.tensor(mnist.train_images[:64 * steps].reshape(-1, 1, 28, 28) / 255.0, dtype=torch.float32)
    y = torch.tensor(mnist.train_labels[:64 * steps]).long()
    model.train()
    for i in range(steps):
        loss = nn.functional.cross_entropy(model(x[i * 64:(i + 1) * 64]), y[i * 64:(i + 1) * 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            norm(m)
    return model.eval()


def exported(model, path):
    from brevitas.export import export_qonnx
    export_qonnx(model.eval(), torch.rand(1, 1, 28, 28), str(path))
    return path


def torch_classes(model, images):
    with torch.no_grad():
        return model(torch.tensor(images.reshape(-1, 1, 28, 28) / 255.0, dtype=torch.float32)).argmax(1).numpy()


@pytest.mark.parametrize("make, kinds", [
    (sfc_like, ["dense"] * 3),
    (cnn_both_pools, ["conv", "pool", "conv", "pool", "dense"]),
    (cnn_uint8, ["conv", "pool", "dense"]),
    (cnn_norm_then_pool, ["conv", "pool"]),
])
def test_brevitas_models_import_exactly(tmp_path, mnist, make, kinds):
    model = trained(make(), mnist)
    imp = import_qonnx(exported(model, tmp_path / "m.onnx"))
    net = imp.net
    assert [l.kind for l in net.layers] == kinds
    images, labels = mnist.test_images[:1000], mnist.test_labels[:1000]
    check = verify_qonnx(imp, images, labels)
    assert check["class_mismatches"] == 0 and check["hidden_bit_mismatches"] == 0, check
    assert check["hidden_bits_compared"] > 0
    # and Brevitas' own torch evaluation agrees on the classes
    assert np.array_equal(torch_classes(model, images), infer(net, net.input.bits(images)).classes)
    if make is sfc_like:
        assert net.input.scheme == "threshold" and net.input.level == 128      # 2 * p / 255 - 1 >= 0
        assert sum(r.negative_scale for r in imp.report.layers) > 0
    if make is cnn_both_pools:
        assert net.layers[1].modes.sum() == 0 and 0 < net.layers[3].modes.sum() < 6   # OR, then AND and OR
    if make is cnn_norm_then_pool:
        assert imp.report.layers[0].negative_scale > 0 and net.layers[1].modes.sum() == 0
    if make is cnn_uint8:
        assert net.input.scheme == "uint8" and net.layers[0].padding == 1 and net.layers[0].pad_value == 0
        assert (net.head.bias == 6).all()                                  # (0.5 * dot + 3) / 0.5


def test_the_check_catches_a_wrong_network(tmp_path, mnist):
    """A threshold off by one, or a dense layer after a conv whose columns stay in ONNX's
    (channel, y, x) order instead of ours: the verification reports the difference."""
    imp = import_qonnx(exported(trained(cnn_both_pools(), mnist, steps=5), tmp_path / "m.onnx"))
    images = mnist.test_images[:300]
    layers = list(imp.net.layers)
    dense = layers[4]
    c, h, w = layers[3].out_shape
    chw = dense.weights.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(len(dense.weights), -1)
    assert np.array_equal(to_yxc(chw, (c, h, w)), dense.weights)
    for wrong in (DenseLayer(chw, dense.thresholds),
                  DenseLayer(dense.weights, np.minimum(dense.thresholds + 1, dense.n_in + 1))):
        imp.net = FoldedNetwork(tuple(layers[:4]) + (wrong,), imp.net.head, imp.net.input)
        assert verify_qonnx(imp, images)["hidden_bit_mismatches"] > 0


@pytest.mark.parametrize("layers, message", [
    ((sign(), linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(), linear(16, 10)),
     r"\(Relu\): between node .*\(Gemm\) and its activation"),
    ((sign(), linear(784, 16), nn.BatchNorm1d(16),
      brevitas_nn.QuantIdentity(bit_width=2), linear(16, 10)), r"\(Quant\): between node .*Gemm"),
    ((sign(), linear(784, 16), nn.BatchNorm1d(16), sign(), linear(16, 10), nn.BatchNorm1d(10)),
     r"the class scores are A_c \* dot \+ B_c with A_c (not all positive|differing between classes)"),
    ((sign(), linear(784, 16), nn.BatchNorm1d(16), sign(),
      brevitas_nn.QuantLinear(16, 10, bias=True, weight_quant=Weights)), r"the class offsets B_c / A are not integers"),
])
def test_what_does_not_fold_is_refused_by_node(tmp_path, layers, message):
    model = Model(*layers, flat=True)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            norm(m)
    with pytest.raises(QonnxImportError, match=message):
        import_qonnx(exported(model, tmp_path / "m.onnx"))


def test_zero_padding_of_a_binary_conv_is_refused(tmp_path):
    model = Model(sign(), conv(1, 4, padding=1), norm(nn.BatchNorm2d(4)), sign(), nn.Flatten(),
                  linear(4 * 28 * 28, 10))
    with pytest.raises(QonnxImportError, match=r"\(Conv\): pads its binary input with 0, which is neither"):
        import_qonnx(exported(model, tmp_path / "m.onnx"))


def test_bnn_import_of_a_qonnx_model(tmp_path, mnist_dir, mnist, capsys):
    """`bnn import model.onnx -o DIR --dataset mnist` verifies on the test set, then exports; a
    model that does not fold leaves nothing behind."""
    onnx_path = exported(trained(sfc_like(), mnist, steps=5), tmp_path / "sfc.onnx")
    data = ["--data-dir", str(mnist_dir.parent)]
    assert main(["import", str(onnx_path), "--dataset", "mnist", "--limit", "2000", "-o", str(tmp_path / "net"),
                 *data]) == 0
    out = capsys.readouterr().out
    assert re.search(r"verified on 2000 mnist test images: qonnx .*, 0 class mismatches, 0 of [0-9,]+ hidden bits", out)
    net = load(tmp_path / "net")
    meta = __import__("json").loads((tmp_path / "net" / "manifest.json").read_text())["metadata"]
    assert meta["dataset"] == "mnist" and meta["qonnx"]["sha256"] and meta["verification"]["class_mismatches"] == 0
    assert net.spec == "784-96-64-48-10"
    import bnncore                                     # the same network from Python
    assert bnncore.import_qonnx(onnx_path, verify_on=(mnist.test_images[:200], mnist.test_labels[:200])) == net
    bad = Model(sign(), linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(), linear(16, 10), flat=True)
    assert main(["import", str(exported(bad, tmp_path / "bad.onnx")), "--dataset", "mnist", "-o",
                 str(tmp_path / "bad"), *data]) == 2
    assert "(Relu)" in capsys.readouterr().err and not (tmp_path / "bad").exists()



@settings(max_examples=25, deadline=None)
@given(conv_networks())
def test_our_own_qonnx_export_imports_as_the_same_network(case):
    """`bnn export --qonnx` then `bnn import`: FINN's streamlined form (MultiThreshold
    activations, ±1 pads, AND pools as s * MaxPool(s * x), a Transpose before the Flatten)
    folds back into the very network, on random CNNs and MLPs with 8-bit first layers,
    padding with either value and thresholds at both extremes."""
    import tempfile
    net, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        imp = import_qonnx(export_qonnx(net, f"{tmp}/net.onnx"))    # its metadata: the input is the pixels
    # an unpadded convolution's pad value is never used: the model has none to give
    from dataclasses import replace
    ours = tuple(replace(l, pad_value=i.pad_value) if l.kind == "conv" and not l.padding else l
                 for l, i in zip(net.layers, imp.net.layers))
    assert imp.net == FoldedNetwork(ours, net.head, net.input)


def test_the_round_trip_needs_no_option(tmp_path, capsys):
    """`bnn export NET --qonnx new/m.onnx` (a folder it creates) then `bnn import new/m.onnx -o
    DIR` without a dataset: the model's metadata gives the input convention, the import is
    proved on random inputs, the manifest says on what, and the network is the one exported."""
    from tests.hw.test_accelerator import random_net
    from bnncore.exports import export
    net = random_net((64, 32, 10), np.random.default_rng(3))
    export(net, tmp_path / "net")
    assert main(["export", str(tmp_path / "net"), "--qonnx", str(tmp_path / "new" / "m.onnx")]) == 0
    assert main(["import", str(tmp_path / "new" / "m.onnx"), "-o", str(tmp_path / "back"),
                 "--verify-on", "random:300"]) == 0
    out = capsys.readouterr().out
    assert "verified on 300 random inputs (seed 0): 0 class mismatches, 0 of 9,600 hidden bits differ" in out
    assert load(tmp_path / "back") == net
    meta = __import__("json").loads((tmp_path / "back" / "manifest.json").read_text())["metadata"]
    assert meta["verification"]["verified_on"] == "300 random inputs (seed 0)" and meta["qonnx"]["pixel_scale"] == 1
    with pytest.raises(SystemExit):
        main(["import", str(tmp_path / "new" / "m.onnx"), "-o", str(tmp_path / "x"), "--verify-on", "random:0"])
    assert "random:N with N in [1, 1,000,000]" in capsys.readouterr().err


@pytest.mark.parametrize("metadata, given, message", [
    ({"bnncore.pixel_scale": "abc"}, {}, r"metadata 'bnncore.pixel_scale' is 'abc', not a number; give --pixel-scale"),
    ({"bnncore.pixel_scale": "nan"}, {}, r"pixel_scale \(the model's metadata\) must be a finite number"),
    ({"bnncore.pixel_scale": "-1"}, {}, r"pixel_scale \(the model's metadata\) must be positive"),
    ({}, {"pixel_scale": 1 / 255}, r"is annotated UINT8 \(whole pixel values\), but pixel \* 0.00392157 \+ 0 "
                                   r"\(given\) is not whole; leave out --pixel-scale"),
])
def test_the_input_convention_is_checked(tmp_path, metadata, given, message):
    """A model's recorded input convention is a user's file like any other: a field that is
    not a positive finite number is named; a UINT8 input fed fractions is refused up front."""
    from tests.hw.test_accelerator import random_net
    from qonnx.core.modelwrapper import ModelWrapper
    path = export_qonnx(random_net((16, 8, 4), np.random.default_rng(0)), tmp_path / "m.onnx")
    model = ModelWrapper(str(path))
    for key, value in metadata.items():
        model.set_metadata_prop(key, value)
    model.save(str(path))
    with pytest.raises(QonnxImportError, match=message):
        import_qonnx(path, **given)



def _bnn_pynq(name: str, path):
    """``brevitas_examples.bnn_pynq``'s model ``name``, unmodified, with random BatchNorm
    statistics (negative scales among them), exported with Brevitas' export_qonnx."""
    from brevitas.export import export_qonnx as brevitas_export
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    model, _ = model_with_cfg(name, pretrained=False)
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.data = torch.randn(n, generator=gen) * 3
            m.running_var.data = torch.rand(n, generator=gen) * 4 + 0.5
            m.weight.data = torch.randn(n, generator=gen)
            m.bias.data = torch.randn(n, generator=gen)
    model.eval()
    brevitas_export(model, torch.zeros((1, 1, 28, 28) if "fc" in name else (1, 3, 32, 32)), str(path))
    return path


@pytest.mark.parametrize("name", ["tfc_1w1a", "sfc_1w1a", pytest.param("lfc_1w1a", marks=pytest.mark.slow),
                                  pytest.param("cnv_1w1a", marks=pytest.mark.slow)])
def test_the_bnn_pynq_models_import_exactly(tmp_path, name):
    """Every W1A1 model of brevitas_examples.bnn_pynq imports and equals qonnx's executor on
    every class and hidden bit of random inputs; CNV's 8-bit input quantizer (a rounded 2x - 1)
    comes in as a table input."""
    imp = import_qonnx(_bnn_pynq(name, tmp_path / f"{name}.onnx"))
    check = verify_qonnx(imp, imp.net.input.random_pixels(200, imp.net.n_inputs))
    assert check["class_mismatches"] == 0 and check["hidden_bit_mismatches"] == 0 and check["hidden_bits_compared"]
    assert imp.net.input.scheme == ("table" if name == "cnv_1w1a" else "threshold")
    if name == "cnv_1w1a":
        assert imp.net.spec == "3x32x32-64c3-64c3-mp2-128c3-128c3-mp2-256c3-256c3-512-512-10"
