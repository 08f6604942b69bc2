"""Target judgement: from sample paths to P(met), categories and likelihood words.

Pure functions on arrays (draw × year), so the rules can be tested on small fixed
path sets.  Measures (DESIGN.md §3):

* ``level`` — the value in the target year;
* ``cumulative`` — the sum of the flow over the window (observed years enter as observed);
* ``increment`` — value at the window's end minus the value at the baseline year;
* ``relative`` — own value minus the other place's value in the same draw; the target is the margin.
"""
from __future__ import annotations

import numpy as np

OPS = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}

# Category cut-offs (stated in outputs and README): already reached → 提前实现;
# otherwise by probability of reaching the target.
CATEGORY_CUTS = [(0.9, "快于预期", "ahead of schedule"), (0.5, "基本符合预期", "on track"),
                 (-1.0, "滞后", "lagging")]
REACHED = ("提前实现", "already reached")
# a target whose year (or whole window) the published data cover: the plan is over for it
ACHIEVED = ("已实现", "achieved")
MISSED = ("未实现", "missed")
NOT_EVALUABLE = ("无法评估", "not evaluable")

# IPCC AR5/AR6 calibrated likelihood language (Mastrandrea et al. 2010), zh as in the IPCC Chinese reports.
LIKELIHOOD = [(0.99, "几乎确定", "virtually certain"), (0.90, "很可能", "very likely"), (0.66, "可能", "likely"),
              (0.33, "或许可能", "about as likely as not"), (0.10, "不太可能", "unlikely"),
              (0.01, "很不可能", "very unlikely"), (-1.0, "极不可能", "exceptionally unlikely")]


def metric(measure: str, x: np.ndarray, years, *, target_year: int, window=None, baseline_year=None,
           observed: dict | None = None, other: np.ndarray | None = None) -> np.ndarray:
    """Per-draw value of the quantity the target is about.

    ``x``: (draw, year) natural-scale paths; ``observed``: {year: value} full-year
    readings that replace simulated values (a flow already reported is not uncertain).
    """
    years = list(years)
    observed = observed or {}

    def col(y):
        if y in observed:
            return np.full(x.shape[0], float(observed[y]))
        return x[:, years.index(y)]

    if measure == "level":
        return col(target_year)
    if measure == "cumulative":
        return sum(col(y) for y in range(window[0], window[1] + 1))
    if measure == "increment":
        return col(window[1]) - col(baseline_year)
    if measure == "relative":
        return col(target_year) - other[:, years.index(target_year)]
    raise ValueError(measure)


def met(values: np.ndarray, target: float, comparator: str = ">=") -> np.ndarray:
    return OPS[comparator](values, target)


def probability(hits: np.ndarray, n_eff: float | None = None) -> tuple[float, float]:
    """P(met) and its Monte Carlo standard error √(p(1−p)/n_eff).

    The paths come from a limited number of posterior draws that are themselves
    autocorrelated, so the error is that of ``n_eff`` independent draws — the
    posterior's effective sample size when it is smaller than the number of paths."""
    n = hits.size if n_eff is None else max(1.0, min(float(n_eff), hits.size))
    p = float(hits.mean())
    return p, float(np.sqrt(max(p * (1 - p), 0.0) / n))


def batch_means_se(values: np.ndarray, order: np.ndarray, n_batches: int | None = None) -> float:
    r"""Monte Carlo standard error of ``values.mean()`` by batch means.

    ``order`` sorts the paths by the posterior draw each was built from (chain by
    chain, draw by draw).  Paths that share a posterior draw, or use neighbouring
    draws of one chain, are correlated; cut into :math:`B` consecutive batches of
    :math:`b` paths, the batch means are nearly independent once a batch spans more
    draws than the chain's autocorrelation time, and

    .. math:: \widehat{\mathrm{se}} = \sqrt{\frac{1}{B(B-1)}\sum_k (\bar h_k - \bar h)^2}.

    :math:`B = \lfloor\sqrt n\rfloor` batches (Flegal & Jones 2010), so both the
    batch length and the number of batches grow with n.  Paths left over after the
    last full batch are dropped from the error only."""
    v = np.asarray(values, dtype=float)[np.asarray(order)]
    n = v.size
    B = int(n_batches or np.floor(np.sqrt(n)))
    if B < 2 or n < 2 * B:
        return float("nan")
    b = n // B
    means = v[: B * b].reshape(B, b).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(B))


def likelihood_words(p: float) -> tuple[str, str]:
    for cut, zh, en in LIKELIHOOD:
        if p >= cut:
            return zh, en
    return LIKELIHOOD[-1][1:]


def category(p: float | None, already: bool, finished: bool = False) -> tuple[str, str]:
    """提前实现 for a target already reached before its year; 已实现 / 未实现 once the data
    cover the target year (``finished``); otherwise by probability."""
    if finished and p is not None and p == p:
        return ACHIEVED if p >= 0.5 else MISSED
    if already:
        return REACHED
    if p is None or p != p:
        return NOT_EVALUABLE
    for cut, zh, en in CATEGORY_CUTS:
        if p >= cut:
            return zh, en
    return CATEGORY_CUTS[-1][1:]


def progress_ratio(baseline, latest, target, baseline_year, latest_year, target_year):
    """“时间过半、任务过半”: share of the baseline→target distance covered ÷ share of time elapsed.
    ≥ 1 means on or ahead of the straight path."""
    if None in (baseline, latest, target, latest_year, baseline_year) or target == baseline or latest_year <= baseline_year:
        return None
    covered = (latest - baseline) / (target - baseline)
    elapsed = (latest_year - baseline_year) / (target_year - baseline_year)
    return float(covered / elapsed)


def required_growth(latest, target, latest_year, target_year):
    """Annual growth needed from the latest value to the target (compound)."""
    if latest is None or latest <= 0 or target is None or target <= 0 or target_year <= latest_year:
        return None
    return float((target / latest) ** (1 / (target_year - latest_year)) - 1)


def recent_growth(values_by_year: dict):
    """Compound annual growth between the first and last full readings."""
    ys = sorted(values_by_year)
    if len(ys) < 2 or values_by_year[ys[0]] <= 0:
        return None
    return float((values_by_year[ys[-1]] / values_by_year[ys[0]]) ** (1 / (ys[-1] - ys[0])) - 1)
