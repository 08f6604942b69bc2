"""The scenario engine: fit (or load) the model, draw paths, apply the scenario,
judge every target.  ``run_scenario`` is the one entry point the CLI and notebooks use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models import get_forecaster
from models.base import stable_seed
from models.hierarchical import MAX_RHAT, MIN_ESS
from models.panel import RELIABILITY_RANK, Panel
from models.transforms import apply_floors, finish_paths, forward, inverse

from . import judge
from .registry import Registry
from .scenario import Scenario, apply_adjustments, apply_shocks, draw_shocks, what_if_target

QUANTILES = {"q025": 0.025, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q975": 0.975}
JOIN_DEFAULTS = {"p_inside": np.nan, "p_outside": np.nan, "p_outside_lo": np.nan, "p_outside_hi": np.nan,
                 "weight_inside": np.nan, "reference_class": "", "reference_n": np.nan, "reference_met": np.nan,
                 "ambition": np.nan, "reason_zh": ""}


@dataclass
class RunResult:
    scenario: Scenario
    probabilities: pd.DataFrame
    forecasts: pd.DataFrame
    plan_summary: pd.DataFrame
    metrics: dict = field(default_factory=dict)     # (plan, indicator) -> metric draws
    diagnostics: dict = field(default_factory=dict)
    fit_info: dict = field(default_factory=dict)


def fit_model(reg: Registry, as_of: int | None, model: str = "hierarchical", fit_progress=None,
              before_new_fit=None, **kw):
    """Fit ``model`` on the registry's panel; ``fit_progress(text, transient)`` gets the
    hierarchical model's progress lines (compile, sampling share, ETA);
    ``before_new_fit()`` is called when the (unsharded) trend model is about to sample
    rather than load its cached posterior."""
    panel = Panel.from_registry(reg, as_of=as_of)
    if model == "hierarchical" and _sharded(len(panel.series)):
        from models.sharding import ShardedGrowth

        from .cluster import get_client

        fc = ShardedGrowth(client=get_client, **kw)   # the cluster starts only if a shard needs fitting
    else:
        fc = get_forecaster(model, **kw)
        if before_new_fit is not None and hasattr(fc, "needs_fit") and fc.needs_fit(panel):
            before_new_fit()
    fc.fit(panel, progress=fit_progress)   # models without progress lines ignore it
    return fc, panel


def _sharded(n_series: int) -> bool:
    """--shard on/off/auto (IPSIM_SHARD): auto shards panels above SHARD_ABOVE series."""
    from models.sharding import SHARD_ABOVE

    from .cluster import shard_mode

    mode = shard_mode()
    return mode == "on" or (mode == "auto" and n_series > SHARD_ABOVE)


def diagnostics_of(fc) -> dict:
    if not hasattr(fc, "diagnostics"):
        return {"model": fc.name, "refused": len(fc.refusals)}
    d = fc.diagnostics()
    per = fc.series_diagnostics()
    bad = per[(per.r_hat > MAX_RHAT) | (per.ess_bulk < MIN_ESS)].index.tolist()
    return {"model": fc.name, "max_r_hat": float(d.r_hat.max()), "min_ess_bulk": float(d.ess_bulk.min()),
            "min_ess_tail": float(d.ess_tail.min()), "divergences": int(d.attrs["divergences"]),
            "converged": fc.converged(),
            "series_not_converged": bad, "cache": str(getattr(fc, "cache_path", "")),
            "from_cache": bool(getattr(fc, "from_cache", False)),
            "mass_matrix": fc.mass_matrix()}


def _per_registry(reg: Registry, name: str, build):
    """``build(observations)`` once per registry (and again only if its observations
    are replaced), not once per target."""
    cached = getattr(reg, name, None)
    if cached is not None and cached[0] is reg.observations:
        return cached[1]
    value = build(reg.observations)
    setattr(reg, name, (reg.observations, value))
    return value


def observed_index(reg: Registry) -> dict:
    """{(place, series): {year: value}} of full-year readings, the most reliable copy of
    each year."""
    def build(obs):
        o = obs[(obs.period == "full") & (~obs.lower_bound)]
        o = o.assign(rank=o.reliability.map(RELIABILITY_RANK)).sort_values(["jurisdiction", "series", "year", "rank"])
        o = o.drop_duplicates(["jurisdiction", "series", "year"])
        return {k: dict(zip(g.year.astype(int), g.value.astype(float)))
                for k, g in o.groupby(["jurisdiction", "series"])}

    return _per_registry(reg, "_observed_index", build)


def bound_index(reg: Registry) -> dict:
    """{(place, series): [(year, period, b), …]} of one-year lower bounds (超过 b)."""
    def build(obs):
        o = obs[obs.lower_bound.astype(bool) & ~obs.period.str.startswith("sum-")]
        return {k: list(zip(g.year.astype(int), g.period, g.value.astype(float)))
                for k, g in o.groupby(["jurisdiction", "series"])}

    return _per_registry(reg, "_bound_index", build)


def _bound_deciding(reg: Registry, jur: str, ind, s, target, as_of):
    """A published 超过 b that already meets a level target: b ≥ target for the target
    year itself (a full-year reading), or — for a running total, which never falls —
    at any time up to the target year.  Returns b or None."""
    if ind.measure != "level" or ind.comparator not in (">=", ">") or target is None:
        return None
    hits = [b for year, period, b in bound_index(reg).get((jur, ind.series), [])
            if (as_of is None or year <= as_of) and b >= target
            and (year <= ind.target_year if s.monotone else (year == ind.target_year and period == "full"))]
    return max(hits) if hits else None


def _observed(reg: Registry, jur: str, code: str, as_of, index: dict | None = None) -> dict:
    vals = (index if index is not None else observed_index(reg)).get((jur, code), {})
    return {y: v for y, v in vals.items() if as_of is None or y <= as_of}


def run_scenario(sc: Scenario, reg: Registry, *, draws: int | None = None, seed: int | None = None,
                 plan_ids=None, forecaster=None, progress=None, outside: bool = True,
                 fit_progress=None) -> RunResult:
    """Judge every target of the scenario's plans.

    ``outside=True`` (the product) joins the trend model with the reference class of
    past plans (:mod:`simulate.join`); ``False`` gives the trend model alone."""
    draws = int(draws or sc.draws)
    seed = int(sc.seed if seed is None else seed)
    plans = [reg.plan(p) for p in (plan_ids or sc.plan_ids(reg))]
    say = progress or (lambda msg: None)
    if forecaster is None:
        say("fitting / loading the model …")
        forecaster, panel = fit_model(reg, sc.as_of, sc.model, fit_progress=fit_progress)
    panel = forecaster.panel
    # The year grid spans every plan in the registry, not only the selected ones, and
    # every random stream is keyed by its series or target: a target's P does not
    # depend on which other plans share the run.
    grid = list(reg.plans.values()) or plans
    first = min([p.baseline_year for p in grid] + [i.window[0] - 1 for p in grid for i in p.indicators if i.window])
    last = max(i.target_year for p in grid for i in p.indicators)
    years = np.arange(first, last + 1)
    need = []
    for p in plans:
        for ind in p.indicators:
            need.append(f"{p.jurisdiction}:{ind.series}")
            if ind.relative_to:
                need.append(f"{ind.relative_to['jurisdiction']}:{ind.relative_to['series']}")
    keys = [k for k in dict.fromkeys(need) if k in panel.keys]
    say(f"drawing {draws} paths for {len(keys)} series …")
    paths = forecaster.sample_posterior_predictive(years, draws=draws, seed=seed, keys=keys)
    rng = np.random.default_rng([seed, 7])
    hits = draw_shocks(sc.shocks, years, draws, rng)
    rows, frows, metrics, met_draws = [], [], {}, {}
    obs_index = observed_index(reg)
    for p in plans:
        for ind in p.indicators:
            rng_i = np.random.default_rng([seed, 7, stable_seed(f"{p.id}/{ind.id}")])
            row, x, m, h = _judge_indicator(sc, reg, panel, paths, years, p, ind, hits, rng_i, obs_index)
            rows.append(row)
            if m is not None:
                metrics[(p.id, ind.id)] = m
            if h is not None:
                met_draws[(p.id, ind.id)] = h
            if x is not None:
                lo_year = min(p.baseline_year, ind.window[0] - 1 if ind.window else p.baseline_year)
                for j, y in enumerate(years):
                    if lo_year <= y <= ind.target_year:
                        col = x[:, j]
                        frows.append(dict(plan=p.id, indicator=ind.id, scenario=sc.name, year=int(y),
                                          mean=float(col.mean()), median=float(np.median(col)),
                                          **{k: float(np.quantile(col, q)) for k, q in QUANTILES.items()}))
    order = posterior_order(paths)
    for r in rows:
        h = met_draws.get((r["plan"], r["indicator"]))
        r["_se_inside"] = judge.batch_means_se(h, order) if (order is not None and h is not None) else np.nan
    reference = None
    if outside:
        say("joining with the reference class of past plans …")
        from .join import join_views

        reference = join_views(rows, met_draws, metrics, plans, reg, sc, forecaster, draws, seed)
    for r in rows:
        for col, default in JOIN_DEFAULTS.items():
            r.setdefault(col, default)
    _mc_errors(rows, forecaster, draws)
    probs = pd.DataFrame(rows)
    diag = diagnostics_of(forecaster)
    if reference is not None:
        diag["reference_class"] = reference     # the fit the joined probabilities also rest on
    # mark every probability resting on a fit that broke the rules: the trend model's
    # (its series R-hat > 1.01 or ESS < 400, or any divergence) where it counts, the
    # reference class's where it counts (a weight below 1 on the trend model)
    bad = set(diag.get("series_not_converged", []))
    ref_ok = (reference or {}).get("converged")
    keys_of = [f"{r['plan_jur']}:{r['series']}" for r in rows]

    def rests_on_converged(key, r):
        if r["p_met"] != r["p_met"]:
            return None
        verdicts = []
        if r["basis"] != "reference-class":
            verdicts.append((key not in bad) and diag.get("divergences", 0) == 0)
        if ref_ok is not None and r["p_outside"] == r["p_outside"] and not r["weight_inside"] >= 1.0:
            verdicts.append(bool(ref_ok))
        return all(verdicts) if verdicts else None
    probs["converged"] = [rests_on_converged(k, r) for k, r in zip(keys_of, rows)]
    probs = probs.drop(columns=["plan_jur"])
    fc = pd.DataFrame(frows, columns=["plan", "indicator", "scenario", "year", "mean", "median", *QUANTILES])
    summary = plan_summary(plans, probs, met_draws, sc.name)
    return RunResult(sc, probs, fc, summary, metrics, diag,
                     {"panel": panel.fingerprint(), "n_series": len(panel.series), "years": [int(years[0]), int(years[-1])]})


def _judge_indicator(sc, reg, panel, paths, years, plan, ind, hits, rng, obs_index=None):
    key = f"{plan.jurisdiction}:{ind.series}"
    s = reg.series[ind.series]
    target = what_if_target(sc, plan, ind)
    adjs = [a for a in sc.adjustments if a.matches(plan, ind) and a.kind != "target"]
    shocks = [sh for sh in sc.shocks if sh.matches(plan, ind)]
    observed = _observed(reg, plan.jurisdiction, ind.series, sc.as_of, obs_index)
    base = dict(plan=plan.id, plan_jur=plan.jurisdiction, indicator=ind.id, name_zh=ind.name_zh, name_en=ind.name_en, series=ind.series,
                category=ind.category, attribute=ind.attribute, measure=ind.measure, comparator=ind.comparator,
                target=target, target_year=ind.target_year, baseline=ind.baseline, unit=s.unit, scenario=sc.name,
                interpretation=ind.interpretation, note=ind.note)
    empty = dict(p_met=np.nan, mc_se=np.nan, mean=np.nan, median=np.nan, q025=np.nan, q10=np.nan, q90=np.nan,
                 q975=np.nan, latest=None, latest_year=None, required_growth=None, recent_growth=None,
                 posterior_growth=None, progress_ratio=None, basis="", n_obs=0, model="", decided_by="")
    if target is None:
        zh, en = judge.NOT_EVALUABLE
        return {**base, **empty, "category_zh": zh, "category_en": en, "likelihood_zh": "", "likelihood_en": "",
                "reason": "target unreadable or not numeric (see note)"}, None, None, None
    by = ind.baseline_year or plan.baseline_year
    additions = [a for a in adjs if a.kind == "additions"]
    total = _window_total(reg, plan.jurisdiction, ind, sc.as_of)
    if key not in paths.series.values and total is not None:
        # the plan's window was reported as one total: decided by data, whatever the model
        m = np.full(len(paths.draw), total)
        return (_finish_row(base, m, target, ind, None, None, "data", 0, "reported total", "data", observed),
                None, m, judge.met(m, target, ind.comparator))
    bound = _bound_deciding(reg, plan.jurisdiction, ind, s, target, sc.as_of)
    if bound is not None:
        # 超过 b with b already at the target: decided by the published figure
        m = np.full(len(paths.draw), np.nextafter(bound, np.inf))   # 超过 b: strictly above b
        return (_finish_row(base, m, target, ind, None, None, "data", len(observed), "published lower bound (超过)",
                            "data", observed, s=s, by=by), None, m, judge.met(m, target, ind.comparator))
    needed = ({ind.target_year} if ind.measure == "level" else
              set(range(ind.window[0], ind.window[1] + 1)) if ind.measure == "cumulative" else
              {ind.window[1], by} if ind.measure == "increment" else {-1})
    if key not in paths.series.values and needed <= set(observed):
        # the published figures decide the target, whatever the model could forecast
        m = judge.metric(ind.measure, np.zeros((len(paths.draw), len(years))), years, target_year=ind.target_year,
                         window=ind.window, baseline_year=by, observed=observed)
        return (_finish_row(base, m, target, ind, None, None, "data", len(observed), "published figures", "data",
                            observed), None, m, judge.met(m, target, ind.comparator))
    if key not in paths.series.values:
        if additions and ind.measure == "increment":
            x = None
            add = _draw_additions(additions[0], years, by, len(paths.draw), rng)
            m = add[:, [i for i, y in enumerate(years) if ind.window[0] <= y <= ind.window[1]]].sum(1)
            return _finish_row(base, m, target, ind, None, None, "scenario-only", 0, "additions", "", observed), None, m, judge.met(m, target, ind.comparator)
        zh, en = judge.NOT_EVALUABLE
        return {**base, **empty, "category_zh": zh, "category_en": en, "likelihood_zh": "", "likelihood_en": "",
                "reason": "no observation of this series for this place: add a baseline with --data "
                          f"(ipsim data template {plan.id})"}, None, None, None
    info = panel.info(key)
    x = paths.sel(series=key).values.copy()
    start = math.floor(info.last_year) if info.last_year == info.last_year else by
    if sc.as_of is not None:
        start = min(start, sc.as_of)
    tr = ((lambda v: forward(v, s.kind, s.bounds)), (lambda v: inverse(v, s.kind, s.bounds)))
    x_before = x.copy()      # the trend before the scenario: the join moves the odds by the scenario's effect
    if adjs or shocks:
        z = forward(x, s.kind, s.bounds)
        z = apply_adjustments(z, years, start, [a for a in adjs if a.kind in ("growth_shift", "fixed_rate", "level")], tr, rng)
        z = apply_shocks(z, years, start, hits, shocks)
        x = apply_floors(finish_paths(inverse(z, s.kind, s.bounds), s.kind, s.monotone,
                                      info.last_value if info.last_value == info.last_value else None,
                                      int(np.searchsorted(years, start))), years, info.floors, s.monotone)
        if additions:
            add = _draw_additions(additions[0], years, start, x.shape[0], rng)
            j0 = list(years).index(start) if start in years else 0
            x[:, j0 + 1:] = x[:, [j0]] + np.cumsum(add[:, j0 + 1:], axis=1)
        if any(a.kind == "target_path" for a in adjs):
            x = _target_path(x, years, start, ind, target, by)
    other = None
    if ind.relative_to:
        okey = f"{ind.relative_to['jurisdiction']}:{ind.relative_to['series']}"
        if okey not in paths.series.values:
            zh, en = judge.NOT_EVALUABLE
            return {**base, **empty, "category_zh": zh, "category_en": en, "likelihood_zh": "", "likelihood_en": "",
                    "reason": f"no observation of the comparison series {okey}"}, None, None, None
        other = paths.sel(series=okey).values
    obs_use = {y: v for y, v in observed.items() if y <= start}
    m = judge.metric(ind.measure, x, years, target_year=ind.target_year, window=ind.window, baseline_year=by,
                     observed=obs_use if ind.measure in ("cumulative", "increment", "level") else None, other=other)
    if total is not None:  # the plan's window was reported as one total: decided by data
        m = np.full(x.shape[0], total)
    decided = "data" if needed <= set(obs_use) or total is not None else ""
    row = _finish_row(base, m, target, ind, x, years, str(paths.basis.sel(series=key).item()), info.n_years,
                      str(paths.model.sel(series=key).item()), decided, obs_use, s=s, by=by)
    row["scenario_kinds"] = sorted({a.kind for a in adjs} | ({"shock"} if shocks else set()))
    if adjs or shocks:
        m0 = judge.metric(ind.measure, x_before, years, target_year=ind.target_year, window=ind.window,
                          baseline_year=by, observed=obs_use if ind.measure in ("cumulative", "increment", "level")
                          else None, other=other)
        if total is not None:
            m0 = np.full(x.shape[0], total)
        row["p_inside_before"] = float(judge.met(m0, target, ind.comparator).mean())
    return row, x, m, judge.met(m, target, ind.comparator)


OUTSIDE_EFFECTIVE_DRAWS = 2000   # posterior draws of the reference-class model (a small model that mixes well)


def posterior_order(paths):
    """Order of the paths by the posterior draw each was built from, or None when the
    forecaster does not say (naive rules, ETS alone: their paths are independent)."""
    if "posterior_draw" not in paths.coords:
        return None
    return np.argsort(paths.posterior_draw.values, kind="stable")


def _mc_errors(rows, forecaster, draws):
    """Monte Carlo standard error of each P(met), and the effective number of draws it
    implies (p(1−p)/se²).

    Trend model: batch means over the paths sorted by their posterior draw
    (``judge.batch_means_se``) — the error a probability actually carries, whatever
    parameter it hinges on — never below the error of independent paths.  A joined
    probability p = mean_d logistic((1−w)·logit P_out,d + w·logit p_in + shift): the
    trend model's error enters through the delta method (∂p/∂p_in = mean p_d(1−p_d) · w /
    (p_in(1−p_in))), the reference class's through the spread of p_d over its
    effective draws; a reference-class-only probability has that part alone.  Without
    a posterior-draw order (naive rules): n = min(paths, the series' bulk ESS)."""
    ess = {}
    if hasattr(forecaster, "series_diagnostics"):
        try:
            ess = forecaster.series_diagnostics().ess_bulk.to_dict()
        except Exception:  # noqa: BLE001 — diagnostics missing: fall back to the number of paths
            ess = {}
    st = getattr(forecaster, "settings", {})
    n_post = st.get("chains", 1) * st.get("draws", draws) if "draws" in st else draws
    n_out = min(float(draws), OUTSIDE_EFFECTIVE_DRAWS)
    for r in rows:
        se_in = r.pop("_se_inside", np.nan)
        joined = r.pop("_join", None)
        p = r.get("p_met")
        if p is None or p != p:
            r["mc_ess"] = np.nan
            continue
        bern = p * (1 - p)
        if r.get("decided_by") == "data":
            se = np.sqrt(bern / draws)
        elif r.get("basis") == "reference-class":
            # the mean of the reference class's probabilities over its effective draws
            se = np.sqrt((joined[2] if joined is not None else bern) / n_out)
        elif se_in == se_in:
            if joined is None:
                se = max(se_in, np.sqrt(bern / draws))
            else:
                s_in, s_before, var_out = joined
                pin = r.get("p_inside")
                before = r.get("p_inside_before")
                # the error of p_in as an effective number of paths, carried to the
                # unshifted probability drawn from the same paths
                q = min(max(pin, 0.5 / draws), 1 - 0.5 / draws)
                n_in = max(q * (1 - q) / max(se_in, 1e-12) ** 2, 1.0)
                se_before = (np.sqrt(before * (1 - before) / n_in)
                             if before is not None and before == before else 0.0)
                se = np.sqrt((abs(s_in) * max(se_in, np.sqrt(q * (1 - q) / draws))
                              + abs(s_before) * se_before) ** 2 + var_out / n_out)
        else:
            # the paths reuse the posterior's draws: never more effective draws than it holds
            n = min(float(draws), float(ess.get(f"{r['plan_jur']}:{r['series']}", draws)), float(n_post))
            se = np.sqrt(bern / max(n, 1.0))
        r["mc_se"] = float(se)
        cap = float(draws) if r.get("basis") == "reference-class" or r.get("decided_by") == "data" \
            else min(float(draws), float(n_post))
        r["mc_ess"] = float(min(bern / se ** 2, cap)) if se > 0 else cap


def _window_total(reg, jur, ind, as_of):
    """A reported total over exactly the indicator's window (e.g. sum-2016-2020)."""
    if ind.measure != "cumulative":
        return None
    obs = reg.observations
    o = obs[(obs.jurisdiction == jur) & (obs.series == ind.series) & (~obs.lower_bound)
            & (obs.period == f"sum-{ind.window[0]}-{ind.window[1]}")]
    if as_of is not None:
        o = o[o.year <= as_of]
    if not len(o):
        return None
    return float(o.assign(r=o.reliability.map(RELIABILITY_RANK)).sort_values("r").value.iloc[0])


def _draw_additions(adj, years, start, draws, rng):
    sp = adj.spec
    active = (years > start) & (np.isin(years, sp["years"]) if sp.get("years") else True)
    add = np.maximum(np.rint(rng.normal(sp["mean"], sp.get("sd", 0.0), size=(draws, len(years)))), 0)
    return add * active[None, :]


def _target_path(x, years, start, ind, target, by):
    """Acceleration: the better of business-as-usual and the straight path to the target."""
    if ind.comparator not in (">=", ">"):
        return x
    j0 = list(years).index(start) if start in years else 0
    x0 = x[:, j0]
    out = x.copy()
    ty = ind.target_year
    for j, y in enumerate(years):
        if start < y <= ty:
            frac = (y - start) / (ty - start)
            if ind.measure == "level":
                line = x0 + frac * (target - x0)
            elif ind.measure == "increment":
                base = x[:, list(years).index(by)] if by in years else x0
                line = x0 + frac * (base + target - x0)
            else:  # cumulative: even yearly share of what is still missing
                done = x[:, [k for k, yy in enumerate(years) if ind.window[0] <= yy <= start]].sum(1)
                left = ty - start
                line = np.maximum(target - done, 0) / max(left, 1)
            out[:, j] = np.maximum(out[:, j], line)
    return out


def _finish_row(base, m, target, ind, x, years, basis, n_obs, model, decided, observed, s=None, by=None):
    hits = judge.met(m, target, ind.comparator)
    p, se = judge.probability(hits)
    latest_year = max(observed) if observed else None
    latest = observed[latest_year] if observed else None
    already = bool(s is not None and s.monotone and ind.measure == "level" and latest is not None
                   and judge.met(np.array([latest]), target, ind.comparator)[0])
    if already and decided != "data":
        decided = "already reached (running total)"
    cz, ce = judge.category(p, already, finished=decided == "data")
    lz, le = judge.likelihood_words(p)
    post_growth = None
    if x is not None and latest is not None and ind.measure == "level" and ind.target_year > latest_year:
        xt = x[:, list(years).index(ind.target_year)]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (xt / latest) ** (1 / (ind.target_year - latest_year)) - 1
        post_growth = float(np.nanmedian(g)) if latest > 0 else None
    baseline = ind.baseline if ind.baseline is not None else (observed.get(by) if by else None)
    level_like = ind.measure == "level"
    return {**base, "p_met": p, "mc_se": se, "mean": float(m.mean()), "median": float(np.median(m)),
            **{k: float(np.quantile(m, q)) for k, q in QUANTILES.items() if k != "q50"},
            "latest": latest, "latest_year": latest_year,
            "required_growth": judge.required_growth(latest, target, latest_year, ind.target_year) if level_like and latest_year else None,
            "recent_growth": judge.recent_growth(observed) if observed else None,
            "posterior_growth": post_growth,
            "progress_ratio": judge.progress_ratio(baseline, latest, target, by, latest_year, ind.target_year) if level_like and latest_year else None,
            "basis": basis, "n_obs": n_obs, "model": model, "decided_by": decided,
            "category_zh": cz, "category_en": ce, "likelihood_zh": lz, "likelihood_en": le, "reason": ""}


def plan_summary(plans, probs: pd.DataFrame, met_draws: dict, scenario: str) -> pd.DataFrame:
    rows = []
    p_met = probs.set_index(["plan", "indicator"]).p_met
    for p in plans:
        for attr in ("all", "expected", "binding"):
            ids = [i.id for i in p.indicators if (attr == "all" or i.attribute == attr) and (p.id, i.id) in met_draws]
            total = sum(1 for i in p.indicators if attr == "all" or i.attribute == attr)
            if not total:
                continue
            if ids:
                mat = np.stack([met_draws[(p.id, i)] for i in ids], axis=1)
                n_met = mat.sum(1)
                # the expected number is the sum of the probabilities (exact: no Monte Carlo
                # noise from the joint draws); P(all) and P(≥ 80 %) need the joint draws
                expected = float(sum(p_met.loc[(p.id, i)] for i in ids))
                rows.append(dict(plan=p.id, scenario=scenario, attribute=attr, targets=total, evaluable=len(ids),
                                 expected_met=expected, p_all_met=float((n_met == len(ids)).mean()),
                                 p_80pct_met=float((n_met >= math.ceil(0.8 * len(ids))).mean())))
            else:
                rows.append(dict(plan=p.id, scenario=scenario, attribute=attr, targets=total, evaluable=0,
                                 expected_met=np.nan, p_all_met=np.nan, p_80pct_met=np.nan))
    return pd.DataFrame(rows)


def inverse_query(result: RunResult, prob: float) -> pd.DataFrame:
    """The target value reachable with probability ``prob`` for each indicator."""
    rows = []
    pr = result.probabilities.set_index(["plan", "indicator"])
    for (pid, iid), m in result.metrics.items():
        comp = pr.loc[(pid, iid), "comparator"]
        v = float(np.quantile(m, 1 - prob)) if comp in (">=", ">") else float(np.quantile(m, prob))
        r = pr.loc[(pid, iid)]
        rows.append(dict(plan=pid, indicator=iid, name_zh=r["name_zh"], name_en=r["name_en"], comparator=comp,
                         target=r["target"], reachable=v, unit=r["unit"], probability=prob))
    return pd.DataFrame(rows)
