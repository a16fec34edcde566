"""QONNX: our folded networks as QONNX models, for FINN users and qonnx's own executor.

``export_qonnx(net, path)`` writes a folded network as an ONNX model in the QONNX dialect,
in the ±1 domain FINN's streamlined BNNs use:

- the input quantizer: ``MultiThreshold`` of the raw pixels at the threshold level, giving ±1
  (``threshold`` and ``probability`` input; a probability-input network infers with pixels
  >= 128), or the raw pixels as they are (``uint8``);
- a dense layer: ``MatMul`` with the ±1 weights (annotated ``BIPOLAR``), then a
  ``MultiThreshold`` to ±1 (``out_scale`` 2, ``out_bias`` -1). Our rule ``popcount >= T`` is
  ``dot >= 2T - n`` on ±1 values; an 8-bit first layer's ``sum >= T`` is
  ``dot >= T - 255 * zeros(w)`` on the raw pixels (network.py);
- a convolution: ``Pad`` with the pad value (±1, or the raw pad pixel), ``Conv`` with the
  ±1 weights in ONNX's (out, in, ky, kx) order, then the same ``MultiThreshold`` (NCHW);
- a pool: ``s * MaxPool(s * x)`` with ``s`` = +1 for an OR channel and -1 for an AND one
  (a min-pool of ±1 values is the AND of their bits);
- the first dense layer after a convolution: a ``Transpose`` to NHWC before ``Flatten``, so
  that the flatten order is ours, (y, x, channel);
- the output head: ``MatMul``, then ``Add`` of the integer biases: the scores themselves,
  ``2 * popcount - n + bias``.

Every value is an integer well inside float32's exact range, so qonnx's executor
(``qonnx.core.onnx_exec``) gives exactly our golden model's scores. The graph has batch size
1 (as FINN wants); ``run_qonnx`` executes it on a batch. Needs ``bnncore[interop]`` (onnx,
onnxruntime, qonnx).
"""

from __future__ import annotations

import numpy as np

from .errors import SetupError, UsageError
from .kinds import BUILTIN
from .network import FoldedNetwork

__all__ = ["export_qonnx", "run_qonnx", "qonnx_model", "model_input", "batched", "INTEROP_INSTALL"]

INTEROP_INSTALL = "pip install 'bnncore[interop]' (onnx, onnxruntime, qonnx, Brevitas), or `make setup`"
QONNX_DOMAIN = "qonnx.custom_op.general"
INPUT, OUTPUT = "global_in", "global_out"


def _need():
    try:
        import onnx  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError:
        raise SetupError(f"QONNX needs onnx and qonnx: {INTEROP_INSTALL}") from None


class _Graph:
    """Nodes and initializers, with names made unique by a running count."""

    def __init__(self):
        self.nodes, self.inits, self.bipolar, self.count = [], [], [], 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, value, bipolar: bool = False) -> str:
        from onnx import numpy_helper
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        if bipolar:
            self.bipolar.append(name)
        return name

    def node(self, op: str, inputs: list, stem: str, qonnx: bool = False, bipolar: bool = False, **attrs) -> str:
        from onnx import helper
        out = self.name(stem)
        if bipolar:                             # a ±1 activation, whatever type inference makes of it
            self.bipolar.append(out)
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs,
                                           **({"domain": QONNX_DOMAIN} if qonnx else {})))
        return out

    def threshold(self, x: str, thresholds, layout: str) -> str:
        t = np.asarray(thresholds, np.float32).reshape(-1, 1)
        return self.node("MultiThreshold", [x, self.const("thresholds", t)], "act", qonnx=True, bipolar=True,
                         out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0, data_layout=layout)


def qonnx_model(net: FoldedNetwork, batch: int = 1):
    """The QONNX ``ModelWrapper`` of ``net`` (see the module docstring), shapes and data
    types annotated."""
    _need()
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    other = next((s for s in net.layers if s.kind not in BUILTIN), None)
    if other is not None or not net.is_chain:
        raise UsageError(f"network {net.spec}: " + (f"{other.name} is of kind {other.kind!r}, which has no QONNX form"
                                                    if other is not None else "a graph of layers has no QONNX form "
                                                    "in bnncore yet (a chain has)"))
    g = _Graph()
    first = net.stages[0]
    spatial = len(first.in_shape) == 3
    shape = [batch, *first.in_shape] if spatial else [batch, first.n_in]
    x = INPUT
    scheme = net.input.scheme
    if scheme in ("threshold", "probability"):
        level = net.input.level if scheme == "threshold" else 128
        x = g.node("MultiThreshold", [x, g.const("input_level", np.full((1, 1), level, np.float32))], "input_pm1",
                   qonnx=True, bipolar=True, out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0,
                   data_layout="NCHW" if spatial else "NC")
    elif scheme == "table":
        # the input quantizer as FINN writes one: a MultiThreshold of 255 thresholds counts the
        # table's levels below the pixel, which is table[pixel] for a non-decreasing table
        table = np.asarray(net.input.table)
        if (np.diff(table) < 0).any():
            raise UsageError(f"network {net.spec}: its input table decreases somewhere, which a MultiThreshold "
                             "(QONNX's input quantizer) cannot express")
        t = np.searchsorted(table, np.arange(255), side="right").astype(np.float32).reshape(1, 255)
        x = g.node("MultiThreshold", [x, g.const("input_table", t)], "input_levels", qonnx=True,
                   out_dtype="UINT8", data_layout="NCHW" if spatial else "NC")
    flat = not spatial
    for s in net.stages:      # each kind writes its nodes (bnncore/kinds/<kind>.py)
        x, flat = BUILTIN[s.kind].qonnx(s, g, x, flat)
    x_out = g.nodes[-1].output
    x_out[0] = OUTPUT
    graph = helper.make_graph(g.nodes, "bnncore", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, net.head.n_out])],
                              initializer=g.inits)
    model = ModelWrapper(helper.make_model(graph, producer_name="bnncore",
                                           opset_imports=[helper.make_opsetid("", 13)]))
    model = model.transform(InferShapes())
    model.set_tensor_datatype(INPUT, DataType["UINT8"])
    # the activations' types, as the conversion of a bipolar MatMul to XNOR-popcount reads them:
    # qonnx's inference, then BIPOLAR wherever the values are ±1 (it does not see through Mul)
    model = model.transform(InferDataTypes())
    for name in g.bipolar:
        model.set_tensor_datatype(name, DataType["BIPOLAR"])
    return model


#: the model metadata (``metadata_props``) where the export records its input convention: the
#: model's float input is ``pixel * scale + offset``, which ``bnn import`` reads back
PIXEL_SCALE_KEY, PIXEL_OFFSET_KEY = "bnncore.pixel_scale", "bnncore.pixel_offset"


def export_qonnx(net: FoldedNetwork, path):
    """Write ``net`` as a QONNX model (batch 1) to ``path``, atomically (its folder created when
    missing); return the path. The model's input is the pixels themselves (UINT8), recorded in
    its metadata for the import."""
    import os
    from pathlib import Path

    from .fileio import temp_file
    path = Path(path)
    model = qonnx_model(net)
    model.set_metadata_prop(PIXEL_SCALE_KEY, "1")
    model.set_metadata_prop(PIXEL_OFFSET_KEY, "0")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path, ".onnx")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def model_input(shape, pixels: np.ndarray, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """A model's float32 input of ``shape`` (batch first) for ``pixels`` (N, values) flat in our
    (y, x, channel) order: ``pixel * scale + offset``, NCHW for a 4-D input."""
    x = np.asarray(pixels).astype(np.float64) * scale + offset
    dims = tuple(shape[1:])
    if len(dims) == 3:
        c, h, w = dims
        x = x.reshape(len(x), h, w, c).transpose(0, 3, 1, 2)
    else:
        x = x.reshape(len(x), *dims)
    return np.ascontiguousarray(x, np.float32)


def batched(model, batch: int):
    """``model`` (a ``ModelWrapper``) cleaned up for ``batch`` images at a time."""
    from qonnx.util.cleanup import cleanup_model
    shape = model.get_tensor_shape(model.graph.input[0].name)
    return cleanup_model(model, override_inpsize=str((batch, *shape[1:])))


def run_qonnx(model, images: np.ndarray) -> np.ndarray:
    """Scores of qonnx's executor for ``images`` (N, pixels) of uint8, flat in our (y, x,
    channel) order; ``model``: a path or a ``ModelWrapper``. The model is run at batch N."""
    _need()
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    m = model if isinstance(model, ModelWrapper) else ModelWrapper(str(model))
    x = model_input(m.get_tensor_shape(m.graph.input[0].name), images)
    m = batched(m, len(x))
    out = execute_onnx(m, {m.graph.input[0].name: x})
    return out[m.graph.output[0].name]
