"""Tables for the terminal: aligned for Chinese text (a Han character takes two columns)
and fitted to 100 columns — names are shortened first, then the least needed columns
are left out with a note; ``--wide`` prints everything."""
from __future__ import annotations

import unicodedata

import pandas as pd

WIDTH = 100
MIN_NAME = 12
GAP = "  "


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))


def _shorten(text: str, width: int) -> str:
    text = str(text)
    if display_width(text) <= width:
        return text
    out = ""
    for ch in text:
        if display_width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def _number(text: str) -> bool:
    try:
        float(text)      # 36.54, 1.817e+04
    except ValueError:
        return False
    return text.lower() not in ("nan", "inf", "infinity")


def _numeric(col: pd.Series) -> bool:
    vals = [str(v).strip().rstrip("%").lstrip("+-−") for v in col if str(v).strip() not in ("", "—")]
    return bool(vals) and all(_number(v) for v in vals)


def render(df: pd.DataFrame) -> str:
    cells = df.astype(object).where(df.notna(), "").astype(str)
    widths = {c: max([display_width(c)] + [display_width(v) for v in cells[c]]) for c in df.columns}
    right = {c: _numeric(cells[c]) for c in df.columns}
    lines = [GAP.join(_pad(str(c), widths[c], right[c]) for c in df.columns).rstrip()]
    for _, row in cells.iterrows():
        lines.append(GAP.join(_pad(row[c], widths[c], right[c]) for c in df.columns).rstrip())
    return "\n".join(lines)


def fit_table(df: pd.DataFrame, *, name_col: str | None = None, drop_order=(), wide: bool = False,
              width: int = WIDTH, lang: str = "zh") -> str:
    """``df`` rendered within ``width`` columns: ``name_col`` is shortened (down to
    MIN_NAME), then columns in ``drop_order`` are left out one by one; a last line
    names what was left out.  ``wide`` renders everything as is."""
    if wide or df.empty:
        return render(df)
    df = df.copy()
    text = render(df)

    def over(t):   # columns beyond the width (≤ 0: fits)
        return max(map(display_width, t.splitlines())) - width

    def shorten_name(floor):
        nonlocal text
        if name_col in df.columns and over(text) > 0:
            keep = max(floor, max(display_width(v) for v in df[name_col].astype(str)) - over(text))
            df[name_col] = df[name_col].astype(str).map(lambda v: _shorten(v, keep))
            text = render(df)

    # names keep 20 columns while other columns can go; then they shrink to MIN_NAME
    shorten_name(20)
    dropped = []
    for col in drop_order:
        if over(text) <= 0:
            break
        if col in df.columns:
            df = df.drop(columns=[col])
            dropped.append(str(col))
            text = render(df)
    shorten_name(MIN_NAME)
    if dropped:
        note = ("（未显示：" + "、".join(dropped) + "；--wide 显示全部列）" if lang == "zh"
                else "(not shown: " + ", ".join(dropped) + "; --wide shows every column)")
        if display_width(note) > width:   # the note itself fits too
            note = (f"（未显示 {len(dropped)} 列；--wide 显示全部列）" if lang == "zh"
                    else f"(not shown: {len(dropped)} columns; --wide shows every column)")
        text += "\n" + note
    return text
