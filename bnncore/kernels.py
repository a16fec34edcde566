"""Compiled layer kernels of the golden model (its ``numba`` backend).

The same integer arithmetic as the NumPy layers in :mod:`bnncore.golden`, compiled with
Numba so that a layer is one pass over its inputs instead of three NumPy passes per word:
XOR, a hardware popcount (LLVM's ``ctpop``, vectorised over the output neurons) and an
int64 accumulator that never leaves the cache, then the threshold compare. Convolutions
read the padded feature map packed one pixel's channels to a word (or more) and gather
each window's words on the fly, so no im2col copy of the map is made.

Every kernel releases the GIL (``nogil``), so the golden model's thread pool runs batches
on all cores, and is compiled once per machine (``cache``). ``tests/test_golden.py`` checks
each one against the NumPy layers, bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["xor_counts", "dense_bits", "conv_bits", "pack_map", "pool", "dense_bytes", "conv_bytes"]

_jit = njit(nogil=True, cache=True, boundscheck=False)


@intrinsic
def _popcount(typingctx, word):
    """popcount of a uint64, as an int64 (LLVM's ctpop: POPCNT or a vectorised lookup)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.int64(types.uint64), codegen


@_jit
def _count(row, w_t, acc):
    """acc[j] = popcount(row XOR w[j]) summed over the words: row (words,) uint64, w_t
    (words, M) uint64 (transposed, so the inner loop runs over M contiguous words)."""
    acc[:] = 0
    for k in range(row.shape[0]):
        xv = row[k]
        for j in range(w_t.shape[1]):
            acc[j] += _popcount(xv ^ w_t[k, j])


@_jit
def xor_counts(x, w_t, out):
    """out[i, j] = popcount(x[i] XOR w[j]) summed over the words: x (N, words) uint64,
    w_t (words, M) uint64, out (N, M) int64."""
    for i in range(x.shape[0]):
        _count(x[i], w_t, out[i])


@_jit
def dense_bits(x, w_t, limit, out):
    """out[i, j] = 1 when the XOR count of x[i] and w[j] is <= limit[j] (limit = n - threshold:
    popcount(xnor) >= T  <=>  popcount(xor) <= n - T). out (N, M) uint8."""
    m = w_t.shape[1]
    acc = np.empty(m, np.int64)
    for i in range(x.shape[0]):
        _count(x[i], w_t, acc)
        for j in range(m):
            out[i, j] = acc[j] <= limit[j]


@_jit
def conv_bits(xp, kernel, channels, w_t, limit, out):
    """Binary convolution, stride 1. xp (N, H, W, words) uint64: the padded map, one pixel's
    channels per word(s) (channel c: bit c % 64 of word c // 64); w_t (fan-in words, O)
    uint64: the packed (ky, kx, channel) weight rows, transposed; out (N, OH, OW, O) uint8, 1
    where the window's XOR count is <= limit[o].

    Each window is first gathered into packed words in (ky, kx, channel) order, its pixels'
    words shifted into place (whole words when channels is a multiple of 64), then counted
    like a dense layer's input.
    """
    n, oh, ow, m = out.shape
    pixel_words = xp.shape[3]
    words = w_t.shape[0]
    win = np.empty(words, np.uint64)
    acc = np.empty(m, np.int64)
    for i in range(n):
        for y in range(oh):
            for x in range(ow):
                win[:] = 0
                for ky in range(kernel):
                    for kx in range(kernel):
                        base = (ky * kernel + kx) * channels
                        for c in range(pixel_words):
                            v = xp[i, y + ky, x + kx, c]
                            at = base + 64 * c
                            word, shift = at >> 6, at & 63
                            win[word] |= v << np.uint64(shift)
                            if shift and word + 1 < words:
                                win[word + 1] |= v >> np.uint64(64 - shift)
                _count(win, w_t, acc)
                for j in range(m):
                    out[i, y, x, j] = acc[j] <= limit[j]


@_jit
def pack_map(bits, pad, pad_bit, out):
    """Pack a map of bits (N, H, W, C) uint8 one pixel's channels to a word (or more), with
    ``pad`` pixels of ``pad_bit`` around it: out (N, H + 2 pad, W + 2 pad, words) uint64."""
    n, h, w, channels = bits.shape
    words = out.shape[3]
    for i in range(n):
        for y in range(out.shape[1]):
            for x in range(out.shape[2]):
                inside = pad <= y < pad + h and pad <= x < pad + w
                for k in range(words):
                    width = min(64, channels - 64 * k)
                    v = np.uint64(0)
                    if inside:
                        for b in range(width):
                            v |= np.uint64(bits[i, y - pad, x - pad, 64 * k + b]) << np.uint64(b)
                    elif pad_bit:
                        v = ~np.uint64(0) >> np.uint64(64 - width)
                    out[i, y, x, k] = v


@_jit
def pool(bits, size, modes, out):
    """Max-pool of bits: bits (N, H, W, C) uint8, out (N, OH, OW, C) uint8; a channel with
    modes[c] = 1 takes the window's minimum (AND) instead of its maximum (OR)."""
    n, oh, ow, channels = out.shape
    hi = np.empty(channels, np.uint8)
    lo = np.empty(channels, np.uint8)
    for i in range(n):
        for y in range(oh):
            for x in range(ow):
                hi[:] = 0
                lo[:] = 1
                for dy in range(size):
                    for dx in range(size):
                        for c in range(channels):
                            v = bits[i, y * size + dy, x * size + dx, c]
                            hi[c] |= v
                            lo[c] &= v
                for c in range(channels):
                    out[i, y, x, c] = lo[c] if modes[c] else hi[c]


@_jit
def dense_bytes(x, w_mask, thresholds, out):
    """8-bit inputs: sum_k (w ? x : 255 - x) >= thresholds[j], written as
    255 n - sum_k x + sum_k (w ? 2 x - 255 : 0). x (N, n) uint8, w_mask (n, M) int32 of
    -1 (weight 1) and 0 (weight 0): a mask, so the inner loop is an AND and an add on int32
    lanes (255 n stays far inside int32 for any first layer)."""
    n_img, n = x.shape
    m = w_mask.shape[1]
    acc = np.empty(m, np.int32)
    for i in range(n_img):
        base = 255 * n
        for k in range(n):
            base -= np.int64(x[i, k])
        acc[:] = base
        for k in range(n):
            v = np.int32(2 * np.int32(x[i, k]) - 255)
            for j in range(m):
                acc[j] += w_mask[k, j] & v
        for j in range(m):
            out[i, j] = acc[j] >= thresholds[j]


@_jit
def conv_bytes(xp, w_mask, thresholds, out):
    """8-bit convolution: xp (N, H, W, C) uint8 padded, w_mask (K, K, C, O) int32 of -1/0
    as in :func:`dense_bytes`, out (N, OH, OW, O) uint8."""
    n_img, oh, ow, m = out.shape
    k_size, c_in = w_mask.shape[0], w_mask.shape[2]
    acc = np.empty(m, np.int32)
    for i in range(n_img):
        for y in range(oh):
            for x in range(ow):
                base = 255 * k_size * k_size * c_in
                for ky in range(k_size):
                    for kx in range(k_size):
                        for c in range(c_in):
                            base -= np.int64(xp[i, y + ky, x + kx, c])
                acc[:] = base
                for ky in range(k_size):
                    for kx in range(k_size):
                        for c in range(c_in):
                            v = np.int32(2 * np.int32(xp[i, y + ky, x + kx, c]) - 255)
                            for j in range(m):
                                acc[j] += w_mask[ky, kx, c, j] & v
                for j in range(m):
                    out[i, y, x, j] = acc[j] >= thresholds[j]
