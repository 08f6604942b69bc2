import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
os.environ.setdefault("IPSIM_HOME", str(ROOT))
# shorter (still real) NUTS chains for the suite; the product default is 1000 tune + 2000 draws
os.environ.setdefault("IPSIM_MCMC_DRAWS", "300")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def _compile_files_contained(tmp_path_factory):
    """PyTensor leaves a source file in the temporary directory for every function it
    generates (models/scratch.py).  The product's compile path contains them; tests that
    compile beside it (nutpie's own compile, PyTensor functions in NUMBA mode) left about
    1,200 files a run on the machine CI runs on.  pytest's own directories stay where
    they are (their base is fixed first)."""
    tmp_path_factory.getbasetemp()
    from models import scratch

    with scratch.contained():
        yield


@pytest.fixture(scope="session")
def registry():
    from simulate.registry import Registry

    return Registry.load(ROOT)


@pytest.fixture
def run_cli(capsys):
    """Run the real CLI entry point in-process; returns (exit status, stdout, stderr)."""
    from simulate.cli import main

    def _run(*args):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


def seed_text(name: str) -> str:
    path = next(SEEDS.glob(name + "*"), None)
    if path is None:
        pytest.skip("../shared/seeds not beside the checkout")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def shipped_fit(registry):
    """The hierarchical model fitted on every shipped series (cached on disk)."""
    from models import HierarchicalGrowth, Panel

    panel = Panel.from_registry(registry)
    return HierarchicalGrowth().fit(panel)


@pytest.fixture(scope="session")
def baseline_result(registry, shipped_fit):
    from simulate.engine import run_scenario
    from simulate.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "baseline.yaml", registry)
    return run_scenario(sc, registry, forecaster=shipped_fit)
