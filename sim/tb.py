"""cocotb bench of the generated accelerator (``bnn_top``), for Verilator, Icarus and GHDL.

One ``TB`` class owns the clock, the reset, a driver of the image stream, a monitor of the
result stream, the reference (``bnncore.golden``, imported, never re-implemented) and a
scoreboard that compares results in order and reports the first mismatch with the image
index, expected and actual class and scores, and the golden per-layer activations.

The bench reads everything it needs from a JSON file named by ``BNN_SIM_CONFIG`` (written by
``bnncore.sim.runner``): ``rtl.json`` for the ports and the timing model, the export
directory of the network whose ROM files the simulator loaded, the input bits, and the
stimulus (input gaps, output backpressure, seed). It writes its measurements to the file the
config names. The Python side wakes per beat and per result, not per cycle, when there are
no gaps and no backpressure: that is what makes 10,000 images through a large network fast.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, SimTimeoutError, with_timeout

from bnncore.exports import load
from bnncore.golden import infer
from bnncore.hw.design import RtlDesign
from bnncore.hw.layout import input_words
from bnncore.sim.scoreboard import budget_cycles, compare, decode, interval, timing_failures, watchdog_failure

PERIOD_NS = 10


def _config() -> dict:
    with open(os.environ["BNN_SIM_CONFIG"]) as f:
        return json.load(f)


class TB:
    def __init__(self, dut, cfg: dict):
        self.dut, self.cfg = dut, cfg
        self.log = logging.getLogger("bnn.tb")
        with open(cfg["rtl_json"]) as f:
            self.info = RtlDesign.from_json(json.load(f), cfg["rtl_json"])
        sep = "__" if cfg["lang"] == "verilog" else "_"
        self.i_payload = getattr(dut, f"i_stream{sep}payload")
        self.i_valid = getattr(dut, f"i_stream{sep}valid")
        self.i_ready = getattr(dut, f"i_stream{sep}ready")
        self.o_payload = getattr(dut, f"o_stream{sep}payload")
        self.o_valid = getattr(dut, f"o_stream{sep}valid")
        self.o_ready = getattr(dut, f"o_stream{sep}ready")
        self.width, self.beats, self.value_bits = self.info.in_width, self.info.in_beats, self.info.in_value_bits
        self.class_bits, self.score_bits = self.info.class_bits, self.info.score_bits
        self.n_classes = self.info.topology[-1]
        self.net = load(cfg["net_dir"])
        self.bits = np.load(cfg["bits"])
        # the reference: the NumPy backend, the readable definition (a one-off batch here, where
        # compiling the Numba kernels in the simulator process would cost more than it saves)
        self.gold = infer(self.net, self.bits, return_layers=True, backend="numpy")
        self.rng = random.Random(cfg.get("seed", 0))
        self.t_in, self.t_out, self.results = [], [], []
        self.cycle0 = 0
        self._reported = 0.0

    def report_progress(self, total: int, force: bool = False):
        """Write "done total" to the config's progress file, at most twice a second: the runner
        polls it for the progress bar, whatever the simulator does with stdout."""
        path = self.cfg.get("progress")
        now = time.monotonic()
        if path and (force or now - self._reported >= 0.5):
            self._reported = now
            with open(path + ".tmp", "w") as f:
                f.write(f"{len(self.results)} {total}\n")
            os.replace(path + ".tmp", path)

    # --- clock and reset
    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
        self.i_valid.value = 0
        self.o_ready.value = 0
        await self.reset()

    async def reset(self, cycles: int = 2):
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def now(self) -> int:
        return int(round(cocotb.utils.get_sim_time("ns"))) // PERIOD_NS

    # --- driver: image beats, with random idle gaps if asked
    def words(self, image: np.ndarray) -> list:
        return input_words(image[None], self.width, self.beats, self.value_bits)[0]

    async def drive(self, first: int, last: int, gap: float):
        clk = self.dut.clk
        for n in range(first, last):
            for b, word in enumerate(self.words(self.bits[n])):
                while gap and self.rng.random() < gap:
                    self.i_valid.value = 0
                    await RisingEdge(clk)
                self.i_payload.value = word
                self.i_valid.value = 1
                while True:
                    await RisingEdge(clk)
                    if self.i_ready.value:                  # sampled at the edge: transferred
                        break
                    if not gap:                             # sleep until ready rises, no per-cycle wakeups
                        await RisingEdge(self.i_ready)
                if b == 0:
                    self.t_in.append(self.now())
        self.i_valid.value = 0

    # --- monitor: results, with random backpressure if asked
    async def monitor(self, count: int, stall: float):
        clk = self.dut.clk
        self.o_ready.value = 1
        while len(self.results) < count:
            if stall:
                self.o_ready.value = int(self.rng.random() >= stall)
            await RisingEdge(clk)
            if self.o_valid.value and self.o_ready.value:
                self.t_out.append(self.now())
                self.results.append(int(self.o_payload.value))
                self.report_progress(count, force=len(self.results) == count)
            elif not stall and not self.o_valid.value:
                await RisingEdge(self.o_valid)

    def decode(self, payload: int):
        return decode(payload, self.class_bits, self.score_bits, self.n_classes)

    # --- scoreboard
    def score(self, first: int = 0) -> dict:
        result = compare([self.decode(p) for p in self.results], first, self.gold.classes, self.gold.scores,
                         lambda n: [a[n] for a in self.gold.activations])
        bad = result["first_mismatch"]
        if bad is not None:
            n = bad["image"]
            self.log.error("image %d: expected class %d scores %s, got class %d scores %s; golden "
                           "activations per layer: %s", n, bad["expected_class"], bad["expected_scores"],
                           bad["actual_class"], bad["actual_scores"],
                           ["".join(map(str, a[n])) for a in self.gold.activations])
        return result


async def run_stream(tb, first: int, last: int, gap: float, stall: float) -> list:
    """Drive images first..last-1 and collect their results under the watchdog; return the
    failures (empty, or the watchdog's finding: the image the design stopped at)."""
    budget = budget_cycles(tb.info, last - first, gap, stall)
    drv = cocotb.start_soon(tb.drive(first, last, gap))
    mon = cocotb.start_soon(tb.monitor(last - first, stall))
    try:
        await with_timeout(mon, budget * PERIOD_NS, "ns")
    except SimTimeoutError:
        drv.cancel()
        mon.cancel()
        stuck = first + len(tb.results)
        return [watchdog_failure(stuck, len(tb.results), last - first, len(tb.t_in), budget)]
    await drv
    return []


def _write(cfg, result):
    with open(cfg["results"], "w") as f:
        json.dump(result, f, indent=2)


@cocotb.test()
async def stream(dut):
    """All images back to back (with the configured gaps and backpressure); every result
    compared with the golden model; latency and initiation interval measured."""
    cfg = _config()
    tb = TB(dut, cfg)
    await tb.start()
    n = len(tb.bits)
    t0 = time.perf_counter()
    cycle0 = tb.now()
    stuck = await run_stream(tb, 0, n, cfg.get("gap", 0.0), cfg.get("stall", 0.0))
    wall = time.perf_counter() - t0
    result = tb.score()
    if stuck:
        result.update({"images": n, "failures": stuck})
        _write(cfg, result)
        assert False, stuck[0]
    labels = cfg.get("labels")
    classes = [tb.decode(p)[0] for p in tb.results]
    result.update({
        "images": n, "cycles": tb.now() - cycle0, "wall_s": wall,
        "latency": tb.t_out[0] - tb.t_in[0] if tb.t_out else None,
        "accuracy": float(np.mean(np.array(classes) == np.load(labels))) if labels else None,
        "golden_accuracy": float(np.mean(tb.gold.classes == np.load(labels))) if labels else None,
    })
    result["ii"] = interval(tb.t_out)
    back_to_back = not cfg.get("gap") and not cfg.get("stall")
    # beside the mismatches, which the result counts itself
    failures = timing_failures(tb.info.timing, tb.t_in, tb.t_out) if back_to_back else []
    result["failures"] = failures
    _write(cfg, result)
    assert not failures and not result["mismatches"], "; ".join(
        failures + [f"{result['mismatches']} mismatches; first: {result['first_mismatch']}"] * bool(result["mismatches"]))


@cocotb.test()
async def reset_mid_stream(dut):
    """Reset while images are in flight (a result waiting, the pipeline busy), then feed again
    from an image boundary: the results after the reset are exactly the golden ones."""
    cfg = _config()
    tb = TB(dut, cfg)
    await tb.start()
    n = len(tb.bits)
    resume = n // 2
    tb.o_ready.value = 0                                      # let results pile up
    driver = cocotb.start_soon(tb.drive(0, resume, 0.0))
    for _ in range(tb.info.latency + 3 * tb.info.cycles_per_image):
        await RisingEdge(dut.clk)
    driver.cancel()
    tb.i_valid.value = 0
    await FallingEdge(dut.clk)
    await tb.reset(1)
    tb.results.clear(), tb.t_in.clear(), tb.t_out.clear()
    stuck = await run_stream(tb, resume, n, 0.0, cfg.get("stall", 0.0))
    result = tb.score(first=resume)
    result["images"] = n - resume
    result["failures"] = stuck
    _write(cfg, result)
    assert not stuck, stuck[0]
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatches after reset; first: {result['first_mismatch']}"
