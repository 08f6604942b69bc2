"""Two views joined in runs: every readable target gets a probability; finished plans;
Monte Carlo error from the effective sample size; results independent of the other
plans in the run; the contradictory Suzhou reading re-read and refused by validate."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import get_forecaster
from models.panel import Panel
from simulate import judge
from simulate.engine import run_scenario
from simulate.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cagr_run(registry):
    """The baseline judged with the CAGR rule as the inside view (fast, no NUTS for the
    trend) joined with the reference class (a small real PyMC fit, cached)."""
    sc = load_scenario(ROOT / "scenarios" / "baseline.yaml", registry)
    fc = get_forecaster("cagr").fit(Panel.from_registry(registry))
    return run_scenario(sc, registry, forecaster=fc)


def test_every_readable_target_gets_a_probability(registry, cagr_run):
    p = cagr_run.probabilities
    readable = p[p.target.notna()]
    assert readable.p_met.notna().all(), readable[readable.p_met.isna()][["plan", "indicator", "reason"]]
    # the three plans without local history: none of their readable targets is 无法评估
    for pid in ("binhu-2024", "maanshan-2024", "yixing-2024"):
        g = readable[readable.plan == pid]
        assert len(g) and (g.category_zh != "无法评估").all()
    ref = p[p.basis == "reference-class"]
    assert len(ref) > 50
    assert (ref.p_met == ref.p_outside).all() and ref.p_inside.isna().all()
    assert ref.reference_n.ge(5).all() and (ref.p_outside_lo < ref.p_outside).all() and (ref.p_outside < ref.p_outside_hi).all()
    assert ref.reason_zh.str.startswith("同类目标").all()
    # unreadable targets stay 无法评估 with their reason
    null = p[p.target.isna()]
    assert len(null) and (null.category_zh == "无法评估").all() and null.p_met.isna().all()


def test_finished_plan_reads_achieved_and_missed(cagr_run):
    p = cagr_run.probabilities
    s16 = p[p.plan == "suzhou-2016"].set_index("indicator")
    decided = s16[s16.decided_by == "data"]
    assert (decided.category_zh == "已实现").sum() == 27
    assert (decided.category_zh == "未实现").sum() == 4
    assert s16.loc["hv_cultivation_centres", "category_en"] == "missed"
    assert "提前实现" not in set(decided.category_zh)


def test_plan_summary_uses_joint_draws_with_the_plan_effect(cagr_run):
    # Yixing: every target rests on the reference class; the shared plan effect makes
    # the targets move together, so P(all met) is far above the product of marginals
    p = cagr_run.probabilities
    s = cagr_run.plan_summary
    y = p[(p.plan == "yixing-2024") & p.p_met.notna()]
    row = s[(s.plan == "yixing-2024") & (s.attribute == "all")].iloc[0]
    assert row.expected_met == pytest.approx(y.p_met.sum(), rel=0.02)
    assert row.p_all_met > 5 * np.prod(y.p_met.to_numpy())
    assert row.p_all_met <= y.p_met.min() + 1e-9


def test_users_own_data_moves_a_target_to_the_joint_view(registry, tmp_path):
    from simulate.registry import Registry

    csv = tmp_path / "yixing.csv"
    csv.write_text("jurisdiction,series,year,value,period,reliability,source,note\n"
                   "yixing,hv_invention_per10k,2021,12.0,full,official,宜兴市统计(test),\n"
                   "yixing,hv_invention_per10k,2022,13.5,full,official,宜兴市统计(test),\n"
                   "yixing,hv_invention_per10k,2023,15.2,full,official,宜兴市统计(test),\n", encoding="utf-8")
    reg = Registry.load(ROOT, data_files=[csv])
    sc = load_scenario(ROOT / "scenarios" / "baseline.yaml", reg)
    fc = get_forecaster("cagr").fit(Panel.from_registry(reg))
    res = run_scenario(sc, reg, forecaster=fc, plan_ids=["yixing-2024"])
    r = res.probabilities.set_index("indicator").loc["hv_invention_per10k"]
    assert r.basis != "reference-class" and r.p_inside == r.p_inside and r.n_obs >= 3


def test_mc_error_uses_the_effective_sample_size():
    hits = np.zeros(4000, bool)
    hits[:2000] = True
    p, se = judge.probability(hits)
    assert se == pytest.approx(np.sqrt(0.25 / 4000))
    p, se400 = judge.probability(hits, n_eff=400)
    assert se400 == pytest.approx(np.sqrt(0.25 / 400)) and se400 > 3 * se
    # n_eff above the number of paths cannot shrink the error
    assert judge.probability(hits, n_eff=10 ** 6)[1] == pytest.approx(se)


def test_validate_refuses_a_window_total_smaller_than_its_own_year(run_cli, tmp_path):
    # the old reading of Suzhou's 新增作品登记量: 43万 for 2020 alone, while the 13th-plan
    # table gives 302,510 for 2016–2020 on the same series
    bad = tmp_path / "suzhou.csv"
    bad.write_text("jurisdiction,series,year,value,period,reliability,source,note\n"
                   "suzhou,works_registrations,2020,430000,full,official,test,\n", encoding="utf-8")
    code, out, err = run_cli("validate", str(bad))
    assert code == 2
    assert "2016–2020 total 302510" in err and "smaller than its own year 2020" in err


def test_suzhou_works_registrations_is_a_five_year_total(registry):
    ind = registry.plan("suzhou-2021").indicator("works_registrations")
    assert ind.measure == "cumulative" and ind.window == (2021, 2025) and ind.target == 450000
    assert ind.series == "copyright_registrations_total" and "43万余" in ind.interpretation
    o = registry.observations
    row = o[(o.jurisdiction == "suzhou") & (o.series == "copyright_registrations_total")]
    assert list(row.period) == ["sum-2016-2020"] and float(row.value.iloc[0]) == 430000
    # nothing left of the annual reading
    assert not ((o.jurisdiction == "suzhou") & (o.series == "works_registrations") & (o.year == 2020)
                & (o.period == "full")).any()


@pytest.mark.slow
def test_a_target_does_not_depend_on_the_other_plans_in_the_run(registry, shipped_fit, baseline_result):
    sc = baseline_result.scenario
    alone = run_scenario(sc, registry, forecaster=shipped_fit, plan_ids=["wuxi-2024"]).probabilities
    both = baseline_result.probabilities
    a = alone.set_index("indicator").p_met
    b = both[both.plan == "wuxi-2024"].set_index("indicator").p_met
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index(), check_names=False)
    # and the trend model's paths of one series do not depend on which others are drawn
    k = "wuxi:pct_applications"
    one = shipped_fit.sample_posterior_predictive(range(2020, 2027), draws=200, seed=3, keys=[k])
    many = shipped_fit.sample_posterior_predictive(range(2020, 2027), draws=200, seed=3,
                                                   keys=["china:pct_applications", k])
    assert np.array_equal(one.sel(series=k).values, many.sel(series=k).values)


@pytest.mark.slow
def test_mc_error_of_a_run_follows_where_its_probability_comes_from(registry, baseline_result, shipped_fit):
    def judged(res):
        p = res.probabilities
        j = p[p.p_met.notna() & (p.decided_by != "data") & (p.p_met > 0) & (p.p_met < 1)]
        return j, np.sqrt(j.p_met * (1 - j.p_met) / 4000)

    st = shipped_fit.settings
    # the trend model alone: batch means over autocorrelated, reused posterior draws —
    # never below independent paths, and above them where the target hinges on the fit
    trend, naive = judged(run_scenario(baseline_result.scenario, registry, forecaster=shipped_fit, outside=False))
    trend = trend[trend.basis != "reference-class"]
    assert len(trend) > 20 and (trend.mc_se >= naive - 1e-12).all()
    assert (trend.mc_se > 1.2 * naive).mean() > 0.25
    assert (trend.mc_ess <= st["chains"] * st["draws"]).all()
    j, naive = judged(baseline_result)
    # the reference class alone: the spread of its per-draw probabilities over its
    # effective draws, at most the Bernoulli error of those draws
    ref = j[j.basis == "reference-class"]
    assert len(ref) and (ref.mc_se <= np.sqrt(ref.p_met * (1 - ref.p_met) / 2000) + 1e-12).all()
    assert (ref.mc_se > 0).all()
    assert (j.mc_se > 0).all() and (j.mc_ess <= 4000).all()


def test_posterior_cache_key_follows_what_defines_the_model(registry, monkeypatch):
    # the key moves with the family map, with the PyMC / PyTensor versions and with the
    # code that builds the model — not only with the hand-kept MODEL_VERSION
    import copy
    from importlib import metadata

    from models import HierarchicalGrowth

    panel = Panel.from_registry(registry, as_of=2017)
    m = HierarchicalGrowth(use_cache=False)
    key = m.cache_key(panel)
    assert m.cache_key(panel) == key                        # stable
    other = copy.deepcopy(panel)
    i = next(k for k, s in enumerate(other.series) if s.family != "finance")
    other.series[i].family = "finance"
    assert m.cache_key(other) != key
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "99.0" if name == "pymc" else real(name))
    assert m.cache_key(panel) != key
    monkeypatch.setattr(metadata, "version", real)

    def build_model(self, panel):   # a changed prior is a changed source
        return None

    monkeypatch.setattr(HierarchicalGrowth, "build_model", build_model)
    assert m.cache_key(panel) != key


def test_a_published_lower_bound_that_meets_the_target_decides_it(tmp_path):
    # issue 12 item 6: a bound never decided a target; 超过 18500 件 for a running total
    # whose 2026 target is 18000 means the target is met, whatever the model says
    from simulate.registry import Registry

    csv = tmp_path / "wuxi.csv"
    csv.write_text("jurisdiction,series,year,value,period,reliability,source,note,lower_bound\n"
                   "wuxi,works_registrations_cumulative,2025,18500,end-m6,secondary,无锡日报(test),,yes\n",
                   encoding="utf-8")
    reg = Registry.load(ROOT, data_files=[csv])
    sc = load_scenario(ROOT / "scenarios" / "baseline.yaml", reg)
    fc = get_forecaster("cagr").fit(Panel.from_registry(reg))
    p = run_scenario(sc, reg, forecaster=fc, plan_ids=["wuxi-2024"], outside=False).probabilities
    r = p.set_index("indicator").loc["works_registrations_cumulative"]
    assert r.p_met == 1.0 and r.decided_by == "data" and r.category_en == "achieved", r[["p_met", "decided_by"]]
    # a bound below the target decides nothing
    csv.write_text(csv.read_text(encoding="utf-8").replace("18500", "17000"), encoding="utf-8")
    reg = Registry.load(ROOT, data_files=[csv])
    p = run_scenario(sc, reg, forecaster=get_forecaster("cagr").fit(Panel.from_registry(reg)),
                     plan_ids=["wuxi-2024"], outside=False).probabilities
    assert p.set_index("indicator").loc["works_registrations_cumulative"].decided_by != "data"


def test_the_reference_class_fit_is_held_to_the_rules_and_reported(registry, cagr_run):
    """The joined probabilities rest on the reference-class fit too: its diagnostics go
    into the run's diagnostics (hence the manifest), by the trend model's rules, and a
    probability that rests on it is marked by its verdict."""
    d = cagr_run.diagnostics["reference_class"]
    assert set(d) >= {"max_r_hat", "min_ess_bulk", "divergences", "converged", "cases", "cache", "from_cache"}
    assert d["cases"] >= 5 and Path(d["cache"]).exists()
    assert d["converged"] == (d["max_r_hat"] <= 1.01 and d["min_ess_bulk"] >= 400 and d["divergences"] == 0)
    p = cagr_run.probabilities
    joined = p[p.p_met.notna() & p.p_outside.notna() & (p.weight_inside < 1)]
    assert len(joined) > 50 and (joined.converged == d["converged"]).all()


def test_a_reference_class_that_did_not_converge_warns_and_strict_exits_3(registry, run_cli, tmp_path, monkeypatch):
    """60 draws in all cannot reach bulk ESS 400: the reference class breaks the rules
    (a real fit, not a mock).  The run warns on stderr, marks every probability that
    rests on it, and --strict exits 3; a warm run reports the same diagnostics from the
    cache, and from the posterior itself when the kept diagnostics are gone."""
    import json

    from simulate import join
    from simulate.engine import run_scenario

    monkeypatch.setenv("IPSIM_MCMC_DRAWS", "30")
    monkeypatch.setenv("IPSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(join, "_CACHE", {})
    scen = tmp_path / "cagr.yaml"
    scen.write_text("name: cagr\nplans: [wuxi-2024]\ndraws: 400\nseed: 1\nmodel: cagr\n", encoding="utf-8")
    code, _, err = run_cli("run", str(scen), "--out", str(tmp_path / "res"), "--strict")
    assert code == 3, err
    assert "reference class of past plans did not converge" in err and "Traceback" not in err
    run = next((tmp_path / "res").glob("*-cagr"))
    man = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    cold = man["scenarios"][0]["diagnostics"]["reference_class"]
    assert cold["converged"] is False and cold["min_ess_bulk"] < 400 and cold["from_cache"] is False
    probs = pd.read_csv(run / "probabilities.csv")
    rests = probs.p_met.notna() & probs.p_outside.notna() & (probs.weight_inside < 1)
    assert rests.sum() > 10 and (probs.converged[rests] == False).all()   # noqa: E712
    # where the trend rule alone decides (weight 1: the CAGR rule has no pooling), it does not count
    assert (probs.converged[probs.p_met.notna() & ~rests] == True).all()  # noqa: E712

    sc = load_scenario(scen, registry)
    fc = get_forecaster("cagr").fit(Panel.from_registry(registry))
    for drop_kept in (False, True):
        monkeypatch.setattr(join, "_CACHE", {})
        if drop_kept:
            Path(cold["cache"]).with_suffix(".diag.json").unlink()
        warm = run_scenario(sc, registry, forecaster=fc).diagnostics["reference_class"]
        assert warm["from_cache"] is True
        assert {k: v for k, v in warm.items() if k != "from_cache"} == {k: v for k, v in cold.items() if k != "from_cache"}
