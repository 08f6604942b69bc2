"""Proper scores for sample forecasts and probabilities (pure functions).

* interval coverage — is the truth inside the central ``level`` interval of the draws;
* CRPS from draws — :math:`\\mathrm{CRPS}(F, y) = E|X-y| - \\tfrac12 E|X-X'|`
  (Gneiting & Raftery 2007), exact for the empirical distribution of the draws; for
  a degenerate forecast (every draw equal, as the naive rules give) it is the absolute
  error, so point rules and distributions are scored on one scale;
* log score — minus the log density of the truth under a normal fitted to the draws
  on the transformed scale (log / logit), with the Jacobian, so it is a density on the
  natural scale; undefined (NaN) when the draws have no spread;
* Brier score and log loss of P(met) against the 0/1 outcome.

Lower is better for every score here except coverage.
"""
from __future__ import annotations

import numpy as np

LOG_LOSS_CLIP = 0.01  # a hard 0/1 call that is wrong would cost infinity; clipped as in most forecast contests


def interval_covers(draws: np.ndarray, y: float, level: float) -> bool:
    """Whether ``y`` lies in the central ``level`` interval of ``draws`` (inclusive)."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return bool(lo <= y <= hi)


def crps_sample(draws: np.ndarray, y: float) -> float:
    """CRPS of the empirical distribution of ``draws`` at ``y``.

    Uses the sorted-sample identity :math:`E|X-X'| = \\frac{2}{n^2}\\sum_i (2i-n-1)x_{(i)}`,
    O(n log n) instead of O(n²)."""
    x = np.sort(np.asarray(draws, dtype=float).ravel())
    n = x.size
    e_abs = np.abs(x - y).mean()
    i = np.arange(1, n + 1)
    e_pair = 2.0 / n ** 2 * np.sum((2 * i - n - 1) * x)
    return float(e_abs - 0.5 * e_pair)


def crps_normal(mu: float, sigma: float, y: float) -> float:
    """Closed-form CRPS of N(mu, sigma²) at y (used to check :func:`crps_sample`)."""
    from scipy.stats import norm

    w = (y - mu) / sigma
    return float(sigma * (w * (2 * norm.cdf(w) - 1) + 2 * norm.pdf(w) - 1 / np.sqrt(np.pi)))


def log_score(z_draws: np.ndarray, z_true: float, log_jacobian: float = 0.0) -> float:
    """−log density at the truth of a normal fitted to draws on the transformed scale.

    ``log_jacobian`` = log |dz/dy| at the truth (−log y for the log transform), which
    turns the density of z into the density of the natural-scale value."""
    z = np.asarray(z_draws, dtype=float).ravel()
    sd = z.std(ddof=1) if z.size > 1 else 0.0
    if not np.isfinite(z_true) or sd <= 1e-12 or not np.isfinite(sd):
        return float("nan")
    w = (z_true - z.mean()) / sd
    return float(0.5 * np.log(2 * np.pi) + np.log(sd) + 0.5 * w ** 2 - log_jacobian)


def brier(p, outcome) -> float:
    p = np.asarray(p, dtype=float); o = np.asarray(outcome, dtype=float)
    return float(np.mean((p - o) ** 2))


def log_loss(p, outcome, clip: float = LOG_LOSS_CLIP) -> float:
    p = np.clip(np.asarray(p, dtype=float), clip, 1 - clip); o = np.asarray(outcome, dtype=float)
    return float(-np.mean(o * np.log(p) + (1 - o) * np.log(1 - p)))
