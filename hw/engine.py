"""Layer engine: one layer's XNOR-popcount matrix-vector unit with its input buffer.

The engine owns the buffer of the images it reads (``banks`` images, written by its
producer) and reads its weights and thresholds through ROM ports, so that the same logic runs
in Amaranth's simulator with memories passed in and in the generated RTL with ROMs
initialised from files.

Pipeline, one (nf, sf) word per cycle while an image is processed (shallow):

====== ==========================================================================
cycle  what happens
====== ==========================================================================
t      issue: weight/threshold ROM addresses out; input word sf of the bank latched
t + 1  ROM data back: XNOR with the input word, popcount per PE, registered
t + 2  accumulate per PE; at sf = SF - 1 compare with the threshold (hidden) or form
       the score 2 * popcount - n + bias (output), registered
t + 3  write PE results into the consumer's buffer (slot nf); on the last slot the
       consumer's bank becomes complete, visible at t + 4
====== ==========================================================================

Pipelined (the default of a ``Plan``), for clocks of 100 MHz and more on an ECP5:

====== ==========================================================================
cycle  what happens
====== ==========================================================================
t      issue: weight ROM address into one register per ROM slice (out at t + 1); input
       word sf read
       (a memory's read port, or one of each read_group() words of each register bank)
t + 1  input word out (a register; a register array's second multiplexer level)
t + 2  input word into one register per group of REP_GROUP PEs; ROM data out, into
       fabric registers next to the block RAMs
t + 3  the weight word into registers next to the PEs; the input word into one register
       per PE
t + 4  XNOR, popcount of each POPCOUNT_CHUNK-bit chunk, registered; threshold ROM
       address out (the word's nf)
t + 5  sum of the chunks per PE, registered with the threshold ROM data
t + 6  accumulate, compare or score, registered (as t + 2 above)
t + 7  the results registered again, on their way from the PEs to the consumer's buffer
t + 8  write into the consumer, the bank complete at t + 9
====== ==========================================================================
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from bnncore import defaults
from bnncore.errors import UsageError

from .layout import rom_slices, weight_rom
from .plan import MEMORY_MIN_BITS, POPCOUNT_CHUNK, REP_GROUP, LayerFold, address_bits, read_group
from .popcount import check_popcount_form, popcount, tree_sum

__all__ = ["LayerEngine", "buffer_port", "result_port"]

#: Attributes of the copies of broadcast registers: Amaranth would merge identical registers.
KEEP = {"keep": 1}
#: Bits of the input word per copy of the first read stage's select (pipelined engines).
SEL_COLUMNS = 8



def buffer_port(width: int, slots: int) -> wiring.Signature:
    """Producer -> consumer buffer interface, seen from the producer (all Out except space)."""
    return wiring.Signature({
        "claim": Out(1),                 # pulse: claim a free bank for the next image
        "space": In(1),                  # a bank is free
        "we": Out(1),                    # write `data` into slot `slot` of the claimed bank
        "slot": Out(range(max(2, slots))),
        # we & (slot == s) for each slot s: redundant with `we` and `slot`, so that a producer
        # can hand a register-array buffer its write enables decoded and registered
        "slot_en": Out(slots),
        "data": Out(width),
        "last": Out(1),                  # with we: the image is complete
    })


def result_port(pe: int, score_bits: int, slots: int) -> wiring.Signature:
    """Output engine -> arg-max interface (PE signed scores per write), seen from the engine."""
    return wiring.Signature({
        "claim": Out(1),
        "space": In(1),
        "we": Out(1),
        "slot": Out(range(max(2, slots))),
        "data": Out(data.ArrayLayout(signed(score_bits), pe)),
        "last": Out(1),
    })


def _planes(m, weights, x, value_bits: int, name: str) -> list:
    """(agreement bits, weight) of each bit plane of an input word against one neuron's
    weight bits: the XNOR of each value's bits with its weight bit. For 8-bit values the sum of
    the planes' popcounts, weighted 2**b, is x for a weight bit 1 and 255 - x for a 0 (the
    network's xnor8, bnncore/network.py and bnncore/kinds/). The 8-bit agreement bits are a
    signal of their own (``name``, combinational, in ``m``): a bit plane sliced out of the
    expression itself made Amaranth emit the whole XNOR once per bit, time and memory growing
    with the cube of SIMD (minutes and gigabytes from SIMD 28)."""
    if value_bits == 1:
        return [(~(weights ^ x), 0)]
    agree = Signal(len(x), name=name)
    m.d.comb += agree.eq(~(Cat(*(weights[i].replicate(value_bits) for i in range(len(weights)))) ^ x))
    return [(Cat(*(agree[i * value_bits + b] for i in range(len(weights)))), b) for b in range(value_bits)]


class LayerEngine(wiring.Component):
    """One folded layer.

    Parameters
    ----------
    fold : LayerFold
        Sizes and folding of the layer.
    in_width : int
        Bits per buffer write of the producer (the previous layer's PE, or the input width).
    in_slots : int
        Buffer writes per image (the previous layer's NF, or the input beats).
    banks : int
        Images the input buffer holds.
    value_bits : int
        Width of a threshold (hidden) or bias (output) in the threshold ROM.
    score_bits : int
        Output layer only: signed width of a score.
    pipelined : bool
        The 9-stage engine of the module docstring (``plan.pipeline_depth``): registered
        ROM outputs, copies of the broadcast registers, a two-cycle buffer read, a
        two-stage popcount and the results registered twice.
    popcount_form : str
        ``"chain"`` or ``"tree"``: the form of the popcounts' adders, for the simulator that runs
        the RTL (``popcount.popcount``); synthesis gives the same cells.

    Attributes
    ----------
    wr : In(buffer_port(in_width, in_slots))
        Writes of the producer into this engine's buffer.
    out : Out(buffer_port(PE, NF)) or Out(result_port(...))
        This engine's results: PE bits (hidden) or PE scores (output) per write.
    w_addr, w_data : Out, In
        Weight ROM read port (data one cycle after the address), one row of
        ``plan.weight_rom(fold, pipelined)`` per read: a word of PE * SIMD bits, or in a
        pipelined engine's deep ROM several, of which the engine selects one after its register.
        The row is read in column slices (``plan.rom_slices``), each with its own address:
        ``w_addr`` is their concatenation, slice 0 in the low bits (all equal; a pipelined
        engine drives each from its own register, next to its block RAMs).
    t_addr, t_data : Out, In
        Threshold/bias ROM read port, PE * value_bits per word, in ``t_slices`` column slices
        with one address each, as the weight ROM.
    """

    def __init__(self, *, fold: LayerFold, in_width: int, in_slots: int, banks: int = defaults.BANKS,
                 value_bits: int | None = None, score_bits: int | None = None, pipelined: bool = False,
                 popcount_form: str = "chain"):
        if not isinstance(fold, LayerFold):
            raise TypeError(f"fold must be a LayerFold, not {fold!r}")
        for name, v in (("in_width", in_width), ("in_slots", in_slots)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        if not isinstance(banks, int) or banks < 2:
            raise TypeError(f"banks must be an integer of at least 2, not {banks!r}")
        if in_width * in_slots < fold.n_in * fold.in_bits:
            raise UsageError(f"the producer writes {in_width} x {in_slots} bits per image, fewer than "
                             f"the layer's {fold.n_in} inputs" + (f" of {fold.in_bits} bits" if fold.in_bits != 1 else ""))
        value_bits = fold.value_bits if value_bits is None else value_bits
        if fold.kind == "hidden" and value_bits < fold.value_bits:
            raise UsageError(f"value_bits must be at least {fold.value_bits} for thresholds up to "
                             f"{fold.max_sum + 1}, not {value_bits}")
        if fold.kind == "output" and score_bits is None:
            raise UsageError("an output engine needs score_bits")
        self._fold, self._in_width, self._in_slots, self._banks = fold, in_width, in_slots, banks
        self._value_bits, self._score_bits = value_bits, score_bits
        self._pipelined = bool(pipelined)
        self._rom = weight_rom(fold, self._pipelined)
        self._popcount_form = check_popcount_form(popcount_form, "popcount_form")
        out = (buffer_port(fold.pe, fold.nf) if fold.kind == "hidden"
               else result_port(fold.pe, score_bits, fold.nf))
        super().__init__({
            "wr": In(buffer_port(in_width, in_slots)),
            "out": Out(out),
            "w_addr": Out(unsigned(address_bits(self._rom.depth) * self._rom.slices)),
            "w_data": In(self._rom.width),
            "t_addr": Out(unsigned(address_bits(fold.nf) * self.t_slices)),
            "t_data": In(fold.pe * value_bits),
        })

    @property
    def fold(self) -> LayerFold:
        return self._fold

    @property
    def rom(self):
        """The weight ROM as the engine reads it (``plan.weight_rom``)."""
        return self._rom

    @property
    def t_slices(self) -> int:
        """Column slices of the threshold/bias ROM (``plan.rom_slices``)."""
        return len(rom_slices(self._fold.pe * self._value_bits, self._fold.nf))

    @property
    def memory_buffer(self) -> bool:
        """True when the producer writes whole SIMD-bit words, one per synapse fold (the first
        layer, a window's engine) and the buffer holds more than ``MEMORY_MIN_BITS``: it is
        then a memory, block RAM on an FPGA, instead of registers. Otherwise (PE-bit writes,
        SIMD-bit reads, or a buffer of a few words) it is a register array."""
        return (self._in_width == self._fold.word_bits and self._in_slots == self._fold.sf
                and self._banks * self._in_slots * self._in_width > MEMORY_MIN_BITS)

    def elaborate(self, platform):
        m = Module()
        f, B = self._fold, self._banks
        PE, SIMD, NF, SF = f.pe, f.simd, f.nf, f.sf
        VB = f.in_bits                  # bits per input value: 1, or 8 for raw pixels
        XW = SIMD * VB                  # bits per input word
        L = max(self._in_width * self._in_slots, SF * XW)

        # --- input buffer: `banks` images, written by the producer, read one word per cycle
        full = Signal(B)
        used = Signal(range(B + 1))
        wptr = Signal(range(B))
        rptr = Signal(range(B))
        release = Signal(name="release_bank")
        m.d.comb += self.wr.space.eq(used < B)
        m.d.sync += used.eq(used + self.wr.claim - release)
        x = Signal(XW, reset_less=True)     # stage 1: the input word issued the cycle before, beside the ROM data
        if self.memory_buffer:
            # writes are whole read words: a memory (block RAM) of SIMD-bit words, bank-major,
            # each bank padded to a power of two of slots; its synchronous read port gives
            # the word one cycle after the issue, as the ROMs do
            sbits = max(1, (SF - 1).bit_length())
            m.submodules.buffer = mem = memory.Memory(shape=unsigned(XW), depth=B << sbits, init=[])
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(Cat(self.wr.slot[:sbits], wptr)), wp.data.eq(self.wr.data), wp.en.eq(self.wr.we)]
            if not self._pipelined:
                m.d.comb += x.eq(rp.data)
        else:
            # each slot's flip-flops take the producer's decoded enable, a register in an
            # engine: decoding `we` and `slot` here put two LUTs and a route across the whole
            # buffer in front of their clock enables (12.7 ns on an ECP5-85F)
            bufs = Array(Signal(L, name=f"bank{b}", reset_less=True) for b in range(B))
            for b in range(B):
                for s in range(self._in_slots):
                    with m.If(self.wr.slot_en[s] & (wptr == b)):
                        m.d.sync += bufs[b].word_select(s, self._in_width).eq(self.wr.data)
        with m.If(self.wr.we):
            with m.If(self.wr.last):
                m.d.sync += wptr.eq(Mux(wptr == B - 1, 0, wptr + 1))
        next_r = Mux(rptr == B - 1, 0, rptr + 1)
        # full flags: set on the producer's last write, cleared on release (different banks)
        set_full = Mux(self.wr.we & self.wr.last, 1 << wptr, 0)
        clr_full = Mux(release, 1 << rptr, 0)
        m.d.sync += full.eq((full | set_full) & ~clr_full)
        with m.If(release):
            m.d.sync += rptr.eq(next_r)

        # --- issue: one (nf, sf) word per cycle
        # The counters advance while busy and wrap to 0 after an image's last word, so they
        # are at 0 when the next image starts; `last` (the current word is the image's last)
        # is a register computed a cycle ahead. The start condition `go` then depends on a
        # handful of registers only, and drives no counter (it was an ECP5-85F's critical
        # path: the counters' comparison, then `go`'s fan-out to their synchronous resets).
        total = f.weight_depth
        busy = Signal()
        last = Signal(init=int(total == 1), name="last_word")
        nf = Signal(range(max(2, NF)))
        sf = Signal(range(max(2, SF)))
        waddr = Signal(range(max(2, total)))
        last_issue = busy & last
        ready_image = Mux(busy, full.bit_select(next_r, 1), full.bit_select(rptr, 1))
        go = (~busy | last) & ready_image & self.out.space
        m.d.comb += [release.eq(last_issue), self.out.claim.eq(go)]
        K = self._rom.row_words
        if K > 1:
            # a deep ROM holds K words per row (plan.weight_rom): the row and the word in it
            wrow = Signal(range(max(2, self._rom.depth)))
            wsel = Signal(range(K))
            with m.If(busy):
                with m.If(last):
                    m.d.sync += [wrow.eq(0), wsel.eq(0)]
                with m.Elif(wsel == K - 1):
                    m.d.sync += [wrow.eq(wrow + 1), wsel.eq(0)]
                with m.Else():
                    m.d.sync += wsel.eq(wsel + 1)
            raddr = wrow
        else:
            raddr = waddr
        if self._pipelined:
            # the weight address through a register, one copy per column slice of the ROM
            # (plan.slice_bits wide): a full cycle for its fan-out to the slice's block RAMs,
            # not to all of a wide ROM's, which spread over the device
            wa_q = [Signal.like(raddr, name=f"w_addr_rep_s{s}", attrs=KEEP) for s in range(self._rom.slices)]
            m.d.sync += [q.eq(raddr) for q in wa_q]
            m.d.comb += self.w_addr.eq(Cat(*wa_q))
        else:
            m.d.comb += self.w_addr.eq(Cat(*[raddr] * self._rom.slices))
        m.d.sync += busy.eq(go | (busy & ~last))
        sf_next = Signal.like(sf, name="sf_next")   # for registers that must equal sf
        m.d.comb += sf_next.eq(sf)
        m.d.sync += sf.eq(sf_next)
        with m.If(busy):
            m.d.sync += [waddr.eq(Mux(last, 0, waddr + 1)),
                         last.eq(1 if total == 1 else ~last & (waddr == total - 2))]
            with m.If(sf == SF - 1):
                m.d.comb += sf_next.eq(0)
                m.d.sync += nf.eq(Mux(nf == NF - 1, 0, nf + 1))
            with m.Else():
                m.d.comb += sf_next.eq(sf + 1)

        # --- stage 1: input word aligned with the ROM data
        s1_v = Signal()
        s1_first, s1_last = Signal(reset_less=True), Signal(reset_less=True)
        s1_nf = Signal.like(nf, reset_less=True)
        if self.memory_buffer:
            m.d.comb += rp.addr.eq(Cat(sf[:sbits], rptr))
        elif not self._pipelined:
            m.d.sync += x.eq(bufs[rptr].word_select(sf, XW))
        m.d.sync += [s1_v.eq(busy), s1_first.eq(sf == 0), s1_last.eq(sf == SF - 1), s1_nf.eq(nf)]
        ctrl = (s1_v, s1_first, s1_last, s1_nf)
        if self._pipelined:
            # the input word in two cycles: a register array's read is a (banks x SF)-to-1
            # multiplexer of SIMD bits, whose selects fan out over the whole buffer (13.8 ns on
            # an ECP5-85F in one cycle): first one of each G words of each bank, then one of
            # those, with the index registered; a memory's word just takes a register. The
            # first stage's select is `sf`'s low bits, in one register copy per group (the
            # counter itself, fanned out to every group, was a 12.1 ns path on the 85F)
            x_word = Signal(XW, name="x_word", reset_less=True)
            if self.memory_buffer:
                m.d.sync += x_word.eq(rp.data)
            else:
                G = read_group(SF, B)
                n_groups = (SF + G - 1) // G
                gbits = (G - 1).bit_length()
                parts = []
                for b in range(B):
                    words = [bufs[b].word_select(i, XW) for i in range(SF)]
                    for h in range(n_groups):
                        part = Signal(XW, name=f"x_part_b{b}_g{h}", reset_less=True)
                        if G == 1:
                            m.d.sync += part.eq(words[h])
                        else:
                            group = words[h * G:(h + 1) * G]
                            group += [group[-1]] * (G - len(group))
                            # one select register per SEL_COLUMNS bits of the word: a select
                            # decoded once per group and routed to all SIMD bits' multiplexers,
                            # spread over the device, was a 7.6 ns route on the 85F
                            for c, lo in enumerate(range(0, XW, SEL_COLUMNS)):
                                n = min(SEL_COLUMNS, XW - lo)
                                sel = Signal(range(G), name=f"x_sel_rep_b{b}_g{h}_c{c}", attrs=KEEP)
                                m.d.sync += [sel.eq(sf_next[:gbits]),
                                             part[lo:lo + n].eq(Array([w[lo:lo + n] for w in group])[sel])]
                        parts.append(part)
                hi = Signal(range(max(2, len(parts))), name="x_sel_hi", reset_less=True)
                # the bank's first group from a table: rptr * n_groups with more than two banks
                # became a DSP multiplier in Yosys' ECP5 flow
                base = Array(Const(b * n_groups, len(hi)) for b in range(B))[rptr]
                m.d.sync += [hi.eq(base + (sf >> gbits)), x_word.eq(Array(parts)[hi])]
            m.d.comb += x.eq(x_word)

        def delayed(signals, stage):
            """Register the control signals of a word one stage further down the pipeline."""
            out = tuple(Signal.like(v, name=f"{stage}_{n}", reset_less=n != "v")
                        for v, n in zip(signals, ("v", "first", "last", "nf")))
            m.d.sync += [o.eq(v) for o, v in zip(out, signals)]
            return out

        # --- stage 2: XNOR + popcount per PE, registered with the thresholds
        pc = [Signal(range(SIMD * ((1 << VB) - 1) + 1), name=f"pc{p}", reset_less=True) for p in range(PE)]
        thr = Signal(PE * self._value_bits, reset_less=True)
        if not self._pipelined:
            m.d.comb += self.t_addr.eq(Cat(*[nf] * self.t_slices))
            for p in range(PE):
                m.d.sync += pc[p].eq(tree_sum([popcount(plane, self._popcount_form) << b
                                               for plane, b in _planes(m, self.w_data.word_select(p, SIMD), x, VB,
                                                                       f"agree{p}")]))
        else:
            ctrl = delayed(ctrl, "s1x")   # the input word read (stage 1 above)
            # 1b: the input word into one register per group of REP_GROUP PEs; the weight
            # ROM's data (address registered once above) into fabric registers next to the
            # block RAMs (block-RAM clock-to-out is long)
            groups = [Signal.like(x, name=f"x_rep_g{g}", attrs=KEEP, reset_less=True) for g in range((PE + REP_GROUP - 1) // REP_GROUP)]
            w_q = Signal.like(self.w_data, name="w_q", reset_less=True)
            m.d.sync += [g.eq(x) for g in groups] + [w_q.eq(self.w_data)]
            ctrl = delayed(ctrl, "s1b")
            # 1c: the weight word into a second register, next to the PEs' popcounts (the
            # route from the block RAMs' registers to the popcounts was an ECP5-85F's critical
            # path, 6.6 ns of a 12.5 ns path), and the input word into one register per PE: the
            # XNORs of a PE sit next to its block RAMs, spread over the device, and a single
            # register broadcasting SIMD bits to all of them made the longest route (9.7 ns on
            # an ECP5-85F). The copies are marked keep in synthesis (hw/synth.py), else Yosys
            # merges them back into one.
            # A row of K words selects the word on its way: the select is three cycles behind
            # the issue, as the row in w_q, in one register copy per SEL_COLUMNS bits.
            W = f.weight_width
            w_q2 = Signal(W, name="w_q2", reset_less=True)
            x_p = [Signal.like(x, name=f"x_rep_p{p}", attrs=KEEP, reset_less=True) for p in range(PE)]
            m.d.sync += [x_p[p].eq(groups[p // REP_GROUP]) for p in range(PE)]
            if K == 1:
                m.d.sync += w_q2.eq(w_q)
            else:
                sel = wsel
                for stage in range(2):
                    sel, prev = Signal(range(K), name=f"w_sel_{stage + 1}", reset_less=True), sel
                    m.d.sync += sel.eq(prev)
                for c, lo in enumerate(range(0, W, SEL_COLUMNS)):
                    n = min(SEL_COLUMNS, W - lo)
                    sel_c = Signal(range(K), name=f"w_sel_rep_c{c}", attrs=KEEP, reset_less=True)
                    m.d.sync += [sel_c.eq(sel),
                                 w_q2[lo:lo + n].eq(Array(w_q.word_select(j, W)[lo:lo + n] for j in range(K))[sel_c])]
            # the threshold ROM's address (the word's nf), one register per column slice: a
            # shallow ROM is logic, and one address register fanned out to all of its LUTs
            # made a 12.5 ns route on an ECP5-85F
            t_addr = [Signal.like(ctrl[3], name=f"t_addr_rep_s{s}", attrs=KEEP, reset_less=True)
                      for s in range(self.t_slices)]
            m.d.sync += [q.eq(ctrl[3]) for q in t_addr]
            ctrl = delayed(ctrl, "s1c")
            # 2a: popcounts of POPCOUNT_CHUNK-bit chunks; the threshold ROM is read now, so that
            # its data meets the sums of 2b
            m.d.comb += self.t_addr.eq(Cat(*t_addr))
            chunks = [[] for _ in range(PE)]
            for p in range(PE):
                for plane, b in _planes(m, w_q2.word_select(p, SIMD), x_p[p], VB, f"agree{p}"):
                    for lo in range(0, SIMD, POPCOUNT_CHUNK):
                        part = plane[lo:lo + POPCOUNT_CHUNK]
                        chunk = Signal(range(len(part) + 1), name=f"pc{p}_{len(chunks[p])}", reset_less=True)
                        m.d.sync += chunk.eq(popcount(part, self._popcount_form))
                        chunks[p].append(chunk << b)
            ctrl = delayed(ctrl, "s2a")
            # 2b: sum of the chunks (a balanced tree: SIMD 256 is 16 chunks, 4 adders deep)
            for p in range(PE):
                m.d.sync += pc[p].eq(tree_sum(chunks[p]))
        s2_v, s2_first, s2_last, s2_nf = delayed(ctrl, "s2")
        m.d.sync += thr.eq(self.t_data)
        # the controls of the accumulators: one copy per PE when pipelined (see x_rep_p)
        if self._pipelined:
            pe_v = [Signal(name=f"s2_v_rep_p{p}", attrs=KEEP) for p in range(PE)]
            pe_first = [Signal(name=f"s2_first_rep_p{p}", attrs=KEEP, reset_less=True) for p in range(PE)]
            m.d.sync += [c.eq(ctrl[0]) for c in pe_v] + [c.eq(ctrl[1]) for c in pe_first]
        else:
            pe_v, pe_first = [s2_v] * PE, [s2_first] * PE

        # --- stage 3: accumulate; at the last synapse fold, threshold or score
        acc = [Signal(f.acc_bits + 1, name=f"acc{p}", reset_less=True) for p in range(PE)]
        s3_v = Signal()
        s3_last = Signal(reset_less=True)
        s3_slot = Signal.like(nf, reset_less=True)
        if f.kind == "hidden":
            s3_data = Signal(PE, reset_less=True)
        else:
            s3_data = Signal(data.ArrayLayout(signed(self._score_bits), PE), reset_less=True)
        for p in range(PE):
            with m.If(pe_v[p]):
                total = Mux(pe_first[p], 0, acc[p]) + pc[p]
                m.d.sync += acc[p].eq(total)
                value = thr.word_select(p, self._value_bits)
                if f.kind == "hidden":
                    m.d.sync += s3_data[p].eq(total >= value)
                else:
                    m.d.sync += s3_data[p].eq(2 * total - f.n_in + value.as_signed())
        m.d.sync += [s3_v.eq(s2_v & s2_last), s3_slot.eq(s2_nf), s3_last.eq(s2_nf == NF - 1)]
        if f.kind == "hidden":
            s3_slot_en = Signal(NF, name="s3_slot_en")
            m.d.sync += s3_slot_en.eq(Cat((s2_v & s2_last & (s2_nf == s)) for s in range(NF)))

        if self._pipelined:
            # the results again, so that the route from the PEs to the consumer's buffer is a
            # register-to-register path of its own, not behind the compare
            s4_v = Signal()
            s4_last = Signal(reset_less=True)
            s4_slot = Signal.like(s3_slot, reset_less=True)
            s4_data = Signal.like(s3_data, reset_less=True)
            m.d.sync += [s4_v.eq(s3_v), s4_last.eq(s3_last), s4_slot.eq(s3_slot), s4_data.eq(s3_data)]
            if f.kind == "hidden":
                s4_slot_en = Signal(NF, name="s4_slot_en")
                m.d.sync += s4_slot_en.eq(s3_slot_en)
                s3_slot_en = s4_slot_en
            s3_v, s3_last, s3_slot, s3_data = s4_v, s4_last, s4_slot, s4_data
        if f.kind == "hidden":
            m.d.comb += self.out.slot_en.eq(s3_slot_en)

        # --- last stage: write into the consumer
        m.d.comb += [self.out.we.eq(s3_v), self.out.slot.eq(s3_slot), self.out.data.eq(s3_data),
                     self.out.last.eq(s3_v & s3_last)]
        return m
