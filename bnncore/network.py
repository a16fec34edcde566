"""The folded network: the one hand-off between software and hardware.

Bits: a weight or activation bit of 1 stands for +1, 0 for -1. For a neuron with n inputs,
x and w in {-1, +1}^n encoded as bits::

    popcount(xnor(x, w)) = number of positions where x and w agree
    dot(x, w)            = 2 * popcount(xnor(x, w)) - n

A folded network is a sequence of typed layers, then an output head:

``DenseLayer``
    Neuron j fires (outputs bit 1, i.e. +1) exactly when ``sum(x, w_j) >= thresholds[j]``.
    For 1-bit inputs the sum is ``popcount(xnor(x, w_j))``, in [0, n]; thresholds are in
    [0, n + 1]: 0 fires always, n + 1 never.
``ConvLayer``
    The same rule for each output channel at each output position, over the window of
    kernel x kernel positions and all input channels; stride 1, ``padding`` positions of the
    constant ``pad_value`` around the input. Weights are laid out
    ``[out channel][ky][kx][in channel]``: channels innermost, the order a sliding window
    streams a feature map.
``PoolLayer``
    ``size`` x ``size`` max-pool of bits with stride ``size`` (a trailing row or column that
    does not fill a window is dropped): per channel the OR of the window's bits, or the AND
    where ``modes[c]`` is 1 (a max-pool before a BatchNorm of negative scale).
``OutputHead``
    ``score_c = 2 * popcount(xnor(x, w_c)) - n + bias_c`` (an integer); the predicted class
    is the lowest index c with the highest score.

Feature maps are (height, width, channels) with channels innermost, and flatten in that
(y, x, channel) order: a dense layer after a convolution has its weight columns in that
order, so the hardware never reorders a feature map.

8-bit input (``InputScheme('uint8')``): the first layer sees raw pixels x in 0..255. Its
"popcount" generalises bit for bit: ``xnor8(x, w) = x`` for a weight bit 1 and ``255 - x`` for
a weight bit 0 (the XNOR of x's eight bits with w), so ``sum(x, w) = sum_i xnor8(x_i, w_i)``
in [0, 255 n] is the weighted sum of the eight bit planes' popcounts, and equals
``dot(x, w) + 255 * zeros(w)``. Thresholds are in [0, 255 n + 1].

Nothing here imports torch: ``hw/`` and ``sim/`` consume this.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import numpy as np

from .kinds import kind_of, layer_kind
from .kinds.base import NetworkError, shape_str
from .kinds.conv import ConvLayer
from .kinds.dense import DenseLayer, FoldedLayer
from .kinds.output import OutputHead
from .kinds.pool import PoolLayer

__all__ = ["InputScheme", "DenseLayer", "FoldedLayer", "ConvLayer", "PoolLayer", "OutputHead", "FoldedNetwork",
           "NetworkError", "summary", "summary_table", "shape_str"]


# --- Input ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputScheme:
    """How uint8 pixels become the first layer's input, at inference (and in hardware).

    ``threshold``: bit = pixel >= level. ``probability``: trained on bits sampled with
    P(1) = pixel/255; inference uses the most likely bit, pixel >= 128. ``uint8``: the
    pixels themselves, 8 bits each. ``table``: 8 bits each, ``table[pixel]`` (256 values in
    0..255): an input quantizer that is not affine in the pixel, as Brevitas CNV's rounding
    ``2x - 1``; the first layer then computes as for ``uint8`` on the table's values.
    """
    scheme: str = "threshold"
    level: int = 128
    table: tuple = ()

    def __post_init__(self):
        if self.scheme not in ("threshold", "probability", "uint8", "table"):
            raise NetworkError(f"input: scheme must be 'threshold', 'probability', 'uint8' or 'table' (a folded "
                               f"network has no float input), not {self.scheme!r}")
        if not isinstance(self.level, int) or isinstance(self.level, bool) or not 0 <= self.level <= 256:
            raise NetworkError(f"input: threshold level must be an integer in [0, 256], not {self.level!r}")
        table = tuple(self.table)
        if self.scheme == "table":
            if len(table) != 256 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                            and 0 <= v <= 255 for v in table):
                raise NetworkError("input: a table input needs 256 integers in [0, 255], one per pixel value, not "
                                   f"{len(table)} values")
            table = tuple(int(v) for v in table)
        elif table:
            raise NetworkError(f"input: only a 'table' input has a table, not {self.scheme!r}")
        object.__setattr__(self, "table", table)

    @property
    def binary(self) -> bool:
        return self.scheme in ("threshold", "probability")

    @property
    def value_bits(self) -> int:
        """Bits per input value: 1, or 8 for raw pixels."""
        return 1 if self.binary else 8

    def bits(self, images: np.ndarray) -> np.ndarray:
        """The network's input (uint8) for uint8 images: 0/1 bits, or the pixels for 'uint8'."""
        images = np.asarray(images)
        if self.scheme == "table":
            return np.asarray(self.table, np.uint8)[images.astype(np.uint8)]
        if not self.binary:
            return images.astype(np.uint8)
        level = self.level if self.scheme == "threshold" else 128
        return (images >= level).astype(np.uint8)

    encode = bits

    def random_pixels(self, n: int, values: int, seed: int = 0) -> np.ndarray:
        """``n`` random images of ``values`` pixels that exercise this input: for a 1-bit input
        random bits (each pixel just below or at the level, where a level leaves both), for
        an 8-bit one uniform pixels."""
        rng = np.random.default_rng(seed)
        level = self.level if self.scheme == "threshold" else 128
        if not self.binary or not 0 < level < 256:
            return rng.integers(0, 256, (n, values), dtype=np.uint8)
        return np.where(rng.integers(0, 2, (n, values)) == 1, level, level - 1).astype(np.uint8)


def _as_input(inp) -> InputScheme:
    if isinstance(inp, InputScheme):
        return inp
    to_network = getattr(inp, "network_input", None)   # data.InputBinarization, less its training-only fields
    if to_network is not None:
        try:
            return to_network()
        except ValueError as e:
            raise NetworkError(f"input: {e}") from None
    raise NetworkError(f"input: expected an InputScheme, got {type(inp).__name__}")


# --- Layers ---------------------------------------------------------------------------------


_HIDDEN = (DenseLayer, ConvLayer, PoolLayer)


def _graph(stages: list, names: list, inputs) -> tuple:
    """``inputs`` checked as FoldedNetwork's graph of ``stages`` (empty: the chain)."""
    if not inputs:
        inputs = tuple((i - 1,) for i in range(len(stages)))
    if not isinstance(inputs, (tuple, list)) or len(inputs) != len(stages):
        raise NetworkError(f"inputs: expected one tuple of stage indices per stage ({len(stages)}: the layers, then "
                           f"the head), got {inputs!r}")
    graph = []
    for i, srcs in enumerate(inputs):
        if not isinstance(srcs, (tuple, list)) or not all(isinstance(j, int) and not isinstance(j, bool) for j in srcs):
            raise NetworkError(f"{names[i]}: its inputs must be a tuple of stage indices, got {srcs!r}")
        kind = kind_of(stages[i])
        arity = getattr(kind, "arity", 1) if kind else 1
        if len(srcs) != arity:
            raise NetworkError(f"{names[i]}: reads {arity} map{'s' if arity > 1 else ''}, got inputs {tuple(srcs)}")
        bad = [j for j in srcs if not (-1 <= j < i) or (j == -1) != (i == 0)]
        if bad:
            raise NetworkError(f"{names[i]}: reads stage {bad[0]}; a stage reads stages before it (the first one "
                               "the network's input, -1, and no other stage reads that)")
        graph.append(tuple(srcs))
    return tuple(graph)


@dataclass(frozen=True, eq=False)
class FoldedNetwork:
    """Hidden layers, output head and the input scheme they expect.

    Attributes
    ----------
    layers : tuple of DenseLayer, ConvLayer, PoolLayer (possibly empty: a single-layer network)
    head : OutputHead
    input : InputScheme ('threshold', 'probability', 'uint8' or 'table'; inference uses
        ``input.bits(images)``). A ``data.InputBinarization`` is accepted and reduced to its
        InputScheme (training-only fields such as ``repeats`` are not part of the network).
    inputs : the graph: per stage (the layers, then the head), a tuple of the stages it reads,
        by index into ``layers``, -1 for the network's input (the first layer's only). Empty
        (the default) is the chain, each stage reading the one before; a chain given as a graph
        is stored empty. A stage reads one map, except a registered kind of ``arity`` n
        (bnncore.kinds), which reads n of the same shape: a residual join. ``graph`` gives it
        whole.
    """
    layers: tuple
    head: OutputHead
    input: InputScheme = InputScheme()
    inputs: tuple = ()

    def __post_init__(self):
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, _HIDDEN) and kind_of(layer) is None:
                raise NetworkError(f"layer {i}: expected a DenseLayer, ConvLayer, PoolLayer or a layer of a registered "
                                   f"kind (bnncore.kinds), got {type(layer).__name__}")
        if not isinstance(self.head, OutputHead):
            raise NetworkError(f"head: expected an OutputHead, got {type(self.head).__name__}")
        inp = _as_input(self.input)
        stages = list(layers) + [self.head]
        names = [f"layer {i}" for i in range(len(layers))] + ["output head"]
        if not stages[0].has_weights:
            raise NetworkError(f"layer 0: a network cannot start with a {stages[0].kind}; it follows a convolution")
        want = inp.value_bits
        if stages[0].in_bits != want:
            raise NetworkError(f"{names[0]}: has {stages[0].in_bits}-bit inputs, but the {inp.scheme!r} input gives "
                               f"{want}-bit values" + ("" if want == 1 else " (an output head needs 1-bit inputs; "
                                                       "add a hidden layer)"))
        graph = _graph(stages, names, self.inputs)
        for i in range(1, len(stages)):
            s = stages[i]
            if getattr(s, "in_bits", 1) != 1:
                raise NetworkError(f"{names[i]}: only the first layer can have {s.in_bits}-bit inputs; "
                                   "later layers see bits")
            for src in graph[i]:
                prev = stages[src]
                if len(s.in_shape) == 3:         # a kind that reads a feature map
                    if len(prev.out_shape) != 3 or prev.out_shape != s.in_shape:
                        raise NetworkError(f"{names[i]}: expects input {shape_str(s.in_shape)}, but {names[src]} "
                                           f"gives {shape_str(prev.out_shape)}")
                elif s.n_in != prev.n_out_values:
                    raise NetworkError(f"{names[i]}: has {s.n_in} inputs, expected {prev.n_out_values} (the outputs "
                                       f"of layer {src}{', flattened' if len(prev.out_shape) == 3 else ''})")
        # unnamed layers are named by position, for messages and reports
        layers = tuple(replace(l, name=f"layer {i}") if l.name == "layer" else l for i, l in enumerate(layers))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "input", inp)
        chain = tuple((i - 1,) for i in range(len(stages)))
        object.__setattr__(self, "inputs", () if graph == chain else graph)

    @property
    def graph(self) -> tuple:
        """Per stage (layers, then the head), the indices of the stages it reads (-1: the input)."""
        return self.inputs or tuple((i - 1,) for i in range(len(self.stages)))

    @property
    def is_chain(self) -> bool:
        """Each stage reads the one before it: what the accelerator streams."""
        return not self.inputs

    @property
    def is_mlp(self) -> bool:
        """Dense layers only, 1-bit input: what the MLP accelerator (hw/) implements."""
        return all(isinstance(l, DenseLayer) for l in self.layers) and self.input.binary and self.is_chain

    @property
    def in_shape(self) -> tuple:
        """The input's shape: (n,) for a dense first layer, (channels, height, width) for a conv."""
        return self.stages[0].in_shape

    @property
    def n_inputs(self) -> int:
        """Input values per image, in (y, x, channel) order."""
        return math.prod(self.in_shape)

    @property
    def topology(self) -> tuple:
        """Layer sizes (n_in, hidden..., classes) of a dense network; a NetworkError otherwise."""
        if not all(isinstance(l, DenseLayer) for l in self.layers):
            raise NetworkError(f"network {self.spec} is convolutional: it has no MLP topology (layer sizes)")
        return (self.stages[0].n_in,) + tuple(l.n_out for l in self.layers) + (self.head.n_out,)

    @property
    def spec(self) -> str:
        """The topology string: '784-256-10', or '1x28x28-32c3p1-mp2-10' with convolutions."""
        if all(isinstance(l, DenseLayer) for l in self.layers):
            return "-".join(map(str, self.topology))
        parts = [shape_str(self.in_shape)]
        for i, l in enumerate(self.layers):
            if self.inputs and self.graph[i] != (i - 1,):
                parts.append(f"<{','.join(map(str, self.graph[i]))}>")
            parts.append(layer_kind(l).token(l))
        return "-".join(parts + [str(self.head.n_out)])

    @property
    def stages(self) -> tuple:
        """The hidden layers, then the head."""
        return self.layers + (self.head,)

    @property
    def weight_layers(self) -> tuple:
        """The layers that have weights (not pools), head last: one ROM each."""
        return tuple(s for s in self.stages if s.has_weights)

    def __eq__(self, other):
        return (isinstance(other, FoldedNetwork) and self.layers == other.layers
                and self.head == other.head and self.input == other.input and self.inputs == other.inputs)

    def digest(self) -> str:
        """sha256 of what the network computes: the input scheme, then per layer its kind,
        shape, weight bits and thresholds (or biases, or pool modes). Equal networks, equal
        digests, whatever files they were read from; names do not count."""
        h = hashlib.sha256(f"bnncore-network/1 {self.input.scheme} {self.input.level}".encode())
        if self.input.table:
            h.update(bytes(self.input.table))
        for s in self.stages:
            h.update(layer_kind(s).hashed(s))
        if self.inputs:
            h.update(f";graph {self.inputs}".encode())
        return h.hexdigest()

    def __repr__(self):
        return (f"FoldedNetwork({self.spec}, input={self.input.scheme}"
                f"{'@' + str(self.input.level) if self.input.scheme == 'threshold' else ''})")


# --- Summary --------------------------------------------------------------------------------

def summary(net: FoldedNetwork) -> dict:
    """Per-layer shapes, sizes, operations and the bit widths the hardware needs, with totals
    (Larq-style)."""
    rows = []
    for s in net.stages:
        row = {"name": s.name, "kind": s.kind, "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
               "n_in": getattr(s, "fan_in", math.prod(s.in_shape)), "n_out": getattr(s, "n_out", s.in_shape[0])}
        if not s.has_weights:
            row.update(weight_bits=0, weight_kib=0.0, macs_per_image=0, folded_bits=0, float32_bits=0,
                       value_min=0, value_max=0)
        row.update(layer_kind(s).summary_fields(s))
        rows.append(row)
    total = {k: sum(r[k] for r in rows) for k in ("weight_bits", "weight_kib", "macs_per_image",
                                                    "folded_bits", "float32_bits")}
    total["compression_vs_float32"] = total["float32_bits"] / total["folded_bits"]
    return {"topology": net.spec, "input": net.input.scheme, "layers": rows, "total": total}


def summary_table(net: FoldedNetwork) -> str:
    s = summary(net)
    head = f"{'layer':<10} {'kind':<6} {'in':>9} {'out':>9} {'weight bits':>12} {'KiB':>8} {'XNOR ops/img':>13} " \
           f"{'thr/bias range':>18} {'sum bits':>8} {'thr bits':>8}"
    lines = [f"FoldedNetwork {s['topology']}, {s['input']} input", head, "-" * len(head)]
    for r in s["layers"]:
        if not r["weight_bits"]:
            extra = (f"{r['and_channels']} AND / {r['in_shape'][0] - r['and_channels']} OR channels"
                     if "and_channels" in r else r.get("note", ""))
            lines.append(f"{r['name']:<10} {r['kind']:<6} {shape_str(r['in_shape']):>9} {shape_str(r['out_shape']):>9} "
                         f"{'':>12} {'':>8} {'':>13} {extra:>18}")
            continue
        rng = f"[{r['value_min']}, {r['value_max']}]"
        width = r.get("threshold_bits", r.get("score_bits"))
        kind = r["kind"] + ("/8b" if r.get("in_bits") == 8 else "")
        lines.append(f"{r['name']:<10} {kind:<6} {shape_str(r['in_shape']):>9} {shape_str(r['out_shape']):>9} "
                     f"{r['weight_bits']:>12,} {r['weight_kib']:>8.1f} {r['macs_per_image']:>13,} {rng:>18} "
                     f"{r['popcount_bits']:>8} {width:>8}")
    t = s["total"]
    lines.append("-" * len(head))
    lines.append(f"{'total':<10} {'':<6} {'':>9} {'':>9} {t['weight_bits']:>12,} {t['weight_kib']:>8.1f} "
                 f"{t['macs_per_image']:>13,}")
    lines.append(f"parameters: {t['folded_bits'] / 8 / 1024:.1f} KiB folded vs {t['float32_bits'] / 8 / 1024:.1f} KiB "
                 f"float32 (weights + BatchNorm): {t['compression_vs_float32']:.1f}x smaller")
    lines.append("(output layer: score bits instead of threshold bits; score = 2 * popcount - n + bias)")
    return "\n".join(lines)
