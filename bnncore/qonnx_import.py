"""QONNX import: a binary network exported by Brevitas (``export_qonnx``) as our folded network.

``import_qonnx(path)`` reads a QONNX model of the form Brevitas writes for W1A1 networks and
folds it into a :class:`FoldedNetwork`; ``verify_qonnx`` proves the result against qonnx's own
executor (``qonnx.core.onnx_exec``) on real images, every class and every hidden bit, as
``bnn fold`` proves a fold against torch. What is read, along the graph's one path from its
input to its output:

- the input: the model's float input is ``pixel * pixel_scale + pixel_offset`` (default
  ``pixel / 255``, torchvision's ``ToTensor``), through any elementwise ``Mul``/``Add``/
  ``Sub``/``Div`` and ``Reshape``/``Flatten``/``Transpose``. A ``BipolarQuant`` there makes a
  1-bit input: its bit must be ``pixel >= level`` for one level at every position (the
  ``threshold`` input scheme); found by running the model on every pixel value. Without one,
  the first layer sees the values themselves, which must be ``k * pixel + b`` with ``k > 0``:
  the ``uint8`` scheme (an input ``Quant`` that rounds, as CNV's, is not affine and is refused);
- a layer: ``MatMul``, ``Gemm`` or ``Conv`` (stride 1, no dilation, one group) whose weights
  are constants through ``BipolarQuant``: ``±s`` with one magnitude ``s > 0`` per output
  channel; then any per-channel ``BatchNormalization``, ``Mul``, ``Add``, ``Sub``, ``Div`` (and,
  after a ``Conv``, a ``MaxPool`` before the sign: an AND pool for channels whose ops after
  the pool have a negative scale, an OR pool elsewhere), then a ``BipolarQuant`` of positive scalar scale: a hidden layer. Its threshold is
  found by bisection on qonnx's executor running exactly those nodes (the decision), as
  ``bnn fold`` bisects on torch (bnncore.thresholds);
- a ``MaxPool`` after a ``BipolarQuant``: an OR pool; kernel = stride, no padding;
  ``s * MaxPool(s * x)`` with ``s`` = ±1 per channel: a pool of AND (``s = -1``) and OR channels;
- FINN's streamlined form, which ``bnn export --qonnx`` writes (bnncore.interop), reads the
  same way: a ``MultiThreshold`` of one threshold per channel with values ±s (``out_scale``
  2s, ``out_bias`` -s) stands where a ``BipolarQuant`` would, and a model whose input is the
  raw pixels (``pixel_scale`` 1) imports as the network it was exported from;
- the last layer, with no ``BipolarQuant`` after it: the output head. Its class scores are
  ``A * dot + B_c``; they fold to our integer scores when ``A > 0`` is the same for every
  class and every ``B_c / A`` is an integer (a scalar ``TensorNorm``-like affine, or none);
- ``Reshape``/``Flatten`` of a feature map flattens in ONNX's (channel, y, x) order: the next
  layer's weight columns are permuted to ours, (y, x, channel). Any reordering the graph does
  is followed by running the reshapes on an array of positions.

Binary convolutions with the ``pads`` attribute pad with 0, which is neither +1 nor -1: refused
(an explicit ``Pad`` with the constant ±s is read as our pad bit). Everything else (another
activation, branches, a quantizer of more bits) is refused with the node's name, op type and
the reason; nothing is written. Needs ``bnncore[interop]``.

With scales that are powers of two (Brevitas' binary quantizers with ``scaling_const`` 1, as
FINN's examples use), every value before the affine ops is an exact integer multiple and the
fold is exact by construction; other scales leave float32 rounding in the model's own sums,
which the verification shows (or not) on the images it is given.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import qonnx_graph as qg
from .interop import _need, batched, model_input
from .kinds import BUILTIN, kind_named, names
from .network import FoldedNetwork, InputScheme
from .qonnx_read import QonnxImportError, read_model
from .thresholds import FoldReport, threshold_layer

__all__ = ["import_qonnx", "verify_qonnx", "QonnxImport", "QonnxImportError"]


@dataclass
class QonnxImport:
    """An imported network and what was read to make it.

    Attributes
    ----------
    net : the folded network
    report : FoldReport (per hidden layer: scales, flips, threshold range, float32 ties)
    probes : (our layer index, ONNX tensor name) of every hidden activation the model computes,
        compared bit for bit by :func:`verify_qonnx`
    input_shape : the model's input shape, batch first
    pixel_scale, pixel_offset : the model's input is ``pixel * pixel_scale + pixel_offset``
    seconds : time the import took
    """
    net: FoldedNetwork
    report: FoldReport
    probes: list
    model: object = field(repr=False)
    input_shape: tuple = ()
    pixel_scale: float = 1 / 255
    pixel_offset: float = 0.0
    path: str = ""
    seconds: float = 0.0

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """The model's float input for ``pixels`` (N, values) of uint8 in our (y, x, channel) order."""
        return model_input(self.input_shape, pixels, self.pixel_scale, self.pixel_offset)


def _pixel_map(path, model, pixel_scale, pixel_offset) -> tuple:
    """(scale, offset, where they come from): the arguments; else the model's metadata (as
    ``bnn export --qonnx`` writes it); else the pixels themselves for an input annotated UINT8
    (FINN's convention); else ``pixel / 255`` (torchvision's ``ToTensor``)."""
    from .interop import PIXEL_OFFSET_KEY, PIXEL_SCALE_KEY
    if pixel_scale is not None or pixel_offset is not None:
        return (1 / 255 if pixel_scale is None else pixel_scale), (pixel_offset or 0.0), "given"
    # qonnx's set_metadata_prop writes the graph's; onnx's tools the model's
    meta = {p.key: p.value for p in [*model.metadata_props, *getattr(model.graph, "metadata_props", [])]}
    if PIXEL_SCALE_KEY in meta or PIXEL_OFFSET_KEY in meta:
        values = []
        for key, default in ((PIXEL_SCALE_KEY, "1"), (PIXEL_OFFSET_KEY, "0")):
            try:
                values.append(float(meta.get(key, default)))
            except ValueError:
                raise QonnxImportError(f"{path}: metadata {key!r} is {meta[key][:40]!r}, not a number; give "
                                       "--pixel-scale and --pixel-offset") from None
        return values[0], values[1], "the model's metadata"
    if _uint8_input(model):
        return 1.0, 0.0, "its UINT8 input"
    return 1 / 255, 0.0, "the default"


def _uint8_input(model) -> bool:
    """Whether the model's input is annotated UINT8 (qonnx's ``finn_datatype``): whole pixels."""
    name = model.graph.input[0].name
    return any(a.tensor_name == name and any(q.key == "finn_datatype" and q.value == "UINT8"
                                             for q in a.quant_parameter_tensor_names)
               for a in model.graph.quantization_annotation)


def import_qonnx(path, *, pixel_scale: float | None = None, pixel_offset: float | None = None,
                 log=None) -> QonnxImport:
    """Read the QONNX model at ``path`` (see the module docstring); return a :class:`QonnxImport`.
    Nothing is verified here: :func:`verify_qonnx` does that on images. The file is checked
    first (``read_model``); every error of qonnx or onnxruntime on it becomes a
    QonnxImportError of one line. ``pixel_scale``, ``pixel_offset``: the model's input is
    ``pixel * pixel_scale + pixel_offset``; by default what the model records (``bnn export
    --qonnx`` does), the pixels themselves for a UINT8 input, else ``pixel / 255``."""
    _need()
    model = read_model(path)
    pixel_scale, pixel_offset, source = _pixel_map(path, model, pixel_scale, pixel_offset)
    for name, v in (("pixel_scale", pixel_scale), ("pixel_offset", pixel_offset)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 1e6:
            raise QonnxImportError(f"{name} ({source}) must be a finite number of magnitude at most 1e6, not {v!r}")
    if not pixel_scale > 0:
        raise QonnxImportError(f"pixel_scale ({source}) must be positive (a larger pixel is a larger input), "
                               f"not {pixel_scale!r}")
    if _uint8_input(model) and not (float(pixel_scale).is_integer() and float(pixel_offset).is_integer()):
        raise QonnxImportError(f"{path}: input {model.graph.input[0].name!r} is annotated UINT8 (whole pixel values), "
                               f"but pixel * {pixel_scale:.6g} + {pixel_offset:.6g} ({source}) is not whole; leave "
                               "out --pixel-scale and --pixel-offset (the model's input is the pixels themselves)")
    if log:
        log(f"input: pixel * {pixel_scale:.6g} + {pixel_offset:.6g} ({source})")
    try:
        return _import(path, model, pixel_scale, pixel_offset, log)
    except (QonnxImportError, MemoryError):
        raise
    except Exception as e:   # qonnx's and onnxruntime's errors on a model that is malformed
        text = " ".join(str(e).split())
        raise QonnxImportError(f"{path}: qonnx or onnxruntime cannot run the model: {type(e).__name__}: "
                               f"{text[:400]}") from None


def _import(path, model, pixel_scale, pixel_offset, log) -> QonnxImport:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model
    log = log or (lambda line: None)
    start = time.perf_counter()
    try:
        model = cleanup_model(ModelWrapper(model))
    except Exception as e:
        raise QonnxImportError(f"{path}: not a model qonnx can read and clean up: {' '.join(str(e).split())[:400]}") from None
    graph = qg.Graph(model)
    in_shape = graph.shape(model.graph.input[0].name)
    if len(in_shape) not in (2, 3, 4):
        raise QonnxImportError(f"{path}: input {model.graph.input[0].name!r} has shape {list(in_shape)}; expected "
                               "(batch, values), (batch, height, width) or (batch, channels, height, width)")
    dims = in_shape[1:]
    image = dims if len(dims) == 3 else (1, *dims) if len(dims) == 2 else None
    path_nodes = graph.path
    pos = 0
    where = qg.positions_of(image).reshape(dims) if image else np.arange(dims[0])
    while pos < len(path_nodes) and (path_nodes[pos].op_type not in qg.LINEAR | qg.ACT | {"Pad"}
                                     or qg.input_quantizer(graph, path_nodes[pos])):
        n = path_nodes[pos]
        if n.op_type in qg.RESHAPE:
            where = qg.move_positions(n, graph, where)
        elif n.op_type not in qg.AFFINE - {"BatchNormalization"} | qg.PASS | {"Quant", "MultiThreshold"}:
            raise QonnxImportError(f"{qg.node_name(n)}: before the first layer bnncore reads elementwise Mul, "
                                   "Add, Sub, Div, reshapes and an input quantizer only")
        pos += 1
    if pos == len(path_nodes):
        raise QonnxImportError(f"{path}: no MatMul, Gemm or Conv: nothing to fold")

    # The input: the model on every pixel value at once (image p: every pixel = p).
    batched_model = batched(model, 256)
    pixels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], math.prod(dims), axis=1)
    first = path_nodes[pos]
    binary_input = first.op_type in qg.ACT
    values = qg.execute(batched_model, model_input(in_shape, pixels, pixel_scale, pixel_offset), full=True)
    # cleanup renames nothing here (the model was cleaned above), so tensor names carry over
    table = values[first.output[0] if binary_input else first.input[0]].reshape(256, -1).astype(np.float64)
    if binary_input:
        scale_in = qg.act_scale(graph, first)
        fires = table > 0
        level = int(np.argmax(fires[:, 0])) if fires[:, 0].any() else 256
        expect = np.arange(256)[:, None] >= level
        if not (fires == expect).all():
            raise QonnxImportError(f"{qg.node_name(first)}: the input bit is not pixel >= one level at every position "
                                   f"(pixel -> model input: * {pixel_scale} + {pixel_offset}; per-channel "
                                   "normalisation, or --pixel-scale/--pixel-offset not the model's?)")
        scheme = InputScheme("threshold", level)
        in_map = None
        pos += 1
        log(f"input: {first.op_type}, bit = pixel >= {level}")
    else:
        if not (table == table[:, :1]).all():
            raise QonnxImportError(f"{qg.node_name(first)}: its input differs between positions for the same pixel "
                                   "(per-channel normalisation?); bnncore's 8-bit first layer sees the pixels themselves")
        v = table[:, 0]
        k, b = (v[255] - v[0]) / 255, v[0]
        if k > 0 and np.abs(v - (k * np.arange(256) + b)).max() <= 1e-6 * max(1.0, np.abs(v).max()):
            scheme = InputScheme("uint8")
            log(f"input: 8-bit, the model sees {k:.6g} * pixel + {b:.6g}")
        else:    # an input quantizer (CNV's rounding 2x - 1): levels of one step, carried as a table
            levels, k, b = _input_levels(first, v)
            scheme = InputScheme("table", table=tuple(int(t) for t in levels))
            log(f"input: 8-bit table of {len(set(levels))} levels, the model sees {k:.6g} * table[pixel] + {b:.6g}")
        scale_in, in_map = 1.0, (k, b)

    r = Reader(graph, path_nodes, pos, where, scale_in, in_map, image is not None and where.ndim == 3, log)
    rules = [_generic_rule] + [k.qonnx_rule for k in (*BUILTIN.values(), *map(kind_named, names()))
                               if getattr(k, "qonnx_rule", None)]
    while r.pos < len(path_nodes) and r.head is None:
        n = path_nodes[r.pos]
        if not any(rule(r, n) for rule in rules):
            raise QonnxImportError(f"{qg.node_name(n)}: not a layer bnncore folds (MatMul, Gemm, Conv, then "
                                   "BatchNormalization or elementwise affine ops, then BipolarQuant)")
    layers, probes, reports, head, pos = r.layers, r.probes, r.reports, r.head, r.pos
    if head is None:
        raise QonnxImportError(f"{path}: the graph ends in an activation; bnncore expects the last layer to be "
                               "a MatMul or Gemm giving the class scores")
    if pos != len(path_nodes):
        raise QonnxImportError(f"{qg.node_name(path_nodes[pos])}: after the output layer; bnncore's output is the "
                               "class scores")
    try:
        net = FoldedNetwork(tuple(layers), head, scheme)
    except ValueError as e:
        raise QonnxImportError(f"{path}: {e}") from None
    report = FoldReport(reports, (int(head.bias.min()), int(head.bias.max())))
    return QonnxImport(net, report, probes, model, tuple(in_shape), pixel_scale, pixel_offset, str(path),
                       time.perf_counter() - start)


def _input_levels(node, v: np.ndarray) -> tuple:
    """(table, step, offset) with ``v[pixel] = step * table[pixel] + offset`` exactly, table in
    0..255: the model's first-layer input on every pixel value, as levels of one step."""
    lo, distinct = float(v.min()), np.unique(v)
    step = float(np.diff(distinct).min()) if len(distinct) > 1 else 0.0
    table = np.rint((v - lo) / step) if step > 0 else np.zeros(256)
    if step <= 0 or table.max() > 255 or np.abs(step * table + lo - v).max() > 1e-6 * max(1.0, np.abs(v).max()):
        raise QonnxImportError(f"{qg.node_name(node)}: its input is neither k * pixel + b nor at most 256 levels of "
                               "one step (an input quantizer of up to 8 bits); bnncore's 8-bit first layer computes on "
                               "the pixels, or on a table of them")
    return table.astype(np.int64), step, lo


@dataclass
class Linear:
    """A weight layer's nodes as ``Reader.linear`` reads them: its weight bits in our order, the
    linear op's output for an integer dot (``scale * dot + offset``), its ``conv`` attributes
    (padding, pad value; None for MatMul and Gemm), the nodes after it (``post``) and the index
    of its activation (``end``; the path's length for the output head)."""
    node: object
    name: str
    in_bits: int
    bits: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    conv: dict | None
    pad: tuple | int
    post: list
    end: int
    last: bool


class Reader:
    """The import's place on the model's path and what it has read: the layer kinds' rules
    (``qonnx_rule(reader, node)`` of bnncore/kinds/<kind>.py, or of a registered kind) read
    nodes from it and add their layers to it, and return whether they took the node.

    ``shape`` is the map (or vector) the next layer reads, ``where`` the position in our
    (y, x, channel) order of each of the model's values there, ``spatial`` whether it is a
    feature map, ``scale_in`` the scale of the activation before, ``in_map`` the (k, b) of an
    8-bit input (None for a 1-bit one), ``pad`` a Pad node read for the next convolution."""

    def __init__(self, graph, nodes, pos, where, scale_in, in_map, spatial, log):
        self.graph, self.nodes, self.pos, self.log = graph, nodes, pos, log
        self.where, self.shape, self.spatial = where, tuple(where.shape), spatial
        self.scale_in, self.in_map, self.pad = scale_in, in_map, 0
        self.layers, self.probes, self.reports, self.head = [], [], [], None

    def ops(self, k: int) -> list:
        """The op types of the next ``k`` nodes, from the current one (fewer at the path's end)."""
        return [n.op_type for n in self.nodes[self.pos:self.pos + k]]

    def add(self, layer, probe: str | None = None):
        """Append ``layer``; ``probe``: the tensor of the model that holds its output bits."""
        self.layers.append(layer)
        self.shape = tuple(layer.out_shape)
        self.spatial = len(self.shape) == 3
        self.where = qg.positions_of(self.shape) if self.spatial else np.arange(self.shape[0])
        if probe is not None:
            self.probes.append((len(self.layers) - 1, probe))

    def is_last(self) -> bool:
        """Whether the linear op at the current node is the output head: no activation after it
        (only the ops a layer folds, up to the path's end)."""
        for m in self.nodes[self.pos + 1:]:
            if m.op_type in qg.ACT or m.op_type not in qg.AFFINE | qg.PASS | {"MaxPool"}:
                return False
        return True

    def linear(self, n) -> Linear:
        """Read the linear op ``n`` (the current node) and the nodes after it, up to and
        including its activation (a hidden layer) or to the path's end (the head)."""
        index = len(self.layers)
        in_bits = 8 if index == 0 and self.in_map is not None else 1
        bits, mag, offset, conv = qg.layer_weights(self.graph, n, self.where, self.spatial, in_bits, self.pad)
        pad, self.pad = self.pad, 0
        channels = bits.shape[0]
        fan_in = int(np.prod(bits.shape[1:]))
        # the linear op's output for an integer dot: scale * dot + offset (see the module docstring)
        if in_bits == 1:
            scale, offset = self.scale_in * mag, offset
        else:
            k_, b_ = self.in_map
            zeros = (bits == 0).reshape(channels, -1).sum(1)
            scale, offset = mag * k_, offset + mag * b_ * (fan_in - 2 * zeros)
        post, end = [], self.pos + 1
        while end < len(self.nodes) and self.nodes[end].op_type not in qg.ACT:
            m = self.nodes[end]
            if m.op_type not in qg.AFFINE | qg.PASS | {"MaxPool"}:
                raise QonnxImportError(f"{qg.node_name(m)}: between {qg.node_name(n)} and its activation bnncore "
                                       "folds BatchNormalization, elementwise Mul/Add/Sub/Div (one value per channel) "
                                       "and a MaxPool; a binary network's activation is a BipolarQuant")
            post.append(m)
            end += 1
        return Linear(n, f"layer {index}", in_bits, bits, scale, offset, conv, pad, post, end, end == len(self.nodes))

    def refuse_head(self, lin: Linear):
        raise QonnxImportError(f"{qg.node_name(lin.node)}: the last layer must be fully connected (the output head) "
                               "and read bits (a single-layer network with 8-bit input needs a hidden layer)")

    def thresholds(self, lin: Linear, kind: str) -> tuple:
        """(weight rows, thresholds, the layer's FoldReport entry) of a hidden layer: its
        decision (the nodes after it, its activation) bisected on qonnx's executor."""
        n, quant = lin.node, self.nodes[lin.end]
        rank = len(self.graph.shape(n.output[0])[1:]) + 1
        a, c = qg.affine_ops(self.graph, lin.post, lin.bits.shape[0], rank)
        decide = qg.decider(self.graph, lin.post + [quant], n.output[0], quant.output[0], lin.scale, lin.offset)
        rows, t, _, rep = threshold_layer(decide, a * lin.scale, a * lin.offset + c, lin.bits, lin.in_bits, lin.name,
                                          kind=kind)
        return rows, t, rep

    def done(self, lin: Linear, rep):
        """After a hidden layer (and any pool in it): its probe, report and activation's scale."""
        quant = self.nodes[lin.end]
        self.probes.append((len(self.layers) - 1, quant.output[0]))
        self.reports.append(rep)
        self.scale_in = qg.act_scale(self.graph, quant)
        self.log(rep.line())
        self.pos = lin.end + 1


def _generic_rule(r: Reader, n) -> bool:
    """What is not a layer: identities, reshapes (they move positions) and a Pad (for the next
    convolution)."""
    op = n.op_type
    if op in qg.PASS:
        pass
    elif op in qg.RESHAPE:
        r.where = qg.move_positions(n, r.graph, r.where)
        r.spatial = False if r.where.ndim != 3 else r.spatial
    elif op == "Pad":
        r.pad = qg.read_pad(r.graph, n, r.scale_in, r.spatial, r.in_map if not r.layers else None)
    else:
        return False
    r.pos += 1
    return True


def verify_qonnx(imported: QonnxImport, pixels: np.ndarray, labels=None, batch_size: int = 500, progress=None) -> dict:
    """Run qonnx's executor on the original model and our golden model on ``pixels`` (N, values)
    of uint8 in our (y, x, channel) order; count the images whose class differs and the hidden
    bits that differ in every activation the model computes (a conv followed by a pool before
    its BatchNorm has no activation of its own in the model: its pool's is compared).
    ``progress(images done)`` is called after each batch."""
    from .golden import infer
    net = imported.net
    pixels = np.asarray(pixels)
    diffs = np.zeros(len(net.layers), np.int64)
    compared, classes, golds = 0, [], []
    models = {}
    for i in range(0, len(pixels), batch_size):
        chunk = pixels[i:i + batch_size]
        if len(chunk) not in models:
            models[len(chunk)] = batched(imported.model, len(chunk))
        model = models[len(chunk)]
        try:
            ctx = qg.execute(model, imported.model_input(chunk), full=True)
        except MemoryError:
            raise
        except Exception as e:   # onnxruntime's errors on a model that imported but does not run
            raise QonnxImportError(f"qonnx's executor failed on the model: {type(e).__name__}: "
                                   f"{' '.join(str(e).split())[:400]}") from None
        scores = ctx[model.graph.output[0].name].reshape(len(chunk), -1)
        gold = infer(net, net.input.bits(chunk), return_layers=True)
        classes.append(scores.argmax(1))
        golds.append(gold.classes)
        for layer, tensor in imported.probes:
            bits = (ctx[tensor] > 0).astype(np.uint8)
            if bits.ndim == 4:
                bits = bits.transpose(0, 2, 3, 1)
            bits = bits.reshape(len(chunk), -1)
            ours = gold.activations[layer].reshape(len(chunk), -1)
            diffs[layer] += int((bits != ours).sum())
            compared += bits.size
        if progress:
            progress(i + len(chunk))
    classes = np.concatenate(classes)
    golds = np.concatenate(golds)
    mismatched = int((classes != golds).sum())
    result = {"images": int(len(pixels)), "class_mismatches": mismatched,
              "hidden_bit_mismatches": int(diffs.sum()), "hidden_bit_mismatches_per_layer": diffs.tolist(),
              "hidden_bits_compared": int(compared)}
    if labels is not None:
        labels = np.asarray(labels)
        result["qonnx_accuracy"] = float((classes == labels).mean())
        result["folded_accuracy"] = float((golds == labels).mean())
    return result
