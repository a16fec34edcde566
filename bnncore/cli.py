"""The ``bnn`` command line: one subcommand per stage of the flow."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import textwrap
import traceback
from dataclasses import MISSING, asdict, fields
from fractions import Fraction
from pathlib import Path

from . import __version__
from .errors import BnnError, UsageError, VerificationError

#: data.NAMES, spelt out so that `bnn --help` does not import NumPy (tests check they agree).
DATASET_NAMES = ("mnist", "fashion-mnist", "cifar-10")

log = logging.getLogger("bnncore")

_TRAIN_HELP = {
    "dataset": "dataset: mnist, fashion-mnist or cifar-10",
    "topology": "layers, input to classes: sizes (784-1024-1024-10) or, for a CNN, CxHxW then convolutions "
                "(32c3, 32c3p1: padding 1), max-pools (mp2) and sizes, e.g. 1x28x28-32c3-mp2-64c3-mp2-256-10",
    "input": "input: threshold, probability (1-bit), uint8 (the first layer sees raw pixels) or none "
             "(float, not foldable)",
    "level": "threshold level: a pixel bit is 1 when pixel >= LEVEL",
    "repeats": "probability input: freshly sampled passes over the training set per epoch",
    "binary": "binary weights and activations (--no-binary: float baseline of the same topology)",
    "batchnorm": "BatchNorm after each hidden linear layer",
    "bias": "bias in the hidden linear layers",
    "stochastic": "stochastic binary activations while training (hard-sigmoid probability)",
    "dropout_in": "dropout probability on the input while training",
    "dropout": "dropout probability on hidden activations while training",
    "shift": "augmentation: translate training images by up to +-SHIFT pixels (a random crop of the image "
             "padded by SHIFT), resampled each epoch",
    "flip": "augmentation: mirror training images left-right with probability 1/2 (CIFAR-style data)",
    "loss": "nll (LogSoftmax + NLL) or hinge (squared hinge, as BinaryNet)",
    "optimizer": "adam or sgd",
    "lr": "learning rate of the first epoch",
    "lr_end": "learning rate of the last epoch (exp and cosine schedules)",
    "schedule": "learning-rate schedule: exp, cosine or const",
    "momentum": "SGD momentum",
    "batch_size": "images per optimizer step",
    "epochs": "epochs to train",
    "seed": "random seed (same seed, same machine: bit-identical weights)",
    "val_size": "last training images held out for validation",
    "limit": "train on the first LIMIT images only (0: all)",
    "device": "cpu or cuda",
    "threads": "torch CPU threads (0: torch's default)",
    "weight_scale": "binary weight scaling: none (BinaryNet), filter (XNOR-Net, mean |W| per output channel), "
                    "layer (DoReFa, one per layer); all fold exactly",
    "pool_order": "max-pool after the sign (after: a pool of bits, OR) or before BatchNorm (before: FINN's "
                  "order; AND for channels of negative BatchNorm scale)",
    "pad_value": "the constant binary convolutions pad with: 1 (+1, as Larq) or -1 (0 is not a binary value)",
    "binary_act": "ResNet topologies (3x32x32-resnet20-10): binary activations (default there: float, ReLU)",
    "input_scaling": "ResNet with --binary-act: XNOR-Net's input scaling K (mean |x| per window; does not fold)",
    "precision": "float networks: fw32bw32, fw16bw32 (16-bit forward pass, float32 weights and updates) or "
                 "fw16bw16 (weights, activations and gradients 16-bit)",
    "half": "the 16-bit type of --precision: float16 (IEEE binary16, as NumPy's) or bfloat16",
}


_CHOICES = {"dataset": DATASET_NAMES, "input": ("threshold", "probability", "uint8", "none"),
            "weight_scale": ("none", "filter", "layer"), "pool_order": ("after", "before"),
            "precision": ("fw32bw32", "fw16bw32", "fw16bw16"), "half": ("float16", "bfloat16"),
            "loss": ("nll", "hinge"), "optimizer": ("adam", "sgd"),
            "schedule": ("exp", "cosine", "const"), "device": ("cpu", "cuda")}


def _number(kind, ok, rule: str):
    """An argparse type: ``kind(text)`` for which ``ok`` holds, else the ``rule`` it breaks."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text}")
        return v
    parse.__name__ = kind.__name__
    return parse


def _fraction(text: str) -> float:
    """A number, also written as a fraction ('1/255')."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number or a fraction such as 1/255") from None
    if abs(value) > 1e6:
        raise argparse.ArgumentTypeError(f"must be of magnitude at most 1e6, not {text}")
    return value


def _count(minimum: int, maximum: int | None = None, why: str = ""):
    if maximum is None:
        return _number(int, lambda v: v >= minimum, f"at least {minimum}")
    return _number(int, lambda v: minimum <= v <= maximum, f"in [{minimum}, {maximum:,}]{why}")


#: a random seed: what torch, NumPy and nextpnr all take
_seed = _count(0, 2**32 - 1)
#: parallel processes or threads: each takes memory of its own
_jobs = _count(1, 256, " (each process or thread takes memory of its own)")
#: image buffers between layers, output FIFO depth: each bank and entry is a register or block RAM word
_banks = _count(2, 16, " (each bank buffers a whole layer output)")
_out_depth = _count(1, 1024, " (each entry is an output word of flip-flops)")


#: A probability per cycle; 1 would never let a beat through (a stream stalled for ever).
_probability = _number(float, lambda v: 0 <= v < 1, "in [0, 1) (a probability per cycle; 1 never lets a beat through)")
_megahertz = _number(float, lambda v: 0 < v <= 1000, "a clock in MHz in (0, 1000]")
_seconds = _number(float, lambda v: 0 < v <= 3600, "a number of seconds in (0, 3600]")


#: --force of the verbs that write a folder (bnncore/fileio.py's output rule)
_FORCE_HELP = ("replace -o even when it holds files this verb did not write, or another bnn verb's output "
               "(never a folder bnncore did not write)")

_TRAIN_TYPES = {"seed": _seed, "threads": _count(0, 256, " (each thread takes memory of its own)")}


def _add_train_options(p: argparse.ArgumentParser):
    from .config import TrainConfig
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else None
        flag = "--" + f.name.replace("_", "-")
        help_ = _TRAIN_HELP[f.name]
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_)
        elif f.name in _CHOICES:
            p.add_argument(flag, choices=_CHOICES[f.name], default=default, help=help_)
        elif f.name in _TRAIN_TYPES:
            p.add_argument(flag, type=_TRAIN_TYPES[f.name], default=default, help=help_, metavar=f.name.upper())
        else:
            p.add_argument(flag, type=type(default), default=default, help=help_, metavar=f.name.upper())


def _default_run_name(cfg) -> str:
    kind = "bin" if cfg.binary else "float"
    return f"{cfg.dataset}-{cfg.topology}-{kind}-{cfg.input}-s{cfg.seed}"


def cmd_train(args):
    from .training import TrainConfig, train
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    out = Path(args.out) if args.out else Path("build") / "train" / _default_run_name(cfg)
    log.info("training %s %s into %s", cfg.dataset, cfg.topology, out)
    try:
        result = train(cfg, out, data_dir=args.data_dir, resume=args.resume, force=args.force,
                       progress=None if args.progress is None else args.progress)
    except KeyboardInterrupt:
        done = "; continue with the same command and --resume" if (out / "checkpoint.pt").exists() else ""
        raise Interrupted(f"interrupted; {out} holds the epochs finished so far{done}") from None
    best = result["best"]
    print(f"best validation accuracy {best['val_acc']:.4f} at epoch {best['epoch']}, "
          f"test accuracy {best['test_acc']:.4f}; model: {out / 'best.pt'}")


def cmd_eval(args):
    from .data import load_dataset
    target = Path(args.target)
    if target.is_dir():  # an export directory: the golden model
        from .exports import load
        from .golden import infer
        net = load(target)
        dataset = args.dataset or net_dataset(target)
        ds = load_dataset(dataset, args.data_dir)
        images, labels = (ds.test_images, ds.test_labels) if args.split == "test" else (ds.val_images, ds.val_labels)
        classes = infer(net, net.input.bits(images)).classes
        acc, topology, model_kind = float((classes == labels).mean()), net.spec, "golden"
    else:
        import torch

        from .training import evaluate, input_tensor, load_checkpoint
        model, cfg, _ = load_checkpoint(target)
        dataset = args.dataset or cfg.dataset
        ds = load_dataset(dataset, args.data_dir, val_size=cfg.val_size)
        images, labels = (ds.test_images, ds.test_labels) if args.split == "test" else (ds.val_images, ds.val_labels)
        acc, _ = evaluate(model, input_tensor(images, cfg.binarization()), torch.as_tensor(labels).long())
        topology, model_kind = cfg.topology, "torch"
    print(json.dumps({"target": str(target), "model": model_kind, "dataset": dataset, "topology": topology,
                      "split": args.split, "images": int(len(labels)), "accuracy": acc}, indent=2))


def net_dataset(directory: Path) -> str:
    """The dataset an export directory was folded from (its manifest's metadata)."""
    from .exports import ExportError
    from .fileio import read_json_object
    m = read_json_object(directory / "manifest.json", ExportError, f"{directory} is not a bnncore export directory")
    metadata = m.get("metadata")
    name = metadata.get("dataset") if isinstance(metadata, dict) else None
    if name not in DATASET_NAMES:
        raise UsageError(f"{directory / 'manifest.json'}: field 'metadata.dataset' does not name a dataset "
                         f"({name!r}); pass --dataset")
    return name


def _fold_checkpoint(path):
    from .folding import fold_with_report
    from .training import load_checkpoint
    model, cfg, ckpt = load_checkpoint(path)
    net, report = fold_with_report(model, cfg.binarization())
    metadata = {"dataset": cfg.dataset, "checkpoint": str(path), "epoch": ckpt.get("epoch"),
                "torch_test_accuracy": (ckpt.get("best") or {}).get("test_acc"), "train_config": asdict(cfg)}
    return model, cfg, net, report, metadata


def cmd_fold(args):
    from .data import load_dataset
    from .exports import export
    from .folding import verify
    model, cfg, net, report, metadata = _fold_checkpoint(args.checkpoint)
    print(report.text())
    ds = load_dataset(cfg.dataset, args.data_dir, val_size=cfg.val_size)
    check = verify(net, model, ds.test_images, ds.test_labels)
    print(f"verified on {check['images']} {cfg.dataset} test images: torch {check['torch_accuracy']:.4f}, "
          f"folded {check['folded_accuracy']:.4f}, {check['class_mismatches']} class mismatches, "
          f"{check['hidden_bit_mismatches']} of {check['hidden_bits_compared']:,} hidden bits differ")
    if check["class_mismatches"] or check["hidden_bit_mismatches"]:
        raise VerificationError("the folded network disagrees with the torch model; nothing exported")
    metadata["verification"] = check
    metadata["fold_report"] = [vars(l) for l in report.layers]
    out = export(net, args.out, metadata=metadata, force=args.force)
    print(f"exported to {out}")


def cmd_export(args):
    from .exports import export, load
    if not args.out and not args.qonnx:
        raise UsageError("nothing to write: give -o DIR (an export directory), --qonnx FILE, or both")
    if args.source.is_dir():
        if args.out:
            raise UsageError(f"{args.source} is already an export directory: give --qonnx FILE to convert it")
        net = load(args.source)
    else:
        _, _, net, report, metadata = _fold_checkpoint(args.source)
        print(report.text())
        if args.out:
            print(f"exported to {export(net, args.out, metadata=metadata, force=args.force)} (not verified; "
                  "`bnn fold` verifies)")
    if args.qonnx:
        from .interop import export_qonnx
        print(f"QONNX model {export_qonnx(net, args.qonnx)} (batch 1; its scores are the golden model's)")


def cmd_import(args):
    from .exports import import_files, load
    if args.weights.suffix == ".onnx":
        return _import_qonnx(args)
    if args.weights.is_dir():
        net = load(args.weights)
        print(f"{args.weights}: valid, {net}")
        return
    if args.thresholds is None or args.topology is None or args.out is None:
        raise UsageError("importing seed-format files needs THRESHOLDS, --topology and -o/--out")
    from .data import InputBinarization
    out = import_files(args.weights, args.thresholds, args.topology,
                       InputBinarization(args.input, args.level), args.out, dataset=args.dataset,
                       pad_value=int(args.pad_value > 0), force=args.force)
    print(f"imported into {out}: {load(out)}")


def _import_qonnx(args):
    """bnn import MODEL.onnx: fold a Brevitas/QONNX model, prove it against qonnx's executor on
    the dataset's test images, then export it."""
    if args.out is None or args.dataset is None:
        raise UsageError(f"importing {args.weights} needs --dataset (the test images it is verified on) and -o/--out")
    if args.thresholds is not None or args.topology is not None:
        raise UsageError(f"{args.weights} is a QONNX model: it brings its own thresholds and topology")
    from .data import load_dataset
    from .exports import export
    from .fileio import sha256_file
    from .qonnx_import import import_qonnx, verify_qonnx
    if not args.weights.is_file():
        raise FileNotFoundError(f"{args.weights}: no such file")
    imp = import_qonnx(args.weights, pixel_scale=args.pixel_scale, pixel_offset=args.pixel_offset, log=log.info)
    print(imp.report.text())
    print(f"imported {imp.net} from {args.weights} in {imp.seconds:.2f} s")
    ds = load_dataset(args.dataset, args.data_dir)
    n = len(ds.test_images) if not args.limit else min(args.limit, len(ds.test_images))
    images, labels = ds.test_images[:n], ds.test_labels[:n]
    if images.shape[1] != imp.net.n_inputs:
        raise UsageError(f"{args.weights}: the network takes {imp.net.n_inputs} input values, {args.dataset}'s "
                         f"images have {images.shape[1]}")
    with _bar(n, "verify", "image") as update:
        check = verify_qonnx(imp, images, labels, progress=update)
    print(f"verified on {n} {args.dataset} test images: qonnx {check['qonnx_accuracy']:.4f}, folded "
          f"{check['folded_accuracy']:.4f}, {check['class_mismatches']} class mismatches, "
          f"{check['hidden_bit_mismatches']} of {check['hidden_bits_compared']:,} hidden bits differ")
    if check["class_mismatches"] or check["hidden_bit_mismatches"]:
        raise VerificationError("the folded network disagrees with qonnx's executor on the model; nothing exported")
    metadata = {"dataset": args.dataset, "qonnx": {"path": str(args.weights), "sha256": sha256_file(args.weights),
                                                   "pixel_scale": args.pixel_scale, "pixel_offset": args.pixel_offset,
                                                   "import_seconds": imp.seconds},
                "verification": check, "fold_report": [vars(l) for l in imp.report.layers]}
    print(f"exported to {export(imp.net, args.out, metadata=metadata, force=args.force)}")


def cmd_summary(args):
    from .network import summary, summary_table
    target = Path(args.target)
    if target.is_dir():
        from .exports import load
        net = load(target)
    else:
        net = _fold_checkpoint(target)[2]
    print(json.dumps(summary(net), indent=2) if args.json else summary_table(net))


def cmd_data(args):
    from . import data
    if args.action == "fetch":
        folder = data.fetch(args.name, args.dest, mirrors=args.mirror or None, log=log.info)
        print(folder)
    elif args.action == "verify":
        result = data.verify(args.name, args.data_dir)
        for path, status in result.items():
            print(f"{status:>6}  {path}" if status == "ok" else f"BAD     {path}: {status}")
        if any(s != "ok" for s in result.values()):
            raise data.DataError(f"dataset {args.name}: checksum mismatch")
    else:  # where
        print(data.find_dataset_dir(args.name, args.data_dir))


class Interrupted(Exception):
    """Ctrl-C: what was interrupted and what is left (exit status 130)."""


_FOLD = re.compile(r"\s*([0-9]+)\s*,\s*([0-9]+)\s*")


def _parse_folds(text: str):
    parts = text.split(";")
    if parts and not parts[-1].strip():
        parts.pop()
    folds = []
    for k, part in enumerate(parts):
        m = _FOLD.fullmatch(part)
        if not m:
            raise UsageError(f"--fold {text!r}: layer {k}'s {part.strip()!r} is not PE,SIMD (two positive "
                             "integers); expected PE,SIMD per layer separated by ';', like '16,49;16,64;10,64'")
        folds.append((int(m.group(1)), int(m.group(2))))
    return folds


def cmd_rtl(args):
    import time

    from .api import generate
    t0 = time.perf_counter()
    out = generate(args.net, args.out, vhdl=not args.no_vhdl, log=log.info, fold=_parse_folds(args.fold) if args.fold
                   else None, target_cycles=args.target_cycles, device=args.device, banks=args.banks,
                   out_depth=args.out_depth, pipelined=not args.shallow, force=args.force)
    seconds = time.perf_counter() - t0
    from .report import rtl_table
    print(rtl_table(json.loads((out / "rtl.json").read_text())).markdown())
    print(f"generated {out} in {seconds:.1f} s")
    if args.check:
        from .hw.tools import check_vhdl, lint_verilog
        log.info("checking: verilator --lint-only -Wall%s ...", "" if args.no_vhdl else ", GHDL elaboration")
        lint_verilog(out)
        print("verilator --lint-only -Wall: clean (waivers for the generated core: bnn_lint.vlt)")
        if not args.no_vhdl:
            check_vhdl(out)
            print("ghdl: VHDL analysed and elaborated")


@contextlib.contextmanager
def _bar(total: int, desc: str, unit: str):
    """A progress bar on stderr when it is a terminal (count, rate, ETA); yields
    ``update(done, total)``, the callback the long-running stages take."""
    from tqdm import tqdm
    with tqdm(total=total, desc=desc, unit=unit, disable=not os.isatty(2), dynamic_ncols=True,
              leave=False) as bar:
        def update(done, total_now=total):
            bar.total = total_now
            bar.update(done - bar.n)
        yield update


def _split_inputs(args, net) -> tuple:
    """(dataset, input values, labels) of the first ``args.images`` images of ``args.split``
    (default: all), as the network's input scheme feeds them to its first layer."""
    from .data import load_dataset
    dataset = args.dataset or net_dataset(Path(args.net))
    ds = load_dataset(dataset, args.data_dir)
    images, labels = (ds.test_images, ds.test_labels) if args.split == "test" else (ds.val_images, ds.val_labels)
    n = min(args.images or len(labels), len(labels))
    return dataset, net.input.bits(images[:n]), labels[:n]


def cmd_sim(args):
    from .exports import load
    from .sim.runner import simulate
    net = load(args.net)
    dataset, bits, labels = _split_inputs(args, net)
    n = len(bits)
    out = Path(args.out or Path("build") / "sim" / args.sim)
    log.info("simulating %d %s %s images on %s in %s", n, dataset, args.split, args.sim, out)
    with _bar(n, f"{args.sim}", "image") as update:
        r = simulate(args.rtl, args.net, bits, sim=args.sim, build_dir=out, labels=labels,
                     gap=args.gap, stall=args.stall, seed=args.seed, waves=args.waves, swap_roms=args.swap_roms,
                     bench=args.bench, jobs=args.jobs, pgo=args.pgo, progress=update, log=log.info, force=args.force)
    from .report import sim_table
    table = sim_table(r)
    table.note = f"results in {out / 'results.json'}; {table.note}"
    print(table.markdown())


def _print_synth(r: dict):
    from .report import synth_table
    print(synth_table(r).markdown())


def cmd_report(args):
    from .report import write_report
    skipped = []
    page = write_report(args.build, args.out, force=args.force, skipped=skipped)
    for line in skipped:
        print(f"bnn report: skipped {line}", file=sys.stderr)
    print(f"report {page}")


def cmd_experiment(args):
    from .experiments import EXPERIMENTS, run_experiment
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    for name in names:
        r = run_experiment(name, mode=args.mode, out_root=args.out, data_dir=args.data_dir, jobs=args.jobs,
                           ray=args.ray, threads=args.threads)
        out = Path(args.out) / name
        print((out / "results.md").read_text())
        print(f"({len(r['runs'])} runs; table {out / 'results.md'}, data {out / 'results.json'}, plots {out}/*.png)")


def cmd_synth(args):
    from .hw.synth import synthesize
    if args.swap_weights:
        from .hw.swap import swap_weights
        out = Path(args.out) if args.out else args.swap_weights
        r = swap_weights(args.rtl, args.swap_weights, rom_dir=args.roms, out=out, log=log.info, force=args.force)
        net = (r.get("network") or {}).get("export") or args.roms or args.rtl
        print(f"bitstream {out / r['files']['bitstream']} now holds the weights of {net}")
        return
    device = args.device or (None if args.board else "ecp5-25f")
    out = Path(args.out or Path("build") / "synth" / (args.board or device))
    r = synthesize(args.rtl, device, out, freq=args.freq, seed=args.seed, rom_dir=args.roms, router=args.router,
                   bitstream=not args.no_bitstream, speed=args.speed, bram_outreg=not args.no_bram_outreg,
                   board=args.board, baud=args.baud, writable=args.writable, swappable=args.swappable,
                   global_reset=args.global_reset, force=args.force, log=log.info)
    _print_synth(r)
    if r["files"]["bitstream"]:
        print(f"bitstream {out / r['files']['bitstream']}; report {out / 'report.json'}; rerun by hand: {out / 'run.sh'}")
    if r.get("board"):
        b = r["board"]
        print(f"{b['name']}: {b['clock_mhz']:g} MHz, UART at {b['baud']:,} baud (at most "
              f"{b['link_bound_images_per_second']:,} images/s over it); then: bnn run --port PORT "
              f"--baud {b['baud']} NET" + (f"; bnn load --port PORT --baud {b['baud']} {args.rtl} NET"
                                           if b["writable"] else ""))


def cmd_load(args):
    import time

    from .exports import load
    from .hw.design import load_rtl
    from .link import Link, open_serial
    info = load_rtl(args.rtl, verify=False)
    net = load(args.net)
    t = open_serial(args.port, args.baud)
    link = Link(t, timeout=args.timeout)
    total = sum(m["depth"] for m in info["memories"].values())
    t0 = time.perf_counter()
    with _bar(total, "load", "word") as update:
        words = link.load(net, info, progress=update)
    dev = link.info()
    print(f"loaded {net.spec} ({dev.network}) into the board: {words:,} words in {time.perf_counter() - t0:.1f} s; "
          f"bnn run --port {args.port} --baud {args.baud} {args.net} checks it")


def cmd_run(args):
    from .exports import load
    from .link import Link, open_serial
    net = load(args.net)
    _, values, labels = _split_inputs(args, net)
    t = open_serial(args.port, args.baud)
    r = run_on_board(Link(t, timeout=args.timeout), net, values, labels, args.net, progress_bar=_bar)
    print(r["table"])


def run_on_board(link, net, values, labels, net_name, progress_bar=None) -> dict:
    """Classify ``values`` on the board behind ``link``, compare with the golden model; the
    measurements and a table (``bnn run``)."""
    import time as _time

    import numpy as np

    from .golden import infer
    from .link import LinkError
    dev = link.info()
    if dev.network != net.digest()[:16]:
        raise LinkError(f"the board holds network {dev.network} ({dev.spec}), not {net_name}'s "
                        f"{net.digest()[:16]} ({net.spec}): build the bitstream for it (bnn rtl, bnn synth --board)")
    t0 = _time.perf_counter()
    if progress_bar:
        with progress_bar(len(values), "board", "image") as update:
            classes, scores = link.classify(values, progress=update)
    else:
        classes, scores = link.classify(values)
    seconds = _time.perf_counter() - t0
    gold = infer(net, values, return_layers=True)
    same = (classes == gold.classes) & np.all(scores == gold.scores, axis=1)
    link_rate = 1 / dev.seconds_per_image()
    acc_rate = dev.accelerator_images_per_second()
    r = {"images": len(values), "accuracy": float(np.mean(classes == labels)), "golden_agree": int(same.sum()),
         "seconds": seconds, "images_per_second": len(values) / seconds, "link_bound": link_rate,
         "accelerator_bound": acc_rate, "baud": dev.baud, "clock_hz": dev.clock_hz, "spec": dev.spec}
    bound = "the link" if link_rate < acc_rate else "the accelerator"
    r["table"] = "\n".join([
        "| images | accuracy | agree with the golden model | images/s | link bound | accelerator bound |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {len(values):,} | {100 * r['accuracy']:.2f}% | {r['golden_agree']:,} of {len(values):,} | "
        f"{r['images_per_second']:,.0f} | {link_rate:,.0f} | {acc_rate:,.0f} |",
        "",
        f"{dev.spec} at {dev.clock_hz / 1e6:g} MHz, {dev.baud:,} baud: an image's frame takes "
        f"{1e6 * dev.seconds_per_image():.0f} µs on the wire; {bound} limits the rate."])
    if r["golden_agree"] != len(values):
        first = int(np.flatnonzero(~same)[0])
        raise LinkError(f"{len(values) - r['golden_agree']} of {len(values)} images differ from the golden model, "
                        f"the first image {first}: class {classes[first]}, scores {scores[first].tolist()}; "
                        f"the golden model's class {gold.classes[first]}, scores {gold.scores[first].tolist()}\n"
                        + r["table"])
    return r


def _int_list(option: str, text: str, minimum: int, what: str, maximum: int = 2**32 - 1) -> list:
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < minimum or max(values) > maximum or len(values) > 256:
        raise UsageError(f"{option} {text!r} does not parse: expected {what} (at most {maximum:,}; 256 of them at "
                         "most), comma-separated, like '1,2,3'")
    return values


def cmd_sweep(args):
    from .hw.sweep import sweep
    targets = _int_list("--targets", args.targets, 1, "positive cycles per image", 10**9)
    seeds = _int_list("--seeds", args.seeds, 0, "placement seeds (integers of at least 0)")
    out = Path(args.out or Path("build") / "sweep" / args.device)
    rows = sweep(args.net, args.device, targets, out, jobs=args.jobs, freq=args.freq, banks=args.banks,
                 speed=args.speed, seeds=seeds, ray=args.ray)
    from .report import sweep_table
    print(sweep_table(rows).markdown())
    print(f"table {out / 'sweep.csv'}, {out / 'sweep.json'}; plot {out / 'sweep.png'}")


def _add_speed_option(p):
    from .hw.families import FAMILIES
    graded = [f for f in FAMILIES.values() if f.speed_grades]
    p.add_argument("--speed", type=int, choices=sorted({g for f in graded for g in f.speed_grades}),
                   help=f"speed grade to time for, on {' and '.join(f.title for f in graded)} parts (default: the "
                        "device's, the slowest; the part name in the report follows it)")


#: One example per verb, in the order of the flow (`bnn --help` lists the verbs in this order).
EXAMPLES = {
    "data": "bnn data fetch mnist",
    "train": "bnn train --dataset mnist --topology 784-256-256-10 --epochs 10 -o build/train/mlp",
    "eval": "bnn eval build/net",
    "fold": "bnn fold build/train/mlp/best.pt -o build/net",
    "export": "bnn export build/net --qonnx build/net.onnx",
    "import": "bnn import model.onnx --dataset mnist -o build/imported",
    "summary": "bnn summary build/net",
    "rtl": "bnn rtl build/net -o build/rtl --check",
    "sim": "bnn sim build/rtl build/net --sim verilator",
    "synth": "bnn synth build/rtl --device ecp5-25f",
    "run": "bnn run build/net --port /dev/ttyUSB1 --images 1000",
    "load": "bnn load build/rtl build/net2 --port /dev/ttyUSB1",
    "sweep": "bnn sweep build/net --device ecp5-25f",
    "experiment": "bnn experiment cnn --mode tiny",
    "report": "bnn report build",
}


class _Help(argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" to an option's help once: not where the help already states its
    default, and not for defaults that mean "absent" (None, False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.default in (None, False)
                or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _verb(sub, name: str, help: str, **kw) -> argparse.ArgumentParser:
    description = kw.pop("description", help[0].upper() + help[1:] + ".")
    description = "\n".join(textwrap.fill(line, 79) for line in description.split("\n"))
    return sub.add_parser(name, help=help, description=description, epilog=f"example:\n  {EXAMPLES[name]}",
                          formatter_class=_Help, **kw)


def build_parser() -> argparse.ArgumentParser:
    from .hw.synth import DEVICES
    width = max(map(len, EXAMPLES))
    parser = argparse.ArgumentParser(
        prog="bnn", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill("bnncore: train binary MLPs and CNNs, fold them to integer thresholds, "
                                  "and turn them into verified FPGA accelerators with open tools.", 79),
        epilog="the flow, one example per command:\n" + "\n".join(
            f"  {name:{width}}  {example}" for name, example in EXAMPLES.items())
        + "\n\n`bnn COMMAND --help` describes each command's options.")
    parser.add_argument("--version", action="version", version=f"bnncore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_dir_help = "folder holding <dataset>/ (default: $BNN_DATA_DIR, the user cache, /usr/share/datasets)"

    p = _verb(sub, "data", help="find, verify or download datasets")
    p.add_argument("action", choices=("fetch", "verify", "where"),
                   help="fetch: download and check md5; verify: check md5 of a local copy; where: print its folder")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("--dest", help="fetch: download into DEST/<name> (default: the user cache)")
    p.add_argument("--mirror", action="append", metavar="URL",
                   help="fetch: base URL to download from (repeatable; default: the public mirrors)")
    p.set_defaults(func=cmd_data)

    p = _verb(sub, "train", help="train a binary (or float baseline) MLP or CNN")
    _add_train_options(p)
    p.add_argument("-o", "--out", help="run folder (default: build/train/<dataset>-<topology>-...)")
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    p.add_argument("--force", action="store_true", help="replace an earlier run in OUT (default: refuse)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_train)

    p = _verb(sub, "eval", help="accuracy of a checkpoint (torch) or an export directory (golden model)")
    p.add_argument("target", type=Path, help="a best.pt/checkpoint.pt from `bnn train`, or a directory from `bnn fold`")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="the test set, or the validation images held out of the training set")
    p.add_argument("--dataset", choices=DATASET_NAMES,
                   help="dataset (default: the one the network was trained on)")
    p.add_argument("--data-dir", help=data_dir_help)
    p.set_defaults(func=cmd_eval)

    p = _verb(sub, "fold", help="fold a checkpoint to integer thresholds, verify it against torch "
                       "on the test set (exact), and export it")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-o", "--out", required=True, help="export directory (replaced atomically)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--data-dir", help=data_dir_help)
    p.set_defaults(func=cmd_fold)

    p = _verb(sub, "export", help="fold and export a checkpoint without verification, and/or write a network "
              "as a QONNX model")
    p.add_argument("source", type=Path, help="a checkpoint from `bnn train`, or an export directory (with --qonnx)")
    p.add_argument("-o", "--out", help="export directory to write (replaced atomically)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--qonnx", type=Path, metavar="FILE",
                   help="also write the network as a QONNX model (MultiThreshold form, batch 1; needs "
                        "bnncore[interop])")
    p.set_defaults(func=cmd_export)

    p = _verb(sub, "import", help="fold a Brevitas/QONNX model (verified against qonnx's executor), turn "
                       "seed-format weights.txt + thresholds.txt into an export directory, or validate one")
    p.add_argument("weights", type=Path, help="a QONNX model (.onnx), an export directory, or a weights.txt")
    p.add_argument("thresholds", type=Path, nargs="?", help="thresholds.txt (with a weights.txt)")
    p.add_argument("--topology", help="layer sizes, e.g. 784-500-1024-1024-10, or a CNN topology such as "
                   "1x28x28-32c3-mp2-10 (with a weights.txt; pools are OR pools)")
    p.add_argument("--input", choices=("threshold", "probability", "uint8"), default="threshold",
                   help="how the network sees pixels: one bit (threshold, probability) or 8 bits (uint8)")
    p.add_argument("--pad-value", type=int, choices=(-1, 1), default=1,
                   help="the constant binary convolutions pad with (with a CNN topology)")
    p.add_argument("--level", type=int, default=128, help="threshold input: a pixel bit is 1 when pixel >= LEVEL")
    p.add_argument("--dataset", choices=DATASET_NAMES, help="recorded in the manifest; with a QONNX model, "
                   "required: the test images the import is verified on")
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("--pixel-scale", type=_fraction, default=1 / 255,
                   help="QONNX model: its input is pixel * PIXEL_SCALE + PIXEL_OFFSET, a number or a fraction "
                        "(default: 1/255, torchvision's ToTensor)")
    p.add_argument("--pixel-offset", type=_fraction, default=0.0, help="see --pixel-scale")
    p.add_argument("--limit", type=_count(0), default=0,
                   help="QONNX model: verify on the first LIMIT test images only (default 0: all)")
    p.add_argument("-o", "--out", help="export directory to create")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_import)

    p = _verb(sub, "summary", help="per-layer bits, memory, MACs, threshold ranges and widths")
    p.add_argument("target", type=Path, help="an export directory or a checkpoint")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_summary)

    p = _verb(sub, "rtl", help="generate the accelerator (Verilog, VHDL, ROM files, rtl.json)")
    p.add_argument("net", type=Path, help="an export directory from `bnn fold`")
    p.add_argument("-o", "--out", default="build/rtl", help="output directory (default: build/rtl)")
    p.add_argument("--fold", help="PE,SIMD per layer, ';'-separated, e.g. '16,49;16,64;16,64;10,64' "
                   "(default: chosen for --target-cycles)")
    p.add_argument("--target-cycles", type=_count(1),
                   help="cycles per image the automatic folding aims for (default: 256 for an MLP; for a CNN "
                   "the fewest its layers allow: a window's word is at most one pixel's channels)")
    p.add_argument("--device", choices=tuple(DEVICES),
                   help="automatic folding: take the fewest block RAMs of this device first, then the "
                        "least logic (default: the least logic)")
    p.add_argument("--banks", type=_banks, default=2, help="image buffers between layers (default: 2)")
    p.add_argument("--out-depth", type=_out_depth, default=2, help="output FIFO depth (default: 2)")
    p.add_argument("--shallow", action="store_true",
                   help="4-stage engines: no register behind the block RAMs, one-cycle popcount "
                        "(fewer flip-flops, a lower clock; default: 9-stage pipelined engines)")
    p.add_argument("--no-vhdl", action="store_true", help="Verilog only")
    p.add_argument("--check", action="store_true", help="run verilator --lint-only -Wall and GHDL elaboration")
    p.add_argument("--force", action="store_true",
                   help="generate a design that will not fit --device, or whose size makes its generation "
                        "likely to run out of this machine's memory (default: refuse, with the estimate); "
                        "and " + _FORCE_HELP)
    p.set_defaults(func=cmd_rtl)

    p = _verb(sub, "sim", help="co-simulate the generated RTL with cocotb against the golden model")
    p.add_argument("rtl", type=Path, help="a directory from `bnn rtl`")
    p.add_argument("net", type=Path, help="the export directory the RTL was generated from (another one of the "
                   "same topology with --swap-roms)")
    from .sim.simulators import names as simulators
    p.add_argument("--sim", choices=simulators(), default="verilator",
                   help="the simulator (GHDL runs the VHDL, the others the Verilog)")
    p.add_argument("--images", type=_count(0), default=0, help="first N images of the split (default: all)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="the test set, or the validation images held out of the training set")
    p.add_argument("--dataset", choices=DATASET_NAMES, help="default: the network's")
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("--gap", type=_probability, default=0.0, help="probability of an idle input cycle, in [0, 1)")
    p.add_argument("--stall", type=_probability, default=0.0,
                   help="probability of output backpressure per cycle, in [0, 1)")
    p.add_argument("--swap-roms", action="store_true",
                   help="NET is not the network the RTL was generated from: simulate NET's weights in this RTL, "
                        "written as ROM files for its folding and passed through the ROM file parameters "
                        "(same topology and folding; default: refuse a different network)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random idle and stall cycles")
    p.add_argument("--waves", action="store_true", help="write a waveform (VCD/FST/GHW) in the build directory")
    p.add_argument("--bench", choices=("cocotb", "native"), default="cocotb",
                   help="cocotb's bench (every simulator), or a C++ driver compiled into the Verilator model: the "
                        "same checks against the golden model, about three times faster, Verilator only, no "
                        "--waves (default: cocotb)")
    p.add_argument("--jobs", type=_jobs, default=1,
                   help="with --bench native: split the images into this many shards, simulated at once, each from "
                        "reset (default: 1)")
    p.add_argument("--pgo", action="store_true",
                   help="with --bench native: compile it profile-guided (built twice, with a profile of the first "
                        "images between): about a quarter faster to run, twice as long to build")
    p.add_argument("-o", "--out", help="build directory (default: build/sim/<simulator>)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_sim)

    p = _verb(sub, "synth", help="synthesise, place and route the generated RTL for an FPGA (Yosys, nextpnr): "
                       "resources, Fmax, throughput, bitstream")
    p.add_argument("rtl", type=Path, help="a directory from `bnn rtl`")
    p.add_argument("--device", choices=tuple(DEVICES), help="the FPGA (default: ecp5-25f, or the board's)")
    from .hw.boards import BOARDS
    p.add_argument("--board", choices=tuple(BOARDS),
                   help="build for a board: the accelerator behind a UART on its pins, clocked by its oscillator "
                        "(docs/link.md); without it the top is a byte stream on placeholder pins")
    p.add_argument("--baud", type=_count(1),
                   help="with --board: the UART's rate (default: the fastest standard rate the clock gives)")
    p.add_argument("--writable", action="store_true",
                   help="with --board: the weight and threshold memories can be written over the link "
                        "(bnn load), so that another network of the same topology and folding runs without "
                        "a new bitstream")
    p.add_argument("--freq", type=_megahertz, help="clock target in MHz (default: 25 on iCE40, 100 on ECP5); "
                   "with --board, the board's oscillator unless given (another frequency through a PLL); "
                   "missing it is reported, not an error")
    p.add_argument("--seed", type=_seed, default=1, help="nextpnr placement seed")
    p.add_argument("--router", choices=("router1", "router2"),
                   help="nextpnr router (default: router2 on ECP5, where router1 stalls on large designs; "
                        "router1 on iCE40)")
    _add_speed_option(p)
    p.add_argument("--roms", type=Path, help="directory of the ROM files to build in (default: the RTL's)")
    p.add_argument("--no-bitstream", action="store_true", help="stop after place and route")
    p.add_argument("--swappable", action="store_true",
                   help="every ROM in block RAM, placed with placeholder contents, so that other weights "
                        "of the same design go into the bitstream later with --swap-weights (costs block RAM "
                        "for ROMs that would otherwise be logic)")
    p.add_argument("--swap-weights", type=Path, metavar="BUILT",
                   help="no synthesis: put the ROM files of RTL (or --roms) into the bitstream of BUILT, a "
                        "--swappable build of the same design (every property its logic fixes; one that differs is "
                        "named), in seconds; written into -o, a new folder, or BUILT itself (the default)")
    p.add_argument("--no-bram-outreg", action="store_true",
                   help="ECP5: leave the block RAMs' read data in flip-flops outside them (by default those "
                        "flip-flops become the block RAMs' output registers, which shortens the paths from "
                        "the block RAMs)")
    p.add_argument("--global-reset", action="store_true",
                   help="ECP5: the registered reset reaches the design through a global buffer (DCCA), not the "
                        "fabric, where it can be the critical path of a large design; nextpnr can fail to route "
                        "the buffer's input (try another --seed)")
    p.add_argument("-o", "--out", help="output directory (default: build/synth/<board or device>)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_synth)

    p = _verb(sub, "run", help="classify test images on a board over its serial link (a bitstream of "
                       "`bnn synth --board`): accuracy, agreement with the golden model, images/s")
    p.add_argument("net", type=Path, help="the export directory of the network the bitstream holds")
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB1 (iCEBreaker)")
    p.add_argument("--baud", type=_count(1), default=3_000_000,
                   help="the rate the bitstream was built for (bnn synth --board prints it)")
    p.add_argument("--dataset", choices=DATASET_NAMES, help="default: the network's (its manifest)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which images")
    p.add_argument("--images", type=_count(1), help="how many (default: all of the split)")
    p.add_argument("--timeout", type=_seconds, default=2.0,
                   help="seconds an answer may take, however many stray bytes come first (default: 2)")
    p.add_argument("--data-dir", help=data_dir_help)
    p.set_defaults(func=cmd_run)

    p = _verb(sub, "load", help="write a network's weights and thresholds into a running board over its serial "
                       "link (a bitstream of `bnn synth --board --writable` for the same topology and folding)")
    p.add_argument("rtl", type=Path, help="the `bnn rtl` directory the board's bitstream was built from")
    p.add_argument("net", type=Path, help="the export directory of the network to load")
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB1 (iCEBreaker)")
    p.add_argument("--baud", type=_count(1), default=3_000_000,
                   help="the rate the bitstream was built for (bnn synth --board prints it)")
    p.add_argument("--timeout", type=_seconds, default=2.0,
                   help="seconds an answer may take, however many stray bytes come first (default: 2)")
    p.set_defaults(func=cmd_load)

    p = _verb(sub, "sweep", help="synthesise a network at several foldings in parallel: table and "
                       "plot of LUTs and block RAMs against throughput, with the Pareto front")
    p.add_argument("net", type=Path, help="an export directory from `bnn fold`")
    p.add_argument("--device", choices=tuple(DEVICES), default="ecp5-25f", help="the FPGA")
    p.add_argument("--targets", default="64,128,256,512,1024",
                   help="cycles per image to fold for, comma-separated (default: 64,128,256,512,1024)")
    p.add_argument("--seeds", default="1",
                   help="nextpnr placement seeds, comma-separated: each point is placed and routed with each, "
                        "and reported at the median seed's Fmax with the range over all")
    p.add_argument("--jobs", type=_jobs, help="parallel runs (default: the number of cores)")
    p.add_argument("--ray", metavar="ADDRESS", help="run each folding as a task of the Ray cluster at ADDRESS (host:port, or auto: the cluster this machine "
                        "belongs to), with its CPU and memory request; needs bnncore[cluster] and the paths on a file "
                        "system every node mounts (default: local processes)")
    p.add_argument("--freq", type=_megahertz, help="clock target in MHz (default: per family)")
    p.add_argument("--banks", type=_banks, default=2, help="image buffers between layers (default: 2)")
    _add_speed_option(p)
    p.add_argument("-o", "--out", help="output directory (default: build/sweep/<device>)")
    p.set_defaults(func=cmd_sweep)

    from .experiments import EXPERIMENTS
    p = _verb(sub, "experiment", help="re-run one of the seed reports' experiments: table, JSON and plots",
                       description="Re-run one of the seed reports' experiments. Runs execute in parallel and "
                       "resume after an interruption.\n\n" + "\n".join(f"{e.name}: {e.summary}"
                                                                          for e in EXPERIMENTS.values()))
    p.add_argument("name", choices=(*EXPERIMENTS, "all"), metavar="NAME", help="one of the experiments above, or all")
    p.add_argument("--mode", choices=("quick", "full", "tiny"), default="quick",
                   help="quick: few epochs, minutes (default); full: the seeds' epoch counts where feasible; "
                   "tiny: 1 epoch on 1,000 images (CI)")
    p.add_argument("--jobs", type=_jobs, help="runs in parallel (default: the number of cores)")
    p.add_argument("--threads", type=_jobs, help="torch threads per run (default: the cores divided among "
                   "the jobs)")
    p.add_argument("--ray", metavar="ADDRESS", help="run each training run as a task of the Ray cluster at ADDRESS (host:port, or auto: the cluster this machine "
                        "belongs to), with its CPU and memory request; needs bnncore[cluster] and the paths on a file "
                        "system every node mounts (default: local processes)")
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("-o", "--out", default="build/experiments", help="output root (default: build/experiments)")
    p.set_defaults(func=cmd_experiment)

    p = _verb(sub, "report", help="one self-contained HTML page of every result under a build folder: training "
              "curves, fold reports, network summaries, timing models, simulations, synthesis and sweeps")
    p.add_argument("build", type=Path, help="the folder the stages wrote into, e.g. build")
    p.add_argument("-o", "--out", type=Path, help="the page to write (default: BUILD/report.html); an existing file "
                   "is replaced only when it is an earlier report")
    p.add_argument("--force", action="store_true", help="replace the file -o names even if it is not a report")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `bnn summary | head`: the reader has what it wanted. Point stdout at /dev/null so
        # that the interpreter's final flush does not report the closed pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141                                    # 128 + SIGPIPE, as a shell tool ends
    except MemoryError:
        if os.environ.get("BNN_DEBUG"):
            raise
        print(f"bnn {args.command}: error: out of memory; the input is larger than this machine can take "
              "(a smaller network, fewer images, or fewer jobs)", file=sys.stderr)
        return 2
    except (BnnError, OSError) as e:   # what the user gave, or the file system: one line
        if os.environ.get("BNN_DEBUG"):
            raise
        print(f"bnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"bnn {args.command}: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception:
        # anything else is bnncore's fault, not the user's: show where, and ask for a report
        traceback.print_exc()
        print(f"bnn {args.command}: internal error in bnncore {__version__}: this is a bug; please report it "
              "with the command line above and this traceback", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
