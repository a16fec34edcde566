"""The native Verilator bench's pieces that need no simulator: the C++ it generates, the
payload decoding and the beats it writes. Its runs are in test_cosim.py and test_cosim_cnn.py."""

import numpy as np
import pytest

from bnncore.hw.layout import input_beat_bytes, input_words
from bnncore.sim.native import _decode_all, _port_code, bench_source, cxx_name
from bnncore.sim.scoreboard import decode


def test_verilated_port_names():
    assert cxx_name("i_stream__payload") == "i_stream___05Fpayload"
    assert cxx_name("o_stream__valid") == "o_stream___05Fvalid"
    assert cxx_name("clk") == "clk" and cxx_name("a_b") == "a_b"


@pytest.mark.parametrize("width, code", [
    (8, "top->p = w[0];"), (32, "top->p = w[0];"),
    (33, "top->p = (uint64_t)w[0] | ((uint64_t)w[1] << 32);"),
    (65, "for (int i = 0; i < 3; ++i) top->p[i] = w[i];"),
])
def test_port_code_follows_verilator_types(width, code):
    assert _port_code("p", width, True) == code


def test_bench_source_is_filled_in():
    pytest.importorskip("amaranth")
    from bnncore.hw.design import RtlDesign
    from bnncore.hw.generate import describe
    from bnncore.hw.plan import make_plan
    info = RtlDesign.from_json(describe(make_plan((100, 20, 10), [(4, 50), (2, 20)])))
    assert (info.in_width, info.out_width) == (50, 4 + 10 * info.score_bits)     # SIMD 50 a beat
    text = bench_source(info)
    assert "@" not in text
    assert f"IN_WORDS = 2, OUT_WORDS = {-(-info.out_width // 32)}" in text and "top->i_stream___05Fvalid = valid" in text


@pytest.mark.parametrize("class_bits, score_bits, n_classes", [(4, 16, 10), (1, 5, 2), (3, 13, 7), (6, 32, 40)])
def test_vectorised_decoding_equals_the_cocotb_benchs(class_bits, score_bits, n_classes):
    rng = np.random.default_rng(class_bits * score_bits)
    width = class_bits + score_bits * n_classes
    words = -(-width // 32)
    ints = [int(rng.integers(0, 2, width) @ (1 << np.arange(width, dtype=object))) for _ in range(50)]
    payloads = np.array([[(v >> (32 * k)) & 0xFFFFFFFF for k in range(words)] for v in ints], np.uint32)
    classes, scores = _decode_all(payloads, class_bits, score_bits, n_classes)
    expected = [decode(v, class_bits, score_bits, n_classes) for v in ints]
    assert classes.tolist() == [c for c, _ in expected] and scores.tolist() == [s for _, s in expected]


@pytest.mark.parametrize("width, beats, value_bits", [(28, 28, 1), (50, 16, 1), (192, 8, 8), (7, 3, 1)])
def test_beat_bytes_are_the_beats(width, beats, value_bits):
    rng = np.random.default_rng(width)
    values = rng.integers(0, 1 << value_bits, (5, width // value_bits * beats - 3))
    raw = input_beat_bytes(values, width, beats, value_bits, align=4)
    assert raw.shape[2] % 4 == 0
    words = input_words(values, width, beats, value_bits)
    assert [[int.from_bytes(raw[i, b].tobytes(), "little") for b in range(beats)] for i in range(5)] == words
