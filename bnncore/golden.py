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

from .bits import pack_bits, popcounts, unpack_bits
from .errors import UsageError
from .kinds import BUILTIN, kind_of
from .network import FoldedNetwork, OutputHead

__all__ = ["pack_bits", "unpack_bits", "popcounts", "infer", "Inference", "BACKENDS", "backend_names",
           "default_backend", "default_threads"]


_none = lambda layer: None


def _numba_backend() -> dict:
    """The compiled backend's table (its kernels import Numba, which takes a moment, on first use)."""
    return {k.layer: (k.numba_prepare, k.numba) for k in BUILTIN.values()}


def _numpy_backend() -> dict:
    return {k.layer: (k.numpy_prepare, k.numpy) for k in BUILTIN.values()}


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
