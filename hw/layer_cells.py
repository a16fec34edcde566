"""Where a synthesized design's cells go: per layer, the scores and arg-max, the stream and control.

Yosys flattens the design, but names each cell after the signal it drives (its ``autoname``
pass), and the generator names every signal of a layer's units after the layer: ``layerK_``
(the engine), ``wK_`` / ``tK_`` and ``rom_wK.`` / ``rom_tK.`` (its weight and threshold ROMs),
``windowK_`` (the convolution's window), ``poolK_`` (the pool behind it), ``pixelsK_`` (its input
pixels). ``best`` is the arg-max, ``scoreK`` the class scores held for the output; everything else (the input and output streams, the credits
and the FIFO between layers, the board top) is stream and control, but for a board's serial link. The counts are the family's
own summary of the cells (``Family.summary_cells``), so that the rows add up to the design's.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["UNITS", "attribute", "per_layer"]

#: the name prefixes of a layer's units (hw/accelerator.py, hw/engine.py, hw/window.py, hw/stages.py)
UNITS = {"layer": "engine", "w": "ROM", "t": "ROM", "window": "window", "pool": "pool", "pixels": "pixels"}
_NAME = re.compile(r"(?:rom_)?([a-z]+)(\d+)(?=[_.\[]|$)")
#: the instances around the core: bnn_fpga's (top.), the board top's link (link.accelerator.)
_WRAPPERS = re.compile(r"^(?:top\.|link\.accelerator\.)?(?:core\.)?")


def attribute(name: str) -> tuple:
    """(part, unit) of a cell of the flattened netlist: ("layer K", "engine" / "ROM" / ...),
    ("scores and arg-max", "output"), ("serial link", "link") on a board, or ("stream and control", "")."""
    if name.startswith("link.link."):
        return "serial link", "link"
    name = _WRAPPERS.sub("", name)
    m = _NAME.match(name)
    if m and m.group(1) in UNITS:
        return f"layer {int(m.group(2))}", UNITS[m.group(1)]
    if name.startswith(("best", "score")):
        return "scores and arg-max", "output"
    return "stream and control", ""


def per_layer(netlist: dict, top: str, family) -> list:
    """[{"part", "units", "luts", "ffs", "carries", "brams", ...}] of the synthesized netlist
    (Yosys' JSON) of module ``top``: each layer in order, then the scores and arg-max, a
    board's serial link, and the rest."""
    cells = netlist.get("modules", {}).get(top, {}).get("cells", {})
    types, units = {}, {}
    for name, cell in cells.items():
        part, unit = attribute(name)
        types.setdefault(part, Counter())[cell.get("type", "?")] += 1
        if unit:
            units.setdefault(part, set()).add(unit)

    def order(part):
        rest = ("scores and arg-max", "serial link", "stream and control")
        return (0, int(part.split()[1])) if part.startswith("layer ") else (1 + rest.index(part), 0)
    return [{"part": part, "units": sorted(units.get(part, ())), **family.summary_cells(dict(types[part]))}
            for part in sorted(types, key=order)]
