"""The bad-input corpus (tests/bad_inputs/cases.yaml): every broken input gets exit
status 2 and one line per problem naming the file, line or key and the fix — never a
traceback; deliberately accepted inputs are read correctly."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))


def _id(case):
    return case.get("file") or " ".join(case["args"])


def _args(case):
    if "file" in case:
        return ["validate", str(CORPUS / case["file"])]
    return [a.replace("{dir}", str(CORPUS)) for a in case["args"]]


def test_corpus_is_large_and_every_file_is_used():
    assert len(CASES) >= 40
    used = {c["file"] for c in CASES if "file" in c} | {
        Path(a.replace("{dir}/", "")).name for c in CASES if "args" in c for a in c["args"] if "{dir}" in a}
    files = {p.name for p in CORPUS.iterdir() if p.name != "cases.yaml"}
    assert files - used == set(), "corpus files without a case"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_case(case, run_cli):
    code, out, err = run_cli(*_args(case))
    want = case.get("status", 2)
    assert code == want, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    for needle in case.get("expect", []):
        assert needle in err, f"{needle!r} not in: {err}"
    if "file" in case and want == 2:
        assert case["file"] in err
    if want == 2:
        msgs = [ln for ln in err.splitlines() if ln.strip()]
        assert msgs and all(ln.startswith(("error:", "warning:", "… ")) for ln in msgs), err


@pytest.mark.parametrize("case", [c for c in CASES if "accepted" in c], ids=_id)
def test_accepted_inputs_are_read_right(case, registry):
    from simulate.errors import Problems
    from simulate.registry import load_observations

    problems = Problems()
    df = load_observations([CORPUS / case["file"]], registry.series, registry.jurisdictions, problems)
    assert not problems.errors
    assert len(df) == 1
    for key, value in case["accepted"].items():
        assert df[key].iloc[0] == value


@pytest.mark.parametrize("case", [CASES[0], next(c for c in CASES if c.get("args", [None])[0] == "run")], ids=_id)
def test_real_process_prints_no_traceback(case, tmp_path):
    """The installed entry point, as a user meets it (not the in-process runner)."""
    import os

    env = dict(os.environ, IPSIM_HOME=str(CORPUS.parents[1]))
    proc = subprocess.run([sys.executable, "-m", "simulate", *_args(case)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:")
    for needle in case.get("expect", []):
        assert needle in proc.stderr, proc.stderr
