"""Lattice iCE40 (UltraPlus, HX): Yosys ``synth_ice40``, nextpnr-ice40, icepack and icetime
from Debian's icestorm; 4 kbit block RAMs (SB_RAM40_4K) and no distributed RAM.

Amaranth's ``LatticeICE40Platform`` (amaranth.vendor) describes this family too, and the board
tops are built with it (hw/link.py, through amaranth-boards). The accelerator's own flow does
not use its toolchain templates: it sets the ROM files on the deferred top at synthesis time,
keeps the broadcast registers' copies, reports Fmax instead of failing on timing and runs its
tools from PyPI or Debian with paths a person can rerun by hand (``run.sh``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..tools import SynthError, find_tool, which
from .base import Family, MemoryKind, Pll

#: The UltraPlus parts' single-port RAM: 16K words of 16 bits a block, no initial contents.
SPRAM = MemoryKind("spram", "SPRAM", 16384, 16, "spram", ports=1, latency=1, initialised=False)


class ICE40(Family):
    name = "ice40"
    title = "iCE40"
    bram_shapes = ((256, 16), (512, 8), (1024, 4), (2048, 2))   # SB_RAM40_4K read ports
    default_mhz = 25.0
    # nextpnr-ice40 promotes a high-fan-out reset to a global net itself: no reset buffer
    default_router = "router1"
    constraints = "pcf"
    placed_text = "bnn.asc"
    bitstream = "bnn.bin"
    lut_cell = "ICESTORM_LC"
    ram_cell = "ICESTORM_RAM"
    yosys_synth = "synth_ice40"
    yosys_share = "ice40"
    slice_words = 256
    memory_kinds = {"spram": SPRAM}
    packer = "icepack"
    swap_tool = "icebram"

    def tools(self) -> dict:
        return {"nextpnr": [find_tool("nextpnr-ice40", SynthError)], "pack": [find_tool(self.packer, SynthError)]}

    def pack_args(self, device) -> list:
        return [self.placed_text, self.bitstream]

    def pnr_steps(self, device, tools, common, pins_file, free, outreg) -> list:
        pnr = [*tools["nextpnr"], *device.pnr_args, *common, "--pcf", pins_file, *free, "--asc", "bnn.asc"]
        return [("place and route", pnr), ("bitstream", [*tools["pack"], *self.pack_args(device)])]

    def placeholder_pins(self, device, ports) -> str:
        lines = [f"# Pin-out placeholder for {device.part}: no board is assumed, nextpnr places the",
                 "# ports (--pcf-allow-unconstrained). For a board, uncomment and set the pins:"]
        lines += [f"# set_io {p} <pin>" for p in ports]
        return "\n".join(lines) + "\n"

    def summary_cells(self, cells: dict) -> dict:
        def count(*prefixes):
            return sum(v for k, v in cells.items() if any(k.startswith(p) for p in prefixes))
        return {"luts": count("SB_LUT4"), "ffs": count("SB_DFF"), "carries": count("SB_CARRY"),
                "brams": count("SB_RAM40_4K"), "spram": count("SB_SPRAM256KA"), "dsps": count("SB_MAC16")}

    def logic_cells(self, luts, ffs):
        # nextpnr packs a flip-flop with the LUT driving it: about a fifth of them found one in
        # the placed UP5K designs of docs/results.md
        return round(luts + 0.8 * ffs)

    def timing_check(self, device, out: Path) -> dict:
        """icetime: an independent static timing analysis of the placed and routed design."""
        if not (which("icetime") and device.icetime and (out / self.placed_text).is_file()):
            return {}
        r = subprocess.run([which("icetime"), "-d", device.icetime, "-m", "-t", self.placed_text],
                           cwd=out, capture_output=True, text=True)
        m = re.search(r"\(([\d.]+) MHz\)", r.stdout)
        if r.returncode != 0 or not m:
            return {}
        (out / "icetime.log").write_text(r.stdout)
        return {"icetime_fmax_mhz": float(m.group(1))}

    def cell_model_defines(self) -> dict:
        # Icarus 11 has no default values of input ports, which Yosys' models use unless told not to
        return {"NO_ICE40_DEFAULT_ASSIGNMENTS": 1}

    def memory_instance(self, kind, m, name, depth, width, addr, data, write):
        """SB_SPRAM256KA blocks, 16 bits of the word each and 16K words deep; a deeper memory's
        rows of blocks are selected by the high address bits (the read data by their value a
        cycle before). A single port: a write takes the address (the accelerator is idle then)."""
        if kind is not SPRAM:
            return super().memory_instance(kind, m, name, depth, width, addr, data, write)
        from amaranth import Array, ClockSignal, Instance, Mux, Signal
        en, waddr, wdata = write
        abits = max(1, (depth - 1).bit_length())
        a = Signal(max(14, abits), name=f"{name}_a")
        m.d.comb += a.eq(Mux(en, waddr[:abits], addr[:abits]))
        rows = -(-depth // SPRAM.depth)
        row = Signal(range(max(2, rows)), name=f"{name}_row")
        m.d.sync += row.eq(a[14:] if rows > 1 else 0)
        for lane, lo in enumerate(range(0, width, 16)):
            w = min(16, width - lo)
            outs = []
            for r in range(rows):
                q = Signal(16, name=f"{name}_q{r}_{lane}")
                m.submodules[f"{name}_spram{r}_{lane}"] = Instance(
                    "SB_SPRAM256KA", i_ADDRESS=a[:14], i_DATAIN=wdata[lo:lo + w], i_MASKWREN=0b1111,
                    i_WREN=en & (a[14:] == r if rows > 1 else 1), i_CHIPSELECT=1, i_CLOCK=ClockSignal(),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=q)
                outs.append(q[:w])
            m.d.comb += data[lo:lo + w].eq(Array(outs)[row] if rows > 1 else outs[0])

    def pll(self, in_mhz, out_mhz, device=None) -> Pll:
        """icestorm's ``icepll`` search."""
        cmd = [find_tool("icepll"), "-i", f"{in_mhz:g}", "-o", f"{out_mhz:g}", "-q", "-f", "pll.v"]
        _, text = self._pll_tool(cmd, in_mhz, out_mhz)
        got = float(re.search(r"Achieved output frequency:\s+([\d.]+) MHz", text).group(1))
        params = {k: int(re.search(rf"\.{k}\([^)]*\),?\s*// {k} = *(\d+)", text).group(1))
                  for k in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")}
        params["FEEDBACK_PATH"] = "SIMPLE"
        return self._checked(Pll("SB_PLL40_PAD", params, got), in_mhz, out_mhz)

    def pll_instance(self, pll, osc_port, clk, locked, in_mhz):
        from amaranth.hdl import Instance
        # the oscillator's pin is the PLL's own pad on iCE40 boards (pin 35 on the
        # iCEBreaker): the pad feeds the PLL directly, with no input buffer between
        return Instance("SB_PLL40_PAD", **{f"p_{k}": v for k, v in pll.params.items()}, i_PACKAGEPIN=osc_port.io,
                        o_PLLOUTGLOBAL=clk, o_LOCK=locked, i_RESETB=1, i_BYPASS=0)

    def bram_contents(self, text: str) -> dict:
        """{(x, y): 4096 0/1 values} of an ``.asc``'s initialised block RAMs: the 16 lines
        after ``.ram_data x y`` hold 256 bits each, the first line the lowest, each line's last
        hex digit its lowest four."""
        import numpy as np
        lines, out = text.splitlines(), {}
        for k, line in enumerate(lines):
            if line.startswith(".ram_data"):
                bits = np.zeros(4096, np.uint8)
                for row in range(16):
                    value = int(lines[k + 1 + row], 16)
                    bits[row * 256:(row + 1) * 256] = [(value >> i) & 1 for i in range(256)]
                out[tuple(line.split()[1:3])] = bits
        return out

    def write_bram_contents(self, text: str, rams: dict) -> str:
        lines = text.split("\n")
        for k, line in enumerate(lines):
            if line.startswith(".ram_data") and tuple(line.split()[1:3]) in rams:
                bits = rams[tuple(line.split()[1:3])]
                for row in range(16):
                    value = int("".join("01"[b] for b in bits[row * 256:(row + 1) * 256][::-1]), 2)
                    lines[k + 1 + row] = f"{value:064x}"
        return "\n".join(lines)

    def bram_slices(self) -> list:
        """Where a 256-word slice of one ROM bit column sits in a RAM4K, for each read width 16,
        8, 4, 2: a W-bit word's bits interleave over 16 / W lanes of a 16-bit row."""
        import numpy as np
        order = {1: [0], 2: [0, 1], 4: [0, 2, 1, 3], 8: [0, 4, 2, 6, 1, 5, 3, 7]}
        out = []
        for lanes, sub in order.items():
            for base in range(0, 4096, 4096 // lanes):
                for bit in range(0, 16, lanes):
                    out.append(np.array([base + bit + 16 * row + sub[i]
                                         for row in range(256 // lanes) for i in range(lanes)]))
        return out

    def run_swap_tool(self, tool, work, text, frm, to) -> str:
        r = subprocess.run([tool, frm, to], cwd=work, input=text, capture_output=True, text=True)
        if r.returncode != 0:
            raise SynthError(f"icebram: {r.stderr.strip()}")
        return r.stdout


FAMILY = ICE40()
