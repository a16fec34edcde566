import numpy as np
import pytest

from bnncore.hw.autofold import auto_fold
from bnncore.hw.layout import (
    ROM_ROW_DEPTH,
    ROM_SLICE_BITS,
    WeightRom,
    rom_slices,
    slice_bits,
    threshold_words,
    weight_rom,
    weight_words,
)
from bnncore.hw.plan import LayerFold, address_bits, make_plan, read_group
from bnncore.hw.timing import timing


def test_fold_counts():
    f = LayerFold(784, 1024, 16, 49)
    assert (f.nf, f.sf, f.cycles) == (64, 16, 1024)
    g = LayerFold(13, 7, 3, 4)                  # non-dividing: padded
    assert (g.nf, g.sf, g.cycles, g.weight_width, g.weight_depth) == (3, 4, 12, 12, 12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_in=10, n_out=4, pe=5, simd=2), r"layer 0: PE must be at most the layer's 4 neurons, not 5"),
    (dict(n_in=10, n_out=4, pe=2, simd=11), r"layer 0: SIMD must be at most the layer's 10 inputs, not 11"),
    (dict(n_in=10, n_out=4, pe=0, simd=2), r"layer 0: PE must be a positive integer, not 0"),
    (dict(n_in=10, n_out=4, pe=2, simd=2.5), r"layer 0: SIMD must be a positive integer, not 2.5"),
    (dict(n_in=10, n_out=4, pe=2, simd=2, kind="conv"), r"layer 0: kind must be 'hidden' or 'output', not 'conv'"),
])
def test_fold_validation(kwargs, message):
    with pytest.raises(TypeError, match=rf"^{message}$"):
        LayerFold(**kwargs)


def test_plan_validation():
    with pytest.raises(ValueError, match=r"^folding needs one \(PE, SIMD\) per layer: 2 for 5-3-2, got 1$"):
        make_plan((5, 3, 2), [(1, 1)])
    with pytest.raises(TypeError, match=r"^banks must be an integer in \[2, 16\] \(each bank buffers a whole layer output\), not 1$"):
        make_plan((5, 3, 2), [(1, 1), (1, 1)], banks=1)


def test_auto_fold_balances_layers():
    plan = auto_fold((784, 1024, 1024, 1024, 10), 1024)
    cycles = [l.cycles for l in plan.layers]
    assert max(cycles) <= 1024
    # the big layers are folded close to the target, not wastefully parallel
    assert all(c >= 512 for c in cycles[:3]), cycles
    for l in plan.layers:          # no cheaper folding would do
        assert l.pe * l.simd <= l.n_in * l.n_out
    slow = auto_fold((784, 1024, 1024, 1024, 10), 1 << 14)
    assert sum(l.pe * l.simd for l in slow.layers) < sum(l.pe * l.simd for l in plan.layers)
    with pytest.raises(ValueError, match=r"^layer 0: no folding of its 784 inputs reaches 1 cycles per image: with at most 256 input values per cycle \(SIMD\) it takes at least 4; ask for 4 or more"):
        auto_fold((784, 10), 1)


def test_auto_fold_block_ram_aware():
    """With a block-RAM model, each layer takes the fewest blocks first: on a UP5K the
    784-100-100-10 network at 800 cycles per image drops from 33 to 27 blocks (by the model),
    within the device's 30, at no more cycles."""
    from bnncore.hw.synth import DEVICES
    up5k = DEVICES["up5k"]

    def blocks(plan):
        return sum(up5k.rom_blocks(l.weight_depth, l.weight_width)
                   + up5k.rom_blocks(l.nf, l.pe * (l.value_bits if l.kind == "hidden" else plan.bias_bits))
                   for l in plan.layers)

    plain = auto_fold((784, 100, 100, 10), 800)
    aware = auto_fold((784, 100, 100, 10), 800, rom_blocks=up5k.rom_blocks)
    assert (blocks(plain), blocks(aware)) == (33, 27)
    assert max(l.cycles for l in aware.layers) <= 800
    assert timing(aware).ii <= timing(plain).ii
    # the first layer's input buffer (2 banks x SF words of SIMD bits) takes block RAM on iCE40
    # and none on ECP5; counted, it narrows the first layer's SIMD
    def buffer(plan):
        l = plan.layers[0]
        return up5k.buffer_blocks(2 << max(1, (l.sf - 1).bit_length()), l.simd)
    both = auto_fold((784, 100, 100, 10), 1600, rom_blocks=up5k.rom_blocks, buffer_blocks=up5k.buffer_blocks)
    assert (buffer(auto_fold((784, 100, 100, 10), 1600)), buffer(both)) == (4, 1)
    assert DEVICES["ecp5-85f"].buffer_blocks(32, 49) == 0


def test_rom_blocks_shapes():
    from bnncore.hw.synth import DEVICES
    up5k, ecp5 = DEVICES["up5k"], DEVICES["ecp5-85f"]
    assert up5k.rom_blocks(256, 16) == 1 and up5k.rom_blocks(257, 16) == 2
    assert up5k.rom_blocks(2048, 2) == 1 and up5k.rom_blocks(100, 100) == 7    # 256 x 16: ceil(100 / 16)
    assert ecp5.rom_blocks(464, 36 * 64) == 64 and ecp5.rom_blocks(1024, 18) == 1
    assert ecp5.rom_blocks(513, 36) == 2


def test_deep_weight_rom_rows():
    # a pipelined engine's ROM deeper than ROM_ROW_DEPTH holds several words per row, one
    # block RAM deep; a shallow engine's never does
    f = LayerFold(4201, 3, 1, 2)                    # 3 x 2101 = 6,303 words of 2 bits
    assert weight_rom(f, pipelined=False) == WeightRom(6303, 2, 1)
    rom = weight_rom(f)
    assert rom == WeightRom(1576, 8, 4) and rom.depth <= ROM_ROW_DEPTH
    assert weight_rom(LayerFold(2048, 1, 1, 1)) == WeightRom(2048, 1, 1)
    w = np.random.default_rng(1).integers(0, 2, (3, 4201)).astype(np.uint8)
    words, rows = weight_words(w, f), weight_words(w, f, rom.row_words)
    assert len(rows) == rom.depth
    assert all((rows[i // 4] >> (2 * (i % 4))) & 3 == words[i] for i in range(len(words)))
    assert rows[-1] >> (2 * (len(words) % 4)) == 0  # the last row's unused words are 0


def test_weight_words_layout_and_padding():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, (7, 13)).astype(np.uint8)
    f = LayerFold(13, 7, 3, 4)
    words = weight_words(w, f)
    assert len(words) == f.nf * f.sf
    for nf in range(f.nf):
        for sf in range(f.sf):
            word = words[nf * f.sf + sf]
            for p in range(f.pe):
                for s in range(f.simd):
                    n, i = nf * f.pe + p, sf * f.simd + s
                    bit = (word >> (p * f.simd + s)) & 1
                    expected = 1 if i >= 13 else (0 if n >= 7 else w[n, i])   # pad inputs: 1
                    assert bit == expected


def test_threshold_words_padding():
    f = LayerFold(13, 7, 3, 4)
    words = threshold_words(np.arange(7), f, f.value_bits)
    vals = [(words[nf] >> (p * f.value_bits)) & ((1 << f.value_bits) - 1) for nf in range(3) for p in range(3)]
    assert vals == [0, 1, 2, 3, 4, 5, 6, 14, 14]          # padded neurons: n_in + 1, never fire
    out = LayerFold(5, 3, 2, 5, kind="output")
    words = threshold_words(np.array([-1, 2, -3]), out, 8)
    assert [(words[nf] >> (8 * p)) & 0xFF for nf in range(2) for p in range(2)] == [0xFF, 2, 0xFD, 0]


def test_timing_model_formulas():
    plan = make_plan((13, 7, 5, 3), [(3, 4), (2, 3), (2, 2)], pipelined=False)
    t = timing(plan)
    assert plan.depth == 4 and t.cycles == (12, 9, 6) and t.bottleneck == 12
    assert t.latency == 4 + (12 + 4) + (9 + 4) + (6 + 4)
    assert t.ii == 13                      # (C0 + D + C1 + 1) / 2 = (12 + 4 + 9 + 1) / 2
    assert timing(make_plan((13, 7, 5, 3), [(3, 4), (2, 3), (2, 2)], banks=3, pipelined=False)).ii == 12
    deep = make_plan((13, 7, 5, 3), [(3, 4), (2, 3), (2, 2)])   # pipelined: the default
    t = timing(deep)
    assert deep.depth == 9
    assert t.latency == 4 + (12 + 9) + (9 + 9) + (6 + 9)
    assert t.ii == 15.5                    # (12 + 9 + 9 + 1) / 2
    with pytest.raises(TypeError, match="pipelined must be a bool"):
        make_plan((5, 3, 2), [(1, 1), (1, 1)], pipelined=1)


@pytest.mark.parametrize("sf, banks, group", [
    (32, 2, 8),     # 8-to-1 then 8-to-1 (a fixed 4 gave 4-to-1 then 16-to-1)
    (16, 2, 8),     # 8-to-1 then 4-to-1: ties go to the larger group
    (15, 3, 8),     # 8 then 3 x 2 = 6
    (5, 2, 4),      # 4 then 2 x 2 = 4
    (2, 2, 2),
    (1, 2, 1),      # one word per bank: no first-stage multiplexer
])
def test_read_group_balances_the_two_stages(sf, banks, group):
    assert read_group(sf, banks) == group


#: (words at most, port width) of each family's block-RAM modes, shallowest first: the mode
#: synthesis takes for a ROM is the widest that holds its depth in one block RAM.
ICE40_MODES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_MODES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


@pytest.mark.parametrize("depth", [1, 2, 18, 64, 65, 255, 256, 257, 512, 513, 1024, 1025, 2048, 2049, 9000])
@pytest.mark.parametrize("width", [1, 17, 18, 19, 143, 144, 145, 300, 1764, 2304, 2432])
def test_rom_slices_cover_the_word_and_add_no_block_ram(width, depth):
    slices = rom_slices(width, depth)
    bits = slice_bits(depth)
    assert [lo for lo, _ in slices] == list(range(0, width, bits))
    assert sum(w for _, w in slices) == width and all(0 < w <= bits for _, w in slices)
    # a slice boundary falls on a port boundary of the mode each family takes for the depth,
    # so the slices need exactly the block RAMs of the whole word
    # (ECP5 builds a ROM of at most 64 words from logic: its slices need no port boundaries)
    for modes in (ICE40_MODES, ECP5_MODES) if depth > 64 else (ICE40_MODES,):
        port = next((p for words, p in modes if depth <= words), modes[-1][1])
        assert sum(-(-w // port) for _, w in slices) == -(-width // port), (modes, port)
    # deep ROMs in narrower slices: two ECP5 block RAMs of 2048 x 9 per address register
    assert slice_bits(2048) == 18 and slice_bits(256) == ROM_SLICE_BITS == slice_bits(9000) == slice_bits(65)
    assert slice_bits(64) == slice_bits(1) == 48
    assert address_bits(1) == 1 and address_bits(2) == 1 and address_bits(464) == 9 and address_bits(513) == 10


def test_padding_rule():
    """docs/formats.md, "Padding in the hardware": on padded inputs (bit 0) every neuron's
    padded positions add nothing, and padded neurons never fire, computed from the ROM words
    the hardware reads."""
    rng = np.random.default_rng(11)
    for n_in, n_out, pe, simd in ((13, 7, 3, 4), (10, 5, 2, 3), (9, 4, 4, 9), (6, 3, 2, 5)):
        w = rng.integers(0, 2, (n_out, n_in)).astype(np.uint8)
        t = rng.integers(0, n_in + 2, n_out)
        f = LayerFold(n_in, n_out, pe, simd)
        words, thr = weight_words(w, f), threshold_words(t, f, f.value_bits)
        for x in rng.integers(0, 2, (20, n_in)).astype(np.uint8):
            padded = np.zeros(f.sf * f.simd, np.uint8)
            padded[:n_in] = x
            for nf in range(f.nf):
                for p in range(f.pe):
                    n = nf * f.pe + p
                    wbits = [(words[nf * f.sf + i // f.simd] >> (p * f.simd + i % f.simd)) & 1
                             for i in range(f.sf * f.simd)]
                    pop = sum(int(a == b) for a, b in zip(padded, wbits))
                    fires = pop >= (thr[nf] >> (p * f.value_bits)) & ((1 << f.value_bits) - 1)
                    if n < n_out:
                        assert pop == int((x == w[n]).sum())               # padding adds nothing
                        assert fires == (pop >= t[n])
                    else:
                        assert not fires                                   # a padded neuron: always 0
