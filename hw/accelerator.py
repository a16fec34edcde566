"""The accelerator: input stage, one engine per layer, arg-max, output FIFO.

``AcceleratorCore`` has the ROM read ports of every engine as top-level ports; the generated
RTL wraps it with ROMs that ``$readmemb``/``textio`` initialise from the exported files, and
``SimAccelerator`` wraps it with Amaranth memories holding a network, for Amaranth's
simulator.

Streams (``amaranth.lib.stream``, valid/ready):

- ``i_stream``: payload of ``plan.in_width`` bits, ``plan.in_beats`` beats per image; beat b
  holds input bits ``b * in_width .. (b + 1) * in_width - 1`` (bit 0 of the payload is the
  lowest input). Bits past the last input are ignored (forced to 0).
- ``o_stream``: payload ``{cls: class index, scores: signed score per class}``, ``cls`` in the
  low bits, then the scores, class 0 first.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from bnncore.errors import UsageError

from .design import _value_bits, rom_ports  # noqa: F401  (rom_ports: for the callers that import it here)
from .engine import LayerEngine
from .layout import rom_slices, threshold_words, weight_rom, weight_words
from .plan import Plan, address_bits, collector_banks, engine_banks
from .stages import hardware_unit
from .units import build, drain, engine_input, feed
from .window import PixelCollector, RowUnpacker, SlidingWindow

__all__ = ["AcceleratorCore", "SimAccelerator", "payload_layout", "rom_ports", "add_rom", "engine_banks",
           "collector_banks"]


def payload_layout(plan: Plan) -> data.StructLayout:
    return data.StructLayout({"cls": unsigned(plan.class_bits),
                              "scores": data.ArrayLayout(signed(plan.score_bits), plan.n_classes)})


class AcceleratorCore(wiring.Component):
    """The accelerator without its ROMs.

    Parameters
    ----------
    plan : Plan
        Topology and folding.
    popcount_form : str
        ``"chain"`` (default) or ``"tree"``: see ``popcount.popcount``.

    Attributes
    ----------
    i_stream : In(stream.Signature(plan.in_width))
        Image bits.
    o_stream : Out(stream.Signature(payload_layout(plan)))
        Class index and scores, one per image, in input order.
    w<k>_addr, t<k>_addr : Out
        ROM addresses of layer k (weights, thresholds/biases); ``w<k>_addr`` has one address
        per column slice of the weight ROM (``rom_ports``), slice 0 in the low bits.
    w<k>_data, t<k>_data : In
        ROM data, one cycle after the address.
    taps : list
        After elaboration, where each layer of the network (``net.layers``, then the output
        head) leaves its unit, in that order: ``("map", stream)`` for a feature map (pixels in
        raster order, bit c of a pixel is channel c), ``("dense", port, fold)`` for a dense
        layer's buffer writes (PE bits per slot), ``("output", port, fold)`` for the output
        engine's scores. For a simulator's bench that looks inside (hw/diagnose.py).
    """

    def __init__(self, *, plan: Plan, popcount_form: str = "chain"):
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a Plan, not {plan!r}")
        self._plan, self._popcount_form = plan, popcount_form
        self.taps = []
        members = {"i_stream": In(stream.Signature(plan.in_width)),
                   "o_stream": Out(stream.Signature(payload_layout(plan)))}
        for name, depth, width, slices in rom_ports(plan):
            members[f"{name}_addr"] = Out(unsigned(address_bits(depth) * slices))
            members[f"{name}_data"] = In(width)
        super().__init__(members)

    @property
    def plan(self) -> Plan:
        return self._plan

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        self.taps = []
        src = None                       # what the next layer's feed reads (hw/units.py)
        for k, f in enumerate(plan.layers):
            in_width, in_slots = engine_input(plan, f)
            eng = LayerEngine(fold=f, in_width=in_width, in_slots=in_slots, banks=engine_banks(plan, f),
                              value_bits=_value_bits(plan, f),
                              score_bits=plan.score_bits if f.kind == "output" else None,
                              pipelined=plan.pipelined, popcount_form=self._popcount_form)
            m.submodules[f"layer{k}"] = eng
            m.d.comb += [getattr(self, f"w{k}_addr").eq(eng.w_addr), eng.w_data.eq(getattr(self, f"w{k}_data")),
                         getattr(self, f"t{k}_addr").eq(eng.t_addr), eng.t_data.eq(getattr(self, f"t{k}_data"))]
            build(feed(f).unit, m, self, plan, f, eng, src)
            src = build(drain(f).unit, m, self, plan, f, eng)
        return m


# --- feeds and drains (hw/units.py) -------------------------------------------------------------

def feed_words(m, core, plan, fold, eng, src):
    """A dense first layer's input: beats of SIMD values written straight into its buffer,
    the values past the last input forced to 0 (they meet weight bits 1)."""
    first, i_stream = eng.wr, core.i_stream
    beats, width = plan.in_beats, plan.in_width
    n_bits = fold.n_in * plan.value_bits
    beat = Signal(range(max(2, beats)))
    in_image = Signal()
    accept = i_stream.valid & i_stream.ready
    last_mask = Const((1 << (n_bits - (beats - 1) * width)) - 1, width)
    m.d.comb += [
        i_stream.ready.eq(in_image | first.space),
        first.claim.eq(accept & ~in_image),
        first.we.eq(accept),
        first.slot.eq(beat),
        first.slot_en.eq(Cat(accept & (beat == b) for b in range(beats))),
        first.data.eq(Mux(beat == beats - 1, i_stream.payload & last_mask, i_stream.payload)),
        first.last.eq(accept & (beat == beats - 1)),
    ]
    with m.If(accept):
        with m.If(beat == beats - 1):
            m.d.sync += [beat.eq(0), in_image.eq(0)]
        with m.Else():
            m.d.sync += [beat.eq(beat + 1), in_image.eq(1)]


def feed_vector(m, core, plan, fold, eng, src):
    """The engine before writes its results straight into this engine's buffer."""
    connect(m, src.out, eng.wr)


def feed_map(m, core, plan, fold, eng, src):
    """A sliding window over the feature map ``src`` (the input map, a row per beat, for the
    first layer)."""
    k = fold.index
    m.submodules[f"window{k}"] = swu = SlidingWindow(window=fold.window, simd=fold.simd,
                                                      slot_enables=not eng.memory_buffer)
    if src is None:
        m.submodules.input_rows = rows = RowUnpacker(width=fold.window.width, pixel_bits=fold.window.pixel_bits)
        connect(m, wiring.flipped(core.i_stream), rows.i)
        src = rows.o
    connect(m, src, swu.i)
    connect(m, swu.o, eng.wr)


def drain_vector(m, core, plan, fold, eng):
    core.taps.append(("dense", eng.out, fold))
    return eng


def drain_map(m, core, plan, fold, eng):
    """A pixel collector makes the engine's results a feature map, which the stages of the
    layer (a max-pool, hw/stages.py) take in turn."""
    k = fold.index
    m.submodules[f"pixels{k}"] = col = PixelCollector(pe=fold.pe, nf=fold.nf, channels=fold.n_out,
                                                      banks=collector_banks(plan, fold))
    connect(m, eng.out, col.wr)
    pixels = col.o
    core.taps.append(("map", pixels))
    for j, stage in enumerate(fold.pools):
        m.submodules[f"{stage.kind}{k}_{j}"] = unit = hardware_unit(stage)
        connect(m, pixels, unit.i)
        pixels = unit.o
        core.taps.append(("map", pixels))
    return pixels


def drain_scores(m, core, plan, fold, eng):
    """The arg-max over the output engine's scores (the lowest index wins ties), into the
    output FIFO; the engine claims a credit per image, returned on output."""
    core.taps.append(("output", eng.out, fold))
    res, out = eng.out, fold
    sw, n_classes = plan.score_bits, plan.n_classes
    # Scores are compared as offset-binary keys (the sign bit inverted): the same order as
    # the signed scores, with unsigned comparisons only (Icarus' VHDL target mistranslates
    # signed ones). Every real score's key is above 0, the start of each image.
    def key(score):
        return score.as_unsigned() ^ (1 << (sw - 1))

    best = Signal(unsigned(sw))
    best_idx = Signal(range(max(2, n_classes)))
    scores = [Signal(signed(sw), name=f"score{c}") for c in range(n_classes)]
    cur, cur_idx = Mux(res.slot == 0, 0, best), best_idx
    for p in range(out.pe):
        # the class of PE p from a table of the slots' first classes, not a multiplier
        idx = (Array(Const(k * out.pe, range(n_classes + out.pe)) for k in range(out.nf))[res.slot] + p
               if out.pe > 1 else res.slot + p)
        take = (idx < n_classes) & (key(res.data[p]) > cur)
        cur, cur_idx = Mux(take, key(res.data[p]), cur), Mux(take, idx, cur_idx)
    final_scores = []
    for c in range(n_classes):
        s, p = divmod(c, out.pe)
        final_scores.append(Mux(res.we & (res.slot == s), res.data[p], scores[c]))
    with m.If(res.we):
        m.d.sync += [best.eq(cur), best_idx.eq(cur_idx)]
        m.d.sync += [scores[c].eq(final_scores[c]) for c in range(n_classes)]

    layout = payload_layout(plan)
    # SyncFIFO holds exactly `out_depth` results (SyncFIFOBuffered can refuse a write while
    # it moves an entry into its output register, which credits cannot see).
    m.submodules.fifo = q = fifo.SyncFIFO(width=layout.size, depth=plan.out_depth)
    credits = Signal(range(plan.out_depth + 1), init=plan.out_depth)
    o_stream = core.o_stream
    popped = o_stream.valid & o_stream.ready
    result = Signal(layout)
    m.d.comb += [result.cls.eq(cur_idx)] + [result.scores[c].eq(final_scores[c]) for c in range(n_classes)]
    m.d.comb += [res.space.eq(credits != 0),
                 q.w_en.eq(res.last), q.w_data.eq(result),
                 o_stream.valid.eq(q.r_rdy), o_stream.payload.eq(q.r_data), q.r_en.eq(o_stream.ready)]
    m.d.sync += credits.eq(credits - res.claim + popped)
    return q


class SimAccelerator(wiring.Component):
    """``AcceleratorCore`` with Amaranth memories holding a network's ROM contents.

    For Amaranth's simulator (and designs that bake the weights in); the generated RTL uses
    file-initialised ROMs instead.

    Parameters
    ----------
    plan : Plan
    net : bnncore.network.FoldedNetwork
    contents : dict, optional
        {ROM name: words} to hold instead of ``net``'s (the contents of a design's ROM files,
        ``diagnose.read_rom_files``); ROMs it does not name hold ``net``'s.

    Attributes
    ----------
    core : AcceleratorCore
        The core, for benches that look inside (its ``taps``).
    """

    def __init__(self, *, plan: Plan, net, contents: dict | None = None):
        from .identity import check_network
        check_network(net, plan)
        self._plan, self._net, self._contents = plan, net, dict(contents or {})
        self.core = AcceleratorCore(plan=plan)
        super().__init__({"i_stream": In(stream.Signature(plan.in_width)),
                          "o_stream": Out(stream.Signature(payload_layout(plan)))})

    def elaborate(self, platform):
        m = Module()
        plan, net = self._plan, self._net
        m.submodules.core = core = self.core
        wiring.connect(m, wiring.flipped(self.i_stream), core.i_stream)
        wiring.connect(m, core.o_stream, wiring.flipped(self.o_stream))
        for f, stage in zip(plan.layers, net.weight_layers):
            values = stage.thresholds if f.kind == "hidden" else stage.bias
            contents = {f"w{f.index}": weight_words(stage.matrix, f, weight_rom(f, plan.pipelined).row_words),
                        f"t{f.index}": threshold_words(values, f, _value_bits(plan, f))}
            contents.update({n: w for n, w in self._contents.items() if n in contents})
            for name, depth, width, _ in rom_ports(plan)[2 * f.index:2 * f.index + 2]:
                add_rom(m, name, contents[name], depth, width, getattr(core, f"{name}_addr"),
                        getattr(core, f"{name}_data"))
        return m


def add_rom(m: Module, name: str, words: list, depth: int, width: int, addr, data, write=None, kind=None,
            family=None):
    """Add to ``m`` the ROM ``name`` holding ``words``, read as the RTL's ``bnn_rom`` reads it:
    one memory per column slice (``rom_slices``), each through its own address (a part of
    ``addr``). ``write``: (enable, address, word) signals of a write port (a whole word, every
    slice), for a memory written at run time (hw/link.py). ``kind``: the MemoryKind the plan
    placed it in (hw/memories.py): one memory of the whole word at the first slice's address
    (every slice's is a copy), built from ``family``'s primitives, or where ``family`` is None
    (simulation) as one behaves: no contents where the bitstream cannot set them, one port."""
    abits = address_bits(depth)
    if kind is not None:
        if write is None:
            raise UsageError(f"memory {name}: {kind.title} is written at run time; it needs a write port")
        if family is not None:
            family.memory_instance(kind, m, name, depth, width, addr[:abits], data, write)
            return
        en, waddr, wdata = write
        mem = memory.Memory(shape=unsigned(width), depth=depth, init=words if kind.initialised else [])
        m.submodules[f"mem_{name}"] = mem
        at = Mux(en, waddr[:abits], addr[:abits]) if kind.ports == 1 else addr[:abits]
        rd, wp = mem.read_port(), mem.write_port()
        m.d.comb += [rd.addr.eq(at), data.eq(rd.data),
                     wp.en.eq(en), wp.addr.eq(at if kind.ports == 1 else waddr[:abits]), wp.data.eq(wdata)]
        return
    for s, (lo, w) in enumerate(rom_slices(width, depth)):
        init = [(word >> lo) & ((1 << w) - 1) for word in words]
        mem = memory.Memory(shape=unsigned(w), depth=max(1, len(init)), init=init)
        m.submodules[f"rom_{name}_s{s}"] = mem
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(addr[s * abits:(s + 1) * abits]), data[lo:lo + w].eq(rd.data)]
        if write is not None:
            en, waddr, wdata = write
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(en), wp.addr.eq(waddr), wp.data.eq(wdata[lo:lo + w])]
