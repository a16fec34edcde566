"""How the plan's numbers become words: the ROMs' layout (rows, column slices) and the
contents of weight, threshold and input words (pure Python, no Amaranth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .plan import LayerFold

__all__ = ["ROM_SLICE_BITS", "SHALLOW_SLICE_BITS", "DEEP_SLICE_BITS", "ROM_ROW_DEPTH", "slice_bits", "rom_slices",
           "WeightRom", "weight_rom", "weight_words", "threshold_words", "input_beat_bytes", "input_words"]

#: Bits per column slice of a ROM of 65 to 256 words, each slice read through its own copy
#: of the address register, so that an address bit drives a few block RAMs' pins, not a wide
#: ROM's all (docs/results.md, "Timing rules"). A multiple of every block-RAM port width of
#: iCE40 (16, 8, 4, 2) and ECP5 (36, 18, 9, 4, 2, 1), so slicing never adds a block RAM; a
#: 144-bit slice is 4 ECP5 block RAMs wide.
ROM_SLICE_BITS = 144
#: Bits per column slice of a ROM of at most 64 words, which Yosys builds from logic on ECP5 (a
#: LUT per bit and word select), not block RAM: a slice's LUT multiplexers spread along the PEs
#: behind one address register, so the slice is narrower. A multiple of iCE40's port widths, so
#: iCE40 block RAMs stay as many.
SHALLOW_SLICE_BITS = 48
#: (depth at most, bits per slice) of deeper ROMs: two ECP5 block RAMs of the widest port that
#: holds the depth, a multiple of iCE40's too (512 words: 2 x 36 on ECP5, 9 x 8 on iCE40;
#: 2,048 words: 2 x 9 and 9 x 2), so that one address register never drives block RAMs spread
#: over the device. Deeper ROMs belong to shallow engines, whose slices share one address, and
#: keep 144.
DEEP_SLICE_BITS = ((64, SHALLOW_SLICE_BITS), (256, ROM_SLICE_BITS), (512, 72), (1024, 36), (2048, 18))
#: Rows of a pipelined engine's weight ROM at most: one ECP5 block RAM deep in its deepest
#: configuration that wastes no bits (2048 x 9, which Yosys picks for such a ROM). A deeper
#: ROM's read data would pass a multiplexer of block RAMs before the engine's register, after a
#: block RAM's slow unregistered output; ``weight_rom`` puts such a ROM's words side by side.
#: Shallower rows (512 x 36) feed the word select four times as many wires.
ROM_ROW_DEPTH = 2048


def slice_bits(depth: int) -> int:
    """Bits per column slice of a ROM of ``depth`` words (``DEEP_SLICE_BITS``)."""
    return next((bits for most, bits in DEEP_SLICE_BITS if depth <= most), ROM_SLICE_BITS)


def rom_slices(width: int, depth: int) -> list:
    """Column slices ``(lo, width)`` of a ROM of ``depth`` words of ``width`` bits,
    ``slice_bits(depth)`` each (the last one narrower); slice ``s`` reads bits
    ``lo .. lo + width - 1`` of the word."""
    bits = slice_bits(depth)
    return [(lo, min(bits, width - lo)) for lo in range(0, width, bits)]


@dataclass(frozen=True)
class WeightRom:
    """The weight ROM of a layer as it is stored: ``depth`` rows of ``width`` bits, each row
    ``row_words`` consecutive weight words side by side (word ``i`` in row ``i // row_words``
    at bits ``(i % row_words) * word width``), read in ``slices`` column slices."""
    depth: int
    width: int
    row_words: int

    @property
    def slices(self) -> int:
        return len(rom_slices(self.width, self.depth))


def weight_rom(fold, pipelined: bool = True) -> WeightRom:
    """The weight ROM of ``fold``: one word per row, or for a pipelined engine whose ROM is
    deeper than ``ROM_ROW_DEPTH``, as many words per row as bring it to that depth or less.
    The engine then registers the row as it leaves the block RAMs (the block RAM's own output
    register on ECP5) and selects the word after that register, a cycle later (hw/engine.py):
    the same block RAMs, no multiplexer behind their unregistered outputs. Weights placed in a
    memory kind of their own (``fold.weight_memory``, e.g. iCE40's 16K-word SPRAM) keep one
    word per row: that kind is deep and narrow, and side-by-side words would take more blocks."""
    k = max(1, -(-fold.weight_depth // ROM_ROW_DEPTH)) if pipelined and not fold.weight_memory else 1
    return WeightRom(-(-fold.weight_depth // k), k * fold.weight_width, k)


def weight_words(weights: np.ndarray, fold: LayerFold, row_words: int = 1) -> list:
    """Weight ROM words of one layer: word nf * SF + sf, bit pe * SIMD + s is the weight of
    neuron nf * PE + pe for input sf * SIMD + s. Padded inputs get 1, padded neurons 0. With
    ``row_words`` > 1, the ROM's rows (``WeightRom``): that many words each, the first in the
    low bits, the last row padded with 0."""
    w = np.zeros((fold.nf * fold.pe, fold.sf * fold.simd), np.uint8)
    w[:, fold.n_in:] = 1
    w[:fold.n_out, :fold.n_in] = weights
    words = []
    for nf in range(fold.nf):
        for sf in range(fold.sf):
            block = w[nf * fold.pe:(nf + 1) * fold.pe, sf * fold.simd:(sf + 1) * fold.simd]
            words.append(_bits_to_int(block.reshape(-1)))
    if row_words > 1:
        width = fold.weight_width
        words = [sum(w << (j * width) for j, w in enumerate(words[r:r + row_words]))
                 for r in range(0, len(words), row_words)]
    return words


def threshold_words(values: np.ndarray, fold: LayerFold, width: int) -> list:
    """Threshold (hidden) or bias (output) ROM words: word nf, bits [pe*W, (pe+1)*W) hold the
    value of neuron nf * PE + pe (two's complement for biases). Padded hidden neurons get
    threshold max_sum + 1 (never fire), padded classes bias 0 (ignored by the arg-max)."""
    pad = fold.max_sum + 1 if fold.kind == "hidden" else 0
    v = np.full(fold.nf * fold.pe, pad, np.int64)
    v[:fold.n_out] = values
    mask = (1 << width) - 1
    return [sum((int(v[nf * fold.pe + p]) & mask) << (p * width) for p in range(fold.pe)) for nf in range(fold.nf)]


def input_beat_bytes(values: np.ndarray, width: int, beats: int, value_bits: int = 1, align: int = 1) -> np.ndarray:
    """The input stream's beats for images of input values (N, n) as bytes (N, beats,
    bytes per beat), each beat little-endian and zero-padded to a multiple of ``align`` bytes:
    see ``input_words``."""
    values = np.asarray(values, np.uint8)
    n_values = width // value_bits * beats
    padded = np.zeros((len(values), n_values), np.uint8)
    padded[:, :values.shape[1]] = values
    bits = np.unpackbits(padded[:, :, None], axis=2, bitorder="little")[:, :, :value_bits]
    packed = np.packbits(bits.reshape(len(values), beats, width), axis=2, bitorder="little")
    extra = -packed.shape[2] % align
    return np.pad(packed, ((0, 0), (0, 0), (0, extra))) if extra else packed


def input_words(values: np.ndarray, width: int, beats: int, value_bits: int = 1) -> list:
    """The input stream's beats for images of input values (N, n) in the network's (y, x,
    channel) order: per image a list of ``beats`` integers of ``width`` bits, each holding
    the next ``width / value_bits`` values, the first in the low bits; values past the last
    input are 0. (A dense first layer's beat is SIMD values; a convolutional network's beat
    is one pixel, all its channels.)"""
    packed = input_beat_bytes(values, width, beats, value_bits)
    return [[int.from_bytes(packed[i, b].tobytes(), "little") for b in range(beats)] for i in range(len(packed))]


def _bits_to_int(bits: np.ndarray) -> int:
    packed = np.packbits(bits.astype(np.uint8), bitorder="little").tobytes()
    return int.from_bytes(packed, "little")
