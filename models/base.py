"""One interface for every forecaster (DESIGN.md §4).

A forecaster is fitted on a :class:`~models.panel.Panel` and returns sample paths on
the natural scale as an ``xarray.DataArray`` with dimensions ``(draw, series, year)``
and per-series coordinates ``basis``, ``n_years`` and ``model``.  Models that cannot
forecast a series (too short for ETS, say) leave it out and say why in
``refusals`` — they never fail the whole run.
"""
from __future__ import annotations

import hashlib

import numpy as np
import xarray as xr

from .panel import Panel
from .transforms import apply_floors, finish_paths, inverse


def stable_seed(text: str) -> int:
    """A seed from a name, the same in every Python process (``hash`` is salted): random
    streams keyed by series or target, so a result never depends on what else is in a run."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class ModelRefusal(Exception):
    """A model declines a series (e.g. too short); the message says why."""


class Forecaster:
    name = "base"

    def __init__(self):
        self.panel: Panel | None = None
        self.refusals: dict[str, str] = {}

    def fit(self, panel: Panel, **kwargs) -> "Forecaster":
        raise NotImplementedError

    def sample_posterior_predictive(self, years, draws: int = 1000, seed: int = 0) -> xr.DataArray:
        raise NotImplementedError

    # helpers shared by the models -------------------------------------------------
    def _wrap(self, z: np.ndarray, keys: list[str], years, seed: int = 0) -> xr.DataArray:
        """Transformed-scale draws (draw, series, year) → natural-scale DataArray; counts
        drawn as counts from a stream keyed by the series (independent of the others)."""
        years = np.asarray(list(years), dtype=int)
        out = np.empty_like(z)
        for j, key in enumerate(keys):
            info = self.panel.info(key)
            x = inverse(z[:, j, :], info.kind, info.bounds)
            start = int(np.searchsorted(years, np.floor(info.last_year))) if info.last_year == info.last_year else 0
            floor = info.last_value if info.last_value == info.last_value else None
            rng = np.random.default_rng([seed, stable_seed(key), 1]) if info.kind == "count" else None
            out[:, j, :] = apply_floors(finish_paths(x, info.kind, info.monotone, floor, start, rng), years,
                                        info.floors, info.monotone)
        infos = [self.panel.info(k) for k in keys]
        return xr.DataArray(
            out, dims=("draw", "series", "year"),
            coords={"draw": np.arange(out.shape[0]), "series": keys, "year": years,
                    "basis": ("series", [i.basis for i in infos]),
                    "n_years": ("series", [i.n_years for i in infos]),
                    "model": ("series", [self.name] * len(keys))},
            name="paths")
