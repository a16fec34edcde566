"""Co-simulation table: simulator, network, images, mismatches, cycles per image, wall seconds
(simulation run, build excluded), images per second.

    python bench/sim_speed.py --rtl build/rtl --net build/net [--data-dir DIR]
        [--runs verilator:10000 icarus:1000 ghdl:1000]

Every image goes through the RTL and is compared with the golden model, exactly.
"""

import argparse
from pathlib import Path

from bnncore.data import load_dataset
from bnncore.exports import load
from bnncore.sim.runner import simulate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtl", required=True)
    ap.add_argument("--net", required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--runs", nargs="+", default=["verilator:10000", "icarus:1000", "ghdl:1000"])
    ap.add_argument("--out", default="build/bench/sim")
    args = ap.parse_args()
    net = load(args.net)
    ds = load_dataset(args.dataset, args.data_dir)
    rows = []
    for spec in args.runs:
        sim, n = spec.split(":")
        n = int(n)
        bits = net.input.bits(ds.test_images[:n])
        print(f"{sim}: {n} images ...", flush=True)
        r = simulate(args.rtl, args.net, bits, sim=sim, build_dir=Path(args.out) / f"{sim}-{n}", labels=ds.test_labels[:n])
        rows.append((sim, r))
    topo = "-".join(map(str, net.topology))
    print("\n| simulator | network | images | mismatches | cycles/image | build s | wall s | images/s | accuracy (RTL = golden) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sim, r in rows:
        print(f"| {sim} | {topo} | {r['images']} | {r['mismatches']} | {r['cycles'] / r['images']:.1f} | {r['build_s']:.0f} | "
              f"{r['run_s']:.1f} | {r['images'] / r['run_s']:,.0f} | {100 * r['accuracy']:.2f}% |")


if __name__ == "__main__":
    main()
