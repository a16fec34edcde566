"""What every verb shares: argument types with their ranges, the training options generated
from ``TrainConfig``, the help layout, one example per verb, and the dataset a verb reads."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import textwrap
from dataclasses import MISSING, fields
from fractions import Fraction
from pathlib import Path

from .. import settings
from ..errors import UsageError

#: data.NAMES, spelt out so that `bnn --help` does not import NumPy (tests check they agree).
DATASET_NAMES = ("mnist", "fashion-mnist", "cifar-10")

log = logging.getLogger("bnncore")


_TRAIN_HELP = {
    "dataset": "dataset: mnist, fashion-mnist, cifar-10, or your own: a .npz (x_train, y_train, x_test, y_test) "
               "or a folder of train/<class>/ and test/<class>/ images (docs/training.md)",
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
    "val_size": "last training images held out for validation (default: 10,000 of a built-in dataset, a tenth "
                "of your own)",
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


_CHOICES = {"input": ("threshold", "probability", "uint8", "none"),
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


def _dataset(text: str) -> str:
    """--dataset: a built-in name, or the path of a dataset of your own."""
    from ..userdata import is_path
    if text in DATASET_NAMES or is_path(text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is neither a built-in dataset ({', '.join(DATASET_NAMES)}) nor a "
                                     ".npz file or folder of your own (a path)")


def _verify_on(text: str) -> tuple:
    """--verify-on: ("dataset", name) or ("random", N)."""
    from ..userdata import is_path
    if text in DATASET_NAMES or is_path(text):
        return "dataset", text
    if text.startswith("random:"):
        n = text[len("random:"):]
        if n.isdigit() and 1 <= int(n) <= 1_000_000:
            return "random", int(n)
    raise argparse.ArgumentTypeError(f"{text!r} is neither a dataset ({', '.join(DATASET_NAMES)}, or the path of "
                                     "your own) nor random:N with N in [1, 1,000,000]")


def _fraction(text: str) -> float:
    """A number, also written as a fraction ('1/255')."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number or a fraction such as 1/255") from None
    if abs(value) > 1e6:
        raise argparse.ArgumentTypeError(f"must be of magnitude at most 1e6, not {text}")
    return value


def _typed(rule: settings.Rule):
    """The argparse type of a number that must follow ``rule`` (bnncore/settings.py)."""
    return _number(rule.kind, rule.ok, rule.text)


def _count(minimum: int, maximum: int | None = None, why: str = ""):
    return _typed(settings.count(minimum, maximum, why))


_seed, _jobs, _banks = _typed(settings.SEED), _typed(settings.JOBS), _typed(settings.BANKS)


_seconds = _number(float, lambda v: 0 < v <= 3600, "a number of seconds in (0, 3600]")


#: --force of the verbs that write a folder (bnncore/fileio.py's output rule)
_FORCE_HELP = ("replace -o even when it holds files this verb did not write, or another bnn verb's output "
               "(never a folder bnncore did not write)")


_TRAIN_TYPES = {"seed": _seed, "threads": _count(0, 256, " (each thread takes memory of its own)"),
                "val_size": _count(0), "dataset": _dataset}


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


def add_stage(p: argparse.ArgumentParser, stage: settings.Stage):
    """The flags of ``stage``'s options (bnncore/settings.py) on a verb's parser: the
    keyword's name is the flag's destination, so that ``stage.from_args(args)`` gives the
    Python API's keywords back."""
    for o in stage:
        kw = {"dest": o.name, "help": o.help}
        if isinstance(o.default, bool):
            kw["action"] = "store_false" if o.negate else "store_true"
        else:
            kw["default"] = (",".join(map(str, o.default)) if o.from_text is not None and isinstance(o.default, tuple)
                             else o.default)
            choices = settings.names_of(o.choices) if o.choices is not None else None
            if choices is not None:
                kw["choices"] = choices
                if all(isinstance(c, int) for c in choices):
                    kw["type"] = int
            else:
                kw["metavar"] = o.metavar or o.cli_flag.lstrip("-").upper().replace("-", "_")
            if o.rule is not None:
                kw["type"] = _typed(o.rule)
            elif o.path:
                kw["type"] = Path
        p.add_argument(o.cli_flag, **kw)


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
                or action.default is argparse.SUPPRESS
                or (action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction))):  # a flag
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
    from ..userdata import is_path
    if not isinstance(name, str) or not (name in DATASET_NAMES or is_path(name)):
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
