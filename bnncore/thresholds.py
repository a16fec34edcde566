"""Thresholds from a layer's decision: the torch-free part of folding, shared by ``bnn fold``
(the decision is torch's float32 evaluation of a block) and ``bnn import`` of QONNX models
(qonnx's executor running the nodes after a MatMul or Conv).

A hidden neuron (or conv channel) computes an integer ``dot`` (the ±1 dot product, or the
raw-pixel one of an 8-bit first layer) and fires when ``y = a * dot + c >= 0`` for some
per-channel float affine map (scale, bias, BatchNorm). ``a >= 0``: it fires from some dot
upwards; ``a < 0``: up to some dot (its weight row is then flipped, which negates dot). The
exact threshold is found by bisection on the decision itself, monotone in dot, over the
integer range of the sum; the float64 rule is computed beside it, and the report counts the
channels where float32 rounding moved a tie (the decision wins). See ``bnncore.folding``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["fold_rule", "threshold_layer", "to_yxc", "LayerReport", "FoldReport"]


def fold_rule(a: np.ndarray, c: np.ndarray, n: int):
    """The float64 folding rule for y = a * dot + c over 1-bit inputs: (thresholds, flip)."""
    a = np.asarray(a, np.float64)
    c = np.asarray(c, np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tau = -c / a
        t_pos = np.ceil((n + tau) / 2)
        t_neg = np.ceil((n - tau) / 2)
    t = np.where(a > 0, t_pos, np.where(a < 0, t_neg, np.where(c >= 0, 0.0, n + 1.0)))
    t = np.clip(np.nan_to_num(t, nan=0.0, posinf=n + 1.0, neginf=0.0), 0, n + 1).astype(np.int64)
    return t, a < 0


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
    float32_ties: int = 0            # neurons where the float32 decision and the float64 rule differ
    threshold_min: int = 0
    threshold_max: int = 0
    kind: str = "dense"
    and_channels: int = 0            # the pool that follows (pool before BatchNorm): AND channels

    def line(self) -> str:
        return (f"{self.name}: {self.n_in} -> {self.n_out}  thresholds [{self.threshold_min}, "
                f"{self.threshold_max}]  scale +{self.positive_scale} -{self.negative_scale} "
                f"0:{self.zero_scale}  always {self.always_fire}  never {self.never_fire}  "
                f"float32 ties {self.float32_ties}"
                + (f"  (pool: {self.and_channels} AND channels)" if self.and_channels else ""))


@dataclass
class FoldReport:
    layers: list = field(default_factory=list)
    head_bias_range: tuple = (0, 0)

    def text(self) -> str:
        lines = [l.line() for l in self.layers]
        lines.append(f"output: integer bias in [{self.head_bias_range[0]}, {self.head_bias_range[1]}]")
        return "\n".join(lines)


def _search(decide, increasing: np.ndarray, n: int, in_bits: int, where: str) -> np.ndarray:
    """Per channel, the smallest u in [0, V + 1] at which the channel fires, counting v = u
    upwards (increasing channels) or v = V - u downwards (decreasing ones), over the values
    v in [0, V] of its integer sum: v = popcount for 1-bit inputs (dot = 2v - n), v = dot + 255 n
    for 8-bit ones. V + 1: never fires."""
    V = n if in_bits == 1 else 2 * 255 * n
    lo = np.zeros(len(increasing), np.int64)
    hi = np.full(len(increasing), V + 1, np.int64)
    while (lo < hi).any():
        mid = np.minimum((lo + hi) // 2, V)
        v = np.where(increasing, mid, V - mid)
        dots = 2 * v - n if in_bits == 1 else v - 255 * n
        ok = decide(dots, where)
        open_ = lo < hi
        hi = np.where(open_ & ok, mid, hi)
        lo = np.where(open_ & ~ok, mid + 1, lo)
    return lo


def _rule_u(a, c, n, in_bits):
    """The float64 rule's u (see _search), for the report's count of float32 ties."""
    V = n if in_bits == 1 else 2 * 255 * n
    slope, offset = (2.0, -n) if in_bits == 1 else (1.0, -255.0 * n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v_tau = (-c / a - offset) / slope
        u = np.where(a > 0, np.ceil(v_tau), np.where(a < 0, np.ceil(V - v_tau), np.where(c >= 0, 0.0, V + 1.0)))
    return np.clip(np.nan_to_num(u, nan=0.0, posinf=V + 1.0, neginf=0.0), 0, V + 1).astype(np.int64)


def threshold_layer(decide, a: np.ndarray, c: np.ndarray, bits: np.ndarray, in_bits: int, name: str,
                    kind: str = "dense"):
    """One hidden layer's folded weight rows and thresholds.

    ``decide(dots, where) -> bool (channels,)``: whether each channel fires at the integer
    ``dots[channel]`` (the exact decision); ``a``, ``c``: the float64 affine map per channel
    (its sign of ``a`` chooses the direction, and the report's tie count compares against
    it); ``bits``: the weight bits (channels, ...) before flipping. Returns ``(rows, thresholds,
    flip, LayerReport)``."""
    channels = bits.shape[0]
    n = int(np.prod(bits.shape[1:]))
    increasing = ~(np.asarray(a) < 0)
    u = _search(decide, increasing, n, in_bits, name)
    flip = ~increasing
    rows = np.where(flip.reshape((-1,) + (1,) * (bits.ndim - 1)), 1 - bits, bits).astype(np.uint8)
    top = n * (2**in_bits - 1)
    if in_bits == 1:
        t = u
    else:  # fires when v' = sum' + 255 * ones(row') >= u, i.e. sum' >= u - 255 * ones
        t = np.clip(u - 255 * rows.reshape(channels, -1).sum(axis=1).astype(np.int64), 0, top + 1)
    ties = _rule_u(a, c, n, in_bits) != u
    report = LayerReport(name, n, channels, int((a > 0).sum()), int((a < 0).sum()), int((a == 0).sum()),
                         int((t == 0).sum()), int((t == top + 1).sum()), int(ties.sum()), int(t.min()), int(t.max()),
                         kind=kind)
    return rows, t, flip, report


def to_yxc(w: np.ndarray, shape: tuple) -> np.ndarray:
    """Weight columns of a dense layer after a conv: the (channel, y, x) flatten order of torch
    and ONNX -> the folded network's (y, x, channel)."""
    if len(shape) != 3:
        return w
    c, h, wd = shape
    return np.ascontiguousarray(w.reshape(len(w), c, h, wd).transpose(0, 2, 3, 1).reshape(len(w), -1))
