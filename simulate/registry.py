"""The registry: series, jurisdictions, plans and observations, loaded and checked.

One obvious place for input loading and validation.  ``Registry.load`` reads the
shipped ``data/`` directory plus any ``--plan-file`` / ``--data`` files a user
passes, and raises :class:`~simulate.errors.InputError` listing every problem
(file, line or key, what to do) if anything is wrong.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, Problem, Problems, allowed, did_you_mean
from .tables import parse_number, read_table
from .yamlio import line_of, load_yaml, strip_lines, user_keys

KINDS = {"stock", "flow", "ratio", "percent", "score", "count"}
LEVELS = {"nation", "province", "city", "county", "district"}
MEASURES = {"level", "cumulative", "increment", "relative"}
COMPARATORS = {">=", ">", "<=", "<"}
ATTRIBUTES = {"expected": "expected", "binding": "binding", "预期性": "expected", "约束性": "binding",
              "预期值": "expected"}
CATEGORIES = {"creation": "创造", "utilization": "运用", "protection": "保护", "management": "管理",
              "service": "服务", "environment": "环境", "talent": "人才"}
CATEGORY_ZH = {v: k for k, v in CATEGORIES.items()}
RELIABILITY = ("official", "secondary", "estimate")
PERIOD_RX = re.compile(r"^(full|m(\d{1,2})-m(\d{1,2})|end-m(\d{1,2})|sum-(\d{4})-(\d{4}))$")

PLAN_KEYS = {"id", "name_zh", "name_en", "jurisdiction", "issued", "period", "baseline_year", "source",
             "notes", "indicators", "excluded", "status"}
INDICATOR_KEYS = {"id", "name_zh", "name_en", "series", "category", "attribute", "measure", "window",
                  "target", "comparator", "target_year", "baseline", "baseline_year", "quote",
                  "interpretation", "note", "line", "relative_to", "source_url", "confidence", "unit"}
SERIES_KEYS = {"code", "name_zh", "name_en", "unit", "kind", "family", "bounds", "cumulative", "census_break"}
OBS_COLUMNS = ["jurisdiction", "series", "year", "value", "period", "reliability", "source", "note"]
OPTIONAL_OBS_COLUMNS = ["lower_bound", "quote", "name_zh", "unit"]  # name_zh/unit: template help, ignored


@dataclass(frozen=True)
class Series:
    code: str
    name_zh: str
    name_en: str
    unit: str
    kind: str
    family: str
    bounds: tuple[float, float] | None = None
    cumulative: bool = False
    census_break: int | None = None

    @property
    def monotone(self) -> bool:
        """Running totals (累计) never fall: a target once reached stays reached."""
        return self.cumulative


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    name_zh: str
    name_en: str
    level: str
    parent: str | None


@dataclass
class Indicator:
    id: str
    name_zh: str
    name_en: str
    series: str
    category: str
    attribute: str
    measure: str
    target: float | None
    target_year: int
    comparator: str = ">="
    window: tuple[int, int] | None = None
    baseline: float | None = None
    baseline_year: int | None = None
    quote: str = ""
    interpretation: str = ""
    note: str = ""
    line: int | None = None
    relative_to: dict | None = None

    @property
    def evaluable(self) -> bool:
        return self.target is not None


@dataclass
class Plan:
    id: str
    name_zh: str
    name_en: str
    jurisdiction: str
    period: tuple[int, int]
    baseline_year: int
    indicators: list[Indicator]
    source: str = ""
    issued: str | None = None
    notes: str = ""
    excluded: list[dict] = field(default_factory=list)
    file: str = ""

    def indicator(self, ind_id: str) -> Indicator:
        for ind in self.indicators:
            if ind.id == ind_id:
                return ind
        raise KeyError(ind_id)


def find_home() -> Path:
    """The directory holding data/ and scenarios/: $IPSIM_HOME, else the nearest
    parent of the working directory with data/series.yaml (a clone, or a user's own
    registry), else the source tree of an editable install, else the registry shipped
    inside the installed package (``simulate/_home``, read with importlib.resources)."""
    env = os.environ.get("IPSIM_HOME")
    if env:
        return Path(env)
    here = Path.cwd()
    for p in (here, *here.parents):
        if (p / "data" / "series.yaml").exists():
            return p
    source = Path(__file__).resolve().parents[1]
    if (source / "data" / "series.yaml").exists():
        return source
    return shipped_home()


def shipped_home() -> Path:
    """The registry inside the installed package (a wheel maps the repository's
    top-level data/ and scenarios/ there)."""
    from importlib.resources import files

    return Path(str(files("simulate._home")))


# --------------------------------------------------------------------------- loaders

def load_series(path: Path, problems: Problems) -> dict[str, Series]:
    doc = load_yaml(path)
    items = doc.get("series") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        problems.add(path, "key series", "expected a list under 'series'", "see data/series.yaml for the format")
        return {}
    out = {}
    for i, s in enumerate(items):
        where = line_of(s) or f"key series[{i}]"
        if not isinstance(s, dict):
            problems.add(path, where, "each series must be a mapping")
            continue
        for k in user_keys(s):
            if k not in SERIES_KEYS:
                problems.add(path, line_of(s, k), f"unknown key '{k}'", did_you_mean(k, SERIES_KEYS) or allowed(SERIES_KEYS))
        missing = [k for k in ("code", "name_zh", "unit", "kind", "family") if not s.get(k)]
        if missing:
            problems.add(path, where, f"missing {', '.join(missing)}", "every series needs code, name_zh, unit, kind, family")
            continue
        if s["kind"] not in KINDS:
            problems.add(path, line_of(s, "kind"), f"unknown kind '{s['kind']}'", did_you_mean(s["kind"], KINDS) or allowed(KINDS))
            continue
        bounds = s.get("bounds")
        if s["kind"] in ("percent", "score") and bounds is None:
            bounds = [0.0, 100.0]
        if bounds is not None and (not isinstance(bounds, list) or len(bounds) != 2 or bounds[0] >= bounds[1]):
            problems.add(path, line_of(s, "bounds"), "bounds must be [low, high] with low < high")
            continue
        if s["code"] in out:
            problems.add(path, where, f"series code '{s['code']}' is defined twice", "keep one entry")
        out[s["code"]] = Series(s["code"], s["name_zh"], s.get("name_en", s["code"]), str(s["unit"]), s["kind"],
                                s["family"], tuple(float(b) for b in bounds) if bounds else None,
                                bool(s.get("cumulative", False)), s.get("census_break"))
    return out


def load_jurisdictions(path: Path, problems: Problems) -> dict[str, Jurisdiction]:
    doc = load_yaml(path)
    items = doc.get("jurisdictions") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        problems.add(path, "key jurisdictions", "expected a list under 'jurisdictions'")
        return {}
    out = {}
    for j in items:
        out[j["code"]] = Jurisdiction(j["code"], j["name_zh"], j.get("name_en", j["code"]), j["level"], j.get("parent"))
    for j in out.values():
        if j.level not in LEVELS:
            problems.add(path, j.code, f"unknown level '{j.level}'", allowed(LEVELS))
        if j.parent and j.parent not in out:
            problems.add(path, j.code, f"unknown parent '{j.parent}'", did_you_mean(j.parent, out))
    return out


def _int(v) -> int | None:
    try:
        if isinstance(v, bool):
            return None
        f = float(v)
        return int(f) if f == int(f) else None
    except (TypeError, ValueError):
        return None


def load_plan(path: Path, series: dict[str, Series], jurisdictions: dict[str, Jurisdiction],
              problems: Problems) -> Plan | None:
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        problems.add(path, "", "a plan file must be a mapping with id, jurisdiction, period and indicators")
        return None
    for k in user_keys(doc):
        if k not in PLAN_KEYS:
            problems.add(path, line_of(doc, k), f"unknown key '{k}'", did_you_mean(k, PLAN_KEYS) or allowed(PLAN_KEYS))
    for k in ("id", "name_zh", "jurisdiction", "period", "baseline_year", "indicators"):
        if doc.get(k) in (None, ""):
            problems.add(path, line_of(doc), f"missing key '{k}'", "see data/plans/wuxi-2024.yaml for an example")
    if any(doc.get(k) in (None, "") for k in ("id", "jurisdiction", "period", "baseline_year", "indicators")):
        return None
    jur = doc["jurisdiction"]
    if isinstance(jur, dict):  # a place not in the registry, declared inline
        need = [k for k in ("code", "name_zh", "level") if not jur.get(k)]
        if need:
            problems.add(path, line_of(doc, "jurisdiction"), f"inline jurisdiction lacks {', '.join(need)}",
                         "give code, name_zh, name_en, level and parent")
            return None
        if jur["level"] not in LEVELS:
            problems.add(path, line_of(doc, "jurisdiction"), f"unknown level '{jur['level']}'", allowed(LEVELS))
        if jur.get("parent") and jur["parent"] not in jurisdictions:
            problems.add(path, line_of(doc, "jurisdiction"), f"unknown parent jurisdiction '{jur['parent']}'",
                         did_you_mean(jur["parent"], jurisdictions) or "use a code from data/jurisdictions.yaml or leave it empty")
        jurisdictions.setdefault(jur["code"], Jurisdiction(jur["code"], jur["name_zh"], jur.get("name_en", jur["code"]),
                                                           jur["level"], jur.get("parent")))
        jur = jur["code"]
    elif jur not in jurisdictions:
        problems.add(path, line_of(doc, "jurisdiction"), f"unknown jurisdiction '{jur}'",
                     did_you_mean(jur, jurisdictions) or "add it to data/jurisdictions.yaml or declare it inline as {code, name_zh, name_en, level, parent}")
    period = doc["period"]
    if not (isinstance(period, list) and len(period) == 2 and all(_int(p) for p in period) and period[0] <= period[1]):
        problems.add(path, line_of(doc, "period"), f"period must be [first, last] years, got {period!r}", "e.g. period: [2024, 2026]")
        return None
    period = (int(period[0]), int(period[1]))
    by = _int(doc["baseline_year"])
    if by is None:
        problems.add(path, line_of(doc, "baseline_year"), "baseline_year must be a year")
        return None
    inds, seen = [], set()
    raw = doc["indicators"]
    if not isinstance(raw, list):
        problems.add(path, line_of(doc, "indicators"), "indicators must be a list")
        return None
    for i, d in enumerate(raw):
        if doc.get("status") == "draft" and isinstance(d, dict) and d.get("series") in (None, ""):
            # `ipsim extract` writes drafts: a target whose wording matched no series code
            # is kept for the reviewer, flagged, and left out of runs until mapped
            problems.add(path, line_of(d, "series") or f"key indicators[{i}]",
                         f"draft indicator '{d.get('id', i)}' has no series code yet", "map it to a code from "
                         "data/series.yaml (or add one) before running", level="warning")
            continue
        ind = _load_indicator(path, i, d, period, by, series, jurisdictions, problems)
        if ind is None:
            continue
        if ind.id in seen:
            problems.add(path, line_of(d, "id"), f"duplicated indicator id '{ind.id}'", "give each indicator a unique id")
        seen.add(ind.id)
        inds.append(ind)
    return Plan(str(doc["id"]), doc["name_zh"], doc.get("name_en", doc["id"]), jur, period, by, inds,
                doc.get("source", ""), str(doc["issued"]) if doc.get("issued") else None, doc.get("notes", ""),
                strip_lines(doc.get("excluded") or []), str(path))


def _load_indicator(path, i, d, period, plan_by, series, jurisdictions, problems) -> Indicator | None:
    key = f"indicators[{i}]"
    if not isinstance(d, dict):
        problems.add(path, f"key {key}", "each indicator must be a mapping")
        return None
    where = lambda k=None: line_of(d, k) or f"key {key}" + (f".{k}" if k else "")  # noqa: E731
    for k in user_keys(d):
        if k not in INDICATOR_KEYS:
            problems.add(path, where(k), f"unknown key '{k}' in indicator '{d.get('id', i)}'",
                         did_you_mean(k, INDICATOR_KEYS) or allowed(INDICATOR_KEYS))
    missing = [k for k in ("id", "series", "measure", "target_year") if d.get(k) in (None, "")]
    if "target" not in d:
        missing.append("target")
    if missing:
        problems.add(path, where(), f"indicator '{d.get('id', i)}' lacks {', '.join(missing)}",
                     "write target: null for a target that cannot be read")
        return None
    ok = True
    s = series.get(d["series"])
    if s is None:
        problems.add(path, where("series"), f"unknown series code '{d['series']}'",
                     did_you_mean(d["series"], series) or "add it to data/series.yaml")
        ok = False
    measure = d["measure"]
    if measure not in MEASURES:
        problems.add(path, where("measure"), f"unknown measure '{measure}'", did_you_mean(measure, MEASURES) or allowed(MEASURES))
        ok = False
    comp = str(d.get("comparator", ">="))
    if comp not in COMPARATORS:
        problems.add(path, where("comparator"), f"unknown comparator '{comp}'", allowed(COMPARATORS))
        ok = False
    cat = d.get("category", "")
    cat = CATEGORY_ZH.get(cat, cat)
    if cat not in CATEGORIES:
        problems.add(path, where("category"), f"unknown category '{d.get('category')}'",
                     did_you_mean(cat, CATEGORIES) or allowed(list(CATEGORIES) + list(CATEGORY_ZH)))
        ok = False
    attr = ATTRIBUTES.get(d.get("attribute", "expected"))
    if attr is None:
        problems.add(path, where("attribute"), f"unknown attribute '{d.get('attribute')}'", "use expected (预期性) or binding (约束性)")
        ok = False
    ty = _int(d["target_year"])
    by = _int(d.get("baseline_year", plan_by))
    if ty is None:
        problems.add(path, where("target_year"), "target_year must be a year")
        return None
    if by is not None and ty <= by:
        problems.add(path, where("target_year"), f"target year {ty} is not after the baseline year {by}",
                     "check target_year and baseline_year")
        ok = False
    target = d.get("target")
    if target is not None and (isinstance(target, bool) or parse_number(target) is None):
        problems.add(path, where("target"), f"target must be a number or null, got {target!r}",
                     "write the number without units, or null if it cannot be read")
        ok = False
    target = None if target is None else parse_number(target)
    baseline = d.get("baseline")
    if baseline is not None and parse_number(baseline) is None:
        problems.add(path, where("baseline"), f"baseline must be a number, got {baseline!r}")
        ok = False
    baseline = None if baseline is None else parse_number(baseline)
    window = d.get("window")
    if measure in ("cumulative", "increment"):
        if window is None:
            window = [period[0], ty] if measure == "cumulative" else [period[0], ty]
        if not (isinstance(window, list) and len(window) == 2 and all(_int(w) for w in window) and window[0] <= window[1]):
            problems.add(path, where("window"), f"window must be [first, last] years, got {window!r}")
            ok = False
        elif window[0] < period[0] or window[1] > period[1]:
            problems.add(path, where("window"), f"window {window} lies outside the plan period {list(period)}",
                         "keep the window inside the plan period")
            ok = False
        elif window[1] != ty:
            problems.add(path, where("window"), f"window ends in {window[1]} but target_year is {ty}",
                         "make the window end in the target year")
            ok = False
    rel = d.get("relative_to")
    if measure == "relative":
        if not isinstance(rel, dict) or not rel.get("jurisdiction"):
            problems.add(path, where("relative_to"), "a relative target needs relative_to: {jurisdiction, series}")
            ok = False
        else:
            rel = strip_lines(rel)
            rel.setdefault("series", d["series"])
            if rel["jurisdiction"] not in jurisdictions:
                problems.add(path, where("relative_to"), f"unknown jurisdiction '{rel['jurisdiction']}'",
                             did_you_mean(rel["jurisdiction"], jurisdictions))
                ok = False
            if rel["series"] not in series:
                problems.add(path, where("relative_to"), f"unknown series '{rel['series']}'", did_you_mean(rel["series"], series))
                ok = False
    if s is not None and measure in ("level", "cumulative", "increment") and target is not None:
        if s.bounds and measure == "level" and not (s.bounds[0] <= target <= s.bounds[1]):
            problems.add(path, where("target"), f"target {target:g} is outside the bounds {list(s.bounds)} of {s.code}",
                         "percent and score targets lie within their bounds")
            ok = False
        if s.kind in ("stock", "flow", "count", "ratio") and target < 0:
            problems.add(path, where("target"), f"negative target {target:g} for a {s.kind} series", "use a value ≥ 0")
            ok = False
    if not ok:
        return None
    return Indicator(str(d["id"]), d.get("name_zh", d["id"]), d.get("name_en", d["id"]), d["series"], cat, attr, measure,
                     target, ty, comp, tuple(int(w) for w in window) if window else None, baseline,
                     by if by != plan_by else None, str(d.get("quote", "")), str(d.get("interpretation", "") or ""),
                     str(d.get("note", "") or ""), _int(d.get("line")), rel if measure == "relative" else None)


def load_observations(paths, series: dict[str, Series], jurisdictions: dict[str, Jurisdiction],
                      problems: Problems) -> pd.DataFrame:
    recs = []
    for path in paths:
        try:
            header, rows = read_table(path)
        except InputError as exc:
            problems.items.extend(exc.problems)
            continue
        missing = [c for c in OBS_COLUMNS if c not in header and c != "note"]
        if missing:
            problems.add(path, "line 1", f"missing column(s) {', '.join(missing)}",
                         "the header must be: " + ",".join(OBS_COLUMNS))
            continue
        extra = [c for c in header if c and c not in OBS_COLUMNS + OPTIONAL_OBS_COLUMNS]
        for c in extra:
            problems.add(path, "line 1", f"unknown column '{c}'",
                         did_you_mean(c, OBS_COLUMNS + OPTIONAL_OBS_COLUMNS) or "remove it", level="warning")
        for line, r in rows:
            if not r.get("value", "").strip():
                continue  # an unfilled template row
            rec = _check_obs_row(path, line, r, series, jurisdictions, problems)
            if rec is not None:
                recs.append(rec)
    df = pd.DataFrame(recs, columns=["jurisdiction", "series", "year", "value", "period", "reliability", "source",
                                     "note", "lower_bound", "file", "line"])
    _check_duplicates(df, problems)
    _check_window_totals(df, problems)
    return df


def _check_window_totals(df: pd.DataFrame, problems: Problems) -> None:
    """A total over several years (sum-Y0-Y1) cannot be smaller than the full-year
    reading of one of its own years: one of the two is mis-read (an annual figure
    that is really a multi-year total, or the other way round)."""
    if df.empty:
        return
    sums = df[df.period.str.startswith("sum-") & ~df.lower_bound.astype(bool) & (df.reliability != "estimate")]
    years = df[(df.period == "full") & ~df.lower_bound.astype(bool) & (df.reliability != "estimate")]
    for r in sums.itertuples():
        y0, y1 = (int(v) for v in r.period[4:].split("-"))
        inside = years[(years.jurisdiction == r.jurisdiction) & (years.series == r.series) & years.year.between(y0, y1)]
        big = inside[inside.value > r.value * 1.01]
        if len(big):
            b = big.iloc[0]
            problems.add(r.file, f"line {r.line}", f"the {y0}–{y1} total {r.value:g} of {r.jurisdiction}/{r.series} is "
                         f"smaller than its own year {int(b.year)} ({b.value:g}, {Path(b.file).name} line {b.line})",
                         "one of them is mis-read: is the annual figure really a multi-year total? fix the period, "
                         "or mark the less credible row reliability: estimate")


def _check_obs_row(path, line, r, series, jurisdictions, problems):
    where = f"line {line}"
    ok = True
    j, s = r.get("jurisdiction", ""), r.get("series", "")
    if j not in jurisdictions:
        problems.add(path, where, f"unknown jurisdiction '{j}'", did_you_mean(j, jurisdictions) or "use a code from data/jurisdictions.yaml")
        ok = False
    ser = series.get(s)
    if ser is None:
        problems.add(path, where, f"unknown series '{s}'", did_you_mean(s, series) or "use a code from data/series.yaml")
        ok = False
    year = _int(parse_number(r.get("year", "")) if r.get("year") else None)
    if year is None or not 1949 <= year <= 2100:
        problems.add(path, where, f"year must be a four-digit year, got '{r.get('year', '')}'")
        ok = False
    value = parse_number(r.get("value", ""))
    if value is None:
        problems.add(path, where, f"value '{r.get('value', '')}' is not a number",
                     "write digits only (no units; 万/亿 must be converted to the series unit)")
        ok = False
    period = r.get("period", "") or "full"
    m = PERIOD_RX.match(period)
    if not m:
        problems.add(path, where, f"unknown period '{period}'", "use full, m1-m9 (partial-year flow), end-m9 (stock before year end) or sum-2016-2020")
        ok = False
    rel = r.get("reliability", "")
    if rel not in RELIABILITY:
        problems.add(path, where, f"reliability '{rel}' is not one of {', '.join(RELIABILITY)}",
                     did_you_mean(rel, RELIABILITY) or "mark how far the figure can be trusted")
        ok = False
    if not r.get("source", "").strip():
        problems.add(path, where, "no source", "every observation needs a source (document, URL or internal statistic name)")
        ok = False
    lb = r.get("lower_bound", "").strip().lower()
    if lb not in ("", "yes", "no", "true", "false", "1", "0"):
        problems.add(path, where, f"lower_bound '{lb}' must be yes or empty")
        ok = False
    if ok and ser is not None:
        if ser.kind in ("stock", "flow", "count", "ratio") and value < 0:
            problems.add(path, where, f"negative value {value:g} for {ser.kind} series '{s}'", "stocks, flows and counts are ≥ 0")
            ok = False
        if ser.bounds and not (ser.bounds[0] <= value <= ser.bounds[1]):
            problems.add(path, where, f"value {value:g} outside the bounds {list(ser.bounds)} of '{s}'",
                         "percent and score values lie within their bounds")
            ok = False
        if m and (m.group(2) or m.group(5)) and ser.kind not in ("flow",):
            problems.add(path, where, f"period '{period}' is for flows, but '{s}' is a {ser.kind}",
                         "use end-mN for a stock read before the year end")
            ok = False
        if m and m.group(4) and ser.kind == "flow":
            problems.add(path, where, f"period '{period}' is for stocks, but '{s}' is a flow", "use m1-mN for a partial-year flow")
            ok = False
    if not ok:
        return None
    return dict(jurisdiction=j, series=s, year=year, value=value, period=period, reliability=rel,
                source=r.get("source", ""), note=r.get("note", ""), lower_bound=lb in ("yes", "true", "1"),
                file=str(path), line=line)


def _more_than_1pct_apart(lo, hi):
    """Two copies of a figure differ, not merely by rounding (scalars or arrays)."""
    return hi - lo > 0.01 * np.maximum(abs(hi), 1e-9)


def _check_duplicates(df: pd.DataFrame, problems: Problems) -> None:
    """Same place, series, year and period with different values is an error unless
    one copy is an estimate.  Values within 1 % are the same figure rounded
    differently (7.4万 vs 73812) and are fine."""
    if df.empty:
        return
    cols = ["jurisdiction", "series", "year", "period"]
    df = df[df.duplicated(cols, keep=False)]   # only figures given more than once
    # Most repeats are mirrors of one release (same value, no bound); the checks below
    # run only where a bound or values more than 1 % apart could raise a problem.
    lb = df.lower_bound.astype(bool)
    agg = df[~lb & (df.reliability != "estimate")].groupby(cols).value.agg(["min", "max", "size"])
    spread = (agg["size"] >= 2) & _more_than_1pct_apart(agg["min"], agg["max"])
    look = set(agg.index[spread]) | set(map(tuple, df.loc[lb, cols].itertuples(index=False)))
    if not look:
        return
    df = df[np.array([k in look for k in zip(*(df[c] for c in cols))], dtype=bool)]
    for key, g in df.groupby(cols):
        # a lower bound (超过 b) and a reading ≥ b say the same thing; a reading below the
        # bound contradicts it
        bounds, g = g[g.lower_bound.astype(bool)], g[~g.lower_bound.astype(bool)]
        for b in bounds.itertuples():
            low = g[(g.reliability != "estimate") & (g.value < b.value * 0.99)]
            if b.reliability != "estimate" and len(low):
                problems.add(b.file, f"line {b.line}", f"lower bound {b.value:g} for {'/'.join(map(str, key))} is above "
                             f"the reading {low.value.iloc[0]:g} ({Path(low.file.iloc[0]).name} line {low.line.iloc[0]})",
                             "mark the less credible row reliability: estimate, or remove it")
        firm = g[g.reliability != "estimate"]
        if len(firm) < 2:
            continue
        lo, hi = firm.value.min(), firm.value.max()
        if _more_than_1pct_apart(lo, hi):
            locs = "; ".join(f"{Path(f).name} line {ln}: {v:g}" for f, ln, v in zip(firm.file, firm.line, firm.value))
            problems.add(firm.file.iloc[-1], f"line {firm.line.iloc[-1]}",
                         f"conflicting values for {key[0]}/{key[1]}/{key[2]}/{key[3]} ({locs})",
                         "mark the less credible row reliability: estimate, or remove it")


# --------------------------------------------------------------------------- registry

@dataclass
class Registry:
    home: Path
    series: dict[str, Series]
    jurisdictions: dict[str, Jurisdiction]
    plans: dict[str, Plan]
    observations: pd.DataFrame
    input_files: list[Path]
    warnings: list[Problem] = field(default_factory=list)

    @classmethod
    def load(cls, home: Path | None = None, plan_files=(), data_files=(), shipped: bool = True) -> "Registry":
        home = Path(home) if home else find_home()
        data = home / "data"
        problems = Problems()
        if not (data / "series.yaml").exists():
            raise InputError(Problem(str(data / "series.yaml"), "", "series registry not found",
                                     "run ipsim from the project directory or set IPSIM_HOME"))
        series = load_series(data / "series.yaml", problems)
        jurs = load_jurisdictions(data / "jurisdictions.yaml", problems)
        plan_paths = (sorted((data / "plans").glob("*.yaml")) if shipped else []) + [Path(p) for p in plan_files]
        plans: dict[str, Plan] = {}
        for p in plan_paths:
            try:
                plan = load_plan(p, series, jurs, problems)
            except InputError as exc:
                problems.items.extend(exc.problems)
                continue
            if plan is None:
                continue
            if plan.id in plans and plans[plan.id].file != str(p):
                problems.add(p, "key id", f"plan id '{plan.id}' is already used by {plans[plan.id].file}",
                             "give the plan a new id")
                continue
            plans[plan.id] = plan
        obs_paths = (sorted((data / "observations").glob("*.csv")) if shipped else []) + [Path(p) for p in data_files]
        obs = load_observations(obs_paths, series, jurs, problems)
        problems.raise_if_any()
        # the reference class of past plans (simulate.reference) is an input of every run
        ref = [data / "reference" / "past_outcomes.csv"] if (data / "reference" / "past_outcomes.csv").exists() else []
        return cls(home, series, jurs, plans, obs,
                   [data / "series.yaml", data / "jurisdictions.yaml", *plan_paths, *obs_paths, *ref], problems.warnings)

    def plan(self, plan_id: str) -> Plan:
        if plan_id not in self.plans:
            raise InputError(Problem("--plan", plan_id, f"unknown plan '{plan_id}'",
                                     did_you_mean(plan_id, self.plans) or allowed(self.plans)))
        return self.plans[plan_id]

    def parent_chain(self, jur: str) -> list[str]:
        chain, j = [], self.jurisdictions.get(jur)
        while j is not None and j.parent:
            chain.append(j.parent)
            j = self.jurisdictions.get(j.parent)
        return chain

    def fingerprint(self) -> str:
        """Hash of every input file, for caching fits and for run manifests."""
        h = hashlib.sha256()
        for p in self.input_files:
            h.update(str(Path(p).name).encode())
            h.update(Path(p).read_bytes())
        return h.hexdigest()[:16]

    def history_count(self, plan: Plan) -> int:
        """How many of a plan's indicators have at least one observation of their own."""
        obs = self.observations
        have = set(zip(obs.jurisdiction, obs.series))
        return sum((plan.jurisdiction, ind.series) in have for ind in plan.indicators)
