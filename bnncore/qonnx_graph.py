"""The graph reader of the QONNX import (bnncore/qonnx_import.py): the model as one path of
nodes, the per-channel affine ops around a layer, its decision run on qonnx's executor, where
reshapes move positions, and the weights, pads, scales and biases of a layer's nodes."""

from __future__ import annotations

import numpy as np

from .qonnx_read import QonnxImportError


LINEAR = {"MatMul", "Gemm", "Conv"}


ACT = {"BipolarQuant", "MultiThreshold"}        # a binary activation: Brevitas', or FINN's streamlined form


AFFINE = {"Add", "Sub", "Mul", "Div", "BatchNormalization"}


RESHAPE = {"Reshape", "Flatten", "Transpose"}


PASS = {"Identity", "Dropout"}


def input_quantizer(graph, n) -> bool:
    """A MultiThreshold of more than one threshold per channel: a quantizer of several bits (as
    FINN writes an input quantizer, and ``bnn export --qonnx`` a table input), not a binary
    activation."""
    if n.op_type != "MultiThreshold" or len(n.input) < 2 or not graph.is_const(n.input[1]):
        return False
    return np.asarray(graph.const(n.input[1], n)).shape[-1] > 1


def node_name(n) -> str:
    return f"node {n.name or n.output[0]!r} ({n.op_type})"


def attrs(n) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in n.attribute}


class Graph:
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
                raise QonnxImportError(f"{node_name(user)}: input {name!r} is not a constant")
            if n.op_type == "BipolarQuant":
                from qonnx.custom_op.general.bipolar_quant import binary_quant
                value = binary_quant(self.const(n.input[0], n), self.const(n.input[1], n))
            elif n.op_type in PASS:
                value = self.const(n.input[0], n)
            else:
                raise QonnxImportError(f"{node_name(n)}: computes a constant that {node_name(user)} uses; "
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
                raise QonnxImportError(f"{where} feeds {len(users)} nodes ({', '.join(node_name(u) for u in users)}): "
                                       "bnncore folds a chain of layers; branches (residual connections, "
                                       "concatenations) are not folded")
            n = users[0]
            dynamic = [i for i in n.input if not self.is_const(i)]
            if dynamic != [cur]:
                raise QonnxImportError(f"{node_name(n)}: takes {len(dynamic)} computed inputs "
                                       f"({', '.join(map(repr, dynamic))}); bnncore folds a chain of layers")
            path.append(n)
            cur = n.output[0]
        return path

    def shape(self, name: str) -> tuple:
        s = self.model.get_tensor_shape(name)
        if s is None:
            raise QonnxImportError(f"tensor {name!r} has no known shape (run qonnx's cleanup or InferShapes)")
        return tuple(s)


def per_channel(value, channels: int, rank: int, n) -> np.ndarray:
    """A constant operand of an elementwise op as one value per channel (axis 1 of a tensor of
    ``rank`` dimensions, batch first); refused when it varies along another axis."""
    v = np.asarray(value, np.float64)
    if v.ndim > rank:
        raise QonnxImportError(f"{node_name(n)}: operand of shape {v.shape} does not broadcast to rank {rank}")
    v = v.reshape((1,) * (rank - v.ndim) + v.shape)
    for axis, size in enumerate(v.shape):
        if axis != 1 and size != 1:
            raise QonnxImportError(f"{node_name(n)}: operand of shape {v.shape} varies along axis {axis}; "
                                   "bnncore folds one scale and offset per channel")
    if v.shape[1] not in (1, channels):
        raise QonnxImportError(f"{node_name(n)}: operand of shape {v.shape} for {channels} channels")
    return np.broadcast_to(v.reshape(-1), (channels,)).copy()


def affine_ops(graph: Graph, nodes: list, channels: int, rank: int):
    """float64 (a, c) per channel of the elementwise ops ``nodes``: out = a * in + c."""
    a, c = np.ones(channels), np.zeros(channels)
    for n in nodes:
        op = n.op_type
        if op in PASS or op == "MaxPool":
            continue
        if op == "BatchNormalization":
            scale, bias, mean, var = (per_channel(graph.const(i, n), channels, 2, n) for i in n.input[1:5])
            g = scale / np.sqrt(var + attrs(n).get("epsilon", 1e-5))
            a, c = a * g, (c - mean) * g + bias
            continue
        first = not graph.is_const(n.input[0])
        k = per_channel(graph.const(n.input[1] if first else n.input[0], n), channels, rank, n)
        if op == "Add":
            c = c + k
        elif op == "Sub":
            a, c = (a, c - k) if first else (-a, k - c)
        elif op == "Mul":
            a, c = a * k, c * k
        elif first:                                    # Div by a constant
            a, c = a / k, c / k
        else:
            raise QonnxImportError(f"{node_name(n)}: divides a constant by the activation (not affine)")
    return a, c


def check_maxpool(n, spatial: bool):
    if not spatial:
        raise QonnxImportError(f"{node_name(n)}: a MaxPool needs a feature map (after a Conv)")
    at = attrs(n)
    k = list(at.get("kernel_shape", []))
    s = list(at.get("strides", k))
    if len(k) != 2 or k[0] != k[1] or s != k or any(at.get("pads", [0])) or at.get("ceil_mode", 0) \
            or any(d != 1 for d in at.get("dilations", [1, 1])) or at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise QonnxImportError(f"{node_name(n)}: bnncore pools k x k windows with stride k, no padding, "
                               f"floor mode; got kernel {k}, strides {s}, attributes {at}")
    return int(k[0])


def subgraph(graph: Graph, nodes: list, inp: str, out: str):
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


def decider(graph: Graph, nodes: list, inp: str, out: str, scale: np.ndarray, offset: np.ndarray):
    """decide(dots) for :func:`bnncore.thresholds.threshold_layer`: the linear op's output for an
    integer ``dot`` per channel is ``scale * dot + offset`` (float32, at every position), run
    through ``nodes`` by qonnx's executor; a channel fires where the result is >= 0."""
    from qonnx.core.onnx_exec import execute_onnx
    model = subgraph(graph, nodes, inp, out)
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


def execute(model, x: np.ndarray, full: bool = False):
    from qonnx.core.onnx_exec import execute_onnx
    return execute_onnx(model, {model.graph.input[0].name: x}, return_full_exec_context=full)


def positions_of(shape: tuple) -> np.ndarray:
    """Our flat position, (y * W + x) * C + c, of each element of a (C, H, W) map, as (C, H, W)."""
    c, h, w = shape
    return np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1)


def move_positions(n, graph: Graph, where: np.ndarray) -> np.ndarray:
    """Apply a Reshape, Flatten or Transpose to ``where`` (positions, batch dimension dropped)."""
    out = graph.shape(n.output[0])
    if n.op_type == "Transpose":
        perm = attrs(n).get("perm")
        if not perm or perm[0] != 0:
            raise QonnxImportError(f"{node_name(n)}: a transpose must keep the batch axis first, perm {perm}")
        return where.transpose([p - 1 for p in perm[1:]])
    return where.reshape(out[1:])


def head_bias(graph: Graph, n, post: list, lin_scale, lin_offset) -> np.ndarray:
    """The integer biases of the output head ``n`` followed by the ops ``post``: its class scores
    are ``A_c * dot + B_c``, whose arg-max is that of ``dot + B_c / A`` when every ``A_c`` is the
    same ``A > 0`` and every ``B_c / A`` is an integer; anything else is refused."""
    a, c = affine_ops(graph, post, len(lin_scale), 2)
    A, B = a * lin_scale, a * lin_offset + c
    if not (A > 0).all() or np.abs(A - A[0]).max() > 1e-9 * A[0]:
        raise QonnxImportError(f"{node_name(n)}: the class scores are A_c * dot + B_c with A_c "
                               f"{'not all positive' if not (A > 0).all() else 'differing between classes'}; "
                               "their arg-max is not that of integer scores (a per-class scale after "
                               "the last layer does not fold)")
    bias = B / A[0]
    off = np.abs(bias - np.round(bias))
    if off.max() > 1e-6:
        raise QonnxImportError(f"{node_name(n)}: the class offsets B_c / A are not integers (e.g. "
                               f"{bias[np.argmax(off)]:.6g}); bnncore's output head adds integer biases to the "
                               "integer scores")
    return np.round(bias).astype(np.int64)


def act_scale(graph: Graph, n) -> float:
    """s of an activation whose values are ±s: a BipolarQuant's scale, or a MultiThreshold of one
    threshold per channel with ``out_scale`` 2s and ``out_bias`` -s."""
    if n.op_type == "BipolarQuant":
        return scalar_scale(graph, n)
    at = attrs(n)
    t = np.asarray(graph.const(n.input[1], n))
    scale, bias = float(at.get("out_scale", 1.0)), float(at.get("out_bias", 0.0))
    if t.ndim != 2 or t.shape[1] != 1 or not scale > 0 or bias != -scale / 2:
        raise QonnxImportError(f"{node_name(n)}: a binary activation has one threshold per channel and values "
                               f"±s (out_scale 2s, out_bias -s); got thresholds of shape {t.shape}, out_scale "
                               f"{scale}, out_bias {bias}")
    return scale / 2


def scalar_scale(graph: Graph, n) -> float:
    s = np.asarray(graph.const(n.input[1], n), np.float64)
    if s.size != 1 or not s.reshape(-1)[0] > 0:
        raise QonnxImportError(f"{node_name(n)}: an activation's scale must be one positive number, got "
                               f"{s.reshape(-1)[:4]}{'...' if s.size > 4 else ''} of shape {s.shape}")
    return float(s.reshape(-1)[0])


def pixel_of(value: float, in_map: tuple, n) -> int:
    """The pixel whose model value (``k * pixel + b``, ``in_map`` = (k, b)) is the padded ``value``."""
    k, b = in_map
    pixel = round((value - b) / k)
    if not (0 <= pixel <= 255 and abs(k * pixel + b - value) <= 1e-9 * max(1.0, abs(b), abs(value))):
        raise QonnxImportError(f"{node_name(n)}: pads its 8-bit input with {value}, which is no pixel value (the "
                               f"model sees {k:.6g} * pixel + {b:.6g})")
    return int(pixel)


def read_pad(graph: Graph, n, scale_in: float, spatial: bool, in_map=None) -> tuple:
    """(padding, pad value) of a Pad node: a bit for binary maps; for the 8-bit input (``in_map``
    = (k, b): the model sees k * pixel + b), the pixel the padded value stands for."""
    at = attrs(n)
    if not spatial or at.get("mode", b"constant") not in (b"constant", "constant"):
        raise QonnxImportError(f"{node_name(n)}: bnncore reads constant padding of a feature map only")
    pads = [int(p) for p in graph.const(n.input[1], n).reshape(-1)]
    value = float(graph.const(n.input[2], n).reshape(-1)[0]) if len(n.input) > 2 and n.input[2] else 0.0
    p = pads[2]
    if pads != [0, 0, p, p, 0, 0, p, p] or p < 1:
        raise QonnxImportError(f"{node_name(n)}: pads {pads}; bnncore pads height and width alike on every side")
    if in_map is not None:
        return (p, pixel_of(value, in_map, n))
    if value not in (scale_in, -scale_in):
        raise QonnxImportError(f"{node_name(n)}: pads with {value}, which is neither of the activations' values "
                               f"±{scale_in}")
    return (p, int(value > 0))


def layer_weights(graph: Graph, n, where: np.ndarray, spatial: bool, in_bits: int, pad):
    """(bits, magnitude per channel, offset per channel, conv info or None) of a MatMul, Gemm or
    Conv; bits as our layers hold them: (out, in) in our input order, or (out, ky, kx, in)."""
    op = n.op_type
    at = attrs(n)
    w = np.asarray(graph.const(n.input[1], n), np.float64)
    offset = 0.0
    conv = None
    if op == "Conv":
        if not spatial or w.ndim != 4:
            raise QonnxImportError(f"{node_name(n)}: a 2-D convolution of a feature map is expected")
        if at.get("group", 1) != 1 or any(s != 1 for s in at.get("strides", [1, 1])) \
                or any(d != 1 for d in at.get("dilations", [1, 1])) or w.shape[2] != w.shape[3] \
                or at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise QonnxImportError(f"{node_name(n)}: bnncore folds square kernels with stride 1, no dilation, "
                                   f"one group; got weights {w.shape}, attributes {at}")
        if not np.array_equal(where, positions_of(where.shape)):
            raise QonnxImportError(f"{node_name(n)}: its input is not a feature map in NCHW order")
        pads = list(at.get("pads", [0, 0, 0, 0]))
        if any(pads):
            if in_bits == 1:
                raise QonnxImportError(f"{node_name(n)}: pads its binary input with 0, which is neither +1 nor -1; "
                                       "a binary convolution pads with a constant bit (an explicit Pad of ±scale), "
                                       "or not at all")
            if len(set(pads)) != 1:
                raise QonnxImportError(f"{node_name(n)}: pads {pads}; bnncore pads every side alike")
        padding, pad_value = (pad[0], pad[1]) if pad else (int(pads[0]) if pads else 0, 0)
        if pad and any(pads):
            raise QonnxImportError(f"{node_name(n)}: padded twice (a Pad node and the pads attribute)")
        if padding and (padding >= w.shape[2]):
            raise QonnxImportError(f"{node_name(n)}: padding {padding} for a {w.shape[2]}x{w.shape[2]} kernel")
        conv = {"padding": padding, "pad_value": pad_value}
        mat = w.transpose(0, 2, 3, 1)                            # (out, in, ky, kx) -> (out, ky, kx, in)
        if len(n.input) > 2 and n.input[2]:
            offset = np.asarray(graph.const(n.input[2], n), np.float64).reshape(-1)
    else:
        if spatial or where.ndim != 1:
            raise QonnxImportError(f"{node_name(n)}: its input is not flat; flatten a feature map first")
        if op == "MatMul":
            mat = w.T
        else:
            if at.get("transA", 0):
                raise QonnxImportError(f"{node_name(n)}: transA=1 (the activation transposed) is not read")
            mat = w if at.get("transB", 0) else w.T
            alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
            mat = mat * alpha
            if len(n.input) > 2 and n.input[2]:
                offset = beta * np.asarray(graph.const(n.input[2], n), np.float64).reshape(-1)
        if w.ndim != 2 or mat.shape[1] != where.size:
            raise QonnxImportError(f"{node_name(n)}: weights {w.shape} for {where.size} inputs")
        if sorted(where.tolist()) != list(range(where.size)):
            raise QonnxImportError(f"{node_name(n)}: its input is not a reordering of the previous layer's outputs")
        ours = np.empty_like(mat)
        ours[:, where] = mat                                     # column j of the model is our position where[j]
        mat = ours
    channels = mat.shape[0]
    flat = np.abs(mat.reshape(channels, -1))
    mag = flat.max(axis=1)
    if not ((flat == mag[:, None]).all() and (mag > 0).all()):
        bad = int(np.flatnonzero(~(flat == mag[:, None]).all(axis=1) | (mag == 0))[0])
        raise QonnxImportError(f"{node_name(n)}: output channel {bad}'s weights are not ±s for one s > 0 "
                               f"(values {np.unique(mat.reshape(channels, -1)[bad])[:6]}); bnncore folds binary "
                               "weights (a BipolarQuant of the weights)")
    bits = (mat > 0).astype(np.uint8)
    offset = np.broadcast_to(np.asarray(offset, np.float64), (channels,)).copy()
    return bits, mag, offset, conv
