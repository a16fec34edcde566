"""Seconds per training epoch, binary vs float baseline of the same topology, in one run.

    python bench/train_speed.py [--data-dir DIR] [--topology T ...] [--batch-size B] [--epochs N]

For each topology (default: the 3x1024 MLP and a binary CNN), both models train on the full
50,000-image MNIST training split with the same data pipeline, optimizer (fused Adam) and
batch size; the table shows the mean over the epochs after the first (warm-up) and the ratio
binary / float (goals: MLP <= 1.3, CNN <= 1.5).
"""

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from bnncore.topology import parse
from bnncore.training import TrainConfig, train


TOPOLOGIES = ["784-1024-1024-1024-10", "1x28x28-32c3p1-mp2-64c3p1-mp2-256-10"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--topology", action="append", help=f"(repeatable; default: {', '.join(TOPOLOGIES)})")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows_out = []
    for topology in args.topology or TOPOLOGIES:
        results = {}
        for binary in (True, False):
            cfg = TrainConfig(topology=topology, batch_size=args.batch_size, epochs=args.epochs,
                              binary=binary, schedule="const", pool_order="before")
            with tempfile.TemporaryDirectory() as tmp:
                train(cfg, tmp, data_dir=args.data_dir, progress=False)
                rows = json.loads((Path(tmp) / "metrics.json").read_text())["epochs"]
            timed = rows[1:] if len(rows) > 1 else rows
            results[binary] = (sum(r["seconds"] for r in timed) / len(timed), rows[-1]["test_acc"])
        goal = 1.3 if parse(topology).is_mlp else 1.5
        rows_out.append((topology, results, goal))
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.epochs} epochs\n")
    print("| topology | binary s/epoch | float s/epoch | binary / float | goal | test acc binary / float |")
    print("|---|---|---|---|---|---|")
    for topology, r, goal in rows_out:
        print(f"| {topology} | {r[True][0]:.2f} | {r[False][0]:.2f} | {r[True][0] / r[False][0]:.2f} | <= {goal} | "
              f"{100 * r[True][1]:.2f}% / {100 * r[False][1]:.2f}% |")


if __name__ == "__main__":
    main()
