"""Folding plan, ROM layouts and the analytical timing model (pure Python, no Amaranth).

Folding (as FINN's matrix-vector units): a layer with ``n_in`` inputs and ``n_out`` neurons
computes ``PE`` neurons in parallel, each over ``SIMD`` input bits per cycle, so it takes
``NF * SF`` cycles per image with ``NF = ceil(n_out / PE)`` neuron folds and
``SF = ceil(n_in / SIMD)`` synapse folds.

Padding when PE or SIMD do not divide the sizes, and why it cannot change a result:

- input positions ``n_in .. SF*SIMD-1`` carry input bit 0 and weight bit 1, so
  ``xnor(0, 1) = 0``: they never add to a popcount;
- padded neurons ``n_out .. NF*PE-1`` of a hidden layer get threshold ``n_in + 1``, above any
  popcount, so they never fire and write 0 into the next layer's padded input positions;
- the image's padding bits are forced to 0 by the input stage, whatever the driver sends;
- padded output classes are never considered by the arg-max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bnncore.network import FoldedNetwork

__all__ = ["LayerFold", "Plan", "make_plan", "auto_fold", "bias_bits_for", "check_network", "require_mlp", "Timing", "timing", "weight_words",
           "threshold_words", "pipeline_depth", "read_group", "rom_slices", "address_bits", "POPCOUNT_CHUNK", "REP_GROUP",
           "ROM_SLICE_BITS"]

#: Bits per first-stage popcount of a pipelined engine (the second stage adds the chunks).
POPCOUNT_CHUNK = 16
#: PEs per copy of the input word in the first level of a pipelined engine's fan-out tree.
REP_GROUP = 6
#: Bits per column slice of a weight ROM, each read through its own copy of the address
#: register. A multiple of every block-RAM port width of iCE40 (16, 8, 4, 2) and ECP5 (36, 18,
#: 9, 4, 2, 1), so slicing never adds a block RAM; a 144-bit slice is 4 ECP5 block RAMs wide, so
#: an address bit drives 4 address pins instead of 64 (an ECP5-85F's critical path at 83.6 MHz:
#: one register to the 64 block RAMs of a 2,304-bit ROM, 11.2 ns of routing).
ROM_SLICE_BITS = 144


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


def rom_slices(width: int) -> list:
    """Column slices ``(lo, width)`` of a ROM word of ``width`` bits, ``ROM_SLICE_BITS`` each
    (the last one narrower); slice ``s`` reads bits ``lo .. lo + width - 1`` of the word."""
    return [(lo, min(ROM_SLICE_BITS, width - lo)) for lo in range(0, width, ROM_SLICE_BITS)]


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer. ``kind`` is 'hidden' or 'output'."""
    n_in: int
    n_out: int
    pe: int
    simd: int
    kind: str = "hidden"
    index: int = 0

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

    @property
    def nf(self) -> int:
        return math.ceil(self.n_out / self.pe)

    @property
    def sf(self) -> int:
        return math.ceil(self.n_in / self.simd)

    @property
    def cycles(self) -> int:
        """Cycles per image: NF * SF."""
        return self.nf * self.sf

    @property
    def acc_bits(self) -> int:
        """Width of a popcount accumulator (values 0..n_in)."""
        return max(1, self.n_in.bit_length())

    @property
    def value_bits(self) -> int:
        """Width of a threshold (hidden, unsigned 0..n_in+1) or bias (output, signed)."""
        return max(1, (self.n_in + 1).bit_length())

    @property
    def weight_depth(self) -> int:
        return self.nf * self.sf

    @property
    def weight_width(self) -> int:
        return self.pe * self.simd

    @property
    def weight_slices(self) -> int:
        """Column slices of the weight ROM, each with its own address (``rom_slices``)."""
        return len(rom_slices(self.weight_width))

    @property
    def memory_bits(self) -> dict:
        return {"weights": self.weight_depth * self.weight_width, "thresholds": self.nf * self.pe * self.value_bits}


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
            if b.n_in != a.n_out:
                raise ValueError(f"layer {b.index}: has {b.n_in} inputs, expected {a.n_out}")
        if not isinstance(self.banks, int) or self.banks < 2:
            raise TypeError(f"banks must be an integer of at least 2, not {self.banks!r}")
        _positive_int(self.out_depth, "out_depth")
        if not isinstance(self.bias_bits, int) or not 2 <= self.bias_bits <= 32:
            raise TypeError(f"bias_bits must be an integer in [2, 32], not {self.bias_bits!r}")
        if not isinstance(self.pipelined, bool):
            raise TypeError(f"pipelined must be a bool, not {self.pipelined!r}")

    @property
    def depth(self) -> int:
        """Engine pipeline depth in cycles (see ``pipeline_depth``)."""
        return pipeline_depth(self.pipelined)

    @property
    def in_width(self) -> int:
        """Bits per beat of the input stream (the first layer's SIMD)."""
        return self.layers[0].simd

    @property
    def in_beats(self) -> int:
        return self.layers[0].sf

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

    def describe(self) -> list:
        return [{"layer": l.index, "kind": l.kind, "n_in": l.n_in, "n_out": l.n_out, "pe": l.pe, "simd": l.simd,
                 "nf": l.nf, "sf": l.sf, "cycles_per_image": l.cycles, "memory_bits": l.memory_bits}
                for l in self.layers]


def make_plan(topology, folds, *, banks: int = 2, out_depth: int = 2, bias_bits: int = 16,
              pipelined: bool = True) -> Plan:
    """Plan from a topology and a list of (PE, SIMD) per layer (hidden layers, then output)."""
    sizes = tuple(topology)
    if len(folds) != len(sizes) - 1:
        raise ValueError(f"folding needs one (PE, SIMD) per layer: {len(sizes) - 1} for "
                         f"{'-'.join(map(str, sizes))}, got {len(folds)}")
    for k, f in enumerate(folds):
        if not isinstance(f, (tuple, list)) or len(f) != 2:
            raise ValueError(f"layer {k}: a folding is a pair (PE, SIMD), not {f!r}")
    layers = tuple(LayerFold(a, b, pe, simd, "output" if k == len(sizes) - 2 else "hidden", k)
                   for k, ((a, b), (pe, simd)) in enumerate(zip(zip(sizes[:-1], sizes[1:]), folds)))
    return Plan(layers, banks, out_depth, bias_bits, pipelined)


def auto_fold(topology, target_cycles: int, *, max_simd: int = 256, rom_blocks=None, buffer_blocks=None,
              **kw) -> Plan:
    """Fold every layer as cheaply as possible (fewest PE * SIMD) within ``target_cycles``
    cycles per image, so that the layers are balanced, as FINN's folding step does.

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
    sizes = tuple(topology)
    n_layers = len(sizes) - 1
    # the output layer with PE 1 where the target allows: the arg-max compares the PE scores of
    # a cycle in a chain, the critical path of the design from PE 2 or 3 on (28 ns on an ECP5
    # with PE 5)
    output_pe1 = math.ceil(sizes[-2] / min(sizes[-2], max_simd)) * sizes[-1] <= target
    folds = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        best = None
        for simd in range(1, min(n_in, max_simd) + 1):
            sf = math.ceil(n_in / simd)
            if sf > target:
                continue
            lo = min(math.ceil(n_out / (target // sf)), n_out)
            # without a block-RAM model the smallest PE is the cheapest; with one, a larger PE
            # can fill the blocks' width better: try the smallest PE of each neuron-fold count
            pes = sorted({math.ceil(n_out / nf) for nf in range(1, math.ceil(n_out / lo) + 1)}) if rom_blocks else [lo]
            if k == n_layers - 1 and output_pe1:
                pes = [pe for pe in pes if pe == 1]
            for pe in pes:
                nf = math.ceil(n_out / pe)
                key = (pe * simd, nf * sf, -simd)
                if rom_blocks:
                    f = LayerFold(n_in, n_out, pe, simd, "output" if k == n_layers - 1 else "hidden", k)
                    value_bits = f.value_bits if f.kind == "hidden" else kw.get("bias_bits", 16)
                    blocks = rom_blocks(f.weight_depth, f.weight_width) + rom_blocks(f.nf, pe * value_bits)
                    if k == 0 and buffer_blocks:      # the input buffer: banks x SF words of SIMD bits
                        blocks += buffer_blocks(kw.get("banks", 2) << max(1, (sf - 1).bit_length()), simd)
                    key = (blocks,) + key
                if best is None or key < best[0]:
                    best = (key, (pe, simd))
        if best is None:
            fewest = math.ceil(n_in / min(n_in, max_simd))
            raise ValueError(f"layer {k}: no folding of its {n_in} inputs reaches {target} cycles per image: "
                             f"with at most {min(n_in, max_simd)} input bits per cycle (SIMD) it takes at "
                             f"least {fewest}; ask for {fewest} or more cycles per image")
        folds.append(best[1])
    return make_plan(sizes, folds, **kw)


# --- ROM contents ---------------------------------------------------------------------------

def weight_words(weights: np.ndarray, fold: LayerFold) -> list:
    """Weight ROM words of one layer: word nf * SF + sf, bit pe * SIMD + s is the weight of
    neuron nf * PE + pe for input sf * SIMD + s. Padded inputs get 1, padded neurons 0."""
    w = np.zeros((fold.nf * fold.pe, fold.sf * fold.simd), np.uint8)
    w[:, fold.n_in:] = 1
    w[:fold.n_out, :fold.n_in] = weights
    words = []
    for nf in range(fold.nf):
        for sf in range(fold.sf):
            block = w[nf * fold.pe:(nf + 1) * fold.pe, sf * fold.simd:(sf + 1) * fold.simd]
            words.append(_bits_to_int(block.reshape(-1)))
    return words


def threshold_words(values: np.ndarray, fold: LayerFold, width: int) -> list:
    """Threshold (hidden) or bias (output) ROM words: word nf, bits [pe*W, (pe+1)*W) hold the
    value of neuron nf * PE + pe (two's complement for biases). Padded hidden neurons get
    threshold n_in + 1 (never fire), padded classes bias 0 (ignored by the arg-max)."""
    pad = fold.n_in + 1 if fold.kind == "hidden" else 0
    v = np.full(fold.nf * fold.pe, pad, np.int64)
    v[:fold.n_out] = values
    mask = (1 << width) - 1
    return [sum((int(v[nf * fold.pe + p]) & mask) << (p * width) for p in range(fold.pe)) for nf in range(fold.nf)]


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


def require_mlp(net: FoldedNetwork):
    """Raise ValueError unless ``net`` is what this accelerator implements: dense layers with
    1-bit input (convolutions, pools and 8-bit input are not built in hardware yet)."""
    if not net.is_mlp:
        what = "8-bit (uint8) input" if all(l.kind == "dense" for l in net.layers) else "convolution and pool layers"
        raise ValueError(f"network {net.spec} has {what}; the accelerator generator builds dense networks with "
                         "1-bit input only (threshold or probability)")


def check_network(net: FoldedNetwork, plan: Plan):
    """Raise ValueError if ``plan`` does not fit ``net``."""
    require_mlp(net)
    if tuple(l.n_in for l in plan.layers) + (plan.n_classes,) != tuple(net.topology):
        raise ValueError(f"plan topology {[l.n_in for l in plan.layers] + [plan.n_classes]} does not match "
                         f"the network's {list(net.topology)}")
    bias = net.head.bias
    lo, hi = -(1 << (plan.bias_bits - 1)), (1 << (plan.bias_bits - 1)) - 1
    bad = [int(c) for c in ((bias < lo) | (bias > hi)).nonzero()[0]]
    if bad:
        raise ValueError(f"output bias {int(bias[bad[0]])} of class {bad[0]} does not fit the plan's "
                         f"bias_bits={plan.bias_bits} (signed range [{lo}, {hi}]); make the plan with "
                         f"bias_bits={bias_bits_for(net)} (bias_bits_for(net))")


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
    """
    cycles: tuple
    ii: Fraction
    latency: int

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
