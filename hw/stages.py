"""Stages on the feature-map stream behind a convolution's engine: the max-pool, and the kinds
registered from outside the package (bnncore.kinds).

A stage is the plan's record of one such operation (a frozen dataclass: ``Pool`` in
hw/plan.py is one), with ``kind``, ``channels``, ``height``, ``width`` (its input map),
``out_h``, ``out_w`` (its output map, the same channels), ``token()`` (its part of the plan's
topology string), ``describe()`` (its rtl.json entry, with a ``kind`` field but for a pool),
``from_description(d)`` (a classmethod reading that entry back) and ``properties()`` (what its
logic fixes, for the design digest). ``register_stage`` adds a kind with the functions that
make its Amaranth unit (a component with a stream ``i`` and a stream ``o`` of ``channels`` bits,
channel c in bit c) and its cycle-model unit (a ``bnncore.hw.cycles.Unit``). The accelerator
and the cycle model walk the same stages through these functions; nothing else names a kind.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bnncore.errors import UsageError

from .plan import Pool

__all__ = ["StageKind", "register_stage", "stage_kind", "from_description", "hardware_unit", "cycle_model_unit",
           "properties"]


@dataclass(frozen=True)
class StageKind:
    name: str
    stage: type          # the plan's record of it
    unit: object         # stage -> its Amaranth component, or "module:attribute" of that function
    cycle_unit: object   # stage -> its cycle-model unit, or "module:attribute"


_KINDS: dict = {}


def register_stage(name: str, stage: type, unit, cycle_unit) -> StageKind:
    """Add a stage kind: ``stage`` its record's class, ``unit(stage)`` and ``cycle_unit(stage)``
    the functions that make its Amaranth component and its cycle-model unit."""
    if name in _KINDS:
        raise UsageError(f"a stage kind named {name!r} is already registered")
    kind = StageKind(name, stage, unit, cycle_unit)
    _KINDS[name] = kind
    return kind


def _resolve(ref):
    if isinstance(ref, str):
        module, attr = ref.split(":")
        return getattr(importlib.import_module(module), attr)
    return ref


def stage_kind(stage) -> StageKind:
    for kind in _KINDS.values():
        if isinstance(stage, kind.stage):
            return kind
    raise UsageError(f"{type(stage).__name__} is not a registered stage kind (bnncore.hw.stages.register_stage)")


def from_description(d: dict):
    """A stage from its rtl.json entry (an entry without ``kind`` is a pool, as before kinds)."""
    name = d.get("kind", "pool")
    if name not in _KINDS:
        raise UsageError(f"stage kind {name!r} is not registered here; expected one of {', '.join(_KINDS)}")
    return _KINDS[name].stage.from_description(d)


def hardware_unit(stage):
    """The stage's Amaranth component."""
    return _resolve(stage_kind(stage).unit)(stage)


def cycle_model_unit(stage):
    """The stage's unit in the cycle model (hw/cycles.py)."""
    return _resolve(stage_kind(stage).cycle_unit)(stage)


def properties(stage, layer: int, j: int) -> dict:
    """{property: value} of what the stage's logic fixes, named for refusals."""
    return {f"layer {layer} {stage.kind} {j} {name}": value for name, value in stage.properties().items()}


register_stage("pool", Pool, "bnncore.hw.window:MaxPool", "bnncore.hw.cycle_units:MaxPoolUnit")
