"""Binary convolutions, stride 1: a dense layer's rule at every output position of a window."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import qonnx_graph as qg
from ..bits import packed_t, sums
from ..errors import ExportError
from .base import (
    Layer,
    NetworkError,
    as_bits,
    as_ints,
    as_shape,
    check_in_bits,
    check_thresholds,
    entry_in_bits,
    entry_int,
    entry_shape,
    pm1,
    shape_str,
    weight_hash,
    weight_summary,
)
from .pool import PoolLayer

__all__ = ["ConvLayer", "KIND"]


@dataclass(frozen=True, eq=False)
class ConvLayer(Layer):
    """A binary convolution, stride 1: output channel o fires at (y, x) when the sum over its
    window of ``xnor(x[y + ky, x + kx, c], weights[o, ky, kx, c])`` reaches thresholds[o].

    Attributes
    ----------
    weights : uint8 array (out channels, kernel, kernel, in channels) of 0/1, read-only
    thresholds : int64 array (out channels,) in [0, fan_in * (2**in_bits - 1) + 1]
    in_shape : (channels, height, width) of the input feature map
    padding : positions of ``pad_value`` added on each side
    pad_value : the padded input value: a bit (0: -1, 1: +1) for 1-bit inputs, a pixel value
        0..255 for 8-bit ones
    """
    weights: np.ndarray
    thresholds: np.ndarray
    in_shape: tuple
    padding: int = 0
    pad_value: int = 1
    name: str = field(default="layer", compare=False)
    in_bits: int = 1
    kind = "conv"

    def __post_init__(self):
        check_in_bits(self.name, self.in_bits)
        w = as_bits(self.weights, self.name, 4, "(out channels, kernel, kernel, in channels)")
        if w.shape[1] != w.shape[2]:
            raise NetworkError(f"{self.name}: kernels must be square, got {w.shape[1]}x{w.shape[2]}")
        shape = as_shape(self.name, self.in_shape)
        if shape[0] != w.shape[3]:
            raise NetworkError(f"{self.name}: weights have {w.shape[3]} input channels, the input "
                               f"{shape_str(shape)} has {shape[0]}")
        pad = self.padding
        if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 0 or pad >= w.shape[1]:
            raise NetworkError(f"{self.name}: padding must be an integer in [0, {w.shape[1] - 1}] for a "
                               f"{w.shape[1]}x{w.shape[1]} kernel, not {pad!r}")
        top = 2**self.in_bits - 1
        if not isinstance(self.pad_value, (int, np.integer)) or isinstance(self.pad_value, bool) \
                or not 0 <= self.pad_value <= top:
            raise NetworkError(f"{self.name}: pad_value must be an integer in [0, {top}] for {self.in_bits}-bit "
                               f"inputs, not {self.pad_value!r}")
        k = w.shape[1]
        if shape[1] + 2 * pad < k or shape[2] + 2 * pad < k:
            raise NetworkError(f"{self.name}: a {k}x{k} kernel with padding {pad} does not fit the input "
                               f"{shape_str(shape)}")
        t = as_ints(self.thresholds, w.shape[0], self.name, "thresholds", "channel")
        n = k * k * shape[0]
        check_thresholds(self.name, t, n * top, n, "channel")
        for attr, v in (("weights", w), ("thresholds", t), ("in_shape", shape), ("padding", int(pad)),
                        ("pad_value", int(self.pad_value))):
            object.__setattr__(self, attr, v)

    @property
    def kernel(self) -> int:
        return self.weights.shape[1]

    @property
    def channels(self) -> int:
        return self.weights.shape[0]

    @property
    def n_out(self) -> int:
        return self.channels

    @property
    def fan_in(self) -> int:
        return self.kernel * self.kernel * self.in_shape[0]

    n_in = fan_in

    @property
    def matrix(self) -> np.ndarray:
        return self.weights.reshape(self.channels, self.fan_in)

    @property
    def max_sum(self) -> int:
        return self.fan_in * (2**self.in_bits - 1)

    @property
    def out_shape(self) -> tuple:
        c, h, w = self.in_shape
        k, p = self.kernel, self.padding
        return (self.channels, h + 2 * p - k + 1, w + 2 * p - k + 1)

    def __eq__(self, other):
        return (isinstance(other, ConvLayer) and self.in_bits == other.in_bits and self.in_shape == other.in_shape
                and self.padding == other.padding and self.pad_value == other.pad_value
                and np.array_equal(self.weights, other.weights) and np.array_equal(self.thresholds, other.thresholds))

    def __repr__(self):
        return (f"ConvLayer({self.name}, {shape_str(self.in_shape)} -> {shape_str(self.out_shape)}, "
                f"{self.kernel}x{self.kernel}, padding {self.padding} of {self.pad_value})")


class ConvKind:
    """The built-in kind ``conv``: its manifest entry and its golden models."""
    name = "conv"
    layer = ConvLayer

    @staticmethod
    def values(l):
        return l.thresholds

    @staticmethod
    def token(l) -> str:
        return f"{l.channels}c{l.kernel}" + (f"p{l.padding}" if l.padding else "")

    @staticmethod
    def hashed(l) -> bytes:
        return weight_hash(f"ConvLayer {shape_str(l.weights.shape)} {shape_str(l.in_shape)} p{l.padding} {l.pad_value} "
                           f"{l.in_bits}", l, l.thresholds)

    @staticmethod
    def summary_fields(l) -> dict:
        return weight_summary(l, l.thresholds, l.out_shape[1] * l.out_shape[2], head=False)

    @staticmethod
    def qonnx_rule(r, n) -> bool:
        """QONNX import (bnncore.qonnx_import.Reader): a Conv, its affine ops and activation; a
        MaxPool among the ops before the activation makes a pool after it, AND for the channels
        whose ops after the pool have a negative scale (the max of values that those ops map
        decreasingly onto the sign is the min of the bits), OR elsewhere."""
        if n.op_type != "Conv":
            return False
        lin = r.linear(n)
        if lin.last:
            r.refuse_head(lin)
        padding, pad_value = lin.conv["padding"], lin.conv["pad_value"]
        if padding and lin.in_bits == 8 and not lin.pad:          # the pads attribute: the model's 0
            pad_value = qg.pixel_of(0.0, r.in_map, n)
        rows, t, rep = r.thresholds(lin, "conv")
        r.add(ConvLayer(rows, t, r.shape, padding, pad_value, name=lin.name, in_bits=lin.in_bits))
        pool = [m for m in lin.post if m.op_type == "MaxPool"]
        if pool:
            rank = len(r.graph.shape(n.output[0])[1:]) + 1
            after, _ = qg.affine_ops(r.graph, lin.post[lin.post.index(pool[0]) + 1:], rows.shape[0], rank)
            size = qg.check_maxpool(pool[0], True)
            r.add(PoolLayer(r.shape, (after < 0).astype(np.uint8), size, name=f"layer {len(r.layers)}"))
            rep.and_channels = int((after < 0).sum())
        r.done(lin, rep)
        return True

    @staticmethod
    def window(l, before) -> dict:
        """Its hardware window (hw/plan.py's ``Window`` fields): the kernel over its input map."""
        c, h, w = l.in_shape
        return {"channels": c, "height": h, "width": w, "kh": l.kernel, "kw": l.kernel, "padding": l.padding,
                "pad_value": l.pad_value, "value_bits": l.in_bits}

    @staticmethod
    def entry(l):
        return {"in_shape": list(l.in_shape), "out_shape": list(l.out_shape), "channels": l.channels,
                "kernel": l.kernel, "padding": l.padding, "pad_value": l.pad_value, "in_bits": l.in_bits,
                "n_in": l.fan_in, "n_out": l.channels}

    @staticmethod
    def check(path, f, e):
        c = entry_shape(path, f + ".in_shape", e.get("in_shape"))[0]
        ch, k = entry_int(path, f + ".channels", e.get("channels")), entry_int(path, f + ".kernel", e.get("kernel"))
        entry_int(path, f + ".padding", e.get("padding"), 0)
        entry_int(path, f + ".pad_value", e.get("pad_value"), 0)
        for key, want in (("n_in", k * k * c), ("n_out", ch)):
            if e.get(key) != want:
                raise ExportError(f"{path}: field '{f}.{key}' must be {want} (kernel {k}x{k} over {c} channels, "
                                  f"{ch} output channels), found {e.get(key)!r}")
        return k * k * c, ch, entry_in_bits(path, f + ".in_bits", e.get("in_bits"))

    @staticmethod
    def build(e, w, t):
        k, c = e["kernel"], e["in_shape"][0]
        return ConvLayer(w.reshape(e["channels"], k, k, c), t, tuple(e["in_shape"]), e["padding"], e["pad_value"],
                         name=e["name"], in_bits=e["in_bits"])

    @staticmethod
    def padded(layer, x: np.ndarray) -> np.ndarray:
        """The input map (N, H + 2p, W + 2p, C), padded with the layer's pad value."""
        c, h, w = layer.in_shape
        x = x.reshape(len(x), h, w, c)
        p = layer.padding
        return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=layer.pad_value) if p else x

    @staticmethod
    def numpy(layer, x, w_t):
        x, k = ConvKind.padded(layer, x), layer.kernel
        # (N, OH, OW, C, ky, kx) -> rows of (ky, kx, channel), the weights' order
        win = sliding_window_view(x, (k, k), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
        n, oh, ow = win.shape[:3]
        rows = np.ascontiguousarray(win).reshape(n * oh * ow, layer.fan_in)
        bits = sums(rows, w_t, layer.fan_in, layer.in_bits) >= layer.thresholds
        return bits.astype(np.uint8).reshape(n, oh, ow, layer.channels)

    @staticmethod
    def numpy_prepare(layer):
        return packed_t(layer)

    @staticmethod
    def numba_prepare(layer):
        if layer.in_bits == 8:
            w = layer.weights.transpose(1, 2, 3, 0)                          # (ky, kx, c, out)
            return -np.ascontiguousarray(w, dtype=np.int32), layer.thresholds.astype(np.int32)
        return packed_t(layer), (layer.fan_in - layer.thresholds).astype(np.int64)

    @staticmethod
    def numba(layer, x, prepared):
        from .. import kernels as k
        c, h, w = layer.out_shape
        out = np.empty((len(x), h, w, c), np.uint8)
        if layer.in_bits == 8:
            k.conv_bytes(np.ascontiguousarray(ConvKind.padded(layer, x)), *prepared, out)
            return out
        ci, hi, wi = layer.in_shape
        p = layer.padding
        packed = np.empty((len(x), hi + 2 * p, wi + 2 * p, -(-ci // 64)), np.uint64)
        k.pack_map(np.ascontiguousarray(x.reshape(len(x), hi, wi, ci)), p, layer.pad_value, packed)
        k.conv_bits(packed, layer.kernel, ci, *prepared, out)
        return out

    @staticmethod
    def qonnx(s, g, x: str, flat: bool) -> tuple:
        """The layer's nodes in a QONNX graph (bnncore.interop): Pad, Conv, MultiThreshold."""
        pad = s.pad_value if s.in_bits == 8 else 2 * s.pad_value - 1
        if s.padding:
            p = s.padding
            x = g.node("Pad", [x, g.const("pads", np.array([0, 0, p, p, 0, 0, p, p], np.int64)),
                              g.const("pad_value", np.array(pad, np.float32))], "padded", mode="constant",
                       bipolar=s.in_bits == 1)
        w = pm1(s.weights).transpose(0, 3, 1, 2)               # (out, ky, kx, in) -> (out, in, ky, kx)
        x = g.node("Conv", [x, g.const("conv_w", w, bipolar=True)], "conv", kernel_shape=list(w.shape[2:]))
        t = s.thresholds - 255 * (1 - s.weights).reshape(len(s.thresholds), -1).sum(1) if s.in_bits == 8 \
            else 2 * s.thresholds - s.fan_in
        return g.threshold(x, t, "NCHW"), False


KIND = ConvKind()
