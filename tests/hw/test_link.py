"""The board link's hardware (hw/link.py, hw/uart.py) in Amaranth's simulator, against the host's
encoder and decoder (bnncore/link.py): a stand-in accelerator answers each image with the sum
of its beats, so that every answer can be checked."""

import random

import pytest
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bnncore import link as proto
from bnncore.hw.link import Link
from bnncore.hw.uart import divisor_for

DIV = 4
IN_WIDTH, BEATS, OUT_WIDTH = 12, 3, 20
NB = 2                                             # bytes per beat
INFO = b"\x01hello, host"


class SumCore(wiring.Component):
    """Takes BEATS beats (ready one cycle in ``period``), answers their sum plus the number of
    images before."""

    i: In(stream.Signature(IN_WIDTH))
    o: Out(stream.Signature(OUT_WIDTH))

    def __init__(self, period=3):
        self._period = period
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        acc, n, tick = Signal(OUT_WIDTH), Signal(range(BEATS + 1)), Signal(range(self._period))
        images = Signal(8)
        m.d.sync += tick.eq(Mux(tick == self._period - 1, 0, tick + 1))
        m.d.comb += self.i.ready.eq(~self.o.valid & (tick == 0))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [acc.eq(acc + self.i.payload), n.eq(n + 1)]
        with m.If(n == BEATS):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(acc + images), n.eq(0), acc.eq(0),
                         images.eq(images + 1)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


class Bench(wiring.Component):
    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, rx_buffer=64, timeout=400, period=3, memories=(), info=INFO):
        self._period = period
        self.link = Link(divisor=DIV, in_width=IN_WIDTH, in_beats=BEATS, out_width=OUT_WIDTH, info=info,
                         rx_buffer=rx_buffer, timeout=timeout, memories=memories)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.submodules.core = core = SumCore(self._period)
        wiring.connect(m, link.core_i, core.i)
        wiring.connect(m, core.o, link.core_o)
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx)]
        return m


def run(chunks, answers, rx_buffer=64, timeout=400, period=3, cycles=200_000, memories=(), info=INFO, writes=None):
    """Send each chunk of bytes (a pause of ``pause`` bit times after each) and return the frames
    decoded from the line once ``answers`` have come (all that came in ``cycles`` if None).
    ``writes``: a list that gets the (memory, address, word) of each memory write."""
    dut = Bench(rx_buffer, timeout, period, memories, info)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    frames, dec = [], proto.Decoder()
    link = dut.link

    async def watch(ctx):
        async for _, _, we, sel, addr, data in ctx.tick().sample(link.mem_we, link.mem_sel, link.mem_addr,
                                                                 link.mem_data):
            if we:
                writes.append((sel, addr, data))

    if writes is not None:
        sim.add_testbench(watch, background=True)

    async def send(ctx):
        await ctx.tick().repeat(10)
        for data, pause in chunks:
            for b in data:
                for level in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(dut.rx, level)
                    await ctx.tick().repeat(DIV)
            if pause:
                await ctx.tick().repeat(pause * DIV)

    async def receive(ctx):
        left = cycles
        while left > 0 and (answers is None or len(frames) < answers):
            await ctx.tick()
            left -= 1
            if ctx.get(dut.tx):
                continue
            await ctx.tick().repeat(DIV // 2)
            bits = []
            for _ in range(9):
                await ctx.tick().repeat(DIV)
                bits.append(ctx.get(dut.tx))
            left -= DIV // 2 + 9 * DIV
            assert bits[8] == 1, "stop bit"
            frames.extend(dec.feed(bytes([sum(b << i for i, b in enumerate(bits[:8]))])))

    sim.add_testbench(send, background=True)
    sim.add_testbench(receive)
    sim.run()
    assert answers is None or len(frames) == answers, f"{len(frames)} answers of {answers}"
    return frames


def image(seed):
    rng = random.Random(seed)
    beats = [rng.randrange(1 << IN_WIDTH) for _ in range(BEATS)]
    return beats, b"".join(b.to_bytes(NB, "little") for b in beats)


def test_uart_divisor():
    assert divisor_for(12e6, 3_000_000) == 4
    assert divisor_for(25e6, 115_200) == 217
    with pytest.raises(ValueError, match="4 cycles per bit"):
        divisor_for(6e6, 3_000_000)
    with pytest.raises(ValueError, match="off"):
        divisor_for(25e6, 3_000_000)      # 8 cycles: 3.125 Mbaud, 4% off


def test_info_and_pipelined_images():
    imgs = [image(s) for s in range(4)]
    frames = run([(proto.encode(proto.INFO), 0)] + [(proto.encode(proto.CLASSIFY, p), 0) for _, p in imgs], 5)
    assert frames[0] == (proto.INFO, INFO)
    for k, (beats, _) in enumerate(imgs):
        assert frames[1 + k] == (proto.CLASSIFY, (sum(beats) + k).to_bytes(3, "little"))


@pytest.mark.parametrize("bad, code", [
    (lambda f: f[:-1] + bytes([f[-1] ^ 1]), proto.BAD_CRC),
    (lambda f: proto.encode(proto.CLASSIFY, f[4:-2] + b"\0"), proto.BAD_LENGTH),
    (lambda f: proto.encode(proto.INFO, b"\0"), proto.BAD_LENGTH),
    (lambda f: proto.encode(0x42, b"xy"), proto.UNKNOWN_COMMAND),
])
def test_bad_frames_answer_an_error_and_change_nothing(bad, code):
    (b0, p0), (b1, p1) = image(1), image(2)
    good0, good1 = proto.encode(proto.CLASSIFY, p0), proto.encode(proto.CLASSIFY, p1)
    frames = run([(good0, 0), (bad(good1), 0), (good1, 0)], 3)
    cmd = good1[1] if code in (proto.BAD_CRC,) else bad(good1)[1]
    assert frames[0] == (proto.CLASSIFY, sum(b0).to_bytes(3, "little"))
    assert frames[1] == (proto.ERROR, bytes([code, cmd]))
    # an image whose frame was bad went through the accelerator and its result was dropped
    images_before = 2 if code == proto.BAD_CRC else 1
    assert frames[2] == (proto.CLASSIFY, (sum(b1) + images_before).to_bytes(3, "little"))


@pytest.mark.parametrize("cut", [2, 4, 7, 9])
def test_a_truncated_frame_times_out(cut):
    """Cut inside the header, the image, the CRC: the error comes after the idle timeout; the
    next frame is answered as usual."""
    (b0, p0) = image(3)
    frame = proto.encode(proto.CLASSIFY, p0)
    frames = run([(frame[:cut], 200), (frame, 0)], 2)
    assert frames[0] == (proto.ERROR, bytes([proto.TIMEOUT, proto.CLASSIFY if cut > 1 else 0]))
    streamed = cut >= 4                     # the length was read: the image went in, padded
    assert frames[1] == (proto.CLASSIFY, (sum(b0) + streamed).to_bytes(3, "little"))


def test_an_overrun_is_reported_and_the_link_recovers():
    """A receive buffer of 16 bytes, a slow accelerator and frames sent without waiting: bytes
    are lost, a frame that lost some is answered with an overrun error, and a frame sent after
    the answers is classified."""
    imgs = [image(s) for s in range(4)]
    chunks = [(proto.encode(proto.CLASSIFY, p), 0) for _, p in imgs[:3]] + [(b"", 3000)]
    chunks.append((proto.encode(proto.CLASSIFY, imgs[3][1]), 0))
    frames = run(chunks, 4, rx_buffer=16, period=400, cycles=120_000)
    assert frames[0] == (proto.CLASSIFY, sum(imgs[0][0]).to_bytes(3, "little"))
    assert (proto.ERROR, bytes([proto.OVERRUN, proto.CLASSIFY])) in frames[1:-1]
    cmd, payload = frames[-1]
    assert cmd == proto.CLASSIFY and int.from_bytes(payload, "little") - sum(imgs[3][0]) in range(1, 4)


# --- writable memories: WRITE and NETWORK ------------------------------------------------

MEMS = [(12, 5), (20, 3)]                       # (width, depth): words of 2 and 3 bytes
BLOB = bytes(range(proto.INFO_NETWORK_OFFSET)) + bytes.fromhex("1122334455667788") + b"tail"


def write(mem, addr, word, nbytes):
    return proto.encode(proto.WRITE, bytes([mem]) + addr.to_bytes(4, "little") + word.to_bytes(nbytes, "little"))


def test_writes_and_network_identity():
    writes = []
    chunks = [(write(0, 2, 0xABC, 2), 0), (write(1, 0, 0xFEDCB, 3), 0),
              (proto.encode(proto.INFO), 0),
              (proto.encode(proto.NETWORK, bytes.fromhex("0102030405060708")), 0),
              (proto.encode(proto.INFO), 0)]
    frames = run(chunks, 5, memories=MEMS, info=BLOB, writes=writes)
    assert frames[0] == (proto.WRITE, b"") and frames[1] == (proto.WRITE, b"")
    assert writes == [(0, 2, 0xABC), (1, 0, 0xFEDCB)]
    assert frames[2] == (proto.INFO, BLOB)                   # the identity it was built with
    assert frames[3] == (proto.NETWORK, b"")
    assert frames[4] == (proto.INFO, BLOB.replace(bytes.fromhex("1122334455667788"),
                                                  bytes.fromhex("0102030405060708")))


@pytest.mark.parametrize("frame, code", [
    (write(2, 0, 1, 2), proto.NO_MEMORY),
    (write(0, 5, 1, 2), proto.BAD_ADDRESS),
    (write(0, 1, 1, 3), proto.BAD_LENGTH),                   # memory 0's words are 2 bytes
    (write(0, 1, 1, 2)[:-1] + b"\0", proto.BAD_CRC),
    (proto.encode(proto.NETWORK, b"1234567"), proto.BAD_LENGTH),
])
def test_bad_writes_write_nothing(frame, code):
    writes = []
    frames = run([(frame, 0), (write(1, 2, 7, 3), 0)], 2, memories=MEMS, info=BLOB, writes=writes)
    assert frames[0] == (proto.ERROR, bytes([code, frame[1]]))
    assert frames[1] == (proto.WRITE, b"") and writes == [(1, 2, 7)]


def test_a_read_only_design_refuses_writes():
    frames = run([(write(0, 0, 1, 2), 0), (proto.encode(proto.NETWORK, bytes(8)), 0)], 2)
    assert frames == [(proto.ERROR, bytes([proto.READ_ONLY, proto.WRITE])),
                      (proto.ERROR, bytes([proto.READ_ONLY, proto.NETWORK]))]
