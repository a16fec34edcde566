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
from .network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer
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
    while pos < len(path_nodes) and path_nodes[pos].op_type not in qg.LINEAR | qg.ACT | {"Pad"}:
        n = path_nodes[pos]
        if n.op_type in qg.RESHAPE:
            where = qg.move_positions(n, graph, where)
        elif n.op_type not in qg.AFFINE - {"BatchNormalization"} | qg.PASS | {"Quant"}:
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
        if not k > 0 or np.abs(v - (k * np.arange(256) + b)).max() > 1e-6 * max(1.0, np.abs(v).max()):
            raise QonnxImportError(f"{qg.node_name(first)}: its input is not k * pixel + b with k > 0 (an input Quant "
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
        if op in qg.PASS:
            pos += 1
            continue
        if op in qg.RESHAPE:
            where = qg.move_positions(n, graph, where)
            spatial = False if where.ndim != 3 else spatial
            pos += 1
            continue
        if op == "MaxPool":
            size = qg.check_maxpool(n, spatial and bool(layers) and isinstance(layers[-1], (ConvLayer, PoolLayer)))
            layers.append(PoolLayer(shape, np.zeros(shape[0], np.uint8), size))
            shape = layers[-1].out_shape
            where = qg.positions_of(shape)
            probes.append((len(layers) - 1, n.output[0]))
            pos += 1
            continue
        if op == "Mul" and pos + 2 < len(path_nodes) and path_nodes[pos + 1].op_type == "MaxPool" \
                and path_nodes[pos + 2].op_type == "Mul":
            # s * MaxPool(s * x), s = ±1 per channel: a pool that is an AND where s = -1 (interop.py)
            signs = [qg.per_channel(graph.const(m.input[1] if not graph.is_const(m.input[0]) else m.input[0], m),
                                  shape[0], 4, m) for m in (n, path_nodes[pos + 2])]
            if not (spatial and layers) or not np.array_equal(signs[0], signs[1]) or not np.isin(signs[0], (-1, 1)).all():
                raise QonnxImportError(f"{qg.node_name(n)}: a Mul around a MaxPool must multiply a feature map by the "
                                       "same ±1 per channel before and after it (a pool of AND and OR channels)")
            size = qg.check_maxpool(path_nodes[pos + 1], True)
            layers.append(PoolLayer(shape, (signs[0] < 0).astype(np.uint8), size))
            shape = layers[-1].out_shape
            where = qg.positions_of(shape)
            probes.append((len(layers) - 1, path_nodes[pos + 2].output[0]))
            pos += 3
            continue
        if op == "Pad":
            pad = qg.read_pad(graph, n, scale_in, spatial, in_map if not layers else None)
            pos += 1
            continue
        if op not in qg.LINEAR:
            raise QonnxImportError(f"{qg.node_name(n)}: not a layer bnncore folds (MatMul, Gemm, Conv, then "
                                   "BatchNormalization or elementwise affine ops, then BipolarQuant)")
        index = len(layers)
        in_bits = 8 if index == 0 and in_map is not None else 1
        bits, mag, offset, conv = qg.layer_weights(graph, n, where, spatial, in_bits, pad)
        if conv:
            padding = conv["padding"]
            pad_value = conv["pad_value"]
            if padding and in_bits == 8 and not pad:          # the pads attribute: the model's 0
                pad_value = qg.pixel_of(0.0, in_map, n)
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
        while end < len(path_nodes) and path_nodes[end].op_type not in qg.ACT:
            m = path_nodes[end]
            if m.op_type not in qg.AFFINE | qg.PASS | {"MaxPool"}:
                raise QonnxImportError(f"{qg.node_name(m)}: between {qg.node_name(n)} and its activation bnncore folds "
                                       "BatchNormalization, elementwise Mul/Add/Sub/Div (one value per channel) and "
                                       "a MaxPool; a binary network's activation is a BipolarQuant")
            post.append(m)
            end += 1
        out_shape = graph.shape(n.output[0])[1:]
        if end == len(path_nodes):                       # the output head
            if any(m.op_type == "MaxPool" for m in post) or conv or in_bits == 8:
                raise QonnxImportError(f"{qg.node_name(n)}: the last layer must be fully connected (the output head) "
                                       "and read bits (a single-layer network with 8-bit input needs a hidden layer)")
            head = OutputHead(bits, qg.head_bias(graph, n, post, lin_scale, lin_offset))
            log(f"output head: {fan_in} -> {channels} classes")
            pos = end
            break
        quant = path_nodes[end]
        pool = [m for m in post if m.op_type == "MaxPool"]
        if pool and not conv:
            raise QonnxImportError(f"{qg.node_name(pool[0])}: a MaxPool needs a feature map (after a Conv)")
        rank = len(out_shape) + 1
        a, c = qg.affine_ops(graph, post, channels, rank)
        decide = qg.decider(graph, post + [quant], n.output[0], quant.output[0], lin_scale, lin_offset)
        name = f"layer {index}"
        rows, t, _, rep = threshold_layer(decide, a * lin_scale, a * lin_offset + c, bits, in_bits, name,
                                             kind="conv" if conv else "dense")
        if conv:
            layers.append(ConvLayer(rows, t, shape, padding, pad_value, name=name, in_bits=in_bits))
            shape = layers[-1].out_shape
            if pool:
                # the max of values that the ops after the pool map decreasingly onto the sign is
                # the min of the bits: an AND exactly where those ops' scale is negative
                after, _ = qg.affine_ops(graph, post[post.index(pool[0]) + 1:], channels, rank)
                size = qg.check_maxpool(pool[0], True)
                layers.append(PoolLayer(shape, (after < 0).astype(np.uint8), size, name=f"layer {index + 1}"))
                rep.and_channels = int((after < 0).sum())
                shape = layers[-1].out_shape
            where = qg.positions_of(shape)
            spatial = True
        else:
            layers.append(DenseLayer(rows, t, name=name, in_bits=in_bits))
            shape = (channels,)
            where = np.arange(channels)
            spatial = False
        probes.append((len(layers) - 1, quant.output[0]))
        reports.append(rep)
        scale_in = qg.act_scale(graph, quant)
        log(rep.line())
        pos = end + 1
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
