"""The board's side of the serial link (bnncore/link.py is the host's, and holds the protocol's
constants): a UART, a receive buffer, a frame parser that streams images into the accelerator
as their bytes arrive, and a responder that answers each frame in order.

``Link`` sits between the UART pins and the accelerator's streams (``bnn_top``'s ports);
``LinkTop`` is ``Link`` with ``bnn_top`` instantiated, the module that a board top (hw/boards.py)
wraps and that the link's cocotb bench (sim/tb_link.py) simulates.

The parser hands the responder a ticket per frame (answer INFO, send the next result, drop the
next result and answer an error, or answer an error): an image whose frame turns out bad
(a wrong CRC, bytes lost, the line idle mid-frame) has still gone into the accelerator, whole
(a truncated one is completed with zero bytes), so its result is dropped, and the accelerator
never holds part of an image.
"""

from __future__ import annotations

import math

from amaranth import (
    Array,
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
)
from amaranth.lib import fifo, io, stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from bnncore import link as proto
from bnncore.errors import UsageError

from .uart import UARTRx, UARTTx

__all__ = ["Link", "LinkTop", "BoardTop", "board_files", "crc16_update"]

# ticket kinds
_T_INFO, _T_RESULT, _T_DROP, _T_ERROR, _T_ACK = 0, 1, 2, 3, 4


def crc16_update(crc, byte):
    """CRC-16/CCITT-FALSE after one more byte (most significant bit first), as logic."""
    c = crc
    for i in range(8):
        feedback = c[15] ^ byte[7 - i]
        c = Cat(Const(0, 1), c[:15]) ^ Mux(feedback, 0x1021, 0)
    return c


class Link(wiring.Component):
    """Parameters
    ----------
    divisor : int
        Clock cycles per bit (hw/uart.py's ``divisor_for``).
    in_width, in_beats, out_width : int
        The accelerator's input beat width, beats per image and output word width.
    info : bytes
        The INFO answer's payload (``bnncore.link.info_blob``).
    rx_buffer : int
        Bytes of receive buffer (a power of two; a block RAM on iCE40 at 512).
    timeout : int
        Cycles of an idle line inside a frame after which the frame is dropped as truncated.
    memories : list of (width, depth)
        The accelerator's memories that WRITE may write (the order of rtl.json's
        ``memories``); none: a read-only design, WRITE and NETWORK are refused.

    A written word leaves on ``mem_sel``, ``mem_addr``, ``mem_data`` with a one-cycle
    ``mem_we``, once its frame's CRC has been checked.
    """

    def __init__(self, *, divisor: int, in_width: int, in_beats: int, out_width: int, info: bytes,
                 rx_buffer: int = 512, timeout: int | None = None, memories=()):
        if rx_buffer < 16 or rx_buffer & (rx_buffer - 1):
            raise UsageError(f"rx_buffer must be a power of two >= 16, not {rx_buffer!r}")
        if len(memories) > 255:
            raise UsageError(f"at most 255 writable memories, not {len(memories)}")
        self._divisor, self._in_width, self._in_beats, self._out_width = divisor, in_width, in_beats, out_width
        self._info, self._rx_buffer = bytes(info), rx_buffer
        self._timeout = timeout or 40 * 10 * divisor
        self._memories = [(int(w), int(d)) for w, d in memories]
        wmax = max([w for w, _ in self._memories] or [1])
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "core_i": Out(stream.Signature(in_width)), "core_o": In(stream.Signature(out_width)),
            # for LEDs: a frame being received, an image in the accelerator, an error answered
            "receiving": Out(1), "busy": Out(1), "error": Out(1),
            "mem_we": Out(1), "mem_sel": Out(8), "mem_addr": Out(32), "mem_data": Out(math.ceil(wmax / 8) * 8),
        })

    def elaborate(self, platform):
        m = Module()
        NB = math.ceil(self._in_width / 8)
        IMG = NB * self._in_beats
        OB = math.ceil(self._out_width / 8)
        info = self._info
        m.submodules.rx = rx = UARTRx(self._divisor)
        m.submodules.tx = tx = UARTTx(self._divisor)
        # a byte's 9th bit: bytes were lost (the buffer was full) just before it
        m.submodules.rxq = rxq = fifo.SyncFIFOBuffered(width=9, depth=self._rx_buffer)
        m.submodules.tickets = tickets = fifo.SyncFIFO(width=3 + 4 + 8, depth=8)
        lost = Signal()
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx),
                     rxq.w_data.eq(Cat(rx.data, lost)), rxq.w_en.eq(rx.strobe)]

        # --- parser
        byte = rxq.r_data[:8]
        overrun = Signal()                           # bytes of this frame were lost
        cmd = Signal(8)
        length = Signal(16)
        count = Signal(16)                           # payload bytes still to come
        # count == 0 and idle == timeout as registers beside the counters: their comparisons
        # are off the paths from the counters to the payload's field registers
        count_zero = Signal(init=1)
        crc = Signal(16)
        crc_lo = Signal(8)
        idle = Signal(range(self._timeout + 1))
        idle_out = Signal(init=self._timeout == 0)
        beat = Signal(NB * 8, reset_less=True)
        bc = Signal(range(max(2, NB)))               # bytes of the beat so far
        beat_full = Signal()
        streaming = Signal()                         # the payload is an image going in
        t_kind, t_code = Signal(3), Signal(4)
        quiet = Signal()                             # no answer pending or being sent
        # WRITE and NETWORK: the payload's fields, taken by position
        mems = self._memories
        writable = bool(mems)
        pos = Signal(16)
        wsel, waddr = self.mem_sel, self.mem_addr
        wdata = self.mem_data
        nbuf = Signal(64)
        netid = Signal(64, init=int.from_bytes(info[proto.INFO_NETWORK_OFFSET:proto.INFO_NETWORK_OFFSET + 8],
                                               "little"))
        m.d.sync += self.mem_we.eq(0)
        m.d.comb += [self.core_i.payload.eq(beat[:self._in_width]), self.core_i.valid.eq(beat_full),
                     tickets.w_data.eq(Cat(t_kind, t_code, cmd))]
        with m.If(self.core_i.ready):
            m.d.sync += beat_full.eq(0)

        def take_into_beat(value):
            m.d.sync += [beat.eq(Cat(beat[8:], value)), bc.eq(Mux(bc == NB - 1, 0, bc + 1))]
            with m.If(bc == NB - 1):
                m.d.sync += beat_full.eq(1)

        def ticket(kind, code=0):
            m.d.comb += [tickets.w_en.eq(1), t_kind.eq(kind), t_code.eq(code)]

        read = Signal()
        m.d.comb += rxq.r_en.eq(read)
        got = read & rxq.r_rdy
        in_frame = Signal()
        with m.If(got & in_frame & rxq.r_data[8]):
            m.d.sync += overrun.eq(1)
        with m.If(got | ~in_frame | rxq.r_rdy):     # idle: nothing received, nothing waiting
            m.d.sync += [idle.eq(0), idle_out.eq(self._timeout == 0)]
        with m.Elif(~idle_out):
            m.d.sync += [idle.eq(idle + 1), idle_out.eq(idle == self._timeout - 1)]
        timed_out = in_frame & idle_out
        crc_next = Signal(16)                        # the frame's CRC after this byte
        m.d.comb += crc_next.eq(crc16_update(crc, byte))

        with m.FSM():
            with m.State("sync"):
                m.d.comb += read.eq(1)
                with m.If(got & (byte == proto.SYNC)):
                    m.d.sync += [crc.eq(0xFFFF), overrun.eq(0), streaming.eq(0), cmd.eq(0)]
                    m.next = "command"
            with m.State("command"):
                m.d.comb += [read.eq(1), in_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [cmd.eq(byte), crc.eq(crc_next)]
                    m.next = "length0"
                with m.Elif(timed_out):
                    m.next = "pad"
            with m.State("length0"):
                m.d.comb += [read.eq(1), in_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc_next)]
                    m.next = "length1"
                with m.Elif(timed_out):
                    m.next = "pad"
            with m.State("length1"):
                m.d.comb += [read.eq(1), in_frame.eq(1)]
                with m.If(got):
                    full = Cat(length[:8], byte)
                    m.d.sync += [length.eq(full), count.eq(full), count_zero.eq(full == 0), crc.eq(crc_next),
                                 streaming.eq((cmd == proto.CLASSIFY) & (full == IMG)), bc.eq(0), pos.eq(0)]
                    if writable:      # a shorter word leaves the bytes above it 0
                        m.d.sync += wdata.eq(0)
                    m.next = "payload"
                with m.Elif(timed_out):
                    m.next = "pad"
            with m.State("payload"):
                m.d.comb += in_frame.eq(1)
                with m.If(count_zero):
                    m.next = "crc0"
                with m.Elif(timed_out):
                    m.next = "pad"
                with m.Else():
                    m.d.comb += read.eq(~streaming | ~beat_full)
                    with m.If(got):
                        m.d.sync += [count.eq(count - 1), count_zero.eq(count == 1), crc.eq(crc_next), pos.eq(pos + 1),
                                     nbuf.eq(Cat(nbuf[8:], byte))]
                        with m.If(streaming):
                            take_into_beat(byte)
                        if writable:
                            with m.If(pos == 0):
                                m.d.sync += wsel.eq(byte)
                            for k in range(4):
                                with m.If(pos == 1 + k):
                                    m.d.sync += waddr[8 * k:8 * k + 8].eq(byte)
                            for k in range(len(wdata) // 8):
                                with m.If(pos == 5 + k):
                                    m.d.sync += wdata[8 * k:8 * k + 8].eq(byte)
            with m.State("pad"):
                # a truncated frame: an image is completed with zero bytes and its result dropped
                with m.If(~streaming | count_zero):
                    with m.If(tickets.w_rdy):
                        # bytes lost with none after them to carry the mark: an overrun
                        ticket(Mux(streaming, _T_DROP, _T_ERROR), Mux(overrun | lost, proto.OVERRUN, proto.TIMEOUT))
                        m.d.sync += lost.eq(0)
                        m.next = "sync"
                with m.Elif(~beat_full):
                    m.d.sync += [count.eq(count - 1), count_zero.eq(count == 1)]
                    take_into_beat(Const(0, 8))
            with m.State("crc0"):
                m.d.comb += [read.eq(1), in_frame.eq(1)]
                with m.If(got):
                    m.d.sync += crc_lo.eq(byte)
                    m.next = "crc1"
                with m.Elif(timed_out):
                    m.next = "pad"
            with m.State("crc1"):
                # WRITE and NETWORK take effect when every earlier frame is answered: an image
                # sent before a write is classified with what it found, INFO tells the truth
                changes = (cmd == proto.WRITE) | (cmd == proto.NETWORK)
                m.d.comb += [read.eq(tickets.w_rdy & (~changes | quiet)), in_frame.eq(1)]
                bad = Mux(overrun, proto.OVERRUN, Mux(Cat(crc_lo, byte) != crc, proto.BAD_CRC, 0))
                with m.If(got):
                    with m.If(streaming):
                        ticket(Mux(bad != 0, _T_DROP, _T_RESULT), bad)
                    with m.Elif(bad != 0):
                        ticket(_T_ERROR, bad)
                    with m.Elif(cmd == proto.INFO):
                        ticket(Mux(length == 0, _T_INFO, _T_ERROR), Mux(length == 0, 0, proto.BAD_LENGTH))
                    with m.Elif(cmd == proto.CLASSIFY):
                        ticket(_T_ERROR, proto.BAD_LENGTH)
                    with m.Elif(changes):
                        if not writable:
                            ticket(_T_ERROR, proto.READ_ONLY)
                        else:
                            nbytes = Array(Const(5 + math.ceil(w / 8), 16) for w, _ in mems)
                            depth = Array(Const(d, 32) for _, d in mems)
                            with m.If(cmd == proto.NETWORK):
                                with m.If(length == 8):
                                    m.d.sync += netid.eq(nbuf)
                                    ticket(_T_ACK)
                                with m.Else():
                                    ticket(_T_ERROR, proto.BAD_LENGTH)
                            with m.Elif((length < 1) | (wsel >= len(mems))):
                                ticket(_T_ERROR, Mux(length < 1, proto.BAD_LENGTH, proto.NO_MEMORY))
                            with m.Elif(length != nbytes[wsel]):
                                ticket(_T_ERROR, proto.BAD_LENGTH)
                            with m.Elif(waddr >= depth[wsel]):
                                ticket(_T_ERROR, proto.BAD_ADDRESS)
                            with m.Else():
                                m.d.sync += self.mem_we.eq(1)
                                ticket(_T_ACK)
                    with m.Else():
                        ticket(_T_ERROR, proto.UNKNOWN_COMMAND)
                    m.next = "sync"
                with m.Elif(timed_out):
                    m.next = "pad"

        with m.If(rx.strobe):
            m.d.sync += lost.eq(~rxq.w_rdy)

        # --- responder: a frame per ticket, in order
        r_kind, r_code, r_cmd = tickets.r_data[:3], tickets.r_data[3:7], tickets.r_data[7:]
        result = Signal(OB * 8, reset_less=True)
        idx = Signal(16)                             # byte of the answer being sent
        plen = Signal(16)
        out_cmd = Signal(8)
        out_crc = Signal(16)
        info_rom = Array(Const(b, 8) for b in (info or b"\0"))
        payload_byte = Signal(8)
        with m.Switch(r_kind):
            with m.Case(_T_INFO):
                at = (idx - 4)[:16]
                off = proto.INFO_NETWORK_OFFSET
                in_net = (at >= off) & (at < off + 8) if len(info) >= off + 8 else Const(0)
                m.d.comb += payload_byte.eq(Mux(in_net, netid.word_select((at - off)[:3], 8),
                                                info_rom[at] if len(info) > 1 else info_rom[0]))
            with m.Case(_T_RESULT):
                m.d.comb += payload_byte.eq(result[:8])
            with m.Default():
                m.d.comb += payload_byte.eq(Mux(idx == 4, r_code, r_cmd))
        cur = Signal(8)
        with m.If(idx == 0):
            m.d.comb += cur.eq(proto.SYNC)
        with m.Elif(idx == 1):
            m.d.comb += cur.eq(out_cmd)
        with m.Elif(idx == 2):
            m.d.comb += cur.eq(plen[:8])
        with m.Elif(idx == 3):
            m.d.comb += cur.eq(plen[8:])
        with m.Elif(idx < plen + 4):
            m.d.comb += cur.eq(payload_byte)
        with m.Elif(idx == plen + 4):
            m.d.comb += cur.eq(out_crc[:8])
        with m.Else():
            m.d.comb += cur.eq(out_crc[8:])
        error_seen = Signal()
        m.d.comb += [self.error.eq(error_seen), self.receiving.eq(in_frame), tx.i.payload.eq(cur)]
        # the CRC takes a byte the cycle after the UART took it (busy with it for ten bit times
        # then), from a register: the byte's selection and the CRC's XORs are not one path
        sent, crc_due = Signal(8), Signal()
        with m.If(crc_due):
            m.d.sync += [out_crc.eq(crc16_update(out_crc, sent)), crc_due.eq(0)]
        with m.FSM():
            with m.State("wait"):
                m.d.comb += quiet.eq(~tickets.r_rdy)
                with m.If(tickets.r_rdy):
                    m.d.sync += [idx.eq(0), out_crc.eq(0xFFFF)]
                    with m.Switch(r_kind):
                        with m.Case(_T_INFO):
                            m.d.sync += [out_cmd.eq(proto.INFO), plen.eq(len(info))]
                            m.next = "send"
                        with m.Case(_T_RESULT):
                            m.d.sync += [out_cmd.eq(proto.CLASSIFY), plen.eq(OB)]
                            m.next = "result"
                        with m.Case(_T_DROP):
                            m.d.sync += [out_cmd.eq(proto.ERROR), plen.eq(2), error_seen.eq(1)]
                            m.next = "result"
                        with m.Case(_T_ACK):
                            m.d.sync += [out_cmd.eq(r_cmd), plen.eq(0)]
                            m.next = "send"
                        with m.Default():
                            m.d.sync += [out_cmd.eq(proto.ERROR), plen.eq(2), error_seen.eq(1)]
                            m.next = "send"
            with m.State("result"):
                m.d.comb += self.core_o.ready.eq(1)
                with m.If(self.core_o.valid):
                    m.d.sync += result.eq(self.core_o.payload)
                    m.next = "send"
            with m.State("send"):
                m.d.comb += tx.i.valid.eq(1)
                with m.If(tx.i.ready):
                    m.d.sync += [idx.eq(idx + 1), sent.eq(cur), crc_due.eq((idx >= 1) & (idx < plen + 4))]
                    with m.If((idx >= 4) & (idx < plen + 4) & (r_kind == _T_RESULT)):
                        m.d.sync += result.eq(result >> 8)
                    with m.If(idx == plen + 5):
                        m.d.comb += tickets.r_en.eq(1)
                        m.next = "wait"
        # an image on its way in, or answers to send
        m.d.comb += self.busy.eq((streaming & in_frame) | tickets.r_rdy)
        return m


class LinkTop(wiring.Component):
    """``Link`` with the accelerator instantiated: clock, reset, ``rx``/``tx`` and three status
    outputs.

    Read-only (the default): ``bnn_top``, a Verilog module of ``bnn rtl``, its ROMs initialised
    from ``rom_files`` ({parameter: file}). ``writable``: ``bnn_core`` with its memories here,
    initialised with ``contents`` ({memory name: words}, the ROM files' contents) and written by
    the link's WRITE frames (a block RAM's second port; the same block RAMs as the ROMs). A
    memory the plan placed in a memory kind (hw/memories.py) is built from ``family``'s
    primitives (synthesis) or as the kind behaves (simulation, ``family`` None); where that
    kind has no initial contents the design must be writable, and INFO names network
    0000000000000000 until ``bnn load`` has loaded one."""

    def __init__(self, *, info, rom_files: dict | None = None, clock_hz: float, baud: int,
                 rx_buffer: int = 512, timeout: int | None = None, writable: bool = False,
                 contents: dict | None = None, family=None):
        from bnncore.link import info_blob

        from .uart import divisor_for
        from .design import RtlDesign
        divisor = divisor_for(clock_hz, baud)
        info = RtlDesign.from_json(info)
        if writable and contents is None:
            raise UsageError("a writable design needs its memories' contents")
        if not writable and rom_files is None:
            raise UsageError("a read-only design needs its ROM files")
        from .memories import kind_of
        self._kinds = {name: kind_of(mem.kind) for name, mem in info.memories.items() if mem.kind}
        loaded = [name for name, kind in self._kinds.items() if not kind.initialised]
        if loaded and not writable:
            raise UsageError(f"memory {loaded[0]} is {self._kinds[loaded[0]].title}, which the bitstream cannot "
                             "initialise: it is loaded over the link, so the design must be writable")
        self._info, self._rom_files, self._writable = info, dict(rom_files or {}), writable
        self._contents, self._family = contents, family
        mems = [(mem.width, mem.depth) for mem in info.memories.values()] if writable else ()
        blob = info_blob(info, round(clock_hz), baud, rx_buffer, writable, loaded=bool(loaded))
        self._link = Link(divisor=divisor, in_width=info.in_width, in_beats=info.in_beats,
                          out_width=info.out_width, info=blob,
                          rx_buffer=rx_buffer, timeout=timeout, memories=mems)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "receiving": Out(1), "busy": Out(1),
                          "error": Out(1)})

    def elaborate(self, platform):
        from .accelerator import add_rom
        from .plan import address_bits
        m = Module()
        m.submodules.link = link = self._link
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), self.receiving.eq(link.receiving),
                     self.busy.eq(link.busy), self.error.eq(link.error)]
        ports = dict(i_clk=ClockSignal(), i_rst=ResetSignal(),
                     i_i_stream__payload=link.core_i.payload, i_i_stream__valid=link.core_i.valid,
                     o_i_stream__ready=link.core_i.ready,
                     o_o_stream__payload=link.core_o.payload, o_o_stream__valid=link.core_o.valid,
                     i_o_stream__ready=link.core_o.ready)
        if not self._writable:
            m.submodules.accelerator = Instance("bnn_top", **{f"p_{k}": v for k, v in self._rom_files.items()},
                                                **ports)
            return m
        for k, (name, mem) in enumerate(self._info.memories.items()):
            depth, width = mem.depth, mem.width
            abits = address_bits(depth)
            addr = Signal(mem.slices * abits, name=f"{name}_addr")
            data = Signal(width, name=f"{name}_data")
            ports[f"o_{name}_addr"], ports[f"i_{name}_data"] = addr, data
            words = list(self._contents[name])
            if len(words) != depth:
                raise UsageError(f"memory {name}: {len(words)} words given, its depth is {depth}")
            add_rom(m, name, words, depth, width, addr, data,
                    write=(link.mem_we & (link.mem_sel == k), link.mem_addr[:abits], link.mem_data),
                    kind=self._kinds.get(name), family=self._family)
        m.submodules.accelerator = Instance("bnn_core", **ports)
        return m


class BoardTop(Elaboratable):
    """The accelerator and its link on ``board``'s pins (``bnn_board``)."""

    POR_CYCLES = 1 << 10     # reset held after configuration (iCE40 block RAMs read 0 for a few µs)

    def __init__(self, board, link_top, pll=None):
        self.board, self.link_top, self.pll = board, link_top, pll

    def elaborate(self, platform):
        m = Module()
        b = self.board

        def pin(direction, port, name):
            m.submodules[name] = buf = io.Buffer(direction, port)
            return buf.i if direction == "i" else buf.o

        osc_port = platform.request(platform.default_clk, dir="-")
        m.domains.sync = ClockDomain()
        locked = Const(1)
        if self.pll is None:
            m.d.comb += ClockSignal().eq(pin("i", osc_port, "clk_buf"))
        else:
            clk, locked = Signal(), Signal()
            m.submodules.pll = self._pll(osc_port, clk, locked, platform.default_clk_frequency / 1e6)
            m.d.comb += ClockSignal().eq(clk)
        # a power-on reset counter in a domain of its own that nothing resets (on the PLL's
        # clock, the reset also waits for its lock)
        m.domains.por = ClockDomain(reset_less=True)
        m.d.comb += ClockSignal("por").eq(ClockSignal())
        por = Signal(range(self.POR_CYCLES), init=self.POR_CYCLES - 1)
        with m.If(por != 0):
            m.d.por += por.eq(por - 1)
        rst = Signal()
        m.d.comb += rst.eq((por != 0) | ~locked)
        if b.reset:
            button = pin("i", platform.request(*b.reset, dir="-"), "reset_buf")
            m.d.comb += rst.eq((por != 0) | ~locked | button)
        m.submodules.reset_sync = ResetSynchronizer(rst, domain="sync")
        uart = platform.request("uart", 0, dir="-")
        m.submodules.link = link = self.link_top
        m.d.comb += [link.rx.eq(pin("i", uart.rx, "rx_buf")), pin("o", uart.tx, "tx_buf").eq(link.tx)]
        roles = {"busy": link.busy, "error": link.error}
        if "alive" in b.leds:
            blink = Signal(range(int(b.clock_hz)))
            m.d.sync += blink.eq(blink + 1)
            roles["alive"] = blink[-1]
        for role, (name, number) in b.leds.items():
            m.d.comb += pin("o", platform.request(name, number, dir="-"), f"led_{role}").eq(roles[role])
        return m


    def _pll(self, osc_port, clk, locked, in_mhz):
        return self.board.device.fpga_family.pll_instance(self.pll, osc_port, clk, locked, in_mhz)


def board_files(board, link_top, name: str = "bnn_board", pll=None) -> dict:
    """{file name: text} of the board-level top (RTLIL) and its pin constraints; ``pll``
    (hw/boards.py's ``pll``) clocks the design from the oscillator."""
    plan = board.make_platform().prepare(BoardTop(board, link_top, pll), name=name)
    keep = {f"{name}.il", f"{name}.{board.device.fpga_family.constraints}"}
    return {f: (c if isinstance(c, str) else c.decode()) for f, c in plan.files.items() if f in keep}
