"""The resource estimate against Yosys: a corpus of designs synthesized, the cost model fitted
to it and its error printed.

    python bench/estimate.py measure [--only NAME,...] [--devices D,...] [--jobs N] [--out build/estimate]
    python bench/estimate.py fit
    python bench/estimate.py check

``measure`` builds every design of ``DESIGNS`` (random weights, ``bnn rtl``'s options) and
synthesizes it with Yosys for the iCE40 UP5K, the ECP5-25F and the GW1NR-9 (no place and route: the
estimate is of Yosys' netlist, what ``bnn synth`` reports as LUTs, flip-flops, carries and
block RAMs), and records each part's cells (hw/layer_cells.py) and where Yosys put each memory
into ``bench/estimate.json``. ``fit`` fits the cost model of every family to that record and
writes the coefficients into ``hw/families/costs.json``; ``check`` prints the model's
error against the record, per design and in total (no synthesis: the record is the corpus).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import random_network  # noqa: E402

from bnncore import api  # noqa: E402
from bnncore.fileio import atomic_write_text  # noqa: E402

RECORD = Path(__file__).with_name("estimate.json")
DEVICES = ("up5k", "ecp5-25f", "gw1nr-9")

#: name -> (topology, input scheme, bnn rtl options): MLPs and CNNs at foldings from one input
#: value per cycle to whole layers per cycle, threshold and 8-bit inputs, shallow engines
DESIGNS = {
    "demo-128": ("784-256-256-10", "threshold", {"target_cycles": 128}),
    "demo-256": ("784-256-256-10", "threshold", {"target_cycles": 256}),
    "demo-512": ("784-256-256-10", "threshold", {"target_cycles": 512}),
    "demo-1024": ("784-256-256-10", "threshold", {"target_cycles": 1024}),
    "demo-4096": ("784-256-256-10", "threshold", {"target_cycles": 4096}),
    "demo-16384": ("784-256-256-10", "threshold", {"target_cycles": 16384}),
    "mlp128-64": ("784-128-10", "threshold", {"target_cycles": 64}),
    "mlp128-256": ("784-128-10", "threshold", {"target_cycles": 256}),
    "mlp128-2048": ("784-128-10", "threshold", {"target_cycles": 2048}),
    "mlp64-32": ("784-64-32-10", "threshold", {"fold": [(16, 49), (8, 16), (10, 8)]}),
    "mlp64-shallow": ("784-64-10", "threshold", {"fold": [(8, 56), (10, 16)], "pipelined": False}),
    "mlp-padded": ("784-50-30-10", "threshold", {"fold": [(7, 40), (4, 9), (3, 7)]}),
    "mlp-small": ("100-40-20-4", "threshold", {"fold": [(8, 20), (5, 8), (4, 5)], "banks": 3}),
    "mlp-tiny": ("37-11-6-5", "threshold", {"fold": [(4, 8), (3, 4), (2, 3)]}),
    "mlp-uint8": ("100-16-4", "uint8", {"fold": [(4, 10), (4, 4)]}),
    "mlp-uint8-196": ("196-32-10", "uint8", {"fold": [(2, 14), (2, 8)]}),
    "mlp-uint8-784": ("784-64-10", "uint8", {"target_cycles": 512}),
    "mlp-wide-pe": ("256-128-64-10", "threshold", {"fold": [(32, 16), (16, 32), (10, 16)]}),
    "mlp-wide-simd": ("256-128-64-10", "threshold", {"fold": [(2, 256), (2, 128), (1, 64)]}),
    "mlp-deep": ("196-96-96-96-96-10", "threshold", {"target_cycles": 192}),
    "mlp-deep-shallow": ("196-96-96-96-96-10", "threshold", {"target_cycles": 192, "pipelined": False}),
    "mlp-1k": ("784-1024-10", "threshold", {"target_cycles": 2048}),
    "cnn-tiny": ("1x12x12-4c3-mp2-8-3", "threshold", {}),
    "cnn-tiny-shallow": ("1x12x12-4c3-mp2-8-3", "threshold", {"pipelined": False}),
    "cnn-uint8": ("1x10x10-4c3-mp2-6-4", "uint8", {}),
    "cnn-pad": ("2x9x9-5c3p1-mp2-7-3", "threshold", {"fold": [(5, 2), (7, 5), (3, 7)]}),
    "cnn-two-conv": ("1x14x14-4c3p1-mp2-6c3-mp2-10", "threshold", {}),
    "cnn-kernel5": ("3x11x11-4c5p2-mp3-6-4", "threshold", {}),
    "cnn-mnist-8": ("1x28x28-8c3p1-mp2-16c3p1-mp2-32-10", "threshold", {"target_cycles": 14112}),
    "cnn-mnist-8-slow": ("1x28x28-8c3p1-mp2-16c3p1-mp2-32-10", "threshold", {"target_cycles": 56448}),
    "cnn-mnist-16": ("1x28x28-16c3p1-mp2-32c3p1-mp2-10", "threshold", {}),
    "cnn-mnist-16-slow": ("1x28x28-16c3p1-mp2-32c3p1-mp2-10", "threshold", {"target_cycles": 28224}),
    "cnn-mnist-16-uint8": ("1x28x28-16c3p1-mp2-32c3p1-mp2-10", "uint8", {"target_cycles": 14112}),
    "cnn-small": ("1x28x28-32c3p1-mp2-64c3p1-mp2-96c3p1-mp2-10", "threshold", {"target_cycles": 14112}),
    "cnn-small-fast": ("1x28x28-32c3p1-mp2-64c3p1-mp2-96c3p1-mp2-10", "threshold", {}),
    "cnn-3ch": ("3x16x16-16c3p1-mp2-32c3p1-mp2-64-10", "threshold", {"target_cycles": 4096}),
    "cnn-3ch-uint8": ("3x16x16-16c3p1-mp2-32c3p1-mp2-64-10", "uint8", {"target_cycles": 8192}),
    # the UP5K rows of docs/results.md
    "up5k-mlp": ("784-100-100-10", "threshold", {"target_cycles": 250}),
    "up5k-cnn": ("1x28x28-32c3p1-mp2-48c3p1-mp2-64c3p1-mp2-10", "threshold",
                 {"fold": [(8, 1), (3, 32), (4, 16), (1, 2)], "pipelined": False}),
}


def _yosys(rtl_dir: Path, device: str, work: Path) -> dict:
    """Yosys alone on ``rtl_dir`` for ``device``: the cells per part and each memory's mapping."""
    from bnncore.hw import synth
    from bnncore.hw.layer_cells import per_layer
    dev = synth._device(device)
    work.mkdir(parents=True, exist_ok=True)
    rtl = synth._load_rtl(rtl_dir, None)
    synth._stage(work, rtl_dir, rtl, None)
    (work / "synth.ys").write_text(synth._yosys_script(rtl, dev, "bnn_top"))
    seconds = synth._run([*synth.find_yosys(), "-q", "-l", "yosys.log", "-s", "synth.ys"], work, "synthesis",
                         "synthesis.out")
    log = (work / "yosys.log").read_text()
    memories = {m: via.strip("$_") for m, via in re.findall(r"mapping memory bnn_top\.(\S+) via (\S+)", log)}
    memories |= {m: "logic" for m in re.findall(r"using FF mapping for memory bnn_top\.(\S+)", log)}
    stat = json.loads((work / "stat.json").read_text())
    return {"seconds": round(seconds, 1), "total": dev.fpga_family.summary_cells(synth._cells(stat, "bnn_top")),
            "per_layer": per_layer(json.loads((work / "bnn.json").read_text()), "bnn_top", dev.fpga_family),
            "memories": dict(sorted(memories.items()))}


def _network(name: str, topology: str, scheme: str):
    """The design's network: random weights seeded by its name, as bench/corpus.py's."""
    return random_network(topology, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16), scheme, 1, "mixed")


def measure(name: str, out: str, devices=DEVICES) -> dict:
    from bnncore.exports import export
    topology, scheme, options = DESIGNS[name]
    folder = Path(out) / name
    net_dir = export(_network(name, topology, scheme), folder / "net", force=True)
    rtl = api.generate(net_dir, folder / "rtl", vhdl=False, force=True, **options)
    return {"topology": topology, "scheme": scheme, "options": options,
            "devices": {d: _yosys(rtl, d, folder / d) for d in devices}}


def design_plan(entry: dict, name: str):
    """The plan ``bnn rtl`` built for a recorded design (the same network, the same options)."""
    net = _network(name, entry["topology"], entry["scheme"])
    options = {k: [tuple(f) for f in v] if k == "fold" else v for k, v in entry["options"].items()}
    return api.plan(net, force=True, **options)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("measure", "fit", "check"))
    ap.add_argument("--only", help="comma-separated design names (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="designs synthesized at once (measure)")
    ap.add_argument("--out", default="build/estimate", help="where measure builds the designs")
    ap.add_argument("--devices", help=f"comma-separated devices to measure (default: {', '.join(DEVICES)})")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(DESIGNS)
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        ap.error(f"unknown designs {unknown}; expected some of {', '.join(DESIGNS)}")
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    if args.action == "measure":
        t0 = time.perf_counter()
        devices = args.devices.split(",") if args.devices else DEVICES
        with ProcessPoolExecutor(args.jobs) as pool:
            for name, entry in zip(names, pool.map(measure, names, [args.out] * len(names), [devices] * len(names))):
                if name in record:    # the devices measured before, not measured again, are kept
                    entry["devices"] = record[name]["devices"] | entry["devices"]
                record[name] = entry
                atomic_write_text(RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
                secs = ", ".join(f"{d} {e['seconds']} s" for d, e in entry["devices"].items())
                print(f"{name}: {secs} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        return 0
    from bnncore.hw import estimate
    missing = [n for n in names if n not in record]
    if missing:
        ap.error(f"not measured yet: {', '.join(missing)}; run: python bench/estimate.py measure --only "
                 + ",".join(missing))
    corpus = [(n, design_plan(record[n], n), record[n]["devices"]) for n in names]
    if args.action == "fit":
        costs = estimate.fit(corpus)
        atomic_write_text(estimate.COSTS_FILE, json.dumps(costs, indent=1) + "\n")
        print(f"wrote {estimate.COSTS_FILE}")
    print(estimate.error_table(corpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
