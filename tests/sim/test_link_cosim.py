"""The board link (``bnn_link``: the accelerator behind its UART) in co-simulation: the host
driver of bnncore/link.py classifies images over the UART pins, each answer compared with the
golden model, and bad frames are answered with their errors (sim/tb_link.py)."""

import numpy as np
import pytest

from bnncore.exports import export
from bnncore.hw.generate import generate
from bnncore.hw.plan import make_plan

from ..hw.test_accelerator import random_net
from ..sampling import rotate
from .test_cosim import need
from .test_cosim_cnn import _design, cnn_8bit

pytest.importorskip("cocotb_tools.runner")
from bnncore.sim.runner import SimulationError, simulate_link  # noqa: E402


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    root = tmp_path_factory.mktemp("link-mlp")
    rng = np.random.default_rng(5)
    sizes = (37, 11, 6, 5)
    net = random_net(sizes, rng, 0.2)
    export(net, root / "net")
    generate(net, make_plan(sizes, [(4, 8), (3, 4), (2, 3)], banks=2), root / "rtl", vhdl=False)
    return root, rng.integers(0, 2, (10, sizes[0])).astype(np.uint8)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_link_mlp(mlp, sim, tmp_path):
    need(sim)
    root, values = mlp
    r = simulate_link(root / "rtl", root / "net", values, sim=sim, build_dir=tmp_path / "b")
    assert r["info_ok"] and not r["mismatches"] and r["images"] == len(values) + 2
    assert [c["case"] for c in r["checks"] if c["ok"]] == ["bad CRC", "wrong length", "unknown command", "truncated"]


def test_link_cnn_8bit(tmp_path):
    """A CNN with an 8-bit first layer: the input stream carries pixels (a beat per row)."""
    need("verilator")
    root, net, values = _design(tmp_path, cnn_8bit, 31, images=6)
    r = simulate_link(root / "rtl", root / "net", values, sim="verilator", build_dir=tmp_path / "b",
                      clock_hz=25e6, baud=1_000_000)
    assert r["info_ok"] and not r["mismatches"]
    assert r["info"]["baud"] == 1_000_000 and r["info"]["clock_hz"] == 25_000_000


def test_link_other_network_is_refused(mlp, tmp_path):
    """The bench runs the golden model of the network the RTL was generated from, only."""
    root, values = mlp
    other = random_net((37, 11, 6, 5), np.random.default_rng(99), 0.2)
    export(other, tmp_path / "other")
    with pytest.raises(SimulationError, match="not the network"):
        simulate_link(root / "rtl", tmp_path / "other", values, sim="icarus", build_dir=tmp_path / "b")


@pytest.mark.slow
@pytest.mark.parametrize("device, build", rotate(
    [("up5k", "rom"), ("up5k", "writable"), ("ecp5-25f", "rom"), ("ecp5-25f", "writable"), ("up5k", "spram")],
    ids=["up5k-rom", "up5k-writable", "ecp5-25f-rom", "ecp5-25f-writable", "up5k-spram"], per_day=2))
def test_link_gate_level(request, mlp, other, device, build, tmp_path):
    """The synthesized netlist of the accelerator behind its UART (the receive buffer a block
    RAM), with the device's cell models on Icarus: the same bench, the same answers; built
    writable, network B loaded over the link into the netlist built for A; with its weights in
    SPRAM (SB_SPRAM256KA's model), A loaded into empty SPRAM first."""
    need("icarus")
    root, values = mlp
    rtl, net_dir = (root / "rtl", root / "net") if build != "spram" else request.getfixturevalue("spram_mlp")
    writable = build != "rom"
    r = simulate_link(rtl, net_dir, values[:6], sim="icarus", build_dir=tmp_path / "b",
                      gate_level=device, writable=writable, load_net=other if writable else None)
    assert r["info_ok"] and not r["mismatches"] and all(c["ok"] for c in r["checks"])
    if writable:
        assert r["loaded_info_ok"] and not r["loaded_mismatches"] and r["loaded_differs"] > 0
    text = (tmp_path / "b" / "gate" / "bnn_link_netlist.v").read_text()
    assert ("SB_RAM40_4K" if device == "up5k" else "DP16KD") in text
    if build == "spram":
        assert r["preloaded_words"] > 0 and text.count("SB_SPRAM256KA ") == 3


@pytest.fixture(scope="module")
def other(mlp, tmp_path_factory):
    """Another network of the MLP's topology, exported."""
    root = tmp_path_factory.mktemp("link-other")
    net = random_net((37, 11, 6, 5), np.random.default_rng(77), 0.2)
    export(net, root / "net")
    return root / "net"


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_load_a_network_over_the_link(mlp, other, sim, tmp_path):
    """A design built for network A with writable memories: images against A's golden model,
    then B loaded over the link (every word of every memory), then the images against B's."""
    need(sim)
    root, values = mlp
    r = simulate_link(root / "rtl", root / "net", values, sim=sim, build_dir=tmp_path / "b", writable=True,
                      load_net=other)
    assert r["info_ok"] and not r["mismatches"] and r["loaded_info_ok"] and not r["loaded_mismatches"]
    assert r["loaded_differs"] > 0, "A and B answer the same: the test could not tell them apart"
    import json
    info = json.loads((root / "rtl" / "rtl.json").read_text())
    assert r["words_loaded"] == sum(m["depth"] for m in info["memories"].values())


@pytest.fixture(scope="module")
def spram_mlp(mlp, tmp_path_factory):
    """The MLP with its first two layers' weights in SPRAM (hw/memories.py): no initial contents."""
    from bnncore.hw.memories import place_weights
    root = tmp_path_factory.mktemp("link-spram")
    net_dir = mlp[0] / "net"
    from bnncore.exports import load
    plan = place_weights(make_plan((37, 11, 6, 5), [(4, 8), (3, 4), (2, 3)], banks=2), {0: "spram", 1: "spram"})
    generate(load(net_dir), plan, root / "rtl", vhdl=False)
    return root / "rtl", net_dir


def test_spram_weights_are_loaded_over_the_link(spram_mlp, mlp, other, tmp_path):
    """Weights in SPRAM, as it behaves (one port, nothing in it at power-up): INFO names no
    network; the bench loads the RTL's own over the link, classifies exactly, then loads B."""
    need("icarus")
    rtl, net_dir = spram_mlp
    r = simulate_link(rtl, net_dir, mlp[1], sim="icarus", build_dir=tmp_path / "b", writable=True, load_net=other)
    assert r["info"]["network"] == "0" * 16 and r["info_ok"] and not r["mismatches"]
    assert r["preloaded_words"] == r["words_loaded"] > 0
    assert r["loaded_info_ok"] and not r["loaded_mismatches"] and r["loaded_differs"] > 0
