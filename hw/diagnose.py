"""Where a design first departs from the golden model: the layer and the pixel.

A simulator of the generated HDL sees the accelerator's ports only, so a wrong class tells
nothing of where it went wrong. ``first_difference`` runs the image once more through the
same design in Amaranth's simulator, holding the same ROM contents (read from the design's
ROM files), and watches every layer's output inside it (``AcceleratorCore.taps``): the
first layer whose output differs from the golden model's activations is where the fault
is, and the first pixel (or neuron) that differs says which part of the layer.

If the Amaranth model agrees with the golden model on the image, the design's logic is
not at fault: the difference lies in what the HDL simulator ran (the generated HDL, a
netlist and its cell models, or the simulator itself), and the report says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnncore.errors import UsageError

from .layout import input_words
from .plan import Plan
from .timing import timing

__all__ = ["read_rom_files", "first_difference", "describe"]


def read_rom_files(info, rom_dir) -> dict:
    """{ROM name: words} of the ROM files an RTL directory's design (``info``) names, read
    from ``rom_dir`` (one binary word per line, as ``$readmemb`` reads them)."""
    from .design import RtlDesign
    contents = {}
    for name, mem in RtlDesign.from_json(info).memories.items():
        path = Path(rom_dir) / mem.file
        words = []
        for k, line in enumerate(path.read_text().split(), 1):
            try:
                words.append(int(line, 2))
            except ValueError:
                raise UsageError(f"{path}: line {k} is not a binary word: {line[:40]!r}") from None
        contents[name] = words
    return contents


def _layer_name(layer, i: int) -> str:
    kind = type(layer).__name__.replace("Layer", "").lower()
    return f"layer {i} ({kind}, output {'x'.join(map(str, layer.out_shape))})"


def first_difference(plan: Plan, net, values: np.ndarray, *, contents: dict | None = None,
                     max_cycles: int | None = None) -> dict | None:
    """Run one image (``values``: the input values of ``net``, as ``golden.infer`` takes them)
    through ``plan``'s design in Amaranth's simulator, with ``contents`` ({ROM name: words},
    default ``net``'s own), and compare every layer's output with ``net``'s golden model.

    Returns None when every layer and the scores agree; otherwise a dict: ``layer`` (index
    into ``net.layers``, ``len(net.layers)`` for the output head), ``name``, ``what`` (a
    sentence naming the pixel or neuron and the values), and ``pixel`` ((y, x), or None).
    """
    from amaranth import ClockDomain, Module
    from amaranth.sim import Simulator

    from bnncore.golden import infer

    from .accelerator import SimAccelerator

    values = np.asarray(values, np.uint8).reshape(1, -1)
    gold = infer(net, values, return_layers=True, backend="numpy")
    dut = SimAccelerator(plan=plan, net=net, contents=contents)
    beats = input_words(values, plan.in_width, plan.in_beats, plan.value_bits)[0]
    t = timing(plan)
    max_cycles = max_cycles or 4 * (t.latency + int(t.ii)) + 1000
    seen: list = []           # per tap: pixel words, or {neuron: value}
    result = {}
    layers = list(net.layers)
    counts = []               # per tap: the pixels (a dense layer behind a map: one) or values due

    async def bench(ctx):
        taps = dut.core.taps
        seen.extend([] if tap[0] == "map" else {} for tap in taps)
        for k, tap in enumerate(taps):
            shape = layers[k].out_shape if k < len(layers) else (net.head.n_out,)
            counts.append((shape[1] * shape[2] if len(shape) == 3 else 1) if tap[0] == "map" else shape[0])
        ctx.set(dut.o_stream.ready, 1)
        b = 0
        for _ in range(max_cycles):
            ctx.set(dut.i_stream.valid, b < len(beats))
            if b < len(beats):
                ctx.set(dut.i_stream.payload, beats[b])
            await ctx.delay(1e-10)
            if b < len(beats) and ctx.get(dut.i_stream.ready):
                b += 1
            for k, tap in enumerate(taps):
                if tap[0] == "map":
                    if ctx.get(tap[1].valid) and ctx.get(tap[1].ready):
                        seen[k].append(ctx.get(tap[1].payload))
                elif ctx.get(tap[1].we):
                    port, f = tap[1], tap[2]
                    slot, d = ctx.get(port.slot), ctx.get(port.data)
                    seen[k].update({slot * f.pe + p: (d >> p) & 1 if tap[0] == "dense" else int(d[p])
                                    for p in range(f.pe)})
            if ctx.get(dut.o_stream.valid) and "scores" not in result:
                result["scores"] = [int(s) for s in ctx.get(dut.o_stream.payload).scores]
            # on until every layer's output is out: a pool drops a trailing row, which the
            # layer before it may still be producing when the result comes out
            if "scores" in result and all(len(got) >= n for got, n in zip(seen, counts)):
                return
            await ctx.tick()

    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain("sync")
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    for i, (tap, got) in enumerate(zip(dut.core.taps, seen)):
        if tap[0] == "map":
            # activations in (y, x, channel) order; a dense layer behind a map is one pixel
            c, h, w = tuple(layers[i].out_shape) + (1, 1) * (len(layers[i].out_shape) == 1)
            expected = np.asarray(gold.activations[i][0]).reshape(h * w, c)
            for px, word in enumerate(got[:h * w]):
                bits = np.array([(word >> ch) & 1 for ch in range(c)], np.uint8)
                if (bits != expected[px]).any():
                    y, x = divmod(px, w)
                    wrong = np.flatnonzero(bits != expected[px])
                    where = "neurons" if len(layers[i].out_shape) == 1 else f"pixel (y={y}, x={x}): channels"
                    return {"layer": i, "name": _layer_name(layers[i], i),
                            "pixel": None if len(layers[i].out_shape) == 1 else (y, x),
                            "what": f"{where} {_list(wrong)} are {_list(bits[wrong])}, "
                                    f"the golden model's {_list(expected[px][wrong])}"}
            if len(got) < h * w:
                y, x = divmod(len(got), w)
                return {"layer": i, "name": _layer_name(layers[i], i), "pixel": (y, x),
                        "what": f"only {len(got)} of its {h * w} pixels came out (none from (y={y}, x={x}) "
                                f"on, in {max_cycles} cycles); those agree with the golden model"}
        else:
            expected = gold.activations[i][0] if tap[0] == "dense" else gold.scores[0]
            name = _layer_name(layers[i], i) if tap[0] == "dense" else f"the output head ({len(expected)} scores)"
            index = len(layers) if tap[0] == "output" else i
            for j, e in enumerate(expected):
                if j not in got:
                    return {"layer": index, "name": name, "pixel": None,
                            "what": f"{'neuron' if tap[0] == 'dense' else 'score'} {j} never came out "
                                    f"(in {max_cycles} cycles)"}
                if got[j] != int(e):
                    return {"layer": index, "name": name, "pixel": None,
                            "what": f"{'neuron' if tap[0] == 'dense' else 'class'} {j} is {got[j]}, "
                                    f"the golden model's {int(e)}"}
    if result.get("scores") not in (None, gold.scores[0].tolist()):
        return {"layer": len(layers), "name": "the result stream", "pixel": None,
                "what": f"scores {result['scores']}, the golden model's {gold.scores[0].tolist()}"}
    return None


def _list(values) -> str:
    values = [int(v) for v in values]
    return ", ".join(map(str, values[:12])) + (f" (and {len(values) - 12} more)" if len(values) > 12 else "")


def describe(image: int, diff: dict | None) -> str:
    """One sentence for a mismatch report."""
    if diff is None:
        return (f"the design's Amaranth model, holding the same ROM files, gives image {image} the golden result: "
                "the difference is not in the design's logic but in what the simulator ran (the generated HDL, "
                "a netlist and its cell models, or the simulator)")
    return f"image {image} departs from the golden model first at {diff['name']}: {diff['what']}"
