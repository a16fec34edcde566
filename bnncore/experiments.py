"""The seeds' experiments, one command each: ``bnn experiment NAME [--mode quick|full|tiny]``.

Each experiment is a list of independent training runs (seeded, so repeatable) and a report
that puts our numbers beside the seed report's. Runs execute in parallel worker processes,
one fresh process per run (so its peak memory is its own), and a finished run is never
redone: its ``result.json`` is the record, and an interrupted run resumes from its last
epoch's checkpoint. Every binary run is also folded and the folded (integer) network
evaluated on the test set by the golden model, beside the torch accuracy.

Modes: ``quick`` (default) trains few epochs so that each experiment takes minutes on two
cores; ``full`` uses the seeds' epoch counts where feasible; ``tiny`` (CI) trains one epoch
on 1,000 images to prove the command end to end.

Outputs in ``build/experiments/NAME/``: ``results.md`` (the table), ``results.json``, PNG
plots, and ``runs/<mode>/<run>/`` (each run's checkpoints, metrics and curve).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UsageError, VerificationError
from .experiment_reports import (BATCH_SIZES, DEEP_CNN, SEED001_NET, SEED003_CNN, _curves_report, _report_batch,
                                 _report_cnn, _report_fashion, _report_precision, _report_resnet)
from .fileio import atomic_write_text, read_json_object

__all__ = ["EXPERIMENTS", "run_experiment", "Run"]

log = logging.getLogger(__name__)

MODES = ("quick", "full", "tiny")


@dataclass(frozen=True)
class Run:
    """One training run: ``key`` names it (its directory), ``group`` is what it is a sample of."""
    key: str
    group: str
    config: dict


@dataclass(frozen=True)
class Experiment:
    name: str
    source: str                  # where in the seeds the experiment comes from
    summary: str
    epochs: dict                 # mode -> epochs
    plan: object                 # (epochs, seeds) -> list of Run
    report: object               # (experiment, results, mode, out_dir) -> markdown
    seeds: dict = field(default_factory=lambda: {"quick": 1, "full": 3, "tiny": 1})
    sequential: bool = False     # timing experiments: one run at a time, all cores to it
    datasets: tuple = ()         # the first one found is passed to plan(..., dataset=, mode=)
    limits: dict = field(default_factory=dict)   # mode -> training images per run (0 or absent: all)


def _runs(groups: dict, seeds: int, epochs: int, **common) -> list:
    return [Run(f"{g}-s{s}", g, {**common, **cfg, "epochs": epochs, "seed": s})
            for g, cfg in groups.items() for s in range(seeds)]


# --- the experiments ------------------------------------------------------------------------

def _plan_input(epochs, seeds):
    return _runs({"none": {"input": "none"}, "threshold": {"input": "threshold"},
                  "probability": {"input": "probability"}}, seeds, epochs, topology=SEED001_NET)


def _plan_binary_float(epochs, seeds):
    return _runs({"binary": {"binary": True}, "float": {"binary": False}}, seeds, epochs, topology=SEED001_NET)


def _plan_batchnorm(epochs, seeds):
    return _runs({"with BatchNorm": {"batchnorm": True}, "without BatchNorm": {"batchnorm": False}},
                 seeds, epochs, topology=SEED001_NET)


LR_SGD = (0.1, 0.5, 1.0, 1.5, 5.0)
LR_ADAM = (0.001, 0.01)


def _plan_lr(epochs, seeds):
    groups = {f"SGD lr={lr:g}": {"optimizer": "sgd", "lr": lr, "schedule": "const"} for lr in LR_SGD}
    groups.update({f"Adam lr={lr:g}": {"optimizer": "adam", "lr": lr} for lr in LR_ADAM})
    return _runs(groups, seeds, epochs, topology=SEED001_NET)


def _plan_batch(epochs, seeds):
    return _runs({f"batch {b}": {"batch_size": b} for b in BATCH_SIZES}, seeds, epochs, topology=SEED001_NET)


def _plan_fashion(epochs, seeds):
    groups = {}
    for topo in ("784-128-10", "784-1024-10"):
        groups[f"{topo} non-binary"] = {"topology": topo, "binary": False, "input": "none"}
        groups[f"{topo} binary deterministic"] = {"topology": topo}
        groups[f"{topo} binary stochastic"] = {"topology": topo, "stochastic": True}
    return _runs(groups, seeds, epochs, dataset="fashion-mnist")


SEED003_FLOAT = {"topology": SEED003_CNN, "binary": False, "batchnorm": False, "input": "none", "optimizer": "sgd",
                 "lr": 0.01, "schedule": "const"}


def _plan_cnn(epochs, seeds):
    return _runs({
        "float CNN (seed 003's)": {**SEED003_FLOAT, "batch_size": 128, "limit": 10000},
        "binary CNN, same topology": {"topology": SEED003_CNN, "pool_order": "before", "batch_size": 128,
                                      "limit": 10000},
        "deeper binary CNN, full training set": {"topology": DEEP_CNN, "pool_order": "before", "shift": 2,
                                                 "dropout": 0.2, "schedule": "cosine", "lr_end": 1e-5},
    }, seeds, epochs)


def _plan_precision(epochs, seeds):
    common = {**SEED003_FLOAT, "batch_size": 100, "limit": 2000}
    groups = {"fw32bw32": {"precision": "fw32bw32"}}
    for half in ("float16", "bfloat16"):
        for p in ("fw16bw32", "fw16bw16"):
            groups[f"{p} {half}"] = {"precision": p, "half": half}
    return _runs(groups, seeds, epochs, **common)


RESNET_DEPTHS = {"quick": (14, 32), "full": (14, 32, 110), "tiny": (14,)}
_SHAPES = {"cifar-10": "3x32x32", "fashion-mnist": "1x28x28"}


def _plan_resnet(epochs, seeds, dataset="fashion-mnist", mode="quick"):
    groups = {}
    for d in RESNET_DEPTHS[mode]:
        topo = f"{_SHAPES[dataset]}-resnet{d}-10"
        common = {"dataset": dataset, "topology": topo, "input": "none", "optimizer": "sgd", "momentum": 0.9,
                  "lr": 0.1, "lr_end": 1e-3, "schedule": "cosine", "batch_size": 128,
                  "shift": 4 if dataset == "cifar-10" else 2, "flip": dataset == "cifar-10"}
        groups[f"ResNet-{d} float"] = {**common, "binary": False}
        groups[f"ResNet-{d} XNOR-Net weights"] = {**common, "weight_scale": "filter"}
        groups[f"ResNet-{d} DoReFa weights"] = {**common, "weight_scale": "layer"}
        groups[f"ResNet-{d} binary weights and activations"] = {**common, "weight_scale": "filter",
                                                                "binary_act": True, "input_scaling": True}
    return _runs(groups, seeds, epochs)


# --- results --------------------------------------------------------------------------------


_report_input = _curves_report(
    f"{SEED001_NET} on MNIST: input binarization", {"none": "91.99", "threshold": "89.24", "probability": "91.98"},
    "seed 001 (avg of 4 runs)")
_report_binary_float = _curves_report(
    f"{SEED001_NET} on MNIST: binary vs float linear layers",
    {"binary": "87.6 (88.29, 87.32, 87.19)", "float": "97.2 (97.43, 96.98, 97.20)"}, "seed 001 (50 epochs, 3 runs)")
_report_batchnorm = _curves_report(
    f"{SEED001_NET} on MNIST: with and without BatchNorm",
    {"with BatchNorm": "clearly better at every epoch (figure 3.3)", "without BatchNorm": "stuck at 79–82% (figure 3.3)"},
    "seed 001")
_report_lr = _curves_report(
    f"{SEED001_NET} on MNIST: learning rates",
    {"SGD lr=1.5": "chosen (with 1.0 the best, figure 4.1)", "SGD lr=5": "overshoots from epoch 17",
     "SGD lr=0.1": "below 1: too slow", "SGD lr=0.5": "below 1: too slow", "SGD lr=1": "among the best"},
    "seed 001 (20 epochs, plain SGD)")


EXPERIMENTS = {e.name: e for e in (
    Experiment("input-binarization", "seed 001, section 5.1.3 (table 5.7)",
               "non-binarized (float) vs threshold vs probability input", {"quick": 3, "full": 50, "tiny": 1},
               _plan_input, _report_input, seeds={"quick": 2, "full": 4, "tiny": 1}),
    Experiment("binary-vs-float", "seed 001, section 3.4 (figure 3.4)", "binary vs float linear layers, 3 runs each",
               {"quick": 3, "full": 50, "tiny": 1}, _plan_binary_float, _report_binary_float,
               seeds={"quick": 3, "full": 3, "tiny": 1}),
    Experiment("batchnorm", "seed 001, section 3.3 (figure 3.3)", "with and without BatchNorm, accuracy per epoch",
               {"quick": 5, "full": 50, "tiny": 1}, _plan_batchnorm, _report_batchnorm),
    Experiment("learning-rate", "seed 001, section 4.1 (figure 4.1)",
               "accuracy per epoch for plain SGD learning rates and Adam", {"quick": 3, "full": 20, "tiny": 1},
               _plan_lr, _report_lr),
    Experiment("batch-size", "seed 001, sections 4.2-4.3 (figures 4.2, 4.3)",
               "accuracy and seconds per epoch for batch sizes 10 to 1000", {"quick": 2, "full": 20, "tiny": 1},
               _plan_batch, _report_batch, sequential=True),
    Experiment("fashion", "seed 002, section IV (tables A-D)",
               "784-128-10 and 784-1024-10 on Fashion-MNIST: binary vs non-binary, deterministic vs stochastic",
               {"quick": 5, "full": 200, "tiny": 1}, _plan_fashion, _report_fashion),
    Experiment("cnn", "seed 003, section 1 (the CNN and its Keras comparison)",
               "seed 003's float CNN beside its binarized version and a deeper binary CNN on the full set",
               {"quick": 3, "full": 20, "tiny": 1}, _plan_cnn, _report_cnn),
    Experiment("cnn-precision", "seed 003, section 3 (the precision table)",
               "fw32bw32, fw16bw32 and fw16bw16 training of seed 003's CNN: time, loss and accuracy at epochs 1, 5, 10",
               {"quick": 10, "full": 10, "tiny": 1}, _plan_precision, _report_precision, sequential=True),
    Experiment("binary-resnet", "seed 004, section 3.1 (tables 3.1, 3.2)",
               "ResNet-(6n+2) with XNOR-Net and DoReFa binary weights, and with binary weights and activations",
               {"quick": 3, "full": 15, "tiny": 1}, _plan_resnet, _report_resnet,
               datasets=("cifar-10", "fashion-mnist"), limits={"quick": 10000}),
)}


# --- execution ------------------------------------------------------------------------------

def _execute(run: dict, run_dir: str, data_dir, threads: int, tiny: bool) -> dict:
    """Train one run in this (fresh) process, fold it if binary; return its result."""
    import resource

    import torch

    from .data import load_dataset
    from .training import TrainConfig, load_checkpoint, train
    out = Path(run_dir)
    cfg = TrainConfig(**{**run["config"], **({"limit": 1000} if tiny else {})})
    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    metrics = train(cfg, out, data_dir=data_dir, resume=True, progress=False)
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    best = metrics["best"]
    result = {"key": run["key"], "group": run["group"], "config": asdict(cfg), "epochs": epochs,
              "best_epoch": best["epoch"], "test_acc": best["test_acc"], "val_acc": best["val_acc"],
              "train_acc": best["train_acc"], "last_test_acc": epochs[-1]["test_acc"],
              "seconds_per_epoch": statistics.fmean(e["seconds"] for e in epochs),
              "total_seconds": sum(e["seconds"] for e in epochs),
              "wall_seconds": time.perf_counter() - t0,
              "folded_acc": None, "fold_mismatches": None}
    if cfg.foldable:
        from .folding import fold_with_report, verify
        model, cfg_b, _ = load_checkpoint(out / "best.pt")
        net, _ = fold_with_report(model, cfg_b.binarization())
        ds = load_dataset(cfg.dataset, data_dir, val_size=cfg.val_size)
        check = verify(net, model, ds.test_images, ds.test_labels)
        result["folded_acc"] = check["folded_accuracy"]
        result["fold_mismatches"] = check["class_mismatches"]
    result["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def _plan(exp: Experiment, mode: str, data_dir) -> list:
    """The runs of ``exp`` in ``mode``: on the first of its datasets that is present, with the
    mode's training-image limit."""
    if exp.datasets:
        from .data import DataError, find_dataset_dir
        for dataset in exp.datasets:
            try:
                find_dataset_dir(dataset, data_dir)
                break
            except DataError:
                continue
        runs = exp.plan(exp.epochs[mode], exp.seeds[mode], dataset=dataset, mode=mode)
    else:
        runs = exp.plan(exp.epochs[mode], exp.seeds[mode])
    limit = 1000 if mode == "tiny" else exp.limits.get(mode)      # tiny: what _execute trains on
    return [Run(r.key, r.group, {**r.config, "limit": limit}) if limit else r for r in runs]


#: What one training run asks a Ray cluster for, besides its threads: the dataset, torch and
#: the model, with room to spare (the runs' peak_mem_mb in results.json says what they took).
RUN_MEMORY_MIB = 2048


#: what a run's result.json holds
_RESULT_FIELDS = ("key", "group", "config", "epochs", "best_epoch", "test_acc", "val_acc", "train_acc",
                  "last_test_acc", "seconds_per_epoch", "total_seconds", "wall_seconds", "folded_acc",
                  "fold_mismatches")


def run_experiment(name: str, *, mode: str = "quick", out_root="build/experiments", data_dir=None,
                   jobs: int | None = None, progress: bool | None = None, ray: str | None = None,
                   threads: int | None = None) -> dict:
    """Run (or resume) experiment ``name``; write its table, JSON and plots; return the summary.

    ``ray``: run each training run as a task of the Ray cluster at that address (``auto``: the
    one this machine belongs to), asking for ``threads`` CPUs and ``RUN_MEMORY_MIB``; default:
    ``jobs`` local processes. ``threads``: torch threads per run (default: the cores divided
    among the local jobs). A run finished by an earlier call (its result.json) is not redone."""

    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    exp = EXPERIMENTS[name]
    out = Path(out_root) / name
    from .fileio import OutputDirError, check_output, workspace
    try:
        check_output(out, "experiment", lambda d: set() if (d / "runs").is_dir() else None, in_place=True)
        runs = _plan(exp, mode, data_dir)
        with workspace(out, "experiment", lambda d: set() if (d / "runs").is_dir() else None):
            return _run_experiment(exp, name, mode, out, runs, data_dir, jobs, ray, threads, progress)
    except OutputDirError as e:
        raise UsageError(str(e)) from None


def _run_experiment(exp, name, mode, out, runs, data_dir, jobs, ray, threads, progress) -> dict:
    from tqdm import tqdm

    from .cluster import run_all
    cores = os.cpu_count() or 1
    jobs = 1 if exp.sequential else max(1, min(jobs or cores, len(runs)))
    threads = threads or max(1, cores // jobs)
    results, todo = {}, []
    for run in runs:
        run_dir = out / "runs" / mode / run.key.replace(" ", "_").replace("=", "")
        done = run_dir / "result.json"
        if done.exists():
            r = read_json_object(done, UsageError, "")
            missing = [k for k in _RESULT_FIELDS if k not in r] + (
                [] if isinstance(r.get("config"), dict) and isinstance(r.get("epochs"), list) else ["config/epochs"])
            if missing:
                raise UsageError(f"{done}: field '{missing[0]}' missing or of the wrong type; not a result of bnn "
                                 f"experiment (remove {run_dir} to run that run again)")
            if {k: r["config"].get(k) for k in run.config} == run.config:
                results[run.key] = r
                continue
        todo.append((run, run_dir))
    if results:
        log.info("%s: %d of %d runs already done, skipped", name, len(results), len(runs))
    if progress is None:
        progress = os.isatty(2)
    t0 = time.perf_counter()
    if todo:
        where = "on Ray" if ray else f"{jobs} in parallel"
        bar = tqdm(total=len(todo), desc=f"{name} ({mode}, {where})", unit="run", disable=not progress)
        # absolute paths: a Ray worker does not run in this directory
        args = [(asdict(run), str(d.resolve()), None if data_dir is None else str(Path(data_dir).resolve()),
                 threads, mode == "tiny") for run, d in todo]
        for k, r in run_all(_execute, args, workers=jobs, ray=ray, cpus=threads, memory_mib=RUN_MEMORY_MIB,
                            fresh_process=True):
            run = todo[k][0]
            results[run.key] = r
            bar.update()
            log.info("%s: %s done: test %.2f%%%s, %.1f s/epoch", name, run.key, 100 * r["test_acc"],
                     f", folded {100 * r['folded_acc']:.2f}%" if r["folded_acc"] is not None else "",
                     r["seconds_per_epoch"])
        bar.close()
    ordered = [results[r.key] for r in runs]
    bad = [r["key"] for r in ordered if r.get("fold_mismatches")]
    if bad:
        raise VerificationError(f"{name}: folded network disagrees with torch for runs {bad}")
    lines = exp.report(exp, ordered, mode, out)
    import platform
    machine = f"{platform.processor() or platform.machine()}, {cores} cores, torch {_torch_version()}"
    header = [f"# {name} ({mode} mode)", "", f"From {exp.source}: {exp.summary}.", "",
              f"Epochs per run: {exp.epochs[mode]}; runs per configuration: {exp.seeds[mode]}; "
              f"{'Ray tasks' if ray else 'one run at a time' if jobs == 1 else f'{jobs} runs in parallel'}, "
              f"{threads} torch thread(s) each; machine: {machine}.", "",
              f"Command: `bnn experiment {name} --mode {mode}`", ""]
    atomic_write_text(out / "results.md", "\n".join(header + lines) + "\n")
    summary = {"experiment": name, "mode": mode, "source": exp.source, "machine": machine,
               "epochs": exp.epochs[mode], "jobs": jobs, "threads": threads,
               "wall_seconds": time.perf_counter() - t0, "runs": ordered}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _torch_version() -> str:
    import torch
    return str(torch.__version__)
