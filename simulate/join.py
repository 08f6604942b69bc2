"""Joining the outside view (past plans) with the inside view (the trend model).

The one stated rule (docs/model.md, "Two views, one probability"):

.. math::

    \\operatorname{logit} p_{\\text{met}} = (1 - w)\\,\\operatorname{logit} p_{\\text{outside}}
        + w\\,\\operatorname{logit} p_{\\text{inside}}

a logarithmic opinion pool (Genest & Zidek 1986) whose weight :math:`w` is the share
of the uncertainty about the series' growth that its *own* readings removed — the
pooling factor of Gelman & Pardoe (2006): :math:`w = 1 - \\operatorname{Var}_{\\text{post}}(\\mu_i)
/ \\operatorname{Var}_{\\text{prior}}(\\mu_i)`.  A target whose series has only its
baseline (the growth is the generic prior) takes the reference class; a long history
takes the trend model; in between, both count.  Where the trend model has no reading
of the place at all, :math:`p_{\\text{met}} = p_{\\text{outside}}` (basis
``reference-class``).  A target the data already decide is not re-judged.

Joint draws for the plan summary: in draw :math:`d` the target is met when
:math:`u_d < p_{\\text{met},d}`, where :math:`p_{\\text{met},d}` uses the outside view's
draw :math:`d` (its plan effect is shared by every target of the plan in that draw)
and :math:`u_d` is the rank of the inside view's path :math:`d` among all paths
(so paths that are high for one series and for a correlated one — common shocks —
stay together).  Without an inside view :math:`u_d` is uniform, seeded by the target.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.base import stable_seed

from . import judge
from .reference import class_rate, fitting_cases, reference_cases, target_features

_CACHE: dict = {}
P_CLIP = 1e-4
MIN_CASES = 5   # fewer past targets with a known outcome than this: no outside view
PLANNER_KNOWS = {"additions", "fixed_rate", "target_path", "level"}


def _logit(p):
    p = np.clip(p, P_CLIP, 1 - P_CLIP)
    return np.log(p) - np.log1p(-p)


def known_cases(reg, as_of=None, exclude_plans=()):
    """The fitted reference cases whose outcome was known by ``as_of`` (target year ≤
    as_of), without ``exclude_plans`` (leave one plan out)."""
    fit = fitting_cases(reference_cases(reg))
    if as_of is not None:
        fit = fit[fit.target_year <= as_of]
    if exclude_plans:
        fit = fit[~fit.plan.isin(list(exclude_plans))]
    return fit.reset_index(drop=True)


def outside_view(reg, as_of=None, exclude_plans=(), cache_dir=None):
    """The outside-view model fitted on :func:`known_cases`; cached on disk."""
    from models.hierarchical import default_cache_dir
    from models.outside import OutsideView

    key = (reg.fingerprint(), as_of, tuple(sorted(exclude_plans)))
    if key not in _CACHE:
        _CACHE[key] = OutsideView(cache_dir=cache_dir or default_cache_dir()).fit(
            known_cases(reg, as_of, exclude_plans))
    return _CACHE[key]


def _fit_outside(cases: pd.DataFrame, cache_dir) -> bool:
    """Body of the background fit (a fresh process): the posterior lands in the cache.
    At low priority: on a first run the trend model's compile helper needs the second
    core first (it is on the first run's critical path; this fit is not: it has until
    the trend model's sampling ends), and this fit takes it while the trend model
    finishes its compile alone (models.compile_helper)."""
    import os

    from models.outside import OutsideView

    try:
        os.nice(19)
    except (AttributeError, OSError):
        pass

    OutsideView(cache_dir=cache_dir).fit(cases)
    return True


def start_outside_fit(reg, as_of=None, cache_dir=None):
    """Fit the outside view in a background process if its posterior is not cached;
    returns a ``concurrent.futures.Future`` (None when there is nothing to fit).

    Why: on a first run the trend model compiles for about a minute on one core while
    the other idles; the reference class's own compile and sampling (≈ 16 s even with
    PyTensor's cache warm) can use that core instead of following the trend fit.  The
    background fit writes the same cache file the in-process fit would (same cases, same
    seed, so the same draws); :func:`outside_view` then loads it.  A fresh process
    ("spawn"): forking a process that holds numba's and the sampler's threads is unsafe."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from models.hierarchical import default_cache_dir

    cache_dir = cache_dir or default_cache_dir()
    cases = known_cases(reg, as_of)
    if not _needs_fit(cases, cache_dir):
        return None
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(_fit_outside, cases, cache_dir)
    pool.shutdown(wait=False)          # the worker exits when its one task is done
    return future


def _needs_fit(cases: pd.DataFrame, cache_dir) -> bool:
    from models.outside import OutsideView

    return len(cases) >= MIN_CASES and not OutsideView(cache_dir=cache_dir).cache_path(cases).exists()


def outside_fit_needed(reg, as_of=None, cache_dir=None) -> bool:
    """Whether the outside view for ``as_of`` would have to be fitted (cheap to ask)."""
    from models.hierarchical import default_cache_dir

    return _needs_fit(known_cases(reg, as_of), cache_dir or default_cache_dir())


def _reason(zh: bool, kg: str, met: int, n: int, po, lo, hi, pin, w) -> str:
    from models.outside import KIND_EN, KIND_ZH

    if zh:
        s = f"同类目标（{KIND_ZH[kg]}）历史达成 {met}/{n}；参照组 P={po:.2f}（80%区间 {lo:.2f}–{hi:.2f}）"
        if pin is not None:
            s += f"；趋势模型 P={pin:.2f}，权重 {w:.2f}"
        else:
            s += "；本地无观测，仅用参照组"
        return s
    s = f"similar past targets ({KIND_EN[kg]}) met {met} of {n}; reference class P={po:.2f} (80% {lo:.2f}–{hi:.2f})"
    if pin is not None:
        s += f"; trend model P={pin:.2f}, weight {w:.2f}"
    else:
        s += "; no local reading: reference class only"
    return s


def join_views(rows: list[dict], met_draws: dict, metrics: dict, plans, reg, sc, forecaster, draws: int, seed: int):
    """Add p_inside / p_outside / weight to every row and replace p_met and the
    met-draws by the joined ones (in place).  Returns the reference-class fit's
    diagnostics (:meth:`models.outside.OutsideView.reported`: with its number of
    cases and cache file), or None when there is no reference class."""
    cases = known_cases(reg, sc.as_of)
    if len(cases) < MIN_CASES:
        return None     # a registry without a reference class (a user's own IPSIM_HOME): the trend model alone
    ov = outside_view(reg, sc.as_of)
    told = ov.reported()
    by_key = {(r["plan"], r["indicator"]): r for r in rows}
    feats, keys = [], []
    for p in plans:
        for ind in p.indicators:
            r = by_key[(p.id, ind.id)]
            if r["target"] is None:
                continue
            feats.append(target_features(reg, p, ind, r["target"]))
            keys.append((p.id, ind.id))
    if not feats:
        return told
    F = pd.DataFrame(feats)
    P_out = ov.predict_draws(F, draws, seed)                     # draw × target
    wmap = forecaster.data_weight() if hasattr(forecaster, "data_weight") else {}
    for j, k in enumerate(keys):
        r = by_key[k]
        po = P_out[:, j]
        kg = F.kind_group.iloc[j]
        met_n, n = class_rate(cases, kg)
        r.update(p_outside=float(po.mean()), p_outside_lo=float(np.quantile(po, 0.1)),
                 p_outside_hi=float(np.quantile(po, 0.9)), reference_class=kg, reference_n=n, reference_met=met_n,
                 ambition=F.ambition.iloc[j])
        pin = r.get("p_met")
        has_inside = pin is not None and pin == pin and r.get("basis") not in ("", "scenario-only")
        r["p_inside"] = float(pin) if has_inside else np.nan
        if r.get("decided_by"):
            r["weight_inside"] = 1.0
            continue                                           # the data decide: nothing to join
        if r.get("basis") == "scenario-only":
            continue
        rng = np.random.default_rng([seed, stable_seed(f"{k[0]}/{k[1]}")])
        kinds = set(r.get("scenario_kinds") or [])
        if has_inside and kinds & PLANNER_KNOWS:
            # the scenario replaces the trend with what the planner knows (a pipeline of new
            # units, a fixed rate, a path to the target, a provisional figure): that stands
            r["weight_inside"] = 1.0
            r["reason_zh"] = "情景设定（" + "、".join(sorted(kinds & PLANNER_KNOWS)) + "）取代趋势，不与参照组合成"
            r["reason"] = "scenario assumption (" + ", ".join(sorted(kinds & PLANNER_KNOWS)) + ") replaces the trend; not joined"
            continue
        if has_inside:
            series_key = f"{r['plan_jur']}:{r['series']}"
            w = float(wmap.get(series_key, 1.0)) if wmap is not None else 1.0
            m = metrics[k]
            n_d = len(m)
            # rank of each path (best first for ≥ targets), ties broken at random
            sign = -1.0 if r["comparator"] in (">=", ">") else 1.0
            order = np.lexsort((rng.random(n_d), sign * m))
            u = np.empty(n_d)
            u[order] = (np.arange(n_d) + 0.5) / n_d
            pin_c = pin_s = np.clip(pin, 0.5 / n_d, 1 - 0.5 / n_d)
            # a growth shift or shock moves the trend model's odds; the joined odds move by
            # as much, so a scenario acts on every target, whatever the trend model's weight
            shift = 0.0
            before = r.get("p_inside_before")
            shifted = before is not None and before == before
            if shifted:
                shift = _logit(pin_c) - _logit(np.clip(before, 0.5 / n_d, 1 - 0.5 / n_d))
                pin_c = np.clip(before, 0.5 / n_d, 1 - 0.5 / n_d)
            pj = 1 / (1 + np.exp(-((1 - w) * _logit(po[:n_d]) + w * _logit(pin_c) + shift)))
            r["weight_inside"] = w
            # sensitivities of mean(pj) to the trend model's probabilities, for its Monte
            # Carlo error (engine._mc_errors): logit p_in enters with weight w, or — with a
            # scenario shift — whole, and the unshifted one with weight w − 1
            slope = float(np.mean(pj * (1 - pj)))
            r["_join"] = (slope * (1.0 if shifted else w) / (pin_s * (1 - pin_s)),
                          slope * (w - 1) / (pin_c * (1 - pin_c)) if shifted else 0.0, float(pj.var()))
        else:
            w, pin_c = 0.0, None
            u = rng.random(draws)
            pj = po
            r["_join"] = (0.0, 0.0, float(pj.var()))
            r["weight_inside"] = 0.0
            r["basis"] = "reference-class"
            r["n_obs"] = 0
            r["model"] = "outside"
        hits = u < pj
        met_draws[k] = hits
        p = float(pj.mean())
        r["p_met"] = p            # its Monte Carlo error: engine._mc_errors, from the effective sample size
        cz, ce = judge.category(p, False)
        lz, le = judge.likelihood_words(p)
        r.update(category_zh=cz, category_en=ce, likelihood_zh=lz, likelihood_en=le)
        r["reason_zh"] = _reason(True, kg, met_n, n, r["p_outside"], r["p_outside_lo"], r["p_outside_hi"],
                                 pin if has_inside else None, w)
        r["reason"] = _reason(False, kg, met_n, n, r["p_outside"], r["p_outside_lo"], r["p_outside_hi"],
                              pin if has_inside else None, w)
    return told
