"""Warm re-runs, one plan: ``ipsim run scenarios/baseline.yaml --plan wuxi-2024``
(``--plan all``: every plan of the scenario, no ``--plan``).

    python benchmarks/warm_run.py [--runs 7] [--plan wuxi-2024|all] [--tree DIR ...]

The posterior must already be cached (run the command once, or ``benchmarks/first_run.py``).
Each ``--tree`` is a checkout of ipsim (``git worktree add /tmp/old <commit>``); the
runs of the trees are interleaved — old, new, old, new … — so that a machine that
slows down or speeds up over the minutes weighs on both alike.  Without ``--tree`` it
times this checkout.  Every run is a fresh process with the same environment and cache.

Prints each run's seconds, the median and the range per tree; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--plan", default="wuxi-2024")
    ap.add_argument("--tree", action="append", type=Path, help="an ipsim checkout (repeatable)")
    args = ap.parse_args()
    trees = args.tree or [ROOT]
    times = {t: [] for t in trees}
    for _ in range(args.runs):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=str(tree), IPSIM_HOME=str(tree))
            t0 = time.perf_counter()
            plan = [] if args.plan == "all" else ["--plan", args.plan]
            p = subprocess.run([sys.executable, "-m", "simulate", "run", "scenarios/baseline.yaml", *plan,
                                "-q"], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            secs = time.perf_counter() - t0
            if p.returncode:
                sys.exit(f"{tree}: exit {p.returncode}: {p.stderr[-400:]}")
            times[tree].append(secs)
    for tree, ts in times.items():
        print(f"{tree}: {' '.join(f'{t:.2f}' for t in ts)} s; median {statistics.median(ts):.2f} s, "
              f"{min(ts):.2f}–{max(ts):.2f} s")


if __name__ == "__main__":
    main()
