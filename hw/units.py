"""What feeds each layer's engine and what drains it: the parts of the accelerator around its
engines, registered by name, that the accelerator (hw/accelerator.py) and the cycle model
(hw/cycles.py) both walk in the plan's order.

A layer's fold names its feed (``LayerFold.feed``: ``"words"``, ``"vector"``, ``"map"``) and
its drain (``LayerFold.drain``: ``"vector"``, ``"map"``, ``"scores"``). A feed writes the
engine's input buffer, from the input stream or from the drain of the layer before; a drain
takes the engine's results and hands the next layer's feed what it reads. Each has two
functions, given as ``"module:attribute"`` so that this module needs no Amaranth:

- ``unit(m, core, plan, fold, engine, src)`` adds its Amaranth units to the module ``m`` of the
  ``AcceleratorCore`` ``core``; a feed connects ``src`` (what the drain before returned, None
  for the first layer: the core's ``i_stream``) to ``engine.wr``; a drain appends its taps to
  ``core.taps`` and returns what the next feed reads.
- ``cycle_unit(plan, fold, engine, src, units)``, the same in the cycle model: appends its
  units (hw/cycle_units.py) to ``units`` in the accelerator's order and links them; a drain
  returns what the next feed reads, the output's drain the unit that counts results.

A feed also says how wide the words it writes are: ``words(plan, fold)`` is (bits per word,
words per image) of the engine's input buffer. Stages on a drained map (the max-pool, kinds
from other packages) are registered in hw/stages.py.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from bnncore.errors import UsageError

__all__ = ["Part", "register_feed", "register_drain", "feed", "drain", "engine_input", "build"]


@dataclass(frozen=True)
class Part:
    name: str
    unit: str                      # "module:function" adding its Amaranth units
    cycle_unit: str                # "module:function" adding its cycle-model units
    words: Callable | None = None  # a feed's (bits per word, words per image)


_FEEDS: dict = {}
_DRAINS: dict = {}


def _register(table, what, name, unit, cycle_unit, words=None) -> Part:
    if name in table:
        raise UsageError(f"a {what} named {name!r} is already registered")
    table[name] = part = Part(name, unit, cycle_unit, words)
    return part


def register_feed(name: str, unit: str, cycle_unit: str, words: Callable) -> Part:
    return _register(_FEEDS, "feed", name, unit, cycle_unit, words)


def register_drain(name: str, unit: str, cycle_unit: str) -> Part:
    return _register(_DRAINS, "drain", name, unit, cycle_unit)


def feed(fold) -> Part:
    return _FEEDS[fold.feed]


def drain(fold) -> Part:
    return _DRAINS[fold.drain]


def build(ref: str, *args):
    """Call the function that ``ref`` ("module:attribute") names."""
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)(*args)


def engine_input(plan, fold) -> tuple:
    """(bits per word, words per image) of ``fold``'s engine's input buffer."""
    return feed(fold).words(plan, fold)


register_feed("words", "bnncore.hw.accelerator:feed_words", "bnncore.hw.cycles:feed_words",
              lambda plan, fold: (plan.in_width, plan.in_beats))
register_feed("vector", "bnncore.hw.accelerator:feed_vector", "bnncore.hw.cycles:feed_vector",
              lambda plan, fold: (plan.layers[fold.index - 1].pe, plan.layers[fold.index - 1].nf))
register_feed("map", "bnncore.hw.accelerator:feed_map", "bnncore.hw.cycles:feed_map",
              lambda plan, fold: (fold.word_bits, fold.sf))
register_drain("vector", "bnncore.hw.accelerator:drain_vector", "bnncore.hw.cycles:drain_vector")
register_drain("map", "bnncore.hw.accelerator:drain_map", "bnncore.hw.cycles:drain_map")
register_drain("scores", "bnncore.hw.accelerator:drain_scores", "bnncore.hw.cycles:drain_scores")
