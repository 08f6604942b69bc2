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
    """Process-noise group: series of one group share their deviation scales.  Shares
    (percent) and survey scores move differently — a share of GDP creeps, a
    satisfaction score jumps with a survey's redesign — so each has its own."""
    return {"flow": "flow", "stock": "stock", "ratio": "stock", "count": "count",
            "percent": "percent", "score": "score"}[kind]


GROUPS = ["flow", "stock", "count", "percent", "score"]


def finish_paths(x: np.ndarray, kind: str, monotone: bool, floor_value: float | None = None,
                 start: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Natural-scale paths (…, year): integers for counts, running totals never fall.

    From year index ``start`` (the last observed year) on, a running total may not
    fall below ``floor_value`` (what has already been counted) nor below any earlier
    year of the same path; before ``start`` (a back-cast), no year may exceed a later one.

    Counts, given ``rng``, are drawn as counts: the model's path is the *expected*
    number, and units arrive as a Poisson process — a running count is its last
    reading plus Poisson new units with mean the path's rise since that reading
    (never negative); any other count is Poisson around the path.  Rounding the path instead
    turned a list of 0 (modelled as 0.5, the continuity correction) into 1 on every
    upward draw: "新增 ≥ 1 from 0" got P ≈ 0.5–0.84 by artefact.
    """
    x = np.array(x, dtype=float)
    if kind == "count" and rng is not None:
        x = _count_process(x, monotone, floor_value, start, rng)
    elif kind == "count":
        x = np.maximum(np.rint(x), 0)
    if monotone:
        tail = x[..., start:]
        if floor_value is not None:
            tail = np.maximum(tail, floor_value)
        x[..., start:] = np.maximum.accumulate(tail, axis=-1)
        # a back-cast before the last reading obeys the running-total rule too: a year
        # cannot hold more than any later year (else "新增" from an unobserved baseline
        # year could come out negative: [160, 150 (read), 152, 155] → increment −5)
        head = x[..., : start + 1]
        x[..., : start + 1] = np.minimum.accumulate(head[..., ::-1], axis=-1)[..., ::-1]
    return x


def _count_process(x, monotone, floor_value, start, rng):
    x = np.maximum(x, 0.0)
    if not monotone:
        return rng.poisson(x).astype(float)
    out = np.maximum(np.rint(x), 0)          # back-cast years: rounded, then the head rule
    n0 = float(floor_value) if floor_value is not None else np.rint(x[..., start])
    n0 = np.broadcast_to(n0, x.shape[:-1])
    # expected new units: the path's rise above its own value at the last reading (not
    # above the reading: a 0 sits at 0.5 on the path, and that half is no unit)
    lam = np.maximum.accumulate(np.maximum(x[..., start:] - x[..., start:start + 1], 0.0), axis=-1)
    inc = np.diff(lam, axis=-1, prepend=0.0)
    out[..., start:] = n0[..., None] + np.cumsum(rng.poisson(inc), axis=-1)
    return out


def apply_floors(x: np.ndarray, years, floors, monotone: bool) -> np.ndarray:
    """Part-year readings as floors (see :class:`models.panel.SeriesInfo`): a year's
    total is at least its year-to-date amount; a running total is at least what it
    read before the year end, that year and after."""
    if not floors:
        return x
    x = np.array(x, dtype=float)
    years = list(np.asarray(years).astype(int))
    for year, value, onward in floors:
        cols = [j for j, y in enumerate(years) if (y >= year if onward else y == year)]
        if cols:
            x[..., cols] = np.maximum(x[..., cols], value)
    if monotone:
        first = min((years.index(y) for y, _, _ in floors if y in years), default=None)
        if first is not None:
            x[..., first:] = np.maximum.accumulate(x[..., first:], axis=-1)
    return x
