"""Transforms by series kind (DESIGN.md §4).

log for stock/flow/ratio/count (growth rates are additive on the log scale);
logit within bounds for percent/score (a share cannot leave [0, 100]).  Counts are
modelled on the log scale and made integer when paths are drawn.
"""
from __future__ import annotations

import numpy as np

LOG_KINDS = {"stock", "flow", "ratio", "count"}
LOGIT_KINDS = {"percent", "score"}
# A count of 0 (a list that does not exist yet, 新标 → 0) has no log; half a unit is
# the usual continuity correction and keeps "0 → 70" a finite growth.
COUNT_FLOOR = 0.5
EPS = 1e-3


def forward(values, kind: str, bounds=None):
    v = np.asarray(values, dtype=float)
    if kind in LOG_KINDS:
        floor = COUNT_FLOOR if kind == "count" else EPS
        return np.log(np.maximum(v, floor))
    lo, hi = bounds if bounds else (0.0, 100.0)
    p = np.clip((v - lo) / (hi - lo), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def inverse(z, kind: str, bounds=None):
    z = np.asarray(z, dtype=float)
    if kind in LOG_KINDS:
        return np.exp(np.clip(z, -50, 50))
    lo, hi = bounds if bounds else (0.0, 100.0)
    return lo + (hi - lo) / (1 + np.exp(-z))


def group_of(kind: str) -> str:
    """Process-noise group: series of one group share a deviation scale."""
    return {"flow": "flow", "stock": "stock", "ratio": "stock", "count": "count",
            "percent": "bounded", "score": "bounded"}[kind]


GROUPS = ["flow", "stock", "count", "bounded"]


def finish_paths(x: np.ndarray, kind: str, monotone: bool, floor_value: float | None = None,
                 start: int = 0) -> np.ndarray:
    """Natural-scale paths (…, year): integers for counts, running totals never fall.

    From year index ``start`` (the last observed year) on, a running total may not
    fall below ``floor_value`` (what has already been counted) nor below any earlier
    year of the same path.  Years before ``start`` are left alone: a back-cast is not
    a running total the data has seen.
    """
    x = np.array(x, dtype=float)
    if kind == "count":
        x = np.maximum(np.rint(x), 0)
    if monotone:
        tail = x[..., start:]
        if floor_value is not None:
            tail = np.maximum(tail, floor_value)
        x[..., start:] = np.maximum.accumulate(tail, axis=-1)
    return x
