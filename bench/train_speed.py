"""Seconds per training epoch, binary vs float baseline of the same topology, in one run.

    python bench/train_speed.py [--data-dir DIR] [--topology T] [--batch-size B] [--epochs N]

Both models train on the full 50,000-image MNIST training split with the same data pipeline,
optimizer (fused Adam) and batch size; the table shows the mean over the epochs after the
first (warm-up) and the ratio binary / float (goal: <= 1.3).
"""

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from bnncore.train import TrainConfig, train


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--topology", default="784-1024-1024-1024-10")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for binary in (True, False):
        cfg = TrainConfig(topology=args.topology, batch_size=args.batch_size, epochs=args.epochs,
                          binary=binary, schedule="const")
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, tmp, data_dir=args.data_dir, progress=False)
            rows = json.loads((Path(tmp) / "metrics.json").read_text())["epochs"]
        timed = rows[1:] if len(rows) > 1 else rows
        results[binary] = (sum(r["seconds"] for r in timed) / len(timed), rows[-1]["test_acc"])
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.topology}\n")
    print("| model | s/epoch | test acc after %d epochs |" % args.epochs)
    print("|---|---|---|")
    for binary in (True, False):
        s, acc = results[binary]
        print(f"| {'binary' if binary else 'float'} | {s:.2f} | {100 * acc:.2f}% |")
    print(f"\nratio binary / float: {results[True][0] / results[False][0]:.2f} (goal <= 1.3)")


if __name__ == "__main__":
    main()
