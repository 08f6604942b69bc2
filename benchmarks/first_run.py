"""A planner's first run on a fresh machine, and the warm re-runs after it.

    python benchmarks/first_run.py [--warm N]

1. cold: ``ipsim run scenarios/baseline.yaml`` in a fresh process whose home directory
   is empty — no posterior cache, no PyTensor or numba compile cache (numba's own cache
   is put in that home too), no matplotlib font cache, no ArviZ stamp (ArviZ warns on
   its first import of a day).  Every stderr line
   is time-stamped as it arrives, so the run splits into start-up (to the first line),
   compiling (to "sampling"), sampling (to "done in") and judging and writing (to the
   exit).  Third-party lines (a Python warning, a traceback, a library's log) are listed:
   a planner should see ipsim's own lines only.
2. warm: ``ipsim run scenarios/baseline.yaml --plan wuxi-2024`` N times (default 5) in
   the same home, the posterior now cached; prints each time and the median.

Prints figures; asserts nothing.  Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: how ipsim's own stderr lines begin (models/progress.py, models/quiet.py, the CLI)
OWN = ("first fit of", "fitting ", "warning:", "WARNING", "note:", "reference class", "sampling",
       "compiling")


def fresh_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "PYTENSOR", "NUMBA_", "IPSIM_", "MPLCONFIGDIR"))}
    # numba caches the Kalman filter's kernels (cache=True) beside their source, in this
    # clone's models/__pycache__, which earlier runs have filled — a fresh clone's is
    # empty; in the empty home they compile as on a fresh machine (≈ 1.4 s)
    env.update(HOME=str(home), IPSIM_HOME=str(ROOT), PYTHONUNBUFFERED="1", NUMBA_CACHE_DIR=str(home / ".numba"))
    return env


def timed_run(cmd, env, cwd):
    """(seconds, exit status, [(seconds since start, stderr line)])."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []

    def read():
        for line in p.stderr:
            lines.append((time.perf_counter() - t0, line.rstrip("\n")))

    reader = threading.Thread(target=read)
    reader.start()
    p.wait()
    reader.join()
    return time.perf_counter() - t0, p.returncode, lines


def first(lines, text, default=None):
    return next((t for t, ln in lines if text in ln), default)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=5, help="warm one-plan re-runs")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ipsim-first-run-"))
    env = fresh_env(home)
    out = home / "results"
    ipsim = [sys.executable, "-m", "simulate", "run", "scenarios/baseline.yaml", "--out", str(out)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"empty home {home}")

    secs, status, lines = timed_run(ipsim, env, ROOT)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    t_first = lines[0][0] if lines else float("nan")
    t_sampling = first(lines, ": sampling", float("nan"))
    t_done = first(lines, ": done in", float("nan"))
    print(f"cold first run: {secs:.1f} s, exit {status}, peak memory {peak:.2f} GiB")
    print(f"  start-up {t_first:.1f} s · compiling {t_sampling - t_first:.1f} s (the reference class fitted "
          f"beside it) · sampling {t_done - t_sampling:.1f} s · judging and writing {secs - t_done:.1f} s")
    for t, ln in lines:
        if not ln.startswith(" "):
            print(f"  {t:6.1f} s  {ln[:110]}")
    foreign = [ln for _, ln in lines if ln.strip() and not ln.startswith(OWN)]
    print(f"  stderr lines that are not ipsim's own: {len(foreign)}")
    for ln in foreign[:20]:
        print(f"    | {ln[:110]}")

    warm = []
    for _ in range(args.warm):
        s, st, _ = timed_run(ipsim + ["--plan", "wuxi-2024"], env, ROOT)
        warm.append(s)
        if st not in (0, 3):
            print(f"warm run: exit {st}")
    if warm:
        print(f"warm --plan wuxi-2024: {' / '.join(f'{s:.2f}' for s in warm)} s, "
              f"median {statistics.median(warm):.2f} s")


if __name__ == "__main__":
    main()
