"""The evaluator's HTML report: self-contained, bilingual, and checked in headless Chromium."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from simulate.report import write_report
from simulate.results import write_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def report_run(registry, baseline_result, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    run_dir = write_run([baseline_result], registry, d, "baseline", 1, 4000, [])
    return run_dir, baseline_result.probabilities


def _rows_per_plan(text):
    out = {}
    for sec in re.findall(r'<section class="plan" id="([^"]+)">(.*?)</section>', text, flags=re.S):
        out[sec[0]] = len(re.findall(r"<tr data-indicator=", sec[1]))
    return out


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_report_is_self_contained_with_one_row_per_indicator(report_run, registry, lang):
    run_dir, probs = report_run
    path = write_report(run_dir, run_dir / f"r-{lang}.html", registry, lang=lang)
    text = path.read_text(encoding="utf-8")
    # nothing fetched from anywhere: no external scripts, styles or images
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(?!data:)', text)
    # a fan chart for every target with a forecast (reference-class targets have none)
    assert text.count("<img") >= (probs.p_met.notna() & (probs.basis != "reference-class")).sum()
    assert _rows_per_plan(text) == probs.groupby("plan").size().to_dict()
    if lang == "zh":
        for words in ("风险排序", "全部实现概率", "方法与假设", "数据来源", "模型诊断", "无锡市"):
            assert words in text
    else:
        assert "Risk ranking" in text and "P(all met)" in text
    assert 'href="https://' in text or 'href="http://' in text   # sources carry links


def test_report_cli_plan_filter_and_bad_plan(report_run, run_cli, tmp_path):
    run_dir, probs = report_run
    out = tmp_path / "wuxi.html"
    code, stdout, err = run_cli("report", str(run_dir), "--plan", "wuxi-2024", "--out", str(out))
    assert code == 0, err
    assert _rows_per_plan(out.read_text(encoding="utf-8")) == {"wuxi-2024": int((probs.plan == "wuxi-2024").sum())}
    code, _, err = run_cli("report", str(run_dir), "--plan", "wuxi-2042")
    assert code == 2 and "did you mean 'wuxi-2024'" in err


def _need_chromium():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must run the browser test (.ci/run installs it)")
        pytest.skip("chromium not installed (outside CI)")


def test_report_renders_in_headless_chromium(report_run, registry, tmp_path):
    _need_chromium()
    run_dir, probs = report_run
    path = write_report(run_dir, tmp_path / "report.html", registry, lang="zh")
    url = path.resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *FLAGS, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                          "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs.get("ready") == "1", "the page script did not run"
    assert attrs.get("js-errors") == "0"
    assert int(attrs["risk-rows"]) == len(probs)            # one row per indicator, all plans
    assert not re.search(r"Uncaught|ERROR:CONSOLE", dom.stderr)
    shot = tmp_path / "shot.png"
    s = subprocess.run([CHROMIUM, *FLAGS, f"--screenshot={shot}", "--window-size=1280,1800", url],
                       capture_output=True, text=True, timeout=180)
    assert s.returncode == 0 and shot.exists(), s.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    ink = (img.mean(axis=2) < 0.9).mean()                 # share of non-white pixels
    assert img.shape[0] >= 1000 and 0.02 < ink < 0.9, ink
    assert np.std(img) > 0.05
    keep = os.environ.get("IPSIM_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_report_shows_the_reference_class_fit_and_warns_when_it_broke_the_rules(report_run, registry, tmp_path):
    """The diagnostics table has a row for the reference-class fit the joined
    probabilities rest on; a manifest whose reference class broke the rules gets the
    warning banner (the trend model's own banner stays off: it converged)."""
    import json

    from simulate.report import build_report

    run_dir, _ = report_run
    man = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    ref = man["scenarios"][0]["diagnostics"]["reference_class"]
    text = build_report(run_dir, registry, lang="en")
    row = re.search(r'<tr data-fit="reference-class">(.*?)</tr>', text, flags=re.S)
    assert row and f"reference class ({ref['cases']} past targets)" in row.group(1)
    assert str(ref["divergences"]) in row.group(1)
    # the banner follows the verdict (the suite's short chains may break the rules)
    assert ("reference class of past plans did not fully converge" in text) == (ref["converged"] is False)
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    man["scenarios"][0]["diagnostics"]["reference_class"] = dict(ref, converged=False, min_ess_bulk=123.0)
    man["scenarios"][0]["diagnostics"]["converged"] = True
    (bad / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    for lang, words in (("en", "reference class of past plans did not fully converge"), ("zh", "参照组（以往规划）模型未完全收敛")):
        t = build_report(bad, registry, lang=lang)
        row = re.search(r'<tr data-fit="reference-class">(.*?)</tr>', t, flags=re.S).group(1)
        assert words in t and "123" in row
        assert ("<td>否 ⚠</td>" if lang == "zh" else "<td>no ⚠</td>") in row and "False" not in row
