"""Folding sweep: one network, one device, several foldings through synthesis and place and
route, in parallel; a table (JSON, CSV) and a plot of LUTs and block RAMs against images per
second, with the Pareto front over both marked.

Each point is ``auto_fold(topology, target, rom_blocks=device.rom_blocks)`` for one target of
cycles per image: the analytical model picks the folding (fewest block RAMs of the device,
then the least logic), the tools measure its cost and clock. With several placement seeds a
point is placed and routed once per seed: its clock is the median seed's, and the plot shows
the spread (one seed's Fmax can be far from another's on a full device). Each row has the cost
model's LUT4s and block RAMs (hw/estimate.py) beside the measured ones.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from bnncore import defaults
from bnncore.errors import UsageError
from bnncore.fileio import atomic_savefig, atomic_write_text, check_output, workspace

__all__ = ["sweep", "pareto", "plot_sweep"]

COLUMNS = ("target_cycles", "folding", "initiation_interval", "luts", "luts_estimate", "ffs", "brams", "brams_estimate",
           "lut_pct", "bram_pct",
           "fmax_mhz", "fmax_mhz_min", "fmax_mhz_max", "seeds", "images_per_second", "latency_us", "pareto",
           "error")


def _point(net_dir: str, device: str, target: int, out: str, freq, seeds, banks: int, speed=None) -> dict:
    """One sweep point (in a worker process): generate, then synthesise, place and route once
    per placement seed."""
    from bnncore.exports import load

    from .autofold import auto_fold
    from .estimate import estimate
    from .generate import generate
    from .plan import bias_bits_for
    from .synth import DEVICES, SynthError, synthesize
    net = load(net_dir)
    dev = DEVICES[device]
    plan = auto_fold(net, target, banks=banks, rom_blocks=dev.rom_blocks, buffer_blocks=dev.buffer_blocks,
                     bias_bits=bias_bits_for(net))
    folding = ";".join(f"{l.pe},{l.simd}" for l in plan.layers)
    est = estimate(plan, dev)
    row = {"target_cycles": target, "folding": folding,
           "luts_estimate": est and est["total"]["luts"], "brams_estimate": est and est["total"]["brams"]}
    reports = []
    try:
        rtl = generate(net, plan, Path(out) / "rtl", vhdl=False)
        for seed in seeds:
            reports.append(synthesize(rtl, device, Path(out) / f"synth-s{seed}", freq=freq, seed=seed,
                                      bitstream=False, speed=speed, log=lambda s: None))
    except SynthError as e:
        return row | {"error": str(e).splitlines()[0]}
    fmax = sorted(r["fmax_mhz"] for r in reports)
    r = next(r for r in reports if r["fmax_mhz"] == fmax[(len(fmax) - 1) // 2])     # the (lower) median seed
    return row | {"initiation_interval": r["initiation_interval"], "luts": r["resources"]["luts"],
                  "ffs": r["resources"]["ffs"], "brams": r["resources"]["brams"],
                  "lut_pct": r["utilization_pct"]["luts"], "bram_pct": r["utilization_pct"]["brams"],
                  "fmax_mhz": r["fmax_mhz"], "fmax_mhz_min": fmax[0], "fmax_mhz_max": fmax[-1],
                  "seeds": " ".join(map(str, seeds)), "fmax_mhz_by_seed": [q["fmax_mhz"] for q in reports],
                  "images_per_second": r["images_per_second"], "latency_us": r["latency_us"], "error": ""}


#: What a point costs (fewer is better); images per second is what it gives.
COSTS = ("luts", "brams")


def pareto(rows: list) -> list:
    """Mark rows on the Pareto front over LUTs, block RAMs and images per second: no other row
    is as good on all three and better on one."""
    ok = [r for r in rows if not r.get("error")]

    def dominates(o, r):
        as_good = all(o[c] <= r[c] for c in COSTS) and o["images_per_second"] >= r["images_per_second"]
        return as_good and (any(o[c] < r[c] for c in COSTS) or o["images_per_second"] > r["images_per_second"])

    for r in rows:
        r["pareto"] = bool(not r.get("error") and not any(o is not r and dominates(o, r) for o in ok))
    return rows


def plot_sweep(rows: list, path, title: str):
    """Two panels, LUTs and block RAMs against images per second, the Pareto points in red;
    a vertical bar through a point spans its placement seeds' throughputs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    ok = sorted((r for r in rows if not r.get("error")), key=lambda r: r["target_cycles"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, cost, label in zip(axes, COSTS, ("LUTs", "block RAMs")):
        for front, color, name in ((False, "tab:blue", "folding"), (True, "tab:red", "Pareto front")):
            pts = [r for r in ok if bool(r["pareto"]) == front]
            if not pts:
                continue
            y = [r["images_per_second"] for r in pts]
            # images/s scale with Fmax: the seeds' spread in Fmax is the spread in throughput
            lo = [r["images_per_second"] * (1 - r.get("fmax_mhz_min", r["fmax_mhz"]) / r["fmax_mhz"]) for r in pts]
            hi = [r["images_per_second"] * (r.get("fmax_mhz_max", r["fmax_mhz"]) / r["fmax_mhz"] - 1) for r in pts]
            ax.errorbar([r[cost] for r in pts], y, yerr=[lo, hi], fmt="o", color=color, label=name, capsize=3)
        for r in ok:
            spread = (f" ({r['fmax_mhz_min']:.0f}-{r['fmax_mhz_max']:.0f})"
                      if r.get("fmax_mhz_min", r["fmax_mhz"]) != r.get("fmax_mhz_max", r["fmax_mhz"]) else "")
            ax.annotate(f"{r['target_cycles']} cyc, {r['fmax_mhz']:.0f} MHz{spread}", (r[cost], r["images_per_second"]),
                        textcoords="offset points", xytext=(5, 3), fontsize=7)
        ax.set_xlabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(x=0.25)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("images per second")
    axes[0].legend()
    seeds = max(len(str(r.get("seeds", "1")).split()) for r in ok)
    if seeds > 1:
        title += f"\nmedian of {seeds} placement seeds; bars and brackets: the range of Fmax over them"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)


def _sweep_files(out: Path):
    """A sweep folder of a bnncore without output markers: ours when its sweep.json is a sweep's."""
    try:
        data = json.loads((out / "sweep.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return set() if isinstance(data, dict) and "rows" in data and "device" in data else None


def _memory_mib(topology, target: int, banks: int, device) -> int:
    """What one point asks a Ray cluster for: generation's Yosys estimate, twice, for the
    synthesis and place and route after it; 1 GiB at least."""
    from .autofold import auto_fold
    from .generate import generation_estimate
    plan = auto_fold(topology, target, banks=banks, rom_blocks=device.rom_blocks, buffer_blocks=device.buffer_blocks)
    return max(1024, 2 * generation_estimate(plan)["yosys_mib"])


def sweep(net_dir, device: str, targets, out_dir, *, jobs: int | None = None, freq=None, seeds=(1,),
          banks: int = defaults.BANKS, speed: int | None = None, progress: bool | None = None, ray: str | None = None) -> list:
    """Sweep ``targets`` (cycles per image) for ``net_dir`` on ``device`` (at ECP5 speed grade
    ``speed``, default the slowest), each placed and routed with every one of ``seeds``; write
    ``sweep.json``, ``sweep.csv`` and ``sweep.png`` into ``out_dir``; return the rows.

    A point that an earlier sweep into ``out_dir`` finished with the same network and options
    (its ``point.json``) is not redone. ``progress``: a progress bar (default: when stderr is a
    terminal). ``ray``: run the points as tasks of the Ray cluster
    at that address (``auto``: the one this machine belongs to); default: local processes.
    """
    from bnncore.exports import load

    from .synth import _device
    dev = _device(device).with_speed(speed)        # a bad device or grade fails here, not per point
    out = Path(out_dir)
    check_output(out, "sweep", _sweep_files, in_place=True)
    net = load(net_dir)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise UsageError("seeds: give at least one placement seed")
    with workspace(out, "sweep", _sweep_files):
        return _sweep(net, net_dir, dev, device, targets, out, jobs, freq, seeds, banks, speed, progress, ray)


def _sweep(net, net_dir, dev, device, targets, out, jobs, freq, seeds, banks, speed, progress, ray) -> list:
    from tqdm import tqdm

    from bnncore.cluster import run_all
    part = dev.part
    targets = sorted(set(int(t) for t in targets))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(targets)))
    options = {"network_sha256": net.digest(), "device": device, "freq": freq, "seeds": seeds, "banks": banks,
               "speed": speed}
    rows, todo = [], []
    for t in targets:
        done = out / f"t{t}" / "point.json"
        try:
            earlier = json.loads(done.read_text())
        except (OSError, ValueError):
            earlier = None
        if isinstance(earlier, dict) and earlier.get("options") == options and isinstance(earlier.get("row"), dict):
            rows.append(earlier["row"])
        else:
            todo.append(t)
    if progress is None:
        progress = os.isatty(2)                  # a bar on a terminal, not in a log file
    bar = tqdm(total=len(targets), initial=len(rows), desc=f"sweep {device}" + (" on Ray" if ray else ""),
               unit="folding", disable=not progress)
    memory = max(_memory_mib(net, t, banks, dev) for t in todo) if ray and todo else None
    # absolute paths: a Ray worker does not run in this directory
    net_abs, out_abs = Path(net_dir).resolve(), out.resolve()
    for k, row in run_all(_point, [(str(net_abs), device, t, str(out_abs / f"t{t}"), freq, seeds, banks, speed)
                                   for t in todo], workers=jobs, ray=ray, cpus=1, memory_mib=memory):
        if not row.get("error"):
            atomic_write_text(out / f"t{todo[k]}" / "point.json",
                              json.dumps({"options": options, "row": row}, indent=2) + "\n")
        rows.append(row)
        bar.update()
    bar.close()
    rows = pareto(sorted(rows, key=lambda r: r["target_cycles"]))
    topo = net.spec
    atomic_write_text(out / "sweep.json", json.dumps({"network": topo, "device": device, "part": part, "rows": rows}, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "sweep.csv", buf.getvalue())
    if any(not r.get("error") for r in rows):
        plot_sweep(rows, out / "sweep.png", f"{topo} on {part}: cost vs throughput (Fmax / II)")
    return rows
