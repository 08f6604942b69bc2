"""The wheel carries the registry: built, installed into a fresh virtual environment
and used from an empty directory — no clone, no IPSIM_HOME."""
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "extract" / "table_city.txt"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    wheels = tmp / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)],
                       capture_output=True, text=True)
    if r.returncode != 0 and "No matching distribution" in r.stderr:
        pytest.skip("cannot fetch the build backend (setuptools) from the package index")
    assert r.returncode == 0, r.stderr
    wheel = next(wheels.glob("ipsim-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies (PyMC, pandas …) come from the test environment through a plain
    # path line — its own .pth files (the editable install of this checkout) are not run
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True)
    empty = tmp / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("IPSIM_HOME", "PYTHONPATH")}
    env["IPSIM_CACHE"] = str(tmp / "cache")
    return dict(wheel=wheel, venv=venv, cwd=empty, env=env, py=py)


def _ipsim(inst, *args):
    return subprocess.run([str(inst["venv"] / "bin" / "ipsim"), *args], cwd=inst["cwd"], env=inst["env"],
                          capture_output=True, text=True, timeout=300)


def test_wheel_holds_the_registry_scenarios_and_licence(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = {p.relative_to(ROOT).as_posix() for d in ("data", "scenarios") for p in (ROOT / d).rglob("*")
               if p.is_file() and p.suffix in (".yaml", ".csv")}
    inside = {n.removeprefix("simulate/_home/") for n in names if n.startswith("simulate/_home/")}
    assert shipped <= inside, shipped - inside
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_installed_tool_works_from_an_empty_directory(installed):
    where = subprocess.run([str(installed["py"]), "-c", "import simulate; print(simulate.__file__)"],
                           cwd=installed["cwd"], env=installed["env"], capture_output=True, text=True, check=True)
    assert str(installed["venv"]) in where.stdout            # the wheel, not this checkout
    r = _ipsim(installed, "plans", "--lang", "en")
    assert r.returncode == 0, r.stderr
    assert "wuxi-2024" in r.stdout and "yixing-2024" in r.stdout
    r = _ipsim(installed, "plans", "show", "wuxi-2024", "--wide")
    assert r.returncode == 0 and "每万人口高价值发明专利拥有量" in r.stdout, r.stderr
    r = _ipsim(installed, "validate")
    assert r.returncode == 0 and "reference class" in r.stdout, r.stderr
    r = _ipsim(installed, "extract", str(FIXTURE), "--out", "draft.yaml")
    assert r.returncode == 0, r.stderr
    draft = (installed["cwd"] / "draft.yaml").read_text(encoding="utf-8")
    assert "hv_invention_per10k" in draft and "status: draft" in draft
    # nothing written inside the installed package
    pkg = Path(where.stdout.strip()).parent
    assert not list(pkg.rglob("*.nc")) and not (pkg / "results").exists()
