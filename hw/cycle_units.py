"""The units of the cycle model (hw/cycles.py), one per unit of hw/accelerator.py: each unit's
control registers and the handshakes between them, as the RTL computes them cycle by cycle."""

from __future__ import annotations

__all__ = ["Unit", "INF", "MaxPoolUnit"]


INF = float("inf")


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
