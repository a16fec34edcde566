"""Each stage's options, defined once: the keywords of the Python API (bnncore.api) with their
defaults, checks and meaning, from which the ``bnn`` verb that runs the stage makes its flags
and help (bnncore/cli/options.py, ``add_stage``). Training's are ``TrainConfig``'s
(bnncore/config.py). No imports beyond the defaults and the errors: ``bnn --help`` reads it.

    bnncore.generate(net, "build/rtl", banks=3)     # bnn rtl NET -o build/rtl --banks 3
    bnncore.generate(net, "build/rtl", bank=3)      # UsageError: bnncore.generate: unknown keyword 'bank'...
"""

from __future__ import annotations

import importlib
import numbers
import re
from dataclasses import dataclass
from typing import Callable

from . import defaults
from .errors import UsageError

__all__ = ["Rule", "Option", "Stage", "PLAN", "RTL", "SIM", "SYNTH", "SWEEP", "count"]


@dataclass(frozen=True)
class Rule:
    """What a number must be: ``kind`` (int or float), ``ok(value)``, and ``text``, the rule
    in words for the errors ("at least 1")."""
    kind: type
    ok: Callable
    text: str

    def check(self, value, where: str):
        kinds = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kinds) or not self.ok(value):
            raise UsageError(f"{where} must be {'an integer ' if self.kind is int else ''}{self.text}, not {value!r}")
        return value


def count(minimum: int, maximum: int | None = None, why: str = "") -> Rule:
    """An integer of at least ``minimum`` (and at most ``maximum``; ``why`` says why)."""
    if maximum is None:
        return Rule(int, lambda v: v >= minimum, f"at least {minimum}")
    return Rule(int, lambda v: minimum <= v <= maximum, f"in [{minimum}, {maximum:,}]{why}")


#: a random seed: what torch, NumPy and nextpnr all take
SEED = count(0, 2**32 - 1)
#: parallel processes or threads: each takes memory of its own
JOBS = count(1, 256, " (each process or thread takes memory of its own)")
#: each bank and output FIFO entry is a register or block RAM word
BANKS = count(2, 16, " (each bank buffers a whole layer output)")
OUT_DEPTH = count(1, 1024, " (each entry is an output word of flip-flops)")
#: a probability per cycle; 1 would never let a beat through (a stream stalled for ever)
PROBABILITY = Rule(float, lambda v: 0 <= v < 1, "in [0, 1) (a probability per cycle; 1 never lets a beat through)")
MEGAHERTZ = Rule(float, lambda v: 0 < v <= 1000, "a clock in MHz in (0, 1000]")


def names_of(ref) -> tuple:
    """The choices ``ref`` gives: a tuple, or "module:attribute" of a collection (or of a
    function returning one), read when asked (the device table, the simulators)."""
    if not isinstance(ref, str):
        return tuple(ref)
    module, attr = ref.split(":")
    value = getattr(importlib.import_module(module), attr)
    return tuple(value() if callable(value) else value)


@dataclass(frozen=True)
class Option:
    """One option of a stage: the keyword ``name``, its ``default`` and ``help``; a number's
    ``rule``, or the ``choices`` of a name; ``flag``, the verb's flag (default: ``--name``);
    ``negate``: a boolean whose flag sets it False (``--shallow``: ``pipelined=False``);
    ``from_text``: how the verb reads the flag's text into the keyword's value."""
    name: str
    default: object
    help: str
    rule: Rule | None = None
    choices: object = None
    flag: str = ""
    negate: bool = False
    path: bool = False
    from_text: Callable | None = None
    metavar: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value, where: str):
        """``value`` for the keyword, or a UsageError naming ``where`` and the rule."""
        if value is None:
            return value
        if self.rule is not None:
            return self.rule.check(value, f"{where}: {self.name}")
        if isinstance(self.default, bool) and not isinstance(value, bool):
            raise UsageError(f"{where}: {self.name} must be True or False, not {value!r}")
        if self.choices is not None and value not in names_of(self.choices):
            raise UsageError(f"{where}: {self.name} must be one of {', '.join(map(str, names_of(self.choices)))}, "
                             f"not {value!r}")
        return value


class Stage:
    """The options of one stage, in the order its verb lists them."""

    def __init__(self, *options: Option):
        self.options = tuple(options)

    def __add__(self, other: "Stage") -> "Stage":
        return Stage(*self.options, *other.options)

    def __iter__(self):
        return iter(self.options)

    def names(self) -> tuple:
        return tuple(o.name for o in self.options)

    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options}

    def resolve(self, given: dict, where: str) -> dict:
        """Every option's value: ``given``'s, checked, else the default. An unknown keyword is
        a UsageError that lists the known ones."""
        unknown = sorted(set(given) - set(self.names()))
        if unknown:
            raise UsageError(f"{where}: unknown keyword {unknown[0]!r}; expected some of {', '.join(self.names())}")
        return {o.name: o.check(given[o.name], where) if o.name in given else o.default for o in self.options}

    def from_args(self, args) -> dict:
        """The keywords from a verb's parsed arguments (bnncore/cli)."""
        out = {}
        for o in self.options:
            v = getattr(args, o.name)
            out[o.name] = o.from_text(v) if o.from_text is not None and v is not None else v
        return out


_FOLD = re.compile(r"\s*([0-9]+)\s*,\s*([0-9]+)\s*")


def _parse_memory(text: str):
    from .hw.memories import parse_memory
    return parse_memory(text)


def parse_folds(text: str) -> list:
    """--fold's text: PE,SIMD per layer, ';'-separated."""
    parts = text.split(";")
    if parts and not parts[-1].strip():
        parts.pop()
    folds = []
    for k, part in enumerate(parts):
        m = _FOLD.fullmatch(part)
        if not m:
            raise UsageError(f"--fold {text!r}: layer {k}'s {part.strip()!r} is not PE,SIMD (two positive "
                             "integers); expected PE,SIMD per layer separated by ';', like '16,49;16,64;10,64'")
        folds.append((int(m.group(1)), int(m.group(2))))
    return folds


def parse_ints(option: str, text: str, minimum: int, what: str, maximum: int = 2**32 - 1) -> list:
    """A comma-separated list of integers (--targets, --seeds)."""
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < minimum or max(values) > maximum or len(values) > 256:
        raise UsageError(f"{option} {text!r} does not parse: expected {what} (at most {maximum:,}; 256 of them at "
                         "most), comma-separated, like '1,2,3'")
    return values


def _int_list(flag: str, minimum: int, what: str, maximum: int = 2**32 - 1):
    def parse(text):
        return parse_ints(flag, text, minimum, what, maximum) if isinstance(text, str) else list(text)
    return parse


_DEVICES = "bnncore.hw.families:DEVICES"
_SPEEDS = "bnncore.hw.families:speed_grades"

#: the folding plan (bnncore.plan), and bnn rtl's
PLAN = Stage(
    Option("fold", None, "PE,SIMD per layer, ';'-separated, e.g. '16,49;16,64;16,64;10,64' (default: chosen for "
           "--target-cycles)", from_text=parse_folds),
    Option("target_cycles", None, f"cycles per image the automatic folding aims for (default: "
           f"{defaults.MLP_TARGET_CYCLES} for an MLP; for a CNN the fewest its layers allow: a window's word is at "
           "most one pixel's channels)", rule=count(1)),
    Option("device", None, "fit this device: the automatic folding takes its fewest block RAMs first, then the least "
           "logic; the resources are estimated per layer before synthesis (rtl.json), and a folding that will not fit is "
           "refused, naming the fewest cycles per image that will (default: no device; the least logic)",
           choices=_DEVICES),
    Option("memory", None, "where the weights go besides block RAM: 'w0=spram,...' (a memory kind of --device's family: "
           "iCE40 UltraPlus's SPRAM, whose contents the bitstream cannot set: such a design is built for a board, "
           "--writable, and loaded with bnn load), 'none', or 'auto': the largest layers' weights in such a kind only "
           "when the design does not fit the device without it (default: auto with --device, else none)",
           from_text=_parse_memory),
    Option("banks", defaults.BANKS, f"image buffers between layers (default: {defaults.BANKS})", rule=BANKS),
    Option("out_depth", defaults.OUT_DEPTH, f"output FIFO depth (default: {defaults.OUT_DEPTH})", rule=OUT_DEPTH),
    Option("pipelined", True, "4-stage engines: no register behind the block RAMs, one-cycle popcount (fewer "
           "flip-flops, a lower clock; default: 9-stage pipelined engines)", flag="--shallow", negate=True),
)

#: RTL generation (bnncore.generate, bnn rtl)
RTL = PLAN + Stage(Option("vhdl", True, "Verilog only (default: Verilog and VHDL)", flag="--no-vhdl", negate=True))

#: co-simulation (bnncore.simulate, bnn sim)
SIM = Stage(
    Option("sim", defaults.SIMULATOR, "the simulator (GHDL runs the VHDL, the others the Verilog)",
           choices="bnncore.sim.simulators:names"),
    Option("gap", 0.0, "probability of an idle input cycle, in [0, 1)", rule=PROBABILITY),
    Option("stall", 0.0, "probability of output backpressure per cycle, in [0, 1)", rule=PROBABILITY),
    Option("swap_roms", False, "NET is not the network the RTL was generated from: simulate NET's weights in this "
           "RTL, written as ROM files for its folding and passed through the ROM file parameters (same topology "
           "and folding; default: refuse a different network)"),
    Option("seed", 0, "seed of the random idle and stall cycles", rule=SEED),
    Option("waves", False, "write a waveform (VCD/FST/GHW) in the build directory"),
    Option("bench", defaults.BENCH, "cocotb's bench (every simulator), or a C++ driver compiled into the Verilator "
           "model: the same checks against the golden model, about three times faster, Verilator only, no --waves "
           "(default: cocotb)", choices=("cocotb", "native")),
    Option("jobs", 1, "with --bench native: split the images into this many shards, simulated at once, each from "
           "reset (default: 1)", rule=JOBS),
    Option("pgo", False, "with --bench native: compile it profile-guided (built twice, with a profile of the first "
           "images between): about a quarter faster to run, twice as long to build"),
)

_SPEED_HELP = "speed grade to time for, on the parts that have them (default: the device's, the slowest; the " \
              "part name in the report follows it)"

#: synthesis, place and route (bnncore.synthesize, bnn synth), besides the device
SYNTH = Stage(
    Option("board", None, "build for a board: the accelerator behind a UART on its pins, clocked by its oscillator "
           "(docs/link.md); without it the top is a byte stream on placeholder pins",
           choices="bnncore.hw.boards:BOARDS"),
    Option("baud", None, "with --board: the UART's rate (default: the fastest standard rate the clock gives)",
           rule=count(1)),
    Option("writable", False, "with --board: the weight and threshold memories can be written over the link "
           "(bnn load), so that another network of the same topology and folding runs without a new bitstream"),
    Option("freq", None, "clock target in MHz (default: 25 on iCE40, 100 on ECP5, 50 on Gowin); with --board, the board's "
           "oscillator unless given (another frequency through a PLL); missing it is reported, not an error",
           rule=MEGAHERTZ),
    Option("seed", 1, "nextpnr placement seed", rule=SEED),
    Option("router", None, "nextpnr router (default: router2 on ECP5, where router1 stalls on large designs; "
           "router1 on iCE40 and Gowin)", choices=("router1", "router2")),
    Option("speed", None, _SPEED_HELP, choices=_SPEEDS),
    Option("rom_dir", None, "directory of the ROM files to build in (default: the RTL's)", flag="--roms", path=True),
    Option("bitstream", True, "stop after place and route (default: write the bitstream)", flag="--no-bitstream", negate=True),
    Option("swappable", False, "every ROM in block RAM, placed with placeholder contents, so that other weights of "
           "the same design go into the bitstream later with --swap-weights (costs block RAM for ROMs that would "
           "otherwise be logic)"),
    Option("bram_outreg", True, "ECP5: leave the block RAMs' read data in flip-flops outside them (by default those "
           "flip-flops become the block RAMs' output registers, which shortens the paths from the block RAMs)",
           flag="--no-bram-outreg", negate=True),
    Option("global_reset", False, "ECP5: the registered reset reaches the design through a global buffer (DCCA), "
           "not the fabric, where it can be the critical path of a large design; nextpnr can fail to route the "
           "buffer's input (try another --seed)"),
)

#: folding sweeps (bnncore.sweep, bnn sweep), besides the device
SWEEP = Stage(
    Option("targets", defaults.SWEEP_TARGETS, f"cycles per image to fold for, comma-separated (default: "
           f"{','.join(map(str, defaults.SWEEP_TARGETS))})",
           from_text=_int_list("--targets", 1, "positive cycles per image", 10**9)),
    Option("seeds", (1,), "nextpnr placement seeds, comma-separated: each point is placed and routed with each, "
           "and reported at the median seed's Fmax with the range over all",
           from_text=_int_list("--seeds", 0, "placement seeds (integers of at least 0)")),
    Option("jobs", None, "parallel runs (default: the number of cores)", rule=JOBS),
    Option("ray", None, "run each folding as a task of the Ray cluster at ADDRESS (host:port, or auto: the cluster "
           "this machine belongs to), with its CPU and memory request; needs bnncore[cluster] and the paths on a "
           "file system every node mounts (default: local processes)", metavar="ADDRESS"),
    Option("freq", None, "clock target in MHz (default: per family)", rule=MEGAHERTZ),
    Option("banks", defaults.BANKS, f"image buffers between layers (default: {defaults.BANKS})", rule=BANKS),
    Option("speed", None, _SPEED_HELP, choices=_SPEEDS),
)
