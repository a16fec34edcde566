"""Folding plan, ROM layouts and the analytical timing model (pure Python, no Amaranth).

Folding (as FINN's matrix-vector units): a layer with ``n_in`` inputs and ``n_out`` neurons
computes ``PE`` neurons in parallel, each over ``SIMD`` input bits per cycle, so it takes
``NF * SF`` cycles per image with ``NF = ceil(n_out / PE)`` neuron folds and
``SF = ceil(n_in / SIMD)`` synapse folds.

Padding when PE or SIMD do not divide the sizes, and why it cannot change a result:

- input positions ``n_in .. SF*SIMD-1`` carry input bit 0 and weight bit 1, so
  ``xnor(0, 1) = 0``: they never add to a popcount;
- padded neurons ``n_out .. NF*PE-1`` of a hidden layer get threshold ``max_sum + 1``, above any
  popcount, so they never fire and write 0 into the next layer's padded input positions;
- the image's padding bits are forced to 0 by the input stage, whatever the driver sends;
- padded output classes are never considered by the arg-max.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from bnncore.network import FoldedNetwork

__all__ = ["Window", "Pool", "LayerFold", "Plan", "make_plan", "plan_for", "layer_shapes", "auto_fold", "fastest_cycles", "bias_bits_for", "check_network", "Timing", "timing", "weight_words", "input_words", "input_beat_bytes",
           "threshold_words", "pipeline_depth", "read_group", "rom_slices", "slice_bits", "address_bits", "POPCOUNT_CHUNK", "REP_GROUP",
           "ROM_SLICE_BITS", "SHALLOW_SLICE_BITS", "DEEP_SLICE_BITS", "ROM_ROW_DEPTH", "WeightRom", "weight_rom"]

#: Bits per first-stage popcount of a pipelined engine (the second stage adds the chunks).
POPCOUNT_CHUNK = 16
#: PEs per copy of the input word in the first level of a pipelined engine's fan-out tree.
REP_GROUP = 6
#: Bits per column slice of a ROM of 65 to 256 words, each slice read through its own copy
#: of the address register. A multiple of every block-RAM port width of iCE40 (16, 8, 4, 2) and
#: ECP5 (36, 18, 9, 4, 2, 1), so slicing never adds a block RAM; a 144-bit slice is 4 ECP5 block
#: RAMs wide, so an address bit drives 4 address pins instead of 64 (an ECP5-85F's critical path
#: at 83.6 MHz: one register to the 64 block RAMs of a 2,304-bit ROM, 11.2 ns of routing).
ROM_SLICE_BITS = 144
#: Bits per column slice of a ROM of at most 64 words, which Yosys builds from logic on ECP5
#: (every such ROM of CNV: a LUT per bit and word select), not block RAM: a 144-bit slice of
#: 18 words was 144 LUT multiplexers spread along layer 1's PEs behind one address register
#: (CNV's critical path on the ECP5-85F at 84.3 MHz, 9.9 ns of routing). A multiple of iCE40's
#: port widths, so iCE40 block RAMs stay as many.
SHALLOW_SLICE_BITS = 48
#: (depth at most, bits per slice) of deeper ROMs: two ECP5 block RAMs of the widest port that
#: holds the depth, a multiple of iCE40's too (512 words: 2 x 36 on ECP5, 9 x 8 on iCE40;
#: 2,048 words: 2 x 9 and 9 x 2). A 144-bit slice of a 2,048-word ROM was 16 block RAMs of
#: 2048 x 9 spread over the device behind one register (CNV's critical path on the ECP5-85F
#: at 88.0 MHz: 10.6 ns of routing to one of them). Deeper ROMs belong to shallow engines,
#: whose slices share one address, and keep 144.
DEEP_SLICE_BITS = ((64, SHALLOW_SLICE_BITS), (256, ROM_SLICE_BITS), (512, 72), (1024, 36), (2048, 18))
#: Rows of a pipelined engine's weight ROM at most: one ECP5 block RAM deep in its deepest
#: configuration that wastes no bits (2048 x 9, which Yosys picks for such a ROM). A deeper
#: ROM's read data would pass a multiplexer of block RAMs before the engine's register, and a
#: block RAM read without its output register is slow to its outputs (CNV's critical path on
#: an ECP5-85F at 61.4 MHz: a 16,704-word ROM, 5.6 ns to the data, then a 17-to-1 multiplexer
#: across the device); ``weight_rom`` puts such a ROM's words side by side. Rows of 512 words
#: (512 x 36) worked too, but fed the word select four times as many wires: the 85F's router
#: did not converge.
ROM_ROW_DEPTH = 2048


#: the most image buffers between layers, and output FIFO entries, a plan may have
MAX_BANKS = 16
MAX_OUT_DEPTH = 1024


def pipeline_depth(pipelined: bool) -> int:
    """Cycles from an engine's last issue of an image until its consumer sees the image
    complete. Shallow: ROM read (1), XNOR-popcount (1), accumulate-and-compare (1), write into
    the next buffer (1). Pipelined reads the input word in two cycles (one of ``read_group``
    words, then one of those), registers the weight address (one copy per ROM slice), the ROM
    output twice (next to the block RAMs, then next to the PEs), the input word (through a
    two-level fan-out tree: one copy per REP_GROUP PEs, then one per PE), splits the popcount
    in two (chunks of POPCOUNT_CHUNK bits, then their sum) and registers the results twice
    (next to the PEs, then on the way to the consumer's buffer): 9."""
    return 9 if pipelined else 4


def read_group(sf: int, banks: int) -> int:
    """Words per first-stage multiplexer of a pipelined engine's two-cycle read of a
    register-array buffer: the power of two G that balances the two stages, G-to-1 within a
    bank, then (banks * ceil(SF / G))-to-1 (the larger G on a tie: fewer registers between
    them). A fixed G of 4 left the output layer of a 784-1024-1024-1024-10 network (2 banks of
    32 words) a 16-to-1 second stage, the critical path on an ECP5-85F at 88.8 MHz."""
    groups = [1 << i for i in range((sf - 1).bit_length() + 1)]   # 1, 2, ... up to >= sf
    return min(groups, key=lambda g: (max(g, banks * -(-sf // g)), -g))


def address_bits(depth: int) -> int:
    """Address bits of a memory of ``depth`` words (at least 1, as Amaranth's ``range(2)``)."""
    return max(1, (max(2, depth) - 1).bit_length())


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
    the same block RAMs, no multiplexer behind their unregistered outputs."""
    k = max(1, -(-fold.weight_depth // ROM_ROW_DEPTH)) if pipelined else 1
    return WeightRom(-(-fold.weight_depth // k), k * fold.weight_width, k)


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class Window:
    """The sliding-window unit in front of a layer's engine (hw/window.py): the input feature
    map ``channels x height x width`` (values of ``value_bits`` bits) arrives pixel by pixel,
    channels packed, and the unit hands the engine each ``kh x kw`` window, ``padding``
    positions of ``pad_value`` around the map, in (ky, kx, channel) order: the order of the
    folded weights. A convolution has square windows, stride 1; a dense layer after a
    convolution sees the whole map as one window (``kh, kw = height, width``), so that it
    reads the feature map in its flatten order with no reordering."""
    channels: int
    height: int
    width: int
    kh: int
    kw: int
    padding: int = 0
    pad_value: int = 1
    value_bits: int = 1
    dense: bool = False          # the whole map, for a dense layer

    @property
    def out_h(self) -> int:
        return self.height + 2 * self.padding - self.kh + 1

    @property
    def out_w(self) -> int:
        return self.width + 2 * self.padding - self.kw + 1

    @property
    def positions(self) -> int:
        return self.out_h * self.out_w

    @property
    def pixel_bits(self) -> int:
        return self.channels * self.value_bits

    @property
    def rows(self) -> int:
        """Rows of the line buffer: the smallest power of two of at least twice the window's
        rows plus two, or of at least the map's height when that is smaller. The rows beyond the window's let the
        producer run ahead: with room for one more row only, FINN's CNV of layers balanced to
        32,400 cycles ran at an interval of 37,378 (the layers' uneven demands within an image
        stalled the slowest); with eight rows, at 32,400. Block RAMs are deep, so the extra
        rows rarely cost a block."""
        return 1 << (min(self.height, 2 * self.kh + 2) - 1).bit_length()

    @property
    def x_bits(self) -> int:
        """Column bits of a line-buffer address (row slot in the bits above)."""
        return max(1, (self.width - 1).bit_length())

    def describe(self) -> dict:
        return {"in_shape": [self.channels, self.height, self.width], "kernel": [self.kh, self.kw],
                "padding": self.padding, "pad_value": self.pad_value, "value_bits": self.value_bits,
                "dense": self.dense, "line_buffer_rows": self.rows}

    @classmethod
    def from_description(cls, d: dict) -> "Window":
        (c, h, w), (kh, kw) = d["in_shape"], d["kernel"]
        return cls(c, h, w, kh, kw, d["padding"], d["pad_value"], d["value_bits"], d["dense"])


@dataclass(frozen=True)
class Pool:
    """``size x size`` max-pool of bits, stride ``size``, after a layer's engine: per channel
    the OR of the window's bits, or the AND where ``modes[c]`` is 1 (hw/window.py)."""
    channels: int
    height: int
    width: int
    size: int
    modes: tuple

    @property
    def out_h(self) -> int:
        return self.height // self.size

    @property
    def out_w(self) -> int:
        return self.width // self.size

    def describe(self) -> dict:
        return {"in_shape": [self.channels, self.height, self.width], "size": self.size,
                "and_channels": [c for c, m in enumerate(self.modes) if m]}

    @classmethod
    def from_description(cls, d: dict) -> "Pool":
        c, h, w = d["in_shape"]
        ands = set(d["and_channels"])
        return cls(c, h, w, d["size"], tuple(int(k in ands) for k in range(c)))


@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer. ``kind`` is 'hidden' or 'output'.

    A dense layer's engine sees each image as one vector of ``n_in`` inputs; with a
    ``window`` (a convolution, or a dense layer after one) it sees one vector per window
    position, ``n_in`` the window's values. ``pools`` follow the engine's output.
    ``in_bits``: 8 for the first layer of a network with 8-bit input. SIMD counts input
    values per cycle; behind a window it divides the channels (a word never spans pixels).
    """
    n_in: int
    n_out: int
    pe: int
    simd: int
    kind: str = "hidden"
    index: int = 0
    in_bits: int = 1
    window: Window | None = None
    pools: tuple = ()

    def __post_init__(self):
        where = f"layer {self.index}"
        _positive_int(self.n_in, f"{where}: n_in")
        _positive_int(self.n_out, f"{where}: n_out")
        pe = _positive_int(self.pe, f"{where}: PE")
        simd = _positive_int(self.simd, f"{where}: SIMD")
        if pe > self.n_out:
            raise TypeError(f"{where}: PE must be at most the layer's {self.n_out} neurons, not {pe}")
        if simd > self.n_in:
            raise TypeError(f"{where}: SIMD must be at most the layer's {self.n_in} inputs, not {simd}")
        if self.kind not in ("hidden", "output"):
            raise TypeError(f"{where}: kind must be 'hidden' or 'output', not {self.kind!r}")
        if self.in_bits not in (1, 8):
            raise TypeError(f"{where}: in_bits must be 1 or 8, not {self.in_bits!r}")
        w = self.window
        if w is not None:
            if w.kh * w.kw * w.channels != self.n_in:
                raise TypeError(f"{where}: a {w.kh}x{w.kw} window of {w.channels} channels is not its {self.n_in} inputs")
            if w.channels % simd:
                raise TypeError(f"{where}: SIMD must divide the {w.channels} input channels of its window "
                                f"(a word of the window never spans two pixels), not {simd}")
        object.__setattr__(self, "pools", tuple(self.pools))

    @property
    def positions(self) -> int:
        """Vectors per image: the window's positions, or 1."""
        return self.window.positions if self.window is not None else 1

    @property
    def max_sum(self) -> int:
        """The largest popcount (a weighted one for 8-bit input)."""
        return self.n_in * ((1 << self.in_bits) - 1)

    @property
    def out_shape(self) -> tuple:
        """(channels, height, width) of the feature map after the engine and its pools, or
        (n_out,) for a dense layer."""
        if self.window is None:
            return (self.n_out,)
        c, h, w = self.n_out, self.window.out_h, self.window.out_w
        for p in self.pools:
            h, w = h // p.size, w // p.size
        return (c, h, w)

    @property
    def nf(self) -> int:
        return math.ceil(self.n_out / self.pe)

    @property
    def sf(self) -> int:
        return math.ceil(self.n_in / self.simd)

    @property
    def cycles(self) -> int:
        """Cycles per image: positions * NF * SF."""
        return self.positions * self.nf * self.sf

    @property
    def acc_bits(self) -> int:
        """Width of a popcount accumulator (values 0..max_sum)."""
        return max(1, self.max_sum.bit_length())

    @property
    def value_bits(self) -> int:
        """Width of a threshold (hidden, unsigned 0..max_sum+1) or bias (output, signed)."""
        return max(1, (self.max_sum + 1).bit_length())

    @property
    def weight_depth(self) -> int:
        return self.nf * self.sf

    @property
    def weight_width(self) -> int:
        return self.pe * self.simd

    @property
    def word_bits(self) -> int:
        """Bits of an input word the engine reads per cycle: SIMD values."""
        return self.simd * self.in_bits

    @property
    def memory_bits(self) -> dict:
        bits = {"weights": self.weight_depth * self.weight_width, "thresholds": self.nf * self.pe * self.value_bits}
        if self.window is not None:   # a word per SIMD channels of a pixel (hw/window.py)
            w = self.window
            bits["line_buffer"] = (w.rows << (w.x_bits + (w.channels // self.simd - 1).bit_length())) * self.word_bits
        return bits


@dataclass(frozen=True)
class Plan:
    """The folding of every layer, plus the buffering between layers.

    Parameters
    ----------
    layers : tuple of LayerFold, hidden layers then the output layer
    banks : int
        Image buffers between consecutive layers (2: ping-pong). More banks let a layer run
        further ahead of a slower consumer.
    out_depth : int
        Depth of the output FIFO (results waiting for the output stream).
    bias_bits : int
        Width of the output biases (signed).
    pipelined : bool
        9-stage engines for a higher clock (five more cycles of latency per layer and about
        3 * PE * SIMD more flip-flops); see ``pipeline_depth``.
    """
    layers: tuple
    banks: int = 2
    out_depth: int = 2
    bias_bits: int = 16
    pipelined: bool = True

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers or self.layers[-1].kind != "output" or any(l.kind != "hidden" for l in self.layers[:-1]):
            raise ValueError("a plan is hidden layers followed by one output layer")
        for a, b in zip(self.layers, self.layers[1:]):
            if b.window is not None:
                w = b.window
                if a.out_shape != (w.channels, w.height, w.width) or w.value_bits != 1:
                    raise ValueError(f"layer {b.index}: its window reads a {w.channels}x{w.height}x{w.width} map "
                                     f"of {w.value_bits}-bit values, layer {a.index} gives "
                                     f"{'x'.join(map(str, a.out_shape))} bits")
            elif b.n_in != a.n_out or a.window is not None:
                raise ValueError(f"layer {b.index}: has {b.n_in} inputs, expected {a.n_out}")
            if b.in_bits != 1:
                raise ValueError(f"layer {b.index}: only the first layer can have {b.in_bits}-bit inputs")
        if not isinstance(self.banks, int) or not 2 <= self.banks <= MAX_BANKS:
            raise TypeError(f"banks must be an integer in [2, {MAX_BANKS}] (each bank buffers a whole layer "
                            f"output), not {self.banks!r}")
        if _positive_int(self.out_depth, "out_depth") > MAX_OUT_DEPTH:
            raise TypeError(f"out_depth must be at most {MAX_OUT_DEPTH} (each entry is an output word of "
                            f"flip-flops), not {self.out_depth}")
        if not isinstance(self.bias_bits, int) or not 2 <= self.bias_bits <= 32:
            raise TypeError(f"bias_bits must be an integer in [2, 32], not {self.bias_bits!r}")
        if not isinstance(self.pipelined, bool):
            raise TypeError(f"pipelined must be a bool, not {self.pipelined!r}")

    @property
    def depth(self) -> int:
        """Engine pipeline depth in cycles (see ``pipeline_depth``)."""
        return pipeline_depth(self.pipelined)

    @property
    def convolutional(self) -> bool:
        """The input is a feature map streamed pixel by pixel (the first layer has a window)."""
        return self.layers[0].window is not None

    @property
    def in_width(self) -> int:
        """Bits per beat of the input stream: the first layer's SIMD values, or one row of
        pixels (all their channels) of a convolutional network."""
        first = self.layers[0]
        return first.window.width * first.window.pixel_bits if self.convolutional else first.word_bits

    @property
    def in_beats(self) -> int:
        """Beats per image: the first layer's synapse folds, or the rows of the input map."""
        first = self.layers[0]
        return first.window.height if self.convolutional else first.sf

    @property
    def in_values(self) -> int:
        """Input values per image."""
        first = self.layers[0]
        return first.window.height * first.window.width * first.window.channels if self.convolutional else first.n_in

    @property
    def value_bits(self) -> int:
        """Bits per input value: 1, or 8."""
        return self.layers[0].in_bits

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def class_bits(self) -> int:
        return max(1, (self.n_classes - 1).bit_length())

    @property
    def score_bits(self) -> int:
        """Signed width of an output score 2 * popcount - n + bias."""
        out = self.layers[-1]
        return max(out.n_in.bit_length() + 2, self.bias_bits) + 1

    @property
    def spec(self) -> str:
        """The network's topology string (bnncore/topology.py) that this plan folds."""
        if not self.convolutional:
            return "-".join(str(v) for v in [self.layers[0].n_in] + [l.n_out for l in self.layers])
        w = self.layers[0].window
        parts = [f"{w.channels}x{w.height}x{w.width}"]
        for l in self.layers:
            if l.window is not None and not l.window.dense:
                parts.append(f"{l.n_out}c{l.window.kh}" + (f"p{l.window.padding}" if l.window.padding else ""))
                parts += [f"mp{p.size}" for p in l.pools]
            else:
                parts.append(str(l.n_out))
        return "-".join(parts)

    def describe(self) -> list:
        rows = []
        for l in self.layers:
            row = {"layer": l.index, "kind": l.kind, "n_in": l.n_in, "n_out": l.n_out, "pe": l.pe, "simd": l.simd,
                   "nf": l.nf, "sf": l.sf, "cycles_per_image": l.cycles, "memory_bits": l.memory_bits}
            if l.in_bits != 1:
                row["in_bits"] = l.in_bits
            if l.window is not None:
                row.update(window=l.window.describe(), positions=l.positions, pools=[p.describe() for p in l.pools])
            rows.append(row)
        return rows


def layer_shapes(net) -> list:
    """One ``LayerFold`` per weight layer of ``net`` (a FoldedNetwork, or an MLP topology of
    layer sizes), with PE and SIMD 1: the shapes, windows and pools that a folding fills in."""
    from bnncore.network import ConvLayer, PoolLayer
    if not isinstance(net, FoldedNetwork):
        sizes = tuple(net)
        return [LayerFold(a, b, 1, 1, "output" if k == len(sizes) - 2 else "hidden", k)
                for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    shapes = []
    for s in net.stages:
        if isinstance(s, PoolLayer):
            c, h, w = s.in_shape
            last = shapes[-1]
            shapes[-1] = replace(last, pools=last.pools + (Pool(c, h, w, s.size, tuple(int(m) for m in s.modes)),))
            continue
        k = len(shapes)
        kind = "hidden" if s.kind != "output" else "output"
        window = None
        if isinstance(s, ConvLayer):
            c, h, w = s.in_shape
            window = Window(c, h, w, s.kernel, s.kernel, s.padding, s.pad_value, s.in_bits)
        elif k and shapes[-1].window is not None:        # a dense layer after a convolution
            c, h, w = shapes[-1].out_shape
            window = Window(c, h, w, h, w, dense=True)
        shapes.append(LayerFold(s.fan_in, s.n_out, 1, 1, kind, k, s.in_bits, window))
    return shapes


def _fold_plan(shapes, folds, spec: str, **kw) -> Plan:
    if len(folds) != len(shapes):
        raise ValueError(f"folding needs one (PE, SIMD) per layer: {len(shapes)} for {spec}, got {len(folds)}")
    for k, f in enumerate(folds):
        if not isinstance(f, (tuple, list)) or len(f) != 2:
            raise ValueError(f"layer {k}: a folding is a pair (PE, SIMD), not {f!r}")
    return Plan(tuple(replace(s, pe=pe, simd=simd) for s, (pe, simd) in zip(shapes, folds)), **kw)


def make_plan(topology, folds, *, banks: int = 2, out_depth: int = 2, bias_bits: int = 16,
              pipelined: bool = True) -> Plan:
    """Plan from an MLP topology and a list of (PE, SIMD) per layer (hidden layers, then
    output)."""
    sizes = tuple(topology)
    return _fold_plan(layer_shapes(sizes), folds, "-".join(map(str, sizes)), banks=banks, out_depth=out_depth,
                      bias_bits=bias_bits, pipelined=pipelined)


def plan_for(net: FoldedNetwork, folds, *, banks: int = 2, out_depth: int = 2, bias_bits: int = 16,
             pipelined: bool = True) -> Plan:
    """Plan for any folded network (dense, convolutional, 8-bit input) and a list of
    (PE, SIMD) per weight layer (pools have none)."""
    return _fold_plan(layer_shapes(net), folds, net.spec, banks=banks, out_depth=out_depth, bias_bits=bias_bits,
                      pipelined=pipelined)


def fastest_cycles(net, max_simd: int = 256) -> int:
    """The fewest cycles per image any folding of ``net`` reaches: the slowest layer with all
    its outputs in parallel and the widest SIMD it allows."""
    def fastest(f):
        simd = max(s for s in range(1, min(f.n_in, max_simd) + 1) if f.window is None or f.window.channels % s == 0)
        return f.positions * math.ceil(f.n_in / simd)
    return max(fastest(f) for f in layer_shapes(net))


def auto_fold(topology, target_cycles: int, *, max_simd: int = 256, rom_blocks=None, buffer_blocks=None,
              **kw) -> Plan:
    """Fold every layer as cheaply as possible (fewest PE * SIMD) within ``target_cycles``
    cycles per image, so that the layers are balanced, as FINN's folding step does.
    ``topology``: an MLP's layer sizes, or a FoldedNetwork (a convolution's cycles are its
    window positions times NF * SF, and its SIMD divides its input channels).

    Among equally cheap foldings the one with fewer cycles wins, then the wider SIMD. The
    output layer gets PE 1 whenever the target allows it (the arg-max's chain of comparisons
    grows with its PE).

    ``rom_blocks(depth, width) -> int``, when given (``Device.rom_blocks`` of hw/synth.py),
    counts the block RAMs a ROM of that shape takes on the device; each layer then takes the
    fewest block RAMs first (weights and thresholds, and for the first layer its input buffer
    as ``buffer_blocks(depth, width)`` counts it), then the fewest PE * SIMD. A ROM whose
    words are wider than a block RAM's port, or deeper than its depth, wastes the rest of the
    block: on small devices that, not the logic, is what decides whether a network fits.
    """
    target = _positive_int(target_cycles, "target_cycles")
    shapes = layer_shapes(topology)
    n_layers = len(shapes)
    folds = []
    for k, shape in enumerate(shapes):
        n_in, n_out, positions = shape.n_in, shape.n_out, shape.positions
        simds = [s for s in range(1, min(n_in, max_simd) + 1)
                 if shape.window is None or shape.window.channels % s == 0]
        # the output layer with PE 1 where the target allows: the arg-max compares the PE
        # scores of a cycle in a chain, the critical path of the design from PE 2 or 3 on (28 ns
        # on an ECP5 with PE 5)
        output_pe1 = k == n_layers - 1 and positions * math.ceil(n_in / simds[-1]) * n_out <= target
        best = None
        for simd in simds:
            sf = math.ceil(n_in / simd)
            if positions * sf > target:
                continue
            lo = min(math.ceil(n_out / (target // (positions * sf))), n_out)
            # without a block-RAM model the smallest PE is the cheapest; with one, a larger PE
            # can fill the blocks' width better: try the smallest PE of each neuron-fold count
            pes = sorted({math.ceil(n_out / nf) for nf in range(1, math.ceil(n_out / lo) + 1)}) if rom_blocks else [lo]
            if output_pe1:
                pes = [pe for pe in pes if pe == 1]
            for pe in pes:
                f = replace(shape, pe=pe, simd=simd)
                key = (pe * simd, f.cycles, -simd)
                if rom_blocks:
                    value_bits = f.value_bits if f.kind == "hidden" else kw.get("bias_bits", 16)
                    rom = weight_rom(f, kw.get("pipelined", True))
                    blocks = rom_blocks(rom.depth, rom.width) + rom_blocks(f.nf, pe * value_bits)
                    if k == 0 and buffer_blocks:      # the input buffer: banks x SF words of SIMD values
                        blocks += buffer_blocks(kw.get("banks", 2) << max(1, (sf - 1).bit_length()), f.word_bits)
                    key = (blocks,) + key
                if best is None or key < best[0]:
                    best = (key, (pe, simd))
        if best is None:
            fewest = positions * math.ceil(n_in / simds[-1])
            widest = f"{simds[-1]} input values per cycle (SIMD" + (
                f", a divisor of the window's {shape.window.channels} channels)" if shape.window else ")")
            raise ValueError(f"layer {k}: no folding of its {n_in} inputs{f' at {positions} positions' if positions > 1 else ''} "
                             f"reaches {target} cycles per image: with at most {widest} it takes at least {fewest}; "
                             f"ask for {fewest} or more cycles per image")
        folds.append(best[1])
    return _fold_plan(shapes, folds, "", **kw)


# --- ROM contents ---------------------------------------------------------------------------

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


def bias_bits_for(net: FoldedNetwork, minimum: int = 16) -> int:
    """Signed width that holds every output bias of ``net``: ``minimum`` (the generator's
    default) or more. A plan's ``bias_bits`` must come from the network it will hold: a bias
    outside the width would be truncated in the ROM, a different network in hardware."""
    lo, hi = int(net.head.bias.min()), int(net.head.bias.max())
    need = 1 + max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length())
    return max(minimum, need)


def layer_properties(fold: LayerFold) -> dict:
    """{property: value} of what the generated logic of one layer fixes: its kind and shape,
    the width of its input values, its window (map, kernel, padding, pad value) and its pools
    (size, the channels that AND), and its folding. The names are what a refusal shows."""
    k = fold.index
    props = {f"layer {k} kind": fold.kind, f"layer {k} inputs": fold.n_in, f"layer {k} outputs": fold.n_out,
             f"layer {k} input bits": fold.in_bits, f"layer {k} PE": fold.pe, f"layer {k} SIMD": fold.simd}
    w = fold.window
    if w is None:
        props[f"layer {k} window"] = None
    else:
        props.update({f"layer {k} window": "whole map (dense)" if w.dense else f"{w.kh}x{w.kw}",
                      f"layer {k} input map": f"{w.channels}x{w.height}x{w.width}",
                      f"layer {k} padding": w.padding, f"layer {k} pad value": w.pad_value})
    props[f"layer {k} pools"] = len(fold.pools)
    for j, pool in enumerate(fold.pools):
        props[f"layer {k} pool {j} size"] = pool.size
        props[f"layer {k} pool {j} AND channels"] = [c for c, m in enumerate(pool.modes) if m]
    return props


def design_properties(plan: Plan) -> dict:
    """{property: value} of everything the generated logic of ``plan`` fixes at generation:
    every layer's ``layer_properties``, the buffering, the pipeline, the output bias width and
    the ports. Weights and thresholds are not among them: they are the ROM files' contents,
    which another network of the same properties replaces (``bnn sim --swap-roms``,
    ``bnn synth --swap-weights``, ``bnn load``). The input scheme's threshold level is not
    either: the host turns pixels into input bits with the network's own level."""
    props = {"layers": len(plan.layers)}
    for fold in plan.layers:
        props.update(layer_properties(fold))
    props.update({"banks": plan.banks, "out_depth": plan.out_depth, "bias_bits": plan.bias_bits,
                  "pipelined": plan.pipelined, "input width": plan.in_width, "input beats": plan.in_beats,
                  "input value bits": plan.value_bits, "class bits": plan.class_bits,
                  "score bits": plan.score_bits})
    return props


_MISSING = object()


def design_differences(have: dict, want: dict) -> list:
    """[(property, have's value, want's value)] where two ``design_properties`` differ, in
    the order of ``have`` (then what only ``want`` has)."""
    names = list(have) + [n for n in want if n not in have]
    return [(n, have.get(n, _MISSING), want.get(n, _MISSING)) for n in names
            if have.get(n, _MISSING) != want.get(n, _MISSING)]


def describe_differences(diffs: list, have: str, want: str, limit: int = 3) -> str:
    """'PROPERTY: HAVE has A, WANT B; ...' for the first ``limit`` differences."""
    def show(v):
        if v is _MISSING or v is None:
            return "none"
        if isinstance(v, list):
            return "[" + ", ".join(map(str, v[:12])) + (", ...]" if len(v) > 12 else "]")
        return str(v)
    parts = [f"{n}: {have} has {show(a)}, {want} {show(b)}" for n, a, b in diffs[:limit]]
    return "; ".join(parts) + (f" (and {len(diffs) - limit} more)" if len(diffs) > limit else "")


def network_plan(net: FoldedNetwork, plan: Plan) -> Plan | None:
    """The plan of ``net`` with ``plan``'s folding and options, or None when ``plan``'s
    folding cannot fold ``net`` (another number of layers, a PE or SIMD its shapes refuse)."""
    try:
        return plan_for(net, [(l.pe, l.simd) for l in plan.layers], banks=plan.banks, out_depth=plan.out_depth,
                        bias_bits=plan.bias_bits, pipelined=plan.pipelined)
    except (TypeError, ValueError):
        return None


def check_network(net: FoldedNetwork, plan: Plan):
    """Raise ValueError if ``plan`` does not fit ``net``: a property of the logic differs
    (``design_properties``, named in the message), or an output bias does not fit its width."""
    have = design_properties(plan)
    mine = network_plan(net, plan)
    if mine is not None:
        want = design_properties(mine)
    else:   # shapes only: the folding does not apply to the network
        want = {}
        for fold in layer_shapes(net):
            want.update(layer_properties(fold))
        want["layers"] = len(layer_shapes(net))
        have = {n: v for n, v in have.items() if n in want}
        for d in (have, want):
            for n in [n for n in d if n.endswith((" PE", " SIMD"))]:
                del d[n]
    diffs = design_differences(have, want)
    if diffs:
        raise ValueError(f"network {net.spec} differs from the design ({plan.spec}) in what its logic fixes: "
                         + describe_differences(diffs, "the design", "the network"))
    bias = net.head.bias
    lo, hi = -(1 << (plan.bias_bits - 1)), (1 << (plan.bias_bits - 1)) - 1
    bad = [int(c) for c in ((bias < lo) | (bias > hi)).nonzero()[0]]
    if bad:
        raise ValueError(f"output bias {int(bias[bad[0]])} of class {bad[0]} does not fit the plan's "
                         f"bias_bits={plan.bias_bits} (signed range [{lo}, {hi}]); make the plan with "
                         f"bias_bits={bias_bits_for(net)} (bias_bits_for(net))")


def plan_from_rtl(info: dict) -> Plan:
    """The folding plan an RTL directory was generated for (its rtl.json); ValueError when
    its fields do not make one."""
    try:
        rows = info["folding"]
        if not any("window" in l for l in rows):
            return make_plan(info["topology"], [(l["pe"], l["simd"]) for l in rows], banks=info["banks"],
                             out_depth=info["out_depth"], bias_bits=info["bias_bits"], pipelined=info["pipelined"])
        layers = tuple(LayerFold(l["n_in"], l["n_out"], l["pe"], l["simd"], l["kind"], k, l.get("in_bits", 1),
                                 Window.from_description(l["window"]) if "window" in l else None,
                                 tuple(Pool.from_description(p) for p in l.get("pools", ())))
                       for k, l in enumerate(rows))
        return Plan(layers, info["banks"], info["out_depth"], info["bias_bits"], info["pipelined"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"rtl.json: fields 'topology', 'folding', 'banks', 'out_depth', 'bias_bits', 'pipelined' "
                         f"do not make a folding plan ({type(e).__name__}: {e})") from None


def design_digest(info: dict) -> str:
    """Hex sha256 of the ``design_properties`` of the RTL that ``info`` (its rtl.json)
    describes: equal for two designs exactly when their logic is the same, so that the ROM
    files of one run right in the other. Every check of a swap uses it (``bnn synth
    --swap-weights``, ``bnn load``, the board's INFO answer)."""
    props = design_properties(plan_from_rtl(info))
    return hashlib.sha256(json.dumps(sorted(props.items()), separators=(",", ":")).encode()).hexdigest()


# --- Timing model ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """Cycle counts of the accelerator.

    Attributes
    ----------
    cycles : list of int, per layer NF * SF
    ii : Fraction, the initiation interval: average cycles between images in steady state
        with inputs back to back and the output always ready
    latency : int, cycles from the first input beat's acceptance to the result's valid
    exact : bool, ``ii`` is the RTL's to the cycle (else an estimate); ``latency`` always is
    period, steady_from : int or None; for a CNN, the steady state repeats every ``period``
        results from result ``steady_from`` on (the mean over any whole number of periods
        from there is ``ii``); None for an MLP, whose period divides 1, ``banks`` and
        ``out_depth`` from the third result on, and for a CNN whose model found no period
    """
    cycles: tuple
    ii: Fraction
    latency: int
    exact: bool = True
    period: int | None = None
    steady_from: int | None = None

    @property
    def bottleneck(self) -> int:
        return max(self.cycles)


def timing(plan: Plan) -> Timing:
    """The analytical model of the RTL in hw/accelerator.py.

    Stages: the input stage (one beat per cycle), one engine per layer, the arg-max and the
    output FIFO. An engine starts an image (its first issue is the cycle after) when its input
    image is complete and a bank of its consumer is free; it issues one (NF, SF) word per cycle
    and its consumer sees the image complete ``plan.depth`` cycles after its last issue. A
    consumer frees its bank at its last issue, visible the cycle after.

    Throughput: each stage alone takes C cycles per image; a producer p and its consumer c with
    B banks form a loop of B images that takes C_p + D + 1 + C_c cycles (fill, then drain).
    The initiation interval is the largest cycle mean: max(C_k, (C_p + D + 1 + C_c) / B, ...).
    """
    D = plan.depth
    B = plan.banks
    cyc = tuple(l.cycles for l in plan.layers)
    if plan.convolutional or any(l.window is not None for l in plan.layers):
        return _conv_timing(plan)
    # (cycles per image, delay from the last issue to the consumer seeing the image complete);
    # the input stage's image is complete the cycle after its last beat.
    stages = [(plan.in_beats, 0)] + [(c, D) for c in cyc]
    ii = Fraction(max(c for c, _ in stages))
    for (cp, dp), (cc, _) in zip(stages, stages[1:]):
        # producer starts -> ... -> consumer's last issue -> bank free the cycle after
        ii = max(ii, Fraction(cp + dp + cc + 1, B))
    # output loop: the last engine takes a FIFO credit when it starts an image, and gets it back
    # the cycle after the result leaves: start, C issues, written into the FIFO D - 1 cycles
    # after the last issue, valid the cycle after, popped, credit visible the cycle after.
    ii = max(ii, Fraction(cyc[-1] + D + 1, plan.out_depth))
    # one image through the empty pipeline, from its first beat's acceptance (cycle 0) to the
    # cycle its result is valid: the input is complete after in_beats cycles; each engine then
    # takes C + D cycles (start, C issues, D to its consumer: the next buffer or the FIFO).
    latency = plan.in_beats + sum(c + D for c in cyc)
    return Timing(cyc, ii, latency)


@functools.lru_cache(maxsize=32)
def _conv_timing(plan: Plan) -> Timing:
    """A CNN's window units, collectors and pools make no closed form: the cycle model of
    hw/cycles.py runs the design's control until it repeats (a few images; seconds for
    FINN's CNV). The latency is exact; the interval is when the model finds the period
    within its budget of images (a layer slightly faster than the bottleneck fills its
    buffers over hundreds of images before the state repeats), else the mean of the
    intervals it saw."""
    from .cycles import simulate
    run = simulate(plan)
    return Timing(tuple(l.cycles for l in plan.layers), run.ii, run.latency, run.period is not None,
                  run.period, run.steady_from)
