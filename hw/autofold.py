"""The automatic folding: the cheapest PE and SIMD per layer for a number of cycles per image,
within a device's block RAMs when given (pure Python, no Amaranth)."""

from __future__ import annotations

import math
from dataclasses import replace

from bnncore import defaults
from bnncore.errors import UsageError, option

from .layout import weight_rom
from .plan import Plan, _fold_plan, _positive_int, layer_shapes

__all__ = ["fastest_cycles", "auto_fold", "fit_findings"]


def fastest_cycles(net, max_simd: int = 256) -> int:
    """The fewest cycles per image any folding of ``net`` reaches: the slowest layer with all
    its outputs in parallel and the widest SIMD it allows."""
    def fastest(f):
        simd = max(s for s in range(1, min(f.n_in, max_simd) + 1) if f.window is None or f.window.channels % s == 0)
        return f.positions * math.ceil(f.n_in / simd)
    return max(fastest(f) for f in layer_shapes(net))


def auto_fold(topology, target_cycles: int, *, max_simd: int = 256, rom_blocks=None, buffer_blocks=None,
              weight_memories: dict | None = None, **kw) -> Plan:
    """Fold every layer as cheaply as possible (fewest PE * SIMD) within ``target_cycles``
    cycles per image, so that the layers are balanced, as FINN's folding step does.
    ``topology``: an MLP's layer sizes, or a FoldedNetwork (a convolution's cycles are its
    window positions times NF * SF, and its SIMD divides its input channels).

    Among equally cheap foldings the one with fewer cycles wins, then the wider SIMD. The
    output layer gets PE 1 whenever the target allows it (the arg-max's chain of comparisons
    grows with its PE).

    ``rom_blocks(depth, width) -> int``, when given (``Device.rom_blocks`` of hw/synth.py),
    counts the block RAMs a ROM of that shape takes on the device; each layer then takes the
    fewest block RAMs first (weights and thresholds, and for the first layer its input buffer
    as ``buffer_blocks(depth, width)`` counts it), then the fewest PE * SIMD. A ROM whose
    words are wider than a block RAM's port, or deeper than its depth, wastes the rest of the
    block: on small devices that, not the logic, is what decides whether a network fits.

    ``weight_memories``: {layer index: memory kind} (hw/memories.py) of layers whose weights
    go there; their weights' blocks are counted in that kind's geometry.
    """
    from .memories import kind_of
    weight_memories = weight_memories or {}
    target = _positive_int(target_cycles, "target_cycles")
    shapes = layer_shapes(topology)
    n_layers = len(shapes)
    folds = []
    for k, shape in enumerate(shapes):
        n_in, n_out, positions = shape.n_in, shape.n_out, shape.positions
        simds = [s for s in range(1, min(n_in, max_simd) + 1)
                 if shape.window is None or shape.window.channels % s == 0]
        # the output layer with PE 1 where the target allows: the arg-max compares the PE
        # scores of a cycle in a chain, which grows into the design's critical path from PE 2 or 3
        output_pe1 = k == n_layers - 1 and positions * math.ceil(n_in / simds[-1]) * n_out <= target
        best = None
        for simd in simds:
            sf = math.ceil(n_in / simd)
            if positions * sf > target:
                continue
            lo = min(math.ceil(n_out / (target // (positions * sf))), n_out)
            # without a block-RAM model the smallest PE is the cheapest; with one, a larger PE
            # can fill the blocks' width better: try the smallest PE of each neuron-fold count
            pes = sorted({math.ceil(n_out / nf) for nf in range(1, math.ceil(n_out / lo) + 1)}) if rom_blocks else [lo]
            if output_pe1:
                pes = [pe for pe in pes if pe == 1]
            for pe in pes:
                f = replace(shape, pe=pe, simd=simd, weight_memory=weight_memories.get(k, ""))
                key = (pe * simd, f.cycles, -simd)
                if rom_blocks:
                    value_bits = f.value_bits if f.kind == "hidden" else kw.get("bias_bits", defaults.BIAS_BITS)
                    rom = weight_rom(f, kw.get("pipelined", True))
                    held = kind_of(f.weight_memory).blocks if f.weight_memory else rom_blocks
                    blocks = held(rom.depth, rom.width) + rom_blocks(f.nf, pe * value_bits)
                    if k == 0 and buffer_blocks:      # the input buffer: banks x SF words of SIMD values
                        blocks += buffer_blocks(kw.get("banks", defaults.BANKS) << max(1, (sf - 1).bit_length()), f.word_bits)
                    key = (blocks,) + key
                if best is None or key < best[0]:
                    best = (key, (pe, simd))
        if best is None:
            fewest = positions * math.ceil(n_in / simds[-1])
            widest = f"{simds[-1]} input values per cycle (SIMD" + (
                f", a divisor of the window's {shape.window.channels} channels)" if shape.window else ")")
            raise UsageError(f"layer {k}: no folding of its {n_in} inputs{f' at {positions} positions' if positions > 1 else ''} "
                             f"reaches {target} cycles per image: with at most {widest} it takes at least {fewest}; "
                             f"ask for {fewest} or more cycles per image")
        folds.append(best[1])
    plan = _fold_plan(shapes, folds, "", **kw)
    return replace(plan, layers=tuple(replace(f, weight_memory=weight_memories.get(f.index, "")) for f in plan.layers))


def fit_findings(topology, plan, target_cycles: int, device, *, force: bool = False, place=None, **kw) -> list:
    """Check ``plan``, ``auto_fold``'s for ``target_cycles`` on ``device``, against the device by
    the cost model (hw/estimate.py). A plan whose estimate exceeds the device raises UsageError
    naming the fewest cycles per image whose folding the model fits (``force``: the finding is
    returned instead), each folding's weights placed by ``place(plan, cycles) -> plan`` (hw/memories.py)
    when given. Without fitted costs for the device's family nothing is checked."""
    from .estimate import estimate, over_budget
    est = estimate(plan, device)
    over = over_budget(est, device) if est else []
    if not over:
        return []
    blocks = {"rom_blocks": device.rom_blocks, "buffer_blocks": device.buffer_blocks}

    def fits(t):
        folded = auto_fold(topology, t, **blocks, **kw)
        return not over_budget(estimate(place(folded, t) if place else folded, device), device)
    slowest = max(s.positions * s.n_in * s.n_out for s in layer_shapes(topology))   # PE 1, SIMD 1
    lo, hi, t = target_cycles, None, target_cycles
    while hi is None and t < slowest:
        t = min(2 * t, slowest)
        if fits(t):
            hi = t
        else:
            lo = t
    if hi is None:
        finding = (f"no folding fits {device.name} by the cost model (hw/estimate.py): at {target_cycles:,} cycles "
                   f"per image the design takes about {', '.join(over)}, and at the slowest folding ({slowest:,} "
                   "cycles) still too much; use a smaller network or a larger device")
    else:
        while hi - lo > 1:     # the fewest cycles whose folding fits
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        finding = (f"the folding for {target_cycles:,} cycles per image does not fit {device.name} by the cost model "
                   f"(hw/estimate.py): about {', '.join(over)}; the fastest folding that fits takes {hi:,} cycles "
                   f"per image: ask for {option('target_cycles', str(hi))}")
    if not force:
        raise UsageError(finding)
    return [finding]
