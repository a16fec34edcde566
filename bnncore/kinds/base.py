"""What the built-in layer kinds share: the error of a network that does not hold together, and
the checks of weights, thresholds, shapes and widths every layer's constructor runs."""

from __future__ import annotations

import math

import numpy as np

from ..errors import BnnError, ExportError

__all__ = ["pm1", "flattened", "NetworkError", "Layer", "shape_str", "as_bits", "as_ints", "as_shape", "check_thresholds", "check_in_bits",
           "positive", "entry_int", "entry_shape", "entry_in_bits", "DenseRules",
           "weight_hash", "weight_summary"]


class NetworkError(BnnError, ValueError):
    """A folded network is inconsistent: wrong shapes, non-bit weights, thresholds out of range."""


def shape_str(shape) -> str:
    return "x".join(str(s) for s in shape)


def as_bits(a, where: str, ndim: int, shape_hint: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim or 0 in a.shape:
        raise NetworkError(f"{where}: weights must be a non-empty {ndim}-D array {shape_hint}, got shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        raise NetworkError(f"{where}: weights must be integer 0/1 bits, got dtype {a.dtype}")
    bad = np.argwhere((a != 0) & (a != 1))
    if len(bad):
        at = bad[0]
        pos = f"neuron {at[0]}, input {at[1]}" if ndim == 2 else f"index {tuple(int(i) for i in at)}"
        raise NetworkError(f"{where}: weights must be 0 or 1, found {a[tuple(at)]} at {pos}")
    out = np.ascontiguousarray(a, dtype=np.uint8)
    out.setflags(write=False)
    return out


def as_ints(a, n: int, where: str, what: str, unit: str = "neuron") -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (n,):
        raise NetworkError(f"{where}: {what} must have shape ({n},), one per {unit}, got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise NetworkError(f"{where}: {what} must be integers, got dtype {a.dtype}")
    out = np.ascontiguousarray(a, dtype=np.int64)
    out.setflags(write=False)
    return out


def check_thresholds(where: str, t: np.ndarray, top: int, n: int, unit: str):
    bad = np.flatnonzero((t < 0) | (t > top + 1))
    if len(bad):
        raise NetworkError(f"{where}: thresholds must be in [0, {top + 1}] for {n} inputs, "
                           f"found {t[bad[0]]} at {unit} {bad[0]}")


def check_in_bits(where: str, in_bits):
    if in_bits not in (1, 8) or isinstance(in_bits, bool):
        raise NetworkError(f"{where}: in_bits must be 1 or 8, not {in_bits!r}")


def positive(where: str, what: str, v, minimum: int = 1):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise NetworkError(f"{where}: {what} must be an integer >= {minimum}, not {v!r}")
    return int(v)


def as_shape(where: str, shape) -> tuple:
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise NetworkError(f"{where}: in_shape must be (channels, height, width) of positive integers, got {shape!r}")
    return tuple(int(s) for s in shape)


class Layer:
    """What every layer has: ``kind``, ``name``, ``in_shape`` and ``out_shape``."""
    kind = "?"
    has_weights = True

    @property
    def n_out_values(self) -> int:
        return math.prod(self.out_shape)


def entry_int(path, field, v, minimum=1):
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ExportError(f"{path}: field '{field}' must be an integer >= {minimum}, found {v!r}")
    return v


def entry_shape(path, field, v):
    if not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                                                         for x in v):
        raise ExportError(f"{path}: field '{field}' must be [channels, height, width] of positive integers, found {v!r}")
    return tuple(v)


def entry_in_bits(path, field, v):
    if v not in (1, 8) or isinstance(v, bool):
        raise ExportError(f"{path}: field '{field}' must be 1 or 8, found {v!r}")
    return v


def weight_hash(tag: str, layer, values) -> bytes:
    """A weight layer's part of ``FoldedNetwork.digest``: its tag, weight bits and values."""
    return f";{tag};".encode() + np.packbits(layer.weights, axis=None).tobytes() + values.astype("<i8").tobytes()


def _bits_for(n_values: int) -> int:
    """Unsigned bits that hold n_values distinct values 0..n_values-1."""
    return max(1, int(n_values - 1).bit_length())


def weight_summary(layer, values, positions: int, head: bool) -> dict:
    """A weight layer's fields in ``bnn summary``: sizes, XNOR operations per image, value
    range and the widths the hardware needs."""
    fan_in, size = layer.fan_in, layer.matrix.size
    row = {"in_bits": layer.in_bits, "weight_bits": size, "weight_kib": size / 8 / 1024,
           # one XNOR-popcount operation per weight bit and output position; an 8-bit input
           # counts as 8 bit-planes
           "macs_per_image": size * positions * layer.in_bits,
           "popcount_bits": _bits_for(fan_in * (2**layer.in_bits - 1) + 1),
           "value_min": int(values.min()), "value_max": int(values.max())}
    if head:      # score = 2p - n + bias, signed
        lo, hi = -fan_in + int(values.min()), fan_in + int(values.max())
        width = row["score_bits"] = 1 + max(abs(lo), abs(hi)).bit_length()
    else:
        width = row["threshold_bits"] = _bits_for(layer.max_sum + 2)          # T in [0, max + 1]
    # folded: weight bits + one threshold (or bias) word per neuron; float32: 32-bit weights
    # + BatchNorm's 4 floats (or the bias) per neuron
    row["folded_bits"] = size + layer.n_out * width
    row["float32_bits"] = 32 * size + 32 * layer.n_out * (1 if head else 4)
    return row


class DenseRules:
    """What the two fully connected kinds share (kinds/dense.py, kinds/output.py): a token of
    their width, a digest tagged ``tag``, a summary row, and their hardware window. ``head``:
    the output head's biases and signed scores instead of thresholds."""
    tag: str = ""
    head: bool = False

    @classmethod
    def values(cls, l):
        return l.bias if cls.head else l.thresholds

    @staticmethod
    def token(l) -> str:
        return str(l.n_out)

    @classmethod
    def hashed(cls, l) -> bytes:
        # the tags of dense networks from before other layer kinds existed
        return weight_hash(f"{cls.tag} {l.n_out}x{l.n_in}" + ("" if l.in_bits == 1 else f" {l.in_bits}"), l,
                           cls.values(l))

    @classmethod
    def summary_fields(cls, l) -> dict:
        return weight_summary(l, cls.values(l), 1, head=cls.head)

    @staticmethod
    def window(l, before) -> dict | None:
        """The hardware window (hw/plan.py's ``Window`` fields) after ``before``, the out_shape of
        the weight layer before (None for the first): none after a vector, the whole map as one
        window after a feature map, read in its flatten order."""
        if before is None or len(before) != 3:
            return None
        c, h, w = before
        return {"channels": c, "height": h, "width": w, "kh": h, "kw": w, "dense": True}


# --- QONNX: what the kinds' ``qonnx`` methods share (bnncore.interop builds the graph) -------

def pm1(bits) -> np.ndarray:
    """0/1 bits as the ±1 floats of a QONNX model."""
    return np.asarray(bits, np.float32) * 2 - 1


def flattened(g, x: str, flat: bool) -> str:
    """``x`` as a vector: a (N, C, H, W) map transposed to our (y, x, channel) order first."""
    if flat:
        return x
    x = g.node("Transpose", [x], "nhwc", perm=[0, 2, 3, 1], bipolar=True)
    return g.node("Flatten", [x], "flat", axis=1, bipolar=True)
