"""Popcount: the number of 1 bits of a vector."""

from amaranth import Const, Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Popcount", "popcount", "tree_sum"]


def tree_sum(terms):
    """Sum of Amaranth values as a balanced adder tree (combinational); ``terms`` non-empty."""
    terms = list(terms)
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            pairs.append(terms[-1])
        terms = pairs
    return terms[0]


def popcount(bits):
    """The number of 1 bits of an Amaranth value (combinational), as a chain of additions.

    The form is for the simulators: Verilator turns a chain of one-bit additions into a single
    ``$countones`` (one machine popcount), but each pair of a balanced tree into a call of its
    own. Synthesis does not see the difference: Yosys's ``alumacc`` merges either into one
    ``$macc`` cell, and maps both to the same cells.
    """
    if not len(bits):
        return Const(0, 1)
    total = bits[0]
    for i in range(1, len(bits)):
        total = total + bits[i]
    return total


class Popcount(wiring.Component):
    """Combinational popcount.

    Parameters
    ----------
    width : int
        Bits of the input, a positive integer.

    Attributes
    ----------
    i : In(width)
        The vector.
    o : Out(width.bit_length())
        The number of 1 bits in ``i``.
    """

    def __init__(self, *, width: int):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise TypeError(f"width must be a positive integer, not {width!r}")
        self._width = width
        super().__init__({"i": In(width), "o": Out(unsigned(width.bit_length()))})

    @property
    def width(self) -> int:
        return self._width

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(popcount(self.i))
        return m
