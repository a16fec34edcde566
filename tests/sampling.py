"""Per-part copies of a slow check, sampled: the same check on several devices of one family
(or several block-RAM cells) proves little more per run than one of them, and each copy costs
CI minutes. ``rotate`` keeps every copy as a test; all but one are skipped, the one chosen by
the day (every copy runs within as many days as there are copies), unless BNN_EVERY_PART=1
runs them all (`make test SLOW=1 PYTEST_ARGS=...` with it set reproduces any day's choice)."""

from __future__ import annotations

import datetime
import os

import pytest

__all__ = ["rotate"]


def rotate(params: list, ids=None) -> list:
    """``params`` for ``pytest.mark.parametrize``: the day's one as is, the others skipped."""
    if os.environ.get("BNN_EVERY_PART") == "1":
        return list(params)
    today = datetime.date.today().toordinal() % len(params)
    reason = "sampled: one of these per-part copies runs a day (BNN_EVERY_PART=1 runs them all)"
    out = []
    for k, p in enumerate(params):
        values = p if isinstance(p, tuple) else (p,)
        out.append(pytest.param(*values, id=ids[k] if ids else None,
                                marks=() if k == today else pytest.mark.skip(reason=reason)))
    return out
