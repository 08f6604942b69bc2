"""The planner's loop: cold full pipeline (fit every shipped series, run every shipped
scenario) and a warm re-run (posterior cached), as the CLI does it.

    python benchmarks/pipeline.py

Runs ``ipsim run scenarios/*.yaml`` in a subprocess twice with a fresh posterior
cache: the first run is cold (fit), the second warm.  Also times the stages of a
warm run in-process.  Prints figures; asserts nothing.
"""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stages():
    """Where a warm run spends its time (in-process, after the two CLI runs)."""
    t0 = time.perf_counter()
    import models  # noqa: F401  (pymc, pytensor, arviz imports)
    from simulate.engine import fit_model, run_scenario
    from simulate.registry import Registry
    from simulate.scenario import load_scenario

    t1 = time.perf_counter()
    reg = Registry.load(ROOT)
    t2 = time.perf_counter()
    fc, panel = fit_model(reg, None)
    t3 = time.perf_counter()
    scs = [load_scenario(p, reg) for p in sorted((ROOT / "scenarios").glob("*.yaml"))]
    for sc in scs:
        fc_s = fc if sc.as_of is None else fit_model(reg, sc.as_of)[0]
        run_scenario(sc, reg, forecaster=fc_s)
    t4 = time.perf_counter()
    print(f"  imports {t1 - t0:.1f} s · registry {t2 - t1:.1f} s · load posterior {t3 - t2:.1f} s · "
          f"{len(scs)} scenarios (paths + judging) {t4 - t3:.1f} s")


def main():
    env = dict(os.environ, IPSIM_HOME=str(ROOT), IPSIM_CACHE=tempfile.mkdtemp(prefix="ipsim-bench-"))
    out = tempfile.mkdtemp(prefix="ipsim-bench-results-")
    scen = [str(p) for p in sorted((ROOT / "scenarios").glob("*.yaml"))]
    cmd = [sys.executable, "-m", "simulate", "run", *scen, "--out", out]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"{len(scen)} scenarios, all shipped plans")
    for label in ("cold (fit + all scenarios)", "warm re-run (cached posterior)"):
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        secs = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        status = "ok" if p.returncode in (0, 3) else f"exit {p.returncode}: {p.stderr[-300:]}"
        print(f"{label:<32} {secs:7.1f} s   peak memory so far {peak:.2f} GiB   {status}")
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    stages()


if __name__ == "__main__":
    main()
