"""Copies of a slow check, sampled: the same check on several devices of one family (or
several block-RAM cells, or every experiment's tiny run) proves little more per run than a few
of them, and each copy costs CI minutes, more with every feature. ``rotate`` keeps every copy
as a test; all but the day's are skipped (every copy runs within a few days), unless
BNN_EVERY_PART=1 runs them all."""

from __future__ import annotations

import datetime
import os

import pytest

__all__ = ["rotate"]


def rotate(params: list, ids=None, per_day: int = 1) -> list:
    """``params`` for ``pytest.mark.parametrize``: the day's ``per_day`` of them as they are,
    the others skipped; over ``len(params) / per_day`` days every one runs."""
    if os.environ.get("BNN_EVERY_PART") == "1":
        return list(params)
    n = len(params)
    today = {(datetime.date.today().toordinal() * per_day + j) % n for j in range(per_day)}
    reason = f"sampled: {per_day} of these {n} copies run a day (BNN_EVERY_PART=1 runs them all)"
    out = []
    for k, p in enumerate(params):
        values = p if isinstance(p, tuple) else (p,)
        out.append(pytest.param(*values, id=ids[k] if ids else None,
                                marks=() if k in today else pytest.mark.skip(reason=reason)))
    return out
