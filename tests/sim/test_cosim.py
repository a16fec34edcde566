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

from bnncore.exports import export
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
    # ROMs in column slices, each with its own address: 1,200-bit weight words (25 slices of
    # 48 bits: 4 words deep), 168-bit threshold words (4), 80-bit weight words (2)
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
        assert (roms["w0"]["slices"], roms["t0"]["slices"], roms["w1"]["slices"]) == (25, 4, 2)
    seen, lines = [], []
    r = simulate(root / "rtl", root / "net", bits, sim=sim, build_dir=tmp_path / "b",
                 progress=lambda done, total: seen.append((done, total)), log=lines.append)
    assert r["mismatches"] == 0 and r["images"] == len(bits)
    # the progress callback ends at every image done, and never goes back
    assert seen[-1] == (len(bits), len(bits)) and seen == sorted(seen), seen
    assert len(lines) == 2 and lines[1].startswith(f"{sim}: built in"), lines
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
    """Wrong ROM files make the bench fail with the first mismatching image named, and the
    layer and neuron where it departs from the golden model (the first: every ROM is wrong)."""
    need("icarus")
    root, net, plan, bits = designs["padded"]
    other = random_net(CONFIGS["padded"][0], np.random.default_rng(98))
    write_rom_files(other, plan, tmp_path / "wrong")
    with pytest.raises(SimulationError, match=r"bench test stream failed: \d+ mismatches, the first image (\d+): class \d+, "
                                              r"scores \[.*\]; the golden model's class \d+, scores \[.*\]; image \1 "
                                              r"departs from the golden model first at layer 0 \(dense, output \d+\): "
                                              r"neuron \d+ is [01], the golden model's [01];"):
        simulate(root / "rtl", root / "net", bits, sim="icarus", build_dir=tmp_path / "b", rom_dir=tmp_path / "wrong")


def test_ghdl_large_rom(tmp_path):
    """A real-sized weight ROM (784 x 256 bits) elaborates and runs in GHDL (its default
    stack-allocation limit of 128 KB is lifted by the runner)."""
    need("ghdl")
    from bnncore.hw.autofold import auto_fold
    sizes = (784, 256, 10)
    rng = np.random.default_rng(3)
    net = random_net(sizes, rng, 0.0)
    export(net, tmp_path / "net")
    generate(net, auto_fold(sizes, 256), tmp_path / "rtl")
    bits = rng.integers(0, 2, (2, 784)).astype(np.uint8)
    r = simulate(tmp_path / "rtl", tmp_path / "net", bits, sim="ghdl", build_dir=tmp_path / "b")
    assert r["mismatches"] == 0 and r["images"] == 2


def test_other_network_refused_unless_swapped(designs, tmp_path):
    """bnn sim RTL NET with a NET the RTL was not generated from: refused with the reason,
    or, asked for with swap_roms, NET's ROM files written for the RTL's folding and run."""
    need("icarus")
    root, net, plan, bits = designs["padded"]
    other = random_net(CONFIGS["padded"][0], np.random.default_rng(97))
    export(other, tmp_path / "other")
    with pytest.raises(SimulationError, match=rf"^{tmp_path}/other: not the network {root}/rtl was generated from"):
        simulate(root / "rtl", tmp_path / "other", bits, sim="icarus", build_dir=tmp_path / "b")
    r = simulate(root / "rtl", tmp_path / "other", bits, sim="icarus", build_dir=tmp_path / "b", swap_roms=True)
    assert r["mismatches"] == 0 and r["images"] == len(bits)
    smaller = random_net((37, 11, 5), np.random.default_rng(96))
    export(smaller, tmp_path / "smaller")
    with pytest.raises(SimulationError, match=r"network 37-11-5 differs from the design \(37-11-6-5\) in what its logic fixes: layers: the design has 3, the network 2"):
        simulate(root / "rtl", tmp_path / "smaller", bits, sim="icarus", build_dir=tmp_path / "c", swap_roms=True)


def test_watchdog_budget():
    from bnncore.sim.scoreboard import budget_cycles
    from types import SimpleNamespace
    info = SimpleNamespace(interval=10.0, latency=50, in_beats=4)      # an RtlDesign's fields it reads
    assert budget_cycles(info, 100, 0.0, 0.0) == 4 * (50 + 1000) + 1000
    assert budget_cycles(info, 100, 0.9, 0.0) == int(4 * (50 + 100 * 4 / (1 - 0.9))) + 1000   # the input binds
    assert budget_cycles(info, 100, 0.0, 0.5) == 4 * (50 + 2000) + 1000


def hung_design(rtl, out):
    """A copy of the RTL in ``rtl`` whose result valid is tied low, as a hung engine looks from
    outside (its rtl.json checksums updated)."""
    from bnncore.fileio import sha256_file
    shutil.copytree(rtl, out)
    top = (out / "bnn_top.v").read_text().replace(".o_stream__valid(o_stream__valid)", ".o_stream__valid()")
    (out / "bnn_top.v").write_text(top.replace("endmodule", "    assign o_stream__valid = 1'b0;\nendmodule"))
    info = json.loads((out / "rtl.json").read_text())
    info["sha256"]["bnn_top.v"] = sha256_file(out / "bnn_top.v")
    (out / "rtl.json").write_text(json.dumps(info))
    return out


def test_stalled_design_is_caught_by_the_watchdog(designs, tmp_path):
    """A design that stops producing results (here: its result valid tied low, as a hung
    engine looks from outside) fails with the image it stopped at instead of hanging."""
    need("icarus")
    root, net, plan, bits = designs["serial"]
    hung = hung_design(root / "rtl", tmp_path / "rtl")
    with pytest.raises(SimulationError, match=r"bench test stream failed: watchdog: no result for image 0 \(0 of 3 "
                                              r"images done, \d accepted\) after \d+ cycles"):
        simulate(hung, root / "net", bits[:3], sim="icarus", build_dir=tmp_path / "b")


@pytest.mark.slow
def test_paths_with_spaces_quotes_and_dollars(tmp_path):
    """Generated HDL holds no path, and every simulator runs from directories whose names
    make or a shell would split."""
    need("ghdl")
    from bnncore.hw.tools import check_vhdl
    odd = tmp_path / "my dir 'x' $HOME"
    sizes = (20, 9, 4)
    net = random_net(sizes, np.random.default_rng(4))
    export(net, odd / "net")
    rtl = generate(net, make_plan(sizes, [(1, 1), (1, 3)]), odd / "rtl")
    for f in rtl.iterdir():
        assert str(tmp_path) not in f.read_text() and "/tmp" not in f.read_text(), f.name
    check_vhdl(rtl)
    bits = np.random.default_rng(5).integers(0, 2, (6, sizes[0])).astype(np.uint8)
    for sim in ("icarus", "ghdl", "verilator"):
        r = simulate(rtl, odd / "net", bits, sim=sim, build_dir=odd / f"build {sim}")
        assert r["mismatches"] == 0, sim


def _random_design(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 4))
    sizes = [int(rng.integers(5, 60))] + [int(rng.integers(2, 50)) for _ in range(n - 2)] + [int(rng.integers(2, 11))]
    folds = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        # SIMD 1 and other small words often: those gave Icarus' VHDL back end its crashes
        simd = 1 if rng.random() < 0.3 else int(rng.integers(1, i + 1))
        folds.append((int(rng.integers(1, o + 1)), simd))
    return tuple(sizes), folds, int(rng.integers(2, 4)), bool(rng.random() < 0.8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_vhdl_random_foldings(seed, tmp_path):
    """VHDL for random topologies and foldings: generated, elaborated by GHDL, and every
    third one co-simulated on GHDL against the golden model."""
    need("ghdl")
    need("icarus")
    from bnncore.hw.tools import check_vhdl
    sizes, folds, banks, pipelined = _random_design(seed)
    rng = np.random.default_rng(seed + 1000)
    net = random_net(sizes, rng)
    export(net, tmp_path / "net")
    rtl = generate(net, make_plan(sizes, folds, banks=banks, pipelined=pipelined), tmp_path / "rtl")
    check_vhdl(rtl)
    if seed % 3 == 0:
        bits = rng.integers(0, 2, (12, sizes[0])).astype(np.uint8)
        r = simulate(rtl, tmp_path / "net", bits, sim="ghdl", build_dir=tmp_path / "b", gap=0.2, stall=0.2, seed=seed)
        assert r["mismatches"] == 0 and r["images"] == len(bits)


@pytest.mark.slow
@pytest.mark.parametrize("hidden, folds", [(40, None), (40, [(7, 57), (3, 9)]), (32, [(5, 79), (4, 9)]),
                                           (33, [(2, 16), (1, 1)]), (64, [(2, 16), (1, 1)])])
def test_vhdl_of_designs_that_crashed_icarus(hidden, folds, tmp_path):
    """784-H-10 designs whose VHDL translation crashed iverilog -tvhdl (1-bit $pmux functions)."""
    need("ghdl")
    need("icarus")
    from bnncore.hw.autofold import auto_fold
    from bnncore.hw.tools import check_vhdl
    sizes = (784, hidden, 10)
    net = random_net(sizes, np.random.default_rng(hidden))
    plan = make_plan(sizes, folds) if folds else auto_fold(sizes, 1024)
    check_vhdl(generate(net, plan, tmp_path / "rtl"))


def test_native_bench(designs, tmp_path):
    """The native Verilator bench: a design whose payloads are between 32 and 64 bits (the
    input) and wider than 64 (the output), three shards, the latency and the interval the
    cocotb bench measures; then with gaps and backpressure."""
    root, net, plan, bits = designs["sliced"]
    info = json.loads((root / "rtl" / "rtl.json").read_text())
    assert 32 < info["ports"]["input"]["width"] <= 64 < info["ports"]["output"]["width"]
    seen = []
    r = simulate(root / "rtl", root / "net", bits, sim="verilator", build_dir=tmp_path / "b", bench="native", jobs=3,
                 progress=lambda done, total: seen.append((done, total)))
    assert r["mismatches"] == 0 and r["images"] == len(bits) and not r["failures"]
    assert [(s["first"], s["images"]) for s in r["shards"]] == [(0, 13), (13, 13), (26, 14)]
    assert seen[-1] == (len(bits), len(bits)) and seen == sorted(seen), seen
    ref = simulate(root / "rtl", root / "net", bits[:13], sim="verilator", build_dir=tmp_path / "c")
    assert r["shards"][0]["latency"] == ref["latency"] == info["timing"]["latency"]
    assert r["shards"][0]["ii"] == ref["ii"]
    whole = simulate(root / "rtl", root / "net", bits, sim="verilator", build_dir=tmp_path / "b", bench="native")
    r = simulate(root / "rtl", root / "net", bits, sim="verilator", build_dir=tmp_path / "b", bench="native",
                 gap=0.3, stall=0.4, seed=5)
    assert r["mismatches"] == 0
    # an input idle 9 cycles in 10: 20 cycles per image of 2 beats, where the design takes 8.5
    r = simulate(root / "rtl", root / "net", bits, sim="verilator", build_dir=tmp_path / "b", bench="native",
                 gap=0.9, stall=0.5, seed=6)
    assert r["mismatches"] == 0 and r["cycles"] > 1.8 * whole["cycles"]


def test_native_bench_reports_mismatches_and_a_stalled_design(designs, tmp_path):
    """Wrong ROM files: the first mismatching image and the layer where it departs; a design
    that stops producing results: the watchdog, with the image it stopped at."""
    root, net, plan, bits = designs["padded"]
    other = random_net(CONFIGS["padded"][0], np.random.default_rng(98))
    write_rom_files(other, plan, tmp_path / "wrong")
    with pytest.raises(SimulationError, match=r"bench test stream failed: \d+ mismatches, the first image (\d+): .*; "
                                              r"image \1 departs from the golden model first at layer 0"):
        simulate(root / "rtl", root / "net", bits, sim="verilator", build_dir=tmp_path / "b", rom_dir=tmp_path / "wrong",
                 bench="native")
    hung = hung_design(root / "rtl", tmp_path / "rtl")
    with pytest.raises(SimulationError, match=r"bench test stream failed: images 0\.\.1: watchdog: no result for image 0 "
                                              r"\(0 of 2 images done, \d accepted\) after \d+ cycles.*images 2\.\.3: "
                                              r"watchdog: no result for image 2 "):
        simulate(hung, root / "net", bits[:4], sim="verilator", build_dir=tmp_path / "c", bench="native", jobs=2)


def test_native_bench_refusals(designs, tmp_path):
    root, net, plan, bits = designs["serial"]
    for options, message in [(dict(sim="icarus", bench="native"), "the native bench is Verilator's"),
                             (dict(bench="native", test="reset_mid_stream"), "stream test only"),
                             (dict(bench="native", waves=True), "no waveforms"),
                             (dict(jobs=2), "more than 1 with the native bench only"),
                             (dict(bench="native", jobs=0), "positive integer"),
                             (dict(pgo=True), "pgo builds the native bench"),
                             (dict(bench="verilog"), "bench must be one of cocotb, native")]:
        with pytest.raises(ValueError, match=message):
            simulate(root / "rtl", root / "net", bits, build_dir=tmp_path / "b", **options)
