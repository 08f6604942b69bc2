"""What a planner's data change costs before sampling starts: compiling the shipped
model for nutpie (PyTensor's numba backend).

    python benchmarks/compile.py

Six compiles, each in a fresh process:

1. cold: empty PyTensor base directory (its C modules and its numba cache) and numba's
   own cache (a fresh machine);
2. the same panel again with those caches kept (what the disk cache already saves);
3. a changed panel (the data as of 2023: other series and readings, and a structure of
   its own, so another graph) with the caches kept — what a panel of another structure
   pays;
4. the panel with a planner's edits to series it already holds (one reading corrected
   by +5 %, two more years for three of Wuxi's series — made-up numbers, for timing
   only), caches kept — what a planner's ``--data`` file with new figures pays;
5. the panel with a new series of a code it already has (Wuxi's works registrations,
   2023–2024 — made-up numbers, for timing only), caches kept — what a planner's
   ``--data`` file with a new series pays;
6. the panel with two more lower bounds on multi-year totals (超过 b; made-up numbers,
   for timing only), caches kept — what a planner's ``--data`` file with such figures
   pays.

Prints seconds per compile; asserts nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def appended(obs, rows):
    """``obs`` with ``rows`` (copies of its own rows, edited) added, its dtypes kept."""
    import pandas as pd

    return pd.concat([obs, pd.DataFrame(rows).astype(obs.dtypes.to_dict())], ignore_index=True)


def edited(reg):
    """The shipped observations with a planner's kind of edits (timing only)."""
    obs = reg.observations.copy()
    wuxi = obs.jurisdiction.str.contains("wuxi", case=False)
    first = obs.index[wuxi & (obs.series == "invention_grants")][0]
    obs.loc[first, "value"] = obs.loc[first, "value"] * 1.05
    rows = []
    for code in ("ip_workstations", "ip_alliances", "patent_navigation_projects"):
        last = obs[wuxi & (obs.series == code)].iloc[-1]
        for year, rise in ((2024, 1.1), (2025, 1.2)):
            rows.append(last.copy())
            rows[-1]["year"], rows[-1]["value"] = year, last.value * rise
    return appended(obs, rows)


def with_new_series(reg):
    """The shipped observations and a new series for Wuxi of a code other places report
    (timing only: the numbers are made up and never stored)."""
    obs = reg.observations
    template = obs[obs.series == "works_registrations"].iloc[-1]
    assert not ((obs.series == "works_registrations") & (obs.jurisdiction == "wuxi")).any()
    rows = []
    for year, value in ((2023, 30000.0), (2024, 33000.0)):
        rows.append(template.copy())
        rows[-1]["jurisdiction"], rows[-1]["year"], rows[-1]["value"] = "wuxi", year, value
    return appended(obs, rows)


def with_bounds(reg):
    """The shipped observations and two more lower bounds on multi-year totals (timing
    only: the numbers are made up and never stored)."""
    obs = reg.observations
    template = obs[obs.lower_bound.astype(bool)].iloc[-1]
    rows = []
    for jur, code, y0, y1, value in (("china", "invention_grants", 2016, 2020, 1.5e6),
                                     ("jiangsu", "invention_grants", 2011, 2013, 3e4)):
        rows.append(template.copy())
        rows[-1]["jurisdiction"], rows[-1]["series"], rows[-1]["year"] = jur, code, y1
        rows[-1]["period"], rows[-1]["value"] = f"sum-{y0}-{y1}", value
    return appended(obs, rows)


def child(as_of):
    sys.path.insert(0, str(ROOT))
    from models import HierarchicalGrowth, Panel
    from models.hierarchical import compile_for_nutpie
    from simulate.registry import Registry

    reg = Registry.load(ROOT)
    if as_of in ("edited", "new-series", "bounds"):
        obs = {"edited": edited, "new-series": with_new_series, "bounds": with_bounds}[as_of](reg)
        panel = Panel.from_frame(obs, reg.series, reg.jurisdictions)
    else:
        panel = Panel.from_registry(reg, as_of=None if as_of == "all" else int(as_of))
    m = HierarchicalGrowth(use_cache=False)
    t = time.perf_counter()
    model = m.build_model(panel)
    built = time.perf_counter() - t
    compiled = compile_for_nutpie(model)
    hits = getattr(getattr(compiled, "compiled_logp_func", None), "_cache_hits", 0)
    print(json.dumps(dict(series=len(panel.series), build=round(built, 1),
                          compile=round(time.perf_counter() - t - built, 1), reused=bool(hits))))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2])
    tmp = Path(tempfile.mkdtemp())
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp / 'pytensor'}", NUMBA_CACHE_DIR=str(tmp / "numba"))
    sys.path.insert(0, str(ROOT))
    from models.compiled import takes_cached_path

    print("compile of the shipped model for nutpie (numba backend), each in a fresh process; C entry points: "
          + ("ipsim's, cached (models/compiled.py)" if takes_cached_path() else "nutpie's own (fallback)"))
    for label, as_of in (("cold caches", "all"), ("same panel, caches kept", "all"),
                         ("changed panel (as of 2023), caches kept", "2023"),
                         ("edited readings (same series), caches kept", "edited"),
                         ("a new series of a code it has, caches kept", "new-series"),
                         ("two more bounds (超过 b), caches kept", "bounds")):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, __file__, "--child", as_of], env=env, capture_output=True, text=True)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if not line:
            print(f"{label}: failed: {p.stderr[-300:]}")
            continue
        r = json.loads(line[-1])
        print(f"{label:<42} {r['series']:>4} series  build {r['build']:>5.1f} s  compile {r['compile']:>5.1f} s  "
              f"process {time.perf_counter() - t:>5.1f} s  compiled model {'reused' if r['reused'] else 'new'}")


if __name__ == "__main__":
    main()
