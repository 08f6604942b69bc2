"""Fit benchmark: cold batched fit of all shipped series, warm (cached) load, and the
same series fitted one model per series (on a sample, extrapolated), with the ratio.

    python benchmarks/fit.py [--sample 8]

Prints figures; asserts nothing.  Uses a temporary cache directory so "cold" is cold
for the posterior (the PyTensor compile cache in ~/.pytensor may be warm; the script
says which).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("IPSIM_HOME", str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=8, help="series fitted one by one (extrapolated to all)")
    args = ap.parse_args()
    from models import HierarchicalGrowth, Panel
    from simulate.registry import Registry

    reg = Registry.load()
    panel = Panel.from_registry(reg)
    cache = Path(tempfile.mkdtemp())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print(f"series: {len(panel.series)}, readings: {len(panel.points)}")
    t = time.perf_counter()
    m = HierarchicalGrowth(cache_dir=cache).fit(panel)
    cold = time.perf_counter() - t
    d = m.diagnostics()
    print(f"cold batched fit (all series, 2 chains × 1000+1000): {cold:.1f} s; max R-hat {d.r_hat.max():.3f}, "
          f"min bulk ESS {d.ess_bulk.min():.0f}, divergences {d.attrs['divergences']}")
    t = time.perf_counter()
    HierarchicalGrowth(cache_dir=cache).fit(panel)
    print(f"warm load from cache: {time.perf_counter() - t:.2f} s")
    keys = panel.keys[:: max(1, len(panel.keys) // args.sample)][: args.sample]
    t = time.perf_counter()
    for k in keys:
        sub = Panel.from_registry(reg, keys=[k])
        sub.series = [s for s in sub.series if s.key == k] or sub.series
        HierarchicalGrowth(cache_dir=cache, use_cache=False).fit(Panel.from_frame(
            reg.observations[(reg.observations.jurisdiction + ":" + reg.observations.series) == k],
            reg.series, reg.jurisdictions))
    per = (time.perf_counter() - t) / len(keys)
    total = per * len(panel.series)
    print(f"one model per series: {per:.1f} s each on {len(keys)} series → {total:.0f} s for all {len(panel.series)} "
          f"(extrapolated); ratio per-series / batched = {total / cold:.1f}×")


if __name__ == "__main__":
    main()
