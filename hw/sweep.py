"""Folding sweep: one network, one device, several foldings through synthesis and place and
route, in parallel; a table (JSON, CSV) and a plot of LUTs against images per second with the
Pareto front marked.

Each point is ``auto_fold(topology, target, rom_blocks=device.rom_blocks)`` for one target of
cycles per image: the analytical model picks the folding (fewest block RAMs of the device,
then the least logic), the tools measure its cost and clock.
"""

from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from bnncore.fileio import atomic_savefig, atomic_write_text

__all__ = ["sweep", "pareto", "plot_sweep"]

COLUMNS = ("target_cycles", "folding", "initiation_interval", "luts", "ffs", "brams", "lut_pct", "bram_pct",
           "fmax_mhz", "images_per_second", "latency_us", "pareto", "error")


def _point(net_dir: str, device: str, target: int, out: str, freq, seed: int, banks: int, speed=None) -> dict:
    """One sweep point (in a worker process): generate, synthesise, place and route."""
    from bnncore.export import load
    from .generate import generate
    from .plan import auto_fold, bias_bits_for
    from .synth import DEVICES, SynthError, synthesize
    net = load(net_dir)
    dev = DEVICES[device]
    plan = auto_fold(net.topology, target, banks=banks, rom_blocks=dev.rom_blocks, buffer_blocks=dev.buffer_blocks,
                     bias_bits=bias_bits_for(net))
    folding = ";".join(f"{l.pe},{l.simd}" for l in plan.layers)
    row = {"target_cycles": target, "folding": folding}
    try:
        rtl = generate(net, plan, Path(out) / "rtl", vhdl=False)
        r = synthesize(rtl, device, Path(out) / "synth", freq=freq, seed=seed, bitstream=False, speed=speed,
                       log=lambda s: None)
    except SynthError as e:
        return row | {"error": str(e).splitlines()[0]}
    return row | {"initiation_interval": r["initiation_interval"], "luts": r["resources"]["luts"],
                  "ffs": r["resources"]["ffs"], "brams": r["resources"]["brams"],
                  "lut_pct": r["utilization_pct"]["luts"], "bram_pct": r["utilization_pct"]["brams"],
                  "fmax_mhz": r["fmax_mhz"], "images_per_second": r["images_per_second"],
                  "latency_us": r["latency_us"], "error": ""}


def pareto(rows: list) -> list:
    """Mark rows on the Pareto front: no other row has fewer (or as many) LUTs and more
    (or as many) images per second, with one of the two strictly better."""
    ok = [r for r in rows if not r.get("error")]
    for r in rows:
        r["pareto"] = bool(not r.get("error") and not any(
            o is not r and o["luts"] <= r["luts"] and o["images_per_second"] >= r["images_per_second"]
            and (o["luts"] < r["luts"] or o["images_per_second"] > r["images_per_second"]) for o in ok))
    return rows


def plot_sweep(rows: list, path, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in rows if not r.get("error")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r["luts"] for r in ok], [r["images_per_second"] for r in ok], color="tab:blue", label="folding")
    front = sorted((r for r in ok if r["pareto"]), key=lambda r: r["luts"])
    ax.plot([r["luts"] for r in front], [r["images_per_second"] for r in front], "o-", color="tab:red",
            label="Pareto front")
    for r in ok:
        ax.annotate(f"{r['target_cycles']} cyc, {r['fmax_mhz']:.0f} MHz", (r["luts"], r["images_per_second"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("LUTs")
    ax.set_ylabel("images per second")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)


def sweep(net_dir, device: str, targets, out_dir, *, jobs: int | None = None, freq=None, seed: int = 1,
          banks: int = 2, speed: int | None = None, progress: bool = True) -> list:
    """Sweep ``targets`` (cycles per image) for ``net_dir`` on ``device`` (at ECP5 speed grade
    ``speed``, default the slowest); write ``sweep.json``, ``sweep.csv`` and ``sweep.png`` into
    ``out_dir``; return the rows."""
    from tqdm import tqdm
    from bnncore.export import load
    from .plan import require_mlp
    from .synth import _device
    part = _device(device).with_speed(speed).part    # a bad device or grade fails here, not per point
    net = load(net_dir)
    require_mlp(net)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = sorted(set(int(t) for t in targets))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(targets)))
    rows = []
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(_point, str(net_dir), device, t, str(out / f"t{t}"), freq, seed, banks, speed)
                   for t in targets]
        for f in tqdm(as_completed(futures), total=len(futures), desc=f"sweep {device}", unit="folding",
                      disable=not progress):
            rows.append(f.result())
    rows = pareto(sorted(rows, key=lambda r: r["target_cycles"]))
    topo = "-".join(map(str, net.topology))
    atomic_write_text(out / "sweep.json", json.dumps({"network": topo, "device": device, "part": part, "rows": rows}, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "sweep.csv", buf.getvalue())
    if any(not r.get("error") for r in rows):
        plot_sweep(rows, out / "sweep.png", f"{topo} on {part}: LUTs vs throughput (Fmax / II)")
    return rows
