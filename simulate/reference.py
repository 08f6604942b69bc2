"""The reference class: past targets with known outcomes, as one tidy table.

Two sources, never counted twice:

* ``data/reference/past_outcomes.csv`` — targets of earlier plans read from public
  statements (national 十二五/十三五/十四五, provinces, cities), each with its source
  and quote, ``met`` yes / no / unclear and ``use`` yes / no with the reason
  (unclear outcomes and aggregate statements are kept but not fitted);
* finished plans in the registry (``suzhou-2016``, ``china-2016``, ``china-2021`` …)
  whose targets the observations decide: the outcome comes from the data, the
  features from the plan file.  A CSV row that repeats such a target names it in
  ``plan_ref`` and is used only when the data do not decide it.

:func:`reference_cases` returns every case with ``use`` and ``reason``;
:func:`target_features` describes a target of any plan in the same terms, for the
outside view's prediction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.outside import KIND_GROUP, LEVEL_OF, ambition
from models.posterior_file import write_cache_entry

from .errors import Problems, allowed
from .tables import parse_number, read_table

REFERENCE_FILE = Path("data") / "reference" / "past_outcomes.csv"
REF_COLUMNS = ["case", "plan_ref", "jurisdiction", "level", "plan", "indicator_zh", "kind", "measure", "attribute",
               "baseline_year", "baseline", "target_year", "target", "comparator", "outcome_year", "outcome", "met",
               "use", "reason", "source_url", "quote", "note"]
REF_KINDS = {"count", "flow", "stock", "ratio", "percent", "score"}
REF_MEASURES = {"level", "cumulative", "increment"}
REF_LEVELS = {"nation", "province", "city", "county", "district"}
# A plan counts as finished — its decided targets join the reference class — once its
# last year is before this one (the data of the last year are published the year after).
CURRENT_YEAR = 2026


def load_reference_file(path: Path, problems: Problems) -> pd.DataFrame:
    """The curated cases, checked row by row (file, line, what is wrong)."""
    header, rows = read_table(path)
    missing = [c for c in REF_COLUMNS if c not in header]
    if missing:
        problems.add(path, "line 1", f"missing column(s) {', '.join(missing)}", "the header must be: " + ",".join(REF_COLUMNS))
        return pd.DataFrame(columns=REF_COLUMNS + ["line"])
    out, seen = [], set()
    for line, r in rows:
        where = f"line {line}"
        case = r["case"].strip()
        if not case:
            problems.add(path, where, "empty case id", "give every case a unique id")
            continue
        if case in seen:
            problems.add(path, where, f"duplicated case id '{case}'", "give every case a unique id")
        seen.add(case)
        if r["met"] not in ("yes", "no", "unclear"):
            problems.add(path, where, f"met '{r['met']}' is not yes / no / unclear", allowed(["yes", "no", "unclear"]))
        if r["use"] not in ("yes", "no"):
            problems.add(path, where, f"use '{r['use']}' is not yes / no", "use: yes to fit the case, no with a reason")
        if r["use"] == "no" and not r["reason"].strip():
            problems.add(path, where, f"case '{case}' is not used but gives no reason", "say why in the reason column")
        if r["use"] == "yes":
            if r["met"] == "unclear":
                problems.add(path, where, f"case '{case}' has an unclear outcome but use: yes",
                             "set use: no with the reason, or state the outcome")
            if r["kind"] not in REF_KINDS:
                problems.add(path, where, f"kind '{r['kind']}' of a used case is not one of {', '.join(sorted(REF_KINDS))}")
            if r["measure"] not in REF_MEASURES:
                problems.add(path, where, f"measure '{r['measure']}' of a used case is not one of "
                             f"{', '.join(sorted(REF_MEASURES))}")
            if r["level"] not in REF_LEVELS:
                problems.add(path, where, f"level '{r['level']}' is not one of {', '.join(sorted(REF_LEVELS))}")
            for col in ("baseline_year", "target_year"):
                if parse_number(r[col]) is None:
                    problems.add(path, where, f"{col} '{r[col]}' of a used case is not a year")
        for col in ("baseline", "target", "outcome"):
            if r[col].strip() and parse_number(r[col]) is None:
                problems.add(path, where, f"{col} '{r[col]}' is not a number", "digits only, or leave it empty")
        if not (r["source_url"].strip() and r["quote"].strip()):
            problems.add(path, where, f"case '{case}' lacks a source or a quote", "every case needs both")
        out.append({**{c: r.get(c, "") for c in REF_COLUMNS}, "line": line})
    df = pd.DataFrame(out, columns=REF_COLUMNS + ["line"])
    for col in ("baseline_year", "target_year", "baseline", "target", "outcome"):
        df[col] = df[col].map(lambda v: parse_number(v) if str(v).strip() else np.nan).astype(float)
    return df


def _observed_value(reg, jur, code, year):
    from .engine import observed_index

    return observed_index(reg).get((jur, code), {}).get(int(year)) if year is not None else None


def target_features(reg, plan, ind, target=None) -> dict:
    """The outside view's description of one target of a plan in the registry."""
    s = reg.series[ind.series]
    by = ind.baseline_year or plan.baseline_year
    target = ind.target if target is None else target
    baseline = ind.baseline
    if baseline is None:
        baseline = _observed_value(reg, plan.jurisdiction, ind.series, by)
    jur = reg.jurisdictions.get(plan.jurisdiction)
    horizon = ind.target_year - by
    nwin = (ind.window[1] - ind.window[0] + 1) if ind.window else 1
    amb = ambition(s.kind, ind.measure, ind.comparator, baseline, target, horizon, nwin, s.bounds)
    return dict(plan=plan.id, indicator=ind.id, kind=s.kind, kind_group=KIND_GROUP[s.kind], measure=ind.measure,
                attribute=ind.attribute or "unknown", level=LEVEL_OF.get(jur.level if jur else "city", "city"),
                horizon=float(horizon), ambition=amb, baseline=baseline, target=target)


def plan_cases(reg, plan_ids=None) -> pd.DataFrame:
    """Targets of finished plans that the observations decide, with their outcome."""
    from models import get_forecaster
    from models.panel import Panel

    from .engine import run_scenario
    from .scenario import Scenario

    ids = [p.id for p in reg.plans.values() if p.period[1] < CURRENT_YEAR] if plan_ids is None else list(plan_ids)
    if not ids:
        return pd.DataFrame()
    sc = Scenario(name="outcome", description={}, plans=ids, as_of=None, draws=50, seed=0, model="last")
    fc = get_forecaster("last").fit(Panel.from_registry(reg))
    res = run_scenario(sc, reg, forecaster=fc, outside=False)
    p = res.probabilities
    p = p[(p.decided_by.astype(str) == "data") & p.p_met.notna()]
    rows = []
    for r in p.itertuples():
        plan = reg.plan(r.plan)
        ind = plan.indicator(r.indicator)
        f = target_features(reg, plan, ind)
        rows.append(dict(case=f"{r.plan}/{r.indicator}", plan_ref=f"{r.plan}/{r.indicator}", plan=r.plan,
                         jurisdiction=plan.jurisdiction, indicator_zh=ind.name_zh, met="yes" if r.p_met >= 0.5 else "no",
                         use="yes", reason="", source=f"plan {r.plan} ({Path(plan.file).name}) and observations",
                         quote=ind.quote, target_year=ind.target_year, **{k: f[k] for k in
                         ("kind", "kind_group", "measure", "attribute", "level", "horizon", "ambition", "baseline", "target")}))
    return pd.DataFrame(rows)


def _cases_cache_file(reg) -> Path | None:
    """Where the table of :func:`reference_cases` for these inputs is kept between runs.

    Judging the finished plans takes about half a second of every run (a whole scenario
    over three plans); the table depends only on the input files, the plans and
    observations as loaded, and ipsim's own code — all in the key, so an edited file,
    an observation added in memory or a new version of the code computes it again."""
    import hashlib

    from models.hierarchical import default_cache_dir

    h = hashlib.sha256()
    h.update(f"{reg.fingerprint()} pandas {pd.__version__}".encode())
    h.update(pd.util.hash_pandas_object(reg.observations.astype(str), index=False).values.tobytes())
    h.update(repr(sorted(reg.plans.items())).encode())
    root = Path(__file__).resolve().parents[1]
    for pkg in ("simulate", "models"):
        for f in sorted((root / pkg).glob("*.py")):
            h.update(f.name.encode() + f.read_bytes())
    return default_cache_dir() / f"reference-cases-{h.hexdigest()[:20]}.pkl"


def reference_cases(reg, problems: Problems | None = None) -> pd.DataFrame:
    """Every case (curated file + finished plans) with ``use`` and ``reason``."""
    cached = getattr(reg, "_reference_cases", None)
    if problems is None and cached is not None and cached[0] is reg.observations:
        return cached[1].copy()
    disk = _cases_cache_file(reg) if problems is None else None
    if disk is not None and disk.exists():
        try:
            out = pd.read_pickle(disk)
            reg._reference_cases = (reg.observations, out)
            return out.copy()
        except Exception:  # noqa: BLE001 — a damaged entry is recomputed (and rewritten) below
            disk.unlink(missing_ok=True)
    own = problems is None
    problems = problems or Problems()
    path = reg.home / REFERENCE_FILE
    ext = load_reference_file(path, problems) if path.exists() else pd.DataFrame(columns=REF_COLUMNS)
    if own:
        problems.raise_if_any()
    from_plans = plan_cases(reg)
    decided = set(from_plans.plan_ref) if len(from_plans) else set()
    rows = []
    for r in ext.itertuples():
        use, reason = r.use, r.reason
        if r.plan_ref and r.plan_ref in decided:
            use, reason = "no", f"decided by the data of plan {r.plan_ref.split('/')[0]} (counted there)"
        kind = r.kind if r.kind in REF_KINDS else ""
        horizon = r.target_year - r.baseline_year if r.target_year == r.target_year and r.baseline_year == r.baseline_year else np.nan
        amb = (ambition(kind, r.measure, r.comparator or ">=", r.baseline if r.baseline == r.baseline else None,
                        r.target if r.target == r.target else None, horizon,
                        int(horizon) if r.measure == "cumulative" and horizon == horizon else 1)
               if kind and horizon == horizon else None)
        rows.append(dict(case=r.case, plan_ref=r.plan_ref, plan=r.plan_ref.split("/")[0] if r.plan_ref else r.plan,
                         jurisdiction=r.jurisdiction, indicator_zh=r.indicator_zh, met=r.met, use=use, reason=reason,
                         source=r.source_url, quote=r.quote, target_year=r.target_year, kind=kind,
                         kind_group=KIND_GROUP.get(kind, ""), measure=r.measure, attribute=r.attribute or "unknown",
                         level=LEVEL_OF.get(r.level, "city"), horizon=horizon, ambition=amb,
                         baseline=r.baseline, target=r.target))
    cols = ["case", "plan_ref", "plan", "jurisdiction", "indicator_zh", "met", "use", "reason", "source", "quote",
            "target_year", "kind", "kind_group", "measure", "attribute", "level", "horizon", "ambition", "baseline",
            "target"]
    parts = [f for f in (pd.DataFrame(rows, columns=cols), from_plans) if len(f)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    out["attribute"] = out["attribute"].replace("", "unknown")
    reg._reference_cases = (reg.observations, out)   # once per registry: it judges the finished plans
    if disk is not None:   # a read-only cache directory: the table is simply recomputed next time
        write_cache_entry(disk, out.to_pickle)
    return out.copy()


def fitting_cases(cases: pd.DataFrame) -> pd.DataFrame:
    return cases[(cases.use == "yes") & cases.met.isin(["yes", "no"])].assign(
        met=lambda d: (d.met == "yes").astype(int)).reset_index(drop=True)


def class_rate(cases: pd.DataFrame, kind_group: str) -> tuple[int, int]:
    """(met, n) among fitted cases of the same kind group — the one-line reason."""
    c = cases[cases.kind_group == kind_group]
    return int(c.met.sum()), int(len(c))
