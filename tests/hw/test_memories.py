"""Weights placed in a memory kind besides block RAM (hw/memories.py): iCE40 UltraPlus's SPRAM,
which the bitstream cannot initialise, so the design is loaded over the board's link."""

import json

import pytest

from bnncore import api
from bnncore.errors import GenerateError, UsageError
from bnncore.hw import memories as M
from bnncore.hw.design import RtlError, RtlDesign, load_rtl, plan_of, rom_images
from bnncore.hw.estimate import estimate, over_budget
from bnncore.hw.generate import generate
from bnncore.hw.identity import design_digest
from bnncore.hw.layout import weight_rom
from bnncore.hw.plan import make_plan
from bnncore.hw.synth import DEVICES, SynthError, check_fit, synthesize

from .test_estimate import _mlp

UP5K, ECP5 = DEVICES["up5k"], DEVICES["ecp5-25f"]


def test_parse_memory():
    assert M.parse_memory("w0=spram, w2=SPRAM") == {0: "spram", 2: "spram"}
    assert M.parse_memory("auto") == M.AUTO and M.parse_memory(" none ") == {}
    for text, why in (("w0=", "is not w<layer>=<kind>"), ("x=spram", "is not w<layer>=<kind>"),
                      ("w1=spram,w1=spram", "w1 is placed twice")):
        with pytest.raises(UsageError, match=why):
            M.parse_memory(text)
    with pytest.raises(UsageError, match="has weight memories w0 to w1, not w5"):
        M.place_weights(make_plan((20, 8, 4), [(2, 4), (1, 2)]), {5: "spram"})


def test_kinds_are_the_familys():
    assert M.kind_of("spram", UP5K).blocks(3136, 64) == 4
    assert M.kind_of("spram", UP5K).blocks(20000, 17) == 4        # two rows of two lanes
    with pytest.raises(UsageError, match=r"ecp5-25f \(ECP5\) has none besides block RAM"):
        M.kind_of("spram", ECP5)
    with pytest.raises(UsageError, match="memory kind 'dram': any family has only spram"):
        M.kind_of("dram")


def test_a_placed_rom_keeps_a_word_a_row():
    """A pipelined engine's ROM deeper than 2,048 words puts words side by side (block RAM);
    in SPRAM, 16K words deep, it keeps one a row, and its layout is part of the design."""
    plan = make_plan((784, 256, 10), [(4, 16), (1, 16)])
    placed = M.place_weights(plan, {0: "spram"})
    assert weight_rom(plan.layers[0]).row_words == 2 and weight_rom(placed.layers[0]).row_words == 1
    assert M.placed(placed) == {"w0": "spram"} and M.blocks(placed, UP5K) == {"spram": 4}
    assert M.loaded(placed) == ["w0"] and M.loaded(plan) == []
    assert M.placement_errors(placed, UP5K) == []
    wide = M.place_weights(make_plan((784, 256, 10), [(8, 16), (1, 16)]), {0: "spram"})
    assert "take 8 blocks of 16,384 x 16 bits, the iCE40UP5K-SG48 has 4" in M.placement_errors(wide, UP5K)[0]
    assert "iCE40HX8K-CT256 has 0" in M.placement_errors(placed, DEVICES["hx8k"])[0]


def test_a_kind_slower_than_a_block_ram_is_refused(monkeypatch):
    """The engines read weights one cycle after the address; a kind that answers later cannot
    hold them (its read latency, hw/families/base.py MemoryKind)."""
    from dataclasses import replace
    fam = UP5K.fpga_family
    monkeypatch.setattr(fam, "memory_kinds", {"spram": replace(fam.memory_kinds["spram"], latency=2)})
    plan = M.place_weights(make_plan((784, 256, 10), [(4, 16), (1, 16)]), {0: "spram"})
    assert M.placement_errors(plan, UP5K) == ["SPRAM returns data 2 cycles after the address; the engines read their "
                                              "weights one cycle after it, as from a block RAM"]


def test_the_demo_network_fits_the_up5k_with_its_first_layer_in_spram():
    """784-256-256-10 (268,800 weight bits; the UP5K's block RAMs hold 122,880): by default its
    first layer's weights go to SPRAM, folded for SPRAM's 16-bit blocks; with none it is refused."""
    net = _mlp((784, 256, 256, 10))
    p, warnings = api.plan(net, device="up5k", target_cycles=3136)
    assert [(f.pe, f.simd, f.weight_memory) for f in p.layers] == [(4, 16, "spram"), (1, 32, ""), (1, 1, "")]
    est = estimate(p, UP5K)
    assert est["total"]["spram"] == 4 and not over_budget(est, UP5K) and not warnings
    assert "w0: 4 SPRAM blocks" in est["per_layer"][0]["units"]
    with pytest.raises(UsageError, match="no folding fits up5k by the cost model"):
        api.plan(net, device="up5k", target_cycles=3136, memory="none")
    with pytest.raises(GenerateError, match="its ROMs hold 273,824 bits"):
        api.plan(net, device="up5k", fold=[(4, 16), (1, 32), (1, 1)], memory="none")
    # a loaded design's estimate is the board's: the link counted, and iCE40's logic cells
    p, _ = api.plan(net, device="up5k", target_cycles=4214, pipelined=False)
    est = estimate(p, UP5K)
    assert M.loaded(p) and est["per_layer"][-1]["part"] == "serial link"
    assert est["total"]["logic_cells"] == round(est["total"]["luts"] + 0.8 * est["total"]["ffs"])
    p, _ = api.plan(net, device="up5k", target_cycles=6272, memory="w0=spram")
    assert p.layers[0].weight_memory == "spram" and M.blocks(p, UP5K) == {"spram": 2}
    with pytest.raises(UsageError, match="places weights to fit a device"):
        api.plan(net, memory="auto")
    with pytest.raises(UsageError, match="has none besides block RAM"):
        api.plan(net, device="ecp5-25f", memory="w0=spram")
    # a network that fits without SPRAM keeps its block RAMs
    small, _ = api.plan(_mlp((784, 64, 10)), device="up5k", target_cycles=1024)
    assert not M.placed(small)
    over = estimate(M.place_weights(make_plan((784, 256, 10), [(8, 32), (1, 16)]), {0: "spram"}), UP5K)
    assert "16 SPRAM blocks of the up5k's 4" in over_budget(over, UP5K)


@pytest.fixture(scope="module")
def placed_design(tmp_path_factory):
    root = tmp_path_factory.mktemp("spram")
    net = _mlp((37, 11, 6, 5), seed=3)
    plan = make_plan((37, 11, 6, 5), [(4, 8), (3, 4), (2, 3)], banks=2)
    generate(net, M.place_weights(plan, {0: "spram"}), root / "rtl", vhdl=False)
    generate(net, plan, root / "plain", vhdl=False)
    return root, net


def test_rtl_json_names_the_placement(placed_design):
    root, net = placed_design
    info = load_rtl(root / "rtl")
    assert info.memories["w0"].kind == "spram" and info.memories["w1"].kind == ""
    assert plan_of(info).layers[0].weight_memory == "spram"
    plain = load_rtl(root / "plain")
    assert "kind" not in json.loads((root / "plain" / "rtl.json").read_text())["memories"]["w0"]
    # another layout of the weights: a board of one design cannot load the other's words
    assert design_digest(info) != design_digest(plain)
    assert rom_images(net, plan_of(info)) == rom_images(net, plan_of(plain))   # shallow: the same words
    bad = json.loads((root / "rtl" / "rtl.json").read_text())
    bad["memories"]["w0"]["kind"] = "flash"
    with pytest.raises(RtlError, match=r"field 'memories.w0.kind' names no memory kind bnncore knows: 'flash'"):
        RtlDesign.from_json(bad)
    # a placement the folding does not make: the board would be built for other logic
    for change, found, want in ((lambda j: j["folding"][0].pop("weight_memory"), "spram", "block RAM"),
                                (lambda j: j["memories"]["w1"].update(kind="spram"), "spram", "block RAM"),
                                (lambda j: j["memories"]["w0"].pop("kind"), "absent", "spram")):
        bad = json.loads((root / "rtl" / "rtl.json").read_text())
        change(bad)
        with pytest.raises(RtlError, match=rf"memories.w\d.kind' is '{found}', but the folding places w\d in "
                                           rf"'{want}'; regenerate it with `bnn rtl`"):
            RtlDesign.from_json(bad)


def test_a_loaded_design_is_built_for_a_board(placed_design, tmp_path):
    """SPRAM has no initial contents: bare synthesis is refused before any tool runs; a board
    build is writable, and its INFO names no network until one is loaded."""
    from bnncore import link as proto
    from bnncore.hw.link import LinkTop
    root, _ = placed_design
    with pytest.raises(SynthError, match=r"w0 is in SPRAM, which the bitstream cannot initialise: .* give a board"):
        synthesize(root / "rtl", "up5k", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SynthError, match="the bitstream holds none of its weights to swap; load other weights"):
        synthesize(root / "rtl", "up5k", tmp_path / "out", swappable=True)
    info = load_rtl(root / "rtl")
    with pytest.raises(UsageError, match="so the design must be writable"):
        LinkTop(info=info, rom_files={}, clock_hz=12e6, baud=1_000_000)
    blob = proto.info_blob(info, 12_000_000, 1_000_000, 512, True, loaded=True)
    assert proto.parse_info(blob).network == "0" * 16
    check_fit(info, UP5K)
    with pytest.raises(SynthError, match="hx8k: the weights placed in SPRAM take 2 blocks"):
        check_fit(info, DEVICES["hx8k"])
