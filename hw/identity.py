"""A design's identity: every property its logic fixes (``design_properties``), how two
designs differ, whether a network fits a design (``check_network``), the digest a board
answers with, and the plan read back from rtl.json (pure Python, no Amaranth)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from bnncore.errors import UsageError
from bnncore.network import FoldedNetwork

from .plan import LayerFold, Plan, Window, bias_bits_for, layer_shapes, make_plan, plan_for
from .stages import from_description as stage_from_description
from .stages import properties as stage_properties

__all__ = ["layer_properties", "design_properties", "design_differences", "describe_differences", "network_plan",
           "check_network", "plan_from_rtl", "design_digest"]


def layer_properties(fold: LayerFold) -> dict:
    """{property: value} of what the generated logic of one layer fixes: its kind and shape,
    the width of its input values, its window (map, kernel, padding, pad value) and its pools
    (size, the channels that AND), and its folding. The names are what a refusal shows."""
    k = fold.index
    props = {f"layer {k} kind": fold.kind, f"layer {k} inputs": fold.n_in, f"layer {k} outputs": fold.n_out,
             f"layer {k} input bits": fold.in_bits, f"layer {k} PE": fold.pe, f"layer {k} SIMD": fold.simd}
    w = fold.window
    if w is None:
        props[f"layer {k} window"] = None
    else:
        props.update({f"layer {k} window": "whole map (dense)" if w.dense else f"{w.kh}x{w.kw}",
                      f"layer {k} input map": f"{w.channels}x{w.height}x{w.width}",
                      f"layer {k} padding": w.padding, f"layer {k} pad value": w.pad_value})
    props[f"layer {k} pools"] = len(fold.pools)
    if fold.weight_memory:      # a placed ROM's rows hold one word (hw/layout.py): another layout
        props[f"layer {k} weight memory"] = fold.weight_memory
    for j, stage in enumerate(fold.pools):
        props.update(stage_properties(stage, k, j))
    return props


def design_properties(plan: Plan) -> dict:
    """{property: value} of everything the generated logic of ``plan`` fixes at generation:
    every layer's ``layer_properties``, the buffering, the pipeline, the output bias width and
    the ports. Weights and thresholds are not among them: they are the ROM files' contents,
    which another network of the same properties replaces (``bnn sim --swap-roms``,
    ``bnn synth --swap-weights``, ``bnn load``). The input scheme's threshold level is not
    either, nor its table: the host turns pixels into input values with the network's own."""
    props = {"layers": len(plan.layers)}
    for fold in plan.layers:
        props.update(layer_properties(fold))
    props.update({"banks": plan.banks, "out_depth": plan.out_depth, "bias_bits": plan.bias_bits,
                  "pipelined": plan.pipelined, "input width": plan.in_width, "input beats": plan.in_beats,
                  "input value bits": plan.value_bits, "class bits": plan.class_bits,
                  "score bits": plan.score_bits})
    return props


_MISSING = object()


def design_differences(have: dict, want: dict) -> list:
    """[(property, have's value, want's value)] where two ``design_properties`` differ, in
    the order of ``have`` (then what only ``want`` has)."""
    names = list(have) + [n for n in want if n not in have]
    return [(n, have.get(n, _MISSING), want.get(n, _MISSING)) for n in names
            if have.get(n, _MISSING) != want.get(n, _MISSING)]


def describe_differences(diffs: list, have: str, want: str, limit: int = 3) -> str:
    """'PROPERTY: HAVE has A, WANT B; ...' for the first ``limit`` differences."""
    def show(v):
        if v is _MISSING or v is None:
            return "none"
        if isinstance(v, list):
            return "[" + ", ".join(map(str, v[:12])) + (", ...]" if len(v) > 12 else "]")
        return str(v)
    parts = [f"{n}: {have} has {show(a)}, {want} {show(b)}" for n, a, b in diffs[:limit]]
    return "; ".join(parts) + (f" (and {len(diffs) - limit} more)" if len(diffs) > limit else "")


def network_plan(net: FoldedNetwork, plan: Plan) -> Plan | None:
    """The plan of ``net`` with ``plan``'s folding and options, or None when ``plan``'s
    folding cannot fold ``net`` (another number of layers, a PE or SIMD its shapes refuse)."""
    try:
        mine = plan_for(net, [(l.pe, l.simd) for l in plan.layers], banks=plan.banks, out_depth=plan.out_depth,
                        bias_bits=plan.bias_bits, pipelined=plan.pipelined)
    except (TypeError, ValueError):
        return None
    return replace(mine, layers=tuple(replace(f, weight_memory=l.weight_memory) for f, l in zip(mine.layers, plan.layers)))


def check_network(net: FoldedNetwork, plan: Plan):
    """Raise ValueError if ``plan`` does not fit ``net``: a property of the logic differs
    (``design_properties``, named in the message), or an output bias does not fit its width."""
    have = design_properties(plan)
    mine = network_plan(net, plan)
    if mine is not None:
        want = design_properties(mine)
    else:   # shapes only: the folding does not apply to the network
        want = {}
        for fold in layer_shapes(net):
            want.update(layer_properties(fold))
        want["layers"] = len(layer_shapes(net))
        have = {n: v for n, v in have.items() if n in want}
        for d in (have, want):
            for n in [n for n in d if n.endswith((" PE", " SIMD"))]:
                del d[n]
    diffs = design_differences(have, want)
    if diffs:
        raise UsageError(f"network {net.spec} differs from the design ({plan.spec}) in what its logic fixes: "
                         + describe_differences(diffs, "the design", "the network"))
    bias = net.head.bias
    lo, hi = -(1 << (plan.bias_bits - 1)), (1 << (plan.bias_bits - 1)) - 1
    bad = [int(c) for c in ((bias < lo) | (bias > hi)).nonzero()[0]]
    if bad:
        raise UsageError(f"output bias {int(bias[bad[0]])} of class {bad[0]} does not fit the plan's "
                         f"bias_bits={plan.bias_bits} (signed range [{lo}, {hi}]); make the plan with "
                         f"bias_bits={bias_bits_for(net)} (bias_bits_for(net))")


def plan_from_rtl(info) -> Plan:
    """The folding plan an RTL directory was generated for (its RtlDesign, or rtl.json's
    object); ValueError when its fields do not make one."""
    field = info.__getitem__ if isinstance(info, dict) else lambda name: getattr(info, name)
    try:
        rows = field("folding")
        if not any("window" in l for l in rows):
            plan = make_plan(field("topology"), [(l["pe"], l["simd"]) for l in rows], banks=field("banks"),
                             out_depth=field("out_depth"), bias_bits=field("bias_bits"),
                             pipelined=field("pipelined"))
            layers = tuple(replace(f, weight_memory=l.get("weight_memory", "")) for f, l in zip(plan.layers, rows))
            return replace(plan, layers=layers)
        layers = tuple(LayerFold(l["n_in"], l["n_out"], l["pe"], l["simd"], l["kind"], k, l.get("in_bits", 1),
                                 Window.from_description(l["window"]) if "window" in l else None,
                                 tuple(stage_from_description(p) for p in l.get("pools", ())),
                                 l.get("weight_memory", ""))
                       for k, l in enumerate(rows))
        return Plan(layers, field("banks"), field("out_depth"), field("bias_bits"), field("pipelined"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"rtl.json: fields 'topology', 'folding', 'banks', 'out_depth', 'bias_bits', 'pipelined' "
                         f"do not make a folding plan ({type(e).__name__}: {e})") from None


def design_digest(info) -> str:
    """Hex sha256 of the ``design_properties`` of the RTL that ``info`` (its RtlDesign)
    describes: equal for two designs exactly when their logic is the same, so that the ROM
    files of one run right in the other. Every check of a swap uses it (``bnn synth
    --swap-weights``, ``bnn load``, the board's INFO answer)."""
    props = design_properties(plan_from_rtl(info))
    return hashlib.sha256(json.dumps(sorted(props.items()), separators=(",", ":")).encode()).hexdigest()
