"""Scenario files: validation, and what adjustments do to probabilities."""
import numpy as np
import pytest

from conftest import ROOT
from simulate.engine import run_scenario
from simulate.scenario import load_scenario

BASE = """\
name: t
description: {zh: 测试, en: test}
plans: [wuxi-2024]
draws: 2000
seed: 5
adjustments:
  - match: {series: pct_applications}
    growth_shift: {mean: 0.05, sd: 0.01}
"""


def write(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("name", ["baseline", "midterm-2025", "downside", "accelerated", "suzhou-retro"])
def test_shipped_scenarios_validate_and_are_bilingual(registry, name):
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml", registry)
    assert sc.description["zh"] and sc.description["en"]
    assert not [w for w in sc.warnings if "matches no indicator" in str(w)]


@pytest.mark.parametrize("old,new,needle", [
    ("draws: 2000", "draws: 0", "draws = 0 is impossible"),
    ("    growth_shift:", "    growth_shfit:", "did you mean 'growth_shift'"),
    ("series: pct_applications", "series: pct_aplications", "did you mean 'pct_applications'"),
    ("plans: [wuxi-2024]", "plans: [wuxi-2042]", "unknown plan 'wuxi-2042'"),
    ("seed: 5", "seed: 5\nfoo: 1", "unknown key 'foo'"),
])
def test_scenario_errors(tmp_path, run_cli, old, new, needle):
    p = write(tmp_path, BASE.replace(old, new))
    code, out, err = run_cli("validate", str(p))
    assert code == 2 and needle in err and str(p) in err and "Traceback" not in err, err


def test_shock_probability_must_be_a_probability(tmp_path, run_cli):
    text = BASE + "shocks:\n  - name: x\n    probability: 1.5\n    match: {series: pct_applications}\n    effect: {growth_shift: {mean: -0.1}}\n"
    code, out, err = run_cli("validate", str(write(tmp_path, text)))
    assert code == 2 and "probability = 1.5 is impossible" in err


def test_contradictory_adjustments_rejected(tmp_path, run_cli):
    text = BASE + "  - match: {series: pct_applications}\n    fixed_rate: 0.1\n  - match: {indicator: pct_applications}\n    target_path: {}\n"
    code, out, err = run_cli("validate", str(write(tmp_path, text)))
    assert code == 2 and "contradictory adjustments" in err


def test_matching_nothing_is_a_warning_not_silence(tmp_path, run_cli):
    text = BASE.replace("series: pct_applications", "jurisdiction: suzhou")
    code, out, err = run_cli("validate", str(write(tmp_path, text)))
    assert code == 0 and "matches no indicator" in err


@pytest.mark.slow
def test_growth_shift_raises_and_shock_lowers_probabilities(registry, shipped_fit, tmp_path):
    plain = load_scenario(write(tmp_path, BASE.replace("growth_shift: {mean: 0.05, sd: 0.01}", "growth_shift: {mean: 0.0}")), registry)
    up = load_scenario(write(tmp_path, BASE), registry)
    r0 = run_scenario(plain, registry, forecaster=shipped_fit).probabilities.set_index("indicator")
    r1 = run_scenario(up, registry, forecaster=shipped_fit).probabilities.set_index("indicator")
    assert r1.loc["pct_applications", "p_met"] >= r0.loc["pct_applications", "p_met"]
    assert r1.loc["pct_applications", "median"] > r0.loc["pct_applications", "median"]
    # untouched indicators are unchanged (same seed, same draws)
    assert r1.loc["hv_invention_per10k", "p_met"] == r0.loc["hv_invention_per10k", "p_met"]


@pytest.mark.slow
def test_shock_hits_matched_series_in_the_same_draw(registry, shipped_fit, tmp_path):
    text = BASE.replace("growth_shift: {mean: 0.05, sd: 0.01}", "growth_shift: {mean: 0.0}") + (
        "shocks:\n  - name: crash\n    probability: 0.5\n    years: [2025]\n"
        "    match: {series: [pct_applications, madrid_applications]}\n    effect: {growth_shift: {mean: -0.5, sd: 0.0}}\n")
    sc = load_scenario(write(tmp_path, text), registry)
    res = run_scenario(sc, registry, forecaster=shipped_fit)
    pct = res.metrics[("wuxi-2024", "pct_applications")]
    mad = res.metrics[("wuxi-2024", "madrid_applications")]
    base = run_scenario(load_scenario(write(tmp_path, BASE.replace("growth_shift: {mean: 0.05, sd: 0.01}", "growth_shift: {mean: 0.0}")), registry),
                        registry, forecaster=shipped_fit).metrics
    hit_pct = pct < base[("wuxi-2024", "pct_applications")] - 1e-9
    hit_mad = mad < base[("wuxi-2024", "madrid_applications")] - 1e-9
    assert 0.4 < hit_pct.mean() < 0.6
    assert np.array_equal(hit_pct, hit_mad)   # one draw hits both: correlated risk


@pytest.mark.slow
def test_what_if_target_and_additions(registry, shipped_fit, tmp_path):
    text = BASE.replace("growth_shift: {mean: 0.05, sd: 0.01}", "target: 100000").replace(
        "series: pct_applications", "indicator: pct_applications") + (
        "  - match: {indicator: ip_alliances}\n    additions: {mean: 1, sd: 0}\n")
    res = run_scenario(load_scenario(write(tmp_path, text), registry), registry, forecaster=shipped_fit)
    p = res.probabilities.set_index("indicator")
    # the trend model calls 100 000 impossible; the joined P is lower than for the plan's own
    # target (raising the bar never raises P) — the reference class knows little about ambition
    base = load_scenario(write(tmp_path, BASE.replace("growth_shift: {mean: 0.05, sd: 0.01}", "target: 1500").replace(
        "series: pct_applications", "indicator: pct_applications")), registry)
    p0 = run_scenario(base, registry, forecaster=shipped_fit).probabilities.set_index("indicator")
    assert p.loc["pct_applications", "target"] == 100000 and p.loc["pct_applications", "p_inside"] == 0.0
    assert p.loc["pct_applications", "p_outside"] < p0.loc["pct_applications", "p_outside"]
    assert p.loc["pct_applications", "p_met"] < p0.loc["pct_applications", "p_met"]
    # 3 alliances in 2023 + exactly one a year → 6 in 2026 ≥ 5: certain
    assert p.loc["ip_alliances", "p_met"] == 1.0 and p.loc["ip_alliances", "median"] == 6
