import json
import os
import shutil

import numpy as np
import pytest

from bnncore.golden import infer
from bnncore.hw.generate import generate, write_rom_files, _clean_verilog
from bnncore.hw.plan import make_plan
from bnncore.hw.timing import timing
from bnncore.hw.tools import check_vhdl, lint_verilog

from .iverilog_tb import run_icarus
from .test_accelerator import random_net


def need(tool):
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed (make setup installs it)")
        pytest.skip(f"{tool} is not installed (make setup installs it)")


SIZES = (37, 11, 6, 5)
# none divides its layer: padding everywhere; layer 0's 180-bit weight words are read in two
# column slices (144 + 36 bits), each through its own address
FOLDS = [(6, 30), (3, 4), (2, 3)]


@pytest.fixture(scope="module")
def rtl(tmp_path_factory):
    need("iverilog")
    net = random_net(SIZES, np.random.default_rng(7))
    plan = make_plan(SIZES, FOLDS)
    out = generate(net, plan, tmp_path_factory.mktemp("rtl") / "rtl")
    return net, plan, out


def test_files_and_rtl_json(rtl):
    net, plan, out = rtl
    names = {p.name for p in out.iterdir()}
    assert {"bnn_core.v", "bnn_top.v", "bnn_rom.v", "bnn_core.vhd", "bnn_top.vhd", "bnn_rom.vhd",
            "rtl.json", "bnn_lint.vlt"} <= names
    assert {f"bnn_{k}{i}.mem" for k in "wt" for i in range(3)} <= names
    assert not [n for n in names if n.startswith(".") and n != ".bnncore-output"]     # no temporaries left
    info = json.loads((out / "rtl.json").read_text())
    t = timing(plan)
    assert info["topology"] == list(SIZES)
    assert info["timing"]["latency"] == t.latency and info["timing"]["cycles_per_layer"] == list(t.cycles)
    assert info["ports"]["input"] == {**info["ports"]["input"], "width": 30, "beats_per_image": 2}
    assert info["memories"]["w0"] == {"depth": 4, "width": 180, "bits": 720, "file": "bnn_w0.mem",
                                      "parameter": "W0_FILE", "slices": 4}
    assert info["memories"]["w1"]["slices"] == 1
    assert ".SLICE_BITS(48)" in (out / "bnn_top.v").read_text()
    # the weights are read from the files, not baked into the RTL
    top = (out / "bnn_top.v").read_text()
    assert 'parameter W0_FILE = "bnn_w0.mem"' in top and "$readmemb" in (out / "bnn_rom.v").read_text()
    assert "$readmemb" not in (out / "bnn_core.v").read_text() and "INIT_FILE" in (out / "bnn_top.vhd").read_text()


def test_verilator_lint_clean(rtl, monkeypatch):
    monkeypatch.chdir(rtl[2].parent)
    lint_verilog(rtl[2].name)            # a relative path works too


def test_vhdl_elaborates_in_ghdl(rtl, tmp_path):
    need("ghdl")
    check_vhdl(rtl[2], tmp_path)


def test_icarus_equals_golden_and_rom_files_are_swappable(rtl, tmp_path):
    """The same RTL with two weight sets (files named by parameters) gives both golden answers."""
    net, plan, out = rtl
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, (30, SIZES[0])).astype(np.uint8)
    gold = infer(net, bits, return_layers=True)
    classes, scores = run_icarus(out, bits, tmp_path / "a")
    assert classes.tolist() == gold.classes.tolist() and scores.tolist() == gold.scores.tolist()

    other = random_net(SIZES, np.random.default_rng(8))
    paths = write_rom_files(other, plan, tmp_path / "other")
    gold2 = infer(other, bits, return_layers=True)
    assert (gold2.classes != gold.classes).any()
    classes2, scores2 = run_icarus(out, bits, tmp_path / "b",
                                   overrides={f"{n.upper()}_FILE": str(p) for n, p in paths.items()})
    assert classes2.tolist() == gold2.classes.tolist() and scores2.tolist() == gold2.scores.tolist()


def test_clean_verilog_names():
    text = "wire \\$auto$x:1$2 ;\nwire \\release ;\nassign \\a.b  = \\release ;\nwire _12_;\nwire y12;\n"
    out = _clean_verilog(text)
    assert "\\" not in out and "$" not in out
    assert "wire release_1 ;" in out and "assign a_b  = release_1 ;" in out
    assert "wire yy12;" in out and "wire y12;" in out          # _12_ renamed without clashing


def test_generate_rejects_mismatched_network(tmp_path):
    net = random_net((5, 3, 2), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^network 5-3-2 differs from the design \(5-4-2\) in what its logic fixes: layer 0 outputs: the design has 4, the network 3; layer 1 inputs: the design has 4, the network 3$"):
        generate(net, make_plan((5, 4, 2), [(1, 1), (1, 1)]), tmp_path)


def test_generation_is_reproducible(rtl, tmp_path):
    """The same network and plan give the same files, wherever they are generated (Icarus' VHDL
    names its source's path in comments: the generator's temporary directory)."""
    net, plan, out = rtl
    lines = []
    again = generate(net, plan, tmp_path / "again", log=lines.append)
    # each step says when it starts and how long it took
    assert [l.split(" (")[0].split(":")[0].rstrip(" .") for l in lines] == [
        "Verilog", "Verilog", "VHDL", "VHDL", "ROM files", "ROM files"], lines
    assert all(l.endswith(" ...") for l in lines[::2]) and all(" done in " in l for l in lines[1::2]), lines
    for name in sorted(p.name for p in out.iterdir()):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_deep_rom_in_narrow_column_slices(tmp_path):
    """A ROM of more than 512 words is read in 36-bit column slices (plan.slice_bits), each
    through its own address: layer 0's 40-bit words, 600 deep, are slices of 36 and 4 bits."""
    need("iverilog")
    sizes = (400, 60, 10)
    net = random_net(sizes, np.random.default_rng(3))
    plan = make_plan(sizes, [(2, 20), (2, 20)])
    out = generate(net, plan, tmp_path / "rtl", vhdl=False)
    w0 = json.loads((out / "rtl.json").read_text())["memories"]["w0"]
    assert (w0["depth"], w0["width"], w0["slices"]) == (600, 40, 2)
    assert ".WIDTH(40), .DEPTH(600), .ABITS(10), .SLICE_BITS(36)" in (out / "bnn_top.v").read_text()
    bits = np.random.default_rng(4).integers(0, 2, (6, sizes[0])).astype(np.uint8)
    gold = infer(net, bits, return_layers=True)
    classes, scores = run_icarus(out, bits, tmp_path / "sim")
    assert classes.tolist() == gold.classes.tolist() and scores.tolist() == gold.scores.tolist()


def test_block_ram_estimate_warns_where_the_bits_fit(monkeypatch):
    """A plan whose ROM bits fit the device but whose shapes do not, on a family without a cost
    model (hw/estimate.py; a new family before bench/estimate.py has fitted one): 4,096-bit
    words one deep are 114 Gowin blocks of 1 x 36 (w0), 448 bits 13 (t0), 640 bits 18 (w1),
    160 bits 5 (t1). With the cost model, the plan is refused."""
    from bnncore.errors import GenerateError
    from bnncore.hw import estimate
    from bnncore.hw.generate import check_buildable
    from bnncore.hw.synth import DEVICES
    plan = make_plan((64, 64, 10), [(64, 64), (10, 64)])
    with pytest.raises(GenerateError, match="by the cost model"):
        check_buildable(plan, DEVICES["gw1nr-9"])
    monkeypatch.setattr(estimate, "_costs", lambda: {})
    assert check_buildable(plan, DEVICES["gw1nr-9"]) == [
        "its ROMs take about 150 block RAMs in gw1nr-9's shapes, the device has 26 (124 too many) unless Yosys puts "
        "some in logic; bnn synth will tell"]
    monkeypatch.undo()
    assert check_buildable(make_plan((64, 64, 10), [(4, 16), (2, 16)]), DEVICES["up5k"]) == []
