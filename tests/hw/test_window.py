"""The window and pool units alone, in Amaranth's simulator, against naive models of what
they must produce: every window of every image in (ky, kx, channel) order with the pad value
outside the map, and the OR/AND pooled map, under random input gaps and a consumer that
frees its buffer banks at random."""

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings, strategies as st

from bnncore.hw.plan import Pool, Window
from bnncore.hw.window import PIXEL_SELECT_BITS, MaxPool, RowUnpacker, SlidingWindow


def _simulate(dut, bench):
    """Run ``bench`` against ``dut`` in Amaranth's simulator, on a 100 MHz clock."""
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain("sync")
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def naive_windows(image: np.ndarray, w: Window, simd: int) -> list:
    """Per window position (raster order), the words a window unit writes: (channel chunk of
    SIMD values, as an integer of value_bits per value), in (ky, kx, chunk) order."""
    c, h, wd, p = w.channels, w.height, w.width, w.padding
    padded = np.full((h + 2 * p, wd + 2 * p, c), w.pad_value, np.int64)
    padded[p:p + h, p:p + wd] = image.reshape(h, wd, c)
    out = []
    for oy in range(w.out_h):
        for ox in range(w.out_w):
            words = []
            for ky in range(w.kh):
                for kx in range(w.kw):
                    px = padded[oy + ky, ox + kx]
                    for lo in range(0, c, simd):
                        words.append(sum(int(v) << (i * w.value_bits) for i, v in enumerate(px[lo:lo + simd])))
            out.append(words)
    return out


def pixel_word(px, value_bits):
    return sum(int(v) << (i * value_bits) for i, v in enumerate(px))


def run_window(w: Window, simd: int, images: np.ndarray, seed: int, banks: int = 2):
    dut = SlidingWindow(window=w, simd=simd)
    rng = np.random.default_rng(seed)
    pixels = [pixel_word(px, w.value_bits) for im in images for px in im.reshape(-1, w.channels)]
    windows, current = [], {}
    expected = len(images) * w.positions

    async def bench(ctx):
        i, held, cycle = 0, [], 0        # held: windows claimed and not yet freed by the "engine"
        while len(windows) < expected and cycle < 200000:
            valid = i < len(pixels) and rng.random() < 0.7
            ctx.set(dut.i.valid, valid)
            if i < len(pixels):
                ctx.set(dut.i.payload, pixels[i])
            ctx.set(dut.o.space, len(held) < banks)
            await ctx.delay(1e-10)
            if valid and ctx.get(dut.i.ready):
                i += 1
            if ctx.get(dut.o.claim):
                assert len(held) < banks, "claimed a bank the consumer did not offer"
                held.append(False)
            if ctx.get(dut.o.we):
                slot = ctx.get(dut.o.slot)
                assert slot not in current, f"word {slot} written twice in one window"
                current[slot] = ctx.get(dut.o.data)
                if ctx.get(dut.o.last):
                    windows.append([current.get(k) for k in range(dut.words)])
                    current.clear()
                    held[held.index(False)] = True      # windows complete in the order claimed
            # the "engine" frees the oldest complete window now and then
            if held and held[0] and rng.random() < 0.3:
                held.pop(0)
            await ctx.tick()
            cycle += 1

    _simulate(dut, bench)
    return windows


@st.composite
def windows(draw):
    vb = draw(st.sampled_from([1, 8]))
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    dense = draw(st.booleans())
    if dense:
        win = Window(c, h, w, h, w, dense=True)
    else:
        k = draw(st.sampled_from([1, 2, 3, 5]))
        p = draw(st.integers(0, k - 1))
        if h + 2 * p < k or w + 2 * p < k:
            k, p = 1, 0
        win = Window(c, h, w, k, k, p, draw(st.integers(0, 255 if vb == 8 else 1)), vb)
    simd = draw(st.sampled_from([s for s in range(1, c + 1) if c % s == 0]))
    return win, simd, draw(st.integers(0, 2**31)), draw(st.sampled_from([2, 3]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows())
def test_window_unit_equals_naive_model(case):
    w, simd, seed, banks = case
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 1 << w.value_bits, (3, w.height * w.width * w.channels))
    got = run_window(w, simd, images, seed, banks)
    want = [words for im in images for words in naive_windows(im, w, simd)]
    assert got == want


@pytest.mark.parametrize("simd", [1, 3, 12])
def test_wide_pixel_in_several_select_copies(simd):
    """A 96-bit pixel (12 channels of 8 bits) is loaded and shifted through two copies of its
    load-or-shift select (PIXEL_SELECT_BITS each), a word per cycle when SIMD < channels."""
    w = Window(12, 4, 5, 3, 3, 1, 0x5A, 8)
    assert w.pixel_bits > PIXEL_SELECT_BITS
    images = np.random.default_rng(simd).integers(0, 256, (2, w.height * w.width * w.channels))
    got = run_window(w, simd, images, seed=simd)
    assert got == [words for im in images for words in naive_windows(im, w, simd)]


def test_window_model_can_fail():
    """The comparison sees a window unit that pads with the wrong value."""
    w = Window(2, 4, 5, 3, 3, 1, 1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2, (2, 40))
    got = run_window(w, 1, images, 0)
    assert got == [x for im in images for x in naive_windows(im, w, 1)]
    assert got != [x for im in images for x in naive_windows(im, Window(2, 4, 5, 3, 3, 1, 0), 1)]


def run_stream(dut, words: list, expected: int, p_valid: float, p_ready: float, seed: int):
    """Drive ``words`` into ``dut.i`` with random gaps, take ``expected`` payloads from
    ``dut.o`` with random stalls; return them and the cycles it took."""
    rng = np.random.default_rng(seed)
    out, cycles = [], [0]

    async def bench(ctx):
        i = 0
        while len(out) < expected and cycles[0] < 100000:
            valid = i < len(words) and rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, words[i] if i < len(words) else 0)
            ctx.set(dut.o.ready, ready)
            await ctx.delay(1e-10)
            if valid and ctx.get(dut.i.ready):
                i += 1
            if ready and ctx.get(dut.o.valid):
                out.append(ctx.get(dut.o.payload))
            await ctx.tick()
            cycles[0] += 1

    _simulate(dut, bench)
    return out, cycles[0]


def run_unpacker(width: int, pixel_bits: int, rows: list, p_valid: float, p_ready: float, seed: int):
    """The pixels a RowUnpacker sends for ``rows`` (lists of pixels), and the cycles it took."""
    words = [sum(px << (j * pixel_bits) for j, px in enumerate(r)) for r in rows]
    return run_stream(RowUnpacker(width=width, pixel_bits=pixel_bits), words, width * len(rows), p_valid, p_ready, seed)


@pytest.mark.parametrize("width, pixel_bits", [(1, 3), (2, 1), (5, 8), (28, 1), (32, 24)])
@pytest.mark.parametrize("rates", [(0.7, 0.5), (1.0, 0.3), (0.4, 1.0), (1.0, 1.0)])
def test_row_unpacker_sends_every_pixel_in_order(width, pixel_bits, rates):
    """Every pixel of every row once, in order, whatever the gaps and stalls; at full rate a
    row takes width + 1 cycles (the load, then a pixel per cycle)."""
    rng = np.random.default_rng(width * pixel_bits)
    rows = rng.integers(0, 1 << pixel_bits, (6, width)).tolist()
    got, cycles = run_unpacker(width, pixel_bits, rows, *rates, seed=width)
    assert got == [px for r in rows for px in r]
    if rates == (1.0, 1.0):
        # the last pixel leaves the output register two cycles after the row's last send
        assert cycles == 6 * (width + 1) + 1


def run_pool(p: Pool, images: np.ndarray, seed: int, p_valid: float = 0.7, p_ready: float = 0.6):
    pixels = [pixel_word(px, 1) for im in images for px in im.reshape(-1, p.channels)]
    return run_stream(MaxPool(pool=p), pixels, len(images) * p.out_h * p.out_w, p_valid, p_ready, seed)[0]


@pytest.mark.parametrize("shape, size", [((3, 4, 4), 2), ((5, 7, 6), 2), ((2, 7, 8), 3), ((9, 3, 3), 3),
                                         ((40, 5, 31), 2),       # a row of 600 bits: a memory
                                         ((3, 4, 2), 2), ((4, 5, 3), 2), ((40, 4, 3), 2)])   # W = K, K + 1
@pytest.mark.parametrize("rate", ["random", "full"])
def test_pool_unit_equals_naive_model(shape, size, rate):
    """With random input gaps and output stalls, and at full rate (a pixel every cycle, where
    a row's entry is read soonest after its write)."""
    c, h, w = shape
    rng = np.random.default_rng(c * h + w)
    modes = tuple(int(m) for m in rng.integers(0, 2, c))
    images = rng.integers(0, 2, (3, h * w * c))
    rates = (0.7, 0.6) if rate == "random" else (1.0, 1.0)
    got = run_pool(Pool(c, h, w, size, modes), images, c, *rates)
    want = []
    for im in images:
        x = im.reshape(h, w, c)[:h // size * size, :w // size * size]
        win = x.reshape(h // size, size, w // size, size, c)
        pooled = np.where(np.array(modes, bool), win.min(axis=(1, 3)), win.max(axis=(1, 3)))
        want += [pixel_word(px, 1) for px in pooled.reshape(-1, c)]
    assert got == want
