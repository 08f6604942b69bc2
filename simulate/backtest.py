"""Rolling-origin back-test of every forecaster and of the evaluators' rules.

Two questions, answered with data the tool could have had at the time:

1. **Series forecasts.** From each origin year, fit every model on the data
   published up to that year (``as_of``), forecast 1–5 years ahead, and score each
   later full-year reading of every series that had at least one reading of its own
   by the origin.  Scores: coverage of the 50/80/95 % intervals, CRPS on the
   transformed scale (log / logit, so a patent count and a percentage are
   comparable: a CRPS of 0.05 is about a 5 % error), the log score, and the
   log-growth error a year of the median.  The headline tables keep the series with
   at least ``MIN_HISTORY`` readings ("established", comparable with every earlier
   run); series with one or two readings ("thin history": the footing of most plan
   targets, whose growth comes mostly or wholly from pooling) are reported beside
   them, and the growth error by basis on all points.
2. **Past plans.** For each plan whose outcomes are in the data (``suzhou-2016``,
   ``china-2016``, ``china-2021`` …), judge P(met) as of the plan start and as of
   mid-term with each model, and score it against what happened (Brier, log loss).
   The progress-ratio rule (“时间过半、任务过半”) enters as evaluators use it: on
   track (ratio ≥ 1) → met (P = 1), else P = 0; at the plan start it has no data and
   is not scored.

:func:`run_backtest` is the library entry point; ``ipsim backtest`` calls it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models import get_forecaster
from models.panel import RELIABILITY_RANK, Panel
from models.transforms import LOGIT_KINDS, forward

from . import scoring
from .registry import Registry
from .resampling import accuracy_intervals, interval_table
from .scenario import Scenario

DEFAULT_MODELS = ["hierarchical", "ets", "arima", "cagr", "linear", "last"]
DEFAULT_ORIGINS = [2015, 2017, 2020, 2022]  # = the plan cases' start and mid-term years
HORIZONS = 5
MIN_HISTORY = 3          # own full-year readings by the origin for the headline ("established") tables
MIN_SCORED = 1           # … for a series to be forecast and scored at all (a level to start from)
LEVELS = (0.5, 0.8, 0.95)
PLAN_CASES = ["suzhou-2016", "china-2016", "china-2021"]


@dataclass
class BacktestResult:
    points: pd.DataFrame                 # one row per model × origin × series × year
    plan_cases: pd.DataFrame             # one row per model × plan × indicator × as-of
    refusals: pd.DataFrame               # model, origin, series, reason
    fits: list = field(default_factory=list)   # model, origin, seconds, diagnostics
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)  # case × when × model, leave one plan out
    lopo: pd.DataFrame = field(default_factory=pd.DataFrame)         # one row per reference case

    def series_scores(self) -> pd.DataFrame:
        """The headline table: the established series (≥ ``MIN_HISTORY`` readings)."""
        return summarise_points(established(self.points))

    def plan_scores(self) -> pd.DataFrame:
        """``model, when, n, brier, log_loss`` on every past target with a known outcome
        (leave one plan out), the naive rules named as such."""
        if len(self.calibration):
            from .calibration import score_table

            return score_table(self.calibration)
        return summarise_plans(self.plan_cases)


def truth_table(reg: Registry) -> pd.DataFrame:
    """Best full-year reading per (place, series, year): what a forecast is scored against."""
    o = reg.observations
    o = o[(o.period == "full") & (~o.lower_bound)].copy()
    o["rank"] = o.reliability.map(RELIABILITY_RANK)
    o = o.sort_values(["jurisdiction", "series", "year", "rank"]).drop_duplicates(["jurisdiction", "series", "year"])
    o["key"] = o.jurisdiction + ":" + o.series
    return o[["key", "jurisdiction", "series", "year", "value", "reliability"]].reset_index(drop=True)


def score_paths(paths, truth: pd.DataFrame, panel: Panel, origin: int, model: str) -> list[dict]:
    rows = []
    have = set(paths.series.values)
    for r in truth.itertuples():
        if r.key not in have or not (origin < r.year <= origin + HORIZONS) or r.year not in paths.year.values:
            continue
        info = panel.info(r.key)
        x = paths.sel(series=r.key, year=r.year).values
        z = forward(x, info.kind, info.bounds)
        zt = float(forward(r.value, info.kind, info.bounds))
        if info.kind in LOGIT_KINDS:
            lo, hi = info.bounds or (0.0, 100.0)
            p = (r.value - lo) / (hi - lo)
            jac = -math.log(max(p * (1 - p) * (hi - lo), 1e-12))
        else:
            jac = -math.log(max(r.value, 1e-12))
        row = dict(model=model, origin=origin, series=r.key, year=int(r.year), horizon=int(r.year - origin),
                   truth=float(r.value), median=float(np.median(x)), basis=info.basis, n_years=info.n_years,
                   crps=scoring.crps_sample(z, zt), log_score=scoring.log_score(z, zt, jac),
                   abs_pct_error=float(abs(np.median(x) / r.value - 1)) if r.value else np.nan)
        for lv in LEVELS:
            row[f"cover{int(lv * 100)}"] = scoring.interval_covers(x, r.value, lv)
        rows.append(row)
    return rows


def _plan_outcomes(reg: Registry, plan_id: str) -> pd.DataFrame:
    """Met / not met for every target the data decide (as of now, no model needed)."""
    from .engine import run_scenario

    sc = Scenario(name="outcome", description={}, plans=[plan_id], as_of=None, draws=50, seed=0, model="last")
    res = run_scenario(sc, reg, forecaster=get_forecaster("last").fit(Panel.from_registry(reg)))
    p = res.probabilities
    p = p[p.decided_by.astype(str).str.len() > 0]
    return pd.DataFrame({"plan": p.plan, "indicator": p.indicator, "met": (p.p_met >= 0.5).astype(int)})


def _plan_as_ofs(plan) -> dict:
    start = plan.baseline_year
    return {"start": start, "mid-term": start + (plan.period[1] - start) // 2}


def run_backtest(reg: Registry, models=None, origins=None, *, draws: int = 1000, seed: int = 0,
                 plan_ids=None, progress=None, reference: bool = True) -> BacktestResult:
    import time

    models = list(models or DEFAULT_MODELS)
    origins = sorted(int(o) for o in (origins or DEFAULT_ORIGINS))
    say = progress or (lambda msg: None)
    truth = truth_table(reg)
    plan_ids = [p for p in (PLAN_CASES if plan_ids is None else plan_ids) if p in reg.plans]
    outcomes = pd.concat([_plan_outcomes(reg, p) for p in plan_ids]) if plan_ids else pd.DataFrame(
        columns=["plan", "indicator", "met"])
    outcomes = _with_stated_outcomes(reg, outcomes, plan_ids)
    # the as-of years the plan cases need are fitted too (usually they are origins already)
    needed = {}
    for pid in plan_ids:
        for when, year in _plan_as_ofs(reg.plan(pid)).items():
            needed.setdefault(year, []).append((pid, when))
    points, plan_rows, refusals, fits = [], [], [], []
    for origin in sorted(set(origins) | set(needed)):
        panel = Panel.from_registry(reg, as_of=origin)
        eligible = [i.key for i in panel.series if i.n_years >= MIN_SCORED]
        years = np.arange(origin + 1, origin + HORIZONS + 1)
        for name in models:
            say(f"origin {origin}: fitting {name} on {len(panel.series)} series …")
            t0 = time.perf_counter()
            fc = get_forecaster(name).fit(panel)
            secs = time.perf_counter() - t0
            diag = {}
            if hasattr(fc, "diagnostics"):
                from .engine import diagnostics_of

                diag = {k: v for k, v in diagnostics_of(fc).items() if k not in ("series_not_converged", "model")}
            fits.append(dict(model=name, origin=origin, seconds=round(secs, 1), **diag))
            refusals += [dict(model=name, origin=origin, series=k, reason=v) for k, v in fc.refusals.items()]
            if origin in origins:
                keys = [k for k in eligible if k not in fc.refusals]
                if keys:
                    paths = fc.sample_posterior_predictive(years, draws=draws, seed=seed, keys=keys)
                    points += score_paths(paths, truth, panel, origin, name)
            for pid, when in needed.get(origin, []):
                plan_rows += _judge_plan_case(reg, fc, pid, when, origin, draws, seed, outcomes, name)
    pts = pd.DataFrame(points)
    pcs = pd.DataFrame(plan_rows)
    if len(pcs):  # the evaluators' rule, once per (plan, indicator, as-of), from the same data
        rule = pcs[pcs.model == models[0]].copy()
        rule["model"] = "progress-ratio"
        rule["p_met"] = np.where(rule.progress_ratio.isna(), np.nan, (rule.progress_ratio >= 1).astype(float))
        pcs = pd.concat([pcs, rule], ignore_index=True)
    cal, lopo = pd.DataFrame(), pd.DataFrame()
    if reference:
        from .calibration import calibration_cases, reference_lopo

        lopo, out_draws = reference_lopo(reg, draws=max(draws, 1000), seed=seed, progress=say, fits=fits)
        cal = calibration_cases(lopo, out_draws, pcs if len(pcs) else pd.DataFrame(
            columns=["model", "plan", "indicator", "when", "p_met", "weight"]))
    return BacktestResult(pts, pcs, pd.DataFrame(refusals, columns=["model", "origin", "series", "reason"]), fits,
                          cal, lopo)


def _with_stated_outcomes(reg, outcomes: pd.DataFrame, plan_ids) -> pd.DataFrame:
    """Targets of the back-tested plans whose outcome the data do not decide but a
    source states (data/reference/past_outcomes.csv, ``plan_ref``)."""
    from .reference import fitting_cases, reference_cases

    have = set(zip(outcomes.plan, outcomes.indicator))
    extra = []
    for r in fitting_cases(reference_cases(reg)).itertuples():
        if isinstance(r.plan_ref, str) and "/" in r.plan_ref:
            pid, iid = r.plan_ref.split("/", 1)
            if pid in plan_ids and (pid, iid) not in have:
                extra.append(dict(plan=pid, indicator=iid, met=int(r.met)))
    return pd.concat([outcomes, pd.DataFrame(extra, columns=["plan", "indicator", "met"])], ignore_index=True)


def _judge_plan_case(reg, fc, pid, when, as_of, draws, seed, outcomes, model) -> list[dict]:
    from .engine import run_scenario

    sc = Scenario(name=f"backtest-{when}", description={}, plans=[pid], as_of=as_of, draws=draws, seed=seed,
                  model=model)
    # the trend model alone: the join with the reference class is done leave-one-plan-out
    # by simulate.calibration (the product's join would have seen this plan's outcomes)
    res = run_scenario(sc, reg, forecaster=fc, outside=False)
    p = res.probabilities.merge(outcomes, on=["plan", "indicator"], how="inner")
    # a target the data had already decided by the as-of year is not a forecast
    p = p[(p.decided_by.astype(str).str.len() == 0) & p.p_met.notna()]
    weights = fc.data_weight() if hasattr(fc, "data_weight") else {}
    jur = reg.plan(pid).jurisdiction
    return [dict(model=model, plan=r.plan, indicator=r.indicator, name_zh=r.name_zh, as_of=as_of, when=when,
                 p_met=float(r.p_met), met=int(r.met), progress_ratio=r.progress_ratio, basis=r.basis,
                 weight=weights.get(f"{jur}:{r.series}", np.nan))
            for r in p.itertuples()]


def established(points: pd.DataFrame) -> pd.DataFrame:
    """Points of series with at least ``MIN_HISTORY`` readings of their own by the origin."""
    return points[points.n_years >= MIN_HISTORY] if len(points) else points


def thin(points: pd.DataFrame) -> pd.DataFrame:
    """Points of series with fewer (one or two): growth comes mostly or wholly from pooling."""
    return points[points.n_years < MIN_HISTORY] if len(points) else points


def by_history(points: pd.DataFrame, table) -> pd.DataFrame:
    """``table(points)`` for the established, thin and all points, one column ``history``."""
    parts = []
    for name, pick in (("established", established), ("thin", thin), ("all", lambda p: p)):
        t = table(pick(points))
        if len(t):
            parts.append(t.assign(history=name)[["history", *t.columns]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def growth_error(points: pd.DataFrame, model: str = "hierarchical", *, n_boot: int = 4000,
                 seed: int = 0) -> pd.DataFrame:
    """Mean log-growth error a year of ``model``'s median, by basis and for all points:
    :math:`\\overline{\\log(\\tilde y / y) / h}` (above 0: forecasts grow too fast),
    with a 90 % interval resampling whole series (simulate/resampling.py).  Points whose
    truth or median is not positive (a count of 0) have no log growth and are left out."""
    from .resampling import series_bootstrap

    p = points[(points.model == model) & (points.truth > 0) & (points["median"] > 0)] if len(points) else points
    if not len(p):
        return pd.DataFrame()
    err = np.log(p["median"] / p.truth) / p.horizon
    rows = []
    for basis in ("prior-only", "pooled", "data", "all"):
        m = (p.basis == basis) if basis != "all" else np.ones(len(p), bool)
        if not m.any():
            continue
        mean, lo, hi = series_bootstrap(err[m], p.series[m], n_boot=n_boot, seed=seed)
        rows.append(dict(basis=basis, n=int(m.sum()), series=int(p.series[m].nunique()),
                         growth_error=mean, growth_error_lo=lo, growth_error_hi=hi,
                         cover80=float(p.cover80[m].mean()), crps=float(p.crps[m].mean())))
    return pd.DataFrame(rows)


def summarise_points(points: pd.DataFrame) -> pd.DataFrame:
    if not len(points):
        return pd.DataFrame()
    g = points.groupby(["model", "horizon"])
    out = g.agg(n=("crps", "size"), cover50=("cover50", "mean"), cover80=("cover80", "mean"),
                cover95=("cover95", "mean"), crps=("crps", "mean"), log_score=("log_score", "mean"),
                log_score_n=("log_score", "count"), mdape=("abs_pct_error", "median")).reset_index()
    allh = points.groupby("model").agg(n=("crps", "size"), cover50=("cover50", "mean"), cover80=("cover80", "mean"),
                                       cover95=("cover95", "mean"), crps=("crps", "mean"),
                                       log_score=("log_score", "mean"), log_score_n=("log_score", "count"),
                                       mdape=("abs_pct_error", "median")).reset_index()
    allh["horizon"] = "all"
    return pd.concat([out, allh], ignore_index=True)


def paired_crps(points: pd.DataFrame, reference: str = "hierarchical") -> pd.DataFrame:
    """Mean CRPS of each model and of the reference on the points both forecast."""
    if not len(points) or reference not in set(points.model):
        return pd.DataFrame()
    ref = points[points.model == reference].set_index(["origin", "series", "year"]).crps
    rows = []
    for (m, h), g in points[points.model != reference].groupby(["model", "horizon"]):
        g = g.set_index(["origin", "series", "year"]).crps
        common = g.index.intersection(ref.index)
        if len(common):
            rows.append(dict(model=m, horizon=h, n=len(common), crps_model=float(g[common].mean()),
                             crps_reference=float(ref[common].mean()),
                             reference_wins=float((ref[common] < g[common]).mean())))
    return pd.DataFrame(rows)


def summarise_plans(cases: pd.DataFrame) -> pd.DataFrame:
    if not len(cases):
        return pd.DataFrame()
    rows = []
    c = cases.dropna(subset=["p_met"])
    for (m, when), g in c.groupby(["model", "when"]):
        rows.append(dict(model=m, when=when, n=len(g), met_rate=float(g.met.mean()), mean_p=float(g.p_met.mean()),
                         brier=scoring.brier(g.p_met, g.met), log_loss=scoring.log_loss(g.p_met, g.met)))
    for m, g in c.groupby("model"):
        rows.append(dict(model=m, when="all", n=len(g), met_rate=float(g.met.mean()), mean_p=float(g.p_met.mean()),
                         brier=scoring.brier(g.p_met, g.met), log_loss=scoring.log_loss(g.p_met, g.met)))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- report
def _md(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if not len(df):
        return "_(none)_\n"
    cols = list(df.columns)
    fmt = lambda v: (f"{v:.{digits}f}" if isinstance(v, float) and v == v else "—" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def report_markdown(res: BacktestResult, command: str) -> str:
    ss = res.series_scores()
    pts = res.points
    est, th = established(pts), thin(pts)
    pc = paired_crps(est)
    ps = res.plan_scores()

    def n_points(p):
        return len(p[["origin", "series", "year"]].drop_duplicates()) if len(p) else 0
    import os

    from models.hierarchical import HierarchicalGrowth

    fast = os.environ.get("IPSIM_MCMC_DRAWS")
    st = HierarchicalGrowth(use_cache=False).settings
    mcmc = (f"NUTS ({st['sampler']}): {st['chains']} chains × {st['tune']} tune + {st['draws']} draws"
            + (f" (IPSIM_MCMC_DRAWS={fast})" if fast else " (product settings)"))
    out = ["# ipsim back-test report\n\n",
           f"Reproduce with: `{('IPSIM_MCMC_DRAWS=' + fast + ' ') if fast else ''}{command}`. {mcmc}.\n\n",
           "## What was tested\n\n",
           f"Rolling origins {sorted(set(pts.origin)) if len(pts) else []}; each model fitted on the data published up to "
           f"the origin and scored on every later full-year reading up to {HORIZONS} years ahead, for series with at "
           f"least {MIN_SCORED} reading of their own by the origin ({pts.series.nunique() if len(pts) else 0} series, "
           f"{n_points(pts)} forecast points).  The headline tables below keep the *established* series, with at "
           f"least {MIN_HISTORY} readings by the origin ({est.series.nunique() if len(est) else 0} series, "
           f"{n_points(est)} points), as every earlier run did; the series with one or two (*thin history*, "
           f"{n_points(th)} points) — the footing of most plan targets, whose growth comes mostly or wholly from "
           "pooling — have their own section, with the growth error by basis.  "
           "CRPS is on the transformed scale (log; logit for percentages): 0.05 ≈ a 5 % error. "
           "The naive rules give one line, so their intervals have zero width (coverage ≈ 0) and their CRPS is the "
           "absolute log error.  Log score = −log density (a normal fitted to the draws on the transformed scale); "
           "undefined for zero-width forecasts.\n",
           "\n## Series forecasts: coverage and CRPS by model and horizon\n\n", _md(ss),
           "\n## Paired CRPS against the hierarchical model (same points)\n",
           "`reference_wins` = share of points where the hierarchical model's CRPS is lower.\n\n", _md(pc),
           "\n## How sure these figures are (bootstrap over series)\n",
           "Points of one series, scored from several origins, share its surprises, and the far horizons rest on "
           "few series (column `series`).  Each figure's 90 % interval resamples whole series "
           "(simulate/resampling.py).  `gain_vs_<rule>` = the rule's CRPS minus the hierarchical model's on the "
           "points both forecast: above 0 the model is better; an interval that straddles 0 cannot tell.  ETS and "
           "ARIMA forecast only series with ≥ 6 full-year readings, so their columns compare on those alone.\n\n",
           _md(interval_table(accuracy_intervals(est))),
           "\n## Thin history: series with one or two readings by the origin\n",
           "A plan target usually rests on a baseline and a reading or two, so this is where a planner meets the "
           "model.  A series with one reading is `prior-only` (its growth is the pooled prior's), with two "
           "`pooled`.  CAGR and the straight line need two readings, ETS and ARIMA six, so they refuse "
           "(refusals.csv); \"last value\" forecasts every point.\n\n", _md(summarise_points(th)),
           "\n### Paired CRPS against the hierarchical model, thin history\n\n", _md(paired_crps(th)),
           "\n### How sure: thin history, then all points (established and thin)\n\n",
           _md(interval_table(accuracy_intervals(th))), "\n", _md(interval_table(accuracy_intervals(pts))),
           "\n## Growth error by basis (hierarchical model, all points)\n",
           "Mean over points of log(median / truth) / horizon: the forecast's log-growth error a year, above 0 when "
           "forecasts grow too fast; its 90 % interval resamples whole series.  `basis` as in the outputs: "
           "`prior-only` one reading, `pooled` two to four, `data` five or more.  Points with a count of 0 "
           "(no log growth) are left out.\n\n", _md(growth_error(pts)),
           "\n## Past plans: P(met) against what happened\n",
           "As of the plan start and mid-term, with the data published by then.  The progress-ratio rule "
           "(时间过半、任务过半) is P = 1 when the ratio ≥ 1; it needs a reading after the baseline, so it is not "
           f"scored at the start.  Log loss clips probabilities to [{scoring.LOG_LOSS_CLIP}, {1 - scoring.LOG_LOSS_CLIP}].\n\n",
           _md(ps)]
    if len(res.calibration):
        from .calibration import paired_scores

        lo = res.lopo
        misses = lo[lo.met == 0]
        out += ["\n## Calibration of P(met), leave one plan out\n\n",
                f"Every past target with a known outcome ({len(lo)} cases from {lo.plan.nunique()} plans, "
                f"{int(lo.met.sum())} met) is judged by the reference-class model fitted on the other plans only, "
                "next to the constant base rate of the other plans, the trend model alone and the joined probability "
                "(the trend model counts only where it had a reading of the place by then), and the naive rules on "
                "the cases they can judge.  The table above (plan_scores.csv) scores each model on every case it "
                "judges; below, every model on exactly the cases a rule or the trend model can judge.  Caveats: the "
                "sample is small and biased toward success (reports rarely state misses); outcomes are not filtered "
                "by when they became known.\n\n", _md(paired_scores(res.calibration)),
                "\n![reliability diagram](reliability.png)\n\n",
                "### The targets that were missed\n\n",
                _md(misses[["case", "indicator_zh", "kind_group", "p_outside", "p_outside_lo", "p_outside_hi",
                            "p_base_rate"]], 2),
                "\n### Every reference case (leave one plan out)\n\n",
                _md(lo[["case", "plan", "kind_group", "measure", "met", "p_outside", "p_outside_lo", "p_outside_hi",
                        "p_base_rate"]], 2)]
    if len(res.plan_cases):
        common = res.plan_cases.dropna(subset=["p_met"]).pivot_table(index=["plan", "indicator", "when"], columns="model",
                                                                       values="p_met").dropna()
        if len(common):
            met = res.plan_cases.drop_duplicates(["plan", "indicator", "when"]).set_index(["plan", "indicator", "when"]).met
            rows = [dict(model=m, n=len(common), brier=scoring.brier(common[m], met[common.index]),
                         log_loss=scoring.log_loss(common[m], met[common.index])) for m in common.columns]
            out += ["\n### On the cases every model and the rule could judge\n\n", _md(pd.DataFrame(rows))]
        out += ["\n### Every case\n\n", _md(res.plan_cases[["plan", "indicator", "name_zh", "when", "as_of", "model",
                                                             "p_met", "met", "progress_ratio"]].sort_values(
                                                                 ["plan", "indicator", "when", "model"]), 2)]
    fits = pd.DataFrame(res.fits)
    out += ["\n## Fits\n\n", _md(fits.drop(columns=[c for c in ("cache", "from_cache") if c in fits]), 3),
            f"\nSeries refused by a model (too short etc.): {len(res.refusals)} model×origin×series; see refusals.csv.\n"]
    return "".join(out)


def write_backtest(res: BacktestResult, out_root, command: str = "ipsim backtest"):
    """results/backtest-<stamp>/ with CSV tables and report.md, written atomically."""
    import shutil
    import time
    from pathlib import Path

    from .results import _csv, new_temp_dir, publish

    tmp = new_temp_dir(out_root)
    try:
        _csv(res.points, tmp / "points.csv")
        _csv(res.plan_cases, tmp / "plan_cases.csv")
        _csv(res.series_scores(), tmp / "series_scores.csv")
        _csv(paired_crps(established(res.points)), tmp / "paired_crps.csv")
        _csv(accuracy_intervals(established(res.points)), tmp / "accuracy_intervals.csv")
        _csv(by_history(res.points, summarise_points), tmp / "series_scores_by_history.csv")
        _csv(by_history(res.points, paired_crps), tmp / "paired_crps_by_history.csv")
        _csv(by_history(res.points, accuracy_intervals), tmp / "accuracy_intervals_by_history.csv")
        _csv(growth_error(res.points), tmp / "growth_error.csv")
        _csv(res.plan_scores(), tmp / "plan_scores.csv")
        if len(res.calibration):
            from .calibration import paired_scores, reliability_png, reliability_table

            _csv(res.calibration, tmp / "calibration_cases.csv")
            _csv(res.lopo, tmp / "reference_lopo.csv")
            _csv(paired_scores(res.calibration), tmp / "plan_scores_paired.csv")
            _csv(reliability_table(res.calibration), tmp / "reliability.csv")
            reliability_png(res.calibration, tmp / "reliability.png")
        _csv(res.refusals, tmp / "refusals.csv")
        _csv(pd.DataFrame(res.fits), tmp / "fits.csv")
        (tmp / "report.md").write_text(report_markdown(res, command), encoding="utf-8")
        return publish(tmp, Path(out_root), f"backtest-{time.strftime('%Y%m%d-%H%M%S')}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
