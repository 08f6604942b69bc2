"""Scenario files (DESIGN.md §3): loading, validation and applying adjustments.

A scenario changes assumptions, never data: adjustments act on the simulated paths
of the indicators they match, on the model's scale (log or logit), after the last
year the model has seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, Problems, allowed, did_you_mean
from .registry import CATEGORIES, CATEGORY_ZH, Registry
from .yamlio import line_of, load_yaml, strip_lines, user_keys

SCENARIO_KEYS = {"name", "description", "plans", "as_of", "draws", "seed", "adjustments", "shocks", "model"}
MATCH_KEYS = {"plan", "indicator", "series", "category", "jurisdiction"}
KINDS = {"growth_shift", "level", "fixed_rate", "target_path", "target", "additions"}
ADJ_KEYS = {"match", "note"} | KINDS
SHOCK_KEYS = {"name", "probability", "years", "match", "effect", "note"}
DEFAULT_DRAWS = 4000  # keeps every Monte Carlo standard error ≤ 0.5/√4000 ≈ 0.008
MAX_DRAWS = 200_000


@dataclass
class Adjustment:
    match: dict
    kind: str
    spec: dict
    where: str = ""     # line (or key) in the scenario file, for messages

    def matches(self, plan, ind) -> bool:
        m = self.match
        checks = [("plan", plan.id), ("indicator", ind.id), ("series", ind.series), ("jurisdiction", plan.jurisdiction)]
        for key, value in checks:
            if key in m and value not in _as_list(m[key]):
                return False
        if "category" in m and ind.category not in [CATEGORY_ZH.get(c, c) for c in _as_list(m["category"])]:
            return False
        return True


@dataclass
class Shock:
    name: str
    probability: float
    match: dict
    effect: dict
    years: list[int] | None = None

    def matches(self, plan, ind) -> bool:
        return Adjustment(self.match, "shock", {}).matches(plan, ind)


@dataclass
class Scenario:
    name: str
    description: dict
    plans: list[str] | str = "all"
    as_of: int | None = None
    draws: int = DEFAULT_DRAWS
    seed: int = 1
    model: str = "hierarchical"
    adjustments: list[Adjustment] = field(default_factory=list)
    shocks: list[Shock] = field(default_factory=list)
    file: str = ""
    raw: dict = field(default_factory=dict)

    def plan_ids(self, reg: Registry) -> list[str]:
        if self.plans == "all":
            return list(reg.plans)
        return list(self.plans)


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _num(problems, path, where, value, what, lo=None, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.add(path, where, f"{what} must be a number, got {value!r}")
        return None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f"≥ {lo}"
        problems.add(path, where, f"{what} = {value} is impossible", f"use a value {rng}")
        return None
    return float(value)


def load_scenario(path, reg: Registry, problems: Problems | None = None) -> Scenario:
    own = problems is None
    problems = problems or Problems()
    path = Path(path)
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        problems.add(path, "", "a scenario must be a mapping (name, description, plans, adjustments …)")
        problems.raise_if_any()
    for k in user_keys(doc):
        if k not in SCENARIO_KEYS:
            problems.add(path, line_of(doc, k), f"unknown key '{k}'", did_you_mean(k, SCENARIO_KEYS) or allowed(SCENARIO_KEYS))
    name = str(doc.get("name") or path.stem)
    desc = doc.get("description") or {}
    if isinstance(desc, str):
        desc = {"zh": desc, "en": desc}
    plans = doc.get("plans", "all")
    if plans != "all":
        plans = _as_list(plans)
        for p in plans:
            if p not in reg.plans:
                problems.add(path, line_of(doc, "plans"), f"unknown plan '{p}'", did_you_mean(p, reg.plans) or allowed(reg.plans))
    as_of = doc.get("as_of")
    if as_of is not None:
        as_of = _num(problems, path, line_of(doc, "as_of"), as_of, "as_of", 1990, 2100)
        as_of = int(as_of) if as_of is not None else None
    draws = doc.get("draws", DEFAULT_DRAWS)
    draws = _num(problems, path, line_of(doc, "draws"), draws, "draws", 1, MAX_DRAWS)
    seed = doc.get("seed", 1)
    seed = _num(problems, path, line_of(doc, "seed"), seed, "seed", 0)
    model = doc.get("model", "hierarchical")
    from models import FORECASTERS

    if model not in FORECASTERS:
        problems.add(path, line_of(doc, "model"), f"unknown model '{model}'", did_you_mean(model, FORECASTERS) or allowed(FORECASTERS))
    adjustments = []
    for i, a in enumerate(doc.get("adjustments") or []):
        adj = _load_adjustment(path, i, a, reg, problems)
        if adj:
            adjustments.append(adj)
    shocks = []
    for i, s in enumerate(doc.get("shocks") or []):
        sh = _load_shock(path, i, s, reg, problems)
        if sh:
            shocks.append(sh)
    sc = Scenario(name, strip_lines(desc), plans, as_of, int(draws or 1), int(seed or 0), model, adjustments, shocks,
                  str(path), strip_lines(doc))
    _check_matches(sc, reg, problems)
    if own:
        problems.raise_if_any()
        sc.warnings = problems.warnings
    return sc


def _check_match(path, where, m, reg, problems) -> bool:
    if m is None:
        return True
    if not isinstance(m, dict):
        problems.add(path, where, "match must be a mapping of plan / indicator / series / category / jurisdiction")
        return False
    ok = True
    for k in user_keys(m):
        if k not in MATCH_KEYS:
            problems.add(path, line_of(m, k), f"unknown match key '{k}'", did_you_mean(k, MATCH_KEYS) or allowed(MATCH_KEYS))
            ok = False
    checks = {"plan": reg.plans, "series": reg.series, "jurisdiction": reg.jurisdictions,
              "category": list(CATEGORIES) + list(CATEGORY_ZH)}
    for k, choices in checks.items():
        for v in _as_list(m.get(k, [])):
            if v not in choices:
                problems.add(path, line_of(m, k), f"unknown {k} '{v}'", did_you_mean(v, choices) or allowed(choices))
                ok = False
    return ok


def _load_adjustment(path, i, a, reg, problems):
    where = line_of(a) or f"key adjustments[{i}]"
    if not isinstance(a, dict):
        problems.add(path, where, "each adjustment must be a mapping with 'match' and one change")
        return None
    for k in user_keys(a):
        if k not in ADJ_KEYS:
            problems.add(path, line_of(a, k), f"unknown key '{k}' in adjustment", did_you_mean(k, ADJ_KEYS) or allowed(ADJ_KEYS))
            return None
    kinds = [k for k in user_keys(a) if k in KINDS]
    if len(kinds) != 1:
        problems.add(path, where, f"an adjustment needs exactly one of {', '.join(sorted(KINDS))}; found {kinds or 'none'}",
                     "split it into separate adjustments")
        return None
    kind = kinds[0]
    spec = a[kind]
    spec = strip_lines(spec) if isinstance(spec, dict) else ({} if spec in (True, None) and kind == "target_path" else spec)
    if not _check_match(path, line_of(a, "match"), a.get("match") or {}, reg, problems):
        return None
    w = line_of(a, kind)
    if kind == "growth_shift":
        spec = spec if isinstance(spec, dict) else {"mean": spec}
        if _num(problems, path, w, spec.get("mean"), "growth_shift.mean", -1, 1) is None:
            return None
        if _num(problems, path, w, spec.get("sd", 0), "growth_shift.sd", 0, 1) is None:
            return None
    elif kind == "fixed_rate":
        spec = spec if isinstance(spec, dict) else {"rate": spec}
        if _num(problems, path, w, spec.get("rate"), "fixed_rate.rate", -0.9, 10) is None:
            return None
    elif kind == "level":
        if not isinstance(spec, dict) or "year" not in spec or "value" not in spec:
            problems.add(path, w, "level needs {year, value, sd}", "e.g. level: {year: 2025, value: 180, sd: 10}")
            return None
        if _num(problems, path, w, spec["value"], "level.value", 0) is None or \
                _num(problems, path, w, spec.get("sd", 0), "level.sd", 0) is None or \
                _num(problems, path, w, spec["year"], "level.year", 1990, 2100) is None:
            return None
    elif kind == "target":
        spec = spec if isinstance(spec, dict) else {"value": spec}
        if _num(problems, path, w, spec.get("value"), "target.value") is None:
            return None
    elif kind == "additions":
        spec = spec if isinstance(spec, dict) else {"mean": spec}
        if _num(problems, path, w, spec.get("mean"), "additions.mean", 0, 1e6) is None or \
                _num(problems, path, w, spec.get("sd", 0), "additions.sd", 0) is None:
            return None
    years = spec.get("years") if isinstance(spec, dict) else None
    if years is not None and not (isinstance(years, list) and all(isinstance(y, int) for y in years)):
        problems.add(path, w, "years must be a list of years, e.g. [2025, 2026]")
        return None
    return Adjustment(strip_lines(a.get("match") or {}), kind, spec, where)


def _load_shock(path, i, s, reg, problems):
    where = line_of(s) or f"key shocks[{i}]"
    if not isinstance(s, dict):
        problems.add(path, where, "each shock must be a mapping with name, probability, match, effect")
        return None
    for k in user_keys(s):
        if k not in SHOCK_KEYS:
            problems.add(path, line_of(s, k), f"unknown key '{k}' in shock", did_you_mean(k, SHOCK_KEYS) or allowed(SHOCK_KEYS))
            return None
    p = _num(problems, path, line_of(s, "probability"), s.get("probability"), "probability", 0, 1)
    if p is None:
        return None
    if not _check_match(path, line_of(s, "match"), s.get("match") or {}, reg, problems):
        return None
    eff = strip_lines(s.get("effect") or {})
    if set(eff) - {"growth_shift"} or "growth_shift" not in eff:
        problems.add(path, line_of(s, "effect"), "a shock's effect must be {growth_shift: {mean, sd}}",
                     "e.g. effect: {growth_shift: {mean: -0.10, sd: 0.05}}")
        return None
    gs = eff["growth_shift"] if isinstance(eff["growth_shift"], dict) else {"mean": eff["growth_shift"]}
    if _num(problems, path, line_of(s, "effect"), gs.get("mean"), "effect.growth_shift.mean", -1, 1) is None:
        return None
    return Shock(str(s.get("name", f"shock{i}")), p, strip_lines(s.get("match") or {}), {"growth_shift": gs}, s.get("years"))


def _check_matches(sc: Scenario, reg: Registry, problems: Problems):
    """Warn about adjustments that match nothing; reject contradictory ones."""
    plans = [reg.plans[p] for p in sc.plan_ids(reg) if p in reg.plans]
    for adj in sc.adjustments + sc.shocks:
        if not any(adj.matches(p, i) for p in plans for i in p.indicators):
            where = adj.where if isinstance(adj, Adjustment) else ""
            what = "this adjustment" if isinstance(adj, Adjustment) else f"shock '{adj.name}'"
            problems.add(sc.file, where, f"{what} matches no indicator of the selected plans "
                         f"({', '.join(p.id for p in plans)}); it changes nothing",
                         "check the match keys (plan, indicator, series, category) against `ipsim plans show`",
                         level="warning")
    exclusive = {"fixed_rate", "target_path", "additions"}
    for p in plans:
        for ind in p.indicators:
            hits = [a for a in sc.adjustments if a.kind in exclusive and a.matches(p, ind)]
            if len({a.kind for a in hits}) > 1 or sum(a.kind == "fixed_rate" for a in hits) > 1:
                problems.add(sc.file, hits[-1].where,
                             f"contradictory adjustments on {p.id}/{ind.id}: " + ", ".join(a.kind for a in hits),
                             "fixed_rate, target_path and additions each replace the trend; keep one")
            targets = [a for a in sc.adjustments if a.kind == "target" and a.matches(p, ind)]
            if len({a.spec["value"] for a in targets}) > 1:
                problems.add(sc.file, targets[-1].where, f"two different what-if targets for {p.id}/{ind.id}", "keep one")


# --------------------------------------------------------------------------- applying

def apply_adjustments(z: np.ndarray, years: np.ndarray, start: float, adjs, kind_tr, rng) -> np.ndarray:
    """Apply growth_shift / fixed_rate / level to transformed paths ``z`` (draw, year).

    ``start`` is the last year the model has seen: only later years change.
    ``kind_tr`` = (forward, inverse) for the series' scale.
    """
    fwd, inv = kind_tr
    z = z.copy()
    future = years > start
    for adj in adjs:
        sp = adj.spec
        active = future & (np.isin(years, sp["years"]) if sp.get("years") else True)
        if adj.kind == "growth_shift":
            g = rng.normal(sp["mean"], sp.get("sd", 0.0), size=(z.shape[0], 1))
            z += np.cumsum(active[None, :] * g, axis=1)
        elif adj.kind == "fixed_rate":
            last = np.where(years <= start)[0]
            anchor = z[:, last[-1]] if len(last) else z[:, 0]
            x0 = inv(anchor)
            steps = np.cumsum(active)
            z = np.where(active[None, :], fwd(x0[:, None] * (1 + sp["rate"]) ** steps[None, :]), z)
        elif adj.kind == "level":
            yi = np.where(years == int(sp["year"]))[0]
            if len(yi):
                new = fwd(np.maximum(rng.normal(sp["value"], sp.get("sd", 0.0), size=z.shape[0]), 0))
                diff = new - z[:, yi[0]]
                z = z + (years >= int(sp["year"]))[None, :] * diff[:, None]
    return z


def apply_shocks(z: np.ndarray, years: np.ndarray, start: float, hits: dict, shocks) -> np.ndarray:
    """Add each shock's growth effect from the year it hits onward (a level effect);
    ``hits[name]`` (draw, year) is drawn once per run, so one draw hits every matched
    indicator together — correlated risk."""
    z = z.copy()
    for sh in shocks:
        h = hits[sh.name] & (years > start)[None, :]
        eff = hits[sh.name + ":size"]
        z += np.cumsum(h * eff, axis=1)
    return z


def draw_shocks(shocks, years: np.ndarray, draws: int, rng) -> dict:
    out = {}
    for sh in shocks:
        allowed_years = np.isin(years, sh.years) if sh.years else np.ones(len(years), bool)
        out[sh.name] = (rng.random((draws, len(years))) < sh.probability) & allowed_years[None, :]
        gs = sh.effect["growth_shift"]
        out[sh.name + ":size"] = rng.normal(gs["mean"], gs.get("sd", 0.0), size=(draws, len(years)))
    return out


def what_if_target(sc: Scenario, plan, ind):
    for a in sc.adjustments:
        if a.kind == "target" and a.matches(plan, ind):
            return float(a.spec["value"])
    return ind.target


def raise_problems(problems: Problems):
    if problems.errors:
        raise InputError(problems.errors)
