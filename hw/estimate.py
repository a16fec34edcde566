"""Resources before synthesis: LUT4s, flip-flops, carries and block RAMs per layer and in total,
from the plan alone, in milliseconds (pure Python, no Amaranth, no Yosys).

Memories: every memory the generator makes (weight and threshold ROM slices, input buffers,
line buffers, pool rows, the output FIFO) is placed as Yosys' ``memory_libmap`` places it: in
whichever of logic, block RAM and (ECP5, Gowin) LUT RAM costs least, a ROM bit in logic costing 1/16,
a RAM bit 1, a block RAM and a LUT-RAM cell the family's cost fitted to the corpus
(``memory`` in costs.json). Logic: for each part of the design (each layer with its ROMs,
window, pool and pixels; the scores and arg-max; the stream and control), a linear model of
the fold's sizes (``FEATURES``), its coefficients fitted with Yosys' counts of a corpus of
synthesized designs (bench/estimate.py writes costs.json beside the family modules; its
``check`` prints the model's error against that corpus). A family without fitted costs has no
estimate.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .design import _value_bits
from .layout import rom_slices, weight_rom
from .memories import LINK_COST, kind_of, loaded
from .plan import MEMORY_MIN_BITS, POOL_LOGIC_BITS, Plan, collector_banks, engine_banks
from .units import engine_input

__all__ = ["COSTS_FILE", "Memory", "memories", "place", "features", "estimate", "estimate_note", "fit",
           "error_table", "over_budget", "crowded", "TARGETS"]

COSTS_FILE = Path(__file__).parent / "families" / "costs.json"
#: what the model estimates per part (the family's summary of Yosys' cells, hw/families)
TARGETS = ("luts", "ffs", "carries")
ROM_BIT_COST, RAM_BIT_COST = 1 / 16, 1.0


@dataclass(frozen=True)
class Memory:
    """A memory of the generated design: ``name`` as Yosys names it (its path below bnn_top),
    ``part`` the report's part it belongs to, ``writes`` False for a ROM, ``kind`` the memory
    kind the plan placed it in (hw/memories.py; ``""``: where Yosys maps it)."""
    name: str
    part: str
    depth: int
    width: int
    writes: bool
    kind: str = ""

    @property
    def bits(self) -> int:
        return self.depth * self.width


def memories(plan: Plan) -> list:
    """Every memory of the design ``plan`` generates. Where weights are loaded at run time
    (hw/memories.py) the design is built writable, every ROM then a RAM with a write port."""
    out, writable = [], bool(loaded(plan))
    for f in plan.layers:
        k, part = f.index, f"layer {f.index}"
        rom = weight_rom(f, plan.pipelined)
        if f.weight_memory:     # one memory of the whole row (hw/memories.py)
            out.append(Memory(f"rom_w{k}.mem", part, rom.depth, rom.width, writable, f.weight_memory))
        else:
            out += [Memory(f"rom_w{k}.slice[{s}].mem", part, rom.depth, w, writable)
                    for s, (_, w) in enumerate(rom_slices(rom.width, rom.depth))]
        tw = f.pe * _value_bits(plan, f)
        out += [Memory(f"rom_t{k}.slice[{s}].mem", part, f.nf, w, writable)
                for s, (_, w) in enumerate(rom_slices(tw, f.nf))]
        in_width, in_slots = engine_input(plan, f)
        banks = engine_banks(plan, f)
        if in_width == f.word_bits and in_slots == f.sf and banks * in_slots * in_width > MEMORY_MIN_BITS:
            out.append(Memory(f"core.layer{k}_buffer", part, banks << max(1, (f.sf - 1).bit_length()), f.word_bits, True))
        w = f.window
        if w is not None:
            cbits = (w.channels // f.simd - 1).bit_length()
            out.append(Memory(f"core.window{k}_lines", part, w.rows << (w.x_bits + cbits), f.simd * w.value_bits, True))
            for j, p in enumerate(f.pools):
                if p.out_w * p.channels > POOL_LOGIC_BITS:
                    out.append(Memory(f"core.pool{k}_{j}_rows", part, max(2, p.out_w), p.channels, True))
    out_width = plan.class_bits + plan.n_classes * plan.score_bits
    out.append(Memory("core.fifo_storage", "stream and control", plan.out_depth, out_width, True))
    return out


def place(mem: Memory, device, costs: dict) -> tuple:
    """(kind, count) where Yosys puts ``mem`` on ``device``: ("logic", 0), ("bram", blocks) or
    ("lutram", cells), the cheapest by ``costs`` (the family's ``memory`` costs); a memory the
    plan placed, (its kind, blocks)."""
    if mem.kind:
        return mem.kind, kind_of(mem.kind, device).blocks(mem.depth, mem.width)
    options = [(mem.bits * (RAM_BIT_COST if mem.writes else ROM_BIT_COST), "logic", 0)]
    blocks = device.rom_blocks(mem.depth, mem.width) if mem.depth > 1 else 0
    if blocks:     # a one-word ROM is a constant to Yosys, not a memory
        options.append((blocks * costs["bram"], "bram", blocks))
    if mem.writes and device.fpga_family.distributed_ram:
        cells = math.ceil(mem.depth / 16) * math.ceil(mem.width / 4)
        options.append((cells * costs["lutram"], "lutram", cells))
    _, kind, n = min(options)
    return kind, n


#: the sizes each part's LUTs, flip-flops and carries are linear in
FEATURES = {
    "layer": ("one", "xnor", "xnor_pipelined", "acc", "pe", "word", "reg_buffer", "logic_rom", "logic_ram",
              "window", "window_word", "window_words", "window_bits", "pool", "pixels", "row_extra", "bram_mux",
              "lutram_mux", "slice_addr"),
    "scores and arg-max": ("one", "scores", "argmax"),
    "stream and control": ("one", "layers", "maps", "in_width", "logic_ram"),
}


def features(plan: Plan, device, costs: dict) -> dict:
    """{part: {"features": {feature: value}, "memory": {"brams", "lutram"}, "placed": [(memory,
    kind, count)]}} of ``plan`` on ``device``, its memories placed by ``costs["memory"]``."""
    places = {m.name: (m, *place(m, device, costs["memory"])) for m in memories(plan)}
    parts = {}
    for f in plan.layers:
        part = f"layer {f.index}"
        mine = [(m, kind, n) for m, kind, n in places.values() if m.part == part]
        in_width, in_slots = engine_input(plan, f)
        memory_buffer = any(m.name.endswith("_buffer") for m, _, _ in mine)
        w = f.window
        parts[part] = {
            "one": 1, "xnor": f.pe * f.simd * f.in_bits, "xnor_pipelined": f.pe * f.simd if plan.pipelined else 0,
            "acc": f.pe * f.acc_bits, "pe": f.pe, "word": f.word_bits,
            "reg_buffer": 0 if memory_buffer else engine_banks(plan, f) * max(in_width * in_slots, f.sf * f.word_bits),
            # a LUT4 per 16 words of a bit, and the multiplexers between them
            "logic_rom": sum(m.width * (2 * math.ceil(m.depth / 16) - 1) for m, kind, _ in mine
                             if kind == "logic" and not m.writes),
            "logic_ram": sum(m.bits for m, kind, _ in mine if kind == "logic" and m.writes),
            "window": int(w is not None), "window_word": f.word_bits if w is not None else 0,
            # the window's words per pixel and per window (its counters and the word it reads)
            "window_words": (w.channels // f.simd) * w.kh * w.kw if w is not None else 0,
            "window_bits": w.channels * w.value_bits if w is not None else 0,
            "pool": sum(p.channels + (p.out_w * p.channels if p.out_w * p.channels <= POOL_LOGIC_BITS else 0)
                        for p in f.pools),
            "pixels": f.n_out * collector_banks(plan, f) if w is not None else 0,
            # a row of several words registered, then one selected (hw/layout.py weight_rom)
            "row_extra": weight_rom(f, plan.pipelined).width - f.weight_width,
            # block RAMs stacked in depth: their outputs multiplexed
            "bram_mux": sum(m.width * (_depth_blocks(m, device) - 1) for m, kind, _ in mine if kind == "bram"),
            "lutram_mux": sum(m.width * (math.ceil(m.depth / 16) - 1) for m, kind, _ in mine if kind == "lutram"),
            # each ROM slice has its own copy of the address register
            "slice_addr": sum(max(1, (m.depth - 1).bit_length()) for m, _, _ in mine if not m.writes),
        }
    last = plan.layers[-1]
    parts["scores and arg-max"] = {"one": 1, "scores": plan.n_classes * plan.score_bits,
                                   "argmax": last.pe * plan.score_bits}
    parts["stream and control"] = {"one": 1, "layers": len(plan.layers), "in_width": plan.in_width,
                                   "maps": sum(f.window is not None for f in plan.layers),
                                   "logic_ram": sum(m.bits for m, kind, _ in places.values()
                                                    if m.part == "stream and control" and kind == "logic")}
    memory = {}
    for m, kind, n in places.values():
        d = memory.setdefault(m.part, {"brams": 0, "lutram": 0})
        if kind != "logic":
            key = "brams" if kind == "bram" else kind
            d[key] = d.get(key, 0) + n
    return {part: {"features": v, "memory": memory.get(part, {"brams": 0, "lutram": 0}),
                   "placed": [p for p in places.values() if p[0].part == part]} for part, v in parts.items()}


def _depth_blocks(mem: Memory, device) -> int:
    """Block RAMs stacked in depth in the cheapest configuration for ``mem``."""
    d, w = min(device.bram_shapes, key=lambda s: (math.ceil(mem.depth / s[0]) * math.ceil(mem.width / s[1]), -s[0]))
    return math.ceil(mem.depth / d)


def _kind(part: str) -> str:
    return "layer" if part.startswith("layer ") else part


@lru_cache(maxsize=1)
def _costs() -> dict:
    try:
        return json.loads(COSTS_FILE.read_text())
    except (OSError, ValueError):
        return {}


def estimate(plan: Plan, device, costs: dict | None = None) -> dict | None:
    """{"per_layer": [{"part", "units", "luts", "ffs", "carries", "brams", "lutram"}], "total":
    {...}, "model": {the corpus error}, "memories": [{"name", "part", "depth", "width", "rom",
    "kind", "cells"}]} of ``plan`` on ``device`` (a ``hw.families.Device``); None where its
    family has no fitted costs. LUTs count LUT4s as Yosys' netlist does (4 per LUT-RAM cell, as
    the families' summaries count them); a flip-flop that ECP5's block RAMs absorb into their
    output registers after synthesis is still counted. ``units``: where each memory of the part
    goes, as the printed table says it."""
    fam = (costs if costs is not None else _costs()).get(device.fpga_family.name)
    if not fam:
        return None
    rows, placed = [], []
    for part, v in features(plan, device, fam).items():
        coef = fam["parts"][_kind(part)]
        row = {"part": part, "units": _placement(v["placed"])}
        placed += v["placed"]
        for t in TARGETS:
            row[t] = max(0, round(sum(coef[t].get(k, 0.0) * x for k, x in v["features"].items())))
        row.update(v["memory"])
        row["luts"] += 4 * row["lutram"]     # a LUT-RAM cell is four LUT4s in the families' summaries
        rows.append(row)
    if loaded(plan):     # built only behind the board's link, writable (hw/memories.py)
        rows.append(dict(LINK_COST, part="serial link", units=["receive buffer and answers: block RAM"]))
    kinds = [k for k in device.fpga_family.memory_kinds if any(k in r for r in rows)]
    for r in rows:
        r.update({k: r.get(k, 0) for k in ("lutram", *kinds)})
    total = {k: sum(r[k] for r in rows) for k in (*TARGETS, "brams", "lutram", *kinds)}
    cells = device.fpga_family.logic_cells(total["luts"], total["ffs"])
    if cells is not None:
        total["logic_cells"] = cells
    return {"per_layer": rows, "total": total, "model": fam.get("corpus", {}),
            "memories": [{"name": m.name, "part": m.part, "depth": m.depth, "width": m.width, "rom": not m.writes,
                          "kind": kind, "cells": n} for m, kind, n in placed]}


_KINDS = {"bram": "block RAM", "lutram": "LUT RAM", "logic": "logic"}
#: how the table names a memory of the core (a ROM by its own name, w0, t0, ...)
_UNIT_NAMES = {"buffer": "input buffer", "lines": "line buffer", "rows": "pool row", "fifo_storage": "output FIFO"}


def _placement(placed: list) -> list:
    """["w0: 6 block RAMs", "t0: logic", ...]: where a part's memories go, a ROM's slices together."""
    by = {}
    for m, kind, n in placed:
        name = _UNIT_NAMES.get(re.sub(r"^core\.(?:[a-z]+\d+_)?(?:\d+_)?", "", m.name), m.name.split(".")[0][4:])
        by.setdefault(name, {}).setdefault(kind, 0)
        by[name][kind] += n
    return [f"{name}: " + ", ".join(f"{n} {_title(k)}{'s' if n > 1 else ''}" if n else _title(k) for k, n in kinds.items())
            for name, kinds in by.items()]


def _title(kind: str) -> str:
    if kind in _KINDS:
        return _KINDS[kind]
    return f"{kind_of(kind).title} block"


def estimate_note(est: dict) -> str:
    """What an estimate is and how far to trust it: its model's error against the corpus."""
    m = est.get("model") or {}
    luts = m.get("luts") or {}
    return (f"estimate before synthesis for {est.get('device', 'the device')} (hw/estimate.py; memories placed as "
            f"Yosys places them): on {m.get('designs', 0)} synthesized designs the LUT4s were within "
            f"{luts.get('mean_abs_pct', '?')}% on average, {luts.get('max_abs_pct', '?')}% at worst "
            "(python bench/estimate.py check); bnn synth measures")


def over_budget(est: dict, device) -> list:
    """What of ``est`` exceeds ``device``: ["12,345 LUT4s of the up5k's 5,280", ...]."""
    t = est["total"]
    kinds = [(k.name, f"{k.title} blocks", getattr(device, k.count)) for k in device.fpga_family.memory_kinds.values()
             if k.name in t]
    return [f"{t[k]:,} {what} of the {device.name}'s {cap:,}" for k, what, cap in
            (("luts", "LUT4s", device.luts), ("ffs", "flip-flops", device.ffs), ("brams", "block RAMs", device.brams),
             *kinds) if t[k] > cap]


def crowded(est: dict, device) -> bool:
    """Whether ``est`` fills more logic cells than ``device`` has, where a LUT4 and a flip-flop
    share one (iCE40). A preference among placements (hw/memories.py), not a refusal or a
    warning: the estimate's flip-flops are not sure enough for that (docs/hardware.md)."""
    return est["total"].get("logic_cells", 0) > device.luts


# --- calibration (bench/estimate.py) ----------------------------------------------------------

def _nnls(a, b):
    """Least squares with coefficients >= 0: features whose coefficient comes out negative are
    dropped and the rest solved again (an active-set method, enough for a dozen features)."""
    import numpy as np
    keep = list(range(a.shape[1]))
    while True:
        x = np.zeros(a.shape[1])
        if keep:
            x[keep] = np.linalg.lstsq(a[:, keep], b, rcond=None)[0]
        neg = [i for i in keep if x[i] < 0]
        if not neg:
            return x
        keep.remove(min(neg, key=lambda i: x[i]))


def _memory_costs(corpus: list, device_of) -> dict:
    """{family: {"bram", "lutram"}}: the costs that place the most of the corpus's memories
    where Yosys put them (searched on a grid)."""
    by_family = {}
    for _, plan, devices in corpus:
        for dev_name, got in devices.items():
            dev = device_of(dev_name)
            for m in memories(plan):
                if m.name in got["memories"]:
                    by_family.setdefault(dev.fpga_family.name, []).append((dev, m, got["memories"][m.name]))
    out = {}
    for fam, rows in by_family.items():
        def agree(c):
            return sum(_same(place(m, dev, c)[0], via) for dev, m, via in rows)
        grid = [{"bram": b, "lutram": lr} for lr in (0.5, 1, 2, 4, 8, 16, 32) for b in range(16, 513, 4)]
        scores = [agree(c) for c in grid]
        best = [c for c, a in zip(grid, scores) if a == max(scores)]
        out[fam] = dict(best[len(best) // 2], agree=[max(scores), len(rows)])   # the middle of the best
    return out


def _same(kind: str, via: str) -> bool:
    """Whether ``kind`` (place's) is where Yosys' log says a memory went (``via``: "logic" or
    the cell memory_libmap mapped it to: a LUT RAM's name has DPR16 (ECP5) or LUTRAM (Gowin))."""
    return kind == ("logic" if via == "logic" else "lutram" if any(k in via for k in ("DPR16", "RAM16", "LUTRAM"))
                    else "bram")


def fit(corpus: list) -> dict:
    """Fit every family's costs to ``corpus``: [(name, plan, {device: the record of
    bench/estimate.py})]. Returns the content of costs.json."""
    import numpy as np

    from .families import DEVICES
    mem = _memory_costs(corpus, DEVICES.__getitem__)
    out = {}
    for fam_name, mcost in mem.items():
        fam = {"memory": mcost, "parts": {}}
        rows = {kind: [] for kind in FEATURES}
        for _, plan, devices in corpus:
            for dev_name, got in devices.items():
                dev = DEVICES[dev_name]
                if dev.fpga_family.name != fam_name:
                    continue
                measured = {r["part"]: r for r in got["per_layer"]}
                for part, v in features(plan, dev, fam).items():
                    r = measured.get(part, {})
                    lut_ram = 4 * r.get("lutram", 0)
                    rows[_kind(part)].append((v["features"], {t: r.get(t, 0) - (lut_ram if t == "luts" else 0)
                                                              for t in TARGETS}))
        for kind, names in FEATURES.items():
            a = np.array([[fv[n] for n in names] for fv, _ in rows[kind]], float)
            fam["parts"][kind] = {}
            for t in TARGETS:
                b = np.array([y[t] for _, y in rows[kind]], float)
                w = 1 / (b + 20)          # relative error: the small designs count as much as the large
                x = _nnls(a * w[:, None], b * w)
                fam["parts"][kind][t] = {n: round(float(c), 4) for n, c in zip(names, x) if c > 0}
        out[fam_name] = fam
    for fam_name, fam in out.items():
        fam["corpus"] = _errors(corpus, {fam_name: fam})
    return out


def _errors(corpus: list, costs: dict) -> dict:
    from .families import DEVICES
    errs = {t: [] for t in (*TARGETS, "brams")}
    designs = 0
    for _, plan, devices in corpus:
        for dev_name, got in devices.items():
            est = estimate(plan, DEVICES[dev_name], costs)
            if est is None:
                continue
            designs += 1
            for t in errs:
                errs[t].append(_pct(est["total"][t], got["total"][t]))
    out = {"designs": designs}
    for t, e in errs.items():
        a = sorted(abs(x) for x in e)
        out[t] = {"mean_abs_pct": round(sum(a) / len(a), 1), "median_abs_pct": a[len(a) // 2],
                  "max_abs_pct": a[-1]} if a else {}
    return out


def _pct(est: float, real: float) -> float:
    return round(100 * (est - real) / real, 1) if real else (0.0 if est == 0 else 100.0)


def error_table(corpus: list, costs: dict | None = None) -> str:
    """A Markdown table: each design's estimated and measured totals, the error in LUTs, and the
    summary per family."""
    from .families import DEVICES
    costs = costs if costs is not None else _costs()
    lines = ["| design | device | LUT4s est. / Yosys | error | FFs est. / Yosys | carries est. / Yosys "
             "| block RAMs est. / Yosys |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, plan, devices in corpus:
        for dev_name, got in devices.items():
            est = estimate(plan, DEVICES[dev_name], costs)
            if est is None:
                continue
            e, g = est["total"], got["total"]
            lines.append(f"| {name} | {dev_name} | {e['luts']:,} / {g['luts']:,} | {_pct(e['luts'], g['luts']):+.1f}% "
                         f"| {e['ffs']:,} / {g['ffs']:,} | {e['carries']:,} / {g['carries']:,} "
                         f"| {e['brams']} / {g['brams']} |")
    lines.append("")
    for fam_name in costs:
        s = _errors(corpus, {fam_name: costs[fam_name]})
        exact = sum(1 for _, plan, devices in corpus for d, got in devices.items()
                    if DEVICES[d].fpga_family.name == fam_name
                    and estimate(plan, DEVICES[d], costs)["total"]["brams"] == got["total"]["brams"])
        lines.append(f"{fam_name}: {s['designs']} designs; LUT4s within {s['luts'].get('mean_abs_pct')}% on average "
                     f"(median {s['luts'].get('median_abs_pct')}%, worst {s['luts'].get('max_abs_pct')}%), "
                     f"flip-flops {s['ffs'].get('mean_abs_pct')}%, carries {s['carries'].get('mean_abs_pct')}%; "
                     f"block RAMs exact in {exact} of {s['designs']}; memories placed where Yosys placed them: "
                     "{} of {}".format(*costs[fam_name]["memory"].get("agree", ("?", "?"))))
    return "\n".join(lines)
