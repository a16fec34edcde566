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

Only control state (counters, valid flags) is reset; data registers are ``reset_less``: a
valid flag guards them, and a reset fanned out to every data flip-flop of a large network's
units is a long route.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from bnncore import defaults

from .engine import KEEP, buffer_port
from .plan import POOL_LOGIC_BITS, Pool, Window

__all__ = ["SlidingWindow", "PixelCollector", "MaxPool", "RowUnpacker", "POOL_LOGIC_BITS"]

#: Bits of a window unit's pixel register per copy of its load-or-shift select.
PIXEL_SELECT_BITS = 64


class RowUnpacker(wiring.Component):
    """A row of ``width`` pixels per transfer in, one pixel per transfer out (the first pixel
    in the low bits). The input stream of a convolutional accelerator carries rows: a beat per
    pixel would make a simulator's testbench wake 784 times per MNIST image.

    A row takes ``width + 1`` cycles: the row register takes the input while it holds no
    pixels (valid or not; ``have`` says whether it was a transfer), then shifts a pixel out per
    cycle into an output register, with a skid register behind that. The row's controls depend
    on this unit's registers only, in one copy per ``PIXEL_SELECT_BITS`` bits computed a
    cycle ahead: neither the next unit's ready nor a multiplexer of a wide row is on a path
    into them (docs/results.md, "Timing rules")."""

    def __init__(self, *, width: int, pixel_bits: int):
        self._w, self._pb = width, pixel_bits
        super().__init__({"i": In(stream.Signature(width * pixel_bits)), "o": Out(stream.Signature(pixel_bits))})

    def elaborate(self, platform):
        m = Module()
        W, pb = self._w, self._pb
        row = Signal(W * pb, reset_less=True)
        have = Signal()                              # `row` holds pixels not yet sent
        k = Signal(range(max(2, W)))                 # the next pixel of the row
        o_v, o_d = Signal(), Signal(pb, reset_less=True)     # the output register
        s_v, s_d = Signal(), Signal(pb, reset_less=True)     # the skid register behind it
        load = self.i.valid & ~have
        send = have & ~s_v                           # row[:pb] leaves the row this cycle
        pop = o_v & self.o.ready
        m.d.comb += [self.i.ready.eq(~have), self.o.valid.eq(o_v), self.o.payload.eq(o_d)]
        have_next = load | (have & ~(send & (k == W - 1)))
        s_v_next = Mux(~o_v | pop, 0, Mux(send, 1, s_v))
        m.d.sync += [have.eq(have_next), s_v.eq(s_v_next)]
        with m.If(send):
            m.d.sync += k.eq(Mux(k == W - 1, 0, k + 1))
        # the skid register holds the pixel sent while the output register was full and not
        # popped; while it holds one the row waits
        with m.If(~o_v | pop):
            m.d.sync += [o_v.eq(s_v | send), o_d.eq(Mux(s_v, s_d, row[:pb]))]
        with m.Elif(send):
            m.d.sync += s_d.eq(row[:pb])
        for c, lo in enumerate(range(0, W * pb, PIXEL_SELECT_BITS)):
            hi = min(lo + PIXEL_SELECT_BITS, W * pb)
            have_c = Signal(name=f"row_have_rep_c{c}", attrs=KEEP)
            s_v_c = Signal(name=f"row_skid_rep_c{c}", attrs=KEEP)
            m.d.sync += [have_c.eq(have_next), s_v_c.eq(s_v_next)]
            with m.If(~have_c):
                m.d.sync += row[lo:hi].eq(self.i.payload[lo:hi])
            with m.Elif(~s_v_c):
                m.d.sync += row[lo:hi].eq((row >> pb)[lo:hi])
        return m


class SlidingWindow(wiring.Component):
    """The window unit in front of an engine.

    Parameters
    ----------
    window : Window
        The input map, the kernel, the padding and its value.
    simd : int
        Values per word written into the engine's buffer (divides the channels).
    slot_enables : bool
        Drive ``o.slot_en`` (each word's write enable, decoded and registered) for an engine
        whose buffer is a register array; a memory buffer needs only ``we`` and ``slot``.

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

    def __init__(self, *, window: Window, simd: int, slot_enables: bool = False):
        if not isinstance(window, Window):
            raise TypeError(f"window must be a Window, not {window!r}")
        if not isinstance(simd, int) or simd < 1 or window.channels % simd:
            raise TypeError(f"simd must divide the window's {window.channels} channels, not {simd!r}")
        self._w, self._simd, self._slot_enables = window, simd, slot_enables
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

        cbits = (CW - 1).bit_length()
        # one word per SIMD channels of a pixel (the words the reader reads), so that a wide
        # pixel takes a narrow, deep memory: block RAMs are 16 bits wide on iCE40, 36 on ECP5
        m.submodules.lines = mem = memory.Memory(shape=chunk, depth=R << (xbits + cbits), init=[])
        wp, rp = mem.write_port(), mem.read_port()

        # --- writer: a pixel into the row slot it took, a word per cycle
        free = Signal(range(R + 1), init=R)          # rows the writer may take
        freed = Signal(range(H + 1))                 # rows the reader frees this cycle
        wx = Signal(range(max(2, W)))
        wslot = Signal(max(1, rbits))
        # the pixel shifts a word per cycle: no multiplexer of its words (a wide one is slow), and
        # no word_select (its shift becomes a multiplier)
        wc = Signal(range(max(2, CW)))               # the pixel's word being written
        pixel = Signal(w.pixel_bits, reset_less=True)
        loaded = Signal()                            # `pixel` holds words still to write
        ax = Signal(range(max(2, W)))               # column of the next pixel accepted
        row_done = Signal()
        last_chunk = loaded & (wc == CW - 1)
        accept = self.i.valid & self.i.ready
        take = accept & (ax == 0)                    # a row's first pixel takes a row
        m.d.comb += [self.i.ready.eq((~loaded | last_chunk) & ((ax != 0) | (free != 0))),
                     wp.addr.eq(Cat(*([wc[:cbits]] if cbits else []), wx[:xbits], *([wslot[:rbits]] if rbits else []))),
                     wp.data.eq(pixel[:chunk]), wp.en.eq(loaded),
                     row_done.eq(last_chunk & (wx == W - 1))]
        m.d.sync += free.eq(free - take + freed)
        # `pixel` takes the payload whenever it has no words left to write, valid or not
        # (`loaded` says whether it was a transfer): its wide load enable then depends on this
        # unit's own registers, not on the previous unit's valid, a long route into a wide register.
        # The load-or-shift select is a register computed a cycle ahead, one copy per
        # PIXEL_SELECT_BITS bits: decoded from `wc` and `loaded` in the same cycle, its fan-out to
        # a wide pixel's multiplexers follows three LUTs. Without words to write `wc` is 0, so
        # the next cycle ends a pixel when `loaded` then holds and `wc` reaches CW - 1.
        loaded_next = Mux(accept, 1, Mux(last_chunk, 0, loaded))
        wc_next = Mux(loaded, Mux(wc == CW - 1, 0, wc + 1), wc)
        reload = [Signal(init=1, name=f"pixel_reload_rep_c{c}", attrs=KEEP)
                  for c in range(-(-w.pixel_bits // PIXEL_SELECT_BITS))]
        m.d.sync += [r.eq(~loaded_next | (wc_next == CW - 1)) for r in reload]
        for c, r in enumerate(reload):
            lo = c * PIXEL_SELECT_BITS
            part = pixel[lo:lo + PIXEL_SELECT_BITS]
            with m.If(r):
                m.d.sync += part.eq(self.i.payload[lo:lo + PIXEL_SELECT_BITS])
            with m.Else():
                m.d.sync += part.eq((pixel >> chunk)[lo:lo + PIXEL_SELECT_BITS])
        with m.If(accept):
            m.d.sync += [loaded.eq(1), ax.eq(Mux(ax == W - 1, 0, ax + 1))]
        with m.Elif(last_chunk):
            m.d.sync += loaded.eq(0)
        with m.If(loaded):
            m.d.sync += wc.eq(wc_next)
        with m.If(last_chunk):
            with m.If(wx == W - 1):
                m.d.sync += wx.eq(0)
                if rbits:
                    m.d.sync += wslot.eq(wslot + 1)
            with m.Else():
                m.d.sync += wx.eq(wx + 1)

        # --- reader: windows, one word per cycle
        written = Signal(range(H + R + 1))           # rows written of the reader's image and after
        rbase = Signal(max(1, rbits))                # slot of the reader's image's row 0
        noy, nox = Signal(range(max(2, OH))), Signal(range(max(2, OW)))    # the next window
        coy, cox = Signal.like(noy, name="coy"), Signal.like(nox, name="cox")  # the one being issued
        ky, kx = Signal(range(max(2, KH))), Signal(range(max(2, KW)))
        cw = Signal(range(max(2, CW)))
        word = Signal(range(max(2, SF)))
        busy = Signal()
        last_word = busy & (word == SF - 1)
        last_of_row = last_word & (cox == OW - 1)
        end_image = last_of_row & (coy == OH - 1)
        # rows the next window needs, and those it needs to be the next image's if this one ends now
        need = Mux(noy + (KH - P) > H, H, noy + (KH - P))
        if SF >= 2:
            # registered: the comparison's carry chain must not reach every counter's enable in
            # one cycle. During a window of SF >= 2 words it is recomputed for the next
            # window before that one can start; `written` a cycle old only errs late.
            ready = Signal()
            last_window = busy & (cox == OW - 1) & (coy == OH - 1)
            m.d.sync += ready.eq(written >= need + Mux(last_window, H, 0))
        else:
            ready = written >= need + Mux(end_image, H, 0)
        go = (~busy | last_word) & ready & self.o.space
        m.d.comb += self.o.claim.eq(go)
        m.d.sync += written.eq(written + row_done - Mux(end_image, H, 0))
        # a row is freed when the next row of windows no longer reads it, the rest at the end
        m.d.comb += freed.eq(Mux(end_image, H - max(0, OH - 1 - P),
                                 Mux(last_of_row & (coy >= P) if P else last_of_row, 1, 0)))
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
        # (without padding every position is inside: no comparison, which lint would call constant)
        inside = ((yp >= P) & (yp < H + P) & (xp >= P) & (xp < W + P)) if P else Const(1)
        y = (yp - P)[:max(1, (H + KH).bit_length())]
        x = (xp - P)[:xbits]
        slot = (rbase + y)[:rbits] if rbits else None
        m.d.comb += rp.addr.eq(Cat(*([cw[:cbits]] if cbits else []), x, *([slot] if rbits else [])))
        # stage 1: the line buffer's word, and what to take of it
        s1_v, s1_pad, s1_last = Signal(), Signal(), Signal()
        s1_word = Signal.like(word)
        m.d.sync += [s1_v.eq(busy), s1_pad.eq(~inside), s1_last.eq(last_word), s1_word.eq(word)]
        pad_word = Const(int("".join([format(w.pad_value, f"0{w.value_bits}b")] * simd), 2), chunk)
        # stage 2: into the engine's buffer
        o_v, o_last = Signal(), Signal()
        o_slot, o_data = Signal.like(word, reset_less=True), Signal(chunk, reset_less=True)
        m.d.sync += [o_v.eq(s1_v), o_last.eq(s1_v & s1_last), o_slot.eq(s1_word),
                     o_data.eq(Mux(s1_pad, pad_word, rp.data))]
        m.d.comb += [self.o.we.eq(o_v), self.o.last.eq(o_last), self.o.slot.eq(o_slot), self.o.data.eq(o_data)]
        if self._slot_enables:
            slot_en = Signal(SF)
            m.d.sync += slot_en.eq(Cat(s1_v & (s1_word == k) for k in range(SF)))
            m.d.comb += self.o.slot_en.eq(slot_en)
        return m


class PixelCollector(wiring.Component):
    """An engine's output pixels, NF writes of PE bits, into a stream of ``channels``-bit pixels
    (the bits of padded neurons dropped). Two pixels of buffering: the engine claims one before
    it starts the pixel's window."""

    def __init__(self, *, pe: int, nf: int, channels: int, banks: int = defaults.BANKS):
        if pe * nf < channels:
            raise TypeError(f"{nf} writes of {pe} bits hold fewer than the {channels} channels")
        self._pe, self._nf, self._c, self._banks = pe, nf, channels, banks
        super().__init__({"wr": In(buffer_port(pe, nf)), "o": Out(stream.Signature(channels))})

    def elaborate(self, platform):
        m = Module()
        PE, NF, C, B = self._pe, self._nf, self._c, self._banks
        regs = [Signal(NF * PE, name=f"pixel{b}", reset_less=True) for b in range(B)]
        full = Signal(B)
        used = Signal(range(B + 1))
        wptr, rptr = Signal(range(B)), Signal(range(B))
        pop = self.o.valid & self.o.ready
        done = self.wr.we & self.wr.last
        # the output's valid is a flip-flop of its own (the next cycle's full[rptr]): decoded from
        # rptr it would begin a path into the next max-pool's row write enable
        valid = Signal()
        m.d.comb += [self.wr.space.eq(used < B), self.o.valid.eq(valid),
                     self.o.payload.eq(Array(r[:C] for r in regs)[rptr])]
        m.d.sync += used.eq(used + self.wr.claim - pop)
        for b in range(B):
            for s in range(NF):
                with m.If(self.wr.slot_en[s] & (wptr == b)):
                    m.d.sync += regs[b].word_select(s, PE).eq(self.wr.data)
        full_next = (full | Mux(done, 1 << wptr, 0)) & ~Mux(pop, 1 << rptr, 0)
        rptr_next = Mux(pop, Mux(rptr == B - 1, 0, rptr + 1), rptr)
        m.d.sync += [full.eq(full_next), rptr.eq(rptr_next), valid.eq(full_next.bit_select(rptr_next, 1))]
        with m.If(done):
            m.d.sync += wptr.eq(Mux(wptr == B - 1, 0, wptr + 1))
        return m


class _RegisterRow:
    """A memory's write or read port over a row of registers (``share`` joins the two): the
    read data is registered at an enabled read, as a synchronous read port's."""

    def __init__(self, m, width, depth):
        self._m = m
        self.addr = Signal(range(max(2, depth)))
        self.en = Signal()
        self.data = Signal(width, reset_less=True)
        self._regs = Array(Signal(width, name=f"row{k}", reset_less=True) for k in range(depth))

    def share(self, write):
        m = self._m
        with m.If(write.en):
            m.d.sync += self._regs[write.addr].eq(write.data)
        with m.If(self.en):
            m.d.sync += self.data.eq(self._regs[self.addr])


class MaxPool(wiring.Component):
    """size x size max-pool of bits, stride size, on a pixel stream: per channel the OR of the
    window, or the AND for the channels ``pool.modes`` marks. The pixels of a window's row are
    merged in a register; the partial results of the windows of a row of windows wait in a
    memory (a word per window), read when a window's row starts and written (or, on its last
    row, merged and sent) when it ends. The pixels of a trailing row or column that fills no
    window are dropped."""

    def __init__(self, pool: Pool):
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
        mode = Const(sum(1 << c for c, v in enumerate(p.modes) if v), C)

        def merge(a, b):
            return ((a | b) & ~mode) | (a & b & mode)

        if OW * C > POOL_LOGIC_BITS:
            m.submodules.rows = mem = memory.Memory(shape=C, depth=max(2, OW), init=[])
            wp, rp = mem.write_port(), mem.read_port()
        else:
            # a row of a few hundred bits in flip-flops, read and written as the memory would
            # be: as a block RAM on iCE40 (16 bits wide) a 48-channel row took 3 of the UP5K's
            # 30 blocks for 336 bits
            wp, rp = _RegisterRow(m, C, OW), _RegisterRow(m, C, OW)
            rp.share(wp)
        h = Signal(C, reset_less=True)               # the window's row so far
        o_valid, o_data = Signal(), Signal(C, reset_less=True)
        # the input waits for the output register to empty, even when it empties this cycle:
        # a ready passed through from the next unit would chain the handshakes of the units
        # (window writer, pool, pixel collector, engine) into one path
        ready = ~o_valid
        accept = self.i.valid & ready
        keep = accept & (x < OW * K) & (y < OH * K)
        pix = self.i.payload
        row = Mux(xi == 0, pix, merge(h, pix))
        done = keep & (xi == K - 1)                  # the window's row is complete
        write = [done & (yi != K - 1), j, Mux(yi == 0, row, merge(rp.data, row))]
        if W > K:
            # the row's write a cycle late, from registers: its enable fans out to every LUT RAM
            # of a pool's rows. The entry's next read comes W - K + 1 pixels
            # after the pixel that writes it, so at least two cycles later (one window a row,
            # W == K, could read it in the cycle of the late write).
            late = [Signal(), Signal.like(j), Signal(C, reset_less=True)]
            m.d.sync += [r.eq(v) for r, v in zip(late, write)]
            write = late
        m.d.comb += [self.i.ready.eq(ready), self.o.valid.eq(o_valid), self.o.payload.eq(o_data),
                     rp.addr.eq(j), rp.en.eq(keep & (xi == 0)),
                     wp.en.eq(write[0]), wp.addr.eq(write[1]), wp.data.eq(write[2])]
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(keep):
            m.d.sync += h.eq(row)
        # the output register takes the merged window whenever it is empty, a window ending or
        # not (o_valid says whether one did): its clock enable is then one register, not the
        # decoded end of a window routed to every bit of a wide output register
        with m.If(~o_valid):
            m.d.sync += o_data.eq(merge(rp.data, row))
        with m.If(done & (yi == K - 1)):
            m.d.sync += o_valid.eq(1)
        with m.If(accept):
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
