r"""The trend model's paths combined, on long series, with a damped trend (ETS).

Where a series has at least ``MIN_ETS`` full-year readings, every second path's
future — the years after the series' last full-year reading — comes from a
damped-trend ETS fitted to that series alone (:class:`models.ets.ETS`), the other paths
from the hierarchical model: an equal-weight mixture of the two predictive
distributions,

.. math::  p(y \mid \text{data}) = \tfrac12\, p_\text{hier}(y) + \tfrac12\, p_\text{ETS}(y).

Why.  The hierarchical model's growth deviations fade at a rate φ that the data hardly
inform (its posterior is its prior for most groups), so where a series' growth slowed
the model returns to the series' long-run pace within about three years.  A damped
trend estimates from the series itself how much of its recent pace lasts.  On the
back-test's long national series ETS beat the hierarchical model at every horizon
(docs/backtest, 2026-11-26).  Equal weights are the classic forecast combination —
not fitted to the back-test — and the CRPS is convex in the forecast distribution, so
on every point the mixture scores no worse than the mean of its two parts' scores.
Series shorter than ``MIN_ETS`` full years (most of a city's) keep the hierarchical
paths unchanged; their ``model`` label stays ``hierarchical``, a mixed series reads
``hierarchical+ets``.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .ets import ETS, MIN_ETS

COMBINED = "hierarchical+ets"


def combine_with_ets(paths: xr.DataArray, panel, seed: int = 0, ets: ETS | None = None) -> xr.DataArray:
    """``paths`` (draw, series, year) with the odd draws' future years replaced by ETS
    draws on every series ETS can fit.  ETS draws come from a stream keyed by the
    series (as the hierarchical draws are), so a series' paths do not depend on what
    else is in the call.  ``ets``: an ETS model kept between calls, so each series is
    fitted once (:meth:`models.ets.ETS.extend`)."""
    keys = [k for k in map(str, paths.series.values) if panel.info(k).n_years >= MIN_ETS]
    if not keys or paths.sizes["draw"] < 2:
        return paths
    ets = (ets if ets is not None else ETS()).extend(panel, keys)
    keys = [k for k in keys if k in ets.fits]
    if not keys:
        return paths
    years = paths.year.values
    pe = ets.sample_posterior_predictive(years, draws=paths.sizes["draw"], seed=seed, keys=keys)
    out = paths.values.copy()
    model = np.array(paths.model.values, dtype=object)
    order = {k: j for j, k in enumerate(map(str, paths.series.values))}
    for k in keys:
        j = order[k]
        future = years > ets.fits[k][1]
        if not future.any():
            continue
        out[1::2, j, future] = pe.sel(series=k).values[1::2][:, future]
        model[j] = COMBINED
    return paths.copy(data=out).assign_coords(model=("series", model.astype(str)))
