"""The verbs of the software flow: data, train, eval, fold, export, import, summary, experiment,
report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from ..errors import UsageError, VerificationError
from .options import (_FORCE_HELP, DATA_DIR_HELP, DATASET_NAMES, Interrupted, _add_train_options, _bar, _count,
                      _dataset, _fraction, _jobs, _verb, _verify_on, log, net_dataset)


def _default_run_name(cfg) -> str:
    kind = "bin" if cfg.binary else "float"
    return f"{cfg.dataset}-{cfg.topology}-{kind}-{cfg.input}-s{cfg.seed}"


def cmd_train(args):
    from ..training import TrainConfig, train
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
    from ..data import load_dataset, load_trained_on
    target = Path(args.target)
    if target.is_dir():  # an export directory: the golden model
        from ..exports import load
        from ..golden import infer
        net = load(target)
        dataset = args.dataset or net_dataset(target)
        ds = load_dataset(dataset, args.data_dir)
        images, labels = (ds.test_images, ds.test_labels) if args.split == "test" else (ds.val_images, ds.val_labels)
        classes = infer(net, net.input.bits(images)).classes
        acc, topology, model_kind, n_classes = float((classes == labels).mean()), net.spec, "golden", net.head.n_out
    else:
        import torch

        from ..training import evaluate, input_tensor, load_checkpoint
        model, cfg, ckpt = load_checkpoint(target)
        dataset = args.dataset or cfg.dataset
        ds = (load_dataset(dataset, args.data_dir, val_size=cfg.val_size) if args.dataset
              else load_trained_on(cfg, ckpt, args.data_dir, str(target)))
        images, labels = (ds.test_images, ds.test_labels) if args.split == "test" else (ds.val_images, ds.val_labels)
        acc, preds = evaluate(model, input_tensor(images, cfg.binarization()), torch.as_tensor(labels).long())
        classes, topology, model_kind = preds.numpy(), cfg.topology, "torch"
        from ..topology import parse
        n_classes = parse(cfg.topology).classes
    from ..metrics import confusion, per_class
    matrix = confusion(labels, classes, max(n_classes, ds.n_classes))
    result = {"target": str(target), "model": model_kind, "dataset": dataset, "topology": topology,
              "split": args.split, "images": int(len(labels)), "accuracy": acc,
              "per_class": per_class(matrix, ds.class_names), "confusion": matrix.tolist()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    from ..report import Table, class_table, confusion_table
    correct = round(acc * len(labels))
    print(Table(("model", "network", "dataset", "split", "images", "correct", "accuracy"),
                [(model_kind, topology, dataset, args.split, f"{len(labels):,}", f"{correct:,}",
                  f"{100 * acc:.2f}%")], f"{target}").markdown())
    print()
    print(class_table(matrix, ds.class_names).markdown())
    if len(matrix) <= 12:
        print()
        print(confusion_table(matrix, ds.class_names).markdown())



def _fold_checkpoint(path):
    from ..folding import fold_with_report
    from ..training import load_checkpoint
    model, cfg, ckpt = load_checkpoint(path)
    net, report = fold_with_report(model, cfg.binarization())
    metadata = {"dataset": cfg.dataset, "checkpoint": str(path), "epoch": ckpt.get("epoch"),
                "torch_test_accuracy": (ckpt.get("best") or {}).get("test_acc"), "train_config": asdict(cfg)}
    if isinstance(ckpt.get("data"), dict):       # what the run recorded of its data (bnncore.data.describe)
        metadata["data"] = ckpt["data"]
    return model, cfg, net, report, metadata


def cmd_fold(args):
    from ..data import load_trained_on
    from ..exports import export
    from ..folding import verify
    model, cfg, net, report, metadata = _fold_checkpoint(args.checkpoint)
    print(report.text())
    ds = load_trained_on(cfg, metadata, args.data_dir, str(args.checkpoint))
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
    from ..exports import export, load
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
        from ..interop import export_qonnx
        print(f"QONNX model {export_qonnx(net, args.qonnx)} (batch 1; its scores are the golden model's)")


def cmd_import(args):
    from ..exports import import_files, load
    if args.weights.suffix == ".onnx":
        return _import_qonnx(args)
    if args.weights.is_dir():
        net = load(args.weights)
        print(f"{args.weights}: valid, {net}")
        return
    if args.thresholds is None or args.topology is None or args.out is None:
        raise UsageError("importing seed-format files needs THRESHOLDS, --topology and -o/--out")
    from ..data import InputBinarization
    out = import_files(args.weights, args.thresholds, args.topology,
                       InputBinarization(args.input, args.level), args.out, dataset=args.dataset,
                       pad_value=int(args.pad_value > 0), force=args.force)
    print(f"imported into {out}: {load(out)}")


def _import_qonnx(args):
    """bnn import MODEL.onnx: fold a Brevitas/QONNX model, prove it against qonnx's executor on
    the dataset's test images, then export it."""
    if args.out is None:
        raise UsageError(f"importing {args.weights} needs -o/--out, the export directory to create")
    if args.thresholds is not None or args.topology is not None:
        raise UsageError(f"{args.weights} is a QONNX model: it brings its own thresholds and topology")
    from ..data import load_dataset
    from ..exports import export
    from ..fileio import sha256_file
    from ..qonnx_import import import_qonnx, verify_qonnx
    if not args.weights.is_file():
        raise FileNotFoundError(f"{args.weights}: no such file")
    imp = import_qonnx(args.weights, pixel_scale=args.pixel_scale, pixel_offset=args.pixel_offset, log=log.info)
    print(imp.report.text())
    print(f"imported {imp.net} from {args.weights} in {imp.seconds:.2f} s")
    kind, what = args.verify_on or (("dataset", args.dataset) if args.dataset else ("random", 1000))
    if kind == "dataset":
        ds = load_dataset(what, args.data_dir)
        n = len(ds.test_images) if not args.limit else min(args.limit, len(ds.test_images))
        images, labels = ds.test_images[:n], ds.test_labels[:n]
        if images.shape[1] != imp.net.n_inputs:
            raise UsageError(f"{args.weights}: the network takes {imp.net.n_inputs} input values, {what}'s "
                             f"images have {images.shape[1]}")
        source = f"{n} {what} test images"
    else:
        n, labels = what, None
        images = imp.net.input.random_pixels(n, imp.net.n_inputs, seed=0)
        source = f"{n} random inputs (seed 0)"
    with _bar(n, "verify", "image") as update:
        check = verify_qonnx(imp, images, labels, progress=update)
    accuracy = (f"qonnx {check['qonnx_accuracy']:.4f}, folded {check['folded_accuracy']:.4f}, "
                if labels is not None else "")
    print(f"verified on {source}: {accuracy}{check['class_mismatches']} class mismatches, "
          f"{check['hidden_bit_mismatches']} of {check['hidden_bits_compared']:,} hidden bits differ")
    if check["class_mismatches"] or check["hidden_bit_mismatches"]:
        raise VerificationError("the folded network disagrees with qonnx's executor on the model; nothing exported")
    check["verified_on"] = source
    metadata = {"dataset": args.dataset, "qonnx": {"path": str(args.weights), "sha256": sha256_file(args.weights),
                                                   "pixel_scale": imp.pixel_scale, "pixel_offset": imp.pixel_offset,
                                                   "import_seconds": imp.seconds},
                "verification": check, "fold_report": [vars(l) for l in imp.report.layers]}
    print(f"exported to {export(imp.net, args.out, metadata=metadata, force=args.force)}")


def cmd_summary(args):
    from ..network import summary, summary_table
    target = Path(args.target)
    if target.is_dir():
        from ..exports import load
        net = load(target)
    else:
        net = _fold_checkpoint(target)[2]
    print(json.dumps(summary(net), indent=2) if args.json else summary_table(net))


def cmd_data(args):
    from .. import data
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


def cmd_experiment(args):
    from ..experiments import EXPERIMENTS, run_experiment
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    for name in names:
        r = run_experiment(name, mode=args.mode, out_root=args.out, data_dir=args.data_dir, jobs=args.jobs,
                           ray=args.ray, threads=args.threads)
        out = Path(args.out) / name
        print((out / "results.md").read_text())
        print(f"({len(r['runs'])} runs; table {out / 'results.md'}, data {out / 'results.json'}, plots {out}/*.png)")


def cmd_report(args):
    from ..report import write_report
    skipped = []
    page = write_report(args.build, args.out, force=args.force, skipped=skipped)
    for line in skipped:
        print(f"bnn report: skipped {line}", file=sys.stderr)
    print(f"report {page}")


def add_data(sub):
    p = _verb(sub, "data", help="find, verify or download datasets")
    p.add_argument("action", choices=("fetch", "verify", "where"),
                   help="fetch: download and check md5; verify: check md5 of a local copy; where: print its folder")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--dest", help="fetch: download into DEST/<name> (default: the user cache)")
    p.add_argument("--mirror", action="append", metavar="URL",
                   help="fetch: base URL to download from (repeatable; default: the public mirrors)")
    p.set_defaults(func=cmd_data)


def add_train(sub):
    p = _verb(sub, "train", help="train a binary (or float baseline) MLP or CNN")
    _add_train_options(p)
    p.add_argument("-o", "--out", help="run folder (default: build/train/<dataset>-<topology>-...)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    p.add_argument("--force", action="store_true", help="replace an earlier run in OUT (default: refuse)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_train)


def add_eval(sub):
    p = _verb(sub, "eval", help="accuracy of a checkpoint (torch) or an export directory (golden model)")
    p.add_argument("target", type=Path, help="a best.pt/checkpoint.pt from `bnn train`, or a directory from `bnn fold`")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="the test set, or the validation images held out of the training set")
    p.add_argument("--dataset", type=_dataset, metavar="DATASET",
                   help="dataset (default: the one the network was trained on)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_eval)


def add_fold(sub):
    p = _verb(sub, "fold", help="fold a checkpoint to integer thresholds, verify it against torch "
                       "on the test set (exact), and export it")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-o", "--out", required=True, help="export directory (replaced atomically)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.set_defaults(func=cmd_fold)


def add_export(sub):
    p = _verb(sub, "export", help="fold and export a checkpoint without verification, and/or write a network "
              "as a QONNX model")
    p.add_argument("source", type=Path, help="a checkpoint from `bnn train`, or an export directory (with --qonnx)")
    p.add_argument("-o", "--out", help="export directory to write (replaced atomically)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--qonnx", type=Path, metavar="FILE",
                   help="also write the network as a QONNX model (MultiThreshold form, batch 1; needs "
                        "bnncore[interop])")
    p.set_defaults(func=cmd_export)


def add_import(sub):
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
    p.add_argument("--dataset", type=_dataset, metavar="DATASET", help="recorded in the manifest (with a QONNX model, the "
                   "default of --verify-on)")
    p.add_argument("--verify-on", type=_verify_on, metavar="DATA",
                   help="QONNX model: the images the import is proved on, every class and hidden bit against "
                        "qonnx's executor: a dataset's test set (mnist, fashion-mnist, cifar-10, or the path of a "
                        ".npz or image folder of your own) or random:N, N "
                        "random inputs (random bits for a 1-bit input, random pixels for an 8-bit one) "
                        "(default: --dataset's test set, else random:1000)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--pixel-scale", type=_fraction,
                   help="QONNX model: its input is pixel * PIXEL_SCALE + PIXEL_OFFSET, a number or a fraction "
                        "(default: what the model records, as bnn export --qonnx does; 1 for an input annotated "
                        "UINT8; else 1/255, torchvision's ToTensor)")
    p.add_argument("--pixel-offset", type=_fraction, help="see --pixel-scale (default: 0)")
    p.add_argument("--limit", type=_count(0), default=0,
                   help="QONNX model: verify on the first LIMIT test images only (default 0: all)")
    p.add_argument("-o", "--out", help="export directory to create")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.set_defaults(func=cmd_import)


def add_summary(sub):
    p = _verb(sub, "summary", help="per-layer bits, memory, MACs, threshold ranges and widths")
    p.add_argument("target", type=Path, help="an export directory or a checkpoint")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_summary)


def add_experiment(sub):
    from ..experiments import EXPERIMENTS
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
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("-o", "--out", default="build/experiments", help="output root (default: build/experiments)")
    p.set_defaults(func=cmd_experiment)


def add_report(sub):
    p = _verb(sub, "report", help="one self-contained HTML page of every result under a build folder: training "
              "curves, fold reports, network summaries, timing models, simulations, synthesis and sweeps")
    p.add_argument("build", type=Path, help="the folder the stages wrote into, e.g. build")
    p.add_argument("-o", "--out", type=Path, help="the page to write (default: BUILD/report.html); an existing file "
                   "is replaced only when it is an earlier report")
    p.add_argument("--force", action="store_true", help="replace the file -o names even if it is not a report")
    p.set_defaults(func=cmd_report)
