"""Max-pools of bits: per channel the OR of a window, or the AND."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ExportError
from .. import qonnx_graph as qg
from .base import Layer, NetworkError, as_shape, entry_int, entry_shape, positive, shape_str

__all__ = ["PoolLayer", "KIND"]


@dataclass(frozen=True, eq=False)
class PoolLayer(Layer):
    """size x size max-pool of bits, stride size: per channel OR, or AND where modes[c] = 1."""
    in_shape: tuple
    modes: np.ndarray
    size: int = 2
    name: str = field(default="layer", compare=False)
    kind = "pool"
    has_weights = False

    def __post_init__(self):
        shape = as_shape(self.name, self.in_shape)
        size = positive(self.name, "size", self.size, 2)
        if shape[1] < size or shape[2] < size:
            raise NetworkError(f"{self.name}: a {size}x{size} pool does not fit the input {shape_str(shape)}")
        m = np.asarray(self.modes)
        if m.dtype == bool:
            m = m.astype(np.uint8)
        if m.shape != (shape[0],) or not np.issubdtype(m.dtype, np.integer) or ((m != 0) & (m != 1)).any():
            raise NetworkError(f"{self.name}: modes must be {shape[0]} values 0 (OR) or 1 (AND), one per channel, "
                               f"got {m.dtype} array of shape {m.shape}")
        m = np.ascontiguousarray(m, np.uint8)
        m.setflags(write=False)
        for attr, v in (("in_shape", shape), ("size", size), ("modes", m)):
            object.__setattr__(self, attr, v)

    @property
    def out_shape(self) -> tuple:
        c, h, w = self.in_shape
        return (c, h // self.size, w // self.size)

    def __eq__(self, other):
        return (isinstance(other, PoolLayer) and self.in_shape == other.in_shape and self.size == other.size
                and np.array_equal(self.modes, other.modes))

    def __repr__(self):
        return (f"PoolLayer({self.name}, {shape_str(self.in_shape)} -> {shape_str(self.out_shape)}, "
                f"{int(self.modes.sum())} AND channels)")


class PoolKind:
    """The built-in kind ``pool``: its manifest entry and its golden models."""
    name = "pool"
    layer = PoolLayer

    @staticmethod
    def entry(l):
        return {"in_shape": list(l.in_shape), "out_shape": list(l.out_shape), "size": l.size,
                "modes": "".join("A" if m else "O" for m in l.modes)}

    @staticmethod
    def check(path, f, e):
        c = entry_shape(path, f + ".in_shape", e.get("in_shape"))[0]
        entry_int(path, f + ".size", e.get("size"), 2)
        modes = e.get("modes")
        if not isinstance(modes, str) or len(modes) != c or set(modes) - {"O", "A"}:
            raise ExportError(f"{path}: field '{f}.modes' must be a string of {c} letters 'O' (OR) or 'A' (AND), "
                              f"one per channel, found {modes!r}")
        return None

    @staticmethod
    def build(e, w, t):
        return PoolLayer(tuple(e["in_shape"]), np.array([m == "A" for m in e["modes"]], np.uint8), e["size"],
                         name=e["name"])

    @staticmethod
    def numpy(layer, x, _):
        c, h, w = layer.in_shape
        s = layer.size
        oh, ow = h // s, w // s
        win = x.reshape(len(x), h, w, c)[:, :oh * s, :ow * s].reshape(len(x), oh, s, ow, s, c)
        any_ = win.max(axis=(2, 4))
        if not layer.modes.any():
            return any_
        return np.where(layer.modes.astype(bool), win.min(axis=(2, 4)), any_)

    @staticmethod
    def numpy_prepare(layer):
        return None

    numba_prepare = numpy_prepare

    @staticmethod
    def numba(layer, x, _):
        from .. import kernels as k
        c, h, w = layer.out_shape
        out = np.empty((len(x), h, w, c), np.uint8)
        ci, hi, wi = layer.in_shape
        k.pool(np.ascontiguousarray(x.reshape(len(x), hi, wi, ci)), layer.size, layer.modes.astype(np.uint8), out)
        return out

    @staticmethod
    def qonnx(s, g, x: str, flat: bool) -> tuple:
        """MaxPool, between Muls by -1 for the AND channels (a max of -x is a min)."""
        sign = np.where(np.asarray(s.modes) == 1, -1, 1).astype(np.float32).reshape(1, -1, 1, 1)
        if (sign < 0).any():
            x = g.node("Mul", [x, g.const("pool_sign", sign)], "signed", bipolar=True)
        x = g.node("MaxPool", [x], "pooled", kernel_shape=[s.size, s.size], strides=[s.size, s.size], bipolar=True)
        if (sign < 0).any():
            x = g.node("Mul", [x, g.const("pool_sign", sign)], "unsigned", bipolar=True)
        return x, False

    @staticmethod
    def token(l) -> str:
        return f"mp{l.size}"

    @staticmethod
    def hashed(l) -> bytes:
        return f";PoolLayer {l.size} {shape_str(l.in_shape)};".encode() + np.packbits(l.modes).tobytes()

    @staticmethod
    def qonnx_rule(r, n) -> bool:
        """QONNX import (bnncore.qonnx_import.Reader): a MaxPool of a feature map is an OR pool;
        ``s * MaxPool(s * x)`` with ``s`` = ±1 per channel a pool of AND (``s = -1``) and OR
        channels, as the export writes it. (A MaxPool between a convolution and its activation
        is the convolution's: kinds/conv.py.)"""
        if n.op_type == "MaxPool":
            size = qg.check_maxpool(n, r.spatial and bool(r.layers))
            r.add(PoolLayer(r.shape, np.zeros(r.shape[0], np.uint8), size), n.output[0])
            r.pos += 1
            return True
        if r.ops(3) != ["Mul", "MaxPool", "Mul"]:
            return False
        muls = (n, r.nodes[r.pos + 2])
        signs = [qg.per_channel(r.graph.const(m.input[1] if not r.graph.is_const(m.input[0]) else m.input[0], m),
                                r.shape[0], 4, m) for m in muls]
        if not (r.spatial and r.layers) or not np.array_equal(signs[0], signs[1]) or not np.isin(signs[0], (-1, 1)).all():
            raise qg.QonnxImportError(f"{qg.node_name(n)}: a Mul around a MaxPool must multiply a feature map by the "
                                      "same ±1 per channel before and after it (a pool of AND and OR channels)")
        size = qg.check_maxpool(r.nodes[r.pos + 1], True)
        r.add(PoolLayer(r.shape, (signs[0] < 0).astype(np.uint8), size), muls[1].output[0])
        r.pos += 3
        return True

    @staticmethod
    def summary_fields(layer) -> dict:
        """``bnn summary``: how many channels AND (the others OR)."""
        return {"and_channels": int(layer.modes.sum())}


KIND = PoolKind()
