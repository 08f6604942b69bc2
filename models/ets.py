"""statsmodels forecasters on the transformed scale, with simulated paths.

* ``ets`` — additive errors, additive damped trend (Holt damped), fitted per series
  with at least ``MIN_ETS`` annual readings;
* ``arima`` — ARIMA(0,1,0) with drift (random walk with drift), at least ``MIN_ARIMA``.

Both use full-year readings only (partial years and totals are not annual values)
and refuse shorter series with a clear reason.  Paths are simulated by statsmodels
(``simulate``), so their spread is the model's own.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .base import Forecaster, ModelRefusal, stable_seed
from .panel import Panel

MIN_ETS = 6
MIN_ARIMA = 4


class _StatsmodelsForecaster(Forecaster):
    min_points = 4

    def fit(self, panel: Panel, keys=None, **kwargs):
        """Fit every series of ``panel`` (or only ``keys``) that is long enough."""
        self.panel = panel
        self.fits = {}
        wanted = None if keys is None else set(keys)
        for s, info in enumerate(panel.series):
            if wanted is not None and info.key not in wanted:
                continue
            g = panel.points[(panel.points.s == s)]
            g = g[np.isclose(g.t, g.t.round())].copy()
            g["year"] = g.t.round().astype(int)
            g = g.groupby("year").z.mean()
            try:
                if len(g) < self.min_points:
                    raise ModelRefusal(f"{self.name} needs ≥ {self.min_points} full-year readings; {info.key} has {len(g)}")
                full = g.reindex(range(g.index.min(), g.index.max() + 1))
                if full.isna().any():
                    full = full.interpolate()  # a gap year: a straight line on the transformed scale
                self.fits[info.key] = (self._fit(full), int(full.index.max()))
            except ModelRefusal as exc:
                self.refusals[info.key] = str(exc)
            except Exception as exc:  # statsmodels' own failures become refusals, not crashes
                self.refusals[info.key] = f"{self.name} failed on {info.key}: {type(exc).__name__}"
        return self

    def extend(self, panel: Panel, keys) -> "_StatsmodelsForecaster":
        """Fit the ``keys`` not yet tried on ``panel``, keeping earlier fits and refusals:
        a model drawn from again and again (a scenario sweep, the back-test's plan
        cases) fits each series once.  A different panel starts afresh."""
        if self.panel is not panel:
            return self.fit(panel, keys=keys)
        todo = [k for k in keys if k not in self.fits and k not in self.refusals]
        if todo:
            more = type(self)().fit(panel, keys=todo)
            self.fits.update(more.fits)
            self.refusals.update(more.refusals)
        return self

    def sample_posterior_predictive(self, years, draws: int = 1000, seed: int = 0, keys=None) -> xr.DataArray:
        keys = [k for k in (keys if keys is not None else self.panel.keys) if k in self.fits]
        years = np.asarray(list(years), dtype=int)
        z = np.empty((draws, len(keys), len(years)))
        for j, k in enumerate(keys):
            # a stream per series (apart from the trend model's streams of that series):
            # its paths do not depend on what else is drawn
            rng = np.random.default_rng([seed, stable_seed(k), 2])
            res, last = self.fits[k]
            hist = pd.Series(res.model.endog.ravel() if hasattr(res.model, "endog") else res.data.endog,
                             index=range(last - len(res.model.endog) + 1, last + 1))
            h = max(0, int(years.max()) - last)
            sims = self._simulate(res, h, draws, rng) if h else np.zeros((0, draws))
            for n, y in enumerate(years):
                if y <= last:
                    z[:, j, n] = hist.get(y, hist.iloc[0])
                else:
                    z[:, j, n] = sims[y - last - 1]
        return self._wrap(z, keys, years)

    def _simulate(self, res, h, draws, rng):
        """(h, draws) simulated future values from the end of the sample (both models)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = res.simulate(h, repetitions=draws, anchor="end", rng=np.random.default_rng(rng.integers(2**31)))
        return np.asarray(out).reshape(h, draws)


class ETS(_StatsmodelsForecaster):
    name = "ets"
    min_points = MIN_ETS

    def _fit(self, y: pd.Series):
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = ETSModel(y.to_numpy(), error="add", trend="add", damped_trend=True)
            return mod.fit(disp=False)


class ARIMADrift(_StatsmodelsForecaster):
    name = "arima"
    min_points = MIN_ARIMA

    def _fit(self, y: pd.Series):
        from statsmodels.tsa.arima.model import ARIMA

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ARIMA(y.to_numpy(), order=(0, 1, 0), trend="t").fit()
