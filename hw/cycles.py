"""Cycle model of the accelerator's control: the exact latency and initiation interval of a
design, without simulating its data.

Each unit of hw/accelerator.py (input stage or row unpacker, window writer and reader,
engine, pixel collector, max-pool, output FIFO) is modelled by its control registers and
the handshakes between them, as the RTL computes them cycle by cycle. Every handshake
signal of the RTL (valid, ready, space) is a function of its unit's registers, so a cycle
is two phases: each unit's signals from its registers, then each unit's decisions (accept,
claim, pop) from its own and its neighbours' signals, then every register's next value.

A unit that is only counting (an engine issuing the words of a window, a window reader
handing out a window, a window writer writing a wide pixel) tells how many cycles it will
go on doing so; when every unit is counting or waiting, the model skips to the next cycle
where one of them acts. An image then costs a few steps per window and per pixel instead of
one per unit and cycle.

The bench drives images back to back and takes every result at once (``sim/tb.py`` without
gaps or stalls). The model runs until the state of every unit at a result repeats one at an
earlier result: the design is then periodic, and the interval is exact.
"""

from fractions import Fraction
from typing import NamedTuple

from .cycle_units import (INF, MaxPoolUnit, Unit, _Driver, _Engine, _InputStage, _Output, _PixelCollector,
                          _RowUnpacker, _WindowReader, _WindowWriter)

__all__ = ["simulate", "CycleRun", "Unit", "MaxPoolUnit", "INF"]


def _build(plan):
    """The units of ``plan``'s accelerator, in hw/accelerator.py's order, wired."""
    from .plan import engine_banks
    from .units import build, drain, feed
    driver = _Driver(plan.in_beats)
    units, src = [driver], driver        # src: what the next layer's feed reads (hw/units.py)
    for f in plan.layers:
        eng = _Engine(f, engine_banks(plan, f), plan.depth)
        build(feed(f).cycle_unit, plan, f, eng, src, units)
        units.append(eng)
        src = build(drain(f).cycle_unit, plan, f, eng, units)
    return units, driver, src


# --- feeds and drains (hw/units.py) -------------------------------------------------------------

def feed_words(plan, fold, eng, driver, units):
    stage = _InputStage(plan.in_beats)
    stage.src, stage.engine, driver.sink = driver, eng, stage
    eng.producer = stage
    units.append(stage)


def feed_vector(plan, fold, eng, src, units):
    eng.producer, src.consumer = src, eng


def feed_map(plan, fold, eng, src, units):
    if isinstance(src, _Driver):         # the input map, a row per beat
        rows = _RowUnpacker(fold.window.width)
        rows.src, src.sink = src, rows
        units.append(rows)
        src = rows
    writer, reader = _WindowWriter(fold.window, fold.simd), _WindowReader(fold.window, fold.sf)
    writer.src, writer.reader, reader.writer, reader.engine = src, reader, writer, eng
    src.sink = writer
    eng.producer = reader
    units += [writer, reader]


def drain_vector(plan, fold, eng, units):
    return eng


def drain_map(plan, fold, eng, units):
    from .plan import collector_banks
    from .stages import cycle_model_unit
    col = _PixelCollector(collector_banks(plan, fold))
    col.engine, eng.consumer = eng, col
    units.append(col)
    prev = col
    for stage in fold.pools:
        unit = cycle_model_unit(stage)
        unit.src, prev.sink = prev, unit
        units.append(unit)
        prev = unit
    return prev


def drain_scores(plan, fold, eng, units):
    out = _Output(plan.out_depth)
    out.engine, eng.consumer = eng, out
    units.append(out)
    return out


class CycleRun(NamedTuple):
    """What ``simulate`` found: the interval (exact when ``period`` is not None: the mean over
    a period of the steady state, which repeats every ``period`` results from result
    ``steady_from`` on; otherwise the mean of the last results' intervals), and the exact
    latency of the first image."""
    ii: Fraction
    latency: int
    period: int | None
    steady_from: int | None


def _overrides(units, name):
    return [getattr(u, name) for u in units if getattr(type(u), name) is not getattr(Unit, name)]


def simulate(plan, max_images: int = 48) -> CycleRun:
    """Run ``plan``'s accelerator with images back to back and the output always ready until
    its state at a result repeats its state at an earlier result, or ``max_images`` results."""
    units, driver, out = _build(plan)
    signals, decide = _overrides(units, "signals"), _overrides(units, "decide")
    events, skips = [u.next_event for u in units], _overrides(units, "skip")
    ticks = _overrides(units, "tick")
    seen = {}
    c = 0
    limit = (max_images + 2) * (sum(f.cycles for f in plan.layers) + 64 * plan.in_beats + 1000)
    t_out = out.t_out
    while c < limit:
        for f in signals:
            f(c)
        for f in decide:
            f(c)
        t = INF
        for f in events:
            e = f(c)
            if e < t:
                t = e
                if e == c:
                    break
        if t > c:
            if t == INF:
                raise RuntimeError(f"cycle model: the design waits forever at cycle {c}")
            for f in skips:
                f(t - c)
            c = t
            continue
        n_out = len(t_out)
        for f in ticks:
            f(c)
        if len(t_out) > n_out:
            key = tuple(u.state(c) for u in units)
            k = len(t_out) - 1
            if key in seen:
                j = seen[key]
                return CycleRun(Fraction(t_out[k] - t_out[j], k - j), t_out[0] - driver.t_in[0], k - j, j)
            seen[key] = k
            if k + 1 >= max_images:
                break
        c += 1
    if len(t_out) < 2:
        raise RuntimeError(f"cycle model: {len(t_out)} results in {c} cycles")
    half = len(t_out) // 2
    return CycleRun(Fraction(t_out[-1] - t_out[half], len(t_out) - 1 - half), t_out[0] - driver.t_in[0], None, None)
