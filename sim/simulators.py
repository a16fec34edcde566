"""The simulators, one entry each: what a bench needs to know to build and run the generated
RTL on it. sim/runner.py reads this table and nothing else about a simulator; adding one (nvc,
say) is an entry here and a test parameter.

No cocotb here: the command line reads the names at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bnncore.errors import BnnError, UsageError


class SimulationError(BnnError, RuntimeError):
    """The simulation could not be built or run, or the bench failed."""

__all__ = ["Simulator", "SIMULATORS", "simulator", "names"]


@dataclass(frozen=True)
class Simulator:
    """One simulator as the benches use it.

    ``name`` is the ``--sim`` name and cocotb's runner; ``lang`` the HDL it runs (the RTL
    directory has both); ``tool`` the executable that must be found, and ``locate`` the
    function that finds it (default: ``hw.tools.find_tool(tool)``). ``build_args`` and
    ``run_args`` (options before the top unit, then after it) are functions of nothing, read
    when a bench starts, so that environment variables can add to them. ``generics_at_run``:
    the ROM file parameters reach the design when it runs (VHDL generics at elaboration), not
    when it builds. ``builds_with_make``: cocotb builds the model with make and a C++ compiler
    (paths make cannot split, both tools on PATH). ``public_ports``: the model can make the top
    level's ports alone visible to the bench, so that the rest is optimised. ``native``: it has
    the native bench (sim/native.py). ``link``: it runs the board link's bench (Verilog only)."""
    name: str
    lang: str
    tool: str
    build_args: object = field(default=lambda: [])
    run_args: object = field(default=lambda: ([], []))
    generics_at_run: bool = False
    builds_with_make: bool = False
    public_ports: bool = False
    native: bool = False
    link: bool = False
    locate: object = None

    def path(self) -> str:
        """The simulator's executable (ToolError with an install hint when it is missing)."""
        from bnncore.hw.tools import find_tool
        return self.locate() if self.locate else find_tool(self.tool)


def _find_verilator() -> str:
    from bnncore.hw.tools import find_verilator
    return find_verilator()


def _verilator_args() -> list:
    # Small C++ functions: g++ is superlinear in function size, and a large network's flat
    # netlist otherwise gives eval functions that take many minutes to compile.
    return ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast",
            "--output-split", "20000", "--output-split-cfuncs", "500",
            "-CFLAGS", os.environ.get("BNN_VERILATOR_CFLAGS", "-O2"), *os.environ.get("BNN_VERILATOR_ARGS", "").split()]


def _ghdl_run_args() -> tuple:
    # --max-stack-alloc=0: the ROM loader's memory variable of a real network's weights is
    # larger than GHDL's default 128 KB stack-allocation limit.
    return ["--std=08"], (["--ieee-asserts=disable-at-0", "--max-stack-alloc=0"]
                          + os.environ.get("BNN_GHDL_RUN_ARGS", "").split())


SIMULATORS = {s.name: s for s in (
    Simulator("verilator", "verilog", "verilator", build_args=_verilator_args, builds_with_make=True,
              public_ports=True, native=True, link=True, locate=lambda: _find_verilator()),
    Simulator("icarus", "verilog", "iverilog", link=True),
    Simulator("ghdl", "vhdl", "ghdl", build_args=lambda: ["--std=08"], run_args=_ghdl_run_args,
              generics_at_run=True),
)}


def names() -> tuple:
    return tuple(SIMULATORS)


def simulator(name: str) -> Simulator:
    """The entry of ``name``; ValueError naming the ones there are."""
    try:
        return SIMULATORS[name]
    except (KeyError, TypeError):
        raise UsageError(f"sim must be one of {', '.join(SIMULATORS)}, not {name!r}") from None
