"""models.combination: long series' paths are an equal mix of the trend model and a
damped trend (ETS); short series keep the trend model's paths."""
import numpy as np
import pytest

from models import get_forecaster
from models.combination import COMBINED, combine_with_ets
from models.ets import ETS
from models.synthetic import synthetic_panel

YEARS = np.arange(2016, 2027)


@pytest.fixture(scope="module")
def parts():
    # the province's series are read every year 2015–2022 (ETS fits them); the places'
    # series have 1–8 readings.  A straight-line forecaster stands in for the trend model.
    panel, _, _ = synthetic_panel(seed=4, n_codes=3, n_places=3, province=True)
    lin = get_forecaster("linear").fit(panel)
    keys = [k for k in panel.keys if k not in lin.refusals]
    base = lin.sample_posterior_predictive(YEARS, draws=400, seed=2, keys=keys)
    return panel, keys, base


def test_odd_paths_of_long_series_take_the_ets_future_the_rest_is_unchanged(parts):
    panel, keys, base = parts
    mixed = combine_with_ets(base, panel, seed=2)
    ets = ETS().fit(panel, keys=keys)
    long_ = [k for k in keys if k in ets.fits]
    short = [k for k in keys if k not in ets.fits]
    assert long_ and short
    pe = ets.sample_posterior_predictive(YEARS, draws=400, seed=2, keys=long_)
    for k in long_:
        fut = YEARS > ets.fits[k][1]
        m, b, e = (a.sel(series=k).values for a in (mixed, base, pe))
        assert fut.any()
        np.testing.assert_array_equal(m[::2], b[::2])                  # even paths: the trend model
        np.testing.assert_array_equal(m[1::2][:, ~fut], b[1::2][:, ~fut])  # history: the trend model
        np.testing.assert_array_equal(m[1::2][:, fut], e[1::2][:, fut])    # odd futures: ETS
        assert not np.array_equal(m[1::2][:, fut], b[1::2][:, fut])
        assert mixed.model.sel(series=k).item() == COMBINED
    for k in short:
        np.testing.assert_array_equal(mixed.sel(series=k).values, base.sel(series=k).values)
        assert mixed.model.sel(series=k).item() == "linear"


def test_a_series_mix_does_not_depend_on_the_other_series_in_the_call(parts):
    panel, keys, base = parts
    k = next(k for k in keys if k.startswith("prov:"))
    alone = combine_with_ets(base.sel(series=[k]), panel, seed=2)
    together = combine_with_ets(base, panel, seed=2)
    np.testing.assert_array_equal(alone.sel(series=k).values, together.sel(series=k).values)


def test_mixture_quantiles_lie_between_the_parts(parts):
    # an equal mixture's median lies between its parts' medians, year by year
    panel, keys, base = parts
    mixed = combine_with_ets(base, panel, seed=2)
    ets = ETS().fit(panel, keys=keys)
    for k in [k for k in keys if k in ets.fits]:
        fut = YEARS > ets.fits[k][1]
        m = np.median(mixed.sel(series=k).values[:, fut], axis=0)
        a = np.median(base.sel(series=k).values[::2][:, fut], axis=0)
        b = np.median(ets.sample_posterior_predictive(YEARS, draws=400, seed=2, keys=[k]).sel(series=k).values[1::2][:, fut],
                      axis=0)
        assert np.all(m >= np.minimum(a, b) - 1e-9) and np.all(m <= np.maximum(a, b) + 1e-9)


@pytest.mark.slow
def test_the_trend_model_mixes_its_long_series_only(shipped_fit):
    long_, short = "china:ip_protection_satisfaction", "wuxi:trademark_registrations"
    mixed = shipped_fit.sample_posterior_predictive(YEARS, draws=300, seed=5, keys=[long_, short])
    shipped_fit.combine_ets = False
    try:
        plain = shipped_fit.sample_posterior_predictive(YEARS, draws=300, seed=5, keys=[long_, short])
    finally:
        shipped_fit.combine_ets = True
    np.testing.assert_array_equal(mixed.sel(series=short).values, plain.sel(series=short).values)
    np.testing.assert_array_equal(mixed.sel(series=long_).values[::2], plain.sel(series=long_).values[::2])
    assert not np.array_equal(mixed.sel(series=long_).values[1::2], plain.sel(series=long_).values[1::2])
    assert list(mixed.model.values) == [COMBINED, "hierarchical"]


def test_a_kept_ets_model_fits_each_series_once_and_draws_the_same(parts):
    panel, keys, base = parts
    ets = ETS()
    first = combine_with_ets(base.sel(series=keys[:4]), panel, seed=2, ets=ets)
    fitted = dict(ets.fits)
    again = combine_with_ets(base, panel, seed=2, ets=ets)
    assert fitted and all(ets.fits[k] is fit for k, fit in fitted.items())   # not refitted
    fresh = combine_with_ets(base, panel, seed=2)
    np.testing.assert_array_equal(again.values, fresh.values)
    np.testing.assert_array_equal(first.values, fresh.sel(series=keys[:4]).values)
