"""Bring-your-own-data: a fill-in sheet per plan (``ipsim data template``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.panel import RELIABILITY_RANK

from .registry import OBS_COLUMNS, Plan, Registry

INSTRUCTIONS_ZH = [
    "填写说明 / How to fill in",
    "每行一个数据：地区(jurisdiction)、序列(series)、年份(year)、数值(value)。已知数据已预先填好，可修改。",
    "value: 只填数字，单位见 unit 列（万、亿需换算成该单位）；留空的行会被忽略。",
    "period: full = 全年/年末；m1-m9 = 1-9月累计（流量）；end-m9 = 9月末存量。",
    "reliability: official（官方统计）、secondary（转载）、estimate（推算）。",
    "source: 必填，写明数据来源（文件名、网址或内部统计名称）。",
    "填好后：ipsim validate 本文件；ipsim run scenarios/baseline.yaml --data 本文件",
]


def template_frame(reg: Registry, plan: Plan) -> pd.DataFrame:
    """One row per (series the plan needs, year the model uses); known values pre-filled."""
    needs = []
    for ind in plan.indicators:
        needs.append((plan.jurisdiction, ind.series))
        if ind.relative_to:
            needs.append((ind.relative_to["jurisdiction"], ind.relative_to["series"]))
    needs = list(dict.fromkeys(needs))
    years = range(plan.baseline_year - 5, plan.period[1] + 1)
    obs = reg.observations
    rows = []
    for jur, code in needs:
        s = reg.series[code]
        known = obs[(obs.jurisdiction == jur) & (obs.series == code) & (obs.period == "full")]
        for y in years:
            # most reliable copy first (official, secondary, estimate) — not alphabetical
            k = known[known.year == y].sort_values("reliability", key=lambda r: r.map(RELIABILITY_RANK))
            if len(k):
                r = k.iloc[0]
                rows.append(dict(jurisdiction=jur, series=code, year=y, value=f"{r.value:g}", period="full",
                                 reliability=r.reliability, source=r.source, note=r.note, name_zh=s.name_zh, unit=s.unit))
            else:
                rows.append(dict(jurisdiction=jur, series=code, year=y, value="", period="full",
                                 reliability="official", source="", note="", name_zh=s.name_zh, unit=s.unit))
    return pd.DataFrame(rows, columns=OBS_COLUMNS + ["name_zh", "unit"])


def write_template(reg: Registry, plan: Plan, fmt: str, out: Path) -> Path:
    df = template_frame(reg, plan)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        # utf-8-sig so that Excel on Chinese Windows opens it with the right characters
        df.to_csv(out, index=False, encoding="utf-8-sig")
    else:
        with pd.ExcelWriter(out, engine="openpyxl") as xw:
            df.to_excel(xw, sheet_name="observations", index=False)
            pd.DataFrame({"说明": INSTRUCTIONS_ZH}).to_excel(xw, sheet_name="README", index=False)
    return out
