import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
os.environ.setdefault("IPSIM_HOME", str(ROOT))


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
