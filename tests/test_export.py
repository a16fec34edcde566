import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import bnncore.exports as E
from bnncore.fileio import sha256_file
from bnncore.data import InputBinarization
from bnncore.exports import ExportError, export, import_files, load
from bnncore.network import FoldedLayer, FoldedNetwork, OutputHead


def make_net(sizes=(5, 4, 3, 2), seed=0, input=InputBinarization()):
    rng = np.random.default_rng(seed)
    layers = tuple(FoldedLayer(rng.integers(0, 2, (o, i)), rng.integers(0, i + 2, o))
                   for i, o in zip(sizes[:-2], sizes[1:-1]))
    return FoldedNetwork(layers, OutputHead(rng.integers(0, 2, (sizes[-1], sizes[-2])),
                                            rng.integers(-1000, 1000, sizes[-1])), input)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 70), min_size=2, max_size=5), seed=st.integers(0, 2**31),
       scheme=st.sampled_from(["threshold", "probability"]), level=st.integers(0, 256))
def test_round_trip(tmp_path, sizes, seed, scheme, level):
    net = make_net(sizes, seed, InputBinarization(scheme, level))
    assert load(export(net, tmp_path / "net")) == net


def test_weights_txt_seed_order(tmp_path):
    # 2 inputs, 3 neurons: for each input i, for each neuron j, the bit of edge i -> j
    w = np.array([[1, 0], [0, 0], [1, 1]], np.uint8)    # (neurons, inputs)
    net = FoldedNetwork((FoldedLayer(w, [0, 1, 3]),), OutputHead(np.array([[1, 0, 1]]), [7]))
    d = export(net, tmp_path / "n")
    assert (d / "weights.txt").read_text() == "101" "001" "\n" "101\n"
    assert (d / "thresholds.txt").read_text() == "0\n1\n3\n7\n"
    assert (d / "rom" / "layer0.weights.mem").read_text() == "01\n00\n11\n"   # input 0 rightmost
    assert (d / "rom" / "layer0.thresholds.mem").read_text() == "00000000\n00000001\n00000003\n"
    assert (d / "rom" / "layer1.thresholds.mem").read_text() == "00000007\n"


def test_rom_files_encode_the_same_bits(tmp_path):
    net = make_net((70, 33, 9, 4), seed=5)
    d = export(net, tmp_path / "n")
    for k, stage in enumerate(net.stages):
        lines = (d / "rom" / f"layer{k}.weights.mem").read_text().split()
        bits = np.array([[int(ch) for ch in reversed(line)] for line in lines], np.uint8)
        assert np.array_equal(bits, stage.weights)
        words = [int(x, 16) for x in (d / "rom" / f"layer{k}.thresholds.mem").read_text().split()]
        values = stage.thresholds if isinstance(stage, FoldedLayer) else stage.bias
        assert [v - (1 << 32) if v >= 1 << 31 else v for v in words] == values.tolist()


def test_manifest_contents(tmp_path):
    d = export(make_net(), tmp_path / "n", metadata={"dataset": "mnist"})
    m = json.loads((d / "manifest.json").read_text())
    assert m["format"] == "bnncore-folded-network" and m["format_version"] == 2
    assert m["topology"] == "5-4-3-2" and [l["kind"] for l in m["layers"]] == ["dense", "dense", "output"]
    assert m["input"] == {"scheme": "threshold", "level": 128}
    assert m["topology"] == "5-4-3-2" and m["input"] == {"scheme": "threshold", "level": 128}
    assert set(m["files"]) == {"weights.txt", "thresholds.txt"} | {f"rom/layer{k}.{x}.mem" for k in range(3)
                                                                   for x in ("weights", "thresholds")}
    assert m["metadata"]["dataset"] == "mnist" and "sign(0) = +1" in m["conventions"]["sign"]


def _rewrite(path, text, fix_checksum=True):
    path.write_text(text)
    if fix_checksum:
        mpath = path.parent / "manifest.json" if path.parent.name != "rom" else path.parent.parent / "manifest.json"
        m = json.loads(mpath.read_text())
        m["files"][path.relative_to(mpath.parent).as_posix()]["sha256"] = sha256_file(path)
        mpath.write_text(json.dumps(m))


@pytest.mark.parametrize("mangle, message", [
    (lambda d: _rewrite(d / "weights.txt", (d / "weights.txt").read_text()[1:]),
     r"weights.txt: line 1 \(layer 0\) has 19 characters, expected 20 \(5 inputs x 4 neurons\)"),
    (lambda d: _rewrite(d / "weights.txt", "0102" + (d / "weights.txt").read_text()[4:]),
     r"weights.txt: line 1 \(layer 0\), character 4: byte b'2' is not '0' or '1' \(input 0, neuron 3\)"),
    (lambda d: _rewrite(d / "weights.txt", "\n".join((d / "weights.txt").read_text().split("\n")[:2]) + "\n"),
     r"weights.txt: 2 lines, expected 3 \(one per layer with weights\)"),
    (lambda d: _rewrite(d / "thresholds.txt", "9\n" + "\n".join((d / "thresholds.txt").read_text().split("\n")[1:])),
     r"thresholds.txt: line 1 \(layer 0, neuron 0\): threshold 9 out of range \[0, 6\]"),
    (lambda d: _rewrite(d / "thresholds.txt", "x\n" + "\n".join((d / "thresholds.txt").read_text().split("\n")[1:])),
     r"thresholds.txt: line 1 \(layer 0, neuron 0\): 'x' is not a decimal integer"),
    (lambda d: _rewrite(d / "thresholds.txt", "1\n"), r"thresholds.txt: 1 lines, expected 9 \(one per neuron\)"),
    (lambda d: _rewrite(d / "weights.txt", "01"[(d / "weights.txt").read_text()[0] == "0"] + (d / "weights.txt").read_text()[1:], fix_checksum=False),
     r"weights.txt: sha256 [0-9a-f]{64} does not match manifest.json \([0-9a-f]{64}\); the file was changed after export"),
    (lambda d: _rewrite(d / "rom" / "layer1.weights.mem", "0", fix_checksum=False),
     r"rom/layer1.weights.mem: sha256 .* does not match manifest.json"),
    (lambda d: (d / "manifest.json").write_text(json.dumps(dict(json.loads((d / "manifest.json").read_text()), format_version=3))),
     r"manifest.json: format_version 3 is newer than this bnncore reads \(2\); upgrade bnncore"),
    (lambda d: (d / "manifest.json").write_text(json.dumps(dict(json.loads((d / "manifest.json").read_text()), format="onnx"))),
     r"manifest.json: field 'format' must be 'bnncore-folded-network', found 'onnx'"),
    (lambda d: (d / "manifest.json").write_text("{"), r"manifest.json: not valid JSON"),
    (lambda d: (d / "manifest.json").unlink(), r"manifest.json: missing; .* is not a bnncore export directory"),
    (lambda d: (d / "thresholds.txt").unlink(), r"thresholds.txt: missing or not a plain file \(listed in manifest.json\)"),
    (lambda d: (d / "manifest.json").write_text(json.dumps(dict(json.loads((d / "manifest.json").read_text()), topology="5-4-3-3"))),
     r"manifest.json: field 'topology' '5-4-3-3' does not match its layers, which make '5-4-3-2'"),
])
def test_load_rejects_malformed(tmp_path, mangle, message):
    d = export(make_net(), tmp_path / "n")
    mangle(d)
    with pytest.raises(ExportError, match=rf"^{tmp_path}/n/?{message}"):
        load(d)


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    good = make_net(seed=1)
    export(good, tmp_path / "n")
    monkeypatch.setattr(E.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        export(make_net(seed=2), tmp_path / "n")
    with pytest.raises(OSError):
        export(make_net(seed=2), tmp_path / "fresh")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n"]        # no temporary directories left
    assert load(tmp_path / "n") == good                                # the old export is untouched


def test_import_seed_format(tmp_path):
    net = make_net((6, 5, 3), seed=3)
    d = export(net, tmp_path / "n")
    # seed 001 wrote the layers back to back with no line breaks
    (tmp_path / "weights.txt").write_text((d / "weights.txt").read_text().replace("\n", ""))
    (tmp_path / "thr.txt").write_text(" ".join((d / "thresholds.txt").read_text().split()))
    out = import_files(tmp_path / "weights.txt", tmp_path / "thr.txt", "6-5-3", InputBinarization(), tmp_path / "imp")
    assert load(out) == net
    with pytest.raises(ExportError, match=r"weights.txt: 45 weight characters, expected 50 for topology 6-5-4"):
        import_files(tmp_path / "weights.txt", tmp_path / "thr.txt", "6-5-4", InputBinarization(), tmp_path / "x")
