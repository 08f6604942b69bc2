"""Bilingual labels for tables users print (zh default, en with --lang en)."""
from __future__ import annotations

COLUMNS = {
    "plan": ("规划", "plan"),
    "indicator": ("指标", "indicator"),
    "name": ("名称", "name"),
    "period": ("期间", "period"),
    "targets": ("目标数", "targets"),
    "with_history": ("有历史数据", "with history"),
    "series": ("序列", "series"),
    "measure": ("口径", "measure"),
    "baseline": ("基期值", "baseline"),
    "target": ("目标值", "target"),
    "target_year": ("目标年", "target year"),
    "attribute": ("属性", "attribute"),
    "category": ("类别", "category"),
    "interpretation": ("解读", "interpretation"),
    "unit": ("单位", "unit"),
    "comparator": ("比较", "comparator"),
}
MEASURES = {"level": ("当年/截止值", "level"), "cumulative": ("期间累计", "cumulative"),
            "increment": ("期间新增", "increment"), "relative": ("相对比较", "relative")}
ATTRIBUTES = {"expected": ("预期性", "expected"), "binding": ("约束性", "binding")}
CATEGORIES = {"creation": ("创造", "creation"), "utilization": ("运用", "utilization"),
              "protection": ("保护", "protection"), "management": ("管理", "management"),
              "service": ("服务", "service"), "environment": ("环境", "environment"), "talent": ("人才", "talent")}


def pick(pair: tuple[str, str], lang: str) -> str:
    return pair[0] if lang == "zh" else pair[1]


def col(key: str, lang: str) -> str:
    return pick(COLUMNS.get(key, (key, key)), lang)


def name(obj, lang: str) -> str:
    return obj.name_zh if lang == "zh" else obj.name_en
