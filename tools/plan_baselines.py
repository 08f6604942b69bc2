"""Write data/observations/plan_baselines.csv from the plans' own figures.

Run by a maintainer after editing a plan; the output is committed.  Sources are
the plans themselves (reliability ``official``: a government document), except a
value the plan does not print but that we read into it (e.g. 新标 → 0), which is
``estimate``.  National plans are left out on purpose: their printed baselines
differ from the later measured values (data/README caveat), and the measured
series are already in sourced.csv.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "observations" / "plan_baselines.csv"
PLANS = ["wuxi-2024", "suzhou-2021"]


def main() -> None:
    rows = []
    for pid in PLANS:
        plan = yaml.safe_load(open(ROOT / "data" / "plans" / f"{pid}.yaml", encoding="utf-8"))
        for ind in plan["indicators"]:
            if ind.get("baseline") is None or ind["measure"] == "relative":
                continue
            year = ind.get("baseline_year", plan["baseline_year"])
            estimate = "新标" in ind["quote"]
            rows.append(dict(
                jurisdiction=plan["jurisdiction"], series=ind["series"], year=year, value=ind["baseline"],
                period="full", reliability="estimate" if estimate else "official",
                source=f"{plan['name_zh']} ({plan['source']}), seed line {ind['line']}",
                note=("plan cell reads 新标; read as 0 (see the plan's interpretation)" if estimate
                      else f"baseline of plan {pid}, indicator {ind['id']}"),
                lower_bound="", quote=ind["quote"]))
    # Suzhou 十四五 table 2: the 2020 column of two 新增 rows is a 2016-2020 total (see the plan's interpretation)
    seed = "苏州市“十四五”知识产权发展规划 (seed 002_8b0ee015ba47a741.txt), table 2"
    for series, value, line, quote in (
        ("ip_high_level_talents_new", 152, 425, "新增知识产权高层次人才（人） 152 200"),
        ("patent_agent_qualifications_new", 1263, 430, "新增获得国家专利代理师资格（人） 1263 1500"),
        ("copyright_registrations_total", 430000, 339, "新增作品登记量（万件） 43 45"),
    ):
        rows.append(dict(jurisdiction="suzhou", series=series, year=2020, value=value, period="sum-2016-2020",
                         reliability="official", source=f"{seed}, seed line {line}",
                         note="2020 column read as the 十三五 (2016-2020) total, per the plan's interpretation",
                         lower_bound="", quote=quote))
    # Suzhou 十三五 outcomes (table 1, 完成情况)
    for o in json.load(open(ROOT / "tools" / "suzhou2016_outcomes.json", encoding="utf-8")):
        rows.append(o)
    # identical duplicates (same figure printed in tables 1 and 2) are written once
    seen, unique = set(), []
    for r in rows:
        k = (r["jurisdiction"], r["series"], int(r["year"]), r["period"], float(r["value"]))
        if k in seen:
            continue
        seen.add(k)
        unique.append(r)
    cols = ["jurisdiction", "series", "year", "value", "period", "reliability", "source", "note", "lower_bound", "quote"]
    with open(OUT, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(unique)
    print(f"{len(unique)} rows -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
