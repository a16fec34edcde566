"""The output head: a score per class, 2 * popcount(xnor(x, w_c)) - n + bias_c."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import qonnx_graph as qg
from ..bits import pack_bits, packed_t, popcounts
from .base import DenseRules, Layer, NetworkError, as_bits, as_ints, entry_int, flattened, pm1
from .dense import DenseLayer

__all__ = ["OutputHead", "KIND"]


@dataclass(frozen=True, eq=False)
class OutputHead(Layer):
    """The output layer: score_c = 2 * popcount(xnor(x, weights[c])) - n_in + bias[c].

    The predicted class is the lowest index with the highest score.
    """
    weights: np.ndarray
    bias: np.ndarray
    name: str = field(default="output", compare=False)
    kind = "output"
    in_bits = 1

    def __post_init__(self):
        w = as_bits(self.weights, self.name, 2, "(classes, inputs)")
        b = as_ints(self.bias, w.shape[0], self.name, "bias", "class")
        limit = 2**31 - 1 - w.shape[1]
        bad = np.flatnonzero(np.abs(b) > limit)
        if len(bad):
            raise NetworkError(f"{self.name}: bias must be in [-{limit}, {limit}] so scores fit 32 bits, "
                               f"found {b[bad[0]]} at class {bad[0]}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias", b)

    n_in = DenseLayer.n_in
    n_out = DenseLayer.n_out
    fan_in = DenseLayer.fan_in
    matrix = DenseLayer.matrix
    in_shape = DenseLayer.in_shape
    out_shape = DenseLayer.out_shape

    def __eq__(self, other):
        return (isinstance(other, OutputHead) and np.array_equal(self.weights, other.weights)
                and np.array_equal(self.bias, other.bias))

    def __repr__(self):
        return f"OutputHead({self.n_in} -> {self.n_out} classes)"


class OutputKind(DenseRules):
    """The built-in kind ``output``: its manifest entry and its golden models (scores)."""
    name = "output"
    layer = OutputHead
    tag, head = "OutputHead", True

    @staticmethod
    def qonnx_rule(r, n) -> bool:
        """QONNX import (bnncore.qonnx_import.Reader): the last MatMul or Gemm, no activation
        after it; its scores ``A * dot + B_c`` fold when ``A > 0`` is one scale for every class
        and every ``B_c / A`` an integer."""
        if n.op_type not in ("MatMul", "Gemm") or not r.is_last():
            return False
        lin = r.linear(n)
        if lin.in_bits == 8 or any(m.op_type == "MaxPool" for m in lin.post):
            r.refuse_head(lin)
        r.head = OutputHead(lin.bits, qg.head_bias(r.graph, n, lin.post, lin.scale, lin.offset))
        r.log(f"output head: {lin.bits.shape[1]} -> {lin.bits.shape[0]} classes")
        r.pos = lin.end
        return True

    @staticmethod
    def entry(l):
        return {"n_in": l.n_in, "n_out": l.n_out}

    @staticmethod
    def check(path, f, e):
        return entry_int(path, f + ".n_in", e.get("n_in")), entry_int(path, f + ".n_out", e.get("n_out")), 1

    @staticmethod
    def build(e, w, t):
        return OutputHead(w, t, name=e["name"])

    @staticmethod
    def numpy(head, x, w_t):
        x = x.reshape(len(x), -1)
        return 2 * popcounts(pack_bits(x), w_t, head.n_in).astype(np.int64) - head.n_in + head.bias

    @staticmethod
    def numpy_prepare(layer):
        return packed_t(layer)

    numba_prepare = numpy_prepare

    @staticmethod
    def numba(head, x, w_t):
        from .. import kernels as k
        x = x.reshape(len(x), -1)
        counts = np.empty((len(x), head.n_out), np.int64)
        k.xor_counts(pack_bits(x), w_t, counts)
        return head.n_in - 2 * counts + head.bias          # 2 popcount(xnor) - n

    @staticmethod
    def qonnx(s, g, x: str, flat: bool) -> tuple:
        """MatMul of the ±1 weights, then Add of the biases: the scores."""
        x = g.node("MatMul", [flattened(g, x, flat), g.const("w", pm1(s.matrix).T, bipolar=True)], "dot")
        return g.node("Add", [x, g.const("bias", np.asarray(s.bias, np.float32).reshape(1, -1))], "scores"), True


KIND = OutputKind()
