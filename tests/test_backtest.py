"""Scores against hand-computed values, and the back-test on a series with a known answer."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulate import scoring
from simulate.backtest import (by_history, growth_error, paired_crps, run_backtest, summarise_plans,
                               summarise_points, write_backtest)
from simulate.registry import Registry


def test_crps_of_two_point_sample_by_hand():
    # E|X−0| = 0.5; E|X−X'| over the four ordered pairs = (0+1+1+0)/4 = 0.5 → 0.5 − 0.25
    assert scoring.crps_sample(np.array([0.0, 1.0]), 0.0) == pytest.approx(0.25)
    assert scoring.crps_sample(np.array([0.0, 1.0]), 0.5) == pytest.approx(0.25)
    assert scoring.crps_sample(np.array([0.0, 1.0]), 3.0) == pytest.approx(2.5 - 0.25)


def test_crps_of_point_forecast_is_absolute_error():
    assert scoring.crps_sample(np.full(7, 3.0), 1.0) == pytest.approx(2.0)


def test_crps_normal_closed_form_and_sample_agree():
    # CRPS(N(0,1), 0) = 2φ(0) − 1/√π = 0.797885 − 0.564190
    assert scoring.crps_normal(0.0, 1.0, 0.0) == pytest.approx(0.233695, abs=1e-6)
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, 200_000)
    for y in (-2.0, 1.0, 4.5):
        assert scoring.crps_sample(x, y) == pytest.approx(scoring.crps_normal(1.0, 2.0, y), rel=0.01)


def test_crps_prefers_the_true_distribution():
    rng = np.random.default_rng(4)
    ys = rng.normal(0, 1, 400)
    good = rng.normal(0, 1, 4000)
    wide = rng.normal(0, 3, 4000)
    assert np.mean([scoring.crps_sample(good, y) for y in ys]) < np.mean([scoring.crps_sample(wide, y) for y in ys])


def test_interval_coverage_by_hand():
    draws = np.arange(0, 101, dtype=float)   # 80 % central interval = [10, 90]
    assert scoring.interval_covers(draws, 50, 0.8)
    assert scoring.interval_covers(draws, 10, 0.8)
    assert not scoring.interval_covers(draws, 5, 0.8)
    assert not scoring.interval_covers(draws, 95, 0.8)
    assert scoring.interval_covers(draws, 95, 0.95)


def test_coverage_of_calibrated_normal_is_nominal():
    rng = np.random.default_rng(5)
    draws = rng.normal(0, 1, 5000)
    ys = rng.normal(0, 1, 2000)
    cov = np.mean([scoring.interval_covers(draws, y, 0.8) for y in ys])
    assert 0.77 < cov < 0.83


def test_brier_and_log_loss_by_hand():
    assert scoring.brier([0.8, 0.3], [1, 0]) == pytest.approx((0.04 + 0.09) / 2)
    assert scoring.brier([1, 0], [0, 1]) == pytest.approx(1.0)
    assert scoring.log_loss([0.5], [1]) == pytest.approx(math.log(2))
    assert scoring.log_loss([0.0], [1]) == pytest.approx(-math.log(scoring.LOG_LOSS_CLIP))
    assert scoring.log_loss([0.9, 0.2], [1, 0]) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)


def test_log_score_by_hand():
    rng = np.random.default_rng(6)
    z = rng.normal(0, 1, 100_000)
    assert scoring.log_score(z, 0.0) == pytest.approx(0.5 * math.log(2 * math.pi), abs=0.01)
    # the Jacobian term moves the score by exactly −log|dz/dy|
    assert scoring.log_score(z, 0.0, log_jacobian=-math.log(5)) == pytest.approx(
        0.5 * math.log(2 * math.pi) + math.log(5), abs=0.01)
    assert math.isnan(scoring.log_score(np.full(10, 2.0), 2.0))


ROOT = Path(__file__).resolve().parents[1]


def _geometric(d):
    """The shipped registry plus one made-up series growing exactly 10 % a year (test data only)."""
    rows = [dict(jurisdiction="yixing", series="madrid_applications", year=y, value=round(100 * 1.1 ** (y - 2010), 6),
                 period="full", reliability="official", source="synthetic test series", note="", lower_bound="",
                 quote="") for y in range(2010, 2021)]
    path = d / "geo.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return Registry.load(ROOT, data_files=[path])


@pytest.fixture
def geometric_registry(tmp_path):
    return _geometric(tmp_path)


def test_backtest_scores_known_answers(geometric_registry):
    res = run_backtest(geometric_registry, models=["cagr", "last"], origins=[2015], plan_ids=[], draws=50)
    p = res.points[res.points.series == "yixing:madrid_applications"].set_index(["model", "horizon"])
    assert sorted(p.loc["cagr"].index) == [1, 2, 3, 4, 5]
    for h in range(1, 6):
        # CAGR reproduces a geometric series exactly; the last value misses by h·log 1.1
        assert p.loc[("cagr", h), "crps"] == pytest.approx(0.0, abs=1e-9)
        assert p.loc[("last", h), "crps"] == pytest.approx(h * math.log(1.1), rel=1e-6)
        assert not p.loc[("last", h), "cover80"]
    assert set(res.points.origin) == {2015}
    assert (res.points.year > 2015).all() and (res.points.year <= 2020).all()
    pc = paired_crps(res.points, reference="cagr")
    assert set(pc.model) == {"last"}


def test_backtest_never_sees_the_future(geometric_registry):
    """A value published after the origin must not change the forecast from that origin."""
    reg = geometric_registry
    res_a = run_backtest(reg, models=["cagr"], origins=[2015], plan_ids=[], draws=20)
    reg.observations.loc[(reg.observations.jurisdiction == "yixing") & (reg.observations.year == 2019), "value"] *= 3
    res_b = run_backtest(reg, models=["cagr"], origins=[2015], plan_ids=[], draws=20)
    a = res_a.points.set_index(["series", "year"])
    b = res_b.points.set_index(["series", "year"])
    pd.testing.assert_series_equal(a["median"], b["median"])
    assert b.loc[("yixing:madrid_applications", 2019), "truth"] == pytest.approx(
        3 * a.loc[("yixing:madrid_applications", 2019), "truth"])


def test_series_with_one_reading_are_scored_beside_the_headline(tmp_path):
    """A series with one reading by the origin (a plan's baseline, say) is forecast and
    scored — by the rules that can (last value) — and reported as thin history, while
    the headline tables keep the series with ≥ 3 readings, as before."""
    rows = [dict(jurisdiction="yixing", series="trademark_applications", year=y, value=round(100 * 1.2 ** (y - 2015), 6),
                 period="full", reliability="official", source="synthetic test series", note="", lower_bound="",
                 quote="") for y in range(2015, 2021)]          # made up: one reading by 2015, then +20 %/yr
    path = tmp_path / "thin.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    reg = Registry.load(ROOT, data_files=[path])
    res = run_backtest(reg, models=["cagr", "last"], origins=[2015], plan_ids=[], draws=20, reference=False)
    key = "yixing:trademark_applications"
    t = res.points[res.points.series == key]
    assert sorted(t[t.model == "last"].horizon) == [1, 2, 3, 4, 5]
    assert (t.n_years == 1).all() and (t.basis == "prior-only").all()
    for r in t[t.model == "last"].itertuples():
        assert r.crps == pytest.approx(r.horizon * math.log(1.2), rel=1e-6)
    # CAGR needs two readings: it refuses the series rather than scoring it
    assert "cagr" not in set(t.model)
    assert key in set(res.refusals[res.refusals.model == "cagr"].series)
    # the headline table is the established series' alone; thin + established = all
    est = res.points[res.points.n_years >= 3]
    assert len(est) and len(est) < len(res.points)
    pd.testing.assert_frame_equal(res.series_scores(), summarise_points(est))
    bh = by_history(res.points, summarise_points).set_index(["history", "model", "horizon"]).n
    for m in ("cagr", "last"):
        n = {h: bh.get((h, m, "all"), 0) for h in ("thin", "established", "all")}
        assert n["thin"] + n["established"] == n["all"] == (res.points.model == m).sum()
    assert bh[("thin", "last", "all")] >= 5
    # last value's growth error on this series is −log 1.2 a year at every horizon
    g = growth_error(t, model="last").set_index("basis")
    assert g.loc["prior-only", "growth_error"] == pytest.approx(-math.log(1.2), rel=1e-6)
    assert g.loc["prior-only", "n"] == 5 and set(g.index) == {"prior-only", "all"}
    text = (write_backtest(res, tmp_path / "out") / "report.md").read_text(encoding="utf-8")
    assert "Thin history" in text and "Growth error by basis" in text


def test_growth_error_by_basis_by_hand():
    """Mean of log(median / truth) / horizon by basis; a count of 0 has no log growth."""
    pts = pd.DataFrame([
        dict(model="hierarchical", series="a", basis="prior-only", horizon=1, truth=100.0, median=100 * math.exp(0.1)),
        dict(model="hierarchical", series="a", basis="prior-only", horizon=2, truth=100.0, median=100 * math.exp(0.2)),
        dict(model="hierarchical", series="b", basis="pooled", horizon=4, truth=50.0, median=50 * math.exp(-0.2)),
        dict(model="hierarchical", series="c", basis="data", horizon=1, truth=0.0, median=1.0),     # left out
        dict(model="last", series="a", basis="prior-only", horizon=1, truth=100.0, median=1.0),     # other model
    ]).assign(cover80=True, crps=0.1)
    g = growth_error(pts).set_index("basis")
    assert list(g.index) == ["prior-only", "pooled", "all"]
    assert g.loc["prior-only", "growth_error"] == pytest.approx(0.1)
    assert g.loc["pooled", "growth_error"] == pytest.approx(-0.05)
    assert g.loc["all", "growth_error"] == pytest.approx((0.1 + 0.1 - 0.05) / 3)
    assert g.loc["all", "n"] == 3 and g.loc["all", "series"] == 2
    # one series: every resample is that series, so the interval is the point
    assert g.loc["prior-only", "growth_error_lo"] == pytest.approx(0.1)
    assert g.loc["pooled", "growth_error_hi"] == pytest.approx(-0.05)
    lo, hi = g.loc["all", ["growth_error_lo", "growth_error_hi"]]
    assert lo <= g.loc["all", "growth_error"] <= hi and lo < hi


def test_plan_cases_scored_against_outcomes(registry, tmp_path):
    res = run_backtest(registry, models=["last"], origins=[2017], plan_ids=["china-2016"], draws=20)
    pc = res.plan_cases
    assert set(pc.model) == {"last", "progress-ratio"}
    assert set(pc.when) == {"start", "mid-term"}
    assert pc.met.isin([0, 1]).all()
    # the rule is unscored at the start (no reading after the baseline) and 0/1 at mid-term
    rule = pc[pc.model == "progress-ratio"]
    assert rule[rule.when == "start"].p_met.isna().all()
    assert rule[rule.when == "mid-term"].p_met.dropna().isin([0.0, 1.0]).all()
    s = summarise_plans(pc)
    for r in s.itertuples():
        g = pc[(pc.model == r.model) & ((pc.when == r.when) | (r.when == "all"))].dropna(subset=["p_met"])
        assert r.brier == pytest.approx(np.mean((g.p_met - g.met) ** 2))
    out = write_backtest(res, tmp_path)
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "CRPS" in text and "china-2016" in text
    assert not list(tmp_path.glob(".tmp-run-*"))


@pytest.mark.slow
def test_backtest_runs_the_hierarchical_model(registry):
    """The product path: a real NUTS fit on the data published by 2017, scored on 2018–2022
    (11 points from the shipped data: series with ≥ 3 readings by 2017 and later readings)."""
    res = run_backtest(registry, models=["hierarchical", "last"], origins=[2017], plan_ids=[], draws=400)
    h = res.points[res.points.model == "hierarchical"]
    assert len(h) >= 8 and h.crps.notna().all() and h.log_score.notna().all()
    assert set(h.year) <= set(range(2018, 2023))
    fit = next(f for f in res.fits if f["model"] == "hierarchical")
    assert fit["origin"] == 2017 and "max_r_hat" in fit
    # paired comparison exists for the naive rule on the same points
    pc = paired_crps(res.points)
    assert set(pc.model) == {"last"} and (pc.n > 0).all()


def test_leave_one_plan_out_calibration(registry):
    """Every reference case judged by a model that never saw its plan; the base rate is
    the other plans' share met (Beta(1, 1) mean), by hand; plan_scores names the rules."""
    from simulate.reference import fitting_cases, reference_cases

    res = run_backtest(registry, models=["last"], origins=[2017], plan_ids=["china-2016"], draws=200)
    cases = fitting_cases(reference_cases(registry))
    lo = res.lopo.set_index("case")
    assert set(lo.index) == set(cases.case)
    for plan, g in cases.groupby("plan"):
        rest = cases[cases.plan != plan]
        assert lo.loc[g.case, "p_base_rate"].to_numpy() == pytest.approx((rest.met.sum() + 1) / (len(rest) + 2))
    assert lo.p_outside.between(0.01, 0.99).all() and (lo.p_outside_lo <= lo.p_outside).all()
    ps = res.plan_scores()
    assert {"model", "when", "n", "brier", "log_loss"} <= set(ps.columns)
    names = set(ps.model)
    assert {"constant base rate (naive)", "reference class (outside view)", "joined (product: p_met)",
            "last value (naive rule)"} <= names
    for when in ("start", "mid-term"):
        row = ps[(ps.model == "joined (product: p_met)") & (ps.when == when)].iloc[0]
        assert row.n == len(cases) and np.isfinite(row.log_loss)
    # each leave-one-plan-out reference fit is listed with its diagnostics, by the rules
    ref_fits = [f for f in res.fits if f["model"] == "outside"]
    assert sorted(f["origin"] for f in ref_fits) == sorted(f"without {plan}" for plan in cases.plan.unique())
    for f in ref_fits:
        assert f["converged"] == (f["max_r_hat"] <= 1.01 and f["min_ess_bulk"] >= 400 and f["divergences"] == 0)
