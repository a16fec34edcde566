"""What nextpnr's JSON report (``--report pnr.json``) says: the Fmax of each clock and the
critical path. The report is a file of the build folder, read as any user's file: a field that
is missing or malformed leaves its part out, never a traceback."""

from __future__ import annotations

from .tools import SynthError

__all__ = ["fmax", "critical_path"]


def fmax(pnr: dict) -> float:
    """The lowest Fmax nextpnr achieved over the design's clocks, MHz."""
    clocks = pnr.get("fmax") if isinstance(pnr.get("fmax"), dict) else {}
    values = [float(v["achieved"]) for v in clocks.values()
              if isinstance(v, dict) and isinstance(v.get("achieved"), (int, float))]
    if not values:
        raise SynthError("nextpnr's report has no Fmax (no clocked logic?)")
    return min(values)


def _cell(end: dict) -> str:
    name = str(end.get("cell", "?"))
    return name[4:] if name.startswith("top.") else name


def critical_path(pnr: dict) -> dict | None:
    """The path that sets the Fmax: the slowest of nextpnr's critical paths from a clock edge to
    the same edge (paths to or from the pins, "<async>", only when there is no other). Its start
    (the register it leaves) and end (the cell it reaches), its delay in ns split into logic
    (clock-to-q, cells, setup) and routing, and how many cells and nets it crosses."""
    paths = pnr.get("critical_paths")
    found = []
    for p in paths if isinstance(paths, list) else []:
        segments = p.get("path") if isinstance(p, dict) else None
        if not isinstance(segments, list) or not segments or not all(
                isinstance(s, dict) and isinstance(s.get("delay"), (int, float)) and isinstance(s.get("from"), dict)
                and isinstance(s.get("to"), dict) for s in segments):
            continue
        routing = [s["delay"] for s in segments if s.get("type") == "routing"]
        total = sum(s["delay"] for s in segments)
        internal = p.get("from") == p.get("to") and "<async>" not in str(p.get("from"))
        found.append((internal, total, {
            "clock": str(p.get("to")), "from": _cell(segments[0]["to"]), "to": _cell(segments[-1]["to"]),
            "ns": round(total, 3), "logic_ns": round(total - sum(routing), 3), "routing_ns": round(sum(routing), 3),
            "cells": sum(1 for s in segments if s.get("type") == "logic"), "nets": len(routing)}))
    return max(found, key=lambda f: (f[0], f[1]))[2] if found else None
