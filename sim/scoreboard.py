"""What every bench does with the results it collected: decode the output payloads, compare
them with the golden model in order, and check the measured latency and interval against
``rtl.json``'s timing model. Shared by the cocotb bench (sim/tb.py) and the native Verilator
bench (sim/native.py), so that both judge a run the same way. Never imports cocotb.
"""

from __future__ import annotations

import numpy as np

#: Results over which the steady-state interval is measured (the last ones of a run).
II_WINDOW = 24


def decode(payload: int, class_bits: int, score_bits: int, n_classes: int) -> tuple:
    """(class, [score per class]) of one output payload."""
    cls = payload & ((1 << class_bits) - 1)
    scores = []
    for c in range(n_classes):
        s = (payload >> (class_bits + c * score_bits)) & ((1 << score_bits) - 1)
        scores.append(s - (1 << score_bits) if s >> (score_bits - 1) else s)
    return cls, scores


def compare(decoded: list, first: int, classes: np.ndarray, scores: np.ndarray, activations=None) -> dict:
    """Count the results (class, scores) of images first, first + 1, ... that differ from the
    golden model's ``classes`` and ``scores`` (indexed by image), and describe the first one.
    ``activations(n)``: the golden per-layer activations of image n, for that description."""
    mismatches, first_bad = 0, None
    for k, (cls, got) in enumerate(decoded):
        n = first + k
        exp_cls, exp_scores = int(classes[n]), scores[n].tolist()
        if cls != exp_cls or got != exp_scores:
            mismatches += 1
            if first_bad is None:
                first_bad = {"image": n, "expected_class": exp_cls, "actual_class": cls,
                             "expected_scores": exp_scores, "actual_scores": got}
                if activations is not None:
                    first_bad["golden_activations"] = [a.tolist() for a in activations(n)]
    return {"mismatches": mismatches, "first_mismatch": first_bad}


def interval(t_out: list) -> float | None:
    """The mean interval between the last ``II_WINDOW`` results (fewer in a short run)."""
    window = min(II_WINDOW, len(t_out) - 1)
    return (t_out[-1] - t_out[-1 - window]) / window if window >= 1 else None


def timing_failures(model: dict, t_in: list, t_out: list) -> list:
    """The ways a back-to-back run (no input gaps, no backpressure) of images whose first
    beats were taken at cycles ``t_in`` and whose results left at ``t_out`` disagrees with
    the timing model ``model`` (``rtl.json``'s ``timing``): the first image's latency, when
    the model says it is exact, and the interval over whole periods of the steady state."""
    failures = []
    n = len(t_out)
    if not n:
        return failures
    latency = t_out[0] - t_in[0]
    if model.get("latency_exact", model.get("exact", True)) and latency != model["latency"]:
        failures.append(f"latency {latency} cycles, the model says {model['latency']}")
    if model.get("exact", True):
        num, den = model["initiation_interval_fraction"]
        # over whole periods of the steady state (a CNN's model says which; an MLP's divides 24
        # from the third result on)
        period, start = model.get("period", 1), model.get("steady_from", 2)
        span = min(II_WINDOW, n - 1) // period * period
        if n > 30 and span and n - 1 - span >= start and (t_out[-1] - t_out[-1 - span]) * den != num * span:
            failures.append(f"initiation interval {(t_out[-1] - t_out[-1 - span]) / span} over the last "
                            f"{span} results, the model says {num / den}")
    return failures


def budget_cycles(info, n: int, gap: float, stall: float) -> int:
    """Cycles that ``n`` images may take before the watchdog calls the design stuck: four
    times what the timing model expects, with the input slowed by its gaps and the output by
    its backpressure, plus a margin. A correct design never comes near it."""
    per_image = max(info.interval, info.in_beats / (1 - gap)) / (1 - stall)
    return int(4 * (info.latency + n * per_image)) + 1000


def watchdog_failure(stuck: int, done: int, count: int, accepted: int, budget: int) -> str:
    return (f"watchdog: no result for image {stuck} ({done} of {count} images done, {accepted} accepted) after "
            f"{budget} cycles, 4x what the timing model allows; the design stopped producing results")
