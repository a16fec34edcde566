"""Golden model: bit-exact integer inference of a FoldedNetwork in NumPy.

The reference every other stage (torch, RTL simulation, gate-level netlist) is checked
against. Bits are packed 64 to a uint64 word, little-endian: bit i of a vector is bit i % 64
of word i // 64; padding bits are 0 in both the inputs and the weights, so they never differ
and::

    popcount(xnor(x, w)) = n - popcount(x XOR w)     (summed over the words)

A convolution is the same XOR-popcount on the im2col rows of its window: for each output
position, the window's bits in (ky, kx, channel) order, the order of the weights. An 8-bit
input is eight bit planes: ``sum(x, w) = sum_b 2**b * popcount(xnor(plane_b(x), w))``.
Integers only, no float anywhere.

Two backends compute the same integers. ``numpy`` is the readable one above: each layer
three NumPy passes per word. ``numba`` (the default when Numba is installed) compiles each
layer into one pass (:mod:`bnncore.kernels`); the tests check that both agree bit for bit.
A backend is a table with one ``(prepare, run)`` pair per layer kind: ``prepare`` lays out
the layer's weights once per network, ``run`` maps a batch of input values to output bits
(to scores for the head). Batches of images run on a thread pool: both backends release
the GIL, so ``threads`` cores work at once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import UsageError
from .kinds import kind_of
from .network import ConvLayer, DenseLayer, FoldedNetwork, OutputHead, PoolLayer

__all__ = ["pack_bits", "unpack_bits", "popcounts", "infer", "Inference", "BACKENDS", "backend_names",
           "default_backend", "default_threads"]


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(..., n) array of 0/1 -> (..., ceil(n / 64)) uint64, bit i in word i // 64 at i % 64."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.shape[-1]
    pad = (-n) % 64
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), np.uint8)], axis=-1)
    packed = np.packbits(bits, axis=-1, bitorder="little")          # (..., words * 8) uint8
    return np.ascontiguousarray(packed).view("<u8")


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (..., words) uint64 -> (..., n) uint8 of 0/1."""
    words = np.ascontiguousarray(words, dtype="<u8")
    return np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")[..., :n]


def popcounts(x: np.ndarray, w_t: np.ndarray, n: int) -> np.ndarray:
    """popcount(xnor(x_i, w_j)) for packed inputs x (N, words) and packed, transposed
    weights w_t (words, M): an (N, M) int32 array.

    One word at a time: XOR, popcount, accumulate, with contiguous rows of w_t (the
    transposed layout makes NumPy's inner loop a contiguous, vectorised one). The counts
    accumulate in uint16 when they fit: less memory traffic than int32.
    """
    n_img, m = x.shape[0], w_t.shape[1]
    acc = np.zeros((n_img, m), np.uint16 if n < 2**16 else np.int32)
    tmp = np.empty((n_img, m), np.uint64)
    cnt = np.empty((n_img, m), np.uint8)
    for k in range(x.shape[1]):
        np.bitwise_xor(x[:, k, None], w_t[k], out=tmp)
        np.bitwise_count(tmp, out=cnt)
        np.add(acc, cnt, out=acc)
    return n - acc.astype(np.int32)


def _sums(rows: np.ndarray, w_t: np.ndarray, n: int, in_bits: int) -> np.ndarray:
    """sum(x, w) of each row of input values (R, n) against packed weights: (R, M) int64."""
    if in_bits == 1:
        return popcounts(pack_bits(rows), w_t, n).astype(np.int64)
    total = np.zeros((rows.shape[0], w_t.shape[1]), np.int64)
    for b in range(in_bits):
        total += popcounts(pack_bits((rows >> b) & 1), w_t, n).astype(np.int64) << b
    return total


def _packed_t(layer) -> np.ndarray:
    """The layer's weight rows packed, transposed: (words, out)."""
    return np.ascontiguousarray(pack_bits(layer.matrix).T)


def _dense(layer: DenseLayer, x: np.ndarray, w_t) -> np.ndarray:
    x = x.reshape(len(x), -1)
    return (_sums(x, w_t, layer.n_in, layer.in_bits) >= layer.thresholds).astype(np.uint8)


def _padded(layer: ConvLayer, x: np.ndarray) -> np.ndarray:
    """The input map (N, H + 2p, W + 2p, C), padded with the layer's pad value."""
    c, h, w = layer.in_shape
    x = x.reshape(len(x), h, w, c)
    p = layer.padding
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=layer.pad_value) if p else x


def _conv(layer: ConvLayer, x: np.ndarray, w_t) -> np.ndarray:
    x, k = _padded(layer, x), layer.kernel
    # (N, OH, OW, C, ky, kx) -> rows of (ky, kx, channel), the weights' order
    win = sliding_window_view(x, (k, k), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    n, oh, ow = win.shape[:3]
    rows = np.ascontiguousarray(win).reshape(n * oh * ow, layer.fan_in)
    bits = _sums(rows, w_t, layer.fan_in, layer.in_bits) >= layer.thresholds
    return bits.astype(np.uint8).reshape(n, oh, ow, layer.channels)


def _pool(layer: PoolLayer, x: np.ndarray, _) -> np.ndarray:
    c, h, w = layer.in_shape
    s = layer.size
    oh, ow = h // s, w // s
    win = x.reshape(len(x), h, w, c)[:, :oh * s, :ow * s].reshape(len(x), oh, s, ow, s, c)
    any_ = win.max(axis=(2, 4))
    if not layer.modes.any():
        return any_
    return np.where(layer.modes.astype(bool), win.min(axis=(2, 4)), any_)


def _head(head: OutputHead, x: np.ndarray, w_t) -> np.ndarray:
    x = x.reshape(len(x), -1)
    return 2 * popcounts(pack_bits(x), w_t, head.n_in).astype(np.int64) - head.n_in + head.bias


_none = lambda layer: None


def _numba_backend() -> dict:
    """The compiled backend's table (imports Numba, which takes a moment, on first use)."""
    from . import kernels as k

    def dense_prepare(layer):
        if layer.in_bits == 8:
            return -np.ascontiguousarray(layer.matrix.T, dtype=np.int32), layer.thresholds.astype(np.int32)
        return _packed_t(layer), (layer.n_in - layer.thresholds).astype(np.int64)

    def dense(layer, x, prepared):
        x = x.reshape(len(x), -1)
        out = np.empty((len(x), layer.n_out), np.uint8)
        if layer.in_bits == 8:
            k.dense_bytes(np.ascontiguousarray(x), *prepared, out)
        else:
            k.dense_bits(pack_bits(x), *prepared, out)
        return out

    def conv_prepare(layer):
        if layer.in_bits == 8:
            w = layer.weights.transpose(1, 2, 3, 0)                          # (ky, kx, c, out)
            return -np.ascontiguousarray(w, dtype=np.int32), layer.thresholds.astype(np.int32)
        return _packed_t(layer), (layer.fan_in - layer.thresholds).astype(np.int64)

    def conv(layer, x, prepared):
        c, h, w = layer.out_shape
        out = np.empty((len(x), h, w, c), np.uint8)
        if layer.in_bits == 8:
            k.conv_bytes(np.ascontiguousarray(_padded(layer, x)), *prepared, out)
            return out
        ci, hi, wi = layer.in_shape
        p = layer.padding
        packed = np.empty((len(x), hi + 2 * p, wi + 2 * p, -(-ci // 64)), np.uint64)
        k.pack_map(np.ascontiguousarray(x.reshape(len(x), hi, wi, ci)), p, layer.pad_value, packed)
        k.conv_bits(packed, layer.kernel, ci, *prepared, out)
        return out

    def pool(layer, x, _):
        c, h, w = layer.out_shape
        out = np.empty((len(x), h, w, c), np.uint8)
        ci, hi, wi = layer.in_shape
        k.pool(np.ascontiguousarray(x.reshape(len(x), hi, wi, ci)), layer.size, layer.modes.astype(np.uint8), out)
        return out

    def head(head, x, w_t):
        x = x.reshape(len(x), -1)
        counts = np.empty((len(x), head.n_out), np.int64)
        k.xor_counts(pack_bits(x), w_t, counts)
        return head.n_in - 2 * counts + head.bias          # 2 popcount(xnor) - n

    return {DenseLayer: (dense_prepare, dense), ConvLayer: (conv_prepare, conv),
            PoolLayer: (_none, pool), OutputHead: (_packed_t, head)}


def _numpy_backend() -> dict:
    return {DenseLayer: (_packed_t, _dense), ConvLayer: (_packed_t, _conv),
            PoolLayer: (_none, _pool), OutputHead: (_packed_t, _head)}


#: Backend name -> a function that builds its table: layer kind -> (prepare, run).
BACKENDS = {"numba": _numba_backend, "numpy": _numpy_backend}
_tables: dict = {}


def _table(name: str) -> dict:
    if name not in BACKENDS:
        raise UsageError(f"unknown golden-model backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if name not in _tables:
        _tables[name] = BACKENDS[name]()
    return _tables[name]


def backend_names() -> list:
    """The backends that run here (``numba`` needs Numba installed)."""
    return [n for n in BACKENDS if n != "numba" or _has_numba()]


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def default_backend() -> str:
    """``numba`` where it is installed, else ``numpy``; the environment variable
    ``BNN_GOLDEN_BACKEND`` overrides it."""
    return os.environ.get("BNN_GOLDEN_BACKEND") or ("numba" if _has_numba() else "numpy")


@dataclass(frozen=True)
class Inference:
    """Result of :func:`infer`.

    Attributes
    ----------
    classes : (N,) int64 predicted classes
    scores : (N, classes) int64 output scores, or None
    activations : list of activation bits per hidden layer, or None: (N, n_out) for a dense
        layer, (N, height, width, channels) for a convolution or pool
    """
    classes: np.ndarray
    scores: np.ndarray | None = None
    activations: list | None = None


def _registered(layer, x, _):
    """A layer of a registered kind (bnncore.kinds) on a batch of (N, height, width, channels)
    maps (a list of them for a kind that joins several)."""
    c, h, w = layer.in_shape
    maps = x if isinstance(x, list) else [x]
    out = kind_of(layer).golden(layer, *(np.ascontiguousarray(m.reshape(len(m), h, w, c)) for m in maps))
    x = maps[0]
    c, h, w = layer.out_shape
    if out.shape != (len(x), h, w, c) or out.dtype != np.uint8:
        raise UsageError(f"{layer.name}: the golden model of kind {layer.kind!r} returned {out.dtype} {out.shape}, "
                         f"not uint8 {(len(x), h, w, c)}")
    return out


def _step(table: dict, layer) -> tuple:
    """(prepare, run) of ``layer``: the backend's, or a registered kind's golden model."""
    return table.get(type(layer)) or (_none, _registered)


def _prepared(net: FoldedNetwork, backend: str, table: dict) -> list:
    # Cached on the (frozen, read-only) network: laying out weights is not part of inference.
    cache = net.__dict__.setdefault("_golden_prepared", {})
    if backend not in cache:
        cache[backend] = [_step(table, s)[0](s) for s in net.stages]
    return cache[backend]


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _run_batch(net, table, prepared, x, return_layers):
    acts = []
    if net.is_chain:
        for layer, p in zip(net.layers, prepared):
            x = _step(table, layer)[1](layer, x, p)
            if return_layers:
                acts.append(x)
    else:                         # a graph: each stage reads the outputs its inputs name
        inp = x
        for layer, p, srcs in zip(net.layers, prepared, net.graph):
            xs = [inp if j < 0 else acts[j] for j in srcs]
            acts.append(_step(table, layer)[1](layer, xs[0] if len(xs) == 1 else xs, p))
        x = acts[net.graph[-1][0]] if net.layers else inp
    s = table[OutputHead][1](net.head, x, prepared[-1])
    return np.argmax(s, axis=1), s, acts             # first maximum: lowest index wins ties


def infer(net: FoldedNetwork, inputs: np.ndarray, *, return_layers: bool = False, return_scores: bool = False,
          batch_size: int = 64, threads: int | None = None, backend: str | None = None) -> Inference:
    """Run ``net`` on inputs (N, n) of 0/1 bits, or of pixels for 'uint8' input
    (``net.input.bits(images)`` for uint8 images), in (y, x, channel) order.

    Returns the predicted classes; with ``return_layers``, also every hidden layer's
    activation bits and the output scores; with ``return_scores``, the scores without the
    activations. ``threads``: batches run at once (default: the
    cores this process may use). ``backend``: ``numba`` or ``numpy`` (default:
    :func:`default_backend`); both give the same integers.
    """
    inputs = np.asarray(inputs)
    n = net.n_inputs
    if inputs.ndim != 2 or inputs.shape[1] != n:
        raise UsageError(f"input must have shape (N, {n}), got {inputs.shape}")
    top = 2**net.input.value_bits - 1
    if inputs.dtype == bool:
        inputs = inputs.astype(np.uint8)
    if inputs.size and (not np.issubdtype(inputs.dtype, np.integer) or inputs.min() < 0 or inputs.max() > top):
        raise UsageError(f"input values must be integers in [0, {top}] ({net.input.scheme} input)")
    inputs = inputs.astype(np.uint8, copy=False)
    backend = backend or default_backend()
    table = _table(backend)
    prepared = _prepared(net, backend, table)
    starts = range(0, len(inputs), batch_size)
    work = lambda start: _run_batch(net, table, prepared, inputs[start:start + batch_size], return_layers)
    threads = default_threads() if threads is None else max(1, int(threads))
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(threads, len(starts))) as pool:
            results = list(pool.map(work, starts))
    else:
        results = [work(s) for s in starts]
    scores = return_layers or return_scores
    if not results:
        return Inference(np.zeros(0, np.int64), np.zeros((0, net.head.n_out), np.int64) if scores else None,
                         [np.zeros((0,) + _act_shape(l), np.uint8) for l in net.layers] if return_layers else None)
    return Inference(np.concatenate([r[0] for r in results]),
                     np.concatenate([r[1] for r in results]) if scores else None,
                     [np.concatenate([r[2][i] for r in results]) for i in range(len(net.layers))]
                     if return_layers else None)


def _act_shape(layer) -> tuple:
    s = layer.out_shape
    return s if len(s) == 1 else (s[1], s[2], s[0])
