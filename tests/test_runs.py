"""Runs end to end: every target judged, results written safely, exports re-read."""
import json

import numpy as np
import openpyxl
import pandas as pd
import pytest

from simulate.results import export_run, read_run, write_run

pytestmark = pytest.mark.slow


def test_every_evaluable_target_has_a_probability(registry, baseline_result):
    p = baseline_result.probabilities
    assert len(p) == sum(len(pl.indicators) for pl in registry.plans.values())
    judged = p[p.p_met.notna()]
    # the error comes from the effective sample size (short chains in the suite: larger)
    assert (judged.mc_se <= np.sqrt(0.25 / 100)).all()
    trend = judged[judged.basis.isin(["data", "pooled", "prior-only"]) & (judged.decided_by != "data")]
    from models.hierarchical import HierarchicalGrowth

    st = HierarchicalGrowth(use_cache=False).settings   # 4 chains × 300 in the suite
    assert len(trend) and (trend.mc_ess <= st["chains"] * st["draws"]).all()   # never more than the posterior draws
    assert judged.p_met.between(0, 1).all()
    unjudged = p[p.p_met.isna()]
    assert (unjudged.reason.str.len() > 0).all() and (unjudged.category_zh == "无法评估").all()
    # OCR-garbled target stays, reported as not evaluable
    row = p[(p.plan == "maanshan-2024") & (p.indicator == "enterprise_ip_specialists")].iloc[0]
    assert np.isnan(row.p_met) and "unreadable" in row.reason


def test_known_outcomes_are_decided_by_data(baseline_result):
    p = baseline_result.probabilities.set_index(["plan", "indicator"])
    # China 14th FYP: 12 high-value patents per 10k by 2025 — 16.0 reported for 2025
    r = p.loc[("china-2021", "hv_invention_per10k")]
    assert r.p_met == 1.0 and r.decided_by == "data"
    # Suzhou 13th FYP PCT: 8000 over 2016–2020, the reported total is 10932
    assert p.loc[("suzhou-2016", "pct_applications"), "p_met"] == 1.0


def test_plan_summary_is_consistent(baseline_result):
    s = baseline_result.plan_summary
    p = baseline_result.probabilities
    for pid, g in p.groupby("plan"):
        row = s[(s.plan == pid) & (s.attribute == "all")].iloc[0]
        assert row.evaluable == g.p_met.notna().sum()
        if row.evaluable:
            assert row.expected_met == pytest.approx(g.p_met.sum(), abs=1e-6)
            assert row.p_all_met <= g.p_met.min() + 1e-12


def test_run_directory_reproducible_and_exports(registry, baseline_result, shipped_fit, tmp_path):
    from simulate.engine import run_scenario

    again = run_scenario(baseline_result.scenario, registry, forecaster=shipped_fit)
    d1 = write_run([baseline_result], registry, tmp_path, "baseline", 1, 4000, [])
    d2 = write_run([again], registry, tmp_path, "baseline", 1, 4000, [])
    assert d1 != d2 and d1.exists() and d2.exists()          # same second: no collision
    for f in ("probabilities.csv", "forecasts.csv", "plan_summary.csv"):
        assert (d1 / f).read_bytes() == (d2 / f).read_bytes(), f
    man = json.loads((d1 / "manifest.json").read_text(encoding="utf-8"))
    assert man["seed"] == 1 and man["versions"]["pymc"] and man["inputs"]
    assert not list(tmp_path.glob(".tmp-run-*"))
    fc = pd.read_csv(d1 / "forecasts.csv")
    assert list(fc.columns) == ["plan", "indicator", "scenario", "year", "mean", "median", "q025", "q10", "q50", "q90", "q975"]
    assert (fc.q10 <= fc.q50).all() and (fc.q50 <= fc.q90).all()
    probs = pd.read_csv(d1 / "probabilities.csv")
    # XLSX: a sheet per plan + README, Chinese headers, same numbers as the CSV
    x = export_run(d1, "xlsx", tmp_path / "out.xlsx", lang="zh")
    wb = openpyxl.load_workbook(x)
    assert "README" in wb.sheetnames and "wuxi-2024" in wb.sheetnames
    sheet = pd.read_excel(x, sheet_name="wuxi-2024")
    assert "实现概率" in sheet.columns
    np.testing.assert_allclose(sheet["实现概率"].to_numpy(dtype=float),
                               probs[probs.plan == "wuxi-2024"].p_met.to_numpy(dtype=float), equal_nan=True)
    pq = export_run(d1, "parquet", tmp_path / "pq")
    pd.testing.assert_frame_equal(pd.read_parquet(pq / "forecasts.parquet"), fc, check_dtype=False)
    js = json.loads(export_run(d1, "json", tmp_path / "r.json").read_text(encoding="utf-8"))
    assert len(js["probabilities"]) == len(probs)
    c = export_run(d1, "csv", tmp_path / "csvout")
    assert pd.read_csv(c / "probabilities.csv", encoding="utf-8-sig").shape == probs.shape


def test_cli_run_rank_inverse_plot(run_cli, shipped_fit, tmp_path):
    code, out, err = run_cli("run", "baseline", "--plan", "wuxi-2024", "--draws", "3000", "--out", str(tmp_path), "--lang", "en")
    assert code == 0, err
    assert "wuxi-2024" in out and "P(met)" in out
    run_dir = next(tmp_path.glob("*-baseline"))
    code, out, err = run_cli("plot", str(run_dir), "--plan", "wuxi-2024")
    assert code == 0, err
    pngs = list((run_dir / "charts").glob("*.png"))
    assert len(pngs) >= 15 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    code, out, err = run_cli("rank", "wuxi-2024", "--draws", "3000", "--lang", "en")
    assert code == 0, err
    lines = [l for l in out.splitlines()[1:] if l.strip() and not l.startswith("(not shown")]
    assert len(lines) == 22
    from simulate.terminal import display_width

    assert max(display_width(line) for line in out.splitlines()) <= 100   # fitted to the terminal
    code, out, err = run_cli("inverse", "wuxi-2024", "--prob", "0.8", "--draws", "3000")
    assert code == 0 and "80%把握可达" in out
    # fitted to 100 columns too (was 110, with names cut at 24 characters and Chinese misaligned)
    assert max(display_width(line) for line in out.splitlines()) <= 100
    rows = out.splitlines()[1:]
    assert len(rows) == 20 and "（未显示" not in out     # every indicator of the plan with a reachable value
    code, wide, err = run_cli("inverse", "wuxi-2024", "--prob", "0.8", "--draws", "3000", "--wide")
    assert code == 0 and "一般作品著作权登记量累计" in wide
    code, out, err = run_cli("fit")       # the shipped fit, cached: its per-series diagnostics
    assert code == 0, err
    table = out.split("\n{")[0].splitlines()
    assert max(display_width(line) for line in table) <= 100 and len(table) > 100
    assert table[0].split()[:3] == ["series", "r_hat", "ess_bulk"]
    # and the reference class's fit, with its verdict by the same rules (a warning if broken)
    ref = json.loads(next(line for line in out.splitlines() if line.startswith("reference class: "))
                     .removeprefix("reference class: "))
    assert ref["cases"] >= 5 and ref["converged"] == (
        ref["max_r_hat"] <= 1.01 and ref["min_ess_bulk"] >= 400 and ref["divergences"] == 0)
    assert ("reference class of past plans did not converge" in err) == (not ref["converged"])
    code, out, err = run_cli("compare", str(run_dir), str(run_dir))
    assert code == 0


def test_scenarios_side_by_side_one_row_per_indicator():
    """Regression: pivot_table(dropna=False) built the product of plan × id × name (230k rows)."""
    from simulate.cli import compare_table

    rows = [dict(plan=p, indicator=i, name_zh=f"{p}{i}", name_en=f"{p}{i}", scenario=s, p_met=v)
            for s, v in (("b", 0.5), ("a", float("nan"))) for p in ("x", "y") for i in ("i1", "i2", "i3")]
    t = compare_table(pd.DataFrame(rows), "zh")
    assert len(t) == 6 and list(t.columns[-2:]) == ["b", "a"]
    assert list(t.indicator) == ["i1", "i2", "i3"] * 2
    assert set(t["b"]) == {"50%"} and set(t["a"]) == {""}
