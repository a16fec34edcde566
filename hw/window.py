"""Feature-map units of a convolutional accelerator: sliding window, pixel collector, max-pool.

Feature maps stream pixel by pixel in raster order, all channels of a pixel in one word
(channel 0 in bit 0; ``value_bits`` bits per channel for an 8-bit input), as
``amaranth.lib.stream`` valid/ready streams between the units. A layer's engine
(hw/engine.py) sees one vector per window position:

``SlidingWindow``
    Line buffer (block RAM) of the input map's last rows; hands the engine each window in the
    (ky, kx, channel) order of the folded weights, SIMD values per word, the pad value where
    the window leaves the map (no padded copy of the map is stored). A dense layer after a
    convolution is a window of the whole map.
``PixelCollector``
    An engine's output pixel (NF writes of PE bits) into one word of all its channels.
``MaxPool``
    size x size max-pool of bits, stride size: per channel OR, or AND.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine import buffer_port
from .plan import Pool, Window

__all__ = ["SlidingWindow", "PixelCollector", "MaxPool"]


class SlidingWindow(wiring.Component):
    """The window unit in front of an engine.

    Parameters
    ----------
    window : Window
        The input map, the kernel, the padding and its value.
    simd : int
        Values per word written into the engine's buffer (divides the channels).

    Attributes
    ----------
    i : In(stream.Signature(window.pixel_bits))
        The input map, one pixel per transfer.
    o : Out(buffer_port(simd * value_bits, SF))
        Windows into the engine's buffer, SF = kh * kw * channels / simd words each, one word
        per cycle.

    Flow control is by rows. The line buffer holds ``window.rows`` rows (a power of two); the
    writer takes a free row before the first pixel of a row; the reader starts a window when
    the rows it needs are written (all of them, not only the pixels up to the window: a
    simpler condition for a few cycles of latency) and frees a row when the next row of
    windows no longer needs it, and the rest at the end of the image. The writer can so run
    into the next image while the reader finishes this one.
    """

    def __init__(self, *, window: Window, simd: int):
        if not isinstance(window, Window):
            raise TypeError(f"window must be a Window, not {window!r}")
        if not isinstance(simd, int) or simd < 1 or window.channels % simd:
            raise TypeError(f"simd must divide the window's {window.channels} channels, not {simd!r}")
        self._w, self._simd = window, simd
        super().__init__({"i": In(stream.Signature(window.pixel_bits)),
                          "o": Out(buffer_port(simd * window.value_bits, self.words))})

    @property
    def words(self) -> int:
        """Words per window (the engine's SF)."""
        w = self._w
        return w.kh * w.kw * (w.channels // self._simd)

    def elaborate(self, platform):
        m = Module()
        w, simd = self._w, self._simd
        H, W, KH, KW, P = w.height, w.width, w.kh, w.kw, w.padding
        OH, OW = w.out_h, w.out_w
        R = w.rows
        rbits = (R - 1).bit_length()
        xbits = w.x_bits
        CW = w.channels // simd                      # words per pixel
        chunk = simd * w.value_bits
        SF = self.words

        m.submodules.lines = mem = memory.Memory(shape=w.pixel_bits, depth=R << xbits, init=[])
        wp, rp = mem.write_port(), mem.read_port()

        # --- writer: pixels into the row slot it took
        free = Signal(range(R + 1), init=R)          # rows the writer may take
        freed = Signal(range(H + 1))                 # rows the reader frees this cycle
        wx = Signal(range(max(2, W)))
        wslot = Signal(max(1, rbits))
        in_row = Signal()
        row_done = Signal()
        accept = self.i.valid & self.i.ready
        take = accept & ~in_row
        m.d.comb += [self.i.ready.eq(in_row | (free != 0)),
                     wp.addr.eq(Cat(wx[:xbits], wslot[:rbits]) if rbits else wx[:xbits]),
                     wp.data.eq(self.i.payload), wp.en.eq(accept),
                     row_done.eq(accept & (wx == W - 1))]
        m.d.sync += free.eq(free - take + freed)
        with m.If(accept):
            with m.If(wx == W - 1):
                m.d.sync += [wx.eq(0), in_row.eq(0)]
                if rbits:
                    m.d.sync += wslot.eq(wslot + 1)
            with m.Else():
                m.d.sync += [wx.eq(wx + 1), in_row.eq(1)]

        # --- reader: windows, one word per cycle
        written = Signal(range(H + R + 1))           # rows written of the reader's image and after
        rbase = Signal(max(1, rbits))                # slot of the reader's image's row 0
        noy, nox = Signal(range(max(2, OH))), Signal(range(max(2, OW)))    # the next window
        coy, cox = Signal.like(noy), Signal.like(nox)                      # the one being issued
        ky, kx = Signal(range(max(2, KH))), Signal(range(max(2, KW)))
        cw = Signal(range(max(2, CW)))
        word = Signal(range(max(2, SF)))
        busy = Signal()
        last_word = busy & (word == SF - 1)
        last_of_row = last_word & (cox == OW - 1)
        end_image = last_of_row & (coy == OH - 1)
        # rows the next window needs, and those it needs to be the next image's if this one ends now
        need = Mux(noy + (KH - P) > H, H, noy + (KH - P))
        ready = written >= need + Mux(end_image, H, 0)
        go = (~busy | last_word) & ready & self.o.space
        m.d.comb += self.o.claim.eq(go)
        m.d.sync += written.eq(written + row_done - Mux(end_image, H, 0))
        # a row is freed when the next row of windows no longer reads it, the rest at the end
        m.d.comb += freed.eq(Mux(end_image, H - max(0, OH - 1 - P),
                                 Mux(last_of_row & (coy >= P), 1, 0)))
        with m.If(end_image):
            if rbits:
                m.d.sync += rbase.eq(rbase + H)
        with m.If(go):
            m.d.sync += [busy.eq(1), coy.eq(noy), cox.eq(nox), word.eq(0), ky.eq(0), kx.eq(0), cw.eq(0)]
            with m.If(nox == OW - 1):
                m.d.sync += [nox.eq(0), noy.eq(Mux(noy == OH - 1, 0, noy + 1))]
            with m.Else():
                m.d.sync += nox.eq(nox + 1)
        with m.Elif(last_word):
            m.d.sync += busy.eq(0)
        with m.If(busy & ~last_word):
            m.d.sync += word.eq(word + 1)
            with m.If(cw == CW - 1):
                m.d.sync += cw.eq(0)
                with m.If(kx == KW - 1):
                    m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                with m.Else():
                    m.d.sync += kx.eq(kx + 1)
            with m.Else():
                m.d.sync += cw.eq(cw + 1)

        # the word's pixel: row coy + ky - P, column cox + kx - P, or padding
        yp, xp = coy + ky, cox + kx                  # P above the map's coordinates
        inside = (yp >= P) & (yp < H + P) & (xp >= P) & (xp < W + P)
        y = (yp - P)[:max(1, (H + KH).bit_length())]
        x = (xp - P)[:xbits]
        slot = (rbase + y)[:rbits] if rbits else None
        m.d.comb += rp.addr.eq(Cat(x, slot) if rbits else x)
        # stage 1: the line buffer's word, and what to take of it
        s1_v, s1_pad, s1_last = Signal(), Signal(), Signal()
        s1_cw, s1_word = Signal.like(cw), Signal.like(word)
        m.d.sync += [s1_v.eq(busy), s1_pad.eq(~inside), s1_last.eq(last_word), s1_cw.eq(cw), s1_word.eq(word)]
        pad_word = Const(int("".join([format(w.pad_value, f"0{w.value_bits}b")] * simd), 2), chunk)
        chunks = Array(rp.data.word_select(c, chunk) for c in range(CW))
        # stage 2: into the engine's buffer
        o_v, o_last = Signal(), Signal()
        o_slot, o_data = Signal.like(word), Signal(chunk)
        m.d.sync += [o_v.eq(s1_v), o_last.eq(s1_v & s1_last), o_slot.eq(s1_word),
                     o_data.eq(Mux(s1_pad, pad_word, chunks[s1_cw]))]
        m.d.comb += [self.o.we.eq(o_v), self.o.last.eq(o_last), self.o.slot.eq(o_slot), self.o.data.eq(o_data)]
        return m


class PixelCollector(wiring.Component):
    """An engine's output pixels, NF writes of PE bits, into a stream of ``channels``-bit pixels
    (the bits of padded neurons dropped). Two pixels of buffering: the engine claims one before
    it starts the pixel's window."""

    def __init__(self, *, pe: int, nf: int, channels: int, banks: int = 2):
        if pe * nf < channels:
            raise TypeError(f"{nf} writes of {pe} bits hold fewer than the {channels} channels")
        self._pe, self._nf, self._c, self._banks = pe, nf, channels, banks
        super().__init__({"wr": In(buffer_port(pe, nf)), "o": Out(stream.Signature(channels))})

    def elaborate(self, platform):
        m = Module()
        PE, NF, C, B = self._pe, self._nf, self._c, self._banks
        regs = [Signal(NF * PE, name=f"pixel{b}") for b in range(B)]
        full = Signal(B)
        used = Signal(range(B + 1))
        wptr, rptr = Signal(range(B)), Signal(range(B))
        pop = self.o.valid & self.o.ready
        done = self.wr.we & self.wr.last
        m.d.comb += [self.wr.space.eq(used < B), self.o.valid.eq(full.bit_select(rptr, 1)),
                     self.o.payload.eq(Array(r[:C] for r in regs)[rptr])]
        m.d.sync += used.eq(used + self.wr.claim - pop)
        for b in range(B):
            for s in range(NF):
                with m.If(self.wr.slot_en[s] & (wptr == b)):
                    m.d.sync += regs[b].word_select(s, PE).eq(self.wr.data)
        m.d.sync += full.eq((full | Mux(done, 1 << wptr, 0)) & ~Mux(pop, 1 << rptr, 0))
        with m.If(done):
            m.d.sync += wptr.eq(Mux(wptr == B - 1, 0, wptr + 1))
        with m.If(pop):
            m.d.sync += rptr.eq(Mux(rptr == B - 1, 0, rptr + 1))
        return m


class MaxPool(wiring.Component):
    """size x size max-pool of bits, stride size, on a pixel stream: per channel the OR of the
    window, or the AND for the channels ``pool.modes`` marks. A row of partial results in
    registers; the pixels of a trailing row or column that fills no window are dropped."""

    def __init__(self, *, pool: Pool):
        if not isinstance(pool, Pool):
            raise TypeError(f"pool must be a Pool, not {pool!r}")
        self._p = pool
        super().__init__({"i": In(stream.Signature(pool.channels)), "o": Out(stream.Signature(pool.channels))})

    def elaborate(self, platform):
        m = Module()
        p = self._p
        H, W, K, C = p.height, p.width, p.size, p.channels
        OH, OW = p.out_h, p.out_w
        x, y = Signal(range(max(2, W))), Signal(range(max(2, H)))
        xi, yi = Signal(range(max(2, K))), Signal(range(max(2, K)))
        j = Signal(range(max(2, OW)))
        acc = Array(Signal(C, name=f"acc{k}") for k in range(OW))
        mode = Const(sum(1 << c for c, v in enumerate(p.modes) if v), C)
        o_valid, o_data = Signal(), Signal(C)
        ready = ~o_valid | self.o.ready
        accept = self.i.valid & ready
        m.d.comb += [self.i.ready.eq(ready), self.o.valid.eq(o_valid), self.o.payload.eq(o_data)]
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(accept):
            pix = self.i.payload
            prev = acc[j]
            first = (xi == 0) & (yi == 0)
            merged = Mux(first, pix, ((prev | pix) & ~mode) | (prev & pix & mode))
            with m.If((x < OW * K) & (y < OH * K)):
                with m.If((xi == K - 1) & (yi == K - 1)):
                    m.d.sync += [o_valid.eq(1), o_data.eq(merged)]
                with m.Else():
                    m.d.sync += acc[j].eq(merged)
            with m.If(x == W - 1):
                m.d.sync += [x.eq(0), xi.eq(0), j.eq(0)]
                with m.If(y == H - 1):
                    m.d.sync += [y.eq(0), yi.eq(0)]
                with m.Else():
                    m.d.sync += [y.eq(y + 1), yi.eq(Mux(yi == K - 1, 0, yi + 1))]
            with m.Else():
                m.d.sync += x.eq(x + 1)
                with m.If(xi == K - 1):
                    m.d.sync += [xi.eq(0), j.eq(j + 1)]
                with m.Else():
                    m.d.sync += xi.eq(xi + 1)
        return m
