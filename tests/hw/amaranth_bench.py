"""Drive a SimAccelerator in Amaranth's simulator: image beats in, results out.

One testbench coroutine does both sides cycle by cycle, so every handshake is counted at the
exact cycle it happens: with ``gap`` > 0 the input idles at random, with ``stall`` > 0 the
output is not ready at random.
"""

import numpy as np
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from bnncore.hw.accelerator import SimAccelerator
from bnncore.hw.layout import input_words


def beats_of(bits: np.ndarray, plan) -> list:
    words = input_words(bits, plan.in_width, plan.in_beats, plan.value_bits)
    return [(i, k, w) for i, image in enumerate(words) for k, w in enumerate(image)]


def run(plan, net, bits, *, gap=0.0, stall=0.0, seed=0, reset_at=None, junk_padding=False, max_cycles=200000):
    """Returns dict(classes, scores, t_in (first-beat cycles), t_out (result cycles)).

    ``reset_at``: (cycle, resume_image): assert the synchronous reset for one cycle at
    ``cycle`` (whatever is in flight), then feed again from image ``resume_image``; only
    results after the reset are returned, and they must be those of the resumed images.
    ``junk_padding``: drive 1s on the input bits past the last input (must be ignored).
    """
    dut = SimAccelerator(plan=plan, net=net)
    rng = np.random.default_rng(seed)
    beats = beats_of(bits, plan)
    if junk_padding:
        extra = plan.in_beats * plan.in_width - bits.shape[1] * plan.value_bits
        mask = ((1 << extra) - 1) << (plan.in_width - extra) if extra else 0
        beats = [(i, k, w | mask if k == plan.in_beats - 1 else w) for i, k, w in beats]
    res = {"classes": [], "scores": [], "t_in": [], "t_out": []}

    async def bench(ctx):
        i, cycle, n_out = 0, 0, len(bits)
        while len(res["classes"]) < n_out and cycle < max_cycles:
            if reset_at is not None and cycle == reset_at[0]:
                ctx.set(cd.rst, 1)
                ctx.set(dut.i_stream.valid, 0)
                await ctx.tick()
                ctx.set(cd.rst, 0)
                cycle += 1
                i = reset_at[1] * plan.in_beats
                n_out = len(bits) - reset_at[1]
                for v in res.values():
                    v.clear()
            valid = i < len(beats) and rng.random() >= gap
            ready = rng.random() >= stall
            ctx.set(dut.i_stream.valid, valid)
            if i < len(beats):
                ctx.set(dut.i_stream.payload, beats[i][2])
            ctx.set(dut.o_stream.ready, ready)
            await ctx.delay(1e-10)
            if valid and ctx.get(dut.i_stream.ready):
                if beats[i][1] == 0:
                    res["t_in"].append(cycle)
                i += 1
            if ready and ctx.get(dut.o_stream.valid):
                p = ctx.get(dut.o_stream.payload)
                res["classes"].append(int(p.cls))
                res["scores"].append([int(s) for s in p.scores])
                res["t_out"].append(cycle)
            await ctx.tick()
            cycle += 1
        res["cycles"] = cycle

    top = Module()
    top.submodules.dut = dut
    top.domains.sync = cd = ClockDomain("sync")
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return {k: np.array(v) if isinstance(v, list) else v for k, v in res.items()}
