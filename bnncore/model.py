"""Binary MLPs of any topology, and a float baseline of the same topology.

A binary network is, layer after layer::

    hidden:  x (+-1) -> BinaryLinear -> BatchNorm1d -> sign (sign(0) = +1) -> +-1
    output:  x (+-1) -> BinaryLinear -> + round(b) -> scores (integers) -> * exp(s) -> logits

The output head is chosen so that folding reproduces the predicted class exactly with
integer arithmetic. The scores are integers: the +-1 dot product plus an integer (rounded,
straight-through) per-class bias. The logits are those scores times one positive learned
temperature exp(s), shared by all classes (Brevitas' and FINN's TensorNorm plays the same
role), which scales the softmax for the loss but cannot change the arg-max. So the predicted
class is ``argmax_c (2 * popcount_c - n + bias_c)`` with ties going to the lowest index, as
``torch.argmax`` does; the folded network and the hardware compute exactly that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .layers import BinaryActivation, BinaryLinear, RoundSTE

__all__ = ["ModelConfig", "parse_topology", "BinaryMLP", "FloatMLP", "build_model"]


def parse_topology(text) -> tuple[int, ...]:
    """Parse '784-256-256-10' into (784, 256, 256, 10); tuples and lists pass through."""
    if isinstance(text, (tuple, list)):
        sizes = tuple(text)
    else:
        try:
            sizes = tuple(int(t) for t in str(text).strip().split("-"))
        except ValueError:
            raise ValueError(f"topology {text!r} does not parse: expected layer sizes separated "
                             f"by '-', like 784-256-256-10") from None
    if len(sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"topology {text!r} must have at least an input and an output size, "
                         f"all positive integers, like 784-256-256-10")
    return sizes


def topology_str(sizes) -> str:
    return "-".join(str(s) for s in sizes)


@dataclass
class ModelConfig:
    topology: tuple = (784, 256, 256, 256, 10)  # input, hidden..., classes
    binary: bool = True          # False: float baseline (float weights, ReLU)
    batchnorm: bool = True       # BatchNorm1d after each hidden linear layer
    bias: bool = False           # bias in the hidden linear layers (redundant with BatchNorm)
    stochastic: bool = False     # stochastic binary activations while training (seed 002)
    dropout_in: float = 0.0      # dropout on the input while training
    dropout: float = 0.0         # dropout on hidden activations while training
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    def __post_init__(self):
        self.topology = parse_topology(self.topology)
        for name in ("dropout_in", "dropout"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), not {p}")


class _Block(nn.Module):
    def __init__(self, linear, norm, act, dropout):
        super().__init__()
        self.linear, self.norm, self.act = linear, norm, act
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def pre_activation(self, x):
        return self.norm(self.linear(x))

    def forward(self, x):
        return self.drop(self.act(self.pre_activation(x)))


class BinaryOutputHead(nn.Module):
    """Integer scores (+-1 dot product + rounded bias) times a positive temperature."""

    def __init__(self, in_features: int, classes: int):
        super().__init__()
        self.linear = BinaryLinear(in_features, classes, bias=False)
        self.bias = nn.Parameter(torch.zeros(classes))
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(in_features)))

    def scores(self, x):
        return self.linear(x) + RoundSTE.apply(self.bias)

    def forward(self, x):
        return self.scores(x) * self.log_scale.exp()


class BinaryMLP(nn.Module):
    """Binary MLP: +-1 weights and activations, BatchNorm, integer output head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        sizes = cfg.topology
        self.input_drop = nn.Dropout(cfg.dropout_in) if cfg.dropout_in > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            _Block(BinaryLinear(n_in, n_out, bias=cfg.bias),
                   nn.BatchNorm1d(n_out, eps=cfg.bn_eps, momentum=cfg.bn_momentum) if cfg.batchnorm else nn.Identity(),
                   BinaryActivation(cfg.stochastic), cfg.dropout)
            for n_in, n_out in zip(sizes[:-2], sizes[1:-1]))
        self.head = BinaryOutputHead(sizes[-2], sizes[-1])

    def forward(self, x, *, return_hidden: bool = False):
        """Logits; with ``return_hidden``, also the list of hidden +-1 activations."""
        x = self.input_drop(x)
        hidden = []
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        logits = self.head(x)
        return (logits, hidden) if return_hidden else logits

    def binary_linears(self):
        return [b.linear for b in self.blocks] + [self.head.linear]

    def clip_(self):
        for lin in self.binary_linears():
            lin.clip_()


class FloatMLP(nn.Module):
    """Float baseline of the same topology: Linear -> BatchNorm -> ReLU, float output layer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        sizes = cfg.topology
        self.input_drop = nn.Dropout(cfg.dropout_in) if cfg.dropout_in > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            _Block(nn.Linear(n_in, n_out, bias=cfg.bias or not cfg.batchnorm),
                   nn.BatchNorm1d(n_out, eps=cfg.bn_eps, momentum=cfg.bn_momentum) if cfg.batchnorm else nn.Identity(),
                   nn.ReLU(), cfg.dropout)
            for n_in, n_out in zip(sizes[:-2], sizes[1:-1]))
        self.head = nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x, *, return_hidden: bool = False):
        x = self.input_drop(x)
        hidden = []
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        logits = self.head(x)
        return (logits, hidden) if return_hidden else logits

    def clip_(self):
        pass


def build_model(cfg: ModelConfig) -> nn.Module:
    return BinaryMLP(cfg) if cfg.binary else FloatMLP(cfg)
