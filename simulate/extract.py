"""Draft a plan file from a Chinese plan document (``ipsim extract``).

The draft is for a person to review: every target found carries the exact
``quote`` and its ``line``, a ``confidence``, and the reading chosen
(``interpretation``).  Nothing is guessed: a number that cannot be read (OCR damage
such as 超UOo名) becomes ``target: null`` with the raw text in ``note``.

Two forms are read, as in the seeds:

* **tables flattened one cell per line** — a header with year columns
  (``2023年 / 2026年 / 增加值`` or ``2020年实现值 / 2025年目标值``), then rows of
  *label (unit)*, values, 属性, 备注;
* **prose** — “到2026年，……达20件”, “新增…10家”, “超1.3亿元”, “90%以上”.

OCR damage is tolerated for matching (知所权 / 知丽权 → 知识产权, 力口 → 加), never
for values.  No NLP dependency: regular expressions and difflib.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, Problem

OCR_FIXES = [("知所权", "知识产权"), ("知丽权", "知识产权"), ("知密口所权", "知识产权"), ("密口所权", "知识产权"),
             ("知识产 权", "知识产权"), ("力口", "加"), ("棚勾", "机构"), ("网户", "保护")]
DIGIT = "0-9０-９"
UNIT = r"亿元|万元|元|平方米|万件|件|家|项|名|人次|人|个|场|次|所|分|%|％"
NUM = rf"[{DIGIT}]+(?:[.．][{DIGIT}]+)?"
TARGET_RX = re.compile(
    rf"(?P<num>{NUM})(?:\s*[-—~～]\s*(?P<num2>{NUM}))?\s*(?P<mult>万|亿)?\s*(?P<unit>{UNIT})(?P<tail>以上)?")
# a cue followed by characters that are not a number (OCR damage): never guessed
DAMAGED_RX = re.compile(rf"(?P<cue>超过|超|达到|达|突破|不低于)(?P<bad>[A-Za-z{DIGIT}]*[A-Za-z][A-Za-z{DIGIT}]*|0[{DIGIT}]+)"
                        rf"\s*(?P<unit>{UNIT})")
BY_YEAR_RX = re.compile(r"(?:到|至|截至)\s*(20\d\d)\s*年")
PERIOD_RX = re.compile(r"[（(](20\d\d)\s*[—\-–－~～至]+\s*(20\d\d)\s*年?[）)]")
FIVE_YEAR = {"十三五": (2016, 2020), "十四五": (2021, 2025), "十五五": (2026, 2030)}
CUES_GE = ("达到", "达", "不低于", "不少于", "以上", "力争")
CUES_GT = ("超过", "超", "突破")
CATEGORY_WORDS = [("protection", ("保护", "满意度", "执法", "维权", "裁决", "调解", "案件", "预审")),
                  ("utilization", ("质押", "融资", "转让", "许可", "运营", "转化", "密集型", "增加值", "备案金额")),
                  ("talent", ("人才", "培训", "专员", "代理师", "从业人员", "队伍")),
                  ("service", ("服务机构", "网点", "服务平台", "公共服务", "服务业")),
                  ("management", ("示范", "试点", "贯标", "导航", "认证", "优势企业"))]


@dataclass
class Found:
    line: int
    quote: str
    wording: str
    value: float | None
    unit: str
    target_year: int | None
    measure: str
    comparator: str
    baseline: float | None = None
    baseline_year: int | None = None
    attribute: str = "expected"
    source: str = "prose"
    raw: str = ""
    remark: str = ""        # a table row's 备注 cell (当年数据, 三年累计数据 …)
    notes: list = field(default_factory=list)


def _close(a, b) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


def read_document(path: Path) -> list[str]:
    raw = Path(path).read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc).splitlines()
        except UnicodeDecodeError:
            continue
    raise InputError(Problem(str(path), "", "cannot read the document as UTF-8 or GBK", "save it as UTF-8 text"))


def clean(text: str) -> str:
    """Text for matching only (never for values or quotes): NFKC, OCR fixes, no spaces."""
    t = unicodedata.normalize("NFKC", text)
    for bad, good in OCR_FIXES:
        t = t.replace(bad, good)
    return re.sub(r"\s+", "", t)


def to_number(num: str, mult: str | None = None) -> float:
    v = float(unicodedata.normalize("NFKC", num).replace("．", "."))
    return v * {"万": 1e4, "亿": 1e8}.get(mult or "", 1.0)


def _split_unit(unit: str):
    """'亿元' → (1e8, '元'); '万件' → (1e4, '件'); '件' → (1, '件')."""
    unit = (unit or "").strip()
    if len(unit) > 1 and unit[0] in "万亿":
        return {"万": 1e4, "亿": 1e8}[unit[0]], unit[1:]
    return 1.0, unit


def convert_unit(value, unit: str, to: str):
    """A value in ``unit`` expressed in ``to`` when both are the same base unit
    (5000万元 → 0.5 亿元, 45万件 → 450000 件); else unchanged, with converted=False."""
    if value is None or not to or unit == to:
        return value, unit, False
    (m1, b1), (m2, b2) = _split_unit(unit), _split_unit(to)
    if b1 != b2 or not b1:
        return value, unit, False
    return value * m1 / m2, to, True


# ------------------------------------------------------------------ plan metadata
def guess_meta(lines: list[str], jurisdictions: dict) -> dict:
    head_lines = [ln.strip() for ln in lines[:8] if ln.strip()]
    head = "".join(head_lines)
    title = "".join(head_lines[:3])[:80]
    period, how = None, ""
    for m in PERIOD_RX.finditer(head):
        a, b = int(m.group(1)), int(m.group(2))
        if 0 < b - a <= 5:           # a plan period, not a 2021-2035 vision
            period, how = (a, b), f"period read from '{m.group(0)}'"
            break
    title3 = "".join(head_lines[:3])[:80]
    if period is None:
        named = [(v, k) for k, v in FIVE_YEAR.items() if k in title3]
        if named:
            (period, k) = max(named)
            how = f"period from '{k}'"
    if period is None:
        years = [int(y) for ln in lines for y in BY_YEAR_RX.findall(ln)]
        if len(years) >= 3:
            end = max(set(years), key=years.count)
            period, how = (end - 2, end), f"period guessed: most targets say 到{end}年; a three-year plan assumed"
    if period is None:
        named = [(v, k) for k, v in FIVE_YEAR.items() if k in head]
        if named:
            (period, k) = max(named)
            how = f"period from '{k}'"
    jur = None
    for text in (title, head, "".join(lines[:40])):
        for j in sorted(jurisdictions.values(), key=lambda j: -len(j.name_zh)):
            if j.name_zh in text and not (j.level == "province" and any(
                    c.name_zh in text for c in jurisdictions.values() if c.parent == j.code)):
                jur = j.code
                break
        if jur:
            break
    return {"title": title, "period": period, "period_note": how, "jurisdiction": jur}


REVIEW_HEADING = re.compile(r"基础|现状|成效|成就|回顾|形势|进展")
HEADING = re.compile(r"^\s*(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）)")


# ------------------------------------------------------------------ tables
HEADER_YEAR = re.compile(r"^(20\d\d)年(实现值|目标值|基期值|基准值)?$")


def find_tables(lines: list[str]) -> list[Found]:
    """Tables flattened one cell per line, with year columns in their header."""
    out = []
    i, n = 0, len(lines)
    while i < n:
        years = []
        j = i
        # a header: consecutive short cells, at least two of them years
        while j < n and len(lines[j].strip()) <= 12 and (lines[j].strip() or j == i):
            m = HEADER_YEAR.match(lines[j].strip())
            if m:
                years.append(int(m.group(1)))
            j += 1
            if j - i > 12:
                break
        if len(years) >= 2:
            out += _table_rows(lines, j, years[0], years[-1])
            i = j
        else:
            i += 1
    return out


UNIT_IN_LABEL = re.compile(r"[（(]([^（）()]{1,8})[）)]\s*$")


def _table_rows(lines, start, y0, y1) -> list[Found]:
    rows, k, n = [], start, len(lines)
    label, lab_line, cells = None, None, []

    def flush():
        if label is None:
            return
        rows.append(_table_row(label, lab_line, cells, y0, y1))

    blank_run = 0
    while k < n:
        cell = lines[k].strip()
        if len(cell) > 60 or cell.startswith("表") or re.match(r"^[一二三四五六七八九十]+、", cell):
            break
        if not cell:
            blank_run += 1
            if blank_run > 3 and label is not None:
                break
            k += 1
            continue
        blank_run = 0
        head = UNIT_IN_LABEL.sub("", cell)
        if label is not None and re.search(r"数据|截止|截至|^（", cell):
            cells.append(cell)           # a remark such as 截止数据（含升级项目）, not a new row
        elif UNIT_IN_LABEL.search(cell) and len(re.findall(r"[\u4e00-\u9fff]", head)) >= 2 \
                or re.match(r"^\d+[.．、]\D", cell):
            flush()
            label, lab_line, cells = cell, k + 1, []
        elif label is not None:
            cells.append(cell)
        k += 1
    flush()
    return rows


def _table_row(label, line_no, cells, y0, y1):
    nums, cells_notes = [], []
    attribute, remark = "expected", ""
    for c in cells:
        if "约束" in c:
            attribute = "binding"
        elif "预期" in c:
            attribute = "expected"
        elif re.search(r"累计|当年|合计|年度", c):
            remark = c
        else:
            m = re.match(rf"^({NUM})(?:\s*[-—~～]\s*{NUM})?\s*(万|亿)?(?:[（(](20\d\d)年[）)])?$", c)
            nums.append((to_number(m.group(1), m.group(2)), int(m.group(3)) if m.group(3) else None, c) if m else
                        (None, None, c))
            if m and re.search(r"\d\s*[-—~～]\s*\d", c):
                cells_notes.append(f"range {c}: the lower end is taken as the target")
    unit_m = UNIT_IN_LABEL.search(label)
    unit = unit_m.group(1) if unit_m else ""
    wording = re.sub(r"^\d+[.．、]", "", label[:unit_m.start()] if unit_m else label).strip()
    quote = " | ".join([label] + cells)
    base = nums[0] if nums else (None, None, "")
    tgt = nums[1] if len(nums) > 1 else (None, None, "")
    notes = list(cells_notes)
    # 三年累计数据 = a sum of yearly flows; 截止数据 (as-of) and 当年数据 = the level in the
    # target year, even when the label says 累计 (a running total is a level)
    if re.search(r"累计数据|合计", remark) and "截止" not in remark:
        measure = "cumulative"
    else:
        measure = "level"
    if base[0] is None and base[2]:
        notes.append(f"baseline cell reads '{base[2]}' (not a number)")
    if tgt[0] is None:
        notes.append(f"target cell reads '{tgt[2]}'" if tgt[2] else "no target cell")
    value, bval = tgt[0], base[0]
    m, b = _split_unit(unit)
    if m != 1.0 and b != "元":           # 45（万件）→ 450000 件, as the prose rule does
        value = None if value is None else value * m
        bval = None if bval is None else bval * m
        notes.append(f"values in {unit} converted to {b}")
        unit = b
    return Found(line=line_no, quote=quote, wording=wording, value=value, unit=unit, target_year=y1, measure=measure,
                 comparator=">=", baseline=bval, baseline_year=base[1] or y0, attribute=attribute, source="table",
                 raw=tgt[2], remark=remark, notes=notes + ([f"remark: {remark}"] if remark else []))


# ------------------------------------------------------------------ prose
SPLIT = re.compile(r"[。；;！!？?]")
CLAUSE = re.compile(r"[，,]")


def find_prose(lines: list[str], period, table_lines: set) -> list[Found]:
    out = []
    start = period[0] if period else 2000
    end = period[1] if period else None
    review = False
    carried = None   # 到2026年 at the end of one line still governs a wrapped next line
    for no, text in enumerate(lines, start=1):
        if HEADING.match(text):
            review = bool(REVIEW_HEADING.search(text))
            carried = None
        if review or no in table_lines or not text.strip():
            continue
        by = carried
        for sent in SPLIT.split(text):
            ym = BY_YEAR_RX.findall(sent)
            if ym:
                by = int(ym[-1])
            past = [int(y) for y in re.findall(r"(?<![到至])(20\d\d)年", sent) if int(y) < start]
            if past and not ym:
                continue                      # a review of past years, not a target
            if re.search(r"十[一二三]五|期间|已经|累计完成|完成了|实现了", sent):
                continue
            for clause in _clauses(sent):
                for f in _clause_targets(clause, no, by or end):
                    if f.target_year is not None and f.target_year < start:
                        continue
                    out.append(f)
        carried = by
    return out


def _clauses(sent: str):
    """Comma-separated clauses (、 is kept inside: 新增1个A、1个B is one clause)."""
    parts = CLAUSE.split(sent)
    return [p for p in parts if p.strip()]


def _clause_targets(clause: str, line_no: int, year) -> list[Found]:
    out, damaged = [], []
    for m in DAMAGED_RX.finditer(clause):
        damaged.append(m.span())
        out.append(Found(line=line_no, quote=clause.strip(), wording=_wording(clause, m.start(), m.end(), 0, len(clause)),
                         value=None, unit=m.group("unit"), target_year=year, measure="level",
                         comparator=_comparator(clause, m.start()), raw=m.group(0),
                         notes=[f"number unreadable in the document: '{m.group(0)}' (OCR damage?)"]))
    matches = [m for m in TARGET_RX.finditer(clause)
               if not any(a <= m.start() < b for a, b in damaged)]
    for k, m in enumerate(matches):
        before = clause[:m.start()]
        if re.search(rf"[{DIGIT}.．/\-]$", before) or re.search(r"^\s*年", clause[m.end():]):
            continue
        if re.search(r"(GB|ISO|T)\s*$", before) or before.count("《") > before.count("》") or "〔" in before[-3:]:
            continue
        cue = any(c in clause for c in CUES_GE + CUES_GT + ("新增", "累计", "培育", "建成", "发展", "集聚", "引培",
                                                             "服务", "实施", "开展", "备案", "提高到", "占"))
        if not cue and year is None:
            continue
        mult, unit = m.group("mult"), m.group("unit")
        notes = []
        if unit in ("元",) and mult:       # 1.3亿元, 5000万元: the plan's own unit
            value, unit_text = to_number(m.group("num")), mult + unit
        else:                              # 3.5万件 → 35000 件
            value, unit_text = to_number(m.group("num"), mult), unit
        if m.group("num2"):
            notes.append(f"range {m.group(0)}: the lower end is taken as the target")
        measure = "level"
        if "累计" in clause:
            measure = "cumulative"
        elif "新增" in clause:
            measure = "increment"
        lo = matches[k - 1].end() if k else 0
        hi = matches[k + 1].start() if k + 1 < len(matches) else len(clause)
        out.append(Found(line=line_no, quote=clause.strip(), wording=_wording(clause, m.start(), m.end(), lo, hi),
                         value=value, unit=unit_text, target_year=year, measure=measure,
                         comparator=_comparator(clause, m.start()), raw=m.group(0), notes=notes))
    return out


def _comparator(clause, start) -> str:
    before = clause[:start][-6:]
    if any(c in before for c in ("力争超过", "超过", "超", "突破")):
        return ">"
    return ">="


def _wording(clause: str, start: int, end: int, lo: int, hi: int) -> str:
    """The indicator's words around a number: before it (达/超 …) or after it (新增10家…)."""
    raw_before = clause[lo:start]
    before = raw_before.lstrip("、 ")
    after = clause[end:hi].rstrip("、 ")
    before = re.sub(r"(力争|达到|达|超过|超|突破|不低于|不少于|提高到)\s*$", "", before.strip())
    before = re.sub(r"^.*?到20\d\d年(\d+月)?", "", before)
    before = re.sub(r"^(其中|全市|全区|全县)", "", before)
    after = re.sub(r"^(以上|的)+", "", after.strip())
    tail_cue = re.search(r"(新增|累计|培育|建成|发展|集聚|引培|服务|实施|开展|建设|引育)$", before)
    if lo and raw_before.rstrip().endswith("、") and len(clean(after)) >= 2:
        w = after                      # 新增1个A、1个B: B's words follow its number
    elif len(clean(before)) >= 4 and not tail_cue:
        w = before
    elif len(clean(after)) >= 2:
        w = (tail_cue.group(1) if tail_cue and tail_cue.group(1) in ("新增", "累计") else "") + after
    else:
        w = before
    return w.strip(" ，,、") or clause.strip()


# ------------------------------------------------------------------ series matching
def series_synonyms(reg) -> dict[str, str]:
    """Wordings known to mean a series: the registry names and the shipped plans' names."""
    syn = {clean(s.name_zh): code for code, s in reg.series.items()}
    for p in reg.plans.values():
        for ind in p.indicators:
            syn.setdefault(clean(ind.name_zh), ind.series)
    return syn


def match_series(wording: str, syn: dict[str, str]) -> tuple[str | None, float]:
    w = clean(wording)
    if not w:
        return None, 0.0
    if w in syn:
        return syn[w], 1.0
    best, score = None, 0.0
    for name, code in syn.items():
        r = difflib.SequenceMatcher(None, w, name).ratio()
        if name in w or w in name:
            r = max(r, 0.75 + 0.2 * min(len(w), len(name)) / max(len(w), len(name)))
        if r > score:
            best, score = code, r
    return (best, score) if score >= 0.6 else (None, score)


def category_of(wording: str) -> str:
    w = clean(wording)
    for cat, words in CATEGORY_WORDS:
        if any(x in w for x in words):
            return cat
    return "creation"


# ------------------------------------------------------------------ the draft
def extract(path: Path, reg, plan_id: str | None = None) -> dict:
    """The draft plan (a dict in the DESIGN.md §3 format, with ``status: draft``)."""
    lines = read_document(path)
    meta = guess_meta(lines, reg.jurisdictions)
    period = meta["period"]
    tables = find_tables(lines)
    table_lines = set()
    for f in tables:
        table_lines.update(range(f.line, f.line + 8))
    prose = find_prose(lines, period, table_lines)
    # a prose sentence that restates a table row (same value) is the table row, not a new target
    table_vals = {(round(f.value, 6), f.target_year) for f in tables if f.value is not None}
    # … or states a row's 增加值 in the row's own words (3468 − 2868 = 新增…贯标备案单位600家)
    increments = [(round(f.value - f.baseline, 6), f.target_year, clean(f.wording)[:6]) for f in tables
                  if f.value is not None and f.baseline is not None]

    def restates(f):
        if f.value is None:
            return False
        if (round(f.value, 6), f.target_year) in table_vals:
            return True
        return "新增" in f.quote and any(round(f.value, 6) == v and f.target_year == y and w[2:6] in clean(f.quote)
                                        for v, y, w in increments)
    restated = [f for f in prose if restates(f)]
    prose = [f for f in prose if f not in restated]
    # a table row 新增… without a remark: the prose restating it decides — “新增…达N” is the
    # yearly amount reaching N (level); “新增…N” without 达 is N new over the period
    for t in tables:
        if t.wording.startswith("新增") and t.measure == "level" and not t.remark:
            for f in restated:
                if _close(f.value, t.value) and f.target_year == t.target_year \
                        and clean(t.wording)[2:8] in clean(f.quote):
                    i = f.quote.find(f.raw)
                    if not re.search(r"达到?", f.quote[:max(i, 0)]):
                        t.measure = "cumulative"
                        t.notes.append(f"新增 without 达 in the restating sentence (line {f.line}): N new over the period")
                    break
    # the same target restated in a later section (tasks repeat the goals): keep the first
    kept, seen = [], {}
    for f in prose:
        k = (None if f.value is None else round(f.value, 6), f.unit, f.target_year, clean(f.wording)[-6:])
        if f.value is not None and k in seen:
            seen[k].notes.append(f"restated at line {f.line}")
            continue
        seen[k] = f
        kept.append(f)
    prose = kept
    found = tables + prose
    if period is None:
        years = [f.target_year for f in found if f.target_year]
        period = (min(years) - 2, max(years)) if years else (2024, 2026)
    syn = series_synonyms(reg)
    indicators, seen_ids = [], {}
    for f in found:
        code, score = match_series(f.wording, syn)
        if code and code in reg.series:
            f.value, new_unit, done = convert_unit(f.value, f.unit, reg.series[code].unit)
            if done:
                f.notes.append(f"{f.raw} converted from {f.unit} to the series unit {new_unit}")
                f.baseline = convert_unit(f.baseline, f.unit, new_unit)[0]
                f.unit = new_unit
        base_id = code or "unmapped"
        seen_ids[base_id] = seen_ids.get(base_id, 0) + 1
        iid = base_id if seen_ids[base_id] == 1 else f"{base_id}_{seen_ids[base_id]}"
        ty = f.target_year or period[1]
        conf = (0.9 if f.source == "table" else 0.7) * (1.0 if code else 0.7)
        if f.value is None:
            conf = 0.2
        if f.target_year is None:
            conf *= 0.8
        d = {"id": iid, "name_zh": clean(f.wording)[:40], "series": code, "category": category_of(f.wording),
             "attribute": f.attribute, "measure": f.measure}
        if f.measure in ("cumulative", "increment"):
            d["window"] = [period[0], ty]
        d.update({"target": _tidy(f.value), "comparator": f.comparator, "target_year": ty})
        if f.baseline is not None:
            d["baseline"] = _tidy(f.baseline)
            if f.baseline_year and f.baseline_year != period[0] - 1:
                d["baseline_year"] = f.baseline_year
        d["unit"] = f.unit
        d["quote"] = f.quote
        d["line"] = f.line
        d["confidence"] = round(conf, 2)
        why = [f"read from the {'table' if f.source == 'table' else 'text'}",
               f"measure '{f.measure}' from the wording", f"series match {score:.2f}" if code else "no series matched"]
        d["interpretation"] = "draft: " + "; ".join(why)
        if f.notes:
            d["note"] = "; ".join(f.notes)
        indicators.append(d)
    pid = plan_id or re.sub(r"[^a-z0-9-]+", "-", Path(path).stem.lower()).strip("-") or "draft"
    plan = {"id": pid, "status": "draft", "name_zh": meta["title"][:80], "name_en": f"Draft from {Path(path).name}",
            # a place the document does not name (OCR-damaged title) is declared inline and marked
            "jurisdiction": meta["jurisdiction"] or {"code": "draft-place", "name_zh": "待核实（文件未能识别地区）",
                                                     "name_en": "place to be checked", "level": "city", "parent": None}, "period": list(period), "baseline_year": period[0] - 1,
            "source": f"{Path(path).name} (ipsim extract; review every indicator)",
            "notes": "Draft written by ipsim extract. Check each value against its quote and line, map "
                     "series: null to a code, fix the jurisdiction if it is draft-place, then remove status: draft. "
                     + (meta.get("period_note") or "") + (f" {len(restated)} prose sentence(s) restating table rows "
                                                          "were left out." if restated else ""),
            "indicators": indicators}
    return plan


def _tidy(v):
    """20.0 → 20 for the reader; 1.3 stays 1.3 (rounded to 10 significant digits: 0.5 not 0.49999…)."""
    if v is None:
        return None
    v = float(f"{v:.10g}")
    return int(v) if v.is_integer() else v


def write_draft(plan: dict, out: Path) -> Path:
    import yaml

    text = ("# Draft plan written by `ipsim extract` — review before use (DESIGN.md §3).\n"
            + yaml.safe_dump(plan, allow_unicode=True, sort_keys=False, width=120))
    out = Path(out)
    out.write_text(text, encoding="utf-8")
    return out
