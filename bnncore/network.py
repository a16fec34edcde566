"""The folded network: the one hand-off between software and hardware.

Bits: a weight or activation bit of 1 stands for +1, 0 for -1. For a neuron with n inputs,
x and w in {-1, +1}^n encoded as bits::

    popcount(xnor(x, w)) = number of positions where x and w agree
    dot(x, w)            = 2 * popcount(xnor(x, w)) - n

Hidden neuron j of a layer fires (outputs bit 1, i.e. +1) exactly when
``popcount(xnor(x, w_j)) >= thresholds[j]``, with thresholds in [0, n + 1]: 0 fires always,
n + 1 never.

Output head: ``score_c = 2 * popcount(xnor(x, w_c)) - n + bias_c`` (an integer) and the
predicted class is the lowest index c with the highest score.

Nothing here imports torch: ``hw/`` and ``sim/`` consume this.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from .data import InputBinarization

__all__ = ["FoldedLayer", "OutputHead", "FoldedNetwork", "NetworkError", "summary", "summary_table"]


class NetworkError(ValueError):
    """A folded network is inconsistent: wrong shapes, non-bit weights, thresholds out of range."""


def _as_bits(a, where: str, shape_hint: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or 0 in a.shape:
        raise NetworkError(f"{where}: weights must be a non-empty 2-D array {shape_hint}, got shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        raise NetworkError(f"{where}: weights must be integer 0/1 bits, got dtype {a.dtype}")
    bad = np.argwhere((a != 0) & (a != 1))
    if len(bad):
        r, c = bad[0]
        raise NetworkError(f"{where}: weights must be 0 or 1, found {a[r, c]} at neuron {r}, input {c}")
    out = np.ascontiguousarray(a, dtype=np.uint8)
    out.setflags(write=False)
    return out


def _as_ints(a, n: int, where: str, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (n,):
        raise NetworkError(f"{where}: {what} must have shape ({n},), one per neuron, got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise NetworkError(f"{where}: {what} must be integers, got dtype {a.dtype}")
    out = np.ascontiguousarray(a, dtype=np.int64)
    out.setflags(write=False)
    return out


class _Sizes:
    @property
    def n_in(self) -> int:
        return self.weights.shape[1]

    @property
    def n_out(self) -> int:
        return self.weights.shape[0]


@dataclass(frozen=True, eq=False)
class FoldedLayer(_Sizes):
    """A hidden layer: neuron j fires when popcount(xnor(x, weights[j])) >= thresholds[j].

    Attributes
    ----------
    weights : uint8 array (n_out, n_in) of 0/1, read-only
    thresholds : int64 array (n_out,) in [0, n_in + 1], read-only
    """
    weights: np.ndarray
    thresholds: np.ndarray
    name: str = field(default="layer", compare=False)

    def __post_init__(self):
        w = _as_bits(self.weights, self.name, "(neurons, inputs)")
        t = _as_ints(self.thresholds, w.shape[0], self.name, "thresholds")
        n = w.shape[1]
        bad = np.flatnonzero((t < 0) | (t > n + 1))
        if len(bad):
            raise NetworkError(f"{self.name}: thresholds must be in [0, {n + 1}] for {n} inputs, "
                               f"found {t[bad[0]]} at neuron {bad[0]}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "thresholds", t)

    def __eq__(self, other):
        return (isinstance(other, FoldedLayer) and np.array_equal(self.weights, other.weights)
                and np.array_equal(self.thresholds, other.thresholds))

    def __repr__(self):
        return (f"FoldedLayer({self.name}, {self.n_in} -> {self.n_out}, thresholds in "
                f"[{self.thresholds.min()}, {self.thresholds.max()}])")


@dataclass(frozen=True, eq=False)
class OutputHead(_Sizes):
    """The output layer: score_c = 2 * popcount(xnor(x, weights[c])) - n_in + bias[c].

    The predicted class is the lowest index with the highest score.
    """
    weights: np.ndarray
    bias: np.ndarray
    name: str = field(default="output", compare=False)

    def __post_init__(self):
        w = _as_bits(self.weights, self.name, "(classes, inputs)")
        b = _as_ints(self.bias, w.shape[0], self.name, "bias")
        limit = 2**31 - 1 - w.shape[1]
        bad = np.flatnonzero(np.abs(b) > limit)
        if len(bad):
            raise NetworkError(f"{self.name}: bias must be in [-{limit}, {limit}] so scores fit 32 bits, "
                               f"found {b[bad[0]]} at class {bad[0]}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias", b)

    def __eq__(self, other):
        return (isinstance(other, OutputHead) and np.array_equal(self.weights, other.weights)
                and np.array_equal(self.bias, other.bias))

    def __repr__(self):
        return f"OutputHead({self.n_in} -> {self.n_out} classes)"


@dataclass(frozen=True, eq=False)
class FoldedNetwork:
    """Hidden layers, output head and the input binarization they expect.

    Attributes
    ----------
    layers : tuple of FoldedLayer (possibly empty: a single-layer network)
    head : OutputHead
    input : InputBinarization (scheme 'threshold' or 'probability'; inference uses
        ``input.bits(images)``)
    """
    layers: tuple
    head: OutputHead
    input: InputBinarization = InputBinarization()

    def __post_init__(self):
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, FoldedLayer):
                raise NetworkError(f"layer {i}: expected a FoldedLayer, got {type(layer).__name__}")
        if not isinstance(self.head, OutputHead):
            raise NetworkError(f"head: expected an OutputHead, got {type(self.head).__name__}")
        if not isinstance(self.input, InputBinarization) or not self.input.binary:
            raise NetworkError(f"input: a folded network needs binary input ('threshold' or "
                               f"'probability'), got {self.input!r}")
        stages = list(layers) + [self.head]
        for i in range(1, len(stages)):
            if stages[i].n_in != stages[i - 1].n_out:
                name = f"layer {i}" if i < len(layers) else "output head"
                raise NetworkError(f"{name}: has {stages[i].n_in} inputs, expected {stages[i - 1].n_out} "
                                   f"(the outputs of layer {i - 1})")
        # unnamed layers are named by position, for messages and reports
        layers = tuple(replace(l, name=f"layer {i}") if l.name == "layer" else l for i, l in enumerate(layers))
        object.__setattr__(self, "layers", layers)

    @property
    def topology(self) -> tuple:
        return (self.layers[0].n_in if self.layers else self.head.n_in,) + \
            tuple(l.n_out for l in self.layers) + (self.head.n_out,)

    @property
    def stages(self) -> tuple:
        """The hidden layers, then the head: every layer that has weights."""
        return self.layers + (self.head,)

    def __eq__(self, other):
        return (isinstance(other, FoldedNetwork) and self.layers == other.layers
                and self.head == other.head and self.input == other.input)

    def digest(self) -> str:
        """sha256 of what the network computes: the input binarization, then per layer its
        kind, shape, weight bits and thresholds (or biases). Equal networks, equal digests,
        whatever files they were read from; names do not count."""
        h = hashlib.sha256(f"bnncore-network/1 {self.input.scheme} {self.input.level}".encode())
        for s in self.stages:
            values = s.thresholds if isinstance(s, FoldedLayer) else s.bias
            h.update(f";{type(s).__name__} {s.n_out}x{s.n_in};".encode())
            h.update(np.packbits(s.weights, axis=None).tobytes())
            h.update(values.astype("<i8").tobytes())
        return h.hexdigest()

    def __repr__(self):
        return (f"FoldedNetwork({'-'.join(map(str, self.topology))}, input={self.input.scheme}"
                f"{'@' + str(self.input.level) if self.input.scheme == 'threshold' else ''})")


def _bits_for(n_values: int) -> int:
    """Unsigned bits needed to hold n_values distinct values 0..n_values-1."""
    return max(1, int(n_values - 1).bit_length())


def summary(net: FoldedNetwork) -> dict:
    """Per-layer sizes and the bit widths the hardware needs, with totals (Larq-style)."""
    rows = []
    for s in net.stages:
        hidden = isinstance(s, FoldedLayer)
        values = s.thresholds if hidden else s.bias
        row = {"name": s.name, "kind": "hidden" if hidden else "output", "n_in": s.n_in, "n_out": s.n_out,
               "weight_bits": s.n_in * s.n_out, "weight_kib": s.n_in * s.n_out / 8 / 1024,
               "macs_per_image": s.n_in * s.n_out,
               "popcount_bits": _bits_for(s.n_in + 1),
               "value_min": int(values.min()), "value_max": int(values.max())}
        if hidden:
            row["threshold_bits"] = _bits_for(s.n_in + 2)          # T in [0, n + 1]
        else:  # score = 2p - n + bias, signed
            lo, hi = -s.n_in + int(values.min()), s.n_in + int(values.max())
            row["score_bits"] = 1 + max(abs(lo), abs(hi)).bit_length()
        # folded parameters: weight bits + one threshold (or bias) word per neuron;
        # float32 original: 32-bit weights + BatchNorm's 4 floats (or the bias) per neuron
        row["folded_bits"] = row["weight_bits"] + s.n_out * row.get("threshold_bits", row.get("score_bits"))
        row["float32_bits"] = 32 * row["weight_bits"] + 32 * s.n_out * (4 if hidden else 1)
        rows.append(row)
    total = {k: sum(r[k] for r in rows) for k in ("weight_bits", "weight_kib", "macs_per_image",
                                                    "folded_bits", "float32_bits")}
    total["compression_vs_float32"] = total["float32_bits"] / total["folded_bits"]
    return {"topology": list(net.topology), "input": net.input.scheme, "layers": rows, "total": total}


def summary_table(net: FoldedNetwork) -> str:
    s = summary(net)
    head = f"{'layer':<10} {'in':>6} {'out':>6} {'weight bits':>12} {'KiB':>9} {'MACs/img':>11} " \
           f"{'thr/bias range':>16} {'popcnt bits':>11} {'thr bits':>8}"
    lines = [f"FoldedNetwork {'-'.join(map(str, s['topology']))}, {s['input']} input", head, "-" * len(head)]
    for r in s["layers"]:
        rng = f"[{r['value_min']}, {r['value_max']}]"
        width = r.get("threshold_bits", r.get("score_bits"))
        lines.append(f"{r['name']:<10} {r['n_in']:>6} {r['n_out']:>6} {r['weight_bits']:>12,} {r['weight_kib']:>9.1f} "
                     f"{r['macs_per_image']:>11,} {rng:>16} {r['popcount_bits']:>11} {width:>8}")
    t = s["total"]
    lines.append("-" * len(head))
    lines.append(f"{'total':<10} {'':>6} {'':>6} {t['weight_bits']:>12,} {t['weight_kib']:>9.1f} {t['macs_per_image']:>11,}")
    lines.append(f"parameters: {t['folded_bits'] / 8 / 1024:.1f} KiB folded vs {t['float32_bits'] / 8 / 1024:.1f} KiB "
                 f"float32 (weights + BatchNorm): {t['compression_vs_float32']:.1f}x smaller")
    lines.append("(output layer: score bits instead of threshold bits; score = 2 * popcount - n + bias)")
    return "\n".join(lines)
