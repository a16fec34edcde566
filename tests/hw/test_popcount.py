import pytest
from amaranth.sim import Simulator

from bnncore.hw.popcount import Popcount


@pytest.mark.parametrize("form", ["chain", "tree"])
@pytest.mark.parametrize("width", [1, 2, 3, 7, 8])
def test_popcount_exhaustive(width, form):
    dut = Popcount(width=width, form=form)

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(dut.i, v)
            assert ctx.get(dut.o) == bin(v).count("1")

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("form", ["chain", "tree"])
def test_popcount_wide_random(form):
    import random
    dut = Popcount(width=100, form=form)
    rnd = random.Random(0)

    async def bench(ctx):
        for _ in range(200):
            v = rnd.getrandbits(100)
            ctx.set(dut.i, v)
            assert ctx.get(dut.o) == bin(v).count("1")
        ctx.set(dut.i, (1 << 100) - 1)
        assert ctx.get(dut.o) == 100

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", [0, -3, 2.0, True])
def test_popcount_width_validation(width):
    with pytest.raises(TypeError, match=rf"^width must be a positive integer, not {width!r}$"):
        Popcount(width=width)


def test_popcount_form_validation():
    with pytest.raises(ValueError, match="chain, tree"):
        Popcount(width=4, form="wallace")
