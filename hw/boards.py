"""Boards: the accelerator with its serial link (hw/link.py) on real pins.

A board is a device (hw/synth.py's ``DEVICES``, with the board's package), an amaranth-boards
platform (its pin tables, I/O standards and oscillator), the button that resets the design and
the LEDs that show its state. hw/link.py's ``board_files`` renders the board-level top
``bnn_board`` (RTLIL) and its pin constraints with the platform; hw/synth.py builds them with
the accelerator. (This module needs no Amaranth: ``bnn --help`` lists the boards.)

The design runs on the board's oscillator (12 MHz on the iCEBreaker, 25 MHz on the ULX3S and
the iCESugar-Pro), or on a PLL's output at another frequency (``pll``: its parameters from
icestorm's ``icepll`` and prjtrellis' ``ecppll``, the tools' own searches, not a copy of them).
The UART runs at the fastest standard rate that the clock divides to within 1% (3 Mbaud at
12 MHz, 1 Mbaud at 25 MHz; the boards' USB-serial chips reach 3 Mbaud).

LEDs: ``busy`` (an image on its way in, or answers to send), ``error`` (an error was answered
since the reset), ``alive`` (blinks at about 1 Hz), each where the board has one.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .synth import DEVICES, Device, SynthError
from .tools import find_tool

__all__ = ["Board", "BOARDS", "default_baud", "BAUD_RATES", "Pll", "pll"]

#: Rates the boards' USB-serial chips (FTDI FT2232H / FT231X, CH340) generate exactly.
BAUD_RATES = (3_000_000, 2_000_000, 1_500_000, 1_000_000, 921_600, 460_800, 230_400, 115_200)


@dataclass(frozen=True)
class Board:
    name: str
    device: Device
    platform: str                    # "module:Class" in amaranth_boards
    reset: tuple | None              # (resource, number) of the reset button
    leds: dict = field(default_factory=dict)   # role -> (resource, number)
    notes: str = ""

    def make_platform(self):
        module, cls = self.platform.split(":")
        try:
            mod = importlib.import_module(f"amaranth_boards.{module}")
        except ImportError:
            raise SynthError("board definitions need amaranth-boards: pip install 'bnncore[hw]'") from None
        return getattr(mod, cls)()

    @property
    def clock_hz(self) -> float:
        p = self.make_platform()
        return float(p.default_clk_frequency)


def _package(device: str, name: str, part: str, package: str) -> Device:
    d = DEVICES[device]
    args = list(d.pnr_args)
    args[args.index("--package") + 1] = package
    return replace(d, name=name, part=part, pnr_args=tuple(args))


BOARDS = {b.name: b for b in (
    Board("icebreaker", DEVICES["up5k"], "icebreaker:ICEBreakerPlatform", reset=("button", 0),
          leds={"error": ("led", 0), "busy": ("led", 1)},
          notes="1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz, FT2232H (the second port, "
                "usually /dev/ttyUSB1), user button resets, red LED error, green LED busy"),
    Board("ulx3s-25f", DEVICES["ecp5-25f"], "ulx3s:ULX3S_25F_Platform", reset=("button_fire", 0),
          leds={"alive": ("led", 0), "busy": ("led", 1), "error": ("led", 7)},
          notes="Radiona ULX3S with LFE5U-25F: 25 MHz, FT231X (/dev/ttyUSB0), FIRE1 resets"),
    Board("ulx3s-85f", DEVICES["ecp5-85f"], "ulx3s:ULX3S_85F_Platform", reset=("button_fire", 0),
          leds={"alive": ("led", 0), "busy": ("led", 1), "error": ("led", 7)},
          notes="Radiona ULX3S with LFE5U-85F: 25 MHz, FT231X (/dev/ttyUSB0), FIRE1 resets"),
    Board("icesugar-pro", _package("ecp5-25f", "ecp5-25f-bg256", "LFE5U-25F-6BG256C", "CABGA256"),
          "icesugar_pro:ICESugarProPlatform", reset=None, leds={},
          notes="Muse Lab iCESugar-Pro: LFE5U-25F-BG256, 25 MHz, UART through its iCELink "
                "debugger (/dev/ttyACM0); no button or LED on the module: reset at power-up only"),
)}


def default_baud(clock_hz: float) -> int:
    """The fastest of BAUD_RATES that ``clock_hz`` divides to within 1% (at least 4 cycles a bit)."""
    for baud in BAUD_RATES:
        d = round(clock_hz / baud)
        if d >= 4 and abs(clock_hz / d - baud) / baud <= 0.01:
            return baud
    raise SynthError(f"no standard baud rate from a {clock_hz / 1e6:g} MHz clock")


@dataclass(frozen=True)
class Pll:
    """A PLL from the board's oscillator to the design's clock: the primitive, its parameters,
    the frequency it achieves (MHz)."""
    primitive: str          # SB_PLL40_PAD (on the clock pin's own pad) or EHXPLLL
    params: dict
    mhz: float


def pll(family: str, in_mhz: float, out_mhz: float) -> Pll:
    """The PLL that icepll (iCE40) or ecppll (ECP5) finds for ``out_mhz`` from ``in_mhz``;
    SynthError when it is more than 1% off or the tool refuses."""
    with tempfile.TemporaryDirectory() as tmp:
        if family == "ice40":
            cmd = [find_tool("icepll"), "-i", f"{in_mhz:g}", "-o", f"{out_mhz:g}", "-q", "-f", "pll.v"]
        else:
            cmd = [find_tool("yowasp-ecppll"), "-i", f"{in_mhz:g}", "-o", f"{out_mhz:g}", "-f", "pll.v"]
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        text = (Path(tmp) / "pll.v").read_text() if (Path(tmp) / "pll.v").exists() else ""
    if r.returncode != 0 or not text:
        why = ((r.stderr or r.stdout).strip().splitlines() or ["no output"])[-1]
        raise SynthError(f"{Path(cmd[0]).name} finds no PLL for {out_mhz:g} MHz from {in_mhz:g} MHz: {why}")
    if family == "ice40":
        got = float(re.search(r"Achieved output frequency:\s+([\d.]+) MHz", text).group(1))
        params = {k: int(re.search(rf"\.{k}\([^)]*\),?\s*// {k} = *(\d+)", text).group(1))
                  for k in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE")}
        params["FEEDBACK_PATH"] = "SIMPLE"
        primitive = "SB_PLL40_PAD"
    else:
        got = float(re.search(r"clkout0 frequency: ([\d.]+) MHz", r.stdout).group(1))
        params = {k: int(re.search(rf"\.{k}\((\d+)\)", text).group(1))
                  for k in ("CLKI_DIV", "CLKOP_DIV", "CLKOP_CPHASE", "CLKOP_FPHASE", "CLKFB_DIV")}
        params.update({k: re.search(rf'\.{k}\("(\w+)"\)', text).group(1)
                       for k in ("PLLRST_ENA", "INTFB_WAKE", "STDBY_ENABLE", "DPHASE_SOURCE", "OUTDIVIDER_MUXA",
                                 "OUTDIVIDER_MUXB", "OUTDIVIDER_MUXC", "OUTDIVIDER_MUXD", "CLKOP_ENABLE",
                                 "FEEDBK_PATH")})
        primitive = "EHXPLLL"
    if abs(got - out_mhz) > 0.01 * out_mhz:
        raise SynthError(f"the nearest PLL output to {out_mhz:g} MHz from {in_mhz:g} MHz is {got:g} MHz "
                         "(more than 1% off); ask for that")
    return Pll(primitive, params, got)
