"""Map ../shared/data/sourced_observations.csv to registry series codes.

Run once by a maintainer (``python tools/import_sourced.py``); the output,
``data/observations/sourced.csv``, is committed.  Every row of the shared file
becomes exactly one observation row; nothing is dropped or invented.  What the
mapping changes is written into the row's ``note`` so a reader can see it:

* units are converted to the series' unit (万件 → 件, 万亿元 → 亿元);
* separate definitions go to separate series (see data/series.yaml);
* the few periods the source's own note contradicts are corrected, and the
  correction is stated;
* a genuinely conflicting duplicate (same place, series, year and period, values
  more than rounding apart) keeps its value, but the less credible copy — the one
  the shared note itself doubts — is marked ``estimate`` as DESIGN.md §3 asks.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT.parent / "shared" / "data" / "sourced_observations.csv"
OUT = ROOT / "data" / "observations" / "sourced.csv"

PLACES = {"全国": "china", "江苏省": "jiangsu", "安徽省": "anhui", "无锡市": "wuxi",
          "苏州市": "suzhou", "宜兴市": "yixing", "马鞍山市": "maanshan"}

# indicator wording (as in the shared file) -> series code; a place-specific
# entry ("place|wording") wins over the generic one.
SERIES = {
    "PCT国际专利申请受理量": "pct_applications",
    "PCT国际专利申请量": "pct_applications",
    "PCT专利申请量": "pct_applications",
    "PCT申请量": "pct_applications",
    "PCT国际专利申请量(WIPO口径)": "pct_applications_wipo",
    "专利商标质押融资登记金额": "pledge_financing_registered",
    "知识产权质押融资额": "pledge_financing_registered",
    "专利质押融资金额": "pledge_financing_patent",
    "专利权质押融资金额": "pledge_financing_patent",
    "知识产权质押融资金额": "pledge_financing_unspecified",
    "知识产权质押融资总金额": "pledge_financing_unspecified",
    "银行业知识产权质押贷款累计发放额": "bank_ip_pledge_loans",
    "知识产权质押融资项目数": "pledge_financing_projects",
    "知识产权类保险投保企业数": "ip_insurance_firms",
    "专利密集型产业增加值": "patent_intensive_value_added",
    "专利密集型产业增加值占GDP比重": "patent_intensive_share",
    "企业发明专利产业化率": "enterprise_invention_industrialisation_rate",
    "作品登记总量": "works_registrations",
    "作品登记量": "works_registrations",
    "著作权登记总量": "copyright_registrations_total",
    "计算机软件著作权登记量": "software_copyright_registrations",
    "发明专利有效量(国内)": "valid_invention_patents",
    "有效发明专利拥有量": "valid_invention_patents",
    "有效发明专利量": "valid_invention_patents",
    "有效发明专利": "valid_invention_patents",
    "10年以上有效发明专利拥有量": "valid_invention_patents_10yr",
    "国内高价值发明专利拥有量": "hv_invention_patents",
    "有效注册商标量": "trademarks_valid",
    "全国|有效注册商标量": "trademarks_valid_unspecified",
    "有效注册商标量(含国外)": "trademarks_valid_incl_foreign",
    "有效注册商标量(国内)": "trademarks_valid",
    "有效注册商标量(总量)": "trademarks_valid_unspecified",
    "每万人口发明专利拥有量": "invention_per10k",
    "万人发明专利拥有量": "invention_per10k",
    "万人发明专利拥有量（十三五期间增幅）": "invention_per10k_change_5yr",
    "每万人口高价值发明专利拥有量": "hv_invention_per10k",
    "注册商标量(年度核准)": "trademark_registrations",
    "商标注册量(新增)": "trademark_registrations",
    "商标注册申请量": "trademark_applications",
    "海外发明专利授权量": "overseas_invention_grants",
    "海外同族发明专利数": "overseas_patent_family_inventions",
    "版权产业增加值占GDP比重": "copyright_industry_share",
    "知识产权使用费出口额": "ip_royalty_exports",
    "知识产权使用费进出口总额": "ip_royalty_trade",
    "知识产权使用费进出口额": "ip_royalty_trade_usd",
    "知识产权保护社会满意度": "ip_protection_satisfaction",
    "知识产权民事一审案件服判息诉率": "first_instance_acceptance_rate",
    "马德里商标国际注册申请量": "madrid_applications",
    "马德里国际商标申请量": "madrid_applications",
    "专利申请量": "patent_applications",
    "专利授权量": "patent_grants",
    "企业专利授权量": "enterprise_patent_grants",
    "企业发明专利授权量": "enterprise_invention_grants",
    "发明专利授权量": "invention_grants",
    "发明专利授权量(十三五累计)": "invention_grants",
    "有效发明专利授权量（原文口径）": "invention_grants_reported_ambiguous",
    "数据知识产权登记申请": "data_ip_registrations_cumulative",
    "常住人口": "population",
    # 2023–2025 rows added to the shared file on 2026-11-22
    "知识产权质押登记金额": "pledge_financing_registered",
    "实用新型专利授权量": "utility_model_grants",
    "外观设计专利授权量": "design_grants",
    "地理标志产品累计认定数": "gi_products_cumulative",
    "地理标志产品新认定数": "gi_products_new",
    "核准使用地理标志专用标志经营主体(累计)": "gi_mark_users_cumulative",
    "地理标志集体商标证明商标核准注册": "gi_collective_marks_registered",
    "地理标志产品直接产值": "gi_product_output_value",
    "商标评审案件审结量": "trademark_review_cases_closed",
    "吸纳技术合同成交额": "tech_contract_absorbed",
    "技术合同成交总额": "tech_contract_turnover",
    "技术合同成交额": "tech_contract_turnover",
    "涉及专利的技术合同成交额": "patent_tech_contract_turnover",
    "专利转让许可备案次数": "patent_transfer_license_records",
    "高校和科研机构专利转让许可备案次数": "patent_transfer_license_records_universities",
    "开放许可专利数": "open_license_patents",
    "著作权质押担保金额": "copyright_pledge_amount",
    "国家级知识产权公共服务机构数": "national_ip_public_service_institutions",
    "国家级知识产权保护中心和快速维权中心数": "protection_and_rapid_centres_national",
}

# unit written in the source -> factor to the series unit
SCALE = {"万件": 10_000, "万亿元": 10_000, "万次": 10_000, "万家": 10_000}

# (1-based line in the shared file) -> (field, new value, reason) ; stated in the note
FIXES = {
    35: ("series", "patent_intensive_share_old", "2015 figure uses the pre-2019 method (source note: NOT comparable); separate series"),
    73: ("series", "trademarks_valid_unspecified", "source note: may be a different scope/date from 国新办 4987.7; kept under scope-unspecified series"),
    151: ("series", "madrid_applications_wipo", "WIPO basis; the other years are CNIPA-received"),
    150: ("period", "sum-2021-2025", "bank loans summed 2021-2025"),
    237: ("series", "bank_ip_pledge_loans", "source says 发放贷款 (bank loans) over about three years"),
    214: ("reliability", "estimate", "conflicts with 科技日报网/新华网 44.86 for the same press conference; the mirror is the less credible copy"),
    240: ("period", "end-m9", "source note: 截至2018年9月底,非年末值"),
    248: ("period", "end-m9", "source note: 截至2018年9月底,非年末值"),
    272: [("period", "full", "an annual output value reported on 2025-11-28 with no reference year: read as the "
                             "latest complete year"),
          ("year", 2024, "the reference year is not stated; 2024 is the latest complete year at the report date"),
          ("reliability", "estimate", "the year is our reading, and 接近 means slightly below 9700")],
    169: ("lower_bound", "yes", "source says 超14件"),
    233: ("lower_bound", "yes", "source note: value is a lower bound (超)"),
}


def convert_period(row: dict) -> str:
    period, basis, year = row["period"], row["basis"], row["year"]
    if period.startswith("since-2016"):
        return "sum-2016-%s" % year
    if period == "since-pilot":
        return "full"  # a running total at the year end (stock)
    if period == "m1-m11" and basis == "cumulative_since_2017":
        return "sum-2017-2019"
    return period


def main() -> int:
    rows = list(csv.DictReader(open(SRC, encoding="utf-8")))
    out = []
    for line, r in enumerate(rows, start=2):
        place = r["jurisdiction"]
        key = f"{place}|{r['indicator_zh']}"
        series = SERIES.get(key) or SERIES[r["indicator_zh"]]
        value = float(r["value"]) * SCALE.get(r["unit"], 1)
        notes = [r["note"]] if r["note"] else []
        if r["unit"] in SCALE:
            notes.append(f"converted from {r['value']} {r['unit']}")
        rec = dict(jurisdiction=PLACES[place], series=series, year=int(r["year"]),
                   value=round(value, 6), period=convert_period(r), reliability=r["reliability"],
                   source=r["source_url"], note="", lower_bound=r["lower_bound"], quote=r["quote"])
        if rec["period"] != r["period"]:
            notes.append(f"period '{r['period']}' ({r['basis']}) recorded as '{rec['period']}'")
        fixes = FIXES.get(line, [])
        for field, new, why in ([fixes] if isinstance(fixes, tuple) else fixes):
            notes.append(f"import: {field} set to '{new}' (was '{rec[field]}'): {why}")
            rec[field] = new
        if not rec["source"]:
            # the shared file names the newspaper in its note when the search hit had no URL
            rec["source"] = "no URL; " + r["note"].split("; text is ")[-1]
        rec["note"] = "; ".join(notes)
        rec["value"] = f"{rec['value']:g}" if abs(rec["value"]) < 1e15 else rec["value"]
        out.append(rec)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cols = ["jurisdiction", "series", "year", "value", "period", "reliability", "source", "note", "lower_bound", "quote"]
    with open(OUT, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(out)
    print(f"{len(out)} rows -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
