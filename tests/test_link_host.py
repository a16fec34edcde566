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

    def __init__(self, net, info, corrupt=None, silent=False, writable=False):
        self.net, self.info, self.corrupt, self.silent, self.writable = net, info, corrupt, silent, writable
        self.blob = bytearray(proto.info_blob(info, 12_000_000, 3_000_000, 512, writable))
        self.dev = proto.parse_info(bytes(self.blob))
        self.out, self.dec = bytearray(), proto.Decoder()
        self.writes, self.identities = [], []

    def write(self, data):
        for cmd, payload in self.dec.feed(bytes(data)):
            if self.silent:
                continue
            if cmd == proto.INFO:
                self.out += proto.encode(proto.INFO, bytes(self.blob))
            elif cmd == proto.WRITE and self.writable:
                self.writes.append((payload[0], int.from_bytes(payload[1:5], "little"), payload[5:]))
                self.out += proto.encode(proto.WRITE)
            elif cmd == proto.NETWORK and self.writable:
                off = proto.INFO_NETWORK_OFFSET
                self.blob[off:off + 8] = payload
                self.identities.append(payload.hex())
                self.out += proto.encode(proto.NETWORK)
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
    assert proto.encode(proto.INFO).hex(" ") == "b5 01 00 00 ac fb"
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


def test_run_on_board_asks_for_a_load_first(design):
    """A board whose weights are loaded at run time (SPRAM) names no network until loaded."""
    net, info, values = design
    board = FakeBoard(net, info, writable=True)
    board.blob[proto.INFO_NETWORK_OFFSET:proto.INFO_NETWORK_OFFSET + 8] = bytes(8)
    with pytest.raises(proto.LinkError, match=r"holds no network yet: load net into it first \(bnn load RTL NET"):
        run_on_board(proto.Link(board), net, values, np.zeros(20), "net")
    proto.Link(board).load(net, info)
    assert run_on_board(proto.Link(board), net, values, np.zeros(20), "net")


def test_link_errors(design):
    net, info, values = design
    with pytest.raises(proto.LinkError, match="bad CRC"):
        proto.Link(FakeBoard(net, info, corrupt="crc")).classify(values[:2])
    with pytest.raises(proto.LinkError, match="no answer from the board within 0.2 s"):
        proto.Link(FakeBoard(net, info, silent=True), timeout=0.2).info()
    lk = proto.Link(FakeBoard(net, info))
    with pytest.raises(proto.LinkError, match=r"error 2 \(wrong length for the command\) to a frame of command 0x02"):
        lk.request(proto.CLASSIFY, b"\0")
    with pytest.raises(ValueError, match="at most 40 values"):     # 5 beats of 8 (SIMD 8)
        lk.classify(np.zeros((1, 41), np.uint8))


def test_load_writes_every_word_and_sets_the_identity(design):
    net, info, _ = design
    other = random_net(SIZES, np.random.default_rng(9), 0.2)
    board = FakeBoard(net, info, writable=True)
    lk = proto.Link(board)
    words = lk.load(other, info)
    assert words == len(board.writes) == sum(m["depth"] for m in info["memories"].values())
    assert board.identities == ["0" * 16, other.digest()[:16]]
    assert lk.info().network == other.digest()[:16]
    from bnncore.hw.generate import plan_of, rom_images
    images = rom_images(other, plan_of(info))
    names = list(info["memories"])
    for mem, addr, data in board.writes:
        width, words_ = images[names[mem]]
        assert int.from_bytes(data, "little") == words_[addr] and len(data) == -(-width // 8)


def test_load_refuses(design):
    net, info, _ = design
    with pytest.raises(proto.LinkError, match="read-only memories: build it with `bnn synth --board ... --writable`"):
        proto.Link(FakeBoard(net, info)).load(net, info)
    other_info = json.loads(json.dumps(describe(make_plan(SIZES, [(2, 8), (3, 4), (2, 3)], banks=2))))
    with pytest.raises(proto.LinkError, match="holds a design of 37-11-6-5 .* its logic differs"):
        proto.Link(FakeBoard(net, info, writable=True)).load(net, other_info)
    bigger = random_net((37, 12, 6, 5), np.random.default_rng(3), 0.2)
    board = FakeBoard(net, info, writable=True)
    with pytest.raises(proto.LinkError, match="network 37-12-6-5 cannot run in the board.s design 37-11-6-5: .*layer 0 outputs: the design has 11, the network 12"):
        proto.Link(board).load(bigger, info)
    assert board.writes == [] and board.identities == []          # refused before anything is written
