"""Fit time and memory against the number of series (a province evaluating all its
counties): synthetic panels of 10, 100, 1 000 and 5 000 series.

    python benchmarks/scaling.py [--sizes 10,100,1000,5000] [--draws N] [--budget 1800] [--sampler nutpie]
    python benchmarks/scaling.py --sizes 1000 --sharded --workers 1,2 [--max-series 200] [--code-share 0.8]

Each size runs in its own process (so peak memory is that fit's own) with a fresh
posterior cache.  A size whose fit would exceed --budget seconds is stopped and
reported as such.  ``--sharded``: the places belong to a province with a series of
every code (synthetic_panel(province=True)); the province is fitted first, then the
places in shards of at most --max-series series on a Dask LocalCluster of each
--workers count (peak memory: this process plus the largest worker).  Without
--sharded and with --province, the same panel is fitted jointly.  Sharded runs also
print the parent and place stages' wall time and what the workers spent on the place
shards (the compile and sampling columns are then sums over the place shards).
``--code-share s``: each place reports each code with probability s (and there are 1/s
times as many codes, so about as many series), so that the place shards differ in
shape as a real province's cities do — each shape compiles its own model.  Prints
figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {10: (2, 5), 100: (10, 10), 1000: (40, 25), 5000: (100, 50)}


def _peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB → GiB


def child(n: int, draws: int | None, sampler: str | None, province: bool, workers: int, max_series: int | None,
          code_share: float = 1.0):
    sys.path.insert(0, str(ROOT))
    from models import HierarchicalGrowth
    from models.sharding import ShardedGrowth
    from models.synthetic import synthetic_panel

    codes, places = SHAPES.get(n, (max(1, n // 10), 10))
    codes = round(codes / code_share)
    panel, truth, held = synthetic_panel(seed=11, n_codes=codes, n_places=places, province=province,
                                         code_share=code_share)
    kw = dict(draws=draws, tune=draws, cache_dir=Path(tempfile.mkdtemp()), use_cache=False, sampler=sampler)
    worker_peak = 0.0
    t = time.perf_counter()
    if workers:
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                          silence_logs=50) as cl, Client(cl) as client:
            t = time.perf_counter()   # the cluster's start-up is not the fit's
            m = ShardedGrowth(max_series=max_series, client=client, **kw).fit(panel)
            secs = time.perf_counter() - t
            worker_peak = max(client.run(_peak_gib).values())
        # summed over the place shards' fits on the workers (both passes), beside the
        # parent shard's and the place stage's wall time
        spent = [x.shard_seconds for x in m.shards if hasattr(x, "shard_seconds")]
        timing = dict(compile=sum(x["compile"] for x in spent), sampling=sum(x["sampling"] for x in spent))
        stages = dict(m.stage_seconds, place_shards_total=sum(x["total"] for x in spent),
                      slowest_shard=max((x["total"] for x in spent), default=0.0))
    else:
        m = HierarchicalGrowth(**kw).fit(panel)
        secs = time.perf_counter() - t
        timing = m.fit_timing
        stages = {}
    d = m.diagnostics()
    peak = _peak_gib() + worker_peak
    # shards of different sizes (series, readings per series) compile different models
    structures = len({(x._A["S"], x._A["K"]) for x in getattr(m, "shards", [m]) if getattr(x, "_A", None)})
    print(json.dumps(dict(series=len(panel.series), readings=len(panel.points), seconds=round(secs, 1),
                          structures=structures,
                          peak_gib=round(peak, 2), max_r_hat=round(float(d.r_hat.max()), 3),
                          min_ess=int(d.ess_bulk.min()), divergences=int(d.attrs["divergences"]),
                          compile=round(timing["compile"], 1), sampling=round(timing["sampling"], 1),
                          shards=len(getattr(m, "shards", [m])), worst=_worst(m, d),
                          stages={k: round(v, 1) for k, v in stages.items()})))


def _worst(m, d) -> str:
    """Where convergence is worst: the parameter with the lowest bulk ESS (and its
    shard), and the divergences of each shard."""
    row = d.sort_values("ess_bulk").iloc[0]
    out = f"{row.name}: ESS {int(row['ess_bulk'])}, R-hat {row['r_hat']:.2f}"
    if "shard" in d:
        from models.sharding import first_pass

        divs = [int(x.diagnostics().attrs["divergences"]) for x in m.shards]
        places = m.shards[1:] if m.summary is not None else m.shards
        again = sum(x.settings != first_pass(m.settings) for x in places)
        out += (f" (shard {int(row['shard'])}); divergences by shard {divs}; "
                f"place shards fitted again at full length: {again} of {len(places)}")
    # which mass matrix each fit kept, and whether it was sampled again longer ("×k")
    out += f"; mass matrix: {m.mass_matrix()}"
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000,5000")
    ap.add_argument("--draws", type=int, default=None, help="tune = draws (default: product settings)")
    ap.add_argument("--sampler", default=None, help="nutpie or pymc (default: the product's)")
    ap.add_argument("--budget", type=float, default=1800, help="seconds per size before giving up")
    ap.add_argument("--province", action="store_true", help="places under a province with its own series")
    ap.add_argument("--sharded", action="store_true", help="fit in shards on a Dask LocalCluster (implies --province)")
    ap.add_argument("--workers", default="2", help="Dask worker counts to try with --sharded, e.g. 1,2")
    ap.add_argument("--max-series", type=int, default=None, help="series per place shard (default: one place each)")
    ap.add_argument("--code-share", type=float, default=1.0,
                    help="probability that a place reports a code (< 1: place shards of different structure)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-workers", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.draws, a.sampler, a.province or a.sharded, a.child_workers, a.max_series,
                     a.code_share)
    sys.path.insert(0, str(ROOT))
    from models import HierarchicalGrowth

    st = HierarchicalGrowth(draws=a.draws, tune=a.draws, sampler=a.sampler, use_cache=False).settings
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"{st['sampler']}, {st['chains']} chains × {st['tune']} tune + {st['draws']} draws; "
          "wall time includes compiling the model")
    print(f"{'series':>7} {'readings':>9} {'how':>12} {'seconds':>9} {'compile':>8} {'sampling':>9} {'peak GiB':>9} "
          f"{'R-hat':>6} {'ESS':>6} {'div':>4}")
    runs = [(int(x), int(w)) for x in a.sizes.split(",")
            for w in (a.workers.split(",") if a.sharded else ["0"])]
    for n, w in runs:
        t = time.perf_counter()
        # own process group, so the sampler's worker processes die with it on timeout
        args = [sys.executable, __file__, "--child", str(n)] + (["--draws", str(a.draws)] if a.draws else []) + (
            ["--sampler", a.sampler] if a.sampler else []) + (["--province"] if a.province or a.sharded else []) + (
            ["--sharded", "--child-workers", str(w)] if a.sharded else []) + (
            ["--max-series", str(a.max_series)] if a.max_series else []) + (
            ["--code-share", str(a.code_share)] if a.code_share < 1 else [])
        proc = subprocess.Popen(args,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=a.budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            print(f"{n:>7} {'':>9} {how(w):>12} {'>' + str(int(a.budget)):>9}  stopped: over the budget")
            continue
        p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if not line:
            print(f"{n:>7} {how(w)} failed after {time.perf_counter() - t:.0f} s: {p.stderr[-300:]}")
            continue
        r = json.loads(line[-1])
        label = how(w) + (f" {r['shards']}sh" if w else "")
        print(f"{r['series']:>7} {r['readings']:>9} {label:>12} {r['seconds']:>9.1f} {r['compile']:>8.1f} {r['sampling']:>9.1f} "
              f"{r['peak_gib']:>9.2f} {r['max_r_hat']:>6.3f} "
              f"{r['min_ess']:>6} {r['divergences']:>4}  {r.get('worst', '')}")
        if r.get("stages"):
            st_ = r["stages"]
            print(f"{'':>7} stages: parent shard {st_['parent']:.0f} s, place shards {st_['places']:.0f} s wall; "
                  f"workers spent {st_['place_shards_total']:.0f} s on place shards (compile {r['compile']:.0f} s, "
                  f"sampling {r['sampling']:.0f} s; slowest shard {st_['slowest_shard']:.0f} s) — "
                  f"{st_['place_shards_total'] / max(st_['places'], 1e-9):.2f} workers busy on average; "
                  f"{r.get('structures', '?')} distinct shard sizes, the parent's included")


def how(workers: int) -> str:
    return f"{workers} worker" + ("s" if workers > 1 else "") if workers else "joint"


if __name__ == "__main__":
    main()
