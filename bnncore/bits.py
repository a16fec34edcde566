"""Bits packed 64 to a uint64 word, little-endian (bit i of a vector is bit i % 64 of word
i // 64, padding bits 0 in inputs and weights alike), and the XOR-popcount sums on them that
every layer kind's golden model is made of:

    popcount(xnor(x, w)) = n - popcount(x XOR w)     (summed over the words)"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_bits", "unpack_bits", "popcounts", "sums", "packed_t"]


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


def sums(rows: np.ndarray, w_t: np.ndarray, n: int, in_bits: int) -> np.ndarray:
    """sum(x, w) of each row of input values (R, n) against packed weights: (R, M) int64."""
    if in_bits == 1:
        return popcounts(pack_bits(rows), w_t, n).astype(np.int64)
    total = np.zeros((rows.shape[0], w_t.shape[1]), np.int64)
    for b in range(in_bits):
        total += popcounts(pack_bits((rows >> b) & 1), w_t, n).astype(np.int64) << b
    return total


def packed_t(layer) -> np.ndarray:
    """The layer's weight rows packed, transposed: (words, out)."""
    return np.ascontiguousarray(pack_bits(layer.matrix).T)
