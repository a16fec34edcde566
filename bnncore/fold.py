"""Fold BatchNorm + sign into one integer threshold per neuron.

For a hidden neuron with n inputs, +-1 weights w, bias b (0 without one) and BatchNorm
(gamma, beta, running mean mu, running variance var, eps) in eval mode::

    y(dot) = gamma * (dot + b - mu) / sqrt(var + eps) + beta = a * dot + c
    a = gamma / sqrt(var + eps),  c = beta + a * (b - mu)
    out = +1  <=>  y >= 0                          (sign(0) = +1)

With dot = 2p - n, p = popcount(xnor(x, w)), the rule is (in float64):

- a > 0: fires <=> dot >= tau = -c / a <=> p >= T = ceil((n + tau) / 2)
- a < 0: fires <=> dot <= tau. The weight row is flipped (w -> -w, so dot -> -dot and
  p -> n - p): fires <=> p' >= T = ceil((n - tau) / 2)
- a = 0: constant output sign(c): T = 0 (always fires) if c >= 0, else T = n + 1 (never)
- T is clipped to [0, n + 1]: T <= 0 always fires, T > n never does.

The exact test of the rule is the torch model itself: every neuron's pre-activation is a
monotone function of p, which takes only n + 1 values. So each threshold is also read off
torch's own float32 BatchNorm evaluated at all n + 1 values (the "grid"). Where float32
rounding puts a tie on the other side than the exact float64 arithmetic does, the grid wins
(the folded network must equal the torch model bit for bit) and the report counts it.

Output layer: score_c = dot_c + round(bias_c), exactly what the torch head computes before its
positive temperature; see bnncore.model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .data import InputBinarization
from .model import BinaryMLP
from .network import FoldedLayer, FoldedNetwork, OutputHead

__all__ = ["fold", "fold_with_report", "fold_rule", "FoldReport", "LayerReport", "FoldError", "verify"]


class FoldError(ValueError):
    """The model cannot be folded (not binary, float input, degenerate output head)."""


def fold_rule(a: np.ndarray, c: np.ndarray, n: int):
    """The float64 folding rule for y = a * dot + c: (thresholds, flip) per neuron."""
    a = np.asarray(a, np.float64)
    c = np.asarray(c, np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tau = -c / a
        t_pos = np.ceil((n + tau) / 2)
        t_neg = np.ceil((n - tau) / 2)
    t = np.where(a > 0, t_pos, np.where(a < 0, t_neg, np.where(c >= 0, 0.0, n + 1.0)))
    t = np.clip(np.nan_to_num(t, nan=0.0, posinf=n + 1.0, neginf=0.0), 0, n + 1).astype(np.int64)
    return t, a < 0


def _decisions(thresholds, flip, n):
    """(n + 1, neurons) bool: does the neuron fire at popcount p of the *unflipped* weights?"""
    p = np.arange(n + 1)[:, None]
    p_eff = np.where(flip[None, :], n - p, p)
    return p_eff >= thresholds[None, :]


def _grid_fold(decide: np.ndarray, n: int, where: str):
    """Thresholds and flips reproducing the decision table ``decide`` (n + 1, neurons)."""
    d = decide.astype(np.int8)
    steps = np.diff(d, axis=0)
    rising, falling = (steps > 0).any(axis=0), (steps < 0).any(axis=0)
    bad = np.flatnonzero(rising & falling)
    if len(bad):
        raise FoldError(f"{where}: neuron {bad[0]}'s output is not monotone in its popcount; "
                        "this is not a sign(BatchNorm(linear)) neuron")
    fires = decide.sum(axis=0)                     # number of p values where it fires
    flip = falling
    # rising or constant: fires for p >= n + 1 - fires; falling: fires for p <= fires - 1,
    # i.e. for p' = n - p >= n + 1 - fires.
    return (n + 1 - fires).astype(np.int64), flip


@dataclass
class LayerReport:
    """What folding did to one hidden layer (counts of neurons)."""
    name: str
    n_in: int
    n_out: int
    positive_scale: int = 0
    negative_scale: int = 0          # weight row flipped
    zero_scale: int = 0              # constant output
    always_fire: int = 0             # threshold 0 (clipped or constant)
    never_fire: int = 0              # threshold n + 1
    float32_ties: int = 0            # neurons where float32 torch and the float64 rule differ
    threshold_min: int = 0
    threshold_max: int = 0

    def line(self) -> str:
        return (f"{self.name}: {self.n_in} -> {self.n_out}  thresholds [{self.threshold_min}, "
                f"{self.threshold_max}]  scale +{self.positive_scale} -{self.negative_scale} "
                f"0:{self.zero_scale}  always {self.always_fire}  never {self.never_fire}  "
                f"float32 ties {self.float32_ties}")


@dataclass
class FoldReport:
    layers: list = field(default_factory=list)
    head_bias_range: tuple = (0, 0)

    def text(self) -> str:
        lines = [l.line() for l in self.layers]
        lines.append(f"output: integer bias in [{self.head_bias_range[0]}, {self.head_bias_range[1]}]")
        return "\n".join(lines)


@torch.no_grad()
def _fold_hidden(block, index: int):
    name = f"layer {index}"
    lin, norm = block.linear, block.norm
    w = lin.weight.detach().cpu()
    bits = (w >= 0).numpy().astype(np.uint8)         # sign(0) = +1 -> bit 1
    n_out, n = bits.shape
    bias = lin.bias.detach().cpu().double() if lin.bias is not None else torch.zeros(n_out, dtype=torch.float64)

    # float64 rule
    if isinstance(norm, torch.nn.BatchNorm1d):
        gamma = norm.weight.detach().cpu().double() if norm.affine else torch.ones(n_out, dtype=torch.float64)
        beta = norm.bias.detach().cpu().double() if norm.affine else torch.zeros(n_out, dtype=torch.float64)
        a = gamma / torch.sqrt(norm.running_var.detach().cpu().double() + norm.eps)
        c = beta + a * (bias - norm.running_mean.detach().cpu().double())
    elif isinstance(norm, torch.nn.Identity):
        a, c = torch.ones(n_out, dtype=torch.float64), bias
    else:
        raise FoldError(f"{name}: cannot fold a {type(norm).__name__}; expected BatchNorm1d or none")
    t64, flip64 = fold_rule(a.numpy(), c.numpy(), n)

    # torch's own float32 evaluation at every popcount 0..n (dot = 2p - n), in eval mode
    was_training = norm.training
    norm.eval()
    dots = torch.arange(-n, n + 1, 2, dtype=torch.float32)[:, None].expand(n + 1, n_out).contiguous()
    z = dots + lin.bias.detach().cpu().float() if lin.bias is not None else dots
    decide = (norm.cpu()(z) >= 0).numpy()
    norm.train(was_training)
    t, flip = _grid_fold(decide, n, name)

    ties = (_decisions(t64, flip64, n) != decide).any(axis=0)
    a_np = a.numpy()
    report = LayerReport(name, n, n_out, int((a_np > 0).sum()), int((a_np < 0).sum()), int((a_np == 0).sum()),
                         int((t == 0).sum()), int((t == n + 1).sum()), int(ties.sum()),
                         int(t.min()), int(t.max()))
    bits = np.where(flip[:, None], 1 - bits, bits).astype(np.uint8)
    return FoldedLayer(bits, t, name=name), report


@torch.no_grad()
def _fold_head(head):
    w = head.linear.weight.detach().cpu()
    bits = (w >= 0).numpy().astype(np.uint8)
    bias = torch.round(head.bias.detach().cpu()).numpy().astype(np.int64)
    scale = head.log_scale.detach().exp().item()
    if not (math.isfinite(scale) and scale > 0):
        raise FoldError(f"output head: temperature exp(log_scale) = {scale} is not a positive finite "
                        "number; its arg-max is not the integer arg-max")
    return OutputHead(bits, bias, name="output")


def fold_with_report(model: BinaryMLP, input: InputBinarization = InputBinarization()):
    """Fold a binary MLP into a :class:`FoldedNetwork`; also return a :class:`FoldReport`."""
    if not isinstance(model, BinaryMLP):
        raise FoldError(f"only binary MLPs fold to thresholds, got {type(model).__name__} "
                        "(a float baseline trained with --no-binary?)")
    if not input.binary:
        raise FoldError("a network trained on float input (--input none) has no bit input; "
                        "train with --input threshold or probability")
    layers, reports = [], []
    for i, block in enumerate(model.blocks):
        layer, rep = _fold_hidden(block, i)
        layers.append(layer)
        reports.append(rep)
    head = _fold_head(model.head)
    net = FoldedNetwork(tuple(layers), head, input)
    return net, FoldReport(reports, (int(head.bias.min()), int(head.bias.max())))


def fold(model: BinaryMLP, input: InputBinarization = InputBinarization()) -> FoldedNetwork:
    """Fold a binary MLP (in any mode; eval-mode statistics are used) into a FoldedNetwork."""
    return fold_with_report(model, input)[0]


@torch.no_grad()
def verify(net: FoldedNetwork, model: BinaryMLP, images: np.ndarray, labels=None, batch_size: int = 1000) -> dict:
    """Compare the folded network (golden model) with the torch model in eval mode, exactly.

    Returns counts of images whose predicted class differs, of hidden activation bits that
    differ, and both accuracies when labels are given.
    """
    from .golden import infer
    bits = net.input.bits(images)
    gold = infer(net, bits, return_layers=True)
    was_training = model.training
    model.eval()
    preds, hidden_bits = [], [[] for _ in net.layers]
    for i in range(0, len(bits), batch_size):
        x = torch.as_tensor(bits[i:i + batch_size]).float() * 2 - 1
        logits, hidden = model(x, return_hidden=True)
        preds.append(logits.argmax(1).numpy())
        for j, h in enumerate(hidden):
            hidden_bits[j].append((h > 0).numpy().astype(np.uint8))
    model.train(was_training)
    preds = np.concatenate(preds)
    bit_diffs = [int((np.concatenate(h) != g).sum()) for h, g in zip(hidden_bits, gold.activations)]
    result = {"images": int(len(bits)), "class_mismatches": int((preds != gold.classes).sum()),
              "hidden_bit_mismatches": int(sum(bit_diffs)), "hidden_bit_mismatches_per_layer": bit_diffs,
              "hidden_bits_compared": int(sum(h.size for h in gold.activations))}
    if labels is not None:
        labels = np.asarray(labels)
        result["torch_accuracy"] = float((preds == labels).mean())
        result["folded_accuracy"] = float((gold.classes == labels).mean())
    return result
