"""What the flow asks of an FPGA family (``Family``), and the devices it builds for (``Device``).

A family is one module in this package (``ice40``, ``ecp5``) holding everything that differs
between vendors' parts: the Yosys pass, nextpnr and its packer, the constraints file, the cell
names in reports, the gate-level cell models, the PLL, the block RAM's geometry and where its
contents sit in the placed design (for weight swaps). The devices are rows of ``devices.json``.
Nothing outside the family modules branches on a family's name.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..tools import SynthError

__all__ = ["Family", "Device", "Pll", "MemoryKind", "FAMILIES", "BRAM18K_SHAPES", "bram18k_slices"]

#: {name: Family}, filled by hw/families/__init__.py from its registered modules.
FAMILIES: dict = {}


@dataclass(frozen=True)
class Pll:
    """A PLL from the board's oscillator to the design's clock: the primitive, its parameters,
    the frequency it achieves (MHz)."""
    primitive: str
    params: dict
    mhz: float


@dataclass(frozen=True)
class MemoryKind:
    """A kind of memory beside block RAM that a layer's weights can be placed in (a family's
    ``memory_kinds``; ``bnn rtl --memory``): one block's geometry and ports, and how its
    contents get there."""
    name: str               # as --memory and rtl.json name it
    title: str              # as people write it
    depth: int              # words of one block
    width: int              # bits per word of one block
    count: str              # the Device field with how many blocks a part has
    ports: int              # 1: single-ported, a write takes the read's address
    latency: int            # cycles from the address to the data (1, as a block RAM's)
    initialised: bool       # False: the bitstream cannot set its contents; they are loaded at run time

    def blocks(self, depth: int, width: int) -> int:
        """Blocks a memory of ``depth`` words of ``width`` bits takes."""
        return math.ceil(depth / self.depth) * math.ceil(width / self.width)


#: (depth, width) read ports of an 18 kbit block RAM with 9-bit bytes (ECP5's DP16KD, Gowin's
#: BSRAM): 1, 2, 4 bits a word use 8 bits of each byte (16 kbit), 9, 18, 36 all 9.
BRAM18K_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


def bram18k_slices() -> list:
    """Where a 512-word slice of one ROM bit column sits in such a block RAM's contents (2048
    9-bit bytes, as Yosys' INIT and ecpbram lay them out), for each data width 1, 2, 4 (8 bits
    a byte used), 9, 18, 36 (all 9): bit j of the W-bit words of the slice's position."""
    import numpy as np
    out = []
    for width, used, lanes in ((1, 8, 32), (2, 8, 32), (4, 8, 32), (9, 9, 36), (18, 9, 36), (36, 9, 36)):
        for j in range(lanes):
            bn = np.arange(512) * width + j % width + (j // width) * 512 * width
            out.append(bn // used * 9 + bn % used)
    return out


class Family:
    """One FPGA family. Subclasses set the class attributes and implement the methods that
    raise NotImplementedError; the defaults are what most families do."""

    name: str = ""
    title: str = ""                   # as people write it: "iCE40", "ECP5"
    #: (depth, width) configurations of one block RAM's read port
    bram_shapes: tuple = ()
    #: shallow read-write buffers go to distributed (LUT) RAM, not block RAM
    distributed_ram: bool = False
    #: {name: MemoryKind}: where a layer's weights can be placed besides block RAM
    memory_kinds: dict = {}
    #: speed grades nextpnr models (the device table names each part at its first, the slowest)
    speed_grades: tuple = ()
    #: Verilog driving the board top's rst_g from rst_q on a global net (``--global-reset``)
    reset_buffer: str = ""
    default_mhz: float = 25.0
    default_router: str = "router1"
    constraints: str = ""             # suffix of the pin constraints file, without the dot
    placed_text: str = ""             # nextpnr's placed design as text, which the packer reads
    bitstream: str = ""
    lut_cell: str = ""                # nextpnr's utilisation entries of logic cells and block RAMs
    ram_cell: str = ""
    lut_cell_title: str = "logic cells"   # what a report calls lut_cell's placed sites
    yosys_synth: str = ""             # Yosys' synthesis script for the family
    yosys_share: str = ""             # the family's folder in Yosys' share/
    #: words of one block RAM slice of one data bit (weight swaps find them by their contents)
    slice_words: int = 0
    packer: str = ""                  # the bitstream packer (its command name)
    swap_tool: str = ""               # the family's own contents patcher (tests' reference)

    # --- synthesis and place and route
    def tools(self) -> dict:
        """{"nextpnr": command, "pack": command}; SynthError when one is missing."""
        raise NotImplementedError

    def pack_args(self, device: Device | None) -> list:
        """The packer's (``packer``) arguments from ``placed_text`` to ``bitstream`` in the
        build folder (``device``: the build's, None for an older build that does not name it);
        SynthError when the family's packer needs the device."""
        raise NotImplementedError

    def pnr_steps(self, device: Device, tools: dict, common: list, pins_file: str, free: list,
                  outreg: bool) -> list:
        """[(what, command)] after synthesis: place and route (``common``: nextpnr's options for
        every family), the bitstream, and any netlist pass between."""
        raise NotImplementedError

    def placeholder_pins(self, device: Device, ports: list) -> str:
        """A constraints file that assumes no board: nextpnr places the ports."""
        raise NotImplementedError

    def summary_cells(self, cells: dict) -> dict:
        """{"luts", "ffs", "carries", "brams", "dsps", ...} from Yosys' cell counts."""
        raise NotImplementedError

    def logic_cells(self, luts: int, ffs: int) -> int | None:
        """The logic sites a design of ``luts`` LUT4s and ``ffs`` flip-flops fills, where a site
        holds a LUT and a flip-flop together and that, not the LUTs, fills the device (iCE40);
        None where LUTs and flip-flops are budgets of their own."""
        return None

    def timing_check(self, device: Device, out: Path) -> dict:
        """Report entries of an independent timing analysis of the placed design in ``out``."""
        return {}

    # --- gate-level simulation
    def cell_models(self, share: Path, out_dir) -> Path:
        """Yosys' simulation models of the family's cells, as a file simulators read."""
        return share / "cells_sim.v"

    def cell_model_defines(self) -> dict:
        return {}

    #: the synthesized netlist is rewritten (``netlist_pass``) before place and route
    netlist_rewrites: bool = False

    def netlist_pass(self, out: Path, netlist_json: str, bram_outreg: bool):
        """Rewrite the synthesized netlist (Yosys JSON) in ``out`` as place and route gets it."""

    def memory_instance(self, kind: MemoryKind, m, name: str, depth: int, width: int, addr, data, write):
        """Add to ``m`` a memory ``name`` of ``kind`` built from the family's primitives: ``depth``
        words of ``width`` bits, read at ``addr`` (data one cycle later), written by ``write``
        (enable, address, word)."""
        raise SynthError(f"{self.title} has no memory kind {kind.name!r}")

    # --- boards
    def pll(self, in_mhz: float, out_mhz: float, device: Device | None = None) -> Pll:
        """The PLL the family's own tool finds for ``out_mhz`` from ``in_mhz`` (on ``device``,
        where the family's PLLs differ between parts); SynthError when it is more than 1% off
        or the tool refuses."""
        raise SynthError(f"{self.title}: bnncore has no PLL for this family")

    @staticmethod
    def _pll_tool(cmd: list, in_mhz: float, out_mhz: float) -> tuple:
        """(stdout, pll.v) of a PLL calculator run in a temporary folder (it writes pll.v)."""
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            text = (Path(tmp) / "pll.v").read_text() if (Path(tmp) / "pll.v").exists() else ""
        if r.returncode != 0 or not text:
            why = ((r.stderr or r.stdout).strip().splitlines() or ["no output"])[-1]
            raise SynthError(f"{Path(cmd[0]).name} finds no PLL for {out_mhz:g} MHz from {in_mhz:g} MHz: {why}")
        return r.stdout, text

    @staticmethod
    def _checked(pll: Pll, in_mhz: float, out_mhz: float) -> Pll:
        if abs(pll.mhz - out_mhz) > 0.01 * out_mhz:
            raise SynthError(f"the nearest PLL output to {out_mhz:g} MHz from {in_mhz:g} MHz is {pll.mhz:g} MHz "
                             "(more than 1% off); ask for that")
        return pll

    def pll_instance(self, pll: Pll, osc_port, clk, locked, in_mhz: float):
        """The Amaranth elaboratable of ``pll`` fed from the oscillator's port."""
        raise NotImplementedError

    # --- weight swaps: block RAM contents in the placed design's text
    def bram_contents(self, text: str) -> dict:
        """{block RAM: flat 0/1 array} of the placed design's initialised block RAMs."""
        raise NotImplementedError

    def write_bram_contents(self, text: str, rams: dict) -> str:
        raise NotImplementedError

    def bram_slices(self) -> list:
        """Index arrays of one slice's positions in a block RAM's flat contents, per port mode."""
        raise NotImplementedError

    def run_swap_tool(self, tool: str, work: Path, text: str, frm: str, to: str) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Device:
    """An FPGA and what the flow needs to know about it (a row of devices.json, with its
    family's block RAM shapes, speed grades and reset buffer)."""
    name: str
    family: str
    part: str                # as the vendor names it
    pnr_args: tuple          # nextpnr device and package options
    luts: int                # 4-input LUTs
    ffs: int
    brams: int               # block RAMs
    bram_bits: int           # bits per block RAM
    bram_read_width: int     # widest read port of one block RAM, bits per cycle
    dsps: int
    synth_args: tuple = ()   # options of the family's Yosys synthesis pass for this part
    bram_shapes: tuple = ()  # (depth, width) configurations of one block RAM's read port
    spram: int = 0           # iCE40 UltraPlus single-port RAMs (256 kbit each; not initialisable)
    icetime: str = ""        # icetime -d option
    speed: int = 0           # the speed grade nextpnr times the design for (0: none to choose)
    speed_grades: tuple = () # the grades the part is sold in and nextpnr models
    reset_buffer: str = ""   # Verilog driving the board top's rst_g from rst_q on a global net

    @property
    def fpga_family(self) -> Family:
        return FAMILIES[self.family]

    def with_speed(self, speed: int | None) -> "Device":
        """This device at speed grade ``speed``: the part name and nextpnr's timing model
        change, nothing else."""
        if speed is None or speed == self.speed:
            return self
        if not self.speed_grades:
            graded = "; ".join(f"{f.title} parts (grades {', '.join(map(str, f.speed_grades))})"
                               for f in FAMILIES.values() if f.speed_grades)
            raise SynthError(f"{self.part}: nextpnr has one timing model for it; --speed applies to {graded}")
        if speed not in self.speed_grades:
            raise SynthError(f"{self.part}: speed grade {speed} does not exist; expected one of "
                             f"{', '.join(map(str, self.speed_grades))}")
        part = self.part.replace(f"-{self.speed}", f"-{speed}", 1)
        return replace(self, part=part, speed=speed)

    @property
    def bram_total_bits(self) -> int:
        return self.brams * self.bram_bits

    def rom_blocks(self, depth: int, width: int) -> int:
        """Block RAMs a ROM of ``depth`` words of ``width`` bits takes, in the best of the
        block's configurations (an estimate of what Yosys' memory mapping does; it may
        choose logic for small ROMs)."""
        return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in self.bram_shapes)

    def buffer_blocks(self, depth: int, width: int) -> int:
        """Block RAMs of a shallow read-write memory (the first layer's input buffer): none
        where the family has distributed RAM, which Yosys uses for it; else as a ROM."""
        return 0 if self.fpga_family.distributed_ram else self.rom_blocks(depth, width)
