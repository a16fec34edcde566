"""Where each layer's weights are held (pure Python, no Amaranth).

By default a layer's weights are a ROM that Yosys maps (block RAM, or logic when shallow). A
plan can place them in another memory kind of the device's family instead
(``LayerFold.weight_memory``; a family's ``memory_kinds``, such as iCE40 UltraPlus's SPRAM:
four 16K x 16 single-port blocks beside 30 block RAMs). A kind whose contents the bitstream
cannot set is *loaded*: the design is built for a board with writable memories, answers INFO
with network 0000000000000000 until ``bnn load`` has written them over the serial link, and
simulates (``bnn sim``) as it runs once loaded.

``bnn rtl --memory`` names the placement (``w0=spram``), or ``auto`` (the default with
``--device``) places the largest layers' weights in such a kind only when the plan does not fit
the device without it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from bnncore.errors import UsageError, option

from .plan import Plan

__all__ = ["AUTO", "LINK_COST", "parse_memory", "place_weights", "placed", "kind_of", "loaded", "blocks", "placement_errors",
           "auto_place", "loaded_writable", "bandwidth_cycles"]

#: ``--memory auto``: place weights beside block RAM only where the plan does not fit without
AUTO = "auto"
#: ``--memory none``: every weight ROM as Yosys maps it
NONE = "none"
#: What the board's serial link adds to a loaded design, which is built only behind it,
#: writable (hw/link.py): measured on the iCEBreaker (the UP5K row of docs/results.md with its
#: weights in SPRAM: bnn synth's per-part table, "serial link")
LINK_COST = {"luts": 1208, "ffs": 758, "carries": 206, "brams": 2}


def parse_memory(text: str):
    """``--memory``: ``auto``, ``none`` or ``w<k>=<kind>`` pairs, comma-separated: returns
    AUTO, {} or {layer index: kind}."""
    text = text.strip().lower()
    if text in (AUTO, NONE):
        return AUTO if text == AUTO else {}
    out = {}
    for item in text.split(","):
        m = re.fullmatch(r"\s*w(\d+)\s*=\s*([a-z0-9_]+)\s*", item)
        if not m:
            raise UsageError(f"--memory: {item.strip()!r} is not w<layer>=<kind> (e.g. w0=spram), 'auto' or 'none'")
        if int(m.group(1)) in out:
            raise UsageError(f"--memory: w{m.group(1)} is placed twice")
        out[int(m.group(1))] = m.group(2)
    return out


def place_weights(plan: Plan, kinds: dict) -> Plan:
    """``plan`` with layer k's weights in memory kind ``kinds[k]`` (``""``: a ROM as Yosys maps
    it); UsageError for a layer the plan does not have."""
    bad = sorted(k for k in kinds if not 0 <= k < len(plan.layers))
    if bad:
        raise UsageError(f"--memory: the plan has weight memories w0 to w{len(plan.layers) - 1}, not w{bad[0]}")
    return replace(plan, layers=tuple(replace(f, weight_memory=kinds.get(f.index, f.weight_memory))
                                      for f in plan.layers))


def placed(plan: Plan) -> dict:
    """{memory name: kind name} of the weights placed by the plan."""
    return {f"w{f.index}": f.weight_memory for f in plan.layers if f.weight_memory}


def kind_of(name: str, device=None):
    """The MemoryKind ``name`` (of ``device``'s family, else of any family); UsageError when
    there is none."""
    from .families import FAMILIES
    fams = [device.fpga_family] if device is not None else list(FAMILIES.values())
    for fam in fams:
        if name in fam.memory_kinds:
            return fam.memory_kinds[name]
    where = f"{device.name} ({fams[0].title})" if device is not None else "any family"
    have = sorted({k for f in fams for k in f.memory_kinds})
    raise UsageError(f"memory kind {name!r}: {where} has " + (f"only {', '.join(have)}" if have else "none besides "
                     "block RAM") + f"; place the weights with {option('memory', 'none')} or another device")


def loaded(plan: Plan) -> list:
    """The weight memories of ``plan`` in a kind the bitstream cannot initialise (loaded over
    the link at run time)."""
    return [name for name, kind in placed(plan).items() if not kind_of(kind).initialised]


def blocks(plan: Plan, device) -> dict:
    """{kind name: blocks} the placed weights take on ``device``. A placed ROM is one memory of
    the whole row (``weight_rom``), read through its first slice's address: every slice's
    address is a copy of the same register."""
    from .layout import weight_rom
    out = {}
    for f in plan.layers:
        if f.weight_memory:
            kind, rom = kind_of(f.weight_memory, device), weight_rom(f, plan.pipelined)
            out[kind.name] = out.get(kind.name, 0) + kind.blocks(rom.depth, rom.width)
    return out


def placement_errors(plan: Plan, device) -> list:
    """Why ``plan``'s placement cannot be built for ``device``: a kind it does not have, or
    more blocks than it has."""
    try:
        counts = blocks(plan, device)
    except UsageError as e:
        return [str(e)]
    errors = []
    for name, n in counts.items():
        kind = kind_of(name, device)
        if kind.latency != 1:
            errors.append(f"{kind.title} returns data {kind.latency} cycles after the address; the engines read "
                          "their weights one cycle after it, as from a block RAM")
        have = getattr(device, kind.count)
        if n > have:
            errors.append(f"the weights placed in {kind.title} take {n} blocks of {kind.depth:,} x {kind.width} bits, "
                          f"the {device.part} has {have}: fold the layers placed there with fewer PE x SIMD (a "
                          f"block is {kind.width} bits wide) or place fewer")
    return errors


def auto_place(plan: Plan, device, fits, refold=None, snug=None) -> Plan:
    """``plan`` as it is when ``fits(plan)``; else with the weights of its largest layers, one
    more at a time, in the device's loaded memory kind while its blocks last, until the plan
    ``fits``, then every smaller layer's too that leaves it fitting; else the plan with the
    most placed (the nearest to fitting, for the refusal to describe). ``snug(plan)``: a
    placement that also passes it is preferred (iCE40's logic cells). ``refold(placement) ->
    plan``: the plan folded anew for a placement ({layer index: kind}), where the folding may
    choose for it (``auto_fold``'s ``weight_memories``); else ``plan``'s folding with its
    weights moved."""
    if device is None or fits(plan):
        return plan
    snug = snug or (lambda p: True)
    kinds = [k for k in device.fpga_family.memory_kinds.values() if getattr(device, k.count, 0) > 0]
    closest = plan
    for kind in kinds:
        chosen, found, loose = {}, None, None
        for f in sorted(plan.layers, key=lambda f: -f.weight_depth * f.weight_width):
            want = {**chosen, f.index: kind.name}
            trial = refold(want) if refold else place_weights(plan, want)
            if placement_errors(trial, device) or (found is not None and not (fits(trial) and snug(trial))):
                continue
            chosen, closest = want, trial
            if fits(trial):
                # and the smaller layers too while the kind's blocks last: a loaded design is
                # written over the link whatever it holds, and each layer moved frees block RAMs
                if snug(trial):
                    found = trial
                elif loose is None:
                    loose = trial
        if found is not None or loose is not None:
            return found if found is not None else loose
    return closest


def loaded_writable(rtl, board, writable: bool, log, swappable: bool = False) -> bool:
    """Whether a synthesis of the design ``rtl`` (an RtlDesign) for ``board`` builds it writable:
    as asked, and always where weights are in a memory the bitstream cannot initialise (then
    loaded over the board's link); SynthError for such a design without a board, or swappable."""
    from .tools import SynthError
    names = loaded(rtl.plan)
    if not names:
        return writable
    what = f"{names[0]} is in {kind_of(rtl.memories[names[0]].kind).title}, which the bitstream cannot initialise"
    if swappable:
        raise SynthError(f"{what}: the bitstream holds none of its weights to swap; load other weights of the same "
                         "design over the link instead (bnn load), without --swappable")
    if board is None:
        raise SynthError(f"{what}: its weights are loaded over a board's serial link (bnn load); give a board "
                         f"({option('board', 'NAME')}), or generate the RTL with {option('memory', 'none')}")
    if not writable:
        log(f"{what}: built writable, to be loaded with bnn load")
    return True


def bandwidth_cycles(plan: Plan, device) -> float:
    """Cycles per image in which ``device``'s memories can read the weights of ``plan``, each
    kind at its blocks' width a cycle (block RAM: ``bram_read_width``): the slowest kind's."""
    bits = {}
    for f in plan.layers:
        bits[f.weight_memory] = bits.get(f.weight_memory, 0) + f.memory_bits["weights"] * f.positions
    cycles = [bits.pop("", 0) / (device.brams * device.bram_read_width)]
    for name, b in bits.items():
        kind = kind_of(name, device)
        cycles.append(b / max(1, getattr(device, kind.count) * kind.width))
    return max(cycles)
