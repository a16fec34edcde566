"""The host's side of the serial link (bnncore/link.py) and `bnn run`, against a board stand-in
that answers frames with the golden model (the hardware's side is tests/hw/test_link.py and
tests/sim/test_link_cosim.py)."""

import json

import numpy as np
import pytest

from bnncore import link as proto
from bnncore.cli import run_on_board
from bnncore.golden import infer
from bnncore.hw.generate import describe
from bnncore.hw.plan import make_plan

from .hw.test_accelerator import random_net

SIZES = (37, 11, 6, 5)


class FakeBoard:
    """A transport whose far end answers INFO and CLASSIFY as the design would."""

    def __init__(self, net, info, corrupt=None, silent=False):
        self.net, self.info, self.corrupt, self.silent = net, info, corrupt, silent
        self.dev = proto.parse_info(proto.info_blob(info, 12_000_000, 3_000_000, 512))
        self.out, self.dec = bytearray(), proto.Decoder()

    def write(self, data):
        for cmd, payload in self.dec.feed(bytes(data)):
            if self.silent:
                continue
            if cmd == proto.INFO:
                self.out += proto.encode(proto.INFO, proto.info_blob(self.info, 12_000_000, 3_000_000, 512))
            elif cmd == proto.CLASSIFY and len(payload) == self.dev.image_bytes:
                nb = -(-self.dev.in_width // 8)
                bits = []
                for b in range(self.dev.in_beats):
                    word = int.from_bytes(payload[b * nb:(b + 1) * nb], "little")
                    bits += [(word >> i) & 1 for i in range(self.dev.in_width)]
                g = infer(self.net, np.array([bits[:self.net.n_inputs]], np.uint8), return_layers=True)
                sb, cb = self.dev.score_bits, self.dev.class_bits
                scores = g.scores[0].tolist()
                if self.corrupt == "score":
                    scores[0] += 1
                word = int(g.classes[0]) | sum((s & ((1 << sb) - 1)) << (cb + c * sb) for c, s in enumerate(scores))
                frame = bytearray(proto.encode(proto.CLASSIFY, word.to_bytes(self.dev.out_bytes, "little")))
                if self.corrupt == "crc":
                    frame[-1] ^= 1
                self.out += frame
            else:
                self.out += proto.encode(proto.ERROR, bytes([proto.BAD_LENGTH, cmd]))

    def read(self, n):
        data = bytes(self.out[:n])
        del self.out[:n]
        return data


@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(4)
    net = random_net(SIZES, rng, 0.2)
    info = describe(make_plan(SIZES, [(4, 8), (3, 4), (2, 3)], banks=2))
    info["network"] = {"sha256": net.digest()}
    info = json.loads(json.dumps(info))
    return net, info, rng.integers(0, 2, (20, SIZES[0])).astype(np.uint8)


def test_frame_bytes():
    """The INFO request of docs/link.md, byte for byte, and a round trip through the decoder."""
    assert proto.encode(proto.INFO).hex(" ") == "b5 01 00 00 " + proto.crc16(b"\x01\x00\x00").to_bytes(2, "little").hex(" ")
    assert proto.crc16(b"123456789") == 0x29B1          # CRC-16/CCITT-FALSE's check value
    frames = proto.Decoder().feed(b"\x00\x13" + proto.encode(7, b"\xb5\x00") + proto.encode(8))
    assert frames == [(7, b"\xb5\x00"), (8, b"")]
    with pytest.raises(proto.LinkError, match="bad CRC"):
        proto.Decoder().feed(proto.encode(7, b"ab")[:-1] + b"\0")


def test_info_round_trip(design):
    net, info, _ = design
    dev = proto.parse_info(proto.info_blob(info, 25e6, 1_000_000, 2048))
    assert (dev.spec, dev.clock_hz, dev.baud, dev.rx_buffer) == ("37-11-6-5", 25_000_000, 1_000_000, 2048)
    assert dev.network == net.digest()[:16] and dev.design == proto.design_digest(info)[:16]
    assert dev.interval == int(np.ceil(info["timing"]["initiation_interval"]))


def test_run_on_board(design):
    net, info, values = design
    labels = infer(net, values).classes
    r = run_on_board(proto.Link(FakeBoard(net, info)), net, values, labels, "net")
    assert r["golden_agree"] == len(values) and r["accuracy"] == 1.0
    assert "limits the rate" in r["table"]


def test_run_on_board_reports_a_difference(design):
    net, info, values = design
    with pytest.raises(proto.LinkError, match="20 of 20 images differ from the golden model, the first image 0"):
        run_on_board(proto.Link(FakeBoard(net, info, corrupt="score")), net, values, np.zeros(20), "net")


def test_run_on_board_refuses_another_network(design):
    net, info, values = design
    other = random_net(SIZES, np.random.default_rng(8), 0.2)
    with pytest.raises(proto.LinkError, match="the board holds network .* not other's"):
        run_on_board(proto.Link(FakeBoard(net, info)), other, values, np.zeros(20), "other")


def test_link_errors(design):
    net, info, values = design
    with pytest.raises(proto.LinkError, match="bad CRC"):
        proto.Link(FakeBoard(net, info, corrupt="crc")).classify(values[:2])
    with pytest.raises(proto.LinkError, match="no answer from the board for 0.2 s"):
        proto.Link(FakeBoard(net, info, silent=True), timeout=0.2).info()
    lk = proto.Link(FakeBoard(net, info))
    with pytest.raises(proto.LinkError, match=r"error 2 \(wrong length for the command\) to a frame of command 0x02"):
        lk.request(proto.CLASSIFY, b"\0")
    with pytest.raises(ValueError, match="at most 40 values"):     # 5 beats of 8 (SIMD 8)
        lk.classify(np.zeros((1, 41), np.uint8))
