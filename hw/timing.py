"""The timing model: cycles per image, the initiation interval and the latency of a plan's
accelerator, exact to the cycle (a closed form for an MLP; hw/cycles.py's model of the
control for a CNN). Pure Python, no Amaranth."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

from .plan import Plan

__all__ = ["Timing", "timing", "bounds"]


@dataclass(frozen=True)
class Timing:
    """Cycle counts of the accelerator.

    Attributes
    ----------
    cycles : list of int, per layer NF * SF
    ii : Fraction, the initiation interval: average cycles between images in steady state
        with inputs back to back and the output always ready
    latency : int, cycles from the first input beat's acceptance to the result's valid
    exact : bool, ``ii`` is the RTL's to the cycle (else an estimate); ``latency`` always is
    period, steady_from : int or None; for a CNN, the steady state repeats every ``period``
        results from result ``steady_from`` on (the mean over any whole number of periods
        from there is ``ii``); None for an MLP, whose period divides 1, ``banks`` and
        ``out_depth`` from the third result on, and for a CNN whose model found no period
    """
    cycles: tuple
    ii: Fraction
    latency: int
    exact: bool = True
    period: int | None = None
    steady_from: int | None = None

    @property
    def bottleneck(self) -> int:
        return max(self.cycles)


def timing(plan: Plan) -> Timing:
    """The analytical model of the RTL in hw/accelerator.py.

    Stages: the input stage (one beat per cycle), one engine per layer, the arg-max and the
    output FIFO. An engine starts an image (its first issue is the cycle after) when its input
    image is complete and a bank of its consumer is free; it issues one (NF, SF) word per cycle
    and its consumer sees the image complete ``plan.depth`` cycles after its last issue. A
    consumer frees its bank at its last issue, visible the cycle after.

    Throughput: each stage alone takes C cycles per image; a producer p and its consumer c with
    B banks form a loop of B images that takes C_p + D + 1 + C_c cycles (fill, then drain).
    The initiation interval is the largest cycle mean: max(C_k, (C_p + D + 1 + C_c) / B, ...).
    """
    D = plan.depth
    B = plan.banks
    cyc = tuple(l.cycles for l in plan.layers)
    if plan.convolutional or any(l.window is not None for l in plan.layers):
        return _conv_timing(plan)
    # (cycles per image, delay from the last issue to the consumer seeing the image complete);
    # the input stage's image is complete the cycle after its last beat.
    stages = [(plan.in_beats, 0)] + [(c, D) for c in cyc]
    ii = Fraction(max(c for c, _ in stages))
    for (cp, dp), (cc, _) in zip(stages, stages[1:]):
        # producer starts -> ... -> consumer's last issue -> bank free the cycle after
        ii = max(ii, Fraction(cp + dp + cc + 1, B))
    # output loop: the last engine takes a FIFO credit when it starts an image, and gets it back
    # the cycle after the result leaves: start, C issues, written into the FIFO D - 1 cycles
    # after the last issue, valid the cycle after, popped, credit visible the cycle after.
    ii = max(ii, Fraction(cyc[-1] + D + 1, plan.out_depth))
    # one image through the empty pipeline, from its first beat's acceptance (cycle 0) to the
    # cycle its result is valid: the input is complete after in_beats cycles; each engine then
    # takes C + D cycles (start, C issues, D to its consumer: the next buffer or the FIFO).
    latency = plan.in_beats + sum(c + D for c in cyc)
    return Timing(cyc, ii, latency)


@functools.lru_cache(maxsize=32)
def _conv_timing(plan: Plan) -> Timing:
    """A CNN's window units, collectors and pools make no closed form: the cycle model of
    hw/cycles.py runs the design's control until it repeats (a few images; seconds for
    FINN's CNV). The latency is exact; the interval is when the model finds the period
    within its budget of images (a layer slightly faster than the bottleneck fills its
    buffers over hundreds of images before the state repeats), else the mean of the
    intervals it saw."""
    from .cycles import simulate
    run = simulate(plan)
    return Timing(tuple(l.cycles for l in plan.layers), run.ii, run.latency, run.period is not None,
                  run.period, run.steady_from)


def bounds(plan: Plan, interval: float, device_bandwidth_cycles: float) -> dict:
    """What limits a design's interval, in cycles per image: each layer's engine (one weight
    word per cycle: its NF x SF x positions), the input stream (a beat per cycle; a
    convolutional network's row unpacker hands its first window one pixel per cycle), and,
    for the device rather than the design, its block RAMs' read bandwidth. ``binding`` names the
    design's largest; ``efficiency`` is that bound over the measured interval."""
    layers = [{"layer": f.index, "cycles": f.cycles} for f in plan.layers]
    first = plan.layers[0]
    inputs = first.window.height * first.window.width if plan.convolutional else plan.in_beats
    slowest = max(layers, key=lambda l: l["cycles"])
    binding = ("input", inputs) if inputs > slowest["cycles"] else (f"layer {slowest['layer']}", slowest["cycles"])
    return {"layers": layers, "input_cycles": inputs, "device_bandwidth_cycles": device_bandwidth_cycles,
            "binding": binding[0], "binding_cycles": binding[1], "efficiency": round(binding[1] / interval, 3)}
