"""Boards: the accelerator with its serial link (hw/link.py) on real pins.

A board is a device (hw/families' ``DEVICES``, with the board's package), an amaranth-boards
platform (its pin tables, I/O standards and oscillator), the button that resets the design and
the LEDs that show its state. hw/link.py's ``board_files`` renders the board-level top
``bnn_board`` (RTLIL) and its pin constraints with the platform; hw/synth.py builds them with
the accelerator. (This module needs no Amaranth: ``bnn --help`` lists the boards.)

The design runs on the board's oscillator (12 MHz on the iCEBreaker, 25 MHz on the ULX3S and
the iCESugar-Pro, 27 MHz on the Tang boards), or on a PLL's output at another frequency
(``pll``: its parameters from the family's own tool, icestorm's ``icepll``, prjtrellis'
``ecppll`` or apycula's ``gowin_pll``, not a copy of their searches).
The UART runs at the fastest standard rate that the clock divides to within 1% (3 Mbaud at
12 MHz, 1 Mbaud at 25 MHz; the boards' USB-serial chips reach 3 Mbaud).

LEDs: ``busy`` (an image on its way in, or answers to send), ``error`` (an error was answered
since the reset), ``alive`` (blinks at about 1 Hz), each where the board has one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace

from .families import DEVICES, Device, Pll
from .families import family as _family
from .tools import SynthError

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
    Board("tang-nano-9k", DEVICES["gw1nr-9"], "tang_nano_9k:TangNano9kPlatform", reset=("button", 0),
          leds={"alive": ("led", 0), "busy": ("led", 1), "error": ("led", 2)},
          notes="Sipeed Tang Nano 9K: GW1NR-LV9QN88PC6/I5, 27 MHz, UART through its BL702 USB bridge "
                "(/dev/ttyUSB1, the second port), S1 resets, LEDs 0-2: alive, busy, error"),
    Board("tang-primer-20k", DEVICES["gw2a-18"], "tang_primer_20k:TangPrimer20kDockPlatform", reset=("button", 0),
          leds={"alive": ("led", 0), "busy": ("led", 1), "error": ("led", 2)},
          notes="Sipeed Tang Primer 20K on its Dock: GW2A-LV18PG256C8/I7, 27 MHz, UART through the Dock's "
                "BL616 USB bridge (/dev/ttyUSB1), S0 (T10) resets, LEDs 0-2: alive, busy, error"),
)}


def default_baud(clock_hz: float) -> int:
    """The fastest of BAUD_RATES that ``clock_hz`` divides to within 1% (at least 4 cycles a bit)."""
    for baud in BAUD_RATES:
        d = round(clock_hz / baud)
        if d >= 4 and abs(clock_hz / d - baud) / baud <= 0.01:
            return baud
    raise SynthError(f"no standard baud rate from a {clock_hz / 1e6:g} MHz clock")


def pll(family: str, in_mhz: float, out_mhz: float, device: Device | None = None) -> Pll:
    """The PLL that the family's own tool (icepll on iCE40, ecppll on ECP5, apycula's gowin_pll
    on Gowin, for ``device``) finds for ``out_mhz`` from ``in_mhz``; SynthError when it is more
    than 1% off or the tool refuses."""
    return _family(family).pll(in_mhz, out_mhz, device)
