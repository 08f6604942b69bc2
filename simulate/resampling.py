"""How sure the back-test's accuracy figures are: a bootstrap over series.

The back-test scores the same series from several origins, and its horizon-5 figures
rest on a handful of series (three in the 2026-11-26 run).  Points of one series share
its history and its surprises, so treating them as independent would overstate what
the figures tell.  Resampling whole series with replacement (a cluster bootstrap)
keeps that dependence: a figure's interval is as wide as the series behind it allow.

A mean over points under a resample with weights :math:`w_s` (how often series
:math:`s` was drawn) is :math:`\\sum_s w_s S_s / \\sum_s w_s n_s`, with :math:`S_s`
the sum and :math:`n_s` the number of the series' points — one matrix product for
all resamples.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

REFERENCE = "hierarchical"
RULES = ("last", "cagr", "linear", "ets", "arima")
HORIZON_GROUPS = {"1": (1,), "2": (2,), "3": (3,), "4": (4,), "5": (5,), "1–2": (1, 2), "3–5": (3, 4, 5)}


def series_bootstrap(values, clusters, *, n_boot: int = 4000, level: float = 0.9, seed: int = 0):
    """(mean, lo, hi): the mean of ``values`` and its ``level`` percentile interval
    when whole ``clusters`` (e.g. series) are resampled with replacement."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        return np.nan, np.nan, np.nan
    codes, uniq = pd.factorize(pd.Series(clusters).astype(str))
    k = len(uniq)
    S = np.bincount(codes, weights=v, minlength=k)
    N = np.bincount(codes, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    W = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(float)
    num, den = W @ S, W @ N
    stats = num[den > 0] / den[den > 0]
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(v.mean()), float(lo), float(hi)


def accuracy_intervals(points: pd.DataFrame, *, level: float = 0.9, n_boot: int = 4000,
                       seed: int = 0) -> pd.DataFrame:
    """The reference model's 80 % coverage and its CRPS gain over each naive rule, by
    horizon and pooled horizons, each with a series-bootstrap interval.

    ``gain_vs_<rule>`` = mean of (rule's CRPS − model's CRPS) on the points both
    forecast: above 0 the model is better.  An interval that straddles 0 (or, for
    coverage, the 0.75–0.85 goal band) says the back-test cannot tell."""
    if not len(points) or REFERENCE not in set(points.model):
        return pd.DataFrame()
    key = ["origin", "series", "year"]
    ref = points[points.model == REFERENCE].set_index(key)
    crps_of = {rule: points[points.model == rule].set_index(key).crps for rule in RULES}
    rows = []
    for label, hs in HORIZON_GROUPS.items():
        r = ref[ref.horizon.isin(hs)]
        if not len(r):
            continue
        series = r.index.get_level_values("series")
        c, c_lo, c_hi = series_bootstrap(r.cover80.astype(float), series, n_boot=n_boot, level=level, seed=seed)
        row = dict(horizon=label, n=len(r), series=series.nunique(), cover80=c, cover80_lo=c_lo, cover80_hi=c_hi)
        for rule, other in crps_of.items():
            common = r.index.intersection(other.index)
            if not len(common):
                continue
            d = other[common].to_numpy() - r.crps[common].to_numpy()
            g, g_lo, g_hi = series_bootstrap(d, common.get_level_values("series"), n_boot=n_boot, level=level,
                                             seed=seed)
            row.update({f"gain_vs_{rule}": g, f"gain_vs_{rule}_lo": g_lo, f"gain_vs_{rule}_hi": g_hi})
        rows.append(row)
    return pd.DataFrame(rows)


def interval_table(intervals: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`accuracy_intervals` for reading: one column per figure, "value (lo…hi)"."""
    if not len(intervals):
        return intervals
    out = intervals[["horizon", "n", "series"]].copy()
    fmt = f"{{:.{digits}f}}"
    for col in [c for c in intervals.columns
                if c == "cover80" or (c.startswith("gain_vs_") and not c.endswith(("_lo", "_hi")))]:
        v, lo, hi = intervals[col], intervals[col + "_lo"], intervals[col + "_hi"]
        out[col] = [f"{fmt.format(a)} ({fmt.format(b)}…{fmt.format(c)})" if a == a else "—"
                    for a, b, c in zip(v, lo, hi)]
    return out
