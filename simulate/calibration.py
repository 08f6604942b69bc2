"""Leave-one-plan-out calibration of the outside view and of the joined probability.

Every past target with a known outcome (:func:`simulate.reference.fitting_cases`) is
judged by a reference-class model fitted on the *other* plans only (its own plan gets
a new plan effect, as a plan never seen would), next to:

* the constant base rate — the share of the other plans' targets that were met
  (Beta(1, 1) posterior mean);
* the trend model alone and the joined probability, as of the plan start and as of
  mid-term, where the trend model had a reading of the place by then;
* the evaluators' naive rules (CAGR extrapolation; 时间过半、任务过半) on the cases
  they can judge.

Cases are not filtered by the time their outcome became known: with a reference class
this small, a plan judged "as of 2015" is scored by a model that has seen outcomes
reported later (other plans' only).  The report says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import scoring
from .join import _logit, known_cases, outside_view

NAIVE = {"cagr": "CAGR extrapolation (naive rule)", "linear": "linear trend (naive rule)",
         "last": "last value (naive rule)", "progress-ratio": "时间过半、任务过半 progress ratio (naive rule)",
         "base-rate": "constant base rate (naive)", "ets": "ETS (trend only)", "arima": "ARIMA (trend only)",
         "hierarchical": "trend model alone (inside view)", "outside": "reference class (outside view)",
         "joint": "joined (product: p_met)"}
BINS = [0.0, 0.5, 0.7, 0.8, 0.9, 1.0001]


def reference_lopo(reg, draws: int = 2000, seed: int = 0, progress=None,
                   fits: list | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per fitted case: p_outside (LOPO) and the base rate of the other plans.
    Also returns the outside view's draws per case, for joining.  ``fits``: a list that
    gets one row per leave-one-plan-out fit (time and convergence diagnostics), as the
    back-test's trend-model fits do."""
    import time

    say = progress or (lambda m: None)
    cases = known_cases(reg)
    rows, draws_of = [], {}
    for plan in sorted(cases.plan.unique()):
        held = cases[cases.plan == plan].reset_index(drop=True)
        rest = cases[cases.plan != plan]
        say(f"reference class without {plan} ({len(rest)} cases) …")
        t0 = time.perf_counter()
        ov = outside_view(reg, exclude_plans=[plan])
        if fits is not None:
            d = ov.reported()
            fits.append(dict(model="outside", origin=f"without {plan}", seconds=round(time.perf_counter() - t0, 1),
                             **{k: d.get(k) for k in ("max_r_hat", "min_ess_bulk", "divergences", "converged",
                                                      "cache", "from_cache")}))
        pd_ = ov.predict_draws(held, draws, seed)
        base = (rest.met.sum() + 1) / (len(rest) + 2)
        for j, r in enumerate(held.itertuples()):
            key = r.plan_ref if isinstance(r.plan_ref, str) and r.plan_ref else r.case
            draws_of[key] = pd_[:, j]
            rows.append(dict(case=r.case, key=key, plan=plan, indicator_zh=r.indicator_zh, kind_group=r.kind_group,
                             measure=r.measure, met=int(r.met), p_outside=float(pd_[:, j].mean()),
                             p_outside_lo=float(np.quantile(pd_[:, j], 0.1)),
                             p_outside_hi=float(np.quantile(pd_[:, j], 0.9)), p_base_rate=float(base)))
    return pd.DataFrame(rows), draws_of


def calibration_cases(lopo: pd.DataFrame, outside_draws: dict, inside_cases: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per case × time point × model with p_met and the outcome.

    ``inside_cases`` — the back-test's per-model judgements of registry plans (columns
    model, plan, indicator, when, p_met, weight)."""
    rows = []
    ins = inside_cases.copy()
    if len(ins):
        ins["key"] = ins.plan + "/" + ins.indicator
    for when in ("start", "mid-term"):
        here = ins[ins.when == when] if len(ins) else ins
        hier = here[here.model == "hierarchical"].set_index("key") if len(here) else pd.DataFrame()
        for r in lopo.itertuples():
            base = dict(case=r.case, plan=r.plan, indicator_zh=r.indicator_zh, kind_group=r.kind_group, when=when,
                        met=r.met)
            rows.append({**base, "model": "base-rate", "p_met": r.p_base_rate})
            rows.append({**base, "model": "outside", "p_met": r.p_outside})
            po = outside_draws[r.key]
            if len(hier) and r.key in hier.index and hier.loc[r.key, "p_met"] == hier.loc[r.key, "p_met"]:
                h = hier.loc[r.key]
                w = float(h["weight"]) if h["weight"] == h["weight"] else 1.0
                pin = float(np.clip(h["p_met"], 1e-4, 1 - 1e-4))
                pj = float((1 / (1 + np.exp(-((1 - w) * _logit(po) + w * _logit(pin))))).mean())
            else:
                pj = float(po.mean())
            rows.append({**base, "model": "joint", "p_met": pj})
            if len(here):
                for m in here[here.key == r.key].itertuples():
                    rows.append({**base, "model": m.model, "p_met": m.p_met})
    return pd.DataFrame(rows)


def score_table(cal: pd.DataFrame) -> pd.DataFrame:
    """``model, when, n, brier, log_loss`` (+ mean P and met rate) on every case each model judges."""
    out = []
    c = cal.dropna(subset=["p_met"])
    for (m, when), g in c.groupby(["model", "when"], sort=False):
        out.append(dict(model=NAIVE.get(m, m), when=when, n=len(g), met_rate=float(g.met.mean()),
                         mean_p=float(g.p_met.mean()), brier=scoring.brier(g.p_met, g.met),
                         log_loss=scoring.log_loss(g.p_met, g.met)))
    return pd.DataFrame(out)


def paired_scores(cal: pd.DataFrame) -> pd.DataFrame:
    """For each model that judges only some cases (the rules, the trend model), every
    model's scores on exactly those cases."""
    out = []
    c = cal.dropna(subset=["p_met"])
    for ref in ("cagr", "progress-ratio", "hierarchical"):
        for when in ("start", "mid-term"):
            sub = c[(c.model == ref) & (c.when == when)]
            if not len(sub):
                continue
            keys = set(sub.case)
            for m, g in c[(c.when == when) & c.case.isin(keys)].groupby("model", sort=False):
                out.append(dict(cases_of=NAIVE.get(ref, ref), when=when, model=NAIVE.get(m, m), n=len(g),
                                brier=scoring.brier(g.p_met, g.met), log_loss=scoring.log_loss(g.p_met, g.met)))
    return pd.DataFrame(out)


def reliability_table(cal: pd.DataFrame, models=("joint", "outside", "base-rate")) -> pd.DataFrame:
    rows = []
    for m in models:
        for when in ("start", "mid-term"):
            g = cal[(cal.model == m) & (cal.when == when)].dropna(subset=["p_met"])
            b = pd.cut(g.p_met, BINS, right=False)
            for interval, gg in g.groupby(b, observed=True):
                rows.append(dict(model=NAIVE.get(m, m), when=when, bin=str(interval), n=len(gg),
                                 mean_p=float(gg.p_met.mean()), observed=float(gg.met.mean())))
    return pd.DataFrame(rows)


def reliability_png(cal: pd.DataFrame, path) -> None:
    """Reliability diagram: mean predicted P against the observed share met, per bin,
    marker area ∝ number of cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tab = reliability_table(cal)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, when in zip(axes, ("start", "mid-term")):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        for m, marker in zip(tab.model.unique(), ("o", "s", "^")):
            g = tab[(tab.model == m) & (tab.when == when)]
            ax.plot(g.mean_p, g.observed, marker=marker, lw=1)
            ax.scatter(g.mean_p, g.observed, s=20 + 12 * g.n, marker=marker, alpha=0.5, label=m)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"as of the plan {when} (leave one plan out)")
        ax.set_xlabel("predicted P(met)")
    axes[0].set_ylabel("observed share met")
    axes[1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
