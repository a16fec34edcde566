"""The training configuration, kept free of torch so that `bnn --help` builds its options
from it without importing torch (3-4 s); the checks that need a model import it lazily."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from .errors import BnnError, UsageError
from .topology import parse

__all__ = ["TrainConfig", "PRECISIONS", "CheckpointError"]


#: the largest random seed (torch, NumPy and nextpnr all take it)
MAX_SEED = 2**32 - 1
#: the most torch threads a run may ask for
MAX_THREADS = 256


class CheckpointError(BnnError, ValueError):
    """A file is not a bnncore checkpoint, or not one this version can read."""


#: fw32bw32: float32 throughout; fw16bw32: 16-bit forward pass (autocast), float32 weights,
#: gradients and updates (mixed precision); fw16bw16: weights, activations and gradients 16-bit.
PRECISIONS = ("fw32bw32", "fw16bw32", "fw16bw16")


@dataclass
class TrainConfig:
    dataset: str = "mnist"              # mnist | fashion-mnist | cifar-10, or a .npz or image folder of your own
    topology: str = "784-256-256-256-10"
    input: str = "threshold"            # threshold | probability | uint8 | none
    level: int = 128                    # threshold level: bit = pixel >= level
    repeats: int = 1                    # probability input: samples of the training set per epoch
    binary: bool = True                 # False: float baseline of the same topology
    batchnorm: bool = True
    bias: bool = False
    stochastic: bool = False            # stochastic binary activations (seed 002)
    dropout_in: float = 0.0
    dropout: float = 0.0
    shift: int = 0                      # augmentation: random translation by up to +-shift pixels
    flip: bool = False                  # augmentation: random horizontal flips (CIFAR-style data)
    loss: str = "nll"                   # nll (LogSoftmax + NLL, as the seeds) | hinge (squared, BinaryNet)
    optimizer: str = "adam"             # adam | sgd
    lr: float = 0.01
    lr_end: float = 1e-4                # learning rate of the last epoch (exp, cosine)
    schedule: str = "exp"               # exp (BinaryNet) | cosine | const
    momentum: float = 0.0               # sgd only
    batch_size: int = 100
    epochs: int = 10
    seed: int = 0
    val_size: int | None = None         # last training images held out: 10,000 (built-in), a tenth (your own)
    limit: int = 0                      # use only the first `limit` training images (0: all)
    device: str = "cpu"                 # cpu | cuda
    threads: int = 0                    # torch threads (0: torch's default)
    weight_scale: str = "none"          # none (BinaryNet) | filter (XNOR-Net) | layer (DoReFa)
    pool_order: str = "after"           # after: conv-BN-sign-pool | before: conv-pool-BN-sign (FINN)
    pad_value: int = 1                  # +1 or -1: what binary convolutions pad with
    binary_act: bool = False            # ResNet only: binary activations (float by default there)
    input_scaling: bool = False         # ResNet with binary activations: XNOR-Net's K (not foldable)
    precision: str = "fw32bw32"         # fw32bw32 | fw16bw32 (16-bit forward, autocast) | fw16bw16 (all 16-bit)
    half: str = "float16"               # the 16-bit type: float16 (IEEE, as NumPy's) | bfloat16

    def __post_init__(self):
        self.topology = str(parse(self.topology))
        choices = {"loss": ("nll", "hinge"), "optimizer": ("adam", "sgd"), "precision": PRECISIONS,
                   "half": ("float16", "bfloat16"),
                   "schedule": ("exp", "cosine", "const"), "device": ("cpu", "cuda")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be a positive integer, not {getattr(self, name)}")
        for name in ("limit", "val_size", "threads", "seed"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise UsageError(f"{name} must be a non-negative integer, not {getattr(self, name)}")
        if self.seed > MAX_SEED:
            raise UsageError(f"seed must be at most {MAX_SEED} (2**32 - 1), not {self.seed}")
        if self.threads > MAX_THREADS:
            raise UsageError(f"threads must be at most {MAX_THREADS}: each torch thread takes memory of its own, "
                             f"and this machine has {os.cpu_count()} cores; not {self.threads}")
        if not 0 <= self.momentum < 1:
            raise UsageError(f"momentum must be in [0, 1), not {self.momentum}")
        if not isinstance(self.shift, int) or not 0 <= self.shift <= 8:
            raise UsageError(f"shift must be an integer number of pixels in [0, 8], not {self.shift!r}")
        if self.lr <= 0 or self.lr_end <= 0:
            raise UsageError(f"learning rates must be positive, not lr={self.lr}, lr_end={self.lr_end}")
        if self.precision != "fw32bw32" and self.binary and parse(self.topology).resnet is None:
            raise UsageError(f"precision {self.precision} is for float networks (--no-binary): a binary layer's "
                             "integer sums are not exact in 16-bit floats, and folding needs them exact")
        self.binarization()  # validates input, level, repeats
        self.model_config()  # validates dropout

    def binarization(self) -> "InputBinarization":
        from .data import InputBinarization
        return InputBinarization(self.input, self.level, self.repeats)

    def model_config(self) -> "ModelConfig":
        from .model import ModelConfig
        return ModelConfig(topology=self.topology, binary=self.binary,
                           batchnorm=self.batchnorm, bias=self.bias, stochastic=self.stochastic,
                           dropout_in=self.dropout_in, dropout=self.dropout, weight_scale=self.weight_scale,
                           pool_order=self.pool_order, pad_value=self.pad_value,
                           raw_input=self.binary and self.input == "uint8", binary_act=self.binary_act,
                           input_scaling=self.input_scaling)

    @property
    def foldable(self) -> bool:
        """Does this run give a network that folds to thresholds?"""
        return self.binary and self.input != "none" and parse(self.topology).resnet is None

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"unknown config fields {sorted(unknown)}")
        return cls(**d)
