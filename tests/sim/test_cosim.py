"""Co-simulation of the generated RTL with cocotb on Verilator, Icarus and GHDL.

Each case has its own build directory (safe under pytest -n). Verilator builds take ~20 s,
so the random networks run on Verilator for a few cases and on the event-driven simulators
for all of them.
"""

import json
import os
import shutil

import numpy as np
import pytest

from bnncore.export import export
from bnncore.hw.generate import generate, write_rom_files
from bnncore.hw.plan import make_plan

from ..hw.test_accelerator import random_net

pytest.importorskip("cocotb_tools.runner")
from bnncore.sim.runner import SimulationError, simulate  # noqa: E402


def need(sim):
    tool = {"verilator": None, "icarus": "iverilog", "ghdl": "ghdl"}[sim]
    if tool and shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed (make setup installs it)")
        pytest.skip(f"{tool} is not installed (make setup installs it)")


CONFIGS = {
    # name: (topology, (PE, SIMD) per layer, banks, threshold extremes)
    "padded": ((37, 11, 6, 5), [(4, 8), (3, 4), (2, 3)], 2, 0.2),
    "serial": ((20, 9, 4), [(1, 1), (1, 3)], 2, 0.0),
    "parallel": ((12, 8, 6, 3), [(8, 12), (6, 8), (3, 6)], 3, 0.4),
    "extremes": ((9, 7, 2), [(7, 2), (2, 7)], 2, 0.5),
    # ROMs in column slices, each with its own address: 1,200-bit weight words (9 slices),
    # 168-bit threshold words (2)
    "sliced": ((100, 48, 5), [(24, 50), (5, 16)], 2, 0.3),
}


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    made = {}
    for name, (sizes, folds, banks, extremes) in CONFIGS.items():
        root = tmp_path_factory.mktemp(name)
        rng = np.random.default_rng(len(made) + 10)
        net = random_net(sizes, rng, extremes)
        plan = make_plan(sizes, folds, banks=banks)
        export(net, root / "net")
        generate(net, plan, root / "rtl")
        made[name] = (root, net, plan, rng.integers(0, 2, (40, sizes[0])).astype(np.uint8))
    return made


@pytest.mark.parametrize("sim", ["icarus", "ghdl", "verilator"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_random_networks(designs, config, sim, tmp_path):
    """Back to back (timing checked against the model), then with gaps and backpressure."""
    need(sim)
    if sim == "verilator" and config not in ("padded", "parallel", "sliced"):
        pytest.skip("Verilator: three configurations suffice (each build takes ~20 s)")
    root, net, plan, bits = designs[config]
    if config == "sliced":
        roms = json.loads((root / "rtl" / "rtl.json").read_text())["memories"]
        assert (roms["w0"]["slices"], roms["t0"]["slices"], roms["w1"]["slices"]) == (9, 2, 1)
    r = simulate(root / "rtl", root / "net", bits, sim=sim, build_dir=tmp_path / "b")
    assert r["mismatches"] == 0 and r["images"] == len(bits)
    r = simulate(root / "rtl", root / "net", bits, sim=sim, build_dir=tmp_path / "b", gap=0.3, stall=0.4, seed=5)
    assert r["mismatches"] == 0


@pytest.mark.parametrize("sim", ["icarus", "ghdl", "verilator"])
def test_same_rtl_two_weight_files(designs, sim, tmp_path):
    """ROM-from-file proof: the RTL is unchanged, only the files its parameters name."""
    need(sim)
    root, net, plan, bits = designs["padded"]
    other = random_net(CONFIGS["padded"][0], np.random.default_rng(99))
    export(other, tmp_path / "other_net")
    write_rom_files(other, plan, tmp_path / "other_roms")
    a = simulate(root / "rtl", root / "net", bits, sim=sim, build_dir=tmp_path / "a")
    b = simulate(root / "rtl", tmp_path / "other_net", bits, sim=sim, build_dir=tmp_path / "b",
                 rom_dir=tmp_path / "other_roms")
    assert a["mismatches"] == 0 and b["mismatches"] == 0


@pytest.mark.parametrize("sim", ["icarus", "ghdl", "verilator"])
def test_reset_mid_stream(designs, sim, tmp_path):
    need(sim)
    root, net, plan, bits = designs["padded"]
    r = simulate(root / "rtl", root / "net", bits, sim=sim, build_dir=tmp_path / "b", test="reset_mid_stream",
                 stall=0.2)
    assert r["mismatches"] == 0 and r["images"] == len(bits) - len(bits) // 2


def test_mismatch_is_reported(designs, tmp_path):
    """A wrong ROM file makes the bench fail with the first mismatching image named."""
    need("icarus")
    root, net, plan, bits = designs["padded"]
    other = random_net(CONFIGS["padded"][0], np.random.default_rng(98))
    write_rom_files(other, plan, tmp_path / "wrong")
    with pytest.raises(SimulationError, match=r"bench test stream failed: \d+ mismatches; first: \{'image': \d+"):
        simulate(root / "rtl", root / "net", bits, sim="icarus", build_dir=tmp_path / "b", rom_dir=tmp_path / "wrong")


def test_ghdl_large_rom(tmp_path):
    """A real-sized weight ROM (784 x 256 bits) elaborates and runs in GHDL (its default
    stack-allocation limit of 128 KB is lifted by the runner)."""
    need("ghdl")
    from bnncore.hw.plan import auto_fold
    sizes = (784, 256, 10)
    rng = np.random.default_rng(3)
    net = random_net(sizes, rng, 0.0)
    export(net, tmp_path / "net")
    generate(net, auto_fold(sizes, 256), tmp_path / "rtl")
    bits = rng.integers(0, 2, (2, 784)).astype(np.uint8)
    r = simulate(tmp_path / "rtl", tmp_path / "net", bits, sim="ghdl", build_dir=tmp_path / "b")
    assert r["mismatches"] == 0 and r["images"] == 2
