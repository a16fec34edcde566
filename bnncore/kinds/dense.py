"""Dense hidden layers: neuron j fires when sum(x, weights[j]) >= thresholds[j]."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import qonnx_graph as qg
from ..bits import pack_bits, packed_t, sums
from .base import (DenseRules, Layer, as_bits, as_ints, check_in_bits, check_thresholds, entry_in_bits, entry_int,
                   flattened, pm1)

__all__ = ["DenseLayer", "FoldedLayer", "KIND"]


@dataclass(frozen=True, eq=False)
class DenseLayer(Layer):
    """A fully connected hidden layer: neuron j fires when sum(x, weights[j]) >= thresholds[j].

    Attributes
    ----------
    weights : uint8 array (n_out, n_in) of 0/1, read-only
    thresholds : int64 array (n_out,) in [0, n_in * (2**in_bits - 1) + 1], read-only
    in_bits : 1, or 8 for the first layer of a network with 'uint8' input
    """
    weights: np.ndarray
    thresholds: np.ndarray
    name: str = field(default="layer", compare=False)
    in_bits: int = 1
    kind = "dense"

    def __post_init__(self):
        check_in_bits(self.name, self.in_bits)
        w = as_bits(self.weights, self.name, 2, "(neurons, inputs)")
        t = as_ints(self.thresholds, w.shape[0], self.name, "thresholds")
        check_thresholds(self.name, t, w.shape[1] * (2**self.in_bits - 1), w.shape[1], "neuron")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "thresholds", t)

    @property
    def n_in(self) -> int:
        return self.weights.shape[1]

    @property
    def n_out(self) -> int:
        return self.weights.shape[0]

    @property
    def fan_in(self) -> int:
        return self.n_in

    @property
    def matrix(self) -> np.ndarray:
        """(neurons, fan-in) weight bits: the rows the XNOR-popcount sees."""
        return self.weights

    @property
    def in_shape(self) -> tuple:
        return (self.n_in,)

    @property
    def out_shape(self) -> tuple:
        return (self.n_out,)

    @property
    def max_sum(self) -> int:
        return self.n_in * (2**self.in_bits - 1)

    def __eq__(self, other):
        return (isinstance(other, DenseLayer) and self.in_bits == other.in_bits
                and np.array_equal(self.weights, other.weights) and np.array_equal(self.thresholds, other.thresholds))

    def __repr__(self):
        return (f"DenseLayer({self.name}, {self.n_in} -> {self.n_out}{', 8-bit input' if self.in_bits == 8 else ''}, "
                f"thresholds in [{self.thresholds.min()}, {self.thresholds.max()}])")


#: The name of a dense hidden layer before networks had other layer kinds.
FoldedLayer = DenseLayer


class DenseKind(DenseRules):
    """The built-in kind ``dense``: its manifest entry and its golden models."""
    name = "dense"
    layer = DenseLayer
    tag = "FoldedLayer"

    @staticmethod
    def qonnx_rule(r, n) -> bool:
        """QONNX import (bnncore.qonnx_import.Reader): a MatMul or Gemm with an activation after
        it (the affine ops between fold into its thresholds)."""
        if n.op_type not in ("MatMul", "Gemm") or r.is_last():
            return False
        lin = r.linear(n)
        pool = [m for m in lin.post if m.op_type == "MaxPool"]
        if pool:
            raise qg.QonnxImportError(f"{qg.node_name(pool[0])}: a MaxPool needs a feature map (after a Conv)")
        rows, t, rep = r.thresholds(lin, "dense")
        r.add(DenseLayer(rows, t, name=lin.name, in_bits=lin.in_bits))
        r.done(lin, rep)
        return True

    @staticmethod
    def entry(l):
        return {"n_in": l.n_in, "n_out": l.n_out, "in_bits": l.in_bits}

    @staticmethod
    def check(path, f, e):
        """(fan-in, neurons, in_bits) of the layer's weight matrix, from its manifest entry."""
        return entry_int(path, f + ".n_in", e.get("n_in")), entry_int(path, f + ".n_out", e.get("n_out")), \
            entry_in_bits(path, f + ".in_bits", e.get("in_bits", 1))

    @staticmethod
    def build(e, w, t):
        return DenseLayer(w, t, name=e["name"], in_bits=e.get("in_bits", 1))

    @staticmethod
    def numpy(layer, x, w_t):
        x = x.reshape(len(x), -1)
        return (sums(x, w_t, layer.n_in, layer.in_bits) >= layer.thresholds).astype(np.uint8)

    @staticmethod
    def numpy_prepare(layer):
        return packed_t(layer)

    @staticmethod
    def numba_prepare(layer):
        if layer.in_bits == 8:
            return -np.ascontiguousarray(layer.matrix.T, dtype=np.int32), layer.thresholds.astype(np.int32)
        return packed_t(layer), (layer.n_in - layer.thresholds).astype(np.int64)

    @staticmethod
    def numba(layer, x, prepared):
        from .. import kernels as k
        x = x.reshape(len(x), -1)
        out = np.empty((len(x), layer.n_out), np.uint8)
        if layer.in_bits == 8:
            k.dense_bytes(np.ascontiguousarray(x), *prepared, out)
        else:
            k.dense_bits(pack_bits(x), *prepared, out)
        return out

    @staticmethod
    def qonnx(s, g, x: str, flat: bool) -> tuple:
        """MatMul of the ±1 weights, then MultiThreshold."""
        x = g.node("MatMul", [flattened(g, x, flat), g.const("w", pm1(s.matrix).T, bipolar=True)], "dot")
        t = s.thresholds - 255 * (1 - s.matrix).sum(1) if s.in_bits == 8 else 2 * s.thresholds - s.fan_in
        return g.threshold(x, t, "NC"), True


KIND = DenseKind()
