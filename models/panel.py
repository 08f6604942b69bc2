"""The panel: every observed (jurisdiction, series) pair on its transformed scale.

Observations enter as what they are (DESIGN.md §3):

* ``full`` values are readings at the year end (stocks) or for the whole year (flows);
* a stock read before the year end (``end-m9``) is a reading at a fractional time;
* a partial-year flow (``m1-m9``) is annualised (× 12/9), corrected for the
  year-end rush that the years with both a part-year and a full-year reading show
  (see :func:`seasonal_slope`), with extra noise that grows with the missing months —
  it is never taken as a full year, and it is dropped when the full year is known
  (the two are one quantity, not two independent readings);
* a total over several years (``sum-2016-2020``) informs the sum of the path;
* a one-year ``lower_bound`` (超过 b) is read as "a little above b": a reading in
  [b, 1.1 b] (80 % interval) unless an exact figure of that year says more; a lower
  bound on a multi-year total stays censored (the truth is above it).

Observation noise of shares and scores is set on their own scale (points of the
range), not as a relative error: a published share of 13.04 % is exact to its last
digit, and 3 % of it (0.4 points) would swamp its year-to-year movement.

Duplicated figures (mirrors of one release) are counted once, the most reliable copy.
"""
from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .transforms import LOGIT_KINDS, forward, group_of

# Observation noise on the transformed scale by reliability (≈ 1 %, 3 %, 8 % on a log
# scale): an official yearbook figure is nearly exact, a reprint may be rounded or
# mis-dated, a derived figure carries the error of its derivation.
RELIABILITY_SD = {"official": 0.01, "secondary": 0.03, "estimate": 0.08}
RELIABILITY_RANK = {"official": 0, "secondary": 1, "estimate": 2}
# Shares and scores: noise in units of their range (0.05 / 0.1 / 0.5 points of 100),
# turned into logit units at the reading.
BOUNDED_SD = {"official": 0.0005, "secondary": 0.001, "estimate": 0.005}
PARTIAL_EXTRA_SD = 0.25  # × (missing months / 12): seasonality of annualised flows
# 超过 b: the truth read as lying in [b, BOUND_SPAN·b] with 80 % probability
BOUND_SPAN = 1.10
Z80 = 1.2816
# prior on the year-end-rush slope: log(full / annualised part) = β × missing/12,
# β ~ N(0, 0.5²) — flows may be front- or back-loaded; the data decide the sign
SEASONAL_PRIOR_SD = 0.5
_PERIOD = re.compile(r"^(full|m(\d+)-m(\d+)|end-m(\d+)|sum-(\d{4})-(\d{4}))$")


@dataclass
class SeriesInfo:
    key: str            # "wuxi:pct_applications"
    jurisdiction: str
    code: str
    kind: str
    family: str
    bounds: tuple | None
    monotone: bool
    census_break: int | None
    parent: str | None = None   # key of the nearest ancestor series with the same code
    n_years: int = 0            # distinct years with a level reading of its own
    last_year: float = np.nan
    last_value: float = np.nan
    # floors from part-year readings: (year, value, holds for later years too).  A flow's
    # year-to-date amount (m1-m9) is a floor for that year's total; a running total read
    # before the year end (end-m9) is a floor for that year end and every later one.
    floors: list = field(default_factory=list)

    @property
    def basis(self) -> str:
        """data: its own points drive it; pooled: few points, pooling matters;
        prior-only: nothing beyond one baseline point — the growth is the pooled prior."""
        if self.n_years <= 1:
            return "prior-only"
        if self.n_years <= 4:
            return "pooled"
        return "data"


@dataclass
class Panel:
    series: list[SeriesInfo]
    points: pd.DataFrame        # level readings: s, t, z, sd
    sums: pd.DataFrame          # multi-year totals: s, y0, y1, z, sd
    censored: pd.DataFrame      # lower bounds on multi-year totals: s, t (unused), y0, y1, z, sd
    as_of: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [s.key for s in self.series]

    def index(self, key: str) -> int:
        return self.keys.index(key)

    def info(self, key: str) -> SeriesInfo:
        return self.series[self.index(key)]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(repr([(s.key, s.kind, s.parent, s.census_break) for s in self.series]).encode())
        for df in (self.points, self.sums, self.censored):
            h.update(pd.util.hash_pandas_object(df.round(10), index=False).values.tobytes())
        return h.hexdigest()[:16]

    @classmethod
    def from_registry(cls, reg, as_of: int | None = None, keys: list[str] | None = None) -> "Panel":
        """All observed series (or only ``keys`` and their ancestors), data up to ``as_of``."""
        obs = reg.observations.copy()
        if as_of is not None:
            obs = obs[_available_year(obs) <= as_of]
        return cls.from_frame(obs, reg.series, reg.jurisdictions, as_of=as_of, keys=keys)

    @classmethod
    def from_frame(cls, obs: pd.DataFrame, series_reg: dict, jurisdictions: dict, as_of=None, keys=None) -> "Panel":
        obs = obs.copy()
        obs["rank"] = obs.reliability.map(RELIABILITY_RANK)
        # an exact reading wins over a lower bound of the same year, then the most reliable copy
        obs = obs.sort_values(["jurisdiction", "series", "year", "period", "lower_bound", "rank", "value"])
        obs = obs.drop_duplicates(["jurisdiction", "series", "year", "period"], keep="first")
        pairs = sorted(set(zip(obs.jurisdiction, obs.series)))
        if keys is not None:
            wanted = set()
            for k in keys:
                jur, code = k.split(":", 1)
                wanted.add((jur, code))
                j = jurisdictions.get(jur)
                while j is not None and j.parent:
                    wanted.add((j.parent, code))
                    j = jurisdictions.get(j.parent)
            pairs = [p for p in pairs if p in wanted]
        infos = []
        for jur, code in pairs:
            s = series_reg[code]
            infos.append(SeriesInfo(f"{jur}:{code}", jur, code, s.kind, s.family, s.bounds, s.monotone, s.census_break))
        have = {(i.jurisdiction, i.code): i.key for i in infos}
        for i in infos:
            j = jurisdictions.get(i.jurisdiction)
            while j is not None and j.parent:
                if (j.parent, i.code) in have:
                    i.parent = have[(j.parent, i.code)]
                    break
                j = jurisdictions.get(j.parent)
        idx = {i.key: n for n, i in enumerate(infos)}
        beta = seasonal_slope(obs)
        # years whose full-year figure is known: a part-year flow of the same year is the
        # same quantity seen earlier, not a second reading
        full_years = set(zip(obs.jurisdiction[obs.period == "full"], obs.series[obs.period == "full"],
                             obs.year[obs.period == "full"]))
        pts, sums, cens = [], [], []
        for r in obs.itertuples():
            key = f"{r.jurisdiction}:{r.series}"
            if key not in idx:
                continue
            info = infos[idx[key]]
            m = _PERIOD.match(r.period)
            sd = RELIABILITY_SD[r.reliability]
            if m.group(5):  # multi-year total
                y0, y1 = int(m.group(5)), int(m.group(6))
                z = float(forward(r.value, info.kind, info.bounds))
                (cens if r.lower_bound else sums).append(dict(s=idx[key], y0=y0, y1=y1, z=z, sd=sd))
                continue
            t, value = float(r.year), float(r.value)
            if m.group(2):  # partial-year flow, annualised; the amount so far floors the year's total
                info.floors.append((int(r.year), value, False))
                if (r.jurisdiction, r.series, r.year) in full_years:
                    continue
                months = int(m.group(3)) - int(m.group(2)) + 1
                missing = (12 - months) / 12
                value *= 12.0 / months * (np.exp(beta * missing) if int(m.group(2)) == 1 else 1.0)
                sd = float(np.hypot(sd, PARTIAL_EXTRA_SD * missing))
            elif m.group(4):  # stock read before the year end; a running total never falls below it
                if info.monotone:
                    info.floors.append((int(r.year), value, True))
                t = r.year - (12 - int(m.group(4))) / 12.0
            if r.lower_bound:
                # 超过 b: the truth is above b, and a figure quoted as 超过 b is rarely far
                # above it — a reading in [b, 1.1 b]; b itself floors the paths
                info.floors.append((int(r.year), value, bool(info.monotone)))
                lo = float(forward(value, info.kind, info.bounds))
                hi = float(forward(_bound_top(value, info), info.kind, info.bounds))
                z, sd = (lo + hi) / 2, float(np.hypot(_sd(sd, r.reliability, info, lo), (hi - lo) / (2 * Z80)))
            else:
                z = float(forward(value, info.kind, info.bounds))
                sd = _sd(sd, r.reliability, info, z) if not m.group(2) else sd
            pts.append(dict(s=idx[key], t=t, z=z, sd=sd))
        points = pd.DataFrame(pts, columns=["s", "t", "z", "sd"]).sort_values(["s", "t"]).reset_index(drop=True)
        for i, info in enumerate(infos):
            p = points[points.s == i]
            info.n_years = int(p.t.round().nunique())
            if len(p):
                last = p.iloc[-1]
                info.last_year = float(last.t)
        # last full reading on the natural scale: a running total may not fall below it
        full = obs[(obs.period == "full") & (~obs.lower_bound.astype(bool))].sort_values("year")
        for (jur, code), g in full.groupby(["jurisdiction", "series"]):
            key = f"{jur}:{code}"
            if key in idx:
                infos[idx[key]].last_value = float(g.value.iloc[-1])
        # the places' levels and parents: what sharding splits a large panel by
        meta = {"places": {code: (j.level, j.parent) for code, j in jurisdictions.items()}}
        return cls(infos, points, _frame(sums, ["s", "y0", "y1", "z", "sd"]),
                   _frame(cens, ["s", "t", "y0", "y1", "z", "sd"]), as_of, meta)

    def subset(self, keys: list[str]) -> "Panel":
        """The panel of ``keys`` only (in that order), readings renumbered.  A series
        whose parent series is left out keeps the parent's key: a shard's model takes
        that parent's growth from the parent shard's posterior (models.sharding)."""
        old = {k: n for n, k in enumerate(self.keys)}
        new_of = {old[k]: n for n, k in enumerate(keys)}

        def pick(df):
            out = df[df.s.isin(list(new_of))].copy()
            out["s"] = out.s.map(new_of).astype(int)
            return out.reset_index(drop=True)

        points = pick(self.points).sort_values(["s", "t"], kind="stable").reset_index(drop=True)
        return Panel([copy.deepcopy(self.series[old[k]]) for k in keys], points, pick(self.sums),
                     pick(self.censored), self.as_of, dict(self.meta))

    def groups(self) -> np.ndarray:
        from .transforms import GROUPS

        return np.array([GROUPS.index(group_of(s.kind)) for s in self.series])


def _frame(rows: list, columns: list) -> pd.DataFrame:
    """Rows as a frame; an empty one gets numeric columns (an empty object column turns
    arithmetic on a concatenation of frames into object arithmetic)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    return pd.DataFrame(rows, columns=columns)


def _sd(sd: float, reliability: str, info: SeriesInfo, z: float) -> float:
    """Noise on the transformed scale: relative (log) for counts and amounts; for shares
    and scores a few hundredths of a point, carried to the logit scale at the reading.

    A count of units (工作站, 联盟, 示范企业) is exact as a tally but scatters around the
    expected number the path describes as a Poisson draw does: on the log scale its
    sd is ≈ 1/√n (delta method; 0 is read as 0.5, so 1/√0.5).  Without it a reading
    of 3 pinned the level to ±1 %, and a series of small counts (0, 2, 1, 3) read as
    violent growth swings that widened every count series' deviation scales."""
    if info.kind == "count":
        return float(np.hypot(sd, np.exp(-z / 2)))
    if info.kind not in LOGIT_KINDS:
        return sd
    p = 1.0 / (1.0 + np.exp(-z))
    return float(BOUNDED_SD[reliability] / max(p * (1 - p), 1e-6))


def _bound_top(b: float, info: SeriesInfo) -> float:
    top = b * BOUND_SPAN
    if info.kind in LOGIT_KINDS:
        lo, hi = info.bounds if info.bounds else (0.0, 100.0)
        top = min(top, b + 0.5 * (hi - b))
    return top


def seasonal_slope(obs: pd.DataFrame) -> float:
    """Year-end rush of flows, learned from the data: for every year with both a
    part-year (m1-mN) and a full-year reading of a flow, r = log(full / (part × 12/N))
    against w = missing share of the year; r/w = β + e, e ~ N(0, PARTIAL_EXTRA_SD²),
    β ~ N(0, SEASONAL_PRIOR_SD²) — the posterior mean of β (0 without such pairs).
    China's pledge financing shows why: its January–June figure annualised is 31 %
    below the full year."""
    part = obs[obs.period.str.match(r"^m1-m\d+$") & ~obs.lower_bound.astype(bool)]
    full = obs[(obs.period == "full") & ~obs.lower_bound.astype(bool)]
    if not len(part) or not len(full):
        return 0.0
    f = full.groupby(["jurisdiction", "series", "year"]).value.first()
    ratios = []
    for r in part.itertuples():
        k = (r.jurisdiction, r.series, r.year)
        months = int(r.period.split("-m")[1])
        if k in f.index and months < 12 and r.value > 0 and f[k] > 0:
            w = (12 - months) / 12
            ratios.append(np.log(f[k] / (r.value * 12 / months)) / w)
    if not ratios:
        return 0.0
    prec_e, prec_0 = 1 / PARTIAL_EXTRA_SD ** 2, 1 / SEASONAL_PRIOR_SD ** 2
    return float(prec_e * np.sum(ratios) / (prec_e * len(ratios) + prec_0))


def _available_year(obs: pd.DataFrame) -> pd.Series:
    """The year a figure became known: a multi-year total at its last year."""
    end = obs.period.str.extract(r"sum-\d{4}-(\d{4})")[0].astype(float)
    return end.fillna(obs.year.astype(float))
