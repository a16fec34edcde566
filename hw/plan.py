"""The folding plan (pure Python, no Amaranth): what every layer computes in how many cycles.

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

import math
import re
from dataclasses import dataclass, replace

import numpy as np

from bnncore import defaults
from bnncore.errors import UsageError
from bnncore.network import FoldedNetwork

__all__ = ["Window", "Pool", "LayerFold", "Plan", "make_plan", "plan_for", "layer_shapes", "bias_bits_for",
           "pipeline_depth", "read_group", "address_bits", "engine_banks", "collector_banks", "POPCOUNT_CHUNK",
           "REP_GROUP", "MAX_BANKS", "MAX_OUT_DEPTH", "MEMORY_MIN_BITS", "POOL_LOGIC_BITS"]

#: Bits per first-stage popcount of a pipelined engine (the second stage adds the chunks).
POPCOUNT_CHUNK = 16
#: PEs per copy of the input word in the first level of a pipelined engine's fan-out tree.
REP_GROUP = 6
#: A buffer of at most this many bits is registers, not a memory: a block RAM of iCE40 (4 kbit)
#: for the 27 bits of three 3x3 windows of one channel is most of a small device's budget.
MEMORY_MIN_BITS = 256
#: A pool's row of partial results of at most this many bits is flip-flops, not a memory.
POOL_LOGIC_BITS = 384
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
    them). A fixed G leaves a wide second stage where SF is large (docs/results.md, "Timing
    rules")."""
    groups = [1 << i for i in range((sf - 1).bit_length() + 1)]   # 1, 2, ... up to >= sf
    return min(groups, key=lambda g: (max(g, banks * -(-sf // g)), -g))


def address_bits(depth: int) -> int:
    """Address bits of a memory of ``depth`` words (at least 1, as Amaranth's ``range(2)``)."""
    return max(1, (max(2, depth) - 1).bit_length())


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

    kind = "pool"

    def token(self) -> str:
        return f"mp{self.size}"

    def properties(self) -> dict:
        return {"size": self.size, "AND channels": [c for c, m in enumerate(self.modes) if m]}

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
    ``weight_memory``: the memory kind that holds the weights (a family's ``memory_kinds``,
    hw/families/, such as iCE40's ``"spram"``), or ``""`` for a ROM that Yosys maps (block RAM,
    or logic when shallow). A placed ROM keeps one weight word per row (``layout.weight_rom``).
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
    weight_memory: str = ""

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
        if not isinstance(self.weight_memory, str) or not re.fullmatch(r"[a-z0-9_]*", self.weight_memory):
            raise TypeError(f"{where}: weight_memory must name a memory kind (lower case), not {self.weight_memory!r}")
        object.__setattr__(self, "pools", tuple(self.pools))

    @property
    def positions(self) -> int:
        """Vectors per image: the window's positions, or 1."""
        return self.window.positions if self.window is not None else 1

    @property
    def feed(self) -> str:
        """What writes the engine's input buffer (hw/units.py): ``"map"`` a sliding window,
        ``"words"`` the input stream (a dense first layer), ``"vector"`` the engine before."""
        return "map" if self.window is not None else "words" if self.index == 0 else "vector"

    @property
    def drain(self) -> str:
        """Where the engine's results go: ``"scores"`` the arg-max (the output layer), ``"map"``
        a pixel collector and the stages, ``"vector"`` the next engine's buffer."""
        return "scores" if self.kind == "output" else "map" if self.window is not None else "vector"

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
            h, w = p.out_h, p.out_w
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
    banks: int = defaults.BANKS
    out_depth: int = defaults.OUT_DEPTH
    bias_bits: int = defaults.BIAS_BITS
    pipelined: bool = True

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers or self.layers[-1].kind != "output" or any(l.kind != "hidden" for l in self.layers[:-1]):
            raise UsageError("a plan is hidden layers followed by one output layer")
        for a, b in zip(self.layers, self.layers[1:]):
            if b.window is not None:
                w = b.window
                if a.out_shape != (w.channels, w.height, w.width) or w.value_bits != 1:
                    raise UsageError(f"layer {b.index}: its window reads a {w.channels}x{w.height}x{w.width} map "
                                     f"of {w.value_bits}-bit values, layer {a.index} gives "
                                     f"{'x'.join(map(str, a.out_shape))} bits")
            elif b.n_in != a.n_out or a.window is not None:
                raise UsageError(f"layer {b.index}: has {b.n_in} inputs, expected {a.n_out}")
            if b.in_bits != 1:
                raise UsageError(f"layer {b.index}: only the first layer can have {b.in_bits}-bit inputs")
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
                parts += [p.token() for p in l.pools]
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
            if l.weight_memory:
                row["weight_memory"] = l.weight_memory
            if l.window is not None:
                row.update(window=l.window.describe(), positions=l.positions, pools=[p.describe() for p in l.pools])
            rows.append(row)
        return rows


def layer_shapes(net) -> list:
    """One ``LayerFold`` per weight layer of ``net`` (a FoldedNetwork, or an MLP topology of
    layer sizes), with PE and SIMD 1: the shapes, windows and pools that a folding fills in."""
    from bnncore.kinds import BUILTIN, kind_of
    from bnncore.network import PoolLayer, shape_str
    if not isinstance(net, FoldedNetwork):
        sizes = tuple(net)
        return [LayerFold(a, b, 1, 1, "output" if k == len(sizes) - 2 else "hidden", k)
                for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    if not net.is_chain:
        srcs = next((i, g) for i, g in enumerate(net.graph) if g != (i - 1,))
        raise UsageError(f"network {net.spec} is a graph (stage {srcs[0]} reads {list(srcs[1])}): the accelerator "
                         "streams a chain of layers, and branches and joins have no hardware yet")
    shapes = []
    for s in net.stages:
        if not s.has_weights:      # a pool, or a registered kind's stage, on the map of the layer before
            c, h, w = s.in_shape
            stage = Pool(c, h, w, s.size, tuple(int(m) for m in s.modes)) if isinstance(s, PoolLayer) \
                else kind_of(s).stage(s)
            if (stage.channels, stage.out_h, stage.out_w) != tuple(s.out_shape):
                raise UsageError(f"{s.name}: its hardware stage maps {shape_str((c, h, w))} to "
                                 f"{stage.channels}x{stage.out_h}x{stage.out_w}, the layer to {shape_str(s.out_shape)}")
            last = shapes[-1]
            shapes[-1] = replace(last, pools=last.pools + (stage,))
            continue
        k = len(shapes)
        kind = "hidden" if s.kind != "output" else "output"
        window = BUILTIN[s.kind].window(s, shapes[-1].out_shape if k else None)
        window = Window(**window) if window is not None else None
        shapes.append(LayerFold(s.fan_in, s.n_out, 1, 1, kind, k, s.in_bits, window))
    return shapes


def _fold_plan(shapes, folds, spec: str, **kw) -> Plan:
    if len(folds) != len(shapes):
        raise UsageError(f"folding needs one (PE, SIMD) per layer: {len(shapes)} for {spec}, got {len(folds)}")
    for k, f in enumerate(folds):
        if not isinstance(f, (tuple, list)) or len(f) != 2:
            raise UsageError(f"layer {k}: a folding is a pair (PE, SIMD), not {f!r}")
    return Plan(tuple(replace(s, pe=pe, simd=simd) for s, (pe, simd) in zip(shapes, folds)), **kw)


def make_plan(topology, folds, *, banks: int = defaults.BANKS, out_depth: int = defaults.OUT_DEPTH,
              bias_bits: int = defaults.BIAS_BITS,
              pipelined: bool = True) -> Plan:
    """Plan from an MLP topology and a list of (PE, SIMD) per layer (hidden layers, then
    output)."""
    sizes = tuple(topology)
    return _fold_plan(layer_shapes(sizes), folds, "-".join(map(str, sizes)), banks=banks, out_depth=out_depth,
                      bias_bits=bias_bits, pipelined=pipelined)


def plan_for(net: FoldedNetwork, folds, *, banks: int = defaults.BANKS, out_depth: int = defaults.OUT_DEPTH,
              bias_bits: int = defaults.BIAS_BITS,
             pipelined: bool = True) -> Plan:
    """Plan for any folded network (dense, convolutional, 8-bit input) and a list of
    (PE, SIMD) per weight layer (pools have none)."""
    return _fold_plan(layer_shapes(net), folds, net.spec, banks=banks, out_depth=out_depth, bias_bits=bias_bits,
                      pipelined=pipelined)


def bias_bits_for(net: FoldedNetwork, minimum: int = defaults.BIAS_BITS) -> int:
    """Signed width that holds every output bias of ``net``: ``minimum`` (the generator's
    default) or more. A plan's ``bias_bits`` must come from the network it will hold: a bias
    outside the width would be truncated in the ROM, a different network in hardware."""
    lo, hi = int(net.head.bias.min()), int(net.head.bias.max())
    need = 1 + max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length())
    return max(minimum, need)


def engine_banks(plan: Plan, fold) -> int:
    """Images (windows) the input buffer of ``fold``'s engine holds. Behind a window, a third
    bank: the window unit then writes a window while the engine still reads the one before
    the last, and its two-cycle pipeline never leaves the engine waiting (with two, each
    window of an NF = 1 engine cost 2 more cycles)."""
    return max(plan.banks, 3) if fold.window is not None else plan.banks


def collector_banks(plan: Plan, fold) -> int:
    """Pixels the collector behind a convolution's engine holds. A pixel is claimed when its
    window starts and freed when the next unit takes it, ``plan.depth + 3`` cycles after the
    window's last issue: enough pixels for the engine never to wait on that loop."""
    per_window = fold.nf * fold.sf
    return max(2, -(-(per_window + plan.depth + 3) // per_window))
