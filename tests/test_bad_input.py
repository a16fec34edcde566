"""The bad-input corpus: what a careless or hostile user can hand the flow.

Every case is made by the test (no committed binaries) and checks the exit status, the
message (an anchored regex naming the file and the field), that nothing outside the output
directory changed and that nothing was left half-written.
"""

import gzip
import json
import re
import shutil
import struct

import numpy as np
import pytest

from bnncore.cli import main
from bnncore.data import DataError, fetch, load_dataset, read_idx
from bnncore.exports import ExportError, export, import_files, load
from bnncore.fileio import sha256_file
from bnncore.network import FoldedLayer, FoldedNetwork, OutputHead


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root):
    """{relative path: content} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def no_temporaries(root):
    return [p.name for p in root.rglob(".*") if p.name != ".bnncore-output"] == []


def small_net(bias=(3, -2, 0), seed=0, sizes=(12, 7)):
    rng = np.random.default_rng(seed)
    n_in, hidden = sizes
    return FoldedNetwork((FoldedLayer(rng.integers(0, 2, (hidden, n_in)), rng.integers(0, n_in + 2, hidden)),),
                         OutputHead(rng.integers(0, 2, (len(bias), hidden)), np.array(bias)))


def refused(capsys, tmp_path, argv, message, code=2):
    """Run ``argv``: exit status ``code``, ``message`` matched at the start of stderr, no
    traceback, nothing changed under ``tmp_path`` but what the caller allows."""
    before = snapshot(tmp_path)
    got, _, err = run(capsys, *argv)
    assert got == code, err
    assert re.match(message, err), err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before
    return err


# --- output directories: never lose what we did not write -----------------------------------

def test_export_refuses_a_foreign_directory(tmp_path, capsys):
    (tmp_path / "mine" / "sub").mkdir(parents=True)
    (tmp_path / "mine" / "sub" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match=rf"^{tmp_path}/mine: exists, is not empty and was not written by bnn fold, export or import; refusing"):
        export(small_net(), tmp_path / "mine")
    assert (tmp_path / "mine" / "sub" / "notes.txt").read_text() == "keep me" and no_temporaries(tmp_path)


def test_export_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ExportError, match=rf"^{tmp_path}/f: exists and is not a folder"):
        export(small_net(), tmp_path / "f")
    assert (tmp_path / "f").read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_export_refuses_an_export_holding_other_files(tmp_path):
    d = export(small_net(), tmp_path / "net")
    (d / "best.pt").write_bytes(b"the checkpoint being exported")
    with pytest.raises(ExportError, match=rf"^{d}: holds files that bnn fold, export or import did not write "
                                          r"\(best\.pt\)"):
        export(small_net(seed=1), d)
    assert (d / "best.pt").exists() and load(d) == small_net()


def test_export_replaces_an_earlier_export(tmp_path):
    d = export(small_net(), tmp_path / "net")
    export(small_net(seed=1), d)
    assert load(d) == small_net(seed=1) and no_temporaries(tmp_path)


def test_train_refuses_an_earlier_run(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes(b"an earlier model")
    refused(capsys, tmp_path, ["train", "--epochs", "1", "-o", tmp_path / "run"],
            rf"^bnn train: error: {tmp_path}/run: holds an earlier run \(best\.pt\); continue it with --resume, "
            "replace it with --force")


def test_rtl_is_swapped_in_whole(tmp_path, monkeypatch):
    pytest.importorskip("amaranth")
    from bnncore.hw import generate as G
    from bnncore.hw.plan import make_plan
    net = small_net()
    plan = make_plan(net.topology, [(7, 12), (3, 7)])
    out = G.generate(net, plan, tmp_path / "rtl")
    before = snapshot(out)
    # a failure half-way (a kill, a tool crash) leaves the earlier design as it was
    monkeypatch.setattr(G, "write_rom_files", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        G.generate(small_net(seed=1), plan, out)
    assert snapshot(out) == before and no_temporaries(tmp_path)
    monkeypatch.undo()
    # --no-vhdl over a design with VHDL: no VHDL of the older design is left behind
    G.generate(net, plan, out, vhdl=False)
    assert not list(out.glob("*.vhd")) and json.loads((out / "rtl.json").read_text())["files"]["vhdl"] == []
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.v").write_text("// mine")
    with pytest.raises(G.GenerateError, match=rf"^{tmp_path}/other: exists, is not empty and was not written by bnn rtl"):
        G.generate(net, plan, tmp_path / "other")


# --- silently wrong hardware ----------------------------------------------------------------

def test_output_bias_width_comes_from_the_network(tmp_path):
    pytest.importorskip("amaranth")
    from bnncore.hw.generate import generate, rom_images
    from bnncore.hw.plan import bias_bits_for, make_plan
    net = small_net(bias=(40000, 32768, -32769))
    with pytest.raises(ValueError, match=r"^output bias 40000 of class 0 does not fit the plan's bias_bits=16 "
                                         r"\(signed range \[-32768, 32767\]\); make the plan with bias_bits=17"):
        generate(net, make_plan(net.topology, [(7, 12), (3, 7)]), tmp_path / "rtl")
    assert bias_bits_for(net) == 17 and bias_bits_for(small_net()) == 16
    plan = make_plan(net.topology, [(7, 12), (3, 7)], bias_bits=bias_bits_for(net))
    width, words = rom_images(net, plan)["t1"]
    values = [(words[0] >> (17 * c)) & ((1 << 17) - 1) for c in range(3)]
    assert [v - (1 << 17) if v >> 16 else v for v in values] == [40000, 32768, -32769]


def test_bnn_rtl_takes_the_bias_width_from_the_network(tmp_path, capsys):
    pytest.importorskip("amaranth")
    export(small_net(bias=(40000, -5, 0)), tmp_path / "net")
    code, out, err = run(capsys, "rtl", tmp_path / "net", "-o", tmp_path / "rtl", "--fold", "7,12;3,7", "--no-vhdl")
    assert code == 0, err
    assert json.loads((tmp_path / "rtl" / "rtl.json").read_text())["bias_bits"] == 17


def test_bnn_rtl_says_where_the_weights_go(tmp_path, capsys):
    pytest.importorskip("amaranth")
    export(small_net(), tmp_path / "net")
    code, out, err = run(capsys, "rtl", tmp_path / "net", "-o", tmp_path / "rtl", "--fold", "1,12;3,7", "--no-vhdl",
                         "--memory", "w0=spram", "--device", "up5k")
    assert code == 0, err
    assert ("weights placed: w0 in SPRAM; the bitstream cannot initialise w0: build it for a board (bnn synth --board "
            "NAME, writable) and load the network after each power-up (bnn load)") in out
    assert "| w0: 1 SPRAM block," in out


# --- export directories: checked, and nothing outside them read ----------------------------

def _manifest(d, change):
    m = json.loads((d / "manifest.json").read_text())
    change(m)
    (d / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["files"].update({"../../etc/passwd": {"sha256": "0" * 64}}),
     r"manifest.json: field 'files' names '\.\./\.\./etc/passwd', which is not a file of an export with 2 layers with weights"),
    (lambda m: m["files"].update({"/etc/passwd": {"sha256": "0" * 64}}),
     r"manifest.json: field 'files' names '/etc/passwd', which is not a file"),
    (lambda m: m.update(files=list(m["files"])), r"manifest.json: field 'files' must be an object"),
    (lambda m: m["layers"][0].pop("n_in"), r"manifest.json: field 'layers\[0\]\.n_in' must be an integer >= 1, found None"),
    (lambda m: m["layers"][1].update(n_out="3"), r"manifest.json: field 'layers\[1\]\.n_out' must be an integer >= 1, found '3'"),
    (lambda m: m.update(topology=[12, 7, 3]), r"manifest.json: field 'topology' must be a topology string"),
    (lambda m: m["files"].pop("rom/layer1.weights.mem"), r"manifest.json: field 'files' has no entry for rom/layer1\.weights\.mem"),
    (lambda m: m.update(input=[1]), r"manifest.json: field 'input' must be an object"),
])
def test_load_validates_the_manifest(tmp_path, change, message):
    d = export(small_net(), tmp_path / "net")
    _manifest(d, change)
    with pytest.raises(ExportError, match=rf"^{d}/{message}"):
        load(d)


def test_rom_files_are_checked_against_weights_txt(tmp_path):
    d = export(small_net(), tmp_path / "net")
    rom = d / "rom" / "layer0.weights.mem"
    lines = rom.read_text().splitlines()
    lines[0] = "".join("1" if c == "0" else "0" for c in lines[0])
    rom.write_text("\n".join(lines) + "\n")
    _manifest(d, lambda m: m["files"]["rom/layer0.weights.mem"].update(sha256=sha256_file(rom)))
    with pytest.raises(ExportError, match=rf"^{rom}: does not hold the network of weights.txt and thresholds.txt"):
        load(d)


@pytest.mark.parametrize("text, message", [
    (b"1_0", r"'1_0' is not a decimal integer"),
    (b"+5", r"'\+5' is not a decimal integer"),
    ("\u0661\u0662".encode(), r"'\u0661\u0662' is not a decimal integer"),
    (b"\xff\xfe", r"'\\xff\\xfe' is not a decimal integer"),
    (b"1" + b"0" * 30, r"1000000000000000000000000000000 is out of range"),
])
def test_integers_are_parsed_strictly(tmp_path, capsys, text, message):
    net = small_net()
    d = export(net, tmp_path / "net")
    (tmp_path / "t.txt").write_bytes(b"\n".join([text] + (d / "thresholds.txt").read_bytes().split()[1:]))
    refused(capsys, tmp_path, ["import", d / "weights.txt", tmp_path / "t.txt", "--topology", "12-7-3",
                               "-o", tmp_path / "imported"],
            rf"^bnn import: error: {tmp_path}/t\.txt: line 1 \(layer 0, neuron 0\): {message}")


def test_import_error_names_the_users_file(tmp_path):
    d = export(small_net(), tmp_path / "net")
    (tmp_path / "t.txt").write_text("9999\n" * 10)
    with pytest.raises(ExportError, match=rf"^{tmp_path}/t\.txt: line 1 \(layer 0, neuron 0\): threshold 9999 out of range"):
        import_files(d / "weights.txt", tmp_path / "t.txt", "12-7-3", small_net().input, tmp_path / "out")


# --- data -----------------------------------------------------------------------------------

def _idx(dims, payload=b""):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def test_damaged_gzip_and_absurd_idx(tmp_path):
    good = gzip.compress(_idx([3], b"\x01\x02\x03"))
    damaged = good[:12] + bytes(b ^ 0x5A for b in good[12:-8]) + good[-8:]
    (tmp_path / "d.gz").write_bytes(damaged)
    with pytest.raises(DataError, match=rf"^{tmp_path}/d\.gz: corrupt gzip stream"):
        read_idx(tmp_path / "d.gz")
    (tmp_path / "huge").write_bytes(_idx([2**32 - 1] * 4))
    with pytest.raises(DataError, match=rf"^{tmp_path}/huge: data truncated: dimensions \(4294967295, "):
        read_idx(tmp_path / "huge")


def test_fetch_goes_on_to_the_next_mirror_after_a_damaged_download(tmp_path, mnist_dir):
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir()
    good.mkdir()
    for f in mnist_dir.iterdir():
        raw = f.read_bytes()
        shutil.copyfile(f, good / f.name)
        (bad / f.name).write_bytes(raw[:20] + bytes(b ^ 0x5A for b in raw[20:200]) + raw[200:])
    folder = fetch("mnist", tmp_path / "dest", mirrors=[bad.as_uri(), good.as_uri()], log=lambda *a: None)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in mnist_dir.iterdir())
    assert load_dataset("mnist", folder=folder).test_labels.shape == (10000,)


def test_labels_out_of_range(tmp_path, mnist_dir):
    d = tmp_path / "mnist"
    d.mkdir()
    for f in mnist_dir.iterdir():
        shutil.copyfile(f, d / f.name)
    raw = bytearray(gzip.decompress((d / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[8 + 17] = 12
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=rf"^{d}/t10k-labels-idx1-ubyte\.gz: label 12 at index 17 is out of range"):
        load_dataset("mnist", folder=d)


# --- checkpoints ----------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", r"not a bnncore checkpoint \(torch\.load failed: "),
    (b"PK\x03\x04 not a zip", r"not a bnncore checkpoint \(torch\.load failed: "),
])
def test_broken_checkpoints(tmp_path, capsys, content, message):
    (tmp_path / "x.pt").write_bytes(content)
    refused(capsys, tmp_path, ["fold", tmp_path / "x.pt", "-o", tmp_path / "out"],
            rf"^bnn fold: error: {tmp_path}/x\.pt: {message}")


def test_checkpoint_without_config(tmp_path, capsys):
    import torch
    from bnncore.training import CHECKPOINT_FORMAT
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1}, tmp_path / "x.pt")
    refused(capsys, tmp_path, ["export", tmp_path / "x.pt", "-o", tmp_path / "out"],
            rf"^bnn export: error: {tmp_path}/x\.pt: field 'config' and field 'model' must be present")


# --- command-line values --------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--fold", "0,12;3,7"], r"folding: layer 0: PE must be a positive integer, not 0"),
    (["--fold=-1,12;3,7"], r"--fold '-1,12;3,7': layer 0's '-1,12' is not PE,SIMD"),
    (["--fold", "8,12;3,7"], r"folding: layer 0: PE must be at most the layer's 7 neurons, not 8"),
    (["--fold", "7,13;3,7"], r"folding: layer 0: SIMD must be at most the layer's 12 inputs, not 13"),
    (["--fold", "2,196,5"], r"--fold '2,196,5': layer 0's '2,196,5' is not PE,SIMD"),
    (["--fold", "7,12"], r"folding needs one \(PE, SIMD\) per layer: 2 for 12-7-3, got 1"),
    (["--memory", "w0"], r"--memory: 'w0' is not w<layer>=<kind> \(e.g. w0=spram\), 'auto' or 'none'"),
    (["--memory", "w2=spram"], r"--memory: the plan has weight memories w0 to w1, not w2"),
    (["--memory", "w0=spram", "--device", "ecp5-25f"], r"memory kind 'spram': ecp5-25f \(ECP5\) has none besides "
                                                      r"block RAM; place the weights with --memory none"),
    (["--memory", "auto"], r"--memory auto places weights to fit a device: give --device NAME"),
])
def test_rtl_folding_errors(tmp_path, capsys, args, message):
    export(small_net(), tmp_path / "net")
    refused(capsys, tmp_path, ["rtl", tmp_path / "net", "-o", tmp_path / "rtl", *args],
            rf"^bnn rtl: error: {message}")


@pytest.mark.parametrize("argv, message", [
    (["rtl", "NET", "--target-cycles", "0"], r"argument --target-cycles: must be at least 1, not 0"),
    (["rtl", "NET", "--banks", "1"], r"argument --banks: must be in \[2, 16\] \(each bank buffers a whole layer "
                                     r"output\), not 1"),
    (["rtl", "NET", "--banks", "100000"], r"argument --banks: must be in \[2, 16\]"),
    (["rtl", "NET", "--out-depth", "0"], r"argument --out-depth: must be in \[1, 1,024\]"),
    (["rtl", "NET", "--out-depth", "100000000"], r"argument --out-depth: must be in \[1, 1,024\] \(each entry is an "
                                                 r"output word of flip-flops\), not 100000000"),
    (["train", "--threads", "100000"], r"argument --threads: must be in \[0, 256\] \(each thread takes memory"),
    (["train", "--seed", "99999999999999999999"], r"argument --seed: must be in \[0, 4,294,967,295\]"),
    (["sim", "RTL", "NET", "--seed", "-1"], r"argument --seed: must be in \[0, 4,294,967,295\]"),
    (["sim", "RTL", "NET", "--jobs", "100000"], r"argument --jobs: must be in \[1, 256\]"),
    (["synth", "RTL", "--seed", "99999999999999999999"], r"argument --seed: must be in \[0, 4,294,967,295\]"),
    (["run", "NET", "--port", "x", "--timeout", "nan"], r"argument --timeout: must be a number of seconds in "
                                                         r"\(0, 3600\], not nan"),
    (["run", "NET", "--port", "x", "--timeout", "inf"], r"argument --timeout: must be a number of seconds"),
    (["load", "RTL", "NET", "--port", "x", "--timeout", "-1"], r"argument --timeout: must be a number of seconds"),
    (["experiment", "batchnorm", "--threads", "100000"], r"argument --threads: must be in \[1, 256\]"),
    (["sim", "RTL", "NET", "--images", "-5"], r"argument --images: must be at least 0, not -5"),
    (["sim", "RTL", "NET", "--gap", "1.5"], r"argument --gap: must be in \[0, 1\)"),
    (["sim", "RTL", "NET", "--stall", "1.0"], r"argument --stall: must be in \[0, 1\)"),
    (["synth", "RTL", "--freq", "-3"], r"argument --freq: must be a clock in MHz"),
])
def test_option_ranges(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and re.search(rf"bnn {argv[0]}: error: {message}", capsys.readouterr().err)


def test_sweep_and_train_values(tmp_path, capsys):
    export(small_net(), tmp_path / "net")
    refused(capsys, tmp_path, ["sweep", tmp_path / "net", "--targets", "0", "-o", tmp_path / "sw"],
            r"^bnn sweep: error: --targets '0' does not parse: expected positive cycles per image")
    refused(capsys, tmp_path, ["train", "--limit", "-49000", "-o", tmp_path / "run"],
            r"^bnn train: error: limit must be a non-negative integer, not -49000")


def test_rtl_refuses_what_will_not_build(tmp_path, capsys):
    pytest.importorskip("amaranth")
    net = small_net(sizes=(784, 16), bias=tuple(range(10)))
    export(net, tmp_path / "net")
    refused(capsys, tmp_path, ["rtl", tmp_path / "net", "-o", tmp_path / "rtl", "--target-cycles", "1"],
            r"^bnn rtl: error: layer 0: no folding of its 784 inputs reaches 1 cycles per image: with at most 256 "
            r"input values per cycle \(SIMD\) it takes at least 4; ask for 4 or more cycles per image$")
    refused(capsys, tmp_path, ["rtl", tmp_path / "net", "-o", tmp_path / "rtl", "--fold", "16,784;10,16"],
            r"^bnn rtl: error: the engines have 12,704 XNOR bits \(PE x SIMD over the layers\); generating them "
            r"takes Yosys about 3,861 MiB")
    big = FoldedNetwork((FoldedLayer(np.zeros((600, 784), np.uint8), np.zeros(600, np.int64)),),
                        OutputHead(np.zeros((10, 600), np.uint8), np.zeros(10, np.int64)))
    export(big, tmp_path / "big")
    refused(capsys, tmp_path, ["rtl", tmp_path / "big", "-o", tmp_path / "rtl", "--device", "up5k", "--memory", "none",
                               "--fold", "1,16;1,1"],
            r"^bnn rtl: error: the design will not fit up5k: its ROMs hold [\d,]+ bits, the iCE40UP5K-SG48's 30 "
            r"block RAMs 122,880: [\d,]+ bits \(\d+%\) too many")
    # with its weights in SPRAM where block RAM is too small, it fits at a slower folding
    refused(capsys, tmp_path, ["rtl", tmp_path / "big", "-o", tmp_path / "rtl", "--device", "up5k"],
            r"^bnn rtl: error: the folding for 256 cycles per image does not fit up5k by the cost model .* the fastest "
            r"folding that fits takes [\d,]+ cycles per image: ask for --target-cycles \d+$")


# --- RTL directories: checked by sim and synth, nothing written outside -------------------------

@pytest.fixture
def rtl_dir(tmp_path):
    pytest.importorskip("amaranth")
    from bnncore.hw.generate import generate
    from bnncore.hw.plan import make_plan
    net = small_net()
    export(net, tmp_path / "net")
    return generate(net, make_plan(net.topology, [(7, 12), (3, 7)]), tmp_path / "rtl", vhdl=False)


def _rtl_json(d, change):
    info = json.loads((d / "rtl.json").read_text())
    change(info)
    (d / "rtl.json").write_text(json.dumps(info))


@pytest.mark.parametrize("change, message", [
    (lambda i: i["files"]["verilog"].append("../evil.v"), r"field 'files': '\.\./evil\.v' is not a plain file name"),
    (lambda i: i["memories"]["w0"].update(file='w.mem" a; tee -o /tmp/bnn-pwned x'),
     r"field 'memories\.w0\.file': 'w\.mem\" a; tee .*' is not a plain file name"),
    (lambda i: i["memories"]["w0"].update(parameter="W0_FILE(x)"), r"field 'memories\.w0\.parameter' must be an HDL parameter name"),
    (lambda i: i.pop("sha256"), r"no field 'sha256' \(the checksums of its files\)"),
])
def test_synth_refuses_a_crafted_rtl_json(tmp_path, capsys, rtl_dir, change, message):
    _rtl_json(rtl_dir, change)
    refused(capsys, tmp_path, ["synth", rtl_dir, "-o", tmp_path / "synth"],
            rf"^bnn synth: error: {rtl_dir}/rtl\.json: {message}")


def test_synth_and_sim_refuse_a_changed_rom_file(tmp_path, capsys, rtl_dir):
    rom = rtl_dir / "bnn_w0.mem"
    rom.write_text(rom.read_text().replace("0", "1", 1))
    refused(capsys, tmp_path, ["synth", rtl_dir, "-o", tmp_path / "synth"],
            rf"^bnn synth: error: {rom}: sha256 does not match rtl\.json")


def test_synth_checks_the_shape_of_other_rom_files(tmp_path, capsys, rtl_dir):
    other = tmp_path / "roms"
    other.mkdir()
    for f in rtl_dir.glob("*.mem"):
        shutil.copyfile(f, other / f.name)
    (other / "bnn_w1.mem").write_text("0101\n")
    refused(capsys, tmp_path, ["synth", rtl_dir, "--roms", other, "-o", tmp_path / "synth"],
            rf"^bnn synth: error: {other}/bnn_w1\.mem: line 1 is not 21 binary digits")
    (other / "bnn_w1.mem").write_text("0" * 21 + "\n" + "1" * 21 + "\n")
    refused(capsys, tmp_path, ["synth", rtl_dir, "--roms", other, "-o", tmp_path / "synth"],
            rf"^bnn synth: error: {other}/bnn_w1\.mem: 2 lines, expected 1 \(one word per line of the ROM\)$")


def test_ctrl_c_during_training(tmp_path, capsys, monkeypatch):
    import bnncore.training as T

    def interrupted(cfg, out, **kw):
        out.mkdir(parents=True)
        (out / "checkpoint.pt").write_bytes(b"epoch 1")
        raise KeyboardInterrupt
    monkeypatch.setattr(T, "train", interrupted)
    code, _, err = run(capsys, "train", "--epochs", "3", "-o", tmp_path / "run")
    assert code == 130 and "Traceback" not in err
    assert re.match(rf"^bnn train: interrupted; {tmp_path}/run holds the epochs finished so far; continue with "
                    r"the same command and --resume$", err)


def test_path_unset_or_make_missing(monkeypatch, tmp_path):
    pytest.importorskip("cocotb_tools")
    from bnncore.sim import runner
    monkeypatch.delenv("PATH", raising=False)
    monkeypatch.setattr(runner.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(runner.SimulationError, match=r"^make not found: cocotb builds verilator models with make; "
                                                     r"install it: apt-get install make"):
        runner._check_tools(runner.SIMULATORS["verilator"])


def test_synth_refuses_to_write_into_a_foreign_directory(tmp_path, capsys, rtl_dir):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.json").write_text("my own report")
    refused(capsys, tmp_path, ["synth", rtl_dir, "-o", tmp_path / "mine"],
            rf"^bnn synth: error: {tmp_path}/mine: exists, is not empty and was not written by bnn synth")


def test_eval_with_a_manifest_without_dataset(tmp_path, capsys):
    d = export(small_net(), tmp_path / "net", metadata={"dataset": ["x"]})
    refused(capsys, tmp_path, ["eval", d],
            rf"^bnn eval: error: {d}/manifest.json: field 'metadata.dataset' does not name a dataset \(\['x'\]\); "
            "pass --dataset")


def test_atomic_files_get_ordinary_permissions(tmp_path):
    """Written through a temporary file, an output still gets the mode of any new file (umask),
    not mkstemp's owner-only 0600: an export or a report can be shared."""
    import os
    from bnncore.fileio import atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        net = FoldedNetwork((), OutputHead(np.ones((2, 3), np.uint8), [0, 0]))
        export(net, tmp_path / "net")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "net").iterdir() if p.is_file()} == {
        p.name: 0o644 for p in (tmp_path / "net").iterdir() if p.is_file()}
    assert (tmp_path / "net").stat().st_mode & 0o777 == 0o755
