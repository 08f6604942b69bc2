"""Reading users' tables: CSV in UTF-8, UTF-8 with BOM or GBK (what Chinese Excel
writes), and XLSX.  Returns rows as dicts of strings plus the line/row number
each came from, so that validation can name it."""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from pathlib import Path

from .errors import InputError, Problem

ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 is a superset of GBK


def decode_csv(raw: bytes, path: Path) -> str:
    for enc in ENCODINGS:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise InputError(Problem(str(path), "", "cannot read the CSV as UTF-8 or GBK",
                             "save it from Excel as 'CSV UTF-8' or plain CSV"))


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (line number, row) pairs of a CSV or XLSX file."""
    path = Path(path)
    if not path.exists():
        raise InputError(Problem(str(path), "", "file not found", "check the path"))
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    text = decode_csv(path.read_bytes(), path)
    if not text.strip():
        raise InputError(Problem(str(path), "", "the file is empty", "add a header row and data rows"))
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    header = [h.strip() for h in rows[0]]
    out = []
    for i, r in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in r):
            continue
        out.append((i, {h: (r[j].strip() if j < len(r) else "") for j, h in enumerate(header)}))
    return header, out


def _read_xlsx(path: Path):
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=False, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise InputError(Problem(str(path), "", f"cannot open the workbook ({type(exc).__name__})",
                                 "re-save it from Excel as .xlsx")) from None
    ws = wb["observations"] if "observations" in wb.sheetnames else wb.worksheets[0]
    for rng in ws.merged_cells.ranges:
        if rng.min_row == 1:
            raise InputError(Problem(str(path), f"sheet '{ws.title}', cells {rng.coord}",
                                     "merged cells in the header row",
                                     "unmerge them so each column has its own header"))
    rows = list(ws.iter_rows(values_only=True))
    if any(v is None for r in rows[1:] for v in r):
        # a formula saved by a program that does not compute it (not Excel) has no
        # stored result: data_only reads it as empty and the row would vanish silently
        fws = openpyxl.load_workbook(path, read_only=False, data_only=False)[ws.title]
        for i, (r, f) in enumerate(zip(rows, fws.iter_rows(values_only=True)), start=1):
            for j, (v, fv) in enumerate(zip(r, f)):
                if v is None and isinstance(fv, str) and fv.startswith("="):
                    col = openpyxl.utils.get_column_letter(j + 1)
                    raise InputError(Problem(str(path), f"sheet '{ws.title}', cell {col}{i}",
                                             f"formula {fv} has no saved result",
                                             "open and save the file in Excel, or paste the values"))
    if not rows:
        raise InputError(Problem(str(path), "", "the sheet is empty", "add a header row and data rows"))
    header = [("" if h is None else str(h)).strip() for h in rows[0]]
    out = []
    for i, r in enumerate(rows[1:], start=2):
        vals = ["" if v is None else (f"{v:g}" if isinstance(v, float) else str(v)).strip() for v in r]
        if not any(vals):
            continue
        out.append((i, {h: (vals[j] if j < len(vals) else "") for j, h in enumerate(header) if h}))
    return header, out


_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_number(text: str) -> float | None:
    """A number as users paste it: full-width digits and thousands separators are
    accepted (documented in the README); anything else returns None."""
    s = unicodedata.normalize("NFKC", str(text)).strip().replace("，", ",")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    try:
        v = float(s)
    except ValueError:
        return None
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return v
