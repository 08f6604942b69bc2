"""plans listing, plans show, own plan files and data templates."""
import subprocess
import sys

import openpyxl
import pandas as pd

from test_validation import GOOD_PLAN, OBS_HEADER, write


def test_plans_lists_all_plans_with_counts(run_cli):
    code, out, err = run_cli("plans", "--lang", "en")
    assert code == 0, err
    for pid in ("wuxi-2024", "binhu-2024", "yixing-2024", "maanshan-2024", "suzhou-2021", "suzhou-2016", "china-2021"):
        assert pid in out
    wuxi = next(l for l in out.splitlines() if l.strip().startswith("wuxi-2024"))
    assert wuxi.split()[-2:] == ["22", "20"]  # 22 evaluable targets, 20 with own history (plan baselines)


def test_plans_show_zh_has_chinese_headers(run_cli):
    code, out, err = run_cli("plans", "show", "maanshan-2024")
    assert code == 0
    assert "目标值" in out and "企业知识产权专员队伍" in out and "—" in out  # null target shown as —


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "simulate", "plans", "--lang", "en"], capture_output=True, text=True)
    assert r.returncode == 0 and "suzhou-2021" in r.stdout


def test_own_plan_file_is_listed(tmp_path, run_cli):
    p = write(tmp_path, "plan.yaml", GOOD_PLAN)
    code, out, err = run_cli("plans", "--plan-file", str(p), "--lang", "en")
    assert code == 0, err
    assert "my-city-2024" in out


def test_data_template_csv_roundtrip(tmp_path, run_cli, registry):
    out_path = tmp_path / "t.csv"
    code, out, err = run_cli("data", "template", "wuxi-2024", "--format", "csv", "--out", str(out_path))
    assert code == 0, err
    raw = out_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it with Chinese intact
    text = raw.decode("utf-8-sig")
    lines = text.splitlines()
    # known value pre-filled: Wuxi PCT 2024 = 763 (white paper)
    assert any(l.startswith("wuxi,pct_applications,2024,763,") for l in lines)
    # the relative targets need Jiangsu's shares too
    assert any(l.startswith("jiangsu,patent_intensive_share,") for l in lines)
    # a planner fills a blank row and re-encodes as GBK (Chinese Excel default): accepted
    filled = text.replace("wuxi,ip_alliances,2024,,full,official,,", "wuxi,ip_alliances,2024,4,full,official,市知识产权局内部统计,")
    assert filled != text
    gbk = tmp_path / "filled.csv"
    gbk.write_bytes(filled.encode("gbk"))
    code, out, err = run_cli("validate", str(gbk))
    assert code == 0, err
    from simulate.registry import Registry

    reg = Registry.load(registry.home, data_files=[gbk])
    row = reg.observations[(reg.observations.series == "ip_alliances") & (reg.observations.year == 2024)]
    assert row.value.tolist() == [4.0]


def test_data_template_xlsx_opens_and_validates(tmp_path, run_cli):
    out_path = tmp_path / "t.xlsx"
    code, out, err = run_cli("data", "template", "suzhou-2021", "--format", "xlsx", "--out", str(out_path))
    assert code == 0, err
    wb = openpyxl.load_workbook(out_path)
    ws = wb["observations"]
    header = [c.value for c in ws[1]]
    assert header[:8] == ["jurisdiction", "series", "year", "value", "period", "reliability", "source", "note"]
    assert "README" in wb.sheetnames
    code, out, err = run_cli("validate", str(out_path))
    assert code == 0, err


def test_xlsx_with_merged_header_is_rejected(tmp_path, run_cli):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["jurisdiction", "series", "year", "value", "period", "reliability", "source", "note"])
    ws.append(["wuxi", "pct_applications", 2030, 1, "full", "official", "s", ""])
    ws.merge_cells("A1:B1")
    p = tmp_path / "m.xlsx"
    wb.save(p)
    code, out, err = run_cli("validate", str(p))
    assert code == 2 and "merged cells" in err and "Traceback" not in err


def test_terminal_tables_fit_100_columns_and_wide_shows_all(run_cli):
    # issue 14 item 4: tables were up to 187 columns wide; a Han character takes two
    from simulate.terminal import display_width

    for lang in ("zh", "en"):
        code, out, _ = run_cli("plans", "show", "suzhou-2021", "--lang", lang)
        assert code == 0
        lines = out.splitlines()[1:]
        assert max(display_width(x) for x in lines) <= 100, max(display_width(x) for x in lines)
        assert ("--wide" in lines[-1]) and len(lines) > 30
        code, wide, _ = run_cli("plans", "show", "suzhou-2021", "--lang", lang, "--wide")
        assert max(display_width(x) for x in wide.splitlines()[1:]) > 100
        assert ("解读" if lang == "zh" else "interpretation") in wide.splitlines()[1]
    assert display_width("每万人口ab") == 10
    from simulate.terminal import render

    # numbers align right, whatever their notation; a word column stays left
    lines = render(pd.DataFrame({"v": ["36.54", "1.817e+04", "—"], "w": ["a", "bb", "nan"]})).splitlines()
    assert [ln[:9] for ln in lines] == ["        v", "    36.54", "1.817e+04", "        —"]
    code, out, _ = run_cli("plans")       # the list of plans: long names (was 117 columns)
    assert code == 0 and max(display_width(x) for x in out.splitlines()) <= 100
    assert len(out.splitlines()) == 1 + len(registry_plans())
    code, wide, _ = run_cli("plans", "--wide")
    assert "无锡市滨湖区国家知识产权服务业高质量集聚发展示范区建设方案（2024—2026年）" in wide


def registry_plans():
    from simulate import Registry

    return Registry.load().plans
