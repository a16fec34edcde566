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
from pathlib import Path

import numpy as np

from .errors import BnnError
from .interop import _need, batched, model_input
from .network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer
from .thresholds import FoldReport, threshold_layer

__all__ = ["import_qonnx", "verify_qonnx", "QonnxImport", "QonnxImportError"]

LINEAR = {"MatMul", "Gemm", "Conv"}
ACT = {"BipolarQuant", "MultiThreshold"}        # a binary activation: Brevitas', or FINN's streamlined form
AFFINE = {"Add", "Sub", "Mul", "Div", "BatchNormalization"}
RESHAPE = {"Reshape", "Flatten", "Transpose"}
PASS = {"Identity", "Dropout"}


class QonnxImportError(BnnError, ValueError):
    """A QONNX model that does not fold exactly to our binary network."""


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


def _node_name(n) -> str:
    return f"node {n.name or n.output[0]!r} ({n.op_type})"


def _attrs(n) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in n.attribute}


class _Graph:
    """The model's one path from input to output, with its constants evaluated."""

    def __init__(self, model):
        self.model = model
        g = model.graph
        if len(g.input) != 1 or len(g.output) != 1:
            raise QonnxImportError(f"the model has {len(g.input)} inputs and {len(g.output)} outputs; "
                                   "expected one image input and one output of class scores")
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self._consts = {}
        self.path = self._path()

    def is_const(self, name: str) -> bool:
        if not name or self.model.get_initializer(name) is not None:
            return True
        n = self.producer.get(name)
        return n is not None and all(self.is_const(i) for i in n.input)

    def const(self, name: str, user) -> np.ndarray:
        """The value of a constant input of ``user``: an initializer, or a ``BipolarQuant`` of one."""
        if name in self._consts:
            return self._consts[name]
        init = self.model.get_initializer(name)
        if init is not None:
            value = np.asarray(init)
        else:
            n = self.producer.get(name)
            if n is None or not self.is_const(name):
                raise QonnxImportError(f"{_node_name(user)}: input {name!r} is not a constant")
            if n.op_type == "BipolarQuant":
                from qonnx.custom_op.general.bipolar_quant import binary_quant
                value = binary_quant(self.const(n.input[0], n), self.const(n.input[1], n))
            elif n.op_type in PASS:
                value = self.const(n.input[0], n)
            else:
                raise QonnxImportError(f"{_node_name(n)}: computes a constant that {_node_name(user)} uses; "
                                       "bnncore reads initializers and their BipolarQuant only (weights must be "
                                       "1-bit: a Quant of more bits is not binary)")
        self._consts[name] = value
        return value

    def _path(self) -> list:
        g = self.model.graph
        cur, end, path = g.input[0].name, g.output[0].name, []
        while cur != end:
            users = self.consumers.get(cur, [])
            if len(users) != 1:
                where = f"tensor {cur!r}"
                if not users:
                    raise QonnxImportError(f"{where} is used by no node, and the output {end!r} is not reached")
                raise QonnxImportError(f"{where} feeds {len(users)} nodes ({', '.join(_node_name(u) for u in users)}): "
                                       "bnncore folds a chain of layers; branches (residual connections, "
                                       "concatenations) are not folded")
            n = users[0]
            dynamic = [i for i in n.input if not self.is_const(i)]
            if dynamic != [cur]:
                raise QonnxImportError(f"{_node_name(n)}: takes {len(dynamic)} computed inputs "
                                       f"({', '.join(map(repr, dynamic))}); bnncore folds a chain of layers")
            path.append(n)
            cur = n.output[0]
        return path

    def shape(self, name: str) -> tuple:
        s = self.model.get_tensor_shape(name)
        if s is None:
            raise QonnxImportError(f"tensor {name!r} has no known shape (run qonnx's cleanup or InferShapes)")
        return tuple(s)


def _per_channel(value, channels: int, rank: int, n) -> np.ndarray:
    """A constant operand of an elementwise op as one value per channel (axis 1 of a tensor of
    ``rank`` dimensions, batch first); refused when it varies along another axis."""
    v = np.asarray(value, np.float64)
    if v.ndim > rank:
        raise QonnxImportError(f"{_node_name(n)}: operand of shape {v.shape} does not broadcast to rank {rank}")
    v = v.reshape((1,) * (rank - v.ndim) + v.shape)
    for axis, size in enumerate(v.shape):
        if axis != 1 and size != 1:
            raise QonnxImportError(f"{_node_name(n)}: operand of shape {v.shape} varies along axis {axis}; "
                                   "bnncore folds one scale and offset per channel")
    if v.shape[1] not in (1, channels):
        raise QonnxImportError(f"{_node_name(n)}: operand of shape {v.shape} for {channels} channels")
    return np.broadcast_to(v.reshape(-1), (channels,)).copy()


def _affine(graph: _Graph, nodes: list, channels: int, rank: int):
    """float64 (a, c) per channel of the elementwise ops ``nodes``: out = a * in + c."""
    a, c = np.ones(channels), np.zeros(channels)
    for n in nodes:
        op = n.op_type
        if op in PASS or op == "MaxPool":
            continue
        if op == "BatchNormalization":
            scale, bias, mean, var = (_per_channel(graph.const(i, n), channels, 2, n) for i in n.input[1:5])
            g = scale / np.sqrt(var + _attrs(n).get("epsilon", 1e-5))
            a, c = a * g, (c - mean) * g + bias
            continue
        first = not graph.is_const(n.input[0])
        k = _per_channel(graph.const(n.input[1] if first else n.input[0], n), channels, rank, n)
        if op == "Add":
            c = c + k
        elif op == "Sub":
            a, c = (a, c - k) if first else (-a, k - c)
        elif op == "Mul":
            a, c = a * k, c * k
        elif first:                                    # Div by a constant
            a, c = a / k, c / k
        else:
            raise QonnxImportError(f"{_node_name(n)}: divides a constant by the activation (not affine)")
    return a, c


def _check_maxpool(n, spatial: bool):
    if not spatial:
        raise QonnxImportError(f"{_node_name(n)}: a MaxPool needs a feature map (after a Conv)")
    at = _attrs(n)
    k = list(at.get("kernel_shape", []))
    s = list(at.get("strides", k))
    if len(k) != 2 or k[0] != k[1] or s != k or any(at.get("pads", [0])) or at.get("ceil_mode", 0) \
            or any(d != 1 for d in at.get("dilations", [1, 1])) or at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise QonnxImportError(f"{_node_name(n)}: bnncore pools k x k windows with stride k, no padding, "
                               f"floor mode; got kernel {k}, strides {s}, attributes {at}")
    return int(k[0])


def _subgraph(graph: _Graph, nodes: list, inp: str, out: str):
    """A model of ``nodes`` alone (their initializers included) from ``inp`` to ``out``, batch 1."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    names = {i for n in nodes for i in n.input}
    inits = [t for t in graph.model.graph.initializer if t.name in names]
    g = helper.make_graph(list(nodes), "probe",
                          [helper.make_tensor_value_info(inp, TensorProto.FLOAT, list(graph.shape(inp)))],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(graph.shape(out)))],
                          initializer=inits)
    from qonnx.transformation.infer_shapes import InferShapes
    model = ModelWrapper(helper.make_model(g, opset_imports=list(graph.model.model.opset_import)))
    return model.transform(InferShapes())


def _decider(graph: _Graph, nodes: list, inp: str, out: str, scale: np.ndarray, offset: np.ndarray):
    """decide(dots) for :func:`bnncore.thresholds.threshold_layer`: the linear op's output for an
    integer ``dot`` per channel is ``scale * dot + offset`` (float32, at every position), run
    through ``nodes`` by qonnx's executor; a channel fires where the result is >= 0."""
    from qonnx.core.onnx_exec import execute_onnx
    model = _subgraph(graph, nodes, inp, out)
    shape = graph.shape(inp)
    channels = shape[1]

    def decide(dots, where):
        lin = (scale * np.asarray(dots, np.float64) + offset).astype(np.float32)
        x = np.broadcast_to(lin.reshape((1, channels) + (1,) * (len(shape) - 2)), shape)
        y = execute_onnx(model, {inp: np.ascontiguousarray(x)})[out] >= 0
        y = y.reshape(channels, -1)
        first = y[:, :1]
        if not (y == first).all():
            bad = int(np.flatnonzero((y != first).any(axis=1))[0])
            raise QonnxImportError(f"{where}: channel {bad}: the same sum fires at some positions and not at "
                                   "others; no single threshold reproduces it")
        return first[:, 0]
    return decide


def _execute(model, x: np.ndarray, full: bool = False):
    from qonnx.core.onnx_exec import execute_onnx
    return execute_onnx(model, {model.graph.input[0].name: x}, return_full_exec_context=full)


def _positions(shape: tuple) -> np.ndarray:
    """Our flat position, (y * W + x) * C + c, of each element of a (C, H, W) map, as (C, H, W)."""
    c, h, w = shape
    return np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1)


def _move(n, graph: _Graph, where: np.ndarray) -> np.ndarray:
    """Apply a Reshape, Flatten or Transpose to ``where`` (positions, batch dimension dropped)."""
    out = graph.shape(n.output[0])
    if n.op_type == "Transpose":
        perm = _attrs(n).get("perm")
        if not perm or perm[0] != 0:
            raise QonnxImportError(f"{_node_name(n)}: a transpose must keep the batch axis first, perm {perm}")
        return where.transpose([p - 1 for p in perm[1:]])
    return where.reshape(out[1:])


#: The node domains a model may use: ONNX's own and the QONNX operators qonnx itself defines.
#: qonnx imports the Python module a node's domain names to find its operator, so any other
#: domain would run code that the model file chooses.
SAFE_DOMAINS = ("", "ai.onnx", "qonnx.custom_op.general", "onnx.brevitas")
#: bounds checked before anything is allocated for a model
MAX_MODEL_BYTES = 1 << 30
MAX_INPUT_VALUES = 1 << 16
MAX_TENSOR_ELEMENTS = 1 << 24


def _graph_nodes(graph):
    """Every node of ``graph`` and of the graphs inside its nodes' attributes."""
    import onnx
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graph_nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _graph_nodes(g)


def read_model(path):
    """The ONNX model at ``path``, checked before qonnx or onnxruntime sees it: a regular file
    of at most MAX_MODEL_BYTES, no node of a domain outside SAFE_DOMAINS (qonnx would import
    the module it names), no tensor data in other files, an input of at most
    MAX_INPUT_VALUES values and tensors of at most MAX_TENSOR_ELEMENTS elements."""
    import onnx
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise QonnxImportError(f"{path}: missing or not a regular file")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise QonnxImportError(f"{path}: {path.stat().st_size:,} bytes, more than the {MAX_MODEL_BYTES:,} a binary "
                               "network's model can have")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:     # protobuf's DecodeError and friends: the file is not an ONNX model
        raise QonnxImportError(f"{path}: not an ONNX model ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    nodes = list(_graph_nodes(model.graph)) + [n for f in model.functions for n in f.node]
    for n in nodes:
        if n.domain not in SAFE_DOMAINS:
            raise QonnxImportError(f"{path}: node {n.name or n.op_type!r} ({n.op_type}) is of domain {n.domain!r}; "
                                   f"bnncore reads the domains {', '.join(repr(d) for d in SAFE_DOMAINS)} only "
                                   "(qonnx would import the Python module another domain names); export the model "
                                   "with brevitas.export.export_qonnx")
    for t in list(model.graph.initializer) + [a.t for n in nodes for a in n.attribute if a.HasField("t")]:
        if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data:
            raise QonnxImportError(f"{path}: tensor {t.name!r} keeps its data in another file; bnncore reads "
                                   "models whose tensors are inside the model file (onnx.save without external data)")
        if math.prod(t.dims) > MAX_TENSOR_ELEMENTS:
            raise QonnxImportError(f"{path}: tensor {t.name!r} has {math.prod(t.dims):,} elements, more than "
                                   f"{MAX_TENSOR_ELEMENTS:,}: not a network bnncore can build")
    if len(model.graph.input) < 1:
        raise QonnxImportError(f"{path}: the graph has no input")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    values = math.prod(d.dim_value for d in dims[1:]) if all(d.HasField("dim_value") for d in dims[1:]) else None
    if values is not None and values > MAX_INPUT_VALUES:
        raise QonnxImportError(f"{path}: input {model.graph.input[0].name!r} has {values:,} values per image, more "
                               f"than {MAX_INPUT_VALUES:,}: not a network bnncore can build")
    return model


def import_qonnx(path, *, pixel_scale: float = 1 / 255, pixel_offset: float = 0.0, log=None) -> QonnxImport:
    """Read the QONNX model at ``path`` (see the module docstring); return a :class:`QonnxImport`.
    Nothing is verified here: :func:`verify_qonnx` does that on images. The file is checked
    first (``read_model``); every error of qonnx or onnxruntime on it becomes a
    QonnxImportError of one line."""
    _need()
    for name, v in (("pixel_scale", pixel_scale), ("pixel_offset", pixel_offset)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 1e6:
            raise QonnxImportError(f"{name} must be a finite number of magnitude at most 1e6, not {v!r}")
    if not pixel_scale > 0:
        raise QonnxImportError(f"pixel_scale must be positive (a larger pixel is a larger input), not {pixel_scale!r}")
    model = read_model(path)
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
    graph = _Graph(model)
    in_shape = graph.shape(model.graph.input[0].name)
    if len(in_shape) not in (2, 3, 4):
        raise QonnxImportError(f"{path}: input {model.graph.input[0].name!r} has shape {list(in_shape)}; expected "
                               "(batch, values), (batch, height, width) or (batch, channels, height, width)")
    dims = in_shape[1:]
    image = dims if len(dims) == 3 else (1, *dims) if len(dims) == 2 else None
    path_nodes = graph.path
    pos = 0
    where = _positions(image).reshape(dims) if image else np.arange(dims[0])
    while pos < len(path_nodes) and path_nodes[pos].op_type not in LINEAR | ACT | {"Pad"}:
        n = path_nodes[pos]
        if n.op_type in RESHAPE:
            where = _move(n, graph, where)
        elif n.op_type not in AFFINE - {"BatchNormalization"} | PASS | {"Quant"}:
            raise QonnxImportError(f"{_node_name(n)}: before the first layer bnncore reads elementwise Mul, "
                                   "Add, Sub, Div, reshapes and an input quantizer only")
        pos += 1
    if pos == len(path_nodes):
        raise QonnxImportError(f"{path}: no MatMul, Gemm or Conv: nothing to fold")

    # The input: the model on every pixel value at once (image p: every pixel = p).
    batched_model = batched(model, 256)
    pixels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], math.prod(dims), axis=1)
    first = path_nodes[pos]
    binary_input = first.op_type in ACT
    values = _execute(batched_model, model_input(in_shape, pixels, pixel_scale, pixel_offset), full=True)
    # cleanup renames nothing here (the model was cleaned above), so tensor names carry over
    table = values[first.output[0] if binary_input else first.input[0]].reshape(256, -1).astype(np.float64)
    if binary_input:
        scale_in = _act_scale(graph, first)
        fires = table > 0
        level = int(np.argmax(fires[:, 0])) if fires[:, 0].any() else 256
        expect = np.arange(256)[:, None] >= level
        if not (fires == expect).all():
            raise QonnxImportError(f"{_node_name(first)}: the input bit is not pixel >= one level at every position "
                                   f"(pixel -> model input: * {pixel_scale} + {pixel_offset}; per-channel "
                                   "normalisation, or --pixel-scale/--pixel-offset not the model's?)")
        scheme = InputScheme("threshold", level)
        in_map = None
        pos += 1
        log(f"input: {first.op_type}, bit = pixel >= {level}")
    else:
        if not (table == table[:, :1]).all():
            raise QonnxImportError(f"{_node_name(first)}: its input differs between positions for the same pixel "
                                   "(per-channel normalisation?); bnncore's 8-bit first layer sees the pixels themselves")
        v = table[:, 0]
        k, b = (v[255] - v[0]) / 255, v[0]
        if not k > 0 or np.abs(v - (k * np.arange(256) + b)).max() > 1e-6 * max(1.0, np.abs(v).max()):
            raise QonnxImportError(f"{_node_name(first)}: its input is not k * pixel + b with k > 0 (an input Quant "
                                   "that rounds, as CNV's 8-bit input quantizer, is not); bnncore's 8-bit first "
                                   "layer computes on the pixels themselves")
        scheme = InputScheme("uint8")
        scale_in, in_map = 1.0, (k, b)
        log(f"input: 8-bit, the model sees {k:.6g} * pixel + {b:.6g}")

    layers, probes, reports = [], [], []
    spatial = image is not None and where.ndim == 3
    shape = tuple(where.shape)
    pad = 0
    head = None
    while pos < len(path_nodes):
        n = path_nodes[pos]
        op = n.op_type
        if op in PASS:
            pos += 1
            continue
        if op in RESHAPE:
            where = _move(n, graph, where)
            spatial = False if where.ndim != 3 else spatial
            pos += 1
            continue
        if op == "MaxPool":
            size = _check_maxpool(n, spatial and bool(layers) and isinstance(layers[-1], (ConvLayer, PoolLayer)))
            layers.append(PoolLayer(shape, np.zeros(shape[0], np.uint8), size))
            shape = layers[-1].out_shape
            where = _positions(shape)
            probes.append((len(layers) - 1, n.output[0]))
            pos += 1
            continue
        if op == "Mul" and pos + 2 < len(path_nodes) and path_nodes[pos + 1].op_type == "MaxPool" \
                and path_nodes[pos + 2].op_type == "Mul":
            # s * MaxPool(s * x), s = ±1 per channel: a pool that is an AND where s = -1 (interop.py)
            signs = [_per_channel(graph.const(m.input[1] if not graph.is_const(m.input[0]) else m.input[0], m),
                                  shape[0], 4, m) for m in (n, path_nodes[pos + 2])]
            if not (spatial and layers) or not np.array_equal(signs[0], signs[1]) or not np.isin(signs[0], (-1, 1)).all():
                raise QonnxImportError(f"{_node_name(n)}: a Mul around a MaxPool must multiply a feature map by the "
                                       "same ±1 per channel before and after it (a pool of AND and OR channels)")
            size = _check_maxpool(path_nodes[pos + 1], True)
            layers.append(PoolLayer(shape, (signs[0] < 0).astype(np.uint8), size))
            shape = layers[-1].out_shape
            where = _positions(shape)
            probes.append((len(layers) - 1, path_nodes[pos + 2].output[0]))
            pos += 3
            continue
        if op == "Pad":
            pad = _read_pad(graph, n, scale_in, spatial, in_map if not layers else None)
            pos += 1
            continue
        if op not in LINEAR:
            raise QonnxImportError(f"{_node_name(n)}: not a layer bnncore folds (MatMul, Gemm, Conv, then "
                                   "BatchNormalization or elementwise affine ops, then BipolarQuant)")
        index = len(layers)
        in_bits = 8 if index == 0 and in_map is not None else 1
        bits, mag, offset, conv = _weights(graph, n, where, spatial, in_bits, pad)
        if conv:
            padding = conv["padding"]
            pad_value = conv["pad_value"]
            if padding and in_bits == 8 and not pad:          # the pads attribute: the model's 0
                pad_value = _pixel(0.0, in_map, n)
        pad = 0
        channels = bits.shape[0]
        fan_in = int(np.prod(bits.shape[1:]))
        # the linear op's output for an integer dot: scale * dot + offset (see the module docstring)
        if in_bits == 1:
            lin_scale = scale_in * mag
            lin_offset = offset
        else:
            k_, b_ = in_map
            zeros = (bits == 0).reshape(channels, -1).sum(1)
            lin_scale = mag * k_
            lin_offset = offset + mag * b_ * (fan_in - 2 * zeros)
        # the nodes after it: up to and including the next BipolarQuant (hidden) or to the end (head)
        post, end = [], pos + 1
        while end < len(path_nodes) and path_nodes[end].op_type not in ACT:
            m = path_nodes[end]
            if m.op_type not in AFFINE | PASS | {"MaxPool"}:
                raise QonnxImportError(f"{_node_name(m)}: between {_node_name(n)} and its activation bnncore folds "
                                       "BatchNormalization, elementwise Mul/Add/Sub/Div (one value per channel) and "
                                       "a MaxPool; a binary network's activation is a BipolarQuant")
            post.append(m)
            end += 1
        out_shape = graph.shape(n.output[0])[1:]
        if end == len(path_nodes):                       # the output head
            if any(m.op_type == "MaxPool" for m in post) or conv or in_bits == 8:
                raise QonnxImportError(f"{_node_name(n)}: the last layer must be fully connected (the output head) "
                                       "and read bits (a single-layer network with 8-bit input needs a hidden layer)")
            head = OutputHead(bits, _head_bias(graph, n, post, lin_scale, lin_offset))
            log(f"output head: {fan_in} -> {channels} classes")
            pos = end
            break
        quant = path_nodes[end]
        pool = [m for m in post if m.op_type == "MaxPool"]
        if pool and not conv:
            raise QonnxImportError(f"{_node_name(pool[0])}: a MaxPool needs a feature map (after a Conv)")
        rank = len(out_shape) + 1
        a, c = _affine(graph, post, channels, rank)
        decide = _decider(graph, post + [quant], n.output[0], quant.output[0], lin_scale, lin_offset)
        name = f"layer {index}"
        rows, t, _, rep = threshold_layer(decide, a * lin_scale, a * lin_offset + c, bits, in_bits, name,
                                             kind="conv" if conv else "dense")
        if conv:
            layers.append(ConvLayer(rows, t, shape, padding, pad_value, name=name, in_bits=in_bits))
            shape = layers[-1].out_shape
            if pool:
                # the max of values that the ops after the pool map decreasingly onto the sign is
                # the min of the bits: an AND exactly where those ops' scale is negative
                after, _ = _affine(graph, post[post.index(pool[0]) + 1:], channels, rank)
                size = _check_maxpool(pool[0], True)
                layers.append(PoolLayer(shape, (after < 0).astype(np.uint8), size, name=f"layer {index + 1}"))
                rep.and_channels = int((after < 0).sum())
                shape = layers[-1].out_shape
            where = _positions(shape)
            spatial = True
        else:
            layers.append(DenseLayer(rows, t, name=name, in_bits=in_bits))
            shape = (channels,)
            where = np.arange(channels)
            spatial = False
        probes.append((len(layers) - 1, quant.output[0]))
        reports.append(rep)
        scale_in = _act_scale(graph, quant)
        log(rep.line())
        pos = end + 1
    if head is None:
        raise QonnxImportError(f"{path}: the graph ends in an activation; bnncore expects the last layer to be "
                               "a MatMul or Gemm giving the class scores")
    if pos != len(path_nodes):
        raise QonnxImportError(f"{_node_name(path_nodes[pos])}: after the output layer; bnncore's output is the "
                               "class scores")
    try:
        net = FoldedNetwork(tuple(layers), head, scheme)
    except ValueError as e:
        raise QonnxImportError(f"{path}: {e}") from None
    report = FoldReport(reports, (int(head.bias.min()), int(head.bias.max())))
    return QonnxImport(net, report, probes, model, tuple(in_shape), pixel_scale, pixel_offset, str(path),
                       time.perf_counter() - start)


def _head_bias(graph: _Graph, n, post: list, lin_scale, lin_offset) -> np.ndarray:
    """The integer biases of the output head ``n`` followed by the ops ``post``: its class scores
    are ``A_c * dot + B_c``, whose arg-max is that of ``dot + B_c / A`` when every ``A_c`` is the
    same ``A > 0`` and every ``B_c / A`` is an integer; anything else is refused."""
    a, c = _affine(graph, post, len(lin_scale), 2)
    A, B = a * lin_scale, a * lin_offset + c
    if not (A > 0).all() or np.abs(A - A[0]).max() > 1e-9 * A[0]:
        raise QonnxImportError(f"{_node_name(n)}: the class scores are A_c * dot + B_c with A_c "
                               f"{'not all positive' if not (A > 0).all() else 'differing between classes'}; "
                               "their arg-max is not that of integer scores (a per-class scale after "
                               "the last layer does not fold)")
    bias = B / A[0]
    off = np.abs(bias - np.round(bias))
    if off.max() > 1e-6:
        raise QonnxImportError(f"{_node_name(n)}: the class offsets B_c / A are not integers (e.g. "
                               f"{bias[np.argmax(off)]:.6g}); bnncore's output head adds integer biases to the "
                               "integer scores")
    return np.round(bias).astype(np.int64)


def _act_scale(graph: _Graph, n) -> float:
    """s of an activation whose values are ±s: a BipolarQuant's scale, or a MultiThreshold of one
    threshold per channel with ``out_scale`` 2s and ``out_bias`` -s."""
    if n.op_type == "BipolarQuant":
        return _scalar_scale(graph, n)
    at = _attrs(n)
    t = np.asarray(graph.const(n.input[1], n))
    scale, bias = float(at.get("out_scale", 1.0)), float(at.get("out_bias", 0.0))
    if t.ndim != 2 or t.shape[1] != 1 or not scale > 0 or bias != -scale / 2:
        raise QonnxImportError(f"{_node_name(n)}: a binary activation has one threshold per channel and values "
                               f"±s (out_scale 2s, out_bias -s); got thresholds of shape {t.shape}, out_scale "
                               f"{scale}, out_bias {bias}")
    return scale / 2


def _scalar_scale(graph: _Graph, n) -> float:
    s = np.asarray(graph.const(n.input[1], n), np.float64)
    if s.size != 1 or not s.reshape(-1)[0] > 0:
        raise QonnxImportError(f"{_node_name(n)}: an activation's scale must be one positive number, got "
                               f"{s.reshape(-1)[:4]}{'...' if s.size > 4 else ''} of shape {s.shape}")
    return float(s.reshape(-1)[0])


def _pixel(value: float, in_map: tuple, n) -> int:
    """The pixel whose model value (``k * pixel + b``, ``in_map`` = (k, b)) is the padded ``value``."""
    k, b = in_map
    pixel = round((value - b) / k)
    if not (0 <= pixel <= 255 and abs(k * pixel + b - value) <= 1e-9 * max(1.0, abs(b), abs(value))):
        raise QonnxImportError(f"{_node_name(n)}: pads its 8-bit input with {value}, which is no pixel value (the "
                               f"model sees {k:.6g} * pixel + {b:.6g})")
    return int(pixel)


def _read_pad(graph: _Graph, n, scale_in: float, spatial: bool, in_map=None) -> tuple:
    """(padding, pad value) of a Pad node: a bit for binary maps; for the 8-bit input (``in_map``
    = (k, b): the model sees k * pixel + b), the pixel the padded value stands for."""
    at = _attrs(n)
    if not spatial or at.get("mode", b"constant") not in (b"constant", "constant"):
        raise QonnxImportError(f"{_node_name(n)}: bnncore reads constant padding of a feature map only")
    pads = [int(p) for p in graph.const(n.input[1], n).reshape(-1)]
    value = float(graph.const(n.input[2], n).reshape(-1)[0]) if len(n.input) > 2 and n.input[2] else 0.0
    p = pads[2]
    if pads != [0, 0, p, p, 0, 0, p, p] or p < 1:
        raise QonnxImportError(f"{_node_name(n)}: pads {pads}; bnncore pads height and width alike on every side")
    if in_map is not None:
        return (p, _pixel(value, in_map, n))
    if value not in (scale_in, -scale_in):
        raise QonnxImportError(f"{_node_name(n)}: pads with {value}, which is neither of the activations' values "
                               f"±{scale_in}")
    return (p, int(value > 0))


def _weights(graph: _Graph, n, where: np.ndarray, spatial: bool, in_bits: int, pad):
    """(bits, magnitude per channel, offset per channel, conv info or None) of a MatMul, Gemm or
    Conv; bits as our layers hold them: (out, in) in our input order, or (out, ky, kx, in)."""
    op = n.op_type
    at = _attrs(n)
    w = np.asarray(graph.const(n.input[1], n), np.float64)
    offset = 0.0
    conv = None
    if op == "Conv":
        if not spatial or w.ndim != 4:
            raise QonnxImportError(f"{_node_name(n)}: a 2-D convolution of a feature map is expected")
        if at.get("group", 1) != 1 or any(s != 1 for s in at.get("strides", [1, 1])) \
                or any(d != 1 for d in at.get("dilations", [1, 1])) or w.shape[2] != w.shape[3] \
                or at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise QonnxImportError(f"{_node_name(n)}: bnncore folds square kernels with stride 1, no dilation, "
                                   f"one group; got weights {w.shape}, attributes {at}")
        if not np.array_equal(where, _positions(where.shape)):
            raise QonnxImportError(f"{_node_name(n)}: its input is not a feature map in NCHW order")
        pads = list(at.get("pads", [0, 0, 0, 0]))
        if any(pads):
            if in_bits == 1:
                raise QonnxImportError(f"{_node_name(n)}: pads its binary input with 0, which is neither +1 nor -1; "
                                       "a binary convolution pads with a constant bit (an explicit Pad of ±scale), "
                                       "or not at all")
            if len(set(pads)) != 1:
                raise QonnxImportError(f"{_node_name(n)}: pads {pads}; bnncore pads every side alike")
        padding, pad_value = (pad[0], pad[1]) if pad else (int(pads[0]) if pads else 0, 0)
        if pad and any(pads):
            raise QonnxImportError(f"{_node_name(n)}: padded twice (a Pad node and the pads attribute)")
        if padding and (padding >= w.shape[2]):
            raise QonnxImportError(f"{_node_name(n)}: padding {padding} for a {w.shape[2]}x{w.shape[2]} kernel")
        conv = {"padding": padding, "pad_value": pad_value}
        mat = w.transpose(0, 2, 3, 1)                            # (out, in, ky, kx) -> (out, ky, kx, in)
        if len(n.input) > 2 and n.input[2]:
            offset = np.asarray(graph.const(n.input[2], n), np.float64).reshape(-1)
    else:
        if spatial or where.ndim != 1:
            raise QonnxImportError(f"{_node_name(n)}: its input is not flat; flatten a feature map first")
        if op == "MatMul":
            mat = w.T
        else:
            if at.get("transA", 0):
                raise QonnxImportError(f"{_node_name(n)}: transA=1 (the activation transposed) is not read")
            mat = w if at.get("transB", 0) else w.T
            alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
            mat = mat * alpha
            if len(n.input) > 2 and n.input[2]:
                offset = beta * np.asarray(graph.const(n.input[2], n), np.float64).reshape(-1)
        if w.ndim != 2 or mat.shape[1] != where.size:
            raise QonnxImportError(f"{_node_name(n)}: weights {w.shape} for {where.size} inputs")
        if sorted(where.tolist()) != list(range(where.size)):
            raise QonnxImportError(f"{_node_name(n)}: its input is not a reordering of the previous layer's outputs")
        ours = np.empty_like(mat)
        ours[:, where] = mat                                     # column j of the model is our position where[j]
        mat = ours
    channels = mat.shape[0]
    flat = np.abs(mat.reshape(channels, -1))
    mag = flat.max(axis=1)
    if not ((flat == mag[:, None]).all() and (mag > 0).all()):
        bad = int(np.flatnonzero(~(flat == mag[:, None]).all(axis=1) | (mag == 0))[0])
        raise QonnxImportError(f"{_node_name(n)}: output channel {bad}'s weights are not ±s for one s > 0 "
                               f"(values {np.unique(mat.reshape(channels, -1)[bad])[:6]}); bnncore folds binary "
                               "weights (a BipolarQuant of the weights)")
    bits = (mat > 0).astype(np.uint8)
    offset = np.broadcast_to(np.asarray(offset, np.float64), (channels,)).copy()
    return bits, mag, offset, conv


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
            ctx = _execute(model, imported.model_input(chunk), full=True)
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
