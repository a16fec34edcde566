"""Train the issue's reference networks and print a table of test accuracies.

    python bench/train_accuracy.py [--data-dir DIR] [--threads N] [--only NAME] [--epochs-scale F]

Each run goes to build/bench/train/<name>/ through `bnn train --resume`, so an interrupted
benchmark continues where it stopped. Accuracy is on the 10,000-image test set at the epoch
with the best validation accuracy (W1A1, 1-bit inputs unless stated).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bnncore.topology import parse

# name: (target test accuracy, reference, bnn train arguments)
RUNS = {
    "mnist-3x256": (0.979, "Brevitas 97.81%", [
        "--dataset", "mnist", "--topology", "784-256-256-256-10", "--input", "threshold",
        "--epochs", "40", "--dropout-in", "0.2", "--dropout", "0.2",
        "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
    "mnist-3x1024": (0.989, "Brevitas 98.88%, FINN 98.4%", [
        "--dataset", "mnist", "--topology", "784-1024-1024-1024-10", "--input", "threshold",
        "--epochs", "60", "--dropout-in", "0.2", "--dropout", "0.3",
        "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
    "mnist-seed001-prob": (0.98, "seed 001 92%", [
        "--dataset", "mnist", "--topology", "784-500-1024-1024-10", "--input", "probability",
        "--epochs", "40", "--dropout", "0.2",
        "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
    "fashion-3x1024": (0.90, "seed 002 85.1% (784-1024-10)", [
        "--dataset", "fashion-mnist", "--topology", "784-1024-1024-1024-10", "--input", "threshold",
        "--epochs", "40", "--dropout-in", "0.1", "--dropout", "0.3",
        "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
    # binary CNNs: weights and activations +-1, padding with +1, max-pool before BatchNorm (FINN's order)
    "mnist-cnn": (0.993, "BinaryNet/FINN-style binary CNNs 99.3-99.5%", [
        "--dataset", "mnist", "--topology", "1x28x28-32c3p1-32c3p1-mp2-64c3p1-64c3p1-mp2-512-10",
        "--input", "threshold", "--epochs", "30", "--shift", "2", "--pool-order", "before", "--loss", "hinge", "--batch-size", "50",
        "--val-size", "5000", "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
    "mnist-cnn-small": (0.988, "<= 100,000 weight bits (iCE40 UP5K block RAM)", [
        "--dataset", "mnist", "--topology", "1x28x28-32c3p1-mp2-64c3p1-mp2-96c3p1-mp2-10", "--input", "threshold",
        "--epochs", "20", "--shift", "1", "--pool-order", "before", "--loss", "hinge", "--batch-size", "100",
        "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
    "mnist-cnn-up5k": (0.988, "fits the iCE40 UP5K with the accelerator's buffers (docs/results.md)", [
        "--dataset", "mnist", "--topology", "1x28x28-32c3p1-mp2-48c3p1-mp2-64c3p1-mp2-10", "--input", "threshold",
        "--epochs", "20", "--shift", "1", "--pool-order", "before", "--loss", "hinge", "--batch-size", "100",
        "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
    "fashion-cnn": (0.915, "float CNNs of this size 92-93%; seed 002 85.1%", [
        "--dataset", "fashion-mnist", "--topology", "1x28x28-32c3p1-32c3p1-mp2-64c3p1-64c3p1-mp2-512-10",
        "--input", "uint8", "--epochs", "40", "--shift", "1", "--no-flip", "--pool-order", "before", "--batch-size", "50",
        "--val-size", "5000",
        "--lr", "0.01", "--lr-end", "1e-5", "--schedule", "cosine"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--only", action="append", choices=list(RUNS))
    ap.add_argument("--out", default="build/bench/train")
    args = ap.parse_args()
    rows = []
    for name in args.only or RUNS:
        target, ref, train_args = RUNS[name]
        out = Path(args.out) / name
        cmd = [sys.executable, "-m", "bnncore.cli", "train", *train_args, "-o", str(out), "--resume",
               "--threads", str(args.threads)]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        print("$", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True)
        m = json.loads((out / "metrics.json").read_text())
        best = m["best"]
        secs = sum(r["seconds"] for r in m["epochs"]) / len(m["epochs"])
        topo = m["config"]["topology"]
        rows.append((name, topo, parse(topo).weight_bits, m["config"]["input"], best["epoch"], len(m["epochs"]),
                     best["test_acc"], target, ref, secs))
    print()
    print("| run | topology | weight bits | input | best epoch | epochs | test acc | target | reference | s/epoch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, topo, bits, inp, be, ep, acc, target, ref, secs in rows:
        flag = "" if acc >= target else " (below)"
        print(f"| {name} | {topo} | {bits:,} | {inp} | {be} | {ep} | {100 * acc:.2f}%{flag} | >= {100 * target:.1f}% "
              f"| {ref} | {secs:.1f} |")


if __name__ == "__main__":
    main()
