"""A UART, 8 data bits, no parity, 1 stop bit (8N1), for the board link (hw/link.py).

``divisor`` is clock cycles per bit (the clock divided by the baud rate, rounded): a bit is
sampled in its middle, so the rate may be off by a few percent (1 / (2 * 10) of a bit over a
frame of 10 bits) and still be read.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from bnncore.errors import UsageError

__all__ = ["UARTRx", "UARTTx", "divisor_for"]


def divisor_for(clk_hz: float, baud: int) -> int:
    """Cycles per bit for ``baud`` at ``clk_hz``; raises ValueError when the clock is too slow
    or the rounded rate is off by more than 2%."""
    if baud <= 0 or clk_hz <= 0:
        raise UsageError(f"the clock and the baud rate must be positive, not {clk_hz!r} Hz and {baud!r} baud")
    d = round(clk_hz / baud)
    if d < 4:
        raise UsageError(f"{baud:,} baud needs a clock of at least {4 * baud / 1e6:g} MHz (4 cycles per bit), "
                         f"not {clk_hz / 1e6:g} MHz")
    err = abs(clk_hz / d - baud) / baud
    if err > 0.02:
        raise UsageError(f"{baud:,} baud from {clk_hz / 1e6:g} MHz: {d} cycles per bit give "
                         f"{clk_hz / d:,.0f} baud, {100 * err:.1f}% off (at most 2%)")
    return d


def _checked(divisor) -> int:
    if not isinstance(divisor, int) or divisor < 4:
        raise UsageError(f"divisor must be an integer >= 4, not {divisor!r}")
    return divisor


class UARTRx(wiring.Component):
    """Receiver: ``data`` with a one-cycle ``strobe`` per byte; ``frame_error`` pulses instead
    when a stop bit is 0 (the byte is dropped). There is no flow control: the byte is there
    for one cycle."""

    rx: In(1, init=1)
    data: Out(8)
    strobe: Out(1)
    frame_error: Out(1)

    def __init__(self, divisor: int):
        self._d = _checked(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self._d
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(d + d // 2 + 1))
        bit = Signal(range(10))
        shift = Signal(8, reset_less=True)
        m.d.sync += [self.strobe.eq(0), self.frame_error.eq(0)]
        with m.FSM():
            with m.State("idle"):
                with m.If(~rx):
                    # to the middle of the start bit
                    m.d.sync += [timer.eq(d // 2 - 1), bit.eq(0)]
                    m.next = "start"
            with m.State("start"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):              # a glitch, not a start bit
                    m.next = "idle"
                with m.Else():
                    m.d.sync += timer.eq(d - 1)
                    m.next = "data"
            with m.State("data"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq((shift >> 1) | (rx << 7)), timer.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "stop"
            with m.State("stop"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [self.data.eq(shift), self.strobe.eq(rx), self.frame_error.eq(~rx)]
                    # after a 0 stop bit, the line goes back to 1 before the next start bit
                    with m.If(rx):
                        m.next = "idle"
                    with m.Else():
                        m.next = "break"
            with m.State("break"):
                with m.If(rx):
                    m.next = "idle"
        return m


class UARTTx(wiring.Component):
    """Transmitter: a byte stream in, the line out (1 when idle)."""

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self._d = _checked(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self._d
        timer = Signal(range(d))
        left = Signal(range(11))                   # bits still to send
        shift = Signal(10, init=0x3FF)              # stop bit, data LSB first, start bit
        m.d.comb += [self.i.ready.eq(left == 0), self.tx.eq(shift[0])]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq((1 << 9) | (self.i.payload << 1)), left.eq(10), timer.eq(d - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [shift.eq((shift >> 1) | (1 << 9)), left.eq(left - 1), timer.eq(d - 1)]
        return m
