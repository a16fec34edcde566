"""The cost model before synthesis (hw/estimate.py) and the folding it fits to a device."""

import json

import numpy as np
import pytest

from bnncore import api
from bnncore.errors import UsageError
from bnncore.hw import estimate as E
from bnncore.hw.autofold import auto_fold
from bnncore.hw.generate import check_buildable
from bnncore.hw.plan import make_plan
from bnncore.hw.synth import DEVICES
from bnncore.network import FoldedLayer, FoldedNetwork, OutputHead


def _mlp(sizes, seed=0):
    rng = np.random.default_rng(seed)
    layers = tuple(FoldedLayer(rng.integers(0, 2, (o, i), dtype=np.uint8), rng.integers(0, i, o))
                   for i, o in zip(sizes[:-2], sizes[1:-1]))
    head = OutputHead(rng.integers(0, 2, (sizes[-1], sizes[-2]), dtype=np.uint8), rng.integers(-4, 5, sizes[-1]))
    return FoldedNetwork(layers, head)


def test_memories_are_the_generators_and_placed_by_cost():
    """Every ROM slice, the first layer's input buffer and the output FIFO, named as Yosys names
    them; a ROM goes to block RAM when its bits / 16 in logic cost more than its blocks."""
    plan = make_plan((784, 256, 10), [(4, 196), (1, 16)])
    names = [m.name for m in E.memories(plan)]
    assert names[:3] == ["rom_w0.slice[0].mem", "rom_w0.slice[1].mem", "rom_w0.slice[2].mem"]
    assert {"rom_t0.slice[0].mem", "core.layer0_buffer", "rom_w1.slice[0].mem", "rom_t1.slice[0].mem",
            "core.fifo_storage"} <= set(names)
    up5k, ecp5 = DEVICES["up5k"], DEVICES["ecp5-25f"]
    costs = {"bram": 64, "lutram": 2}
    rom = E.Memory("r", "layer 0", 256, 16, False)            # one 256 x 16 block, or 256 LUT bits' worth
    assert E.place(rom, up5k, costs) == ("bram", 1)
    assert E.place(E.Memory("r", "layer 0", 16, 8, False), up5k, costs) == ("logic", 0)
    ram = E.Memory("b", "layer 0", 32, 8, True)                # ECP5: 2 x 2 LUT-RAM cells
    assert E.place(ram, ecp5, costs) == ("lutram", 4)
    assert E.place(ram, up5k, costs) == ("bram", 1)


def test_fit_recovers_a_linear_cost_and_the_memory_costs(monkeypatch):
    """A corpus whose LUTs are exactly 3 per XNOR bit plus 40 per layer, and whose memories went
    where costs of 64 (iCE40) put them: the fit finds both, and the error is 0."""
    plans = [make_plan((64, 32, 10), [(pe, simd), (2, 8)]) for pe, simd in ((1, 8), (2, 16), (4, 32), (8, 64), (16, 64))]
    up5k = DEVICES["up5k"]
    corpus = []
    for k, plan in enumerate(plans):
        f = E.features(plan, up5k, {"memory": {"bram": 64, "lutram": 1}})
        per_layer = [{"part": part, "luts": 40 * v["features"]["one"] + 3 * v["features"].get("xnor", 0), "ffs": 2,
                      "carries": 0, "brams": v["memory"]["brams"], "lutram": 0} for part, v in f.items()]
        mems = {m.name: "ICE40_RAM4K" if E.place(m, up5k, {"bram": 64, "lutram": 1})[0] == "bram" else "logic"
                for m in E.memories(plan)}
        total = {t: sum(r[t] for r in per_layer) for t in ("luts", "ffs", "carries", "brams")}
        corpus.append((f"d{k}", plan, {"up5k": {"per_layer": per_layer, "memories": mems, "total": total}}))
    costs = E.fit(corpus)
    assert costs["ice40"]["memory"]["agree"][0] == costs["ice40"]["memory"]["agree"][1]
    assert costs["ice40"]["corpus"]["luts"]["max_abs_pct"] == 0.0
    luts = costs["ice40"]["parts"]["layer"]["luts"]      # every plan is pipelined: the two XNOR features are one
    assert luts.get("xnor", 0) + luts.get("xnor_pipelined", 0) == pytest.approx(3, abs=1e-3)
    est = E.estimate(plans[2], up5k, costs)
    assert est["total"]["luts"] == corpus[2][2]["up5k"]["total"]["luts"]


def test_estimate_adds_up_and_states_its_error():
    plan = make_plan((784, 256, 256, 10), [(4, 196), (2, 256), (1, 16)])
    est = E.estimate(plan, DEVICES["ecp5-25f"])
    assert [r["part"] for r in est["per_layer"]] == ["layer 0", "layer 1", "layer 2", "scores and arg-max",
                                                      "stream and control"]
    for k in ("luts", "ffs", "carries", "brams"):
        assert est["total"][k] == sum(r[k] for r in est["per_layer"])
    assert est["per_layer"][0]["units"][0].startswith("w0: ") and "block RAM" in est["per_layer"][0]["units"][0]
    assert est["model"]["designs"] >= 30 and est["model"]["luts"]["mean_abs_pct"] <= 15
    assert "LUT4s were within" in E.estimate_note(est)
    assert E.estimate(plan, DEVICES["gw1nr-9"])["total"]["luts"] > 0     # every family has a model


def test_the_recorded_corpus_gives_the_recorded_error():
    """costs.json's error is what its fit gives on bench/estimate.json, the record it was fitted
    to: the numbers the docs quote are reproducible (python bench/estimate.py check)."""
    import sys
    from pathlib import Path
    bench = Path(__file__).parents[2] / "bench"
    sys.path.insert(0, str(bench))
    try:
        import estimate as B
    finally:
        sys.path.remove(str(bench))
    record = json.loads((bench / "estimate.json").read_text())
    assert len(record) >= 30
    corpus = [(n, B.design_plan(record[n], n), record[n]["devices"]) for n in sorted(record)]
    costs = json.loads(E.COSTS_FILE.read_text())
    assert set(costs) == {"ice40", "ecp5", "gowin"}
    for fam in costs:
        assert E._errors(corpus, {fam: costs[fam]}) == costs[fam]["corpus"]


def test_target_cycles_on_a_device_refuses_and_names_the_fastest_that_fits():
    net = _mlp((784, 256, 256, 10))
    with pytest.raises(UsageError, match=r"the folding for 32 cycles per image does not fit ecp5-25f by the cost "
                                         r"model .* the fastest folding that fits takes ([\d,]+) cycles") as e:
        api.plan(net, target_cycles=32, device="ecp5-25f")
    fastest = int(str(e.value).split("fits takes ")[1].split(" cycles")[0].replace(",", ""))
    dev = DEVICES["ecp5-25f"]
    plan, warnings = api.plan(net, target_cycles=fastest, device="ecp5-25f")
    assert not E.over_budget(E.estimate(plan, dev), dev) and warnings == []
    slower = auto_fold(net, fastest - 1, rom_blocks=dev.rom_blocks, buffer_blocks=dev.buffer_blocks, bias_bits=plan.bias_bits)
    assert E.over_budget(E.estimate(slower, dev), dev)
    _, warnings = api.plan(net, target_cycles=32, device="ecp5-25f", force=True)
    assert "does not fit ecp5-25f" in warnings[0]


def test_the_documented_device_foldings_pass_the_check():
    """The `bnn rtl --device` commands of docs/results.md and docs/link.md still generate."""
    assert api.plan(_mlp((784, 100, 100, 10)), target_cycles=250, device="up5k")[1] == []


def test_explicit_fold_over_the_device_is_refused_by_the_estimate():
    plan = make_plan((784, 256, 10), [(256, 196), (10, 256)])
    with pytest.raises(Exception, match=r"by the cost model \(hw/estimate.py\) the design takes about [\d,]+ LUT4s of "
                                        r"the ecp5-25f's 24,288"):
        check_buildable(plan, DEVICES["ecp5-25f"])
    assert check_buildable(make_plan((64, 64, 10), [(4, 16), (2, 16)]), DEVICES["up5k"]) == []


def test_bnn_rtl_with_a_device_records_and_prints_the_estimate(tmp_path, capsys):
    pytest.importorskip("amaranth")
    from bnncore.cli import main
    from bnncore.exports import export
    export(_mlp((64, 16, 10)), tmp_path / "net")
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "rtl"), "--device", "up5k", "--no-vhdl",
                 "--target-cycles", "64"]) in (0, None)
    info = json.loads((tmp_path / "rtl" / "rtl.json").read_text())
    est = info["estimate"]
    assert est["device"] == "up5k" and est["total"]["luts"] > 0
    assert {m["name"] for m in est["memories"]} >= {"rom_w0.slice[0].mem", "core.fifo_storage"}
    out = capsys.readouterr().out
    assert "estimate before synthesis for up5k" in out and "| layer 0 |" in out
