"""Synthetic panels drawn from known parameters: for recovery tests and benchmarks.

Every value here is made up on purpose (``source: synthetic``); nothing from this
module ever enters ``data/``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .panel import Panel


def synthetic_panel(seed: int = 5, n_codes: int = 8, n_places: int = 6, rho: float = 0.5, sigma: float = 0.03,
                    growth_sd: float = 0.03, growth_phi: float = 0.7, province: bool = False,
                    code_share: float = 1.0):
    """``n_codes × n_places`` stock series, 1–8 readings each (2015–2022), from the
    model's own structure: code growth means, place deviations, AR(1) level deviations
    and AR(1) growth deviations (stationary sd ``growth_sd``, persistence
    ``growth_phi``) whose running sum moves the level.

    With ``province``, the places belong to one province that has a series of every
    code too (growing at the code's mean, read every year 2015–2022; drawn from its own
    stream, so the places' data are the same either way): the shape of a province's
    panel, which sharding splits into the province and its places.

    With ``code_share`` < 1 each place reports each code with that probability (drawn
    from its own stream; the series it keeps have the same data as with 1): places of a
    real province report different indicators, so their shards differ in structure.

    Returns (panel, true series growth means {key: mu}, held-out points [(key, year, value)]
    for 2023–2025)."""
    from simulate.registry import Jurisdiction, Series

    rng = np.random.default_rng(seed)
    future = np.random.default_rng(seed + 1000)  # held-out innovations: a separate stream
    codes = [f"c{i}" for i in range(n_codes)]
    places = [f"p{j}" for j in range(n_places)]
    series = {c: Series(c, c, c, "件", "stock", "fam" + str(i % 2)) for i, c in enumerate(codes)}
    jurs = {p: Jurisdiction(p, p, p, "city", "prov" if province else None) for p in places}
    if province:
        jurs["prov"] = Jurisdiction("prov", "prov", "prov", "province", None)
    mu_code = rng.normal(0.08, 0.05, len(codes))
    rows, truth, held = [], {}, []
    years = np.arange(2010, 2026)
    for i, c in enumerate(codes):
        for p in places:
            mu = mu_code[i] + rng.normal(0, 0.03)
            a = rng.normal(6, 1)
            u = np.zeros(len(years))
            u[0] = rng.normal(0, sigma / np.sqrt(1 - rho ** 2))
            g = np.zeros(len(years))
            g[0] = rng.normal(0, growth_sd)
            for k in range(1, len(years)):
                src = rng if years[k] <= 2024 else future
                u[k] = rho * u[k - 1] + src.normal(0, sigma)
                g[k] = growth_phi * g[k - 1] + src.normal(0, growth_sd * np.sqrt(1 - growth_phi ** 2))
            x = np.cumsum(g) - np.cumsum(g)[7]   # integrated growth deviation, 0 in 2017
            z = a + mu * (years - 2017) + x + u
            n = int(rng.integers(1, 9))
            obs_years = np.sort(rng.choice(np.arange(2015, 2023), size=n, replace=False))
            for y in obs_years:
                k = int(y - 2010)
                rows.append(dict(jurisdiction=p, series=c, year=int(y), value=float(np.exp(z[k] + rng.normal(0, 0.01))),
                                 period="full", reliability="official", source="synthetic", note="", lower_bound=False,
                                 file="synthetic", line=0))
            truth[f"{p}:{c}"] = mu
            for y in (2023, 2024, 2025):
                held.append((f"{p}:{c}", y, float(np.exp(z[int(y - 2010)]))))
    if province:
        prov = np.random.default_rng(seed + 2000)
        for i, c in enumerate(codes):
            z0 = prov.normal(9, 1) + mu_code[i] * (years - 2017)
            for y in range(2015, 2023):
                rows.append(dict(jurisdiction="prov", series=c, year=y,
                                 value=float(np.exp(z0[y - 2010] + prov.normal(0, 0.02))), period="full",
                                 reliability="official", source="synthetic", note="", lower_bound=False,
                                 file="synthetic", line=0))
            truth[f"prov:{c}"] = mu_code[i]
    if code_share < 1:
        pick = np.random.default_rng(seed + 3000)
        kept = {f"{p}:{c}" for p in places for c in codes if pick.random() < code_share}
        kept |= {f"prov:{c}" for c in codes}
        rows = [r for r in rows if f"{r['jurisdiction']}:{r['series']}" in kept]
        truth = {k: v for k, v in truth.items() if k in kept}
        held = [h for h in held if h[0] in kept]
    return Panel.from_frame(pd.DataFrame(rows), series, jurs), truth, held
