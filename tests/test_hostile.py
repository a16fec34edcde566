"""Hostile inputs, round 2: every case of the second hardening probe, with the input that
triggered it. No silently wrong hardware after a swap, no data loss, no code run from a
model file, no read outside the build folder, every wait bounded, no tracebacks."""

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bnncore import fileio
from bnncore import link as proto
from bnncore.exports import ExportError, export, load
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer

from .test_bad_input import refused, run, small_net, snapshot

ROOT = Path(__file__).resolve().parents[1]


def cnn(seed=0, *, modes=None, pad_value=1, in_bits=1):
    """A small CNN (2x9x9 -> conv 5c3p1 -> mp2 -> 7 -> 3) whose pools' AND channels, pad value
    and input width can be changed, the weights staying the same."""
    rng = np.random.default_rng(seed)
    top = 19 if in_bits == 1 else 18 * 255
    conv = ConvLayer(rng.integers(0, 2, (5, 3, 3, 2)), rng.integers(0, top, 5), (2, 9, 9), padding=1,
                     pad_value=pad_value if in_bits == 1 else 0, in_bits=in_bits)
    m = rng.integers(0, 2, 5)
    pool = PoolLayer(conv.out_shape, m if modes is None else np.array(modes))
    dense = DenseLayer(rng.integers(0, 2, (7, 80)), rng.integers(0, 82, 7))
    return FoldedNetwork((conv, pool, dense), OutputHead(rng.integers(0, 2, (3, 7)), rng.integers(-4, 5, 3)),
                         input=InputScheme("uint8") if in_bits == 8 else InputScheme())


FOLD = [(5, 2), (7, 5), (3, 7)]


def design(net, fold=FOLD, **options):
    from bnncore.hw.generate import describe
    from bnncore.hw.plan import bias_bits_for, plan_for
    options.setdefault("bias_bits", bias_bits_for(net))
    plan = plan_for(net, fold, **options)
    info = json.loads(json.dumps(describe(plan)))
    info["network"] = {"sha256": net.digest()}
    return plan, info


# --- a swap never leaves wrong hardware ---------------------------------------------------------

BASE = cnn()
#: what differs from BASE -> (the network, its plan options or folding, the property a refusal names)
NETWORK_CHANGES = {
    "pool AND channels": (cnn(modes=1 - np.asarray(BASE.stages[1].modes)), "layer 0 pool 0 AND channels"),
    "pad value": (cnn(pad_value=0), "layer 0 pad value"),
    "8-bit input": (cnn(in_bits=8), "layer 0 input bits"),
}
PLAN_CHANGES = {
    "PE": ({"fold": [(1, 2), (7, 5), (3, 7)]}, "layer 0 PE"),
    "SIMD": ({"fold": [(5, 1), (7, 5), (3, 7)]}, "layer 0 SIMD"),
    "banks": ({"banks": 3}, "banks"),
    "output FIFO": ({"out_depth": 4}, "out_depth"),
    "bias width": ({"bias_bits": 20}, "bias_bits"),
    "shallow engines": ({"pipelined": False}, "pipelined"),
}


def test_the_design_digest_covers_what_the_logic_fixes():
    pytest.importorskip("amaranth")
    from bnncore.hw.swap import design_mismatch
    _, base = design(BASE)
    cases = [(net, {}, prop) for net, prop in NETWORK_CHANGES.values()]
    cases += [(BASE, options, prop) for options, prop in PLAN_CHANGES.values()]
    digests = {proto.design_digest(base)}
    for net, options, prop in cases:
        _, info = design(net, **options)
        digests.add(proto.design_digest(info))
        # bnn synth --swap-weights: the RTL's design against the build's, the property named
        why = design_mismatch(info, dict(base, family="ice40"))
        assert why and why.startswith(f"{prop}: the build has "), (prop, why)
    assert len(digests) == len(cases) + 1                          # every change, another digest
    assert design_mismatch(design(cnn(seed=0))[1], base) is None   # the same design swaps


@pytest.mark.parametrize("change", NETWORK_CHANGES)
def test_a_network_whose_logic_differs_is_refused_by_swap_roms_and_load(change, tmp_path):
    pytest.importorskip("amaranth")
    from bnncore.hw.generate import RtlError, swap_rom_files

    from .test_link_host import FakeBoard
    other, prop = NETWORK_CHANGES[change]
    _, base = design(BASE)
    # bnn sim --swap-roms: the network's ROM files for the RTL's design
    with pytest.raises(RtlError, match=rf"differs from the design .* in what its logic fixes: {prop}: the design has"):
        swap_rom_files(other, base, tmp_path / "roms")
    assert not (tmp_path / "roms").exists()
    # bnn load: into a board of the base design, with the base RTL (its layout) ...
    board = FakeBoard(BASE, base, writable=True)
    with pytest.raises(proto.LinkError, match=rf"cannot run in the board's design .*: .*{prop}: the design has"):
        proto.Link(board).load(other, base)
    # ... or with the other network's own RTL: another design than the board's
    _, info = design(other)
    with pytest.raises(proto.LinkError, match=r"its logic differs"):
        proto.Link(board).load(other, info)
    assert board.writes == [] and board.identities == []


@pytest.mark.parametrize("change", PLAN_CHANGES)
def test_load_refuses_an_rtl_of_another_folding_or_options(change):
    pytest.importorskip("amaranth")
    from .test_link_host import FakeBoard
    options, _ = PLAN_CHANGES[change]
    _, base = design(BASE)
    _, info = design(BASE, **options)
    board = FakeBoard(BASE, base, writable=True)
    with pytest.raises(proto.LinkError, match="its logic differs"):
        proto.Link(board).load(BASE, info)
    assert board.writes == []


def test_load_fails_when_the_board_keeps_the_old_identity():
    pytest.importorskip("amaranth")
    from .test_link_host import FakeBoard

    class Forgetful(FakeBoard):
        """Answers NETWORK but keeps naming the network it had."""
        def write(self, data):
            blob = bytes(self.blob)
            super().write(data)
            self.blob[:] = blob

    _, base = design(BASE)
    other = cnn(seed=1, modes=BASE.stages[1].modes)
    with pytest.raises(proto.LinkError, match=rf"^after loading, the board names network {BASE.digest()[:16]} .*, "
                                              rf"not {other.digest()[:16]} .* the load did not take"):
        proto.Link(Forgetful(BASE, base, writable=True)).load(other, base)
    assert proto.Link(FakeBoard(BASE, base, writable=True)).load(other, base) > 0      # a board that keeps it


@pytest.fixture(scope="module")
def rtl_pair(tmp_path_factory):
    """Generated RTL of BASE, and of a network that differs in its pools' AND channels only."""
    pytest.importorskip("amaranth")
    from bnncore.api import generate
    root = tmp_path_factory.mktemp("pair")
    other = cnn(modes=1 - np.asarray(BASE.stages[1].modes))
    for name, net in (("a", BASE), ("c", other)):
        export(net, root / f"net-{name}")
        generate(root / f"net-{name}", root / f"rtl-{name}", fold=FOLD, vhdl=False)
    return root


def fake_build(root, rtl, family="ice40") -> Path:
    """A folder shaped as a swappable build of ``rtl`` (report.json, swap/rtl.json): what
    --swap-weights checks before it touches a bitstream."""
    built = root / "built"
    shutil.rmtree(built, ignore_errors=True)
    (built / "swap").mkdir(parents=True)
    info = json.loads((rtl / "rtl.json").read_text())
    (built / "swap" / "rtl.json").write_text(json.dumps(dict(info, family=family)))
    (built / "report.json").write_text(json.dumps({"swap": {"placeholder": "swap/placeholder.asc"},
                                                   "files": {"bitstream": "bnn.bin"}}))
    return built


def test_swap_weights_refuses_a_design_whose_pools_differ(rtl_pair, tmp_path, capsys):
    root = rtl_pair
    fake_build(tmp_path, root / "rtl-a")
    refused(capsys, tmp_path, ["synth", root / "rtl-c", "--swap-weights", tmp_path / "built"],
            r"^bnn synth: error: .*rtl-c: another design than the one .*built was built for \(layer 0 pool 0 AND "
            r"channels: the build has \[.*\], the RTL \[.*\]\)")
    # bnn sim --swap-roms refuses the same pair, naming the same property
    code, _, err = run(capsys, "sim", root / "rtl-a", root / "net-c", "--swap-roms", "--images", "1",
                       "--dataset", "mnist", "-o", tmp_path / "sim")
    assert code == 2 and "layer 0 pool 0 AND channels: the design has" in err and "Traceback" not in err


@pytest.mark.parametrize("mangle, message", [
    (lambda b: (b / "swap" / "rtl.json").write_text(json.dumps(dict(json.loads((b / "swap" / "rtl.json").read_text()),
                                                                    family="xilinx"))),
     r"swap/rtl.json: field 'family' must be one of ice40, ecp5, gowin, found 'xilinx'"),
    (lambda b: (b / "swap" / "rtl.json").write_text(json.dumps(dict(json.loads((b / "swap" / "rtl.json").read_text()),
                                                                    device="xc7a35t"))),
     r"swap/rtl.json: field 'device' must be one of up5k, .*, found 'xc7a35t'; rebuild it"),
    (lambda b: (b / "report.json").write_text("[]"), r"report.json: expected a JSON object, found list"),
    (lambda b: (b / "report.json").write_text('{"swap": 1}'), r"report.json: fields 'swap' and 'files' must be "
                                                               r"objects, found 1"),
    (lambda b: (b / "report.json").write_text('{"swap": '), r"report.json: not valid JSON"),
    (lambda b: (b / "swap" / "rtl.json").write_text(
        (b / "swap" / "rtl.json").read_text().replace('"bnn_w0.mem"', '"/etc/passwd"')),
     r"swap/rtl.json: field 'memories.w0.file': '/etc/passwd' is not a plain file name"),
    (lambda b: (b / "swap" / "rtl.json").write_text(
        (b / "swap" / "rtl.json").read_text().replace('"bnn_w0.mem"', '"../../x.mem"')),
     r"swap/rtl.json: field 'memories.w0.file': '../../x.mem' is not a plain file name"),
])
def test_swap_weights_validates_the_build(rtl_pair, tmp_path, capsys, mangle, message):
    built = fake_build(tmp_path, rtl_pair / "rtl-a")
    mangle(built)
    refused(capsys, tmp_path, ["synth", rtl_pair / "rtl-a", "--swap-weights", built], rf"^bnn synth: error: .*{message}")


# --- no data loss: one output rule --------------------------------------------------------------

def user_folder(path: Path) -> dict:
    """A folder of the user's, with names our verbs write."""
    (path / "profile").mkdir(parents=True)
    (path / "profile" / "important.txt").write_text("mine")
    for name in ("report.json", "results.json", "bnn.bin", "rtl.json", "manifest.json", "sweep.json", "build.log"):
        (path / name).write_text(f"my own {name}")
    (path / "swap" / "work").mkdir(parents=True)
    (path / "swap" / "work" / "notes").write_text("mine")
    return snapshot(path)


def test_every_writing_verb_leaves_a_folder_of_user_files_alone(rtl_pair, tmp_path, capsys):
    user = tmp_path / "user"
    before = user_folder(user)
    built = fake_build(tmp_path, rtl_pair / "rtl-a")
    net, rtl = rtl_pair / "net-a", rtl_pair / "rtl-a"
    (tmp_path / "seed").mkdir()
    seed = small_net()
    from bnncore.exports import thresholds_text, weights_text
    (tmp_path / "seed" / "w.txt").write_text(weights_text(seed))
    (tmp_path / "seed" / "t.txt").write_text(thresholds_text(seed))
    exp_root = tmp_path / "exp"
    user_folder(exp_root / "batchnorm")
    verbs = [
        ["rtl", net, "-o", user],
        ["synth", rtl, "--device", "up5k", "-o", user],
        ["synth", rtl, "--swap-weights", built, "-o", user],
        ["sim", rtl, net, "--images", "1", "--dataset", "mnist", "-o", user],
        ["export", net, "--qonnx", user / "m.onnx", "-o", user],
        ["import", tmp_path / "seed" / "w.txt", tmp_path / "seed" / "t.txt", "--topology", "12-7-3", "-o", user],
        ["train", "--epochs", "1", "-o", user],
        ["sweep", net, "--targets", "1024", "-o", user],
        ["experiment", "batchnorm", "--mode", "tiny", "-o", exp_root],
    ]
    for argv in verbs:
        code, _, err = run(capsys, *argv)
        assert code == 2 and "Traceback" not in err, (argv, err)
        assert re.search(r"(refusing|not empty|is already an export|was not written by)", err), (argv, err)
        assert snapshot(user) == before, argv
    assert snapshot(exp_root / "batchnorm") == before
    # a page: an existing file is replaced only when it is an earlier report
    page = tmp_path / "page.html"
    page.write_text("my notes")
    refused(capsys, tmp_path, ["report", tmp_path / "seed", "-o", page],
            rf"^bnn report: error: {page}: exists and is not a bnncore report; refusing to replace it")
    assert run(capsys, "report", tmp_path / "seed", "-o", page, "--force")[0] == 0
    assert run(capsys, "report", tmp_path / "seed", "-o", page)[0] == 0          # its own earlier page
    (tmp_path / "link.html").symlink_to(tmp_path / "seed" / "w.txt")
    refused(capsys, tmp_path, ["report", tmp_path / "seed", "-o", tmp_path / "link.html", "--force"],
            r"^bnn report: error: .*link.html: exists and is not a regular file")


def test_an_output_of_another_verb_is_replaced_only_with_force(tmp_path):
    d = export(small_net(), tmp_path / "net")
    with fileio.new_output(tmp_path / "other", "rtl") as w:
        (w / "rtl.json").write_text("{}")
    # a Python caller is told the keyword argument (bnn, the option: test_bad_input's refusals)
    with pytest.raises(ExportError, match=r"holds the output of bnn rtl, not of bnn fold, export or import; choose "
                                          r"another output folder \(or force=True to replace it\)"):
        export(small_net(), tmp_path / "other")
    export(small_net(seed=1), tmp_path / "other", force=True)
    assert load(tmp_path / "other") == small_net(seed=1) and load(d) == small_net()
    assert fileio.read_marker(tmp_path / "other")["verb"] == "export"


def test_a_second_writer_is_refused(tmp_path):
    with fileio.output_lock(tmp_path / "net"):
        with pytest.raises(ExportError, match=r"net: another bnn command is writing it now; wait for it to end"):
            export(small_net(), tmp_path / "net")
    export(small_net(), tmp_path / "net")                                      # free again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net"]


def test_concurrent_writers_one_refused(tmp_path):
    """Two processes exporting into the same folder at once: one succeeds, the other refuses."""
    code = ("import sys, time, numpy as np; from bnncore import fileio; from bnncore.exports import export; "
            "from tests.test_bad_input import small_net\n"
            "orig = fileio.replace_dir\n"
            "def slow(a, b):\n    time.sleep(1.5); orig(a, b)\n"
            "fileio.replace_dir = slow\n"
            "try:\n    export(small_net(), sys.argv[1]); print('ok')\n"
            "except Exception as e:\n    print('refused', e)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "net")], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outs[0] == "ok" and outs[1].startswith("refused") and "another bnn command is writing it" in outs[1], outs
    assert load(tmp_path / "net") == small_net()


def test_a_writer_killed_between_the_renames_is_recovered(tmp_path):
    """SIGKILL after the old output was moved aside and before the new one took its place: the
    next writer puts the old one back (then replaces it), and no hidden folder is left."""
    export(small_net(), tmp_path / "net")
    code = ("import os, signal, sys; from bnncore import fileio; from bnncore.exports import export; "
            "from tests.test_bad_input import small_net\n"
            "real, calls = os.replace, []\n"
            "def replace(a, b):\n"
            "    calls.append(a)\n"
            "    if len(calls) == 3: os.kill(os.getpid(), signal.SIGKILL)\n"   # marker, old aside, new in
            "    real(a, b)\n"
            "os.replace = replace\n"
            "export(small_net(seed=1), sys.argv[1])\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "net")], cwd=ROOT)
    assert r.returncode == -signal.SIGKILL
    assert not (tmp_path / "net").exists() and len(list(tmp_path.glob(".net.old-*"))) == 1
    fileio.recover(tmp_path / "net")              # the killed writer's lock file stays until the next writer
    assert load(tmp_path / "net") == small_net() and sorted(p.name for p in tmp_path.iterdir()) == [".net.lock", "net"]
    # the same through a verb: the leftovers go, the new output is complete
    (tmp_path / ".net.abc123.tmp").mkdir()
    export(small_net(seed=1), tmp_path / "net")
    assert load(tmp_path / "net") == small_net(seed=1) and sorted(p.name for p in tmp_path.iterdir()) == ["net"]


def test_a_failed_rtl_run_leaves_the_old_output(rtl_pair, tmp_path, monkeypatch):
    from bnncore.hw import generate as G
    out = tmp_path / "rtl"
    shutil.copytree(rtl_pair / "rtl-a", out)
    before = snapshot(out)
    monkeypatch.setattr(G, "write_rom_files", lambda *a, **k: os.kill(os.getpid(), signal.SIGINT))
    # Python's own Ctrl-C handler: under pytest-xdist this once did not raise in the full suite
    # (another test's library may leave SIGINT handled otherwise in the same worker)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            G.generate(BASE, design(BASE)[0], out)
    finally:
        signal.signal(signal.SIGINT, old)
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["rtl"]


# --- no code from a model file ------------------------------------------------------------------

def _tiny_onnx(path: Path, domain: str = "", opset: int = 13, external=False, inputs=4, op="MatMul"):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((inputs, 2), np.float32), "w")
    node = helper.make_node(op, ["x", "w"], ["y"], domain=domain, name="n0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, inputs])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                              + ([helper.make_opsetid(domain, 1)] if domain else []))
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
                  size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def test_import_runs_no_code_a_model_names(tmp_path, capsys, monkeypatch):
    pytest.importorskip("qonnx")
    (tmp_path / "evilmod.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').write('x')\n")
    model = _tiny_onnx(tmp_path / "m.onnx", domain="evilmod", op="Evil")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))               # the model's folder importable, as with python -m
    refused(capsys, tmp_path, ["import", model, "--dataset", "mnist", "-o", tmp_path / "net"],
            r"^bnn import: error: .*m.onnx: node 'n0' \(Evil\) is of domain 'evilmod'; bnncore reads the domains")
    assert not (tmp_path / "pwned").exists()
    _tiny_onnx(tmp_path / "zen.onnx", domain="this", op="Zen")
    code, out, err = run(capsys, "import", tmp_path / "zen.onnx", "--dataset", "mnist", "-o", tmp_path / "net")
    assert code == 2 and "is of domain 'this'" in err and "Zen of Python" not in out + err


@pytest.mark.parametrize("make, message", [
    (lambda p: _tiny_onnx(p, external=True), r"tensor 'w' keeps its data in another file"),
    (lambda p: _tiny_onnx(p, inputs=70000), r"input 'x' has 70,000 values per image, more than 65,536"),
    (lambda p: _tiny_onnx(p, opset=99), r"(qonnx or onnxruntime cannot run the model|not a model qonnx can read)"),
    (lambda p: p.write_bytes(b"\x08\x01garbage" * 10), r"not an ONNX model"),
])
def test_import_of_malformed_models_is_one_line(tmp_path, capsys, make, message):
    pytest.importorskip("qonnx")
    make(tmp_path / "m.onnx")
    refused(capsys, tmp_path, ["import", tmp_path / "m.onnx", "--dataset", "mnist", "-o", tmp_path / "net"],
            rf"^bnn import: error: .*{message}")


@pytest.mark.parametrize("scale", ["1e400", "-1", "nan"])
def test_import_pixel_scale_is_checked(tmp_path, capsys, scale):
    try:
        code, _, err = run(capsys, "import", tmp_path / "m.onnx", "--pixel-scale", scale, "--dataset", "mnist",
                           "-o", tmp_path / "n")
    except SystemExit as e:       # refused by the option's parser
        code, err = e.code, capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and re.search(r"pixel.scale", err), err


# --- no reads outside the build folder ----------------------------------------------------------

def test_report_follows_no_link_and_reads_no_special_file(tmp_path, capsys):
    from bnncore.report import render
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    build = tmp_path / "build"
    run_dir = build / "run"
    run_dir.mkdir(parents=True)
    metrics = {"config": {"dataset": "mnist", "topology": "784-10"}, "epochs": [], "best": {"epoch": 1}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "curve.png").symlink_to(secret)
    (build / "sweep").mkdir()
    (build / "sweep" / "sweep.png").symlink_to("/dev/zero")
    (build / "sweep" / "sweep.json").symlink_to(secret)
    (build / "fifo").mkdir()
    os.mkfifo(build / "fifo" / "metrics.json")
    (build / "zero").mkdir()
    (build / "zero" / "report.json").symlink_to("/dev/zero")
    t0 = time.monotonic()
    page = render(build)
    assert time.monotonic() - t0 < 30
    assert "TOP SECRET" not in page and "VE9QIFNFQ1JFVA" not in page          # nor its base64
    assert "run/metrics.json: not shown (" in page                  # lacks its keys: skipped, said
    code, _, err = run(capsys, "report", build)
    assert code == 0 and "Traceback" not in err and "run/metrics.json: not shown" in err


def test_report_skips_an_export_whose_fold_report_is_malformed(tmp_path, capsys):
    export(small_net(), tmp_path / "b" / "net", metadata={"fold_report": [{"layer": 0}]})
    code, _, err = run(capsys, "report", tmp_path / "b")
    assert code == 0 and "Traceback" not in err and "net/manifest.json: not shown" in err


# --- every wait bounded ---------------------------------------------------------------------------

class Babbler:
    """A board that never answers a frame: ``every`` seconds a byte of ``byte``."""

    def __init__(self, byte=b"\x00", every=0.0):
        self.byte, self.every = byte, every

    def write(self, data):
        pass

    def read(self, n):
        if self.every:
            time.sleep(self.every)
            return self.byte
        return self.byte * n


@pytest.mark.parametrize("board", [Babbler(), Babbler(b"\xb5", 0.0), Babbler(b"\x01", 0.05)])
def test_a_board_streaming_garbage_is_given_up_on(board):
    t0 = time.monotonic()
    with pytest.raises(proto.LinkError, match=r"no answer from the board within 0.3 s|an answer with a bad CRC"):
        proto.Link(board, timeout=0.3).info()
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, 0, 1e9])
def test_link_timeouts_are_checked(timeout):
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds in \(0, 3600\]"):
        proto.Link(Babbler(), timeout=timeout)


@pytest.mark.parametrize("field, value", [("value_bits", 0), ("baud", 0), ("classes", 0), ("score_bits", 0),
                                          ("clock_hz", 0), ("in_width", 0), ("interval", 0)])
def test_info_answers_that_describe_no_design(field, value):
    pytest.importorskip("amaranth")
    _, info = design(BASE)
    dev = proto.parse_info(proto.info_blob(info, 12_000_000, 3_000_000, 512))
    names = ["version", "flags", "clock_hz", "baud", "rx_buffer", "in_width", "in_beats", "value_bits", "out_width",
             "class_bits", "score_bits", "classes", "interval"]
    fields = [getattr(dev, n) for n in names]
    fields[names.index(field)] = value
    blob = proto._INFO_HEAD.pack(*fields, bytes(8), bytes(8), 3) + b"abc"
    with pytest.raises(proto.LinkError, match=rf"^the board's INFO answer is not a design's: field {field} = 0"):
        proto.parse_info(blob)


class _Endless(http.server.BaseHTTPRequestHandler):
    trickle = False

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"\0" if self.trickle else b"\0" * 65536)
                if self.trickle:
                    time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("trickle, message", [(False, r"the mirror sent more than [\d,]+ bytes"),
                                              (True, r"slower than \d+ kB/s: gave up after")])
def test_fetch_stops_a_mirror_that_never_ends(tmp_path, monkeypatch, trickle, message):
    from bnncore import data
    handler = type("H", (_Endless,), {"trickle": trickle})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(data, "MIN_BYTES_PER_SECOND", 1 << 40)       # the time bound: timeout only
    try:
        t0 = time.monotonic()
        with pytest.raises(data.DataError, match=message):
            data.fetch("mnist", tmp_path, mirrors=[f"http://127.0.0.1:{server.server_address[1]}/"], timeout=2,
                       log=lambda s: None)
        assert time.monotonic() - t0 < 30
    finally:
        server.shutdown()
    assert not [p for p in (tmp_path / "mnist").iterdir()]            # nothing half-written


def test_ray_address_where_nothing_listens_fails_at_once():
    from bnncore.cluster import _probe
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"--ray 127.0.0.1:1: nothing answers there"):
        _probe("127.0.0.1:1")
    assert time.monotonic() - t0 < 5


# --- no tracebacks, and the next step said --------------------------------------------------------

def test_the_next_step_is_said(tmp_path, capsys, rtl_pair):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes(b"x")
    refused(capsys, tmp_path, ["rtl", tmp_path / "run" / "best.pt", "-o", tmp_path / "rtl"],
            r"^bnn rtl: error: .*best.pt is a checkpoint, not an export directory: fold it first \(bnn fold ")
    code, _, err = run(capsys, "sim", rtl_pair / "net-a", rtl_pair / "rtl-a", "--images", "1", "--dataset", "mnist",
                       "-o", tmp_path / "sim")
    assert code == 2 and "rtl-a is an RTL directory of bnn rtl, not an export directory" in err
    assert "(the order is RTL, then NET)" in err
    assert "--roms" not in err
    from bnncore.hw.generate import RtlError, load_rtl
    with pytest.raises(RtlError, match=r"net-a is an export directory \(a network\), not an RTL directory: give the "
                                       r"RTL directory of bnn rtl first"):
        load_rtl(rtl_pair / "net-a")


def test_experiment_results_that_are_not_ours(tmp_path, capsys):
    from bnncore.experiments import EXPERIMENTS, _plan
    run_ = _plan(EXPERIMENTS["batchnorm"], "tiny", None)[0]
    folder = tmp_path / "batchnorm" / "runs" / "tiny" / run_.key.replace(" ", "_").replace("=", "")
    folder.mkdir(parents=True)
    fileio.write_marker(tmp_path / "batchnorm", "experiment")
    (folder / "result.json").write_text('{"key": 1}')
    refused(capsys, tmp_path, ["experiment", "batchnorm", "--mode", "tiny", "-o", tmp_path],
            rf"^bnn experiment: error: {folder}/result.json: field 'group' missing")
    (folder / "result.json").write_text('{"key": 1,')
    refused(capsys, tmp_path, ["experiment", "batchnorm", "--mode", "tiny", "-o", tmp_path],
            rf"^bnn experiment: error: {folder}/result.json: not valid JSON")


# --- the docs say what the code does --------------------------------------------------------------

def test_a_uint8_manifest_needs_no_level(tmp_path):
    net = cnn(in_bits=8)
    d = export(net, tmp_path / "net")
    m = json.loads((d / "manifest.json").read_text())
    m["input"] = {"scheme": "uint8"}                                   # as docs/formats.md allows
    (d / "manifest.json").write_text(json.dumps(m))
    assert load(d) == net
    m["input"] = {"scheme": "threshold"}                               # a threshold needs its level
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ExportError, match="threshold level must be an integer"):
        load(d)


def test_documented_hardware_rules():
    from bnncore.hw.layout import threshold_words
    from bnncore.hw.plan import Window, layer_shapes, plan_for
    # line_buffer_rows: a 7-row map gets 8 rows (docs/hardware.md), a 28-row one 8 (2 * 3 + 2)
    assert Window(1, 7, 7, 3, 3).rows == 8 and Window(1, 28, 28, 3, 3).rows == 8
    assert Window(1, 28, 28, 5, 5).rows == 16
    # in a CNN a dense layer after a dense layer reads a one-pixel map: SIMD divides its inputs
    hidden = tuple(s for s in BASE.stages if not isinstance(s, OutputHead))
    net = FoldedNetwork(hidden + (DenseLayer(np.ones((4, 7), np.uint8), np.full(4, 3)),),
                        OutputHead(np.ones((3, 4), np.uint8), np.zeros(3, np.int64)))
    with pytest.raises(TypeError, match=r"layer 3: SIMD must divide the 4 input channels of its window"):
        plan_for(net, [(5, 2), (7, 5), (4, 7), (3, 3)])
    plan_for(net, [(5, 2), (7, 5), (4, 7), (3, 4)])
    # an 8-bit first layer's thresholds reach 255 * n_in + 1 (a padded neuron's)
    first = layer_shapes(cnn(in_bits=8))[0]
    assert first.max_sum == 255 * first.n_in
    fold = replace(first, pe=3)
    width = (255 * first.n_in + 1).bit_length()
    words = threshold_words(np.zeros(5, np.int64), fold, width)     # neurons 3, 4 and a padded one in word 1
    assert words[1] >> (2 * width) == 255 * first.n_in + 1


# --- the simulators are a table -------------------------------------------------------------------

def test_the_simulator_table_is_what_the_cli_and_the_runner_read(capsys):
    from bnncore.cli import build_parser
    from bnncore.sim.simulators import SIMULATORS, simulator
    sim = next(a for a in build_parser()._subparsers._group_actions[0].choices["sim"]._actions
               if "--sim" in a.option_strings)
    assert tuple(sim.choices) == tuple(SIMULATORS)
    assert {s.lang for s in SIMULATORS.values()} <= {"verilog", "vhdl"}
    assert [n for n, s in SIMULATORS.items() if s.native] == ["verilator"]
    with pytest.raises(ValueError, match=r"^sim must be one of verilator, icarus, ghdl, not 'nvc'"):
        simulator("nvc")

def test_simulation_options_that_cannot_run_write_nothing(tmp_path):
    pytest.importorskip("cocotb_tools")
    from bnncore.sim.runner import simulate
    with pytest.raises(ValueError, match=r"the native bench is Verilator's: simulate on icarus with the cocotb bench"):
        simulate("RTL", "NET", np.zeros((1, 4), np.uint8), sim="icarus", bench="native", build_dir=tmp_path / "b")
    with pytest.raises(ValueError, match=r"^sim must be one of verilator, icarus, ghdl, not 'nvc'"):
        simulate("RTL", "NET", np.zeros((1, 4), np.uint8), sim="nvc", build_dir=tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


# --- the contract without Amaranth ----------------------------------------------------------------

BLOCK_AMARANTH = '''
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "amaranth" or name.startswith("amaranth."):
            raise ImportError(f"{name}: not installed here")
sys.meta_path.insert(0, _Block())
'''


def test_load_run_report_and_sim_need_no_amaranth(rtl_pair, tmp_path):
    """The host driver (bnn load, bnn run), the report and the simulation read designs through
    hw/design.py and hw/plan.py: they work where Amaranth is not installed."""
    import inspect

    from .test_link_host import FakeBoard
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    code = BLOCK_AMARANTH + f'''
import json, numpy as np
from pathlib import Path
from bnncore import link as proto
from bnncore.cli import main, run_on_board
from bnncore.exports import load
from bnncore.golden import infer
''' + inspect.getsource(FakeBoard) + f'''
root = Path({str(rtl_pair)!r})
info = json.loads((root / "rtl-a" / "rtl.json").read_text())
net = load(root / "net-a")
board = FakeBoard(net, info, writable=True)
other = load(root / "net-a")
assert proto.Link(board).load(other, info) > 0                                  # bnn load
values = np.random.default_rng(0).integers(0, 2, (5, net.n_inputs)).astype(np.uint8)
r = run_on_board(proto.Link(board), net, values, np.zeros(5, int), "net-a")       # bnn run
assert r["golden_agree"] == 5
assert main(["report", str(root)]) == 0                                           # bnn report
from bnncore.sim.runner import simulate                                            # bnn sim
s = simulate(root / "rtl-a", root / "net-a", values[:3], sim="icarus", build_dir={str(tmp_path / "sim")!r})
assert s["mismatches"] == 0 and s["images"] == 3, s
assert "amaranth" not in sys.modules
print("ok")
'''
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-2000:] + r.stderr[-2000:]
