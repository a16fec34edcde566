"""A layer kind from outside the package: a per-channel bit inversion of a feature map,
registered here with one call in software (bnncore.kinds) and one in hardware
(bnncore.hw.stages), then run through the network, the export format, the golden model,
RTL generation, the cycle model and a Verilator co-simulation with gaps and backpressure,
without any file of bnncore naming it."""

from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from bnncore import kinds
from bnncore.errors import UsageError
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, OutputHead, PoolLayer

# --- the kind: software half ----------------------------------------------------------------


class MapLayer:
    """What a weightless layer of a map kind has besides its fields: the same map out."""
    has_weights = False
    in_bits = 1

    @property
    def out_shape(self):
        return self.in_shape

    @property
    def n_out_values(self):
        return int(np.prod(self.in_shape))


@dataclass(frozen=True, eq=False)
class InvertLayer(MapLayer):
    """Channel c of every pixel inverted where mask[c] is 1."""
    in_shape: tuple
    mask: tuple
    name: str = field(default="layer", compare=False)
    kind = "invert"

    def __eq__(self, other):
        return isinstance(other, InvertLayer) and (self.in_shape, self.mask) == (other.in_shape, other.mask)


class InvertKind(kinds.MapKind):
    name = "invert"
    layer = InvertLayer

    def token(self, layer):
        return "inv" + "".join(map(str, layer.mask))

    def digest(self, layer):
        return bytes(layer.mask)

    def entry(self, layer):
        return {"mask": "".join(map(str, layer.mask))}

    def build(self, entry, name, in_shape):
        mask = entry.get("mask")
        if not isinstance(mask, str) or len(mask) != in_shape[0] or set(mask) - {"0", "1"}:
            raise ValueError(f"field 'mask' must be {in_shape[0]} digits 0 or 1, found {mask!r}")
        return InvertLayer(in_shape, tuple(int(b) for b in mask), name=name)

    def golden(self, layer, x):
        return x ^ np.array(layer.mask, np.uint8)

    def stage(self, layer):
        c, h, w = layer.in_shape
        return InvertStage(c, h, w, layer.mask)


# --- the kind: hardware half ----------------------------------------------------------------


@dataclass(frozen=True)
class InvertStage:
    channels: int
    height: int
    width: int
    mask: tuple
    kind = "invert"

    @property
    def out_h(self):
        return self.height

    @property
    def out_w(self):
        return self.width

    def token(self):
        return "inv"

    def properties(self):
        return {"mask": list(self.mask)}

    def describe(self):
        return {"kind": "invert", "in_shape": [self.channels, self.height, self.width], "mask": list(self.mask)}

    @classmethod
    def from_description(cls, d):
        c, h, w = d["in_shape"]
        return cls(c, h, w, tuple(d["mask"]))


def invert_unit(stage):
    """A registered stream stage: a pixel is taken when the output register is empty."""
    from amaranth import Const, Module, Signal
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    class Invert(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(stream.Signature(stage.channels)), "o": Out(stream.Signature(stage.channels))})

        def elaborate(self, platform):
            m = Module()
            valid, data = Signal(), Signal(stage.channels)
            mask = Const(sum(b << c for c, b in enumerate(stage.mask)), stage.channels)
            accept = self.i.valid & ~valid
            m.d.comb += [self.i.ready.eq(~valid), self.o.valid.eq(valid), self.o.payload.eq(data)]
            with m.If(self.o.ready):
                m.d.sync += valid.eq(0)
            with m.If(accept):
                m.d.sync += [valid.eq(1), data.eq(self.i.payload ^ mask)]
            return m

    return Invert()


def invert_cycle_unit(stage):
    from bnncore.hw.cycles import INF, Unit

    class InvertUnit(Unit):
        def __init__(self):
            self.o_valid = False
            self.src = self.sink = None

        def signals(self, c):
            self.i_ready = not self.o_valid
            self.valid = self.o_valid

        def decide(self, c):
            self.accept = self.src.valid and not self.o_valid
            self.o_ready = self.sink.i_ready

        def tick(self, c):
            if self.o_ready:
                self.o_valid = False
            if self.accept:
                self.o_valid = True

        def next_event(self, c):
            return c if self.accept or (self.o_valid and self.o_ready) else INF

        def state(self, c):
            return (self.o_valid,)

    return InvertUnit()


@pytest.fixture(scope="module")
def registered():
    from bnncore.hw.stages import register_stage
    if kinds.kind_named("invert") is None:
        kinds.register(InvertKind())
        register_stage("invert", InvertStage, invert_unit, invert_cycle_unit)
    return True


def network(rng, mask):
    """2x8x8 bits: a padded 3x3 convolution of 5 channels, the inversion, an OR/AND pool, a
    dense layer and the output head."""
    conv = ConvLayer(rng.integers(0, 2, (5, 3, 3, 2)), rng.integers(6, 13, 5), (2, 8, 8), 1, 1)
    inv = InvertLayer(conv.out_shape, mask)
    pool = PoolLayer(conv.out_shape, [0, 1, 0, 1, 1])
    n = int(np.prod(pool.out_shape))
    dense = DenseLayer(rng.integers(0, 2, (6, n)), rng.integers(n // 2 - 3, n // 2 + 4, 6))
    return FoldedNetwork((conv, inv, pool, dense), OutputHead(rng.integers(0, 2, (4, 6)), rng.integers(-2, 3, 4)))


def test_unregistered_kind_is_refused():
    with pytest.raises(ValueError, match="registered kind"):
        FoldedNetwork((ConvLayer(np.ones((2, 3, 3, 1), np.uint8), [5, 5], (1, 4, 4)),
                       type("Other", (), {"in_shape": (2, 2, 2), "kind": "other"})()),
                      OutputHead(np.ones((2, 8), np.uint8), [0, 0]))
    with pytest.raises(UsageError, match="already registered"):
        kinds.register(type("Pool", (kinds.MapKind,), {"name": "pool", "layer": InvertLayer})())


def test_golden_export_and_summary(registered, tmp_path):
    from bnncore.exports import export, load
    from bnncore.golden import infer
    from bnncore.network import summary_table
    rng = np.random.default_rng(4)
    net = network(rng, (1, 0, 1, 1, 0))
    assert net.spec == "2x8x8-5c3p1-inv10110-mp2-6-4"
    x = rng.integers(0, 2, (64, net.n_inputs)).astype(np.uint8)
    acts = {b: infer(net, x, return_layers=True, backend=b).activations for b in ("numpy", "numba")}
    assert all(np.array_equal(a, b) for a, b in zip(acts["numpy"], acts["numba"]))
    assert np.array_equal(acts["numpy"][1], acts["numpy"][0] ^ np.array([1, 0, 1, 1, 0], np.uint8))
    plain = replace(net, layers=(net.layers[0], net.layers[2], net.layers[3]))
    assert not np.array_equal(infer(net, x).classes, infer(plain, x).classes)   # the inversion matters
    export(net, tmp_path / "net")
    back = load(tmp_path / "net")
    assert back == net and back.digest() == net.digest() != replace(net, layers=(
        net.layers[0], InvertLayer((5, 8, 8), (0, 0, 1, 1, 0)), *net.layers[2:])).digest()
    assert "inv10110" in summary_table(back)


def test_rtl_and_verilator_cosimulation(registered, tmp_path):
    """Every class and score of 40 images against the golden model, back to back and with
    gaps and backpressure; the cycle model's latency and interval are the RTL's."""
    import json

    from bnncore.exports import export
    from bnncore.hw.generate import generate
    from bnncore.hw.plan import plan_for
    from bnncore.sim.runner import simulate

    from .sim.test_cosim import need
    need("verilator")
    rng = np.random.default_rng(7)
    net = network(rng, (0, 1, 1, 0, 1))
    export(net, tmp_path / "net")
    generate(net, plan_for(net, [(5, 2), (3, 5), (2, 6)]), tmp_path / "rtl", vhdl=False)
    info = json.loads((tmp_path / "rtl" / "rtl.json").read_text())
    assert info["folding"][0]["pools"][0] == {"kind": "invert", "in_shape": [5, 8, 8], "mask": [0, 1, 1, 0, 1]}
    assert "invert0_0" in (tmp_path / "rtl" / "bnn_core.v").read_text()
    x = rng.integers(0, 2, (40, net.n_inputs)).astype(np.uint8)
    for gap, stall in ((0.0, 0.0), (0.3, 0.4)):
        r = simulate(tmp_path / "rtl", tmp_path / "net", x, sim="verilator", bench="native", gap=gap, stall=stall,
                     seed=1, build_dir=tmp_path / "sim")
        assert r["mismatches"] == 0 and r["images"] == 40
    assert r["latency"] == info["timing"]["latency"] and info["timing"]["latency_exact"]


# --- a graph: a registered kind that joins two maps -----------------------------------------


@dataclass(frozen=True, eq=False)
class XorLayer(MapLayer):
    """The XOR of two maps of the same shape (a join of two branches)."""
    in_shape: tuple
    name: str = field(default="layer", compare=False)
    kind = "xor"

    def __eq__(self, other):
        return isinstance(other, XorLayer) and self.in_shape == other.in_shape


class XorKind(kinds.MapKind):
    name = "xor"
    layer = XorLayer
    arity = 2

    def token(self, layer):
        return "xor"

    def digest(self, layer):
        return b""

    def entry(self, layer):
        return {}

    def build(self, entry, name, in_shape):
        return XorLayer(in_shape, name=name)

    def golden(self, layer, a, b):
        return a ^ b


@pytest.fixture(scope="module")
def joins(registered):
    if kinds.kind_named("xor") is None:
        kinds.register(XorKind())
    return True


def graph_network(rng):
    """conv -> invert -> xor(conv, invert) -> pool -> dense -> head: the XOR reads layers 0 and 1."""
    net = network(rng, (1, 0, 1, 1, 0))
    conv, inv, pool, dense = net.layers
    layers = (conv, inv, XorLayer(conv.out_shape), pool, dense)
    return FoldedNetwork(layers, net.head, net.input, ((-1,), (0,), (0, 1), (2,), (3,), (4,)))


def test_a_graph_runs_in_the_golden_model_and_round_trips(joins, tmp_path):
    from bnncore.exports import export, load
    from bnncore.golden import infer
    rng = np.random.default_rng(5)
    net = graph_network(rng)
    assert not net.is_chain and net.graph[2] == (0, 1) and net.spec == "2x8x8-5c3p1-inv10110-<0,1>-xor-mp2-6-4"
    x = rng.integers(0, 2, (32, net.n_inputs)).astype(np.uint8)
    acts = {b: infer(net, x, return_layers=True, backend=b) for b in ("numpy", "numba")}
    a = acts["numpy"].activations
    assert np.array_equal(a[2], a[0] ^ a[1]) and np.array_equal(acts["numpy"].scores, acts["numba"].scores)
    # as a chain the XOR would read one map: refused
    with pytest.raises(ValueError, match=r"layer 2: reads 2 maps, got inputs \(1,\)"):
        FoldedNetwork(net.layers, net.head, net.input)
    with pytest.raises(ValueError, match="reads stage 3; a stage reads stages before it"):
        FoldedNetwork(net.layers, net.head, net.input, ((-1,), (0,), (0, 3), (2,), (3,), (4,)))
    export(net, tmp_path / "net")
    back = load(tmp_path / "net")
    assert back == net and back.digest() == net.digest() and back.graph == net.graph
    assert np.array_equal(infer(back, x).classes, acts["numpy"].classes)


def test_a_graph_has_no_hardware_yet(joins):
    from bnncore.hw.plan import plan_for
    with pytest.raises(UsageError, match=r"is a graph \(stage 2 reads \[0, 1\]\).*no hardware yet"):
        plan_for(graph_network(np.random.default_rng(5)), [(5, 2), (3, 5), (2, 6)])
