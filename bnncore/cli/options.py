"""What every verb shares: argument types with their ranges, the training options generated
from ``TrainConfig``, the help layout, one example per verb, and the dataset a verb reads."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import textwrap
from dataclasses import MISSING, fields
from fractions import Fraction
from pathlib import Path

from ..errors import UsageError

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
    from ..config import TrainConfig
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


def _int_list(option: str, text: str, minimum: int, what: str, maximum: int = 2**32 - 1) -> list:
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < minimum or max(values) > maximum or len(values) > 256:
        raise UsageError(f"{option} {text!r} does not parse: expected {what} (at most {maximum:,}; 256 of them at "
                         "most), comma-separated, like '1,2,3'")
    return values


def _add_speed_option(p):
    from ..hw.families import FAMILIES
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


#: --data-dir of every verb that reads a dataset
DATA_DIR_HELP = "folder holding <dataset>/ (default: $BNN_DATA_DIR, the user cache, /usr/share/datasets)"


def net_dataset(directory: Path) -> str:
    """The dataset an export directory was folded from (its manifest's metadata)."""
    from ..exports import ExportError
    from ..fileio import read_json_object
    m = read_json_object(directory / "manifest.json", ExportError, f"{directory} is not a bnncore export directory")
    metadata = m.get("metadata")
    name = metadata.get("dataset") if isinstance(metadata, dict) else None
    if name not in DATASET_NAMES:
        raise UsageError(f"{directory / 'manifest.json'}: field 'metadata.dataset' does not name a dataset "
                         f"({name!r}); pass --dataset")
    return name


def _split_inputs(args, net) -> tuple:
    """(dataset, input values, labels) of the first ``args.images`` images of ``args.split``
    (default: all), as the network's input scheme feeds them to its first layer."""
    from ..data import load_dataset
    dataset = args.dataset or net_dataset(Path(args.net))
    ds = load_dataset(dataset, args.data_dir)
    images, labels = (ds.test_images, ds.test_labels) if args.split == "test" else (ds.val_images, ds.val_labels)
    n = min(args.images or len(labels), len(labels))
    return dataset, net.input.bits(images[:n]), labels[:n]
