"""cocotb bench of the board link (``bnn_link``: hw/link.py's LinkTop, the accelerator behind its
UART) on Verilator or Icarus.

The host driver itself (``bnncore.link.Link``, its encoder and decoder: no copy of the protocol
here) runs in a thread through cocotb's bridge, over a transport that drives the design's
``rx`` pin and samples its ``tx`` pin bit by bit. The bench asks INFO, classifies images and
compares every class and score with the golden model, then sends bad frames (a wrong CRC, a
wrong length, an unknown command, a frame cut short) and checks that each is answered with
its error and that the next images are still classified exactly (a design whose weights the
bitstream cannot hold, in SPRAM, loads its own network over the link first). With ``load_net`` in the
config (a design with writable memories), it then loads that network over the link and
classifies the images again against its golden model. Config and results as for sim/tb.py
(``BNN_SIM_CONFIG``).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, RisingEdge

from bnncore import link as proto
from bnncore.exports import load
from bnncore.golden import infer
from bnncore.hw.design import RtlDesign
from bnncore.hw.memories import loaded as loaded_memories

PERIOD_NS = 10


class PinTransport:
    """``write``/``read`` (bnncore/link.py's transport) on the design's UART pins, called from
    the driver's thread."""

    def __init__(self, dut, divisor: int, read_cycles: int):
        self.dut, self.div, self.read_cycles = dut, divisor, read_cycles
        self.received = bytearray()
        self.outgoing = bytearray()
        self._more_out, self._got = Event(), Event()
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._sample())

    async def _drive(self):
        clk = self.dut.clk
        while True:
            while not self.outgoing:
                self._more_out.clear()
                await self._more_out.wait()
            b = self.outgoing.pop(0)
            for level in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = level
                await ClockCycles(clk, self.div)

    async def _sample(self):
        clk = self.dut.clk
        while True:
            await FallingEdge(self.dut.tx)
            await ClockCycles(clk, self.div // 2)
            if int(self.dut.tx.value):
                continue                    # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await ClockCycles(clk, self.div)
                byte |= int(self.dut.tx.value) << i
            await ClockCycles(clk, self.div)
            assert int(self.dut.tx.value) == 1, "the design sent a 0 stop bit"
            self.received.append(byte)
            self._got.set()

    @resume
    async def _write(self, data: bytes):
        self.outgoing += data
        self._more_out.set()

    @resume
    async def _read(self, n: int) -> bytes:
        if not self.received:
            self._got.clear()
            await First(self._got.wait(), ClockCycles(self.dut.clk, self.read_cycles))
        out = bytes(self.received[:n])
        del self.received[:len(out)]
        return out

    def write(self, data: bytes):
        self._write(bytes(data))

    def read(self, n: int) -> bytes:
        return self._read(n)


def _host(t: PinTransport, cfg: dict, gold, values: np.ndarray, net) -> dict:
    """The host's side, in a thread: what a user's script does with a board."""
    lk = proto.Link(t, timeout=cfg.get("wall_timeout", 600.0))
    out = {"checks": []}
    dev = lk.info()
    with open(cfg["rtl_json"]) as f:
        info = RtlDesign.from_json(json.load(f), cfg["rtl_json"])
    out["info"] = {"spec": dev.spec, "network": dev.network, "design": dev.design, "baud": dev.baud,
                   "clock_hz": dev.clock_hz, "rx_buffer": dev.rx_buffer}
    # weights in a memory the bitstream cannot initialise (hw/memories.py): no network until loaded
    loaded = loaded_memories(info.plan)
    expect = {"spec": info.spec, "network": "0" * 16 if loaded else net.digest()[:16],
              "design": proto.design_digest(info)[:16]}
    out["info_ok"] = all(getattr(dev, k) == v for k, v in expect.items())
    if loaded:
        out["preloaded_words"] = lk.load(net, info)
        out["info_ok"] = out["info_ok"] and lk.info().network == net.digest()[:16]
    n = len(values)
    split = max(1, n - 2)
    classes, scores = lk.classify(values[:split])
    mismatches = []

    def compare(first, cls, sc):
        for k in range(len(cls)):
            i = first + k
            if int(cls[k]) != int(gold.classes[i]) or list(sc[k]) != list(gold.scores[i]):
                mismatches.append({"image": i, "actual_class": int(cls[k]), "actual_scores": [int(s) for s in sc[k]],
                                   "expected_class": int(gold.classes[i]),
                                   "expected_scores": [int(s) for s in gold.scores[i]]})
    compare(0, classes, scores)

    # bad frames: each answered with its error; the next image is still classified exactly
    good = proto.encode(proto.CLASSIFY, proto.image_payloads(values[split:split + 1], dev)[0])
    bad = {"bad CRC": (good[:-1] + bytes([good[-1] ^ 0x5A]), proto.BAD_CRC),
           "wrong length": (proto.encode(proto.CLASSIFY, good[4:-3]), proto.BAD_LENGTH),
           "unknown command": (proto.encode(0x7F, b"\x01\x02"), proto.UNKNOWN_COMMAND),
           "truncated": (good[:len(good) // 2], proto.TIMEOUT)}
    for k, (name, (frame, code)) in enumerate(bad.items()):
        t.write(frame)
        try:
            lk._answer(proto.CLASSIFY)
            got = None
        except proto.LinkError as e:
            got = str(e)
        ok = got is not None and f"error {code} " in got
        out["checks"].append({"case": name, "answer": got, "ok": ok})
        i = split + (k % max(1, n - split))
        cls, sc = lk.classify(values[i:i + 1])
        compare(i, cls, sc)
    out["mismatches"] = mismatches
    out["images"] = split + len(bad)
    if cfg.get("load_net"):
        # another network of the same topology and folding, loaded over the link into the
        # running design; then every image again, against that network's golden model
        from bnncore.exports import load as load_net
        other = load_net(cfg["load_net"])
        t0 = cocotb.utils.get_sim_time("ns")
        out["words_loaded"] = lk.load(other, info)
        out["load_cycles"] = int(cocotb.utils.get_sim_time("ns") - t0) // PERIOD_NS
        dev = lk.info()
        out["loaded_info_ok"] = dev.network == other.digest()[:16]
        gold_b = infer(other, values, return_layers=True, backend="numpy")
        cls, sc = lk.classify(values)
        out["loaded_mismatches"] = [
            {"image": i, "actual_class": int(cls[i]), "expected_class": int(gold_b.classes[i]),
             "actual_scores": [int(v) for v in sc[i]], "expected_scores": [int(v) for v in gold_b.scores[i]]}
            for i in range(n) if int(cls[i]) != int(gold_b.classes[i]) or list(sc[i]) != list(gold_b.scores[i])]
        out["loaded_differs"] = int(np.sum(gold_b.classes != gold.classes) + np.sum(gold_b.scores != gold.scores))
    return out


@cocotb.test()
async def link(dut):
    with open(os.environ["BNN_SIM_CONFIG"]) as f:
        cfg = json.load(f)
    net = load(cfg["net_dir"])
    values = np.load(cfg["values"])
    gold = infer(net, values, return_layers=True, backend="numpy")
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    t = PinTransport(dut, cfg["divisor"], read_cycles=cfg["divisor"] * 10 * 64)
    result = await bridge(_host)(t, cfg, gold, values, net)
    result["cycles"] = int(cocotb.utils.get_sim_time("ns")) // PERIOD_NS
    with open(cfg["results"] + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(cfg["results"] + ".tmp", cfg["results"])
    assert result["info_ok"], f"INFO answered {result['info']}"
    assert not result["mismatches"], f"{len(result['mismatches'])} mismatches, the first {result['mismatches'][0]}"
    failed = [c for c in result["checks"] if not c["ok"]]
    assert not failed, f"bad frames not answered as they should be: {failed}"
    if cfg.get("load_net"):
        assert result["loaded_info_ok"], "INFO does not report the loaded network"
        assert not result["loaded_mismatches"], (f"after loading, {len(result['loaded_mismatches'])} mismatches, "
                                                 f"the first {result['loaded_mismatches'][0]}")
