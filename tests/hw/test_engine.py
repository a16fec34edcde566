import math

import numpy as np
import pytest
from amaranth import ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings, strategies as st

from bnncore.hw.accelerator import add_rom
from bnncore.hw.engine import LayerEngine
from bnncore.hw.layout import threshold_words, weight_words
from bnncore.hw.plan import LayerFold


class Harness(Elaboratable):
    """An engine with its weight and threshold ROMs as Amaranth memories."""

    def __init__(self, engine, weights, values, value_bits):
        self.engine = engine
        f = engine.fold
        self.w = weight_words(weights, f, engine.rom.row_words)
        self.t = threshold_words(values, f, value_bits)
        self.t_width = f.pe * value_bits

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = e = self.engine
        f = e.fold
        add_rom(m, "w", self.w, e.rom.depth, e.rom.width, e.w_addr, e.w_data)
        add_rom(m, "t", self.t, f.nf, self.t_width, e.t_addr, e.t_data)
        return m


def run_engine(fold, weights, values, images, in_width, value_bits, score_bits=None, space_p=1.0, seed=0,
               pipelined=False, cycles=4000):
    eng = LayerEngine(fold=fold, in_width=in_width, in_slots=math.ceil(fold.n_in / in_width),
                      value_bits=value_bits, score_bits=score_bits, pipelined=pipelined)
    top = Module()
    top.submodules.h = Harness(eng, weights, values, value_bits)
    top.domains.sync = ClockDomain("sync")
    rng = np.random.default_rng(seed)
    slots = math.ceil(fold.n_in / in_width)
    results = []

    async def bench(ctx):
        img, slot, current = 0, 0, {}
        for _ in range(cycles):
            if len(results) == len(images):
                return
            # producer: claim a bank, then write the image slot by slot
            write = img < len(images) and (slot > 0 or ctx.get(eng.wr.space))
            ctx.set(eng.wr.claim, write and slot == 0)
            ctx.set(eng.wr.we, write)
            ctx.set(eng.wr.slot_en, 0)
            if write:
                bits = np.zeros(slots * in_width, np.uint8)
                bits[:fold.n_in] = images[img]
                chunk = bits[slot * in_width:(slot + 1) * in_width]
                ctx.set(eng.wr.slot, slot)
                ctx.set(eng.wr.slot_en, 1 << slot)
                ctx.set(eng.wr.data, int(sum(int(b) << j for j, b in enumerate(chunk))))
                ctx.set(eng.wr.last, slot == slots - 1)
            ctx.set(eng.out.space, bool(rng.random() < space_p))
            if ctx.get(eng.out.we):
                s = ctx.get(eng.out.slot)
                if fold.kind == "hidden":
                    d = ctx.get(eng.out.data)
                    current.update({s * fold.pe + p: (d >> p) & 1 for p in range(fold.pe)})
                else:
                    d = ctx.get(eng.out.data)
                    current.update({s * fold.pe + p: int(d[p]) for p in range(fold.pe)})
                if ctx.get(eng.out.last):
                    results.append([current[j] for j in range(fold.n_out)])
                    current = {}
            await ctx.tick()
            if write:
                slot += 1
                if slot == slots:
                    slot, img = 0, img + 1

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return np.array(results)


@st.composite
def layers(draw):
    n_in, n_out = draw(st.integers(1, 20)), draw(st.integers(1, 9))
    return (n_in, n_out, draw(st.integers(1, n_out)), draw(st.integers(1, n_in)), draw(st.integers(1, n_in)),
            draw(st.integers(0, 2**31)), draw(st.sampled_from([1.0, 0.3])))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers(), st.sampled_from(["hidden", "output"]))
def test_engine_equals_definition(layer, kind):
    n_in, n_out, pe, simd, in_width, seed, space_p = layer
    rng = np.random.default_rng(seed)
    fold = LayerFold(n_in, n_out, pe, simd, kind)
    w = rng.integers(0, 2, (n_out, n_in)).astype(np.uint8)
    x = rng.integers(0, 2, (6, n_in)).astype(np.uint8)
    agree = (x[:, None, :] == w[None, :, :]).sum(-1)          # popcount(xnor), (images, neurons)
    if kind == "hidden":
        t = rng.integers(0, n_in + 2, n_out)
        got = run_engine(fold, w, t, x, in_width, fold.value_bits, space_p=space_p, seed=seed)
        assert got.tolist() == (agree >= t).astype(int).tolist()
    else:
        b = rng.integers(-5, 6, n_out)
        sb = n_in.bit_length() + 4
        got = run_engine(fold, w, b, x, in_width, 8, score_bits=sb, space_p=space_p, seed=seed)
        assert got.tolist() == (2 * agree - n_in + b).tolist()


@pytest.mark.parametrize("n_in, n_out, pe, simd", [(2051, 2, 1, 1), (2201, 3, 1, 2)])
def test_pipelined_engine_with_a_deep_rom(n_in, n_out, pe, simd):
    # deeper than ROM_ROW_DEPTH: the ROM holds several words per row (plan.weight_rom), the
    # last row padded, and the engine selects the word after its register
    fold = LayerFold(n_in, n_out, pe, simd)
    eng = LayerEngine(fold=fold, in_width=64, in_slots=math.ceil(n_in / 64), pipelined=True)
    assert eng.rom.row_words > 1 and fold.weight_depth % eng.rom.row_words   # a last row not full
    rng = np.random.default_rng(n_in)
    w = rng.integers(0, 2, (n_out, n_in)).astype(np.uint8)
    x = rng.integers(0, 2, (2, n_in)).astype(np.uint8)
    t = (x[:, None, :] == w[None, :, :]).sum(-1)[1]        # image 1 exactly at each threshold
    got = run_engine(fold, w, t, x, 64, fold.value_bits, space_p=0.5, pipelined=True,
                     cycles=2 * fold.cycles * 3)
    assert got.tolist() == ((x[:, None, :] == w[None, :, :]).sum(-1) >= t).astype(int).tolist()


def test_engine_validation():
    f = LayerFold(10, 4, 2, 5)
    with pytest.raises(TypeError, match=r"^fold must be a LayerFold, not 3$"):
        LayerEngine(fold=3, in_width=1, in_slots=1)
    with pytest.raises(ValueError, match=r"^the producer writes 3 x 3 bits per image, fewer than the layer's 10 inputs$"):
        LayerEngine(fold=f, in_width=3, in_slots=3)
    with pytest.raises(ValueError, match=r"^value_bits must be at least 4 for thresholds up to 11, not 3$"):
        LayerEngine(fold=f, in_width=5, in_slots=2, value_bits=3)
    with pytest.raises(ValueError, match=r"^an output engine needs score_bits$"):
        LayerEngine(fold=LayerFold(10, 4, 2, 5, "output"), in_width=5, in_slots=2)
    with pytest.raises(TypeError, match=r"^banks must be an integer of at least 2, not 1$"):
        LayerEngine(fold=f, in_width=5, in_slots=2, banks=1)
