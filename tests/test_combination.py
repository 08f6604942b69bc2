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


def test_the_kept_ets_state_draws_what_statsmodels_simulate_draws():
    # ETSState repeats ETSResults.simulate's arithmetic; held to the last bit on random
    # series of 6–16 years, after the trip through the JSON file it is kept in
    import json
    import warnings

    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    from models.ets import ETSState

    rng = np.random.default_rng(5)
    for trial in range(40):
        n = int(rng.integers(6, 17))
        y = np.cumsum(rng.normal(rng.normal(0.1, 0.1), rng.uniform(0.01, 0.3), n)) + rng.normal(0, 5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ETSModel(y, error="add", trend="add", damped_trend=True).fit(disp=False)
            want = np.asarray(res.simulate(5, repetitions=200, anchor="end", rng=np.random.default_rng(trial)))
        state = ETSState.from_dict(json.loads(json.dumps(ETSState.from_results(res).to_dict())))
        got = state.simulate(5, repetitions=200, anchor="end", rng=np.random.default_rng(trial))
        assert np.array_equal(got, want), trial


def test_an_ets_fit_is_kept_on_disk_and_a_damaged_one_is_refitted_with_one_warning(parts, tmp_path, monkeypatch,
                                                                                 capsys):
    import json

    import statsmodels.tsa.exponential_smoothing.ets as sm_ets

    panel, keys, _ = parts
    first = ETS(cache_dir=tmp_path).fit(panel, keys=keys)
    files = sorted((tmp_path / "ets").glob("*.json"))
    assert len(files) == len(first.fits) > 0
    want = first.sample_posterior_predictive(YEARS, draws=200, seed=3)

    def no_fit(*args, **kwargs):
        raise AssertionError("refitted although the fit is on disk")

    with monkeypatch.context() as mp:
        mp.setattr(sm_ets, "ETSModel", no_fit)
        again = ETS(cache_dir=tmp_path).fit(panel, keys=keys)
        assert again.refusals == first.refusals
        assert np.array_equal(again.sample_posterior_predictive(YEARS, draws=200, seed=3).values, want.values)

    capsys.readouterr()
    files[0].write_text(files[0].read_text()[:40])  # a truncated entry
    third = ETS(cache_dir=tmp_path).fit(panel, keys=keys)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: cached ETS fit {files[0].name} is damaged")
    assert np.array_equal(third.sample_posterior_predictive(YEARS, draws=200, seed=3).values, want.values)
    assert json.loads(files[0].read_text())["endog"]  # written again, whole
