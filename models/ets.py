"""statsmodels forecasters on the transformed scale, with simulated paths.

* ``ets`` — additive errors, additive damped trend (Holt damped), fitted per series
  with at least ``MIN_ETS`` annual readings;
* ``arima`` — ARIMA(0,1,0) with drift (random walk with drift), at least ``MIN_ARIMA``.

Both use full-year readings only (partial years and totals are not annual values)
and refuse shorter series with a clear reason.  Paths are simulated as statsmodels
simulates them (``simulate``), so their spread is the model's own.

An ETS fit is kept on disk (:class:`ETSState`, beside the cached posteriors): the trend
model's paths are combined with ETS on every long series (:mod:`models.combination`),
and a warm re-run would otherwise import statsmodels (≈ 1 s) and refit each series.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .base import Forecaster, ModelRefusal, stable_seed
from .panel import Panel
from .posterior_file import write_cache_entry

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
            more = self._fresh().fit(panel, keys=todo)
            self.fits.update(more.fits)
            self.refusals.update(more.refusals)
        return self

    def _fresh(self) -> "_StatsmodelsForecaster":
        return type(self)()

    def sample_posterior_predictive(self, years, draws: int = 1000, seed: int = 0, keys=None) -> xr.DataArray:
        keys = [k for k in (keys if keys is not None else self.panel.keys) if k in self.fits]
        years = np.asarray(list(years), dtype=int)
        z = np.empty((draws, len(keys), len(years)))
        for j, k in enumerate(keys):
            # a stream per series (apart from the trend model's streams of that series):
            # its paths do not depend on what else is drawn
            rng = np.random.default_rng([seed, stable_seed(k), 2])
            res, last = self.fits[k]
            endog = res.endog if isinstance(res, ETSState) else np.ravel(res.model.endog)
            hist = pd.Series(endog, index=range(last - len(endog) + 1, last + 1))
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


class ETSState:
    r"""A fitted ETS(A, Ad, N) — additive errors, additive damped trend, no season — kept
    as the numbers its ``simulate(anchor="end")`` reads, so paths can be drawn (and the
    fit kept on disk) without statsmodels:

    .. math::

        \hat y_{t} = \ell_{t-1} + \phi b_{t-1}, \quad y_t = \hat y_t + e_t, \quad
        \ell_t = \hat y_t + \alpha e_t, \quad b_t = \phi b_{t-1} + \beta e_t, \quad
        e_t \sim \mathcal N(0, \sigma^2).

    :meth:`simulate` repeats statsmodels 0.14–0.15's arithmetic operation for operation
    (``ETSResults.simulate``), so the same generator gives the same paths to the last
    bit; a test holds it to that against statsmodels itself."""

    def __init__(self, endog, alpha, beta_star, gamma_star, phi, m, states, scale):
        self.endog = np.asarray(endog, dtype=float)
        self.alpha, self.beta_star, self.gamma_star, self.phi = map(float, (alpha, beta_star, gamma_star, phi))
        self.m = int(m)
        self.states = np.asarray(states, dtype=float)
        self.scale = float(scale)

    @classmethod
    def from_results(cls, res) -> "ETSState":
        """The state statsmodels' ``simulate`` starts from at the end of the sample,
        taken the way it takes it (its private helpers, pinned by the test)."""
        from statsmodels.tsa.exponential_smoothing import _ets_smooth as smooth

        model = res.model
        if not (model.error == "add" and model.trend == "add" and model.damped_trend and model.seasonal is None):
            raise ValueError("ETSState holds additive-error damped-trend ETS without season only")
        start_params = res._get_prediction_params(res._get_prediction_start_index("end"))
        x = np.zeros((1, model._k_states_internal))
        alpha, beta_star, gamma_star, phi, m, _ = smooth._initialize_ets_smooth(
            start_params, x, np.zeros(len(start_params), dtype=np.int64), np.zeros_like(start_params))
        return cls(np.ravel(model.endog), alpha, beta_star, gamma_star, phi, m, x[-1], res.scale)

    def to_dict(self) -> dict:
        # floats through repr (json) round-trip exactly
        return dict(endog=self.endog.tolist(), alpha=self.alpha, beta_star=self.beta_star,
                    gamma_star=self.gamma_star, phi=self.phi, m=self.m, states=self.states.tolist(),
                    scale=self.scale)

    @classmethod
    def from_dict(cls, d: dict) -> "ETSState":
        return cls(**{k: d[k] for k in ("endog", "alpha", "beta_star", "gamma_star", "phi", "m", "states", "scale")})

    def simulate(self, nsimulations: int, repetitions: int = 1, anchor: str = "end", rng=None) -> np.ndarray:
        """(nsimulations, repetitions) future values, as ``ETSResults.simulate``."""
        if anchor != "end":
            raise ValueError("only anchor='end'")
        alpha, phi, m = self.alpha, self.phi, self.m
        beta = alpha * self.beta_star
        gamma = (1 - alpha) * self.gamma_star
        nstates = len(self.states)
        x = np.zeros((nsimulations, nstates))
        x[-1] = self.states
        x = np.tile(np.reshape(x, (nsimulations, nstates, 1)), repetitions)
        y = np.empty((nsimulations, repetitions))
        eps = rng.standard_normal((nsimulations, repetitions)) * np.sqrt(self.scale)
        mul_error, eta, kappa_l = False, 1, 1  # additive error, no season
        kappa_b = kappa_s = kappa_l
        for t in range(nsimulations):
            B = np.multiply(x[t - 1, 1, :], phi)
            L = np.add(x[t - 1, 0, :], B)
            S = x[t - 1, 2 + m - 1, :]
            Y = np.add(L, S)
            y[t, :] = Y + eta * eps[t, :]
            x[t, 0, :] = L + alpha * (mul_error * L + kappa_l) * eps[t, :]
            x[t, 1, :] = B + beta * (mul_error * B + kappa_b) * eps[t, :]
            x[t, 2, :] = S + gamma * (mul_error * S + kappa_s) * eps[t, :]
            x[t, 3:, :] = x[t - 1, 2:-1, :]
        return y


ETS_FORMAT = "ets-state-1"


@functools.cache
def _key_prefix() -> bytes:
    """What every cached ETS fit's key holds besides its series, once per process: the
    format, the statsmodels / SciPy / NumPy versions, and the code that fits and reduces
    it (as for the cached posteriors)."""
    from importlib.metadata import version

    versions = ";".join(f"{p}={version(p)}" for p in ("statsmodels", "scipy", "numpy"))
    code = inspect.getsource(ETS._fit) + inspect.getsource(ETSState.from_results)
    return f"{ETS_FORMAT};{versions};{code}".encode()


class ETS(_StatsmodelsForecaster):
    name = "ets"
    min_points = MIN_ETS

    def __init__(self, cache_dir: Path | None = None, use_cache: bool = True):
        super().__init__()
        self.cache_dir = cache_dir
        self.use_cache = use_cache

    def _fresh(self) -> "ETS":
        return ETS(self.cache_dir, self.use_cache)

    def _cache_file(self, y: np.ndarray) -> Path:
        from .hierarchical import default_cache_dir

        h = hashlib.sha256(_key_prefix() + np.ascontiguousarray(y, float).tobytes())
        return Path(self.cache_dir or default_cache_dir()) / "ets" / f"{h.hexdigest()[:24]}.json"

    def _fit(self, y: pd.Series) -> ETSState:
        # The fit is a deterministic function of the series and the libraries' versions,
        # so it is kept on disk under a hash of both.
        values = y.to_numpy(dtype=float)
        path = self._cache_file(values) if self.use_cache else None
        if path is not None and path.exists():
            try:
                state = ETSState.from_dict(json.loads(path.read_text(encoding="utf-8")))
                if np.array_equal(state.endog, values):
                    return state
                problem = "another series"
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"unreadable: {type(exc).__name__}"
            from .quiet import warn

            warn(f"warning: cached ETS fit {path.name} is damaged ({problem}); fitting it again")
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ETSModel(values, error="add", trend="add", damped_trend=True).fit(disp=False)
        state = ETSState.from_results(res)
        if path is not None:  # a read-only cache costs a refit next time, nothing else
            doc = json.dumps(state.to_dict())
            write_cache_entry(path, lambda tmp: tmp.write_text(doc, encoding="utf-8"))
        return state


class ARIMADrift(_StatsmodelsForecaster):
    name = "arima"
    min_points = MIN_ARIMA

    def _fit(self, y: pd.Series):
        from statsmodels.tsa.arima.model import ARIMA

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ARIMA(y.to_numpy(), order=(0, 1, 0), trend="t").fit()
