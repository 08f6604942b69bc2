"""Naive baselines that evaluators use today, behind the same interface.

They exist to be beaten in the back-test and to be shown beside the probability.
Their paths are **degenerate**: every draw is the same line, so a target is judged
"met" with probability 0 or 1 — exactly how a traffic-light tracker reads them.

* ``cagr`` — compound annual growth between the first and last full reading,
  extrapolated (Eurostat / Open SDG progress measure);
* ``linear`` — ordinary least-squares line through the full readings (natural scale);
* ``last`` — the last reading carried forward.

A series with fewer readings than a method needs is refused with the reason.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .base import Forecaster, ModelRefusal
from .panel import Panel
from .transforms import inverse


class _Naive(Forecaster):
    min_points = 1

    def fit(self, panel: Panel, **kwargs):
        self.panel = panel
        self.lines = {}
        for s, info in enumerate(panel.series):
            g = panel.points[panel.points.s == s].sort_values("t")
            x = inverse(g.z.to_numpy(), info.kind, info.bounds)
            t = g.t.to_numpy()
            try:
                if len(g) < self.min_points or (len(g) > 1 and t[-1] == t[0] and self.min_points > 1):
                    raise ModelRefusal(f"{self.name} needs at least {self.min_points} readings; {info.key} has {len(g)}")
                self.lines[info.key] = self._line(t, x)
            except ModelRefusal as exc:
                self.refusals[info.key] = str(exc)
        return self

    def sample_posterior_predictive(self, years, draws: int = 1000, seed: int = 0, keys=None) -> xr.DataArray:
        keys = [k for k in (keys if keys is not None else self.panel.keys) if k in self.lines]
        years = np.asarray(list(years), dtype=float)
        x = np.stack([self.lines[k](years) for k in keys], axis=0) if keys else np.zeros((0, len(years)))
        z = np.empty((draws, len(keys), len(years)))
        for j, k in enumerate(keys):
            info = self.panel.info(k)
            from .transforms import forward

            z[:, j, :] = forward(np.maximum(x[j], 0), info.kind, info.bounds)
        return self._wrap(z, keys, years.astype(int))


class CAGR(_Naive):
    name = "cagr"
    min_points = 2

    def _line(self, t, x):
        span = t[-1] - t[0]
        if span <= 0 or x[0] <= 0:
            raise ModelRefusal(f"cagr needs two readings in different years with a positive first value")
        g = (x[-1] / x[0]) ** (1 / span)
        return lambda yrs: x[-1] * g ** (yrs - t[-1])


class LinearTrend(_Naive):
    name = "linear"
    min_points = 2

    def _line(self, t, x):
        if np.ptp(t) == 0:
            raise ModelRefusal("linear needs readings in two different years")
        b, a = np.polyfit(t, x, 1)
        return lambda yrs: a + b * yrs


class LastValue(_Naive):
    name = "last"
    min_points = 1

    def _line(self, t, x):
        return lambda yrs: np.full_like(yrs, x[-1], dtype=float)
