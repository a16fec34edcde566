"""Binary CNNs through every software stage: topology, model, fold, golden model, export."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from bnncore import folding as F
from bnncore.data import InputBinarization
from bnncore.exports import ExportError, export, load
from bnncore.folding import FoldError, fold, fold_with_report, verify
from bnncore.golden import backend_names, infer
from bnncore.model import BinaryNet, ModelConfig
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, NetworkError, OutputHead, PoolLayer
from bnncore.network import summary, summary_table
from bnncore.topology import parse
from bnncore.training import TrainConfig


# --- topology strings -----------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("1x4x4-8c5-10", r"layer 1 \('8c5'\): a 5x5 kernel with padding 0 is bigger than the 1x4x4 feature map"),
    ("1x28x28-mp2-10", r"layer 1 \('mp2'\): a pool must follow a convolution, not the input"),
    ("1x3x3-4c3-mp2-10", r"layer 2 \('mp2'\): a 2x2 pool does not fit the 4x1x1 feature map that reaches it"),
    ("784-32c3-10", r"layer 1 \('32c3'\): a convolution needs a CxHxW feature map, but a flat vector of 784"),
    ("1x28x28-32c3", r"must end with the number of classes \(a size\), not '32c3'"),
    ("1x8x8-4c3p3-10", r"layer 1 \('4c3p3'\): padding 3 must be smaller than the kernel 3"),
    ("1x8x8-4k3-10", r"layer 1 \('4k3'\) does not parse"),
])
def test_topology_errors_name_the_layer_and_shape(text, message):
    with pytest.raises(ValueError, match=rf"^topology '{text}'.*{message}"):
        parse(text)


def test_topology_shapes():
    t = parse("1x28x28-32c3p1-mp2-64c5-mp2-100-10")
    assert [l.out_shape for l in t.layers] == [(32, 28, 28), (32, 14, 14), (64, 10, 10), (64, 5, 5), (100,)]
    assert str(t) == "1x28x28-32c3p1-mp2-64c5-mp2-100-10" and t.head.n_in == 100
    assert parse("1x7x7-3c3-mp2-10").layers[1].out_shape == (3, 2, 2)   # trailing row/column dropped
    assert parse("784-256-10").sizes == (784, 256, 10)


def test_zero_padding_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"^pad value must be -1 or \+1, not 0: a binary layer cannot pad with 0"):
        TrainConfig(topology="1x28x28-8c3p1-10", pad_value=0)


# --- random small networks: fold == torch, bit for bit --------------------------------------

def _randomize_batchnorm(model, rng, raw):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            kinds = rng.integers(0, 5, c)
            gamma = rng.normal(0, 1, c)
            gamma[kinds == 1] = 0.0                                             # zero scale
            gamma[kinds == 2] = rng.choice([1e-30, -1e-30, 1e-8], (kinds == 2).sum())  # tiny scales
            gamma[kinds == 3] = -np.abs(gamma[kinds == 3])                      # negative scale
            spread = 60.0 if raw and m is model.blocks[0].norm else 3.0
            mean = rng.normal(0, spread, c)
            beta = rng.normal(0, 1, c)
            mean[kinds == 4] = rng.integers(-5, 6, (kinds == 4).sum())          # ties at an integer sum
            beta[kinds == 4] = 0.0
            with torch.no_grad():
                m.weight.copy_(torch.tensor(gamma)), m.bias.copy_(torch.tensor(beta))
                m.running_mean.copy_(torch.tensor(mean)), m.running_var.copy_(torch.tensor(rng.uniform(0.05, 20, c)))


@st.composite
def small_cnns(draw):
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(5, 11)), draw(st.integers(5, 11))
    k = draw(st.sampled_from([1, 3, 5]))
    pad = draw(st.integers(0, k // 2))
    ch1 = draw(st.integers(1, 11))
    pool = draw(st.booleans()) and h + 2 * pad - k + 1 >= 2 and w + 2 * pad - k + 1 >= 2
    layers = [f"{ch1}c{k}" + (f"p{pad}" if pad else "")] + (["mp2"] if pool else [])
    if draw(st.booleans()):
        layers += [f"{draw(st.integers(1, 9))}c1"]          # a second conv, 1x1
    if draw(st.booleans()):
        layers += [str(draw(st.integers(1, 13)))]           # a dense layer after the convs
    topo = f"{c}x{h}x{w}-" + "-".join(layers) + f"-{draw(st.integers(2, 5))}"
    cfg = ModelConfig(topology=topo, pool_order=draw(st.sampled_from(["after", "before"])),
                      pad_value=draw(st.sampled_from([-1, 1])), weight_scale=draw(st.sampled_from(["none", "filter", "layer"])),
                      raw_input=draw(st.booleans()))
    seed = draw(st.integers(0, 2**31 - 1))
    torch.manual_seed(seed)
    model = BinaryNet(cfg)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for lin in model.binary_layers():
            wt = torch.tensor(rng.uniform(-1, 1, lin.weight.shape), dtype=torch.float32)
            wt[torch.tensor(rng.random(lin.weight.shape) < 0.1)] = 0.0    # sign(0) = +1 in the mix
            lin.weight.copy_(wt)
    _randomize_batchnorm(model, rng, cfg.raw_input)
    images = rng.integers(0, 256, (40, c * h * w)).astype(np.uint8)
    return model.eval(), InputBinarization("uint8" if cfg.raw_input else "threshold"), images


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_cnns())
def test_fold_equals_torch_on_random_cnns(case):
    model, inp, images = case
    net = fold(model, inp)
    r = verify(net, model, images)
    assert r["class_mismatches"] == 0 and r["hidden_bit_mismatches"] == 0, r
    assert r["hidden_bits_compared"] > 0
    assert load_roundtrip(net) == net


def load_roundtrip(net):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        return load(export(net, f"{d}/n"))


def _model(topo, **kw):
    torch.manual_seed(0)
    m = BinaryNet(ModelConfig(topology=topo, **kw))
    _randomize_batchnorm(m, np.random.default_rng(0), kw.get("raw_input", False))
    return m.eval()


def test_pool_before_batchnorm_is_and_where_the_scale_is_negative():
    m = _model("1x8x8-6c3-mp2-4", pool_order="before")
    with torch.no_grad():
        m.blocks[0].norm.weight.copy_(torch.tensor([1.0, -1.0, 2.0, -0.5, 0.0, 1.0]))
    net, report = fold_with_report(m, InputBinarization())
    conv, pool = net.layers
    assert isinstance(conv, ConvLayer) and isinstance(pool, PoolLayer)
    assert pool.modes.tolist() == [0, 1, 0, 1, 0, 0] and report.layers[0].and_channels == 2
    assert verify(net, m, np.random.default_rng(1).integers(0, 256, (200, 64)).astype(np.uint8))["hidden_bit_mismatches"] == 0
    after = fold(_model("1x8x8-6c3-mp2-4", pool_order="after"), InputBinarization())
    assert not after.layers[1].modes.any()


def test_weight_scale_folds_to_the_same_decisions():
    """A positive alpha scales a = gamma / sigma: the thresholds move, the decisions stay torch's."""
    images = np.random.default_rng(2).integers(0, 256, (300, 100)).astype(np.uint8)
    for mode in ("filter", "layer"):
        m = _model("1x10x10-5c3-mp2-7-3", weight_scale=mode)
        alpha = m.blocks[0].conv.alpha()
        assert (alpha > 0).all() and not torch.allclose(alpha, torch.ones_like(alpha))
        net = fold(m, InputBinarization())
        assert verify(net, m, images)["hidden_bit_mismatches"] == 0


def test_dense_after_conv_is_permuted_to_yxc(monkeypatch):
    """The dense layer's columns must be reordered from torch's (c, y, x) to (y, x, c): skipping
    the permutation is caught by the verification."""
    m = _model("2x6x6-4c3-9-3")
    images = np.random.default_rng(3).integers(0, 256, (300, 72)).astype(np.uint8)
    net = fold(m, InputBinarization())
    assert verify(net, m, images)["hidden_bit_mismatches"] == 0
    monkeypatch.setattr(F, "to_yxc", lambda w, shape: w)
    wrong = fold(m, InputBinarization())
    r = verify(wrong, m, images)
    assert r["hidden_bit_mismatches_per_layer"][0] == 0 and r["hidden_bit_mismatches_per_layer"][1] > 0


def test_uint8_mlp_folds_exactly():
    m = _model("30-12-4", raw_input=True)
    net = fold(m, InputBinarization("uint8"))
    assert net.layers[0].in_bits == 8 and net.input == InputScheme("uint8")
    assert net.layers[0].thresholds.max() <= 30 * 255 + 1
    images = np.random.default_rng(4).integers(0, 256, (500, 30)).astype(np.uint8)
    assert verify(net, m, images)["hidden_bit_mismatches"] == 0
    with pytest.raises(FoldError, match=r"built for uint8 input, not 'threshold'"):
        fold(m, InputBinarization("threshold"))


# --- the golden model against a direct implementation of the definitions --------------------

def naive_cnn(net, values):
    """+-1 (or pixel) arithmetic on (N, C, H, W) arrays, written from the docstrings."""
    c, h, w = net.in_shape
    x = values.reshape(len(values), h, w, c).transpose(0, 3, 1, 2).astype(np.int64)
    for layer in net.layers:
        if isinstance(layer, ConvLayer):
            p, k = layer.padding, layer.kernel
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=layer.pad_value)
            wt = layer.weights.transpose(0, 3, 1, 2)                      # (out, in, ky, kx)
            oc, oh, ow = layer.out_shape
            out = np.zeros((len(x), oc, oh, ow), np.int64)
            for y in range(oh):
                for xx in range(ow):
                    win = xp[:, :, y:y + k, xx:xx + k]                    # (N, in, k, k)
                    if layer.in_bits == 1:
                        agree = (win[:, None] == wt[None]).sum(axis=(2, 3, 4))
                    else:
                        agree = np.where(wt[None] == 1, win[:, None], 255 - win[:, None]).sum(axis=(2, 3, 4))
                    out[:, :, y, xx] = agree
            x = (out >= layer.thresholds[None, :, None, None]).astype(np.int64)
        elif isinstance(layer, PoolLayer):
            s = layer.size
            ch, oh, ow = layer.out_shape
            win = x[:, :, :oh * s, :ow * s].reshape(len(x), ch, oh, s, ow, s)
            x = np.where(layer.modes[None, :, None, None] == 1, win.min(axis=(3, 5)), win.max(axis=(3, 5)))
        else:
            flat = x.transpose(0, 2, 3, 1).reshape(len(x), -1) if x.ndim == 4 else x
            x = ((flat[:, None, :] == layer.weights[None]).sum(axis=2) >= layer.thresholds).astype(np.int64)
    flat = x.transpose(0, 2, 3, 1).reshape(len(x), -1) if x.ndim == 4 else x
    p = (flat[:, None, :] == net.head.weights[None]).sum(axis=2)
    return np.argmax(2 * p - net.head.n_in + net.head.bias, axis=1)


@pytest.mark.parametrize("backend", backend_names())
@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_golden_equals_the_definitions(seed, raw, backend):
    rng = np.random.default_rng(seed)
    c, h, w, k, ch = 3, 9, 7, 3, 5
    conv = ConvLayer(rng.integers(0, 2, (ch, k, k, c)), rng.integers(0, k * k * c * (255 if raw else 1), ch),
                     (c, h, w), padding=1, pad_value=int(rng.integers(0, 2)) if not raw else 0, in_bits=8 if raw else 1)
    pool = PoolLayer(conv.out_shape, rng.integers(0, 2, ch))
    conv2 = ConvLayer(rng.integers(0, 2, (4, 3, 3, ch)), rng.integers(0, 46, 4), pool.out_shape, padding=1, pad_value=0)
    n_flat = int(np.prod(conv2.out_shape))
    dense = DenseLayer(rng.integers(0, 2, (6, n_flat)), rng.integers(0, n_flat + 2, 6))
    head = OutputHead(rng.integers(0, 2, (3, 6)), rng.integers(-2, 3, 3))
    net = FoldedNetwork((conv, pool, conv2, dense), head, InputScheme("uint8" if raw else "threshold"))
    values = rng.integers(0, 256 if raw else 2, (50, c * h * w)).astype(np.uint8)
    assert np.array_equal(infer(net, values, backend=backend).classes, naive_cnn(net, values))
    assert np.array_equal(infer(net, values, threads=1, batch_size=7, backend=backend).classes,
                          infer(net, values, backend=backend).classes)


# --- network validation, export and summary -------------------------------------------------

def test_network_validation_messages():
    conv = ConvLayer(np.zeros((4, 3, 3, 1), np.uint8), np.zeros(4, np.int64), (1, 6, 6))
    with pytest.raises(NetworkError, match=r"^layer 1: expects input 4x3x3, but layer 0 gives 4x4x4"):
        FoldedNetwork((conv, PoolLayer((4, 3, 3), np.zeros(4, np.uint8))), OutputHead(np.zeros((2, 4), np.uint8), [0, 0]))
    with pytest.raises(NetworkError, match=r"^output head: has 10 inputs, expected 64 \(the outputs of layer 0, flattened\)"):
        FoldedNetwork((conv,), OutputHead(np.zeros((2, 10), np.uint8), [0, 0]))
    with pytest.raises(NetworkError, match=r"^layer 0: has 1-bit inputs, but the 'uint8' input gives 8-bit values"):
        FoldedNetwork((conv,), OutputHead(np.zeros((2, 64), np.uint8), [0, 0]), InputScheme("uint8"))
    with pytest.raises(NetworkError, match=r"^layer: thresholds must be in \[0, 10\] for 9 inputs, found 11 at channel 0"):
        ConvLayer(np.zeros((1, 3, 3, 1), np.uint8), [11], (1, 6, 6))
    with pytest.raises(NetworkError, match=r"^layer: pad_value must be an integer in \[0, 1\] for 1-bit inputs"):
        ConvLayer(np.zeros((1, 3, 3, 1), np.uint8), [1], (1, 6, 6), padding=1, pad_value=-1)
    with pytest.raises(NetworkError, match=r"^layer: modes must be 4 values 0 \(OR\) or 1 \(AND\)"):
        PoolLayer((4, 4, 4), np.zeros(3, np.uint8))


def _cnn_net(seed=0):
    rng = np.random.default_rng(seed)
    conv = ConvLayer(rng.integers(0, 2, (5, 3, 3, 2)), rng.integers(0, 19, 5), (2, 9, 9), padding=1, pad_value=1)
    pool = PoolLayer(conv.out_shape, rng.integers(0, 2, 5))
    dense = DenseLayer(rng.integers(0, 2, (7, 80)), rng.integers(0, 82, 7))
    return FoldedNetwork((conv, pool, dense), OutputHead(rng.integers(0, 2, (3, 7)), rng.integers(-4, 5, 3)))


def test_cnn_export_roundtrip_and_manifest(tmp_path):
    net = _cnn_net()
    d = export(net, tmp_path / "n")
    m = json.loads((d / "manifest.json").read_text())
    assert m["format_version"] == 2 and m["topology"] == "2x9x9-5c3p1-mp2-7-3"
    assert [l["kind"] for l in m["layers"]] == ["conv", "pool", "dense", "output"]
    assert m["layers"][0]["out_shape"] == [5, 9, 9] and m["layers"][1]["modes"] == "".join(
        "A" if b else "O" for b in net.layers[1].modes)
    assert sorted(m["files"]) == sorted(["weights.txt", "thresholds.txt"] + [f"rom/layer{k}.{x}.mem" for k in range(3)
                                                                            for x in ("weights", "thresholds")])
    assert load(d) == net and load(d).digest() == net.digest()
    # weights.txt, conv line: for each input position (ky, kx, c), for each output channel
    line = (d / "weights.txt").read_text().splitlines()[0]
    w = net.layers[0].weights
    assert line[:5] == "".join(str(w[o, 0, 0, 0]) for o in range(5))
    assert line[5:10] == "".join(str(w[o, 0, 0, 1]) for o in range(5))


def _edit(d, change):
    m = json.loads((d / "manifest.json").read_text())
    change(m)
    (d / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["layers"][1].update(modes="OOX"), r"field 'layers\[1\]\.modes' must be a string of 5 letters 'O' \(OR\) or 'A'"),
    (lambda m: m["layers"][0].update(n_in=9), r"field 'layers\[0\]\.n_in' must be 18 \(kernel 3x3 over 2 channels"),
    (lambda m: m["layers"][0].update(in_shape=[2, 9]), r"field 'layers\[0\]\.in_shape' must be \[channels, height, width\]"),
    (lambda m: m["layers"][0].update(out_shape=[5, 7, 7]), r"field 'layers\[0\]\.out_shape' \[5, 7, 7\] does not match"),
    (lambda m: m["layers"][0].update(kind="conv3d"), r"field 'layers\[0\]\.kind' must be one of dense, conv, pool, output"),
    (lambda m: m["layers"][0].update(pad_value=-1), r"field 'layers\[0\]\.pad_value' must be an integer >= 0, found -1"),
    (lambda m: m["layers"][0].update(padding=3), r"layer 0: padding must be an integer in \[0, 2\]"),
    (lambda m: m.update(topology="2x9x9-5c3-mp2-7-3"), r"field 'topology' '2x9x9-5c3-mp2-7-3' does not match its layers"),
])
def test_cnn_manifest_fields_are_checked(tmp_path, change, message):
    d = export(_cnn_net(), tmp_path / "n")
    _edit(d, change)
    with pytest.raises(ExportError, match=rf"^{d}/manifest.json: {message}"):
        load(d)


def test_version_1_exports_still_load(tmp_path):
    rng = np.random.default_rng(0)
    net = FoldedNetwork((DenseLayer(rng.integers(0, 2, (4, 6)), rng.integers(0, 8, 4)),),
                        OutputHead(rng.integers(0, 2, (3, 4)), [0, 1, -1]))
    d = export(net, tmp_path / "v1", format_version=1)
    m = json.loads((d / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["topology"] == [6, 4, 3] and m["layers"][0]["kind"] == "hidden"
    assert load(d) == net
    with pytest.raises(ExportError, match=r"format_version 1 holds dense networks with 1-bit input only"):
        export(_cnn_net(), tmp_path / "x", format_version=1)


def test_input_scheme_roundtrips_without_repeats(tmp_path):
    rng = np.random.default_rng(0)
    net = FoldedNetwork((), OutputHead(rng.integers(0, 2, (3, 6)), [0, 0, 0]), InputBinarization("probability", repeats=5))
    assert net.input == InputScheme("probability") and load(export(net, tmp_path / "n")) == net


def test_summary_of_a_cnn():
    net = _cnn_net()
    s = summary(net)
    conv, pool, dense, out = s["layers"]
    assert conv["kind"] == "conv" and conv["in_shape"] == [2, 9, 9] and conv["out_shape"] == [5, 9, 9]
    assert conv["weight_bits"] == 5 * 18 and conv["macs_per_image"] == 5 * 18 * 81 and conv["threshold_bits"] == 5
    assert pool["kind"] == "pool" and pool["out_shape"] == [5, 4, 4] and pool["weight_bits"] == 0
    assert dense["n_in"] == 80 and s["topology"] == "2x9x9-5c3p1-mp2-7-3"
    assert parse(s["topology"]).weight_bits == s["total"]["weight_bits"] == 5 * 18 + 80 * 7 + 7 * 3
    table = summary_table(net)
    assert "conv" in table and "AND" in table and "5x4x4" in table


def test_the_toy_convolution_of_docs_formats_md(tmp_path):
    w0 = np.array([[[1, 0], [1, 1], [0, 0]], [[1, 0], [0, 1], [1, 1]], [[0, 0], [1, 0], [0, 1]]])
    w1 = 1 - w0
    w1[1, 1] = [1, 1]
    net = FoldedNetwork((ConvLayer(np.stack([w0, w1]), [10, 7], (2, 3, 3)),),
                        OutputHead(np.array([[1, 0], [0, 1]]), [0, 1]))
    assert net.spec == "2x3x3-2c3-2"
    assert ["".join(map(str, r)) for r in net.layers[0].matrix] == ["101100100111001001", "010011011100110110"]
    d = export(net, tmp_path / "toy")
    assert (d / "weights.txt").read_text() == "100110100101100101111010010110010110\n1001\n"
    assert (d / "thresholds.txt").read_text() == "10\n7\n0\n1\n"
    assert (d / "rom/layer0.weights.mem").read_text() == "100100111001001101\n011011001110110010\n"
    assert (d / "rom/layer0.thresholds.mem").read_text() == "0000000a\n00000007\n"
    x = np.array([[int(c) for c in "101101100111001001"]], np.uint8)
    r = infer(net, x, return_layers=True)
    assert r.activations[0].ravel().tolist() == [1, 0] and r.scores.tolist() == [[2, -1]] and r.classes.tolist() == [0]


def test_cli_trains_folds_and_summarises_a_cnn(tmp_path, capsys, mnist_dir):
    from bnncore.cli import main
    data = ["--data-dir", str(mnist_dir.parent)]
    assert main(["train", "--topology", "1x28x28-6c3p1-mp2-10", "--input", "uint8", "--pool-order", "before",
                 "--epochs", "1", "--limit", "2000", "--val-size", "500", "-o", str(tmp_path / "run"), *data]) == 0
    assert main(["fold", str(tmp_path / "run" / "best.pt"), "-o", str(tmp_path / "net"), *data]) == 0
    out = capsys.readouterr().out
    assert "0 class mismatches, 0 of 58,800,000 hidden bits differ" in out
    assert load(tmp_path / "net").spec == "1x28x28-6c3p1-mp2-10"
    assert main(["summary", str(tmp_path / "net")]) == 0
    assert "conv/8b" in capsys.readouterr().out
    # a 3x3 window of one channel: 9 cycles per position at least
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "rtl"), "--target-cycles", "256"]) == 2
    assert "layer 0: no folding of its 9 inputs at 784 positions reaches 256 cycles per image" in capsys.readouterr().err
    assert not (tmp_path / "rtl").exists()
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "rtl"), "--no-vhdl"]) == 0
    rtl = json.loads((tmp_path / "rtl" / "rtl.json").read_text())
    assert rtl["spec"] == "1x28x28-6c3p1-mp2-10" and rtl["timing"]["cycles_per_image"] == 7056
    capsys.readouterr()
    assert main(["sim", str(tmp_path / "rtl"), str(tmp_path / "net"), "--sim", "icarus", "--images", "3",
                 "-o", str(tmp_path / "sim"), *data]) == 0
    assert "| icarus | cocotb | 1x28x28-6c3p1-mp2-10 | 3 | 0 |" in capsys.readouterr().out


def test_import_reads_a_cnn_from_seed_format_files(tmp_path, capsys):
    from bnncore.cli import main
    rng = np.random.default_rng(5)
    conv = ConvLayer(rng.integers(0, 2, (3, 3, 3, 1)), rng.integers(0, 11, 3), (1, 8, 8), padding=1, pad_value=0)
    pool = PoolLayer(conv.out_shape, np.zeros(3, np.uint8))
    net = FoldedNetwork((conv, pool), OutputHead(rng.integers(0, 2, (4, 48)), rng.integers(-3, 4, 4)))
    d = export(net, tmp_path / "n")
    assert main(["import", str(d / "weights.txt"), str(d / "thresholds.txt"), "--topology", "1x8x8-3c3p1-mp2-4",
                 "--pad-value", "-1", "-o", str(tmp_path / "imported")]) == 0
    assert load(tmp_path / "imported") == net
    assert main(["import", str(d / "weights.txt"), str(d / "thresholds.txt"), "--topology", "1x8x8-3c3p1-mp2-5",
                 "-o", str(tmp_path / "wrong")]) == 2
    assert "weight characters, expected" in capsys.readouterr().err and not (tmp_path / "wrong").exists()


def test_hardware_runs_uint8_input(tmp_path):
    """An MLP on 8-bit pixels: its first engine sums weighted bit planes, as the golden model
    does, for every class and score (Icarus)."""
    from bnncore import api
    rng = np.random.default_rng(6)
    net = FoldedNetwork((DenseLayer(rng.integers(0, 2, (4, 6)), rng.integers(0, 6 * 255, 4), in_bits=8),),
                        OutputHead(rng.integers(0, 2, (2, 4)), [0, 0]), InputScheme("uint8"))
    rtl = api.generate(net, tmp_path / "rtl", fold=[(3, 4), (1, 2)], vhdl=False)
    images = rng.integers(0, 256, (20, 6)).astype(np.uint8)
    r = api.simulate(rtl, net, images, sim="icarus", build_dir=tmp_path / "sim")
    assert r["mismatches"] == 0 and r["images"] == 20
