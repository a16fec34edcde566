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
    from .plan import collector_banks, engine_banks
    from .stages import cycle_model_unit
    D = plan.depth
    driver = _Driver(plan.in_beats)
    units, prev = [driver], None       # prev: the feature-map stream the next window reads
    producer = None                    # what writes the next engine's buffer
    engines = []
    for k, f in enumerate(plan.layers):
        eng = _Engine(f, engine_banks(plan, f), D)
        if f.window is not None:
            if prev is None:
                prev = _RowUnpacker(f.window.width)
                prev.src = driver
                driver.sink = prev
                units.append(prev)
            writer, reader = _WindowWriter(f.window, f.simd), _WindowReader(f.window, f.sf)
            writer.src, writer.reader, reader.writer, reader.engine = prev, reader, writer, eng
            prev.sink = writer
            units += [writer, reader]
            producer = reader
        elif k == 0:
            producer = _InputStage(plan.in_beats)
            producer.src, producer.engine = driver, eng
            driver.sink = producer
            units.append(producer)
        else:
            producer = engines[-1]
        eng.producer = producer
        if f.window is None and k > 0:
            engines[-1].consumer = eng
        units.append(eng)
        engines.append(eng)
        prev = None
        if f.window is not None and f.kind == "hidden":
            col = _PixelCollector(collector_banks(plan, f))
            col.engine = eng
            units.append(col)
            prev = col
            for stage in f.pools:
                unit = cycle_model_unit(stage)
                unit.src, prev.sink = prev, unit
                units.append(unit)
                prev = unit
            eng.consumer = col
    out = _Output(plan.out_depth)
    out.engine = engines[-1]
    engines[-1].consumer = out
    units.append(out)
    return units, driver, out


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
