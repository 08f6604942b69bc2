"""Sampler benchmark on the shipped panel: cost of one log-density + gradient per
backend, and (with --fit) full fits per sampler at product settings.

    python benchmarks/sampler.py                 # gradient cost only (about a minute)
    python benchmarks/sampler.py --fit pymc nutpie

Prints figures; asserts nothing.  Fits use a temporary posterior cache, so they are
cold for the posterior (the compile caches of PyTensor and numba may be warm: the
script says how long compiling took).
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("IPSIM_HOME", str(Path(__file__).resolve().parents[1]))


def gradient_cost(model, mode: str, reps: int = 300):
    import numpy as np

    t = time.perf_counter()
    f = model.logp_dlogp_function(ravel_inputs=True, mode=mode)
    f.set_extra_values({})
    x = np.concatenate([np.ravel(v) for v in model.initial_point().values()])
    f(x)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(reps):
        f(x)
    return compile_s, (time.perf_counter() - t) / reps * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", nargs="*", default=[], choices=["pymc", "nutpie"],
                    help="also fit the shipped panel with these samplers (product settings)")
    args = ap.parse_args()
    import pytensor

    from models import HierarchicalGrowth, Panel
    from models.quiet import quiet_sampling
    from simulate.registry import Registry

    panel = Panel.from_registry(Registry.load())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}")
    print(f"series: {len(panel.series)}, readings: {len(panel.points)}")
    hg = HierarchicalGrowth(use_cache=False)
    with quiet_sampling():
        model = hg.build_model(panel)
        for mode in ("FAST_RUN", "NUMBA"):
            # the numba backend as the product compiles it (compile_for_nutpie: no
            # fast-math).  With PyTensor's default fast-math here, the fit below reused
            # in-process compiled pieces and drew a different posterior than `ipsim fit`
            # for the same seed (min ESS 384 against 536).
            with pytensor.config.change_flags(numba__fastmath=False):
                c, us = gradient_cost(model, mode)
            print(f"log-density + gradient, {mode:8s}: compile {c:6.1f} s, {us:8.1f} µs per evaluation")
    for sampler in args.fit:
        cache = Path(tempfile.mkdtemp())
        m = HierarchicalGrowth(cache_dir=cache, sampler=sampler)
        t = time.perf_counter()
        m.fit(panel)
        total = time.perf_counter() - t
        d = m.diagnostics()
        timing = m.fit_timing or {}
        print(f"fit {sampler:7s}: {total:7.1f} s (compile {timing.get('compile', float('nan')):.1f} s, "
              f"sampling {timing.get('sampling', float('nan')):.1f} s); max R-hat {d.r_hat.max():.3f}, "
              f"min bulk ESS {d.ess_bulk.min():.0f} ({d.ess_bulk.idxmin()}), min tail ESS {d.ess_tail.min():.0f}, "
              f"divergences {d.attrs['divergences']}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
