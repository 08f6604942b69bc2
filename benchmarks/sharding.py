"""What sharding changes on the shipped data: P(met) of every target of the baseline
scenario, joint fit against sharded fit (nation and provinces, then Ma'anshan, Suzhou and
Wuxi with its counties, on a Dask LocalCluster), product settings.

    python benchmarks/sharding.py [--workers 2] [--out /tmp/sharding.csv]

Prints fit times, convergence of every shard and the P(met) differences; writes the
per-target table to --out.  Asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/sharding.csv")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd
    from dask.distributed import Client, LocalCluster

    from models import HierarchicalGrowth, Panel
    from models.sharding import ShardedGrowth
    from simulate.engine import diagnostics_of, run_scenario
    from simulate.registry import Registry
    from simulate.scenario import load_scenario

    reg = Registry.load(ROOT)
    sc = load_scenario(ROOT / "scenarios" / "baseline.yaml", reg)
    panel = Panel.from_registry(reg, as_of=sc.as_of)
    t = time.perf_counter()
    joint = HierarchicalGrowth().fit(panel)
    t_joint = time.perf_counter() - t
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, dashboard_address=None, silence_logs=50) as cl, \
            Client(cl) as client:
        t = time.perf_counter()
        sharded = ShardedGrowth(client=client).fit(panel)
        t_shard = time.perf_counter() - t
        sharded.client = None
    print(f"joint fit: {t_joint:.0f} s{' (cached)' if joint.from_cache else ''}; "
          f"sharded fit: {t_shard:.0f} s{' (cached)' if sharded.from_cache else ''} "
          f"({len(sharded.shards)} shards, {a.workers} workers)")
    for m in sharded.shards:
        d = m.diagnostics()
        print(f"  shard of {len(m.panel.series):>3} series ({', '.join(sorted({k.split(':')[0] for k in m.panel.keys}))}):"
              f" max R-hat {d.r_hat.max():.3f}, min bulk ESS {d.ess_bulk.min():.0f}, "
              f"divergences {d.attrs['divergences']}")
    dj = diagnostics_of(joint)
    print(f"  joint: max R-hat {dj['max_r_hat']:.3f}, min bulk ESS {dj['min_ess_bulk']:.0f}, "
          f"divergences {dj['divergences']}")
    rows = []
    for name, fc in (("joint", joint), ("sharded", sharded)):
        r = run_scenario(sc, reg, forecaster=fc)
        p = r.probabilities.set_index(["plan", "indicator"])
        rows.append(p[["p_inside", "p_met", "category_en"]].add_suffix("_" + name))
    t = pd.concat(rows, axis=1)
    t.to_csv(a.out)
    both = t.dropna(subset=["p_inside_joint", "p_inside_sharded"])
    for col in ("p_inside", "p_met"):
        d = (both[f"{col}_sharded"] - both[f"{col}_joint"]).abs()
        print(f"{col}: {len(d)} targets, mean |difference| {d.mean():.3f}, median {d.median():.3f}, "
              f"largest {d.max():.3f} ({d.idxmax()}), over 0.05: {int((d > 0.05).sum())}")
    changed = (t.category_en_joint != t.category_en_sharded).sum()
    print(f"category changed for {changed} of {len(t)} targets")
    print(both.assign(diff=both.p_met_sharded - both.p_met_joint).sort_values("diff", key=np.abs).tail(8)
          .to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
