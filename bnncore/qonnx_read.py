"""Reading an ONNX model a user hands us, before qonnx or onnxruntime sees it: bounded in size,
its node domains limited to ONNX's and QONNX's own (qonnx imports the Python module a domain
names, so any other would run code the file chooses), no tensor data in other files."""

from __future__ import annotations

import math
from pathlib import Path

from .errors import BnnError

__all__ = ["QonnxImportError", "read_model", "SAFE_DOMAINS"]


class QonnxImportError(BnnError, ValueError):
    """A QONNX model that does not fold exactly to our binary network."""


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
