"""Map ../shared/data/past_plan_outcomes.csv to data/reference/past_outcomes.csv.

The reference class (DESIGN.md §4, issue 13) needs, for every past target, what every
target has: kind (series kind vocabulary: count = units of a programme, flow, stock,
ratio, percent, score), measure, attribute, jurisdiction level, baseline and target
years and values, and the outcome.  The shared table states these in prose
("30000 (约; 比十一五末翻两番)"); each row's reading is written out below, and the
choice is kept in the output's ``note`` so that a reader can check it against the quote.

Rows that repeat a target of a shipped plan (china-2016, china-2021) name it in
``plan_ref``: the reference class then takes the outcome from the plan and the
observations when the data decide it, and from this row (the source's statement,
e.g. "已提前实现") otherwise — never both.

Run from the repository root:  python tools/import_reference.py
"""
from __future__ import annotations

import csv
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "past_plan_outcomes.csv"
OUT = Path(__file__).resolve().parents[1] / "data" / "reference" / "past_outcomes.csv"

COLUMNS = ["case", "plan_ref", "jurisdiction", "level", "plan", "indicator_zh", "kind", "measure", "attribute",
           "baseline_year", "baseline", "target_year", "target", "comparator", "outcome_year", "outcome", "met",
           "use", "reason", "source_url", "quote", "note"]

# One entry per row of the shared table, in its order.  Values as numbers in the
# unit of the row; '' where the source gives none.
READINGS = [
    dict(case="qinghai-12fyp-invention-per10k", kind="ratio", measure="level", baseline_year=2010, baseline=0.284,
         target_year=2015, target=1, outcome_year=2015, outcome=1.017, use="yes",
         note="baseline 0.284 is derived in the source row (1.017 − 0.733); outcome read at the end of Oct 2015"),
    dict(case="qinghai-2015-annual-applications", kind="flow", measure="level", baseline_year=2014, baseline="",
         target_year=2015, target=1600, outcome_year=2015, outcome=1896, use="no",
         reason="an annual work target (horizon 1 year), not a multi-year plan target: another reference class"),
    dict(case="changsha-13fyp-invention-per10k", kind="ratio", measure="level", baseline_year=2015, baseline="",
         target_year=2020, target="", outcome_year=2018, outcome=30.3, use="yes",
         note="target value not stated in the source; the source says the 13th-plan target was met two years "
              "early, so the case counts as met with unknown ambition"),
    dict(case="jiangsu-12fyp-invention-grants", kind="flow", measure="level", baseline_year=2010, baseline=7500,
         target_year=2015, target=30000, outcome_year=2015, outcome=36015, use="yes",
         note="a party-plenum goal (翻两番 of annual invention grants), not an IP-plan table; baseline 7500 is derived "
              "from 翻两番 (30000/4) — an estimate"),
    dict(case="jiangsu-2020-invention-per10k", kind="ratio", measure="level", baseline_year=2015, baseline=14.22,
         target_year=2020, target=20, outcome_year=2020, outcome=36.1, use="yes", note=""),
    dict(case="anhui-13fyp-invention-per10k", kind="ratio", measure="level", baseline_year=2014, baseline=2.61,
         target_year=2020, target=10, comparator=">", outcome_year=2021, outcome=16.2, use="yes",
         note="baseline read in Nov 2014; outcome read in 2021-Q1 (8.6 already in mid-2018), so 2020 > 10 is not in doubt"),
    dict(case="shanghai-2008-invention-grants-per-million", kind="ratio", measure="level", baseline_year=2007,
         baseline="", target_year=2012, target=200, outcome_year=2010, outcome=299, use="yes",
         note="a rate of a flow (grants per million residents); met two years early"),
    dict(case="zhejiang-13fyp-aggregate", kind="", measure="", baseline_year="", baseline="", target_year=2020,
         target="", outcome_year=2020, outcome="", use="no",
         reason="aggregate statement (11 of 11 key indicators exceeded): the targets are not itemised, so kind, "
                "measure and ambition are unknown; counted in no fit (it would raise the base rate)"),
    dict(case="guangdong-13fyp-aggregate", kind="", measure="", baseline_year="", baseline="", target_year=2020,
         target="", outcome_year=2020, outcome="", use="no",
         reason="outcome unclear (主要目标基本完成) and targets not itemised"),
    dict(case="nanjing-12fyp-aggregate", kind="", measure="", baseline_year="", baseline="", target_year=2015,
         target="", outcome_year=2015, outcome="", use="no",
         reason="aggregate statement (主要目标顺利实现) with no itemised targets or count"),
    dict(case="china-12fyp-invention-per10k", kind="ratio", measure="level", baseline_year=2010, baseline=1.7,
         target_year=2015, target=3.3, outcome_year=2013, outcome=4.02, use="yes", note="met two years early"),
    dict(case="china-13fyp-invention-per10k", plan_ref="china-2016/invention_per10k", kind="ratio", measure="level",
         baseline_year=2015, baseline=6.3, target_year=2020, target=12, outcome_year=2020, outcome=15.8, use="yes"),
    dict(case="china-13fyp-royalty-exports", plan_ref="china-2016/ip_royalty_exports_usd", kind="flow",
         measure="cumulative", baseline_year=2015, baseline=44.4, target_year=2020, target=100, outcome_year=2019,
         outcome="", use="yes", note="five-year cumulative target (亿美元); the source says it was met two years early"),
    dict(case="china-14fyp-hv-invention-per10k", plan_ref="china-2021/hv_invention_per10k", kind="ratio",
         measure="level", baseline_year=2020, baseline=6.3, target_year=2025, target=12, outcome_year=2025,
         outcome=16, use="yes"),
    dict(case="china-14fyp-patent-intensive-share", plan_ref="china-2021/patent_intensive_share", kind="percent",
         measure="level", baseline_year=2020, baseline=11.97, target_year=2025, target=13, outcome_year=2023,
         outcome=13.04, use="yes", note="reached in 2023 (13.04); the source does not yet give 2025"),
    dict(case="china-14fyp-royalty-trade", plan_ref="china-2021/ip_royalty_trade", kind="flow", measure="level",
         baseline_year=2020, baseline=3194.4, target_year=2025, target=3500, outcome_year=2023, outcome=3765.2,
         use="yes", note="the mid-term review lists it among the 4 targets 已提前实现"),
    dict(case="china-14fyp-protection-satisfaction", plan_ref="china-2021/ip_protection_satisfaction", kind="score",
         measure="level", baseline_year=2020, baseline=80.05, target_year=2025, target=82, outcome_year=2023,
         outcome=82.04, use="yes", note="the mid-term review lists it among the 4 targets 已提前实现"),
    dict(case="china-14fyp-first-instance-acceptance", plan_ref="china-2021/first_instance_acceptance_rate",
         kind="percent", measure="level", baseline_year=2020, baseline="", target_year=2025, target=85,
         outcome_year=2023, outcome=91.9, use="yes",
         note="baseline not read; the mid-term review lists it among the 4 targets 已提前实现"),
    dict(case="china-14fyp-pledge-financing", plan_ref="china-2021/pledge_financing", kind="flow", measure="level",
         baseline_year=2020, baseline=2180, target_year=2025, target="", outcome_year=2023, outcome=8539.9, use="yes",
         note="target value not verbatim in any stored source (the plan file has target: null); the mid-term review "
              "lists it among the 4 targets 已提前实现, so the case counts as met with unknown ambition"),
    dict(case="china-14fyp-copyright-share", plan_ref="china-2021/copyright_industry_share", kind="percent",
         measure="level", baseline_year=2020, baseline=7.39, target_year=2025, target=7.5, outcome_year=2025,
         outcome="", use="no", reason="outcome unclear: the source says 接近7.5% (close to the target) in Nov 2025"),
    dict(case="china-14fyp-overseas-grants", plan_ref="china-2021/overseas_invention_grants", kind="flow",
         measure="level", baseline_year=2020, baseline=4, target_year=2025, target=9, outcome_year=2023, outcome="",
         use="no", reason="outcome unclear: not reported at the mid-term review"),
]

LEVEL = {"nation": "nation", "province": "province", "city": "city"}
ATTR = {"预期性": "expected", "约束性": "binding", "": ""}


def main() -> None:
    rows = list(csv.DictReader(SRC.open(encoding="utf-8")))
    assert len(rows) == len(READINGS), f"{SRC} has {len(rows)} rows, the mapping {len(READINGS)}: update READINGS"
    out = []
    for r, m in zip(rows, READINGS):
        met = r["met"].strip()
        use = m["use"]
        reason = m.get("reason", "")
        if met not in ("yes", "no"):
            use, reason = "no", reason or f"outcome {met!r}"
        out.append(dict(case=m["case"], plan_ref=m.get("plan_ref", ""), jurisdiction=r["jurisdiction"],
                        level=LEVEL[r["level"]], plan=r["plan"], indicator_zh=r["indicator_zh"], kind=m["kind"],
                        measure=m["measure"], attribute=ATTR[r["attribute"].strip()],
                        baseline_year=m["baseline_year"], baseline=m["baseline"], target_year=m["target_year"],
                        target=m["target"], comparator=m.get("comparator", ">="), outcome_year=m["outcome_year"],
                        outcome=m["outcome"], met=met, use=use, reason=reason, source_url=r["source_url"],
                        quote=r["quote"],
                        note="; ".join(x for x in (m.get("note", ""), "shared row note: " + r["note"]) if x)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(out)
    print(f"wrote {len(out)} cases to {OUT}")


if __name__ == "__main__":
    main()
