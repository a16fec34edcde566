"""Layer kinds: the built-in four, one module each (dense.py, conv.py, pool.py, output.py: the
IR class, its checks, its manifest entry and its golden models), and the seam a new kind from
outside the package plugs into.

A registered kind is an operation on feature maps without weights (bits in, bits out, a
(channels, height, width) map to another), as the max-pool is: it follows a convolution and
runs on the pixel stream between the convolution's engine and the next window. Its software
half is a ``MapKind`` (this module: the IR class, its spec token, digest, manifest entry and
golden model); its hardware half is a ``MapStage`` (``bnncore.hw.stages``: the plan's record
of it, its Amaranth unit and its cycle-model unit). One ``register`` call each, and the
network, the export format, the golden model, the summary, the RTL generator, the cycle model
and the simulators take it without naming it::

    register(InvertKind())            # software: bnncore.kinds
    register_stage(InvertStage)       # hardware: bnncore.hw.stages

``tests/test_kind_seam.py`` registers such a kind from outside the package and runs it from
the golden model through RTL generation to a Verilator co-simulation.
"""

from __future__ import annotations

from ..errors import UsageError

__all__ = ["MapKind", "register", "kind_of", "kind_named", "names", "BUILTIN", "layer_kind"]

#: {name: MapKind}, in the order they were registered.
_KINDS: dict = {}


class MapKind:
    """What the software stages need of a weightless feature-map layer kind. Its layers (of
    class ``layer``) have ``name``, ``kind`` (this kind's name), ``in_shape`` and ``out_shape``
    ((channels, height, width)), ``has_weights = False`` and ``in_bits = 1``, and are frozen."""

    name: str = ""
    layer: type = object
    #: maps the layer reads (all of its ``in_shape``): 2 or more joins branches of the
    #: network's graph (``FoldedNetwork.inputs``), as a residual add does
    arity: int = 1
    #: its QONNX import rule, if it has one: ``qonnx_rule(reader, node) -> bool`` takes the
    #: current node of a ``bnncore.qonnx_import.Reader`` (and the nodes after it) when they
    #: are a layer of this kind, adds the layer and moves on; False leaves the node to others
    qonnx_rule = None

    def token(self, layer) -> str:
        """The layer's part of the topology string (as ``mp2`` is a pool's)."""
        raise NotImplementedError

    def digest(self, layer) -> bytes:
        """Everything the layer computes, as bytes (its part of ``FoldedNetwork.digest``)."""
        raise NotImplementedError

    def entry(self, layer) -> dict:
        """The layer's fields in an export's manifest.json (JSON values), besides its name, kind,
        in_shape and out_shape."""
        raise NotImplementedError

    def build(self, entry: dict, name: str, in_shape: tuple):
        """The layer from its manifest entry; ValueError (the message naming the field) when the
        entry does not make one."""
        raise NotImplementedError

    def golden(self, layer, *maps):
        """The layer on a batch: ``arity`` maps of (N, height, width, channels) 0/1 uint8 in, the
        same layout of its output map out. Integers only."""
        raise NotImplementedError

    def hashed(self, layer) -> bytes:
        """Its part of ``FoldedNetwork.digest``: the kind, the input shape, then ``digest``."""
        return f";{self.name} {'x'.join(map(str, layer.in_shape))};".encode() + self.digest(layer)

    def stage(self, layer):
        """Its hardware stage (one of ``bnncore.hw.stages``' registered kinds)."""
        raise NotImplementedError

    def describe(self, layer) -> str:
        """One line for ``bnn summary``."""
        return ""

    def summary_fields(self, layer) -> dict:
        """The layer's own fields in ``bnn summary``'s row (its note: ``describe``)."""
        return {"note": self.describe(layer)}


def register(kind: MapKind) -> MapKind:
    """Add ``kind`` (a MapKind instance); its name must be new."""
    if not isinstance(kind, MapKind) or not kind.name or not isinstance(kind.layer, type):
        raise TypeError(f"register takes a MapKind with a name and a layer class, not {kind!r}")
    if kind.name in _KINDS or kind.name in BUILTIN or kind.name == "hidden":   # "hidden": format 1's dense
        raise UsageError(f"a layer kind named {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def kind_of(layer) -> MapKind | None:
    """The registered kind of ``layer``, or None (a built-in layer, or not a layer)."""
    for kind in _KINDS.values():
        if isinstance(layer, kind.layer):
            return kind
    return None


def kind_named(name) -> MapKind | None:
    return _KINDS.get(name) if isinstance(name, str) else None


def names() -> tuple:
    return tuple(_KINDS)


from . import conv, dense, output, pool  # noqa: E402  (the built-in kinds import the registry's module)

#: {name: kind} of the built-in kinds, in the order of a network: its manifest handlers and
#: golden models (bnncore.exports, bnncore.golden).
BUILTIN = {k.name: k for k in (dense.KIND, conv.KIND, pool.KIND, output.KIND)}


def layer_kind(layer):
    """The kind of any layer, built-in or registered (its token, digest and summary row)."""
    kind = BUILTIN.get(getattr(layer, "kind", None))
    if kind is not None and isinstance(layer, kind.layer):
        return kind
    kind = kind_of(layer)
    if kind is None:
        raise TypeError(f"{type(layer).__name__} is not a layer of a built-in or registered kind")
    return kind
