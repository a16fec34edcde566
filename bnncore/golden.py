"""Golden model: bit-exact integer inference of a FoldedNetwork in NumPy.

The reference every other stage (torch, RTL simulation, gate-level netlist) is checked
against. Bits are packed 64 to a uint64 word, little-endian: bit i of a vector is bit i % 64
of word i // 64; padding bits are 0 in both the inputs and the weights, so they never differ
and::

    popcount(xnor(x, w)) = n - popcount(x XOR w)     (summed over the words)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import FoldedNetwork

__all__ = ["pack_bits", "unpack_bits", "popcounts", "infer", "Inference"]


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
    transposed layout makes NumPy's inner loop a contiguous, vectorised one).
    """
    n_img, m = x.shape[0], w_t.shape[1]
    acc = np.zeros((n_img, m), np.int32)
    tmp = np.empty((n_img, m), np.uint64)
    cnt = np.empty((n_img, m), np.uint8)
    for k in range(x.shape[1]):
        np.bitwise_xor(x[:, k, None], w_t[k], out=tmp)
        np.bitwise_count(tmp, out=cnt)
        np.add(acc, cnt, out=acc)
    return n - acc


@dataclass(frozen=True)
class Inference:
    """Result of :func:`infer`.

    Attributes
    ----------
    classes : (N,) int64 predicted classes
    scores : (N, classes) int64 output scores, or None
    activations : list of (N, n_out) uint8 activation bits per hidden layer, or None
    """
    classes: np.ndarray
    scores: np.ndarray | None = None
    activations: list | None = None


def _packed_weights(net: FoldedNetwork):
    # Cached on the (frozen, read-only) network: packing is not part of inference.
    cache = net.__dict__.get("_golden_packed")
    if cache is None:
        cache = [np.ascontiguousarray(pack_bits(s.weights).T) for s in net.stages]
        object.__setattr__(net, "_golden_packed", cache)
    return cache


def infer(net: FoldedNetwork, input_bits: np.ndarray, *, return_layers: bool = False,
          batch_size: int = 64) -> Inference:
    """Run ``net`` on input bits (N, n_in) of 0/1 (``net.input.bits(images)`` for images).

    Returns the predicted classes; with ``return_layers``, also every hidden layer's
    activation bits and the output scores.
    """
    input_bits = np.asarray(input_bits)
    if input_bits.ndim != 2 or input_bits.shape[1] != net.topology[0]:
        raise ValueError(f"input bits must have shape (N, {net.topology[0]}), got {input_bits.shape}")
    weights = _packed_weights(net)
    classes, scores, acts = [], [], [[] for _ in net.layers]
    for start in range(0, len(input_bits), batch_size):
        x = pack_bits(input_bits[start:start + batch_size])
        for i, layer in enumerate(net.layers):
            bits = (popcounts(x, weights[i], layer.n_in) >= layer.thresholds).astype(np.uint8)
            if return_layers:
                acts[i].append(bits)
            x = pack_bits(bits)
        head = net.head
        s = 2 * popcounts(x, weights[-1], head.n_in).astype(np.int64) - head.n_in + head.bias
        classes.append(np.argmax(s, axis=1))        # first maximum: lowest index wins ties
        if return_layers:
            scores.append(s)
    classes = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    if not return_layers:
        return Inference(classes)
    return Inference(classes, np.concatenate(scores) if scores else None,
                     [np.concatenate(a) for a in acts])
