"""The seed reports' tables and plots of an experiment's runs: accuracy per group beside the
seeds' numbers, training curves, timings."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from .fileio import atomic_savefig

SEED001_NET = "784-500-1024-1024-10"
BATCH_SIZES = (10, 50, 100, 150, 200, 500, 1000)
# seed 003: a float CNN (12 3x3 filters, ReLU, 2x2 max-pool, dense + softmax), plain
# mini-batch gradient descent, batch 128, lr 0.01, 10,000 training images
SEED003_CNN = "1x28x28-12c3-mp2-10"
DEEP_CNN = "1x28x28-32c3p1-mp2-64c3p1-mp2-256-10"


def _stat(values, fmt: str = ".2f") -> str:
    """Mean, and with several values their standard deviation and count."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} ± {statistics.stdev(values):{fmt}} (n={len(values)})"


def _by_group(results: list) -> dict:
    groups = {}
    for r in results:
        groups.setdefault(r["group"], []).append(r)
    return groups


def _pct(results, key):
    return _stat([100 * r[key] if r.get(key) is not None else None for r in results])


def _plot_curves(groups: dict, path: Path, title: str, key: str = "test_acc", ylabel: str = "test accuracy (%)"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, runs in groups.items():
        n = min(len(r["epochs"]) for r in runs)
        mean = [statistics.fmean(100 * r["epochs"][e][key] for r in runs) for e in range(n)]
        ax.plot(range(1, n + 1), mean, marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path)


def _accuracy_table(groups: dict, seed_numbers: dict, seed_label: str) -> list:
    lines = [f"| run | {seed_label} | ours: test accuracy % (torch) | ours: folded (integer) % | "
             "best epoch | s/epoch |", "|---|---|---|---|---|---|"]
    for name, runs in groups.items():
        lines.append(f"| {name} | {seed_numbers.get(name, '—')} | {_pct(runs, 'test_acc')} | "
                     f"{_pct(runs, 'folded_acc')} | {_stat([r['best_epoch'] for r in runs], '.1f')} | "
                     f"{_stat([r['seconds_per_epoch'] for r in runs])} |")
    return lines


def _curves_report(title: str, seed: dict, seed_label: str):
    """A report: test accuracy per epoch of every configuration, and the accuracy table with
    the seed's numbers (``seed``: configuration -> what the seed reports) beside ours."""
    def report(exp, results, mode, out):
        groups = _by_group(results)
        _plot_curves(groups, out / "curves.png", title)
        return _accuracy_table(groups, seed, seed_label) + ["", "![curves](curves.png)"]
    return report


SEED_BATCH_SECONDS = dict(zip(BATCH_SIZES, (30.68, 11.33, 8.76, 7.95, 7.63, 6.66, 6.39)))


def _report_batch(exp, results, mode, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = _by_group(results)
    _plot_curves(groups, out / "curves.png", f"{SEED001_NET} on MNIST: batch sizes")
    sizes = [b for b in BATCH_SIZES if f"batch {b}" in groups]
    ours = [statistics.fmean(r["seconds_per_epoch"] for r in groups[f"batch {b}"]) for b in sizes]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, ours, "o-", label="bnncore (this machine, CPU)")
    ax.plot(sizes, [SEED_BATCH_SECONDS[b] for b in sizes], "s--", label="seed 001")
    ax.set_xscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("seconds per epoch")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, out / "seconds.png")
    lines = ["| batch size | seed 001: s/epoch | ours: s/epoch | ours: test accuracy % | ours: folded % |",
             "|---|---|---|---|---|"]
    for b in sizes:
        runs = groups[f"batch {b}"]
        lines.append(f"| {b} | {SEED_BATCH_SECONDS[b]} | {_stat([r['seconds_per_epoch'] for r in runs])} | "
                     f"{_pct(runs, 'test_acc')} | {_pct(runs, 'folded_acc')} |")
    return lines + ["", "![seconds per epoch](seconds.png) ![curves](curves.png)"]


SEED_FASHION = {
    "784-128-10 non-binary": ("83.80", "82.50", "7084", "7", "1016.32"),
    "784-128-10 binary deterministic": ("68.70", "67.90", "5073", "5", "869.63"),
    "784-128-10 binary stochastic": ("69.20", "68.30", "—", "—", "—"),
    "784-1024-10 non-binary": ("90.60", "87.20", "28496", "28.5", "1867.32"),
    "784-1024-10 binary deterministic": ("87.10", "85.10", "16293", "16.3", "1364.09"),
    "784-1024-10 binary stochastic": ("84.00", "82.60", "—", "—", "923.57"),
}


def _report_fashion(exp, results, mode, out):
    groups = _by_group(results)
    _plot_curves(groups, out / "curves.png", "Fashion-MNIST: architectures and binarization")
    lines = ["| network | train % (seed / ours) | test % (seed / ours) | ours: folded % | total s (seed / ours) | "
             "s/epoch (seed / ours) | peak memory MB (seed / ours) |", "|---|---|---|---|---|---|---|"]
    for name, runs in groups.items():
        s = SEED_FASHION.get(name, ("—",) * 5)
        lines.append(f"| {name} | {s[0]} / {_pct(runs, 'train_acc')} | {s[1]} / {_pct(runs, 'test_acc')} | "
                     f"{_pct(runs, 'folded_acc')} | {s[2]} / {_stat([r['total_seconds'] for r in runs])} | "
                     f"{s[3]} / {_stat([r['seconds_per_epoch'] for r in runs])} | "
                     f"{s[4]} / {_stat([r['peak_mem_mb'] for r in runs], '.0f')} |")
    return lines + ["", "![curves](curves.png)"]


def _report_cnn(exp, results, mode, out):
    groups = _by_group(results)
    _plot_curves(groups, out / "curves.png", "MNIST: seed 003's CNN, float and binary, and a deeper binary CNN")
    seed = {"float CNN (seed 003's)": "about 75% after epoch 2 (text); 20-epoch curves in figures only"}
    lines = _accuracy_table(groups, seed, "seed 003")
    lines += ["", "Test accuracy on all 10,000 test images (seed 003: 1,000). The float CNN is seed 003's: "
              f"`{SEED003_CNN}` without BatchNorm, plain SGD at lr 0.01, batch 128, the first 10,000 training "
              "images. Its binary version keeps the topology (binary weights and activations, BatchNorm, the "
              f"max-pool before it, Adam); the deeper one is `{DEEP_CNN}` on the whole training set with random "
              "shifts of up to 2 pixels. Binary runs are folded and their integer networks evaluated by the "
              "golden model.", "", "![curves](curves.png)"]
    return lines


#: seed 003's table: (time, then train and test "loss / acc" at epochs 1, 5, 10)
SEED_PRECISION = {
    "fw32bw32": ("61.89 min", "4.89 / 0.42", "1.17 / 0.61", "0.70 / 0.78", "0.78 / 0.82", "0.58 / 0.82", "0.73 / 0.74"),
    "fw16bw32": ("62.27 min", "4.46 / 0.40", "1.04 / 0.68", "0.73 / 0.77", "0.73 / 0.83", "0.54 / 0.84", "0.64 / 0.77"),
    "fw16bw16": ("57.02 min", "4.00 / 0.45", "0.96 / 0.72", "0.67 / 0.79", "0.60 / 0.85", "0.51 / 0.83", "0.51 / 0.86"),
}


def _report_precision(exp, results, mode, out):
    groups = _by_group(results)
    _plot_curves(groups, out / "curves.png", f"{SEED003_CNN} on 2,000 MNIST images: 16-bit training")
    _plot_curves(groups, out / "loss.png", "training loss", key="loss", ylabel="training loss (x100)")
    marks = [e for e in (1, 5, 10) if e <= exp.epochs[mode]]
    head = "| run | 16-bit type | total time (seed / ours) | " + " | ".join(
        f"epoch {e} train loss / acc | epoch {e} test loss / acc" for e in marks) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(marks))]
    for name, runs in groups.items():
        kind = name.split()[0]
        seed = SEED_PRECISION.get(kind, ("—",) * 7)
        half = "—" if kind == "fw32bw32" else runs[0]["config"]["half"]
        cells = [name, half, f"{seed[0]} / {_stat([r['total_seconds'] for r in runs])} s"]
        for i, e in enumerate(marks):
            at = lambda key: _stat([r["epochs"][e - 1][key] for r in runs])
            cells.append(f"seed {seed[1 + 2 * i]}; ours {at('loss')} / {at('train_acc')}")
            cells.append(f"seed {seed[2 + 2 * i]}; ours {at('test_loss')} / {at('test_acc')}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Seed 003 trained its NumPy CNN (float64 by default) in 16-bit NumPy floats, IEEE binary16. "
              "The rows with `float16` use the same type in torch on the CPU; the rows with `bfloat16` use the "
              "16-bit type CPUs accelerate for training (bfloat16 keeps float32's exponent range, so nothing "
              "underflows; float16 keeps more mantissa bits). fw16bw32: the forward pass in 16 bits "
              "(torch.autocast), weights, gradients and updates in float32; fw16bw16: weights, activations and "
              "gradients all 16-bit. Same network and settings as the seed (no BatchNorm, plain SGD at lr 0.01, "
              "batch 100, 2,000 training images); our test figures are on all 10,000 test images "
              "(the seed's on 500).", "", "![accuracy](curves.png)"]
    return lines


#: seed 004, tables 3.1 and 3.2 (CIFAR-10, lr 0.1; 15 epochs for n = 2 and 5, 20 for n = 18)
SEED_RESNET = {
    "ResNet-14 float": "0.80", "ResNet-32 float": "0.82", "ResNet-110 float": "0.84",
    "ResNet-14 XNOR-Net weights": "0.77", "ResNet-32 XNOR-Net weights": "0.81", "ResNet-110 XNOR-Net weights": "0.82",
    "ResNet-14 DoReFa weights": "0.77 (0.78 at 25 epochs)", "ResNet-32 DoReFa weights": "0.75 (0.80 at 40)",
    "ResNet-110 DoReFa weights": "0.79 (0.80 at 40)",
    "ResNet-14 binary weights and activations": "learned only in the first few rounds",
    "ResNet-32 binary weights and activations": "did not learn (from 3 blocks on)",
    "ResNet-110 binary weights and activations": "did not learn",
}


def _report_resnet(exp, results, mode, out):
    groups = _by_group(results)
    dataset = results[0]["config"]["dataset"] if results else "?"
    _plot_curves(groups, out / "curves.png", f"{dataset}: ResNet-(6n+2) with binary weights")
    lines = _accuracy_table(groups, SEED_RESNET, "seed 004 (CIFAR-10)")
    where = ("CIFAR-10, as seed 004" if dataset == "cifar-10" else
             "**Fashion-MNIST**: CIFAR-10 was not found in the data directories (`bnn data fetch cifar-10` "
             "downloads it), so these numbers are not comparable with the seed's CIFAR-10 column")
    lines += ["", f"Dataset: {where}. He et al.'s CIFAR ResNet (option A shortcuts); the first convolution and "
              "the classifier stay float. XNOR-Net weights: sign(W) times the mean |W| per output channel; "
              "DoReFa: times one mean |W| per layer; binary weights and activations: XNOR-Net's, with the "
              "input scaling K. SGD with momentum 0.9 at lr 0.1, cosine to 0.001, batch 128, random crops"
              + (" and flips" if dataset == "cifar-10" else "") + ". These networks train in torch; residual "
              "networks do not fold to XNOR-popcount thresholds.", "", "![curves](curves.png)"]
    return lines
