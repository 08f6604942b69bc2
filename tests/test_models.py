"""Forecasters: invariants on the shipped data, refusals, and recovery of known parameters."""
import numpy as np
import pytest

from models import CAGR, ETS, ARIMADrift, HierarchicalGrowth, LastValue, LinearTrend, Panel
from models.transforms import finish_paths, forward, inverse

YEARS = range(2015, 2027)


def test_transforms_round_trip():
    v = np.array([0.5, 3.0, 1200.0])
    np.testing.assert_allclose(inverse(forward(v, "stock"), "stock"), v)
    p = np.array([1.0, 50.0, 99.0])
    np.testing.assert_allclose(inverse(forward(p, "percent", (0, 100)), "percent", (0, 100)), p)


def test_finish_paths_integers_and_running_totals():
    x = np.array([[3.4, 2.6, 4.7, 4.2]])
    out = finish_paths(x, "count", monotone=True, floor_value=3, start=1)
    assert out.tolist() == [[3, 3, 5, 5]]


@pytest.mark.slow
def test_shipped_paths_obey_their_kind(registry, shipped_fit):
    paths = shipped_fit.sample_posterior_predictive(YEARS, draws=500, seed=3)
    for key in paths.series.values:
        info = shipped_fit.panel.info(key)
        x = paths.sel(series=key).values
        if info.kind == "count":
            assert np.all(x == np.rint(x)), key               # never 4.7 alliances
        if info.monotone and info.last_year == info.last_year:
            start = list(YEARS).index(int(np.floor(info.last_year))) if int(np.floor(info.last_year)) in YEARS else 0
            assert np.all(np.diff(x[:, start:], axis=1) >= 0), key   # running totals never fall
            if info.last_value == info.last_value:   # a series read only before a year end has no full value
                assert np.all(x[:, start:] >= info.last_value - 1e-9), key
            for year, value, onward in info.floors:  # …but its part-year reading is a floor
                cols = [j for j, y in enumerate(YEARS) if (y >= year if onward else y == year)]
                assert np.all(x[:, cols] >= value - 1e-9), key
        if info.bounds:
            assert x.min() >= info.bounds[0] and x.max() <= info.bounds[1], key


@pytest.mark.slow
def test_same_seed_same_draws(shipped_fit):
    a = shipped_fit.sample_posterior_predictive(YEARS, draws=200, seed=11)
    b = shipped_fit.sample_posterior_predictive(YEARS, draws=200, seed=11)
    c = shipped_fit.sample_posterior_predictive(YEARS, draws=200, seed=12)
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


@pytest.mark.slow
def test_cached_posterior_is_reused(registry, shipped_fit):
    again = HierarchicalGrowth().fit(Panel.from_registry(registry))
    assert again.from_cache and again.cache_path == shipped_fit.cache_path and again.cache_path.exists()
    x = again.sample_posterior_predictive(YEARS, draws=50, seed=1)
    y = shipped_fit.sample_posterior_predictive(YEARS, draws=50, seed=1)
    np.testing.assert_allclose(x.values, y.values)


@pytest.mark.slow
def test_city_with_only_a_baseline_borrows_the_national_trend(shipped_fit):
    """Wuxi has one high-value-patent reading; its growth follows China's, not a flat prior."""
    mu = shipped_fit.idata.posterior["mu_series"]
    wuxi = float(mu.sel(series="wuxi:hv_invention_per10k").mean())
    china = float(mu.sel(series="china:hv_invention_per10k").mean())
    assert shipped_fit.panel.info("wuxi:hv_invention_per10k").basis == "prior-only"
    assert china > 0.1 and abs(wuxi - china) < 0.05


def test_naive_baselines_and_refusals(registry):
    panel = Panel.from_registry(registry, keys=["china:hv_invention_per10k", "wuxi:hv_invention_per10k"])
    cagr = CAGR().fit(panel)
    assert "wuxi:hv_invention_per10k" in cagr.refusals           # one reading: no growth to extrapolate
    p = cagr.sample_posterior_predictive([2025, 2026], draws=5)
    x = p.sel(series="china:hv_invention_per10k").values
    assert np.all(x == x[0])                                      # degenerate: every draw the same
    assert x[0, 0] == pytest.approx(16.0, rel=0.01)               # 2025 reading carried by the line
    last = LastValue().fit(panel).sample_posterior_predictive([2030], draws=2)
    assert last.sel(series="wuxi:hv_invention_per10k").values[0, 0] == pytest.approx(24, rel=0.01)
    lin = LinearTrend().fit(panel).sample_posterior_predictive([2026], draws=1)
    assert lin.sel(series="china:hv_invention_per10k").item() > 16


def test_ets_and_arima_refuse_short_series_and_simulate_long_ones(registry):
    panel = Panel.from_registry(registry, keys=["china:ip_protection_satisfaction", "wuxi:pct_applications"])
    ets = ETS().fit(panel)
    assert "wuxi:pct_applications" in ets.refusals and "needs" in ets.refusals["wuxi:pct_applications"]
    paths = ets.sample_posterior_predictive([2024, 2026], draws=300, seed=2)
    x = paths.sel(series="china:ip_protection_satisfaction").values
    assert 0 <= x.min() and x.max() <= 100 and x[:, 1].std() > 0
    ar = ARIMADrift().fit(panel)
    y = ar.sample_posterior_predictive([2026], draws=300, seed=2).sel(series="china:ip_protection_satisfaction").values
    assert y.std() > 0


# ------------------------------------------------------------------ recovery
from models.synthetic import synthetic_panel  # noqa: E402


@pytest.mark.slow
def test_recovery_of_known_growth_and_forecast_coverage(tmp_path):
    """Two synthetic panels (96 series, 288 held-out points) so that the coverage
    estimates have a binomial sd of about 0.03 (growth) and 0.025 (forecasts)."""
    covered, inside = [], []
    for seed in (5, 7):
        panel, truth, held = synthetic_panel(seed)
        assert len(panel.series) >= 40
        assert 1 <= panel.points.groupby("s").size().min() and panel.points.groupby("s").size().max() <= 8
        fit = HierarchicalGrowth(draws=500, tune=500, cache_dir=tmp_path, seed=3).fit(panel)
        mu = fit.idata.posterior["mu_series"]
        lo, hi = mu.quantile(0.05, dim=("chain", "draw")), mu.quantile(0.95, dim=("chain", "draw"))
        covered += [float(lo.sel(series=k)) <= v <= float(hi.sel(series=k)) for k, v in truth.items()]
        paths = fit.sample_posterior_predictive([2023, 2024, 2025], draws=2000, seed=4)
        for key, y, v in held:
            x = paths.sel(series=key, year=y).values
            inside.append(np.quantile(x, 0.1) <= v <= np.quantile(x, 0.9))
    # 90 % intervals of the series growth means should cover the truth for 80–97 % of series
    assert 0.80 <= np.mean(covered) <= 0.97, np.mean(covered)
    # 80 % forecast intervals for held-out years should cover 70–90 % of held-out points
    assert 0.70 <= np.mean(inside) <= 0.90, np.mean(inside)


@pytest.mark.slow
def test_a_single_series_panel_fits(registry, tmp_path):
    """A user panel may hold one series (regression: length-1 states broke the scan)."""
    o = registry.observations
    k = "wuxi:pct_applications"
    panel = Panel.from_frame(o[(o.jurisdiction + ":" + o.series) == k], registry.series, registry.jurisdictions)
    fit = HierarchicalGrowth(cache_dir=tmp_path, draws=200, tune=200).fit(panel)
    x = fit.sample_posterior_predictive([2024, 2026], draws=100, seed=1).sel(series=k).values
    assert x.shape == (100, 2) and np.allclose(np.median(x[:, 0]), 763, rtol=0.05)


def test_back_cast_of_a_running_total_never_exceeds_a_later_year():
    # issue 12 item 9: [160 (back-cast), 150 (last reading), 152, 155] gave 新增 = −5
    from models.transforms import finish_paths

    x = np.array([[160.0, 150.0, 152.0, 155.0]])
    out = finish_paths(x, "stock", monotone=True, floor_value=150.0, start=1)
    assert out.tolist() == [[150.0, 150.0, 152.0, 155.0]]
    assert out[0, -1] - out[0, 0] >= 0
    # a stock that is not a running total may have been higher before
    assert finish_paths(x, "stock", monotone=False, start=1).tolist() == x.tolist()


def test_part_year_readings_floor_the_paths(registry):
    # issue 12 item 7: a year-to-date amount floors that year's total; a running total
    # read before the year end floors that year end and every later one
    import pandas as pd

    from models.panel import Panel
    from models.transforms import apply_floors

    obs = pd.DataFrame([
        dict(jurisdiction="wuxi", series="pct_applications", year=2024, value=2000.0, period="m1-m9",
             reliability="official", lower_bound=False),
        dict(jurisdiction="wuxi", series="works_registrations_cumulative", year=2024, value=400.0, period="end-m9",
             reliability="official", lower_bound=False)])
    panel = Panel.from_frame(obs, registry.series, registry.jurisdictions)
    assert panel.info("wuxi:pct_applications").floors == [(2024, 2000.0, False)]
    assert panel.info("wuxi:works_registrations_cumulative").floors == [(2024, 400.0, True)]
    years = [2023, 2024, 2025, 2026]
    flow = apply_floors(np.array([[1500.0, 1800.0, 1900.0, 2100.0]]), years, [(2024, 2000.0, False)], False)
    assert flow.tolist() == [[1500.0, 2000.0, 1900.0, 2100.0]]       # only that year's total
    stock = apply_floors(np.array([[350.0, 380.0, 390.0, 420.0]]), years, [(2024, 400.0, True)], True)
    assert stock.tolist() == [[350.0, 400.0, 400.0, 420.0]]          # that year end and after
