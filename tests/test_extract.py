"""`ipsim extract` on the five seed documents, compared with the hand-checked plans."""
import re
from pathlib import Path

import pytest

from simulate.extract import clean, convert_unit, extract, read_document, to_number
from tests.conftest import SEEDS

DOCS = {"wuxi-2024": "000", "binhu-2024": "001", "suzhou-2021": "002", "yixing-2024": "003", "maanshan-2024": "004"}


def _seed(prefix):
    path = next(SEEDS.glob(prefix + "*"), None)
    if path is None:
        pytest.skip("../shared/seeds not beside the checkout")
    return path


def _close(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))


@pytest.fixture(scope="module")
def drafts(registry):
    return {pid: extract(_seed(pre), registry) for pid, pre in DOCS.items()}


def _hand(registry, pid):
    return [i for i in registry.plan(pid).indicators if i.target is not None and i.measure != "relative"]


def test_wuxi_annex_every_row_value_and_measure(drafts, registry):
    got = {d["line"]: d for d in drafts["wuxi-2024"]["indicators"]}
    rows = [i for i in _hand(registry, "wuxi-2024") if i.line >= 140]
    assert len(rows) == 20
    for ind in rows:
        d = got.get(ind.line)
        assert d is not None, ind.id
        assert _close(d["target"], ind.target), (ind.id, d["target"], ind.target)
        assert d["measure"] == ind.measure, (ind.id, d["measure"], ind.measure)
        assert d["target_year"] == 2026 and d["series"] == ind.series


def test_suzhou_table2_every_row_value_and_measure(drafts, registry):
    got = {d["line"]: d for d in drafts["suzhou-2021"]["indicators"]}
    rows = [i for i in _hand(registry, "suzhou-2021") if 325 <= i.line <= 445]
    assert len(rows) >= 15
    for ind in rows:
        d = got.get(ind.line)
        assert d is not None, ind.id
        assert _close(d["target"], ind.target), (ind.id, d["target"], ind.target)
        if ind.id in REREAD:
            continue
        assert d["measure"] == ind.measure or {d["measure"], ind.measure} == {"increment", "cumulative"}, ind.id
        assert d["target_year"] == 2025


# Hand readings that rest on evidence the extractor does not use (and should not guess):
# the table row 新增作品登记量 43 → 45 is restated in prose as “新增作品登记量达45万件”
# (达 → a yearly level for the extractor), but the plan's review section says the 43万
# were registered over five years (五年来……新增版权作品登记43万余件, line 12), so the hand
# plan reads a five-year total.  The value is still checked above.
REREAD = {"works_registrations"}


@pytest.mark.parametrize("pid", ["binhu-2024", "yixing-2024", "maanshan-2024"])
def test_prose_plans_recall_at_least_90_percent(drafts, registry, pid):
    hand = _hand(registry, pid)
    found = [i for i in hand if any(_close(d["target"], i.target) for d in drafts[pid]["indicators"])]
    assert len(found) / len(hand) >= 0.9, [i.id for i in hand if i not in found]


@pytest.mark.parametrize("pid", list(DOCS))
def test_no_invented_value(drafts, pid):
    """Every value is printed in the document, on the line the draft names."""
    lines = read_document(_seed(DOCS[pid]))
    for d in drafts[pid]["indicators"]:
        line = lines[d["line"] - 1] if d.get("line") and d["line"] <= len(lines) else ""
        if d["target"] is None:
            continue
        # the quote is the document's own words: a clause of that line, or a table row's cells
        cells = [c.strip() for c in lines[d["line"] - 1:d["line"] + 8]]
        assert d["quote"] in line or all(part in cells for part in d["quote"].split(" | ")), d
        numbers = [to_number(n, m) for n, m in re.findall(r"([0-9０-９]+(?:[.．][0-9０-９]+)?)\s*(万|亿)?", d["quote"])]
        plain = [to_number(n) for n, _ in re.findall(r"([0-9０-９]+(?:[.．][0-9０-９]+)?)\s*(万|亿)?", d["quote"])]
        unit_scaled = [v * f for v in plain for f in (1e4, 1e-4, 1e8)]
        assert any(_close(d["target"], v) for v in numbers + plain + unit_scaled), d


def test_ocr_damage_gives_null_never_a_guess(drafts):
    nulls = [d for d in drafts["maanshan-2024"]["indicators"] if d["target"] is None]
    raws = " ".join(d.get("note", "") for d in nulls)
    assert "超UOo名" in raws and "超WOO名" in raws
    assert all(d["confidence"] <= 0.2 for d in nulls)
    # and OCR-damaged wording still matches its series (知所权 → 知识产权)
    assert clean("知所权服务棚勾达100家") == "知识产权服务机构达100家"


def test_numbers_and_units():
    assert to_number("3.5", "万") == 35000 and to_number("1.3") == 1.3 and to_number("２０") == 20
    assert convert_unit(5000, "万元", "亿元")[:2] == (0.5, "亿元")
    assert convert_unit(45, "万件", "件")[:2] == (450000, "件")
    assert convert_unit(45, "件", "家")[2] is False


def test_cli_draft_validates_and_is_deterministic(run_cli, tmp_path):
    src = _seed("004")
    gbk = tmp_path / "plan-gbk.txt"
    gbk.write_bytes(src.read_text(encoding="utf-8").encode("gb18030"))
    outs = []
    for k in range(2):
        out = tmp_path / f"draft{k}.yaml"
        code, stdout, err = run_cli("extract", str(gbk), "--plan-id", "maanshan-draft", "--out", str(out))
        assert code == 0, err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    code, stdout, err = run_cli("validate", str(tmp_path / "draft0.yaml"))
    assert code == 0, err
    assert "draft-place" in outs[0].decode("utf-8")       # the OCR title names no place: declared, not guessed


# --------------------------------------------------------------------------- fixtures
# Short plan-like texts written for the tests (tests/fixtures/extract): every rule of the
# extractor runs on a fresh clone, without the real plan documents.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "extract"


def _expected():
    import yaml

    return yaml.safe_load((FIXTURES / "expected.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(_expected()))
def test_fixture_drafts_match_the_expected_drafts(registry, name):
    exp = _expected()[name]
    draft = extract(FIXTURES / name, registry)
    jur = draft["jurisdiction"]
    assert (jur["code"] if isinstance(jur, dict) else jur) == exp["jurisdiction"]
    assert draft["period"] == exp["period"]
    if "restated_left_out" in exp:
        assert f"{exp['restated_left_out']} prose sentence(s) restating table rows were left out" in draft["notes"]
    got = draft["indicators"]
    assert len(got) == len(exp["indicators"]), [(d["line"], d["target"]) for d in got]
    for d, e in zip(got, exp["indicators"]):
        for key, want in e.items():
            if key == "note":
                for words in want:
                    assert words in d.get("note", ""), (name, d["line"], words, d.get("note"))
            elif key == "target" and want is not None:
                assert _close(d["target"], want), (name, d["line"], d["target"], want)
            else:
                assert d.get(key) == want, (name, d["line"], key, d.get(key), want)
        # nothing invented: a readable value is printed in its quote, and the quote is on its line
        lines = read_document(FIXTURES / name)
        assert d["quote"].split(" | ")[0] in lines[d["line"] - 1]


def test_fixture_draft_validates_as_a_draft(run_cli, tmp_path):
    out = tmp_path / "draft.yaml"
    code, _, err = run_cli("extract", str(FIXTURES / "table_city.txt"), "--plan-id", "yixing-draft", "--out", str(out))
    assert code == 0, err
    code, stdout, err = run_cli("validate", str(out))
    assert code == 0, err
