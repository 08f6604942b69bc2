"""The plan files against the seed documents they encode."""
import re

import pytest

from conftest import seed_text

# Wuxi annex, hand-read from seed 000: (id, series, baseline, target, measure)
WUXI_ANNEX = [
    ("hv_invention_per10k", "hv_invention_per10k", 24, 30, "level"),
    ("overseas_invention_grants", "overseas_invention_grants", 120, 380, "cumulative"),
    ("pct_applications", "pct_applications", 649, 1500, "cumulative"),
    ("madrid_applications", "madrid_applications", 100, 240, "cumulative"),
    ("works_registrations_cumulative", "works_registrations_cumulative", 16538, 18000, "level"),
    ("hv_cultivation_centres", "hv_cultivation_centres", 16, 25, "level"),
    ("patent_navigation_projects", "patent_navigation_projects", 10, 16, "level"),
    ("ip_advantage_enterprises_national", "ip_advantage_enterprises_national", 67, 87, "level"),
    ("ip_workstations", "ip_workstations", 10, 20, "level"),
    ("ip_alliances", "ip_alliances", 3, 5, "level"),
    ("ip_operation_institutions", "ip_operation_institutions", 10, 11, "level"),
    ("pledge_financing", "pledge_financing_registered", 100, 260, "cumulative"),
    ("genuine_goods_streets", "genuine_goods_streets", 35, 37, "level"),
    ("ip_protection_satisfaction", "ip_protection_satisfaction", 82, 85, "level"),
    ("ip_service_cluster_area", "ip_service_cluster_area", 25000, 45000, "level"),
    ("ip_service_agencies_10m", "ip_service_agencies_10m", 12, 12, "level"),
    ("ip_info_service_points_provincial", "ip_info_service_points_provincial", 5, 5, "level"),
    ("patent_agency_rate", "patent_agency_rate", 87, 90, "level"),
    ("ip_standard_units", "ip_standard_units", 2868, 3468, "level"),
    ("iso56005_pilot_units", "iso56005_pilot_units", 0, 70, "level"),
]


def test_all_plans_present(registry):
    assert set(registry.plans) == {"wuxi-2024", "binhu-2024", "yixing-2024", "maanshan-2024",
                                   "suzhou-2021", "suzhou-2016", "china-2016", "china-2021"}


def test_wuxi_annex_rows(registry):
    plan = registry.plan("wuxi-2024")
    assert plan.baseline_year == 2023 and plan.period == (2024, 2026)
    for ind_id, series, base, target, measure in WUXI_ANNEX:
        ind = plan.indicator(ind_id)
        assert (ind.series, ind.baseline, ind.target, ind.measure, ind.target_year) == (series, base, target, measure, 2026), ind_id
        if measure == "cumulative":
            assert ind.window == (2024, 2026)
    # the two "超过全省平均水平" shares of the main text are relative targets
    rel = [i for i in plan.indicators if i.measure == "relative"]
    assert {i.series for i in rel} == {"patent_intensive_share", "copyright_industry_share"}
    assert all(i.relative_to["jurisdiction"] == "jiangsu" and i.comparator == ">" for i in rel)


def test_wuxi_annex_numbers_match_the_table():
    """Each annex row in the seed: name line followed by 2023 value, 2026 value, increase."""
    lines = [l.strip() for l in seed_text("000").splitlines()]
    by_number = {}
    for i, l in enumerate(lines):
        m = re.match(r"^(\d+)\.\s*(.+?)（", l)
        if m and i > 140:
            by_number[int(m.group(1))] = lines[i + 1:i + 4]
    assert len(by_number) == 20
    for n, (_, _, base, target, _) in enumerate(WUXI_ANNEX, start=1):
        b, t, inc = by_number[n]
        assert float(t) == target
        assert (b == "新标" and base == 0) or float(b) == base
        assert float(inc) == target - base or n in (2, 3, 4, 12, 20)  # cumulative rows: increase = 3-year total


SEED_OF = {"wuxi-2024": "000", "binhu-2024": "001", "suzhou-2021": "002", "suzhou-2016": "002",
           "yixing-2024": "003", "maanshan-2024": "004"}


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s)


@pytest.mark.parametrize("plan_id", sorted(SEED_OF))
def test_quotes_are_the_plans_own_words(registry, plan_id):
    text = seed_text(SEED_OF[plan_id])
    lines = text.splitlines()
    flat = _norm(text)
    for ind in registry.plan(plan_id).indicators:
        assert ind.quote, ind.id
        if plan_id in ("wuxi-2024",) and ind.measure != "relative" or plan_id == "suzhou-2016":
            # table rows: every cell of the quote appears in order near the stated line
            window = _norm("".join(lines[max(0, ind.line - 3):ind.line + 8]))
            for cell in ind.quote.split():
                assert _norm(cell) in window, (ind.id, cell)
        elif plan_id == "suzhou-2021" and ind.line and 330 <= ind.line <= 445:
            window = _norm("".join(lines[ind.line - 1:ind.line + 4]))
            for cell in ind.quote.split():
                assert _norm(cell) in window, (ind.id, cell)
        else:
            assert _norm(ind.quote) in flat, (ind.id, ind.quote)
            assert _norm(ind.quote) in _norm(lines[ind.line - 1]), (ind.id, "line", ind.line)


UNIT = r"(?:万件|万元|亿元|件|家|个|名|人次|人|项|%|分|平方米|场|次)"
NUM = re.compile(r"(?<![\d.（(])(\d+(?:\.\d+)?)(?:-\d+)?\s*(万)?\s*(" + UNIT + ")")


def _numbers(text: str):
    """(number with its unit, position): '45000平方米', '1万个' — the unit keeps '1家' apart from '1件'."""
    for m in NUM.finditer(text):
        yield m.group(1) + (m.group(2) or "") + m.group(3), m.start()


PROSE = {  # plan -> seed lines holding its targets (goals and tasks)
    "binhu-2024": range(20, 111),
    "yixing-2024": range(16, 60),
    "maanshan-2024": range(1, 29),
    "suzhou-2021": list(range(317, 324)) + list(range(445, 585)),
}


@pytest.mark.parametrize("plan_id", sorted(PROSE))
def test_every_target_number_in_the_prose_is_encoded_or_excluded(registry, plan_id):
    """Every number-with-a-unit on the target lines appears in an indicator's quote or in
    an `excluded` entry (with its reason) — nothing silently dropped."""
    plan = registry.plan(plan_id)
    lines = seed_text(SEED_OF[plan_id]).splitlines()
    covered = " ".join([i.quote for i in plan.indicators] + [e["text"] for e in plan.excluded])
    covered_numbers = {n for n, _ in _numbers(covered)}
    missing = []
    for ln in PROSE[plan_id]:
        if ln > len(lines):
            continue
        for num, pos in _numbers(lines[ln - 1]):
            context = lines[ln - 1][max(0, pos - 6):pos + 8]
            if num in covered_numbers or re.match(r"^(19|20)\d\d$", num):
                continue
            missing.append((ln, num, context))
    assert not missing, missing


def test_garbled_numbers_are_null_not_guessed(registry):
    plan = registry.plan("maanshan-2024")
    spec = plan.indicator("enterprise_ip_specialists")
    assert spec.target is None and "OCR" in spec.note
    assert plan.indicator("ip_talent_pool").target == 1000  # readable in the goals section
    assert not plan.indicator("enterprise_ip_specialists").evaluable


def test_ambiguous_targets_state_their_reading(registry):
    p = registry.plan("maanshan-2024").indicator("pledge_financing")
    assert p.measure == "level" and "annual" in p.interpretation
    y = registry.plan("yixing-2024").indicator("patent_grants_cumulative")
    assert y.measure == "cumulative" and y.window == (2024, 2026) and y.interpretation


def test_suzhou_2016_outcomes_are_observations(registry):
    obs = registry.observations
    sz = obs[(obs.jurisdiction == "suzhou") & (obs.year == 2020)]
    assert sz[(sz.series == "invention_per10k") & (sz.period == "full")].value.iloc[0] == 68.85
    assert sz[(sz.series == "pct_applications") & (sz.period == "sum-2016-2020")].value.iloc[0] == 10932
    plan = registry.plan("suzhou-2016")
    assert plan.indicator("invention_per10k").attribute == "binding"
    assert plan.indicator("pct_applications").measure == "cumulative"


def test_every_observation_has_a_source_and_estimates_are_marked(registry):
    obs = registry.observations
    assert (obs.source.str.strip() != "").all()
    derived = obs[obs.note.str.contains("DERIVED|derived:", regex=True)]
    assert len(derived) and (derived.reliability == "estimate").all()


def test_shared_sourced_rows_all_imported(registry):
    import csv
    from conftest import ROOT

    shared = ROOT.parent / "shared" / "data" / "sourced_observations.csv"
    if not shared.exists():
        pytest.skip("shared data not beside the checkout")
    n = sum(1 for _ in csv.DictReader(open(shared, encoding="utf-8")))
    obs = registry.observations
    assert (obs.file.str.endswith("sourced.csv")).sum() == n


def test_census_break_marked_for_per_10k_series(registry):
    assert registry.series["hv_invention_per10k"].census_break == 2020
    assert registry.series["invention_per10k"].census_break == 2020
