"""Cycle model of the accelerator's control: the exact latency and initiation interval of a
design, without simulating its data.

Each unit of hw/accelerator.py (input stage or row unpacker, window writer and reader,
engine, pixel collector, max-pool, output FIFO) is modelled by its control registers and
the handshakes between them, as the RTL computes them cycle by cycle. Every handshake
signal of the RTL (valid, ready, space) is a function of its unit's registers, so a cycle
is two phases: each unit's signals from its registers, then each unit's decisions (accept,
claim, pop) from its own and its neighbours' signals, then every register's next value.

A unit that is only counting (an engine issuing the words of a window, a window reader
handing out a window, a window writer writing a wide pixel) tells how many cycles it will
go on doing so; when every unit is counting or waiting, the model skips to the next cycle
where one of them acts. An image then costs a few steps per window and per pixel instead of
one per unit and cycle.

The bench drives images back to back and takes every result at once (``sim/tb.py`` without
gaps or stalls). The model runs until the state of every unit at a result repeats one at an
earlier result: the design is then periodic, and the interval is exact.
"""

from fractions import Fraction
from typing import NamedTuple

INF = float("inf")

__all__ = ["simulate", "CycleRun", "Unit", "MaxPoolUnit", "INF"]


def _banks(full, rptr):
    """Full flags from the read pointer on: which bank is which does not change the timing,
    so that states differing only by a rotation of the banks are one state."""
    return tuple(full[rptr:] + full[:rptr])


class Unit:
    """A unit's control. ``signals`` (phase 1) reads only its own registers; ``decide``
    (phase 2) reads its neighbours' signals; ``tick`` makes the next registers; ``next_event``
    is the first cycle from ``c`` at which ``tick`` does more than ``skip`` can; ``state`` is
    what the unit's future depends on. A stage on the pixel stream (hw/stages.py) has ``src``
    (the unit before: its ``valid``) and ``sink`` (the unit after: its ``i_ready``), and
    sets ``i_ready`` and ``valid`` in ``signals``."""

    def signals(self, c):
        pass

    def decide(self, c):
        pass

    def tick(self, c):
        pass

    def next_event(self, c):
        return c

    def skip(self, n):
        pass

    def state(self, c):
        return ()


class _Driver(Unit):
    """The bench's input: valid on every cycle, ``beats`` beats per image."""

    def __init__(self, beats):
        self.beats, self.beat, self.t_in = beats, 0, []
        self.valid = True
        self.sink = None

    def decide(self, c):
        self.accept = self.sink.i_ready

    def tick(self, c):
        if self.accept:
            if self.beat == 0:
                self.t_in.append(c)
            self.beat = (self.beat + 1) % self.beats

    def next_event(self, c):
        return c if self.accept else INF

    def state(self, c):
        return (self.beat,)


class _InputStage(Unit):
    """A dense first layer's input: beats straight into its engine's buffer."""

    def __init__(self, beats):
        self.beats, self.beat, self.in_image = beats, 0, False
        self.src = self.engine = None

    def signals(self, c):
        self.i_ready = self.in_image or self.engine.used < self.engine.B    # the engine's space

    def decide(self, c):
        accept = self.src.valid and self.i_ready
        self.accept = accept
        self.claim = accept and not self.in_image
        self.last = accept and self.beat == self.beats - 1

    def tick(self, c):
        if self.accept:
            if self.beat == self.beats - 1:
                self.beat, self.in_image = 0, False
            else:
                self.beat, self.in_image = self.beat + 1, True

    def next_event(self, c):
        return c if self.accept else INF

    def state(self, c):
        return (self.beat, self.in_image)


class _RowUnpacker(Unit):
    """hw/window.py RowUnpacker."""

    def __init__(self, width):
        self.W = width
        self.have, self.k, self.o_v, self.s_v = False, 0, False, False
        self.src = self.sink = None

    def signals(self, c):
        self.i_ready = not self.have
        self.valid = self.o_v

    def decide(self, c):
        self.load = self.src.valid and not self.have
        self.send = self.have and not self.s_v
        self.pop = self.o_v and self.sink.i_ready

    def tick(self, c):
        last = self.k == self.W - 1
        if self.load:
            self.have = True
        if self.send:
            self.k = 0 if last else self.k + 1
            if last:
                self.have = False
        if not self.o_v or self.pop:
            self.o_v, self.s_v = self.s_v or self.send, False
        elif self.send:
            self.s_v = True

    def next_event(self, c):
        return c if self.load or self.send or self.pop or (not self.o_v and self.s_v) else INF

    def state(self, c):
        return (self.have, self.k, self.o_v, self.s_v)


class _WindowWriter(Unit):
    """hw/window.py SlidingWindow, writer side: a pixel into the line buffer, a word per cycle."""

    def __init__(self, window, simd):
        self.W, self.CW, self.R = window.width, window.channels // simd, window.rows
        self.free, self.loaded, self.wc, self.ax, self.wx = self.R, False, 0, 0, 0
        self.src = self.reader = None

    def signals(self, c):
        self.last_chunk = self.loaded and self.wc == self.CW - 1
        self.i_ready = (not self.loaded or self.last_chunk) and (self.ax != 0 or self.free != 0)
        self.row_done = self.last_chunk and self.wx == self.W - 1

    def decide(self, c):
        self.accept = self.src.valid and self.i_ready

    def tick(self, c):
        take = self.accept and self.ax == 0
        self.free += self.reader.freed - take
        if self.loaded:
            self.wc = 0 if self.wc == self.CW - 1 else self.wc + 1
        if self.last_chunk:
            self.wx = 0 if self.wx == self.W - 1 else self.wx + 1
        if self.accept:
            self.loaded = True
            self.ax = 0 if self.ax == self.W - 1 else self.ax + 1
        elif self.last_chunk:
            self.loaded = False

    def next_event(self, c):
        if self.accept or self.last_chunk:
            return c
        return c + (self.CW - 1 - self.wc) if self.loaded else INF

    def skip(self, n):
        if self.loaded:
            self.wc += n

    def state(self, c):
        return (self.free, self.loaded, self.wc, self.ax, self.wx)


class _WindowReader(Unit):
    """hw/window.py SlidingWindow, reader side: windows of SF words into the engine's buffer."""

    def __init__(self, window, sf):
        w = window
        self.H, self.KH, self.P, self.OH, self.OW, self.SF = w.height, w.kh, w.padding, w.out_h, w.out_w, sf
        self.registered = sf >= 2
        self.written, self.noy, self.nox, self.coy, self.cox, self.word = 0, 0, 0, 0, 0, 0
        self.busy, self.ready_r = False, False
        self.pending = []                        # cycles of the engine buffer's last writes
        self.writer = self.engine = None

    def _need(self):
        return min(self.H, self.noy + self.KH - self.P)

    def signals(self, c):
        self.last_word = self.busy and self.word == self.SF - 1
        self.last_of_row = self.last_word and self.cox == self.OW - 1
        self.end_image = self.last_of_row and self.coy == self.OH - 1
        if self.end_image:
            self.freed = self.H - max(0, self.OH - 1 - self.P)
        else:
            self.freed = int(self.last_of_row and self.coy >= self.P)
        self.last = bool(self.pending) and self.pending[0] == c

    def _ready_next(self):
        last_window = self.busy and self.cox == self.OW - 1 and self.coy == self.OH - 1
        return self.written >= self._need() + (self.H if last_window else 0)

    def decide(self, c):
        if self.registered:
            ready = self.ready_r
        else:
            ready = self.written >= self._need() + (self.H if self.end_image else 0)
        self.go = (not self.busy or self.last_word) and ready and self.engine.space
        self.claim = self.go

    def tick(self, c):
        if self.registered:
            self.ready_r = self._ready_next()
        self.written += self.writer.row_done - (self.H if self.end_image else 0)
        if self.last:
            self.pending.pop(0)
        if self.last_word:
            self.pending.append(c + 2)
        if self.go:
            self.busy, self.coy, self.cox, self.word = True, self.noy, self.nox, 0
            if self.nox == self.OW - 1:
                self.nox, self.noy = 0, (0 if self.noy == self.OH - 1 else self.noy + 1)
            else:
                self.nox += 1
        elif self.last_word:
            self.busy = False
        elif self.busy:
            self.word += 1

    def next_event(self, c):
        if (self.go or self.last_word or self.last or self.writer.row_done
                or (self.registered and self.ready_r != self._ready_next())):
            return c
        t = self.pending[0] if self.pending else INF
        return min(t, c + self.SF - 1 - self.word) if self.busy else t

    def skip(self, n):
        if self.busy:
            self.word += n

    def state(self, c):
        return (self.written, self.noy, self.nox, self.coy, self.cox, self.word, self.busy, self.ready_r,
                tuple(t - c for t in self.pending))


class _Engine(Unit):
    """hw/engine.py LayerEngine: its input buffer's banks and its issue of NF * SF words per
    image (or window); the consumer sees the last write ``depth - 1`` cycles after the last
    issue."""

    def __init__(self, fold, banks, depth):
        self.T, self.B, self.D = fold.nf * fold.sf, banks, depth
        self.used, self.full, self.wptr, self.rptr = 0, [False] * banks, 0, 0
        self.busy, self.i = False, 0
        self.pending = []
        self.producer = self.consumer = None

    def signals(self, c):
        self.space = self.used < self.B
        self.last_issue = self.busy and self.i == self.T - 1
        self.last = bool(self.pending) and self.pending[0] == c

    def decide(self, c):
        r = (self.rptr + 1) % self.B if self.busy else self.rptr
        self.go = (not self.busy or self.last_issue) and self.full[r] and self.consumer.space
        self.claim = self.go

    def tick(self, c):
        p = self.producer
        self.used += p.claim - self.last_issue
        if p.last:
            self.full[self.wptr] = True
            self.wptr = (self.wptr + 1) % self.B
        if self.last_issue:
            self.full[self.rptr] = False
            self.rptr = (self.rptr + 1) % self.B
            self.pending.append(c + self.D - 1)
        if self.last:
            self.pending.pop(0)
        if self.busy:
            self.i = 0 if self.last_issue else self.i + 1
        self.busy = self.go or (self.busy and not self.last_issue)

    def next_event(self, c):
        if self.go or self.last_issue or self.last:
            return c
        t = self.pending[0] if self.pending else INF
        return min(t, c + self.T - 1 - self.i) if self.busy else t

    def skip(self, n):
        if self.busy:
            self.i += n

    def state(self, c):
        return (self.used, _banks(self.full, self.rptr), (self.wptr - self.rptr) % self.B, self.busy, self.i,
                tuple(t - c for t in self.pending))


class _PixelCollector(Unit):
    """hw/window.py PixelCollector: output pixels of an engine, ``banks`` of them."""

    def __init__(self, banks):
        self.B = banks
        self.used, self.full, self.wptr, self.rptr, self.valid = 0, [False] * banks, 0, 0, False
        self.engine = self.sink = None

    def signals(self, c):
        self.space = self.used < self.B

    def decide(self, c):
        self.pop = self.valid and self.sink.i_ready

    def tick(self, c):
        done = self.engine.last
        self.used += self.engine.claim - self.pop
        if done:
            self.full[self.wptr] = True
        if self.pop:
            self.full[self.rptr] = False
            self.rptr = (self.rptr + 1) % self.B
        if done:
            self.wptr = (self.wptr + 1) % self.B
        self.valid = self.full[self.rptr]

    def next_event(self, c):
        return c if self.engine.claim or self.engine.last or self.pop or self.valid != self.full[self.rptr] else INF

    def state(self, c):
        return (self.used, _banks(self.full, self.rptr), (self.wptr - self.rptr) % self.B, self.valid)


class MaxPoolUnit(Unit):
    """hw/window.py MaxPool: takes a pixel when its output register is empty."""

    def __init__(self, pool):
        self.H, self.W, self.K = pool.height, pool.width, pool.size
        self.OH, self.OW = pool.out_h, pool.out_w
        self.x = self.y = self.xi = self.yi = 0
        self.o_valid = False
        self.src = self.sink = None

    def signals(self, c):
        self.i_ready = not self.o_valid
        self.valid = self.o_valid

    def decide(self, c):
        self.accept = self.src.valid and not self.o_valid
        self.o_ready = self.sink.i_ready

    def tick(self, c):
        K = self.K
        keep = self.accept and self.x < self.OW * K and self.y < self.OH * K
        if self.o_ready:
            self.o_valid = False
        if keep and self.xi == K - 1 and self.yi == K - 1:
            self.o_valid = True
        if self.accept:
            if self.x == self.W - 1:
                self.x = self.xi = 0
                if self.y == self.H - 1:
                    self.y = self.yi = 0
                else:
                    self.y, self.yi = self.y + 1, (0 if self.yi == K - 1 else self.yi + 1)
            else:
                self.x, self.xi = self.x + 1, (0 if self.xi == K - 1 else self.xi + 1)

    def next_event(self, c):
        return c if self.accept or (self.o_valid and self.o_ready) else INF

    def state(self, c):
        return (self.x, self.y, self.xi, self.yi, self.o_valid)


class _Output(Unit):
    """hw/accelerator.py's output FIFO and its credits; the bench takes every result at once."""

    def __init__(self, depth):
        self.credits, self.level = depth, 0
        self.engine = None
        self.t_out = []

    def signals(self, c):
        self.space = self.credits != 0
        self.popped = self.level != 0

    def tick(self, c):
        if self.popped:
            self.t_out.append(c)
        self.credits += self.popped - self.engine.claim
        self.level += self.engine.last - self.popped

    def next_event(self, c):
        return c if self.engine.claim or self.engine.last or self.popped else INF

    def state(self, c):
        return (self.credits, self.level)


def _build(plan):
    """The units of ``plan``'s accelerator, in hw/accelerator.py's order, wired."""
    from .plan import collector_banks, engine_banks
    from .stages import cycle_model_unit
    D = plan.depth
    driver = _Driver(plan.in_beats)
    units, prev = [driver], None       # prev: the feature-map stream the next window reads
    producer = None                    # what writes the next engine's buffer
    engines = []
    for k, f in enumerate(plan.layers):
        eng = _Engine(f, engine_banks(plan, f), D)
        if f.window is not None:
            if prev is None:
                prev = _RowUnpacker(f.window.width)
                prev.src = driver
                driver.sink = prev
                units.append(prev)
            writer, reader = _WindowWriter(f.window, f.simd), _WindowReader(f.window, f.sf)
            writer.src, writer.reader, reader.writer, reader.engine = prev, reader, writer, eng
            prev.sink = writer
            units += [writer, reader]
            producer = reader
        elif k == 0:
            producer = _InputStage(plan.in_beats)
            producer.src, producer.engine = driver, eng
            driver.sink = producer
            units.append(producer)
        else:
            producer = engines[-1]
        eng.producer = producer
        if f.window is None and k > 0:
            engines[-1].consumer = eng
        units.append(eng)
        engines.append(eng)
        prev = None
        if f.window is not None and f.kind == "hidden":
            col = _PixelCollector(collector_banks(plan, f))
            col.engine = eng
            units.append(col)
            prev = col
            for stage in f.pools:
                unit = cycle_model_unit(stage)
                unit.src, prev.sink = prev, unit
                units.append(unit)
                prev = unit
            eng.consumer = col
    out = _Output(plan.out_depth)
    out.engine = engines[-1]
    engines[-1].consumer = out
    units.append(out)
    return units, driver, out


class CycleRun(NamedTuple):
    """What ``simulate`` found: the interval (exact when ``period`` is not None: the mean over
    a period of the steady state, which repeats every ``period`` results from result
    ``steady_from`` on; otherwise the mean of the last results' intervals), and the exact
    latency of the first image."""
    ii: Fraction
    latency: int
    period: int | None
    steady_from: int | None


def _overrides(units, name):
    return [getattr(u, name) for u in units if getattr(type(u), name) is not getattr(Unit, name)]


def simulate(plan, max_images: int = 48) -> CycleRun:
    """Run ``plan``'s accelerator with images back to back and the output always ready until
    its state at a result repeats its state at an earlier result, or ``max_images`` results."""
    units, driver, out = _build(plan)
    signals, decide = _overrides(units, "signals"), _overrides(units, "decide")
    events, skips = [u.next_event for u in units], _overrides(units, "skip")
    ticks = _overrides(units, "tick")
    seen = {}
    c = 0
    limit = (max_images + 2) * (sum(f.cycles for f in plan.layers) + 64 * plan.in_beats + 1000)
    t_out = out.t_out
    while c < limit:
        for f in signals:
            f(c)
        for f in decide:
            f(c)
        t = INF
        for f in events:
            e = f(c)
            if e < t:
                t = e
                if e == c:
                    break
        if t > c:
            if t == INF:
                raise RuntimeError(f"cycle model: the design waits forever at cycle {c}")
            for f in skips:
                f(t - c)
            c = t
            continue
        n_out = len(t_out)
        for f in ticks:
            f(c)
        if len(t_out) > n_out:
            key = tuple(u.state(c) for u in units)
            k = len(t_out) - 1
            if key in seen:
                j = seen[key]
                return CycleRun(Fraction(t_out[k] - t_out[j], k - j), t_out[0] - driver.t_in[0], k - j, j)
            seen[key] = k
            if k + 1 >= max_images:
                break
        c += 1
    if len(t_out) < 2:
        raise RuntimeError(f"cycle model: {len(t_out)} results in {c} cycles")
    half = len(t_out) // 2
    return CycleRun(Fraction(t_out[-1] - t_out[half], len(t_out) - 1 - half), t_out[0] - driver.t_in[0], None, None)
