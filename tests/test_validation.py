"""Each validation error on a broken fixture: exit status 2, one line naming file,
line or key, and the fix; never a traceback."""
import textwrap

import pytest

GOOD_PLAN = """\
id: my-city-2024
name_zh: 某市知识产权工作方案
name_en: Some city IP plan
jurisdiction: {code: somecity, name_zh: 某市, name_en: Some City, level: city, parent: jiangsu}
period: [2024, 2026]
baseline_year: 2023
source: test
indicators:
  - id: hv
    name_zh: 每万人口高价值发明专利拥有量
    series: hv_invention_per10k
    category: creation
    attribute: expected
    measure: level
    target: 20
    target_year: 2026
    baseline: 15
    quote: "达20件"
"""

OBS_HEADER = "jurisdiction,series,year,value,period,reliability,source,note\n"


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(textwrap.dedent(text).encode(encoding))
    return p


def check_error(run_cli, path, *needles, line=None):
    code, out, err = run_cli("validate", str(path))
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert str(path) in err
    if line is not None:
        assert f"line {line}" in err, err
    for n in needles:
        assert n in err, err
    return err


def test_good_own_plan_with_inline_jurisdiction_passes(tmp_path, run_cli):
    p = write(tmp_path, "plan.yaml", GOOD_PLAN)
    code, out, err = run_cli("validate", str(p))
    assert code == 0, err
    assert "plan" in out


@pytest.mark.parametrize("old,new,needles,line", [
    ("series: hv_invention_per10k", "series: hv_invention_per10kk", ["unknown series code", "did you mean 'hv_invention_per10k'"], 11),
    ("parent: jiangsu}", "parent: jiangsuu}", ["unknown parent jurisdiction", "did you mean 'jiangsu'"], 4),
    ("target_year: 2026", "target_year: 2022", ["not after the baseline year"], 16),
    ("target: 20\n", "target: twenty\n", ["target must be a number"], 15),
    ("measure: level", "measure: levle", ["unknown measure", "did you mean 'level'"], 14),
    ("    quote:", "    qoute:", ["unknown key 'qoute'", "did you mean 'quote'"], 18),
    ("category: creation", "category: creations", ["unknown category", "did you mean 'creation'"], 12),
])
def test_plan_errors(tmp_path, run_cli, old, new, needles, line):
    p = write(tmp_path, "plan.yaml", GOOD_PLAN.replace(old, new))
    check_error(run_cli, p, *needles, line=line)


def test_duplicated_indicator_id(tmp_path, run_cli):
    text = GOOD_PLAN + GOOD_PLAN.split("indicators:\n")[1]
    p = write(tmp_path, "plan.yaml", text)
    check_error(run_cli, p, "duplicated indicator id 'hv'", line=19)


def test_percent_target_outside_bounds(tmp_path, run_cli):
    text = GOOD_PLAN.replace("series: hv_invention_per10k", "series: patent_agency_rate").replace("target: 20", "target: 120")
    check_error(run_cli, write(tmp_path, "plan.yaml", text), "outside the bounds", line=15)


def test_window_outside_period(tmp_path, run_cli):
    text = GOOD_PLAN.replace("measure: level", "measure: cumulative\n    window: [2022, 2026]")
    check_error(run_cli, write(tmp_path, "plan.yaml", text), "outside the plan period")


def test_yaml_syntax_error(tmp_path, run_cli):
    text = GOOD_PLAN.replace("period: [2024, 2026]", "period: [2024, 2026")
    check_error(run_cli, write(tmp_path, "plan.yaml", text), "YAML syntax error", "line")


def test_empty_file(tmp_path, run_cli):
    check_error(run_cli, write(tmp_path, "plan.yaml", "  \n"), "empty")


@pytest.mark.parametrize("row,needles", [
    ("wuxi,pct_aplications,2024,700,full,official,src,", ["unknown series 'pct_aplications'", "did you mean 'pct_applications'"]),
    ("wuxii,pct_applications,2024,700,full,official,src,", ["unknown jurisdiction 'wuxii'", "did you mean 'wuxi'"]),
    ("wuxi,pct_applications,2024,七百,full,official,src,", ["is not a number"]),
    ("wuxi,valid_invention_patents,2024,-5,full,official,src,", ["negative value"]),
    ("wuxi,patent_agency_rate,2024,105,full,official,src,", ["outside the bounds"]),
    ("wuxi,pct_applications,2024,700,full,offical,src,", ["reliability 'offical'", "did you mean 'official'"]),
    ("wuxi,pct_applications,2024,700,full,official,,", ["no source"]),
    ("wuxi,pct_applications,2024,700,q3,official,src,", ["unknown period 'q3'"]),
    ("wuxi,valid_invention_patents,2024,700,m1-m9,official,src,", ["is for flows"]),
])
def test_observation_errors(tmp_path, run_cli, row, needles):
    p = write(tmp_path, "obs.csv", OBS_HEADER + row + "\n")
    check_error(run_cli, p, *needles, line=2)


def test_conflicting_duplicates_need_an_estimate(tmp_path, run_cli):
    rows = ("wuxi,pct_applications,2030,700,full,official,a,\n"
            "wuxi,pct_applications,2030,800,full,secondary,b,\n")
    check_error(run_cli, write(tmp_path, "obs.csv", OBS_HEADER + rows), "conflicting values", "estimate")
    ok = rows.replace("secondary,b", "estimate,b")
    code, out, err = run_cli("validate", str(write(tmp_path, "obs2.csv", OBS_HEADER + ok)))
    assert code == 0, err


def test_rounded_duplicates_are_not_conflicts(tmp_path, run_cli):
    rows = ("wuxi,pct_applications,2030,74000,full,secondary,a,\n"
            "wuxi,pct_applications,2030,73812,full,official,b,\n")
    code, out, err = run_cli("validate", str(write(tmp_path, "obs.csv", OBS_HEADER + rows)))
    assert code == 0, err


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_encodings_excel_writes_are_accepted(tmp_path, registry, encoding):
    from simulate.errors import Problems
    from simulate.registry import load_observations

    p = write(tmp_path, "obs.csv", OBS_HEADER + "wuxi,pct_applications,2030,700,full,official,无锡市统计局内部数据,备注\n", encoding)
    problems = Problems()
    df = load_observations([p], registry.series, registry.jurisdictions, problems)
    assert not problems.errors
    assert df.source.iloc[0] == "无锡市统计局内部数据" and df.note.iloc[0] == "备注"


def test_thousands_separators_and_full_width_digits_accepted(tmp_path, registry):
    from simulate.errors import Problems
    from simulate.registry import load_observations

    p = write(tmp_path, "obs.csv", OBS_HEADER + 'wuxi,valid_invention_patents,2030,"67,676",full,official,s,\n'
              "wuxi,pct_applications,2030,７６３,full,official,s,\n")
    problems = Problems()
    df = load_observations([p], registry.series, registry.jurisdictions, problems)
    assert not problems.errors
    assert sorted(df.value) == [763.0, 67676.0]


def test_shipped_registry_validates(run_cli):
    code, out, err = run_cli("validate")
    assert code == 0, err
    assert out.startswith("OK")


def test_unknown_plan_is_a_clear_error(run_cli):
    code, out, err = run_cli("plans", "show", "wuxi-2042")
    assert code == 2 and "unknown plan 'wuxi-2042'" in err and "did you mean 'wuxi-2024'" in err


def test_fast_and_python_yaml_parsers_read_every_shipped_file_alike():
    """libyaml's parser (the fast path) and PyYAML's own give the same data and the
    same line numbers for every shipped YAML file; a file libyaml rejects still gets
    the pure-Python parser's message, which names the character."""
    import yaml

    from conftest import ROOT
    from simulate import yamlio

    files = sorted(ROOT.glob("data/**/*.yaml")) + sorted(ROOT.glob("scenarios/*.yaml"))
    assert len(files) >= 10
    for f in files:
        text = yamlio.read_text(f)
        assert yaml.load(text, Loader=yamlio._FastLineLoader) == yaml.load(text, Loader=yamlio._LineLoader), f
