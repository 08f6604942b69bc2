r"""Bayesian hierarchical growth model (PyMC) — the default forecaster.

Model (transformed scale :math:`z` — log for stock/flow/ratio/count, logit within
bounds for percent/score; series :math:`i`, year :math:`t`; hier-5)

.. math::

    z_{i}(t) &= a_i + \mu_i\,(t - \bar t_i) + x_i(t) + u_i(t) - \delta_i\,[t \le c_i] \\
    x_i(t) &= \int_{t_{i1}}^{t} g_i(s)\,ds, \qquad
        g_i \sim \text{OU: } \operatorname{Cov}(g_i(t), g_i(s)) = s_{g(i)}^2\,\phi_{g(i)}^{|t-s|} \\
    u_i(t) &\sim \text{AR(1) in continuous time: } \operatorname{Cov}(u_i(t), u_i(s))
             = \frac{\sigma_{g(i)}^2}{1-\rho^2}\,\rho^{|t-s|} \\
    y_{ik} &\sim \mathcal N\big(z_i(t_k),\ \sigma_{\text{rel}(k)}^2\big)

so the annual growth is :math:`\mu_i` plus a persistent growth deviation
:math:`g_i` (AR(1) on the growth rate, persistence :math:`\phi_g` a year, by group
g ∈ flow, stock, count, percent, score) plus the change of a short-lived level
deviation :math:`u_i`.  The integrated deviation :math:`x_i` (0 at the series' first
reading :math:`t_{i1}`) makes forecast variance grow with the horizon — roughly
linearly once :math:`|t - t_{\text{last}}| \gg 1/(-\log\phi)` — instead of levelling
off at a stationary width, which is what the back-test showed the hier-3
trend-stationary model got wrong (80 % coverage 0.50 at horizons 4–5).  The means are
pooled:

.. math::

    \mu_i &= \mu_{\text{parent}(i)} + \tau_{\text{tie}}\,\epsilon_i
        &&\text{if a parent place (province, nation) has the same series} \\
    \mu_i &= \mu_{c(i)} + \tau_{s}\,\epsilon_i &&\text{otherwise} \\
    \mu_c &= \mu_{f(c)} + \tau_{c}\,\epsilon_c, \qquad
    \mu_f = m_{k(f)} + \tau_f\,\epsilon_f, \qquad m_k \sim \mathcal N(m^0_k, 0.1^2)

(``c`` = series code shared across places, ``f`` = family × kind, ``k`` = kind: stock,
flow, ratio, count, percent, score; a family whose series span ≥ 15 years of readings
is sampled centred, :math:`\mu_f \sim \mathcal N(m_{k(f)}, \tau_f^2)` — the same prior,
the geometry of a mean the data pin down; a code with a single root series samples the
sum of its two deviations, :math:`\mu_i - \mu_f`, and the code's part from its
conditional given that sum — the same prior again, without a ridge the data cannot
resolve).  The tie to the
parent is the UN subnational-projection idea: a city with only its baseline inherits
the province's or nation's growth plus a slowly varying log-ratio, not a flat prior.
:math:`\delta_i` (census break, series with ``census_break`` :math:`c`): per-10k figures
up to the census year (published before the results) and population figures before
it sit on another level; a per-10k series' shift is minus its place's population
shift (± 0.05) when that series is in the panel, else :math:`\mathcal N(0, 0.2^2)`.

Priors and why (hier-3, hier-5): :math:`m^0_k = 0.05` on the log scale (IP counts in China grew
a few per cent to tens of per cent a year), 0 on the logit scale — a weakly informative
centre for a *learned* kind-level location :math:`m_k`, so that families without
multi-year series borrow what the long series of their kind show.  The three pooling
spreads are one total and its variance shares (hier-5):
:math:`(\tau_f, \tau_c, \tau_s) = \tau\,(\sqrt{w_1}, \sqrt{w_2}, \sqrt{w_3})`,
:math:`\tau \sim \text{Gamma}(2, 17)` (mean 0.12, zero-avoiding), :math:`w \sim
\text{Dirichlet}(4, 1, 1)` (families differ by up to tens of per cent a year, codes
within a family and places within a code by a few points) — most codes have one root
series, so the data tell the total but hardly the split, and three free scales made
ridges the sampler crawled along; :math:`\tau_\text{tie}\sim\text{HalfNormal}(0.05)`
(growth rates of one code differ by a few points between places).  Likewise the two
deviation scales of a group are a total and a share: :math:`\sigma_g = d_g\sqrt{1-\pi_g}`,
:math:`s_g = d_g\sqrt{\pi_g}`, :math:`d_g \sim \text{HalfNormal}` (0.22 for flows, 0.11
for stocks, 0.14 otherwise: the root-sum-square of hier-4's scales) and :math:`\pi_g \sim
\text{Beta}(2, 2)`; :math:`\phi_g \sim \text{Beta}(5, 2)` (mean 0.71: a fast year is
followed by fast years); :math:`\rho\sim\text{Beta}(2,2)` for the level wiggles
(short-lived by comparison);
:math:`a_i` is centred on the series' own mean reading with sd 2 (weak).  Observation
noise :math:`\sigma_\text{rel}` is fixed by reliability (official 0.01, secondary 0.03,
estimate 0.08 relative; 0.05 / 0.1 / 0.5 points for shares and scores; partial years
more).

Multi-year totals enter through :math:`\log\sum_t e^{z_i(t)}` and lower bounds as
censored terms, both with the deviation variance added (an approximation that ignores
their correlation with the other readings of the series).

Forecast paths condition the Gaussian deviations :math:`x_i + u_i` (and the level) on
the series' own readings exactly (per posterior draw, with :func:`deviation_cov`, the
covariance the filter runs), then move to the natural scale; counts are drawn as
counts (Poisson new units) and running totals never fall.  On a series with at least
six full-year readings every second path's future is then taken from a damped-trend
ETS fitted to that series alone (:mod:`models.combination`, ``combine_ets``): the
growth persistence :math:`\phi_g` is hardly informed by the data, so where growth
slowed this model returns to :math:`\mu_i` sooner than such series did.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .base import Forecaster, stable_seed
from .compiled import compile_for_nutpie  # noqa: F401  (the one compile path; re-exported for callers)
from .compiled import pytensor_numba_cache
from .panel import Panel
from .posterior_file import read_group, write_inference_data
from .quiet import import_quietly, quiet_sampling, warn
from .transforms import GROUPS, LOGIT_KINDS

MODEL_VERSION = "hier-5"
SAMPLERS = ("nutpie", "pymc")
DEFAULT_SAMPLER = "nutpie"
MAX_POINTS = 16  # readings per series kept in the joint likelihood (the most recent)
A_SD = 2.0       # prior sd of a series' level around its mean reading (transformed scale)


# Families whose series together span at least this many years of readings are sampled
# centred.  Why 15: at the prior's growth-deviation scale (sd ≈ 0.1 a year, persistence
# ≈ 0.7) the mean growth over L reading-years is known to ≈ 0.24/√L — 0.06 at 15, two
# thirds of the prior spread of family means (≈ 0.09): from there the data outweigh the
# prior, the regime where a centred parametrisation samples better.
CENTRE_FAMILY_SPAN = 15.0


def _mixed_centring(pm, pt, loc, scale, centred: np.ndarray, name: str):
    """``loc + scale * z`` per element: centred elements sampled as N(loc, scale²)
    (``{name}_centred``), the others non-centred (``z_{name}``)."""
    c, nc = np.where(centred)[0], np.where(~centred)[0]
    out = pt.zeros(len(centred))
    if len(nc):
        out = pt.set_subtensor(out[nc], loc[nc] + scale * pm.Normal(f"z_{name}", 0, 1, shape=len(nc)))
    if len(c):
        out = pt.set_subtensor(out[c], pm.Normal(f"{name}_centred", mu=loc[c], sigma=scale, shape=len(c)))
    return out


def _lone_roots(A: dict, prior) -> tuple[np.ndarray, np.ndarray]:
    """(codes, their series): the codes with exactly one root series — a series pooled
    to its code, not tied to a parent place's series — whose mean is not taken from a
    parent shard's posterior."""
    root = np.where((A["depth"] == 0) & (A["ext_parent"] < 0))[0]
    n_roots = np.bincount(A["code_of"][root], minlength=len(A["codes"]))
    known = set(prior.growth.get("mu_code", {})) if prior is not None else set()
    codes = np.array([c for c in np.where(n_roots == 1)[0] if str(A["codes"][c]) not in known], dtype=int)
    root_of = np.full(len(A["codes"]), -1)
    root_of[A["code_of"][root]] = root      # unambiguous for the codes returned: one root each
    return codes, root_of[codes]


def resolve_sampler(sampler: str | None) -> str:
    """The sampler asked for (``--sampler`` sets IPSIM_SAMPLER), else the default."""
    sampler = sampler or os.environ.get("IPSIM_SAMPLER") or DEFAULT_SAMPLER
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    return sampler


# The convergence rules every fit is held to (README, Accuracy): R-hat at most 1.01,
# bulk ESS at least 400, no divergence.
MAX_RHAT, MIN_ESS = 1.01, 400
# A fit that breaks the ESS or R-hat rule without a divergence is sampled once more with
# up to this many times the draws (thinned back to the settings' count).  Why 4: the
# 5,100-series province's parent shard reached bulk ESS 168 from 4 × 2000 draws with the
# diagonal mass matrix (stop 29); a quarter of the rule's 400 is as slow as a fit may mix
# before "sample longer" turns into "wait for hours" — below it the fit is reported as not
# converged, which says more than a fourfold wait would.
MAX_LONGER = 4


def meets_rules(summary: pd.DataFrame, max_rhat: float = MAX_RHAT, min_ess: float = MIN_ESS) -> bool:
    """Whether a fit with these diagnostics (divergences in ``summary.attrs``) converged."""
    return bool(summary.r_hat.max() <= max_rhat and summary.ess_bulk.min() >= min_ess
                and summary.attrs["divergences"] == 0)


def careful_accept(target_accept: float) -> float:
    """The target acceptance of a fit sampled again with smaller steps: a tenth of the
    rejection rate asked for before (0.99 → 0.999)."""
    return 1.0 - (1.0 - target_accept) / 10.0


def next_pass(summary: pd.DataFrame, low_rank: bool, factor: int, max_longer: int,
              careful: bool = False) -> tuple[bool, int, bool] | None:
    """What to sample after a fit whose diagnostics are ``summary`` (divergences in its
    ``attrs``), made with the low-rank mass matrix or not, ``factor`` times the draws and
    smaller steps or not (``careful``: :func:`careful_accept`): None to keep it, else
    (low_rank, factor, careful) of the next run.

    * It passes the rules: keep it.
    * It diverged: that is the geometry, which more draws do not mend — the low-rank mass
      matrix once (the small as-of panels diverge less with it, docs/model.md); if that
      diverges too, the diagonal one with smaller steps (target acceptance 0.999 instead
      of 0.99), once; if that diverges too, keep it and report it.  Why smaller steps
      last: a divergence is a leapfrog step too long for the curvature it met, and on the
      back-test's as-of panels of 2014, 2015 and 2019 — the only fits that still diverged
      with both mass matrices (2, 9, 1) — 0.999 sampled with none, diagonal or low-rank,
      at 1.1–2× the leapfrog steps (stop 33, docs/model.md); the diagonal matrix did it in
      fewer.  Not first: every other fit passes at 0.99, where it samples at half the cost.
      Not on a short try (``max_longer`` 1): a place shard's first try that diverges
      twice is fitted again at the product settings, which may take this step.
    * Bulk ESS or R-hat falls short without a divergence: the chains mix slowly, which
      more draws cure — the same mass matrix again with ``ceil(1.5 × 400 / min ESS)``
      times the draws (at least 2, at most ``max_longer``), once.  Where the fit may not
      be lengthened (``max_longer`` 1: a place shard's short first try, the suite's short
      chains) the low-rank mass matrix is the one try left, as before stop 29 — on the
      5,100-series province, 2 of 50 first tries that it used to rescue went on to the
      full-length fit without it (place stage 653 s against 548 s).  Why 1.5: an ESS
      estimated from a run this short is itself uncertain by a fifth or more, and thinning
      costs a little; at 1.25 the province's parent shard (ESS 168) was sampled 3× longer
      and reached 345 (stop 29)."""
    if meets_rules(summary):
        return None
    if summary.attrs["divergences"]:
        if factor > 1 or careful:
            return None
        if not low_rank:
            return True, 1, False
        return (False, 1, True) if max_longer >= 2 else None
    if factor > 1:
        return None
    if max_longer < 2:
        return None if low_rank else (True, 1, careful)
    need = int(np.ceil(1.5 * MIN_ESS / max(float(summary.ess_bulk.min()), 1.0)))
    return low_rank, int(min(max_longer, max(2, need))), careful


def sample_by_rules(sample, diagnose, target_accept: float, longer: int, on_pass=None):
    """Sample, judge the fit by the rules and sample again as :func:`next_pass` says,
    until it says keep; returns the kept fit.  ``sample(factor, target_accept, low_rank)``
    draws ``factor`` times the settings' draws; ``diagnose(idata)`` gives the (thinned)
    fit's summary, divergences in its ``attrs``; ``on_pass(low_rank, factor, careful)`` is
    called before each run (a progress stage).  The kept fit's posterior ``attrs`` say how
    it was sampled: ``mass_matrix``, ``thinned`` (k > 1), ``target_accept`` (smaller steps).
    The trend model and the reference class both sample through it."""
    low_rank, factor, careful = False, 1, False
    while True:
        if on_pass is not None:
            on_pass(low_rank, factor, careful)
        accept = careful_accept(target_accept) if careful else target_accept
        idata = sample(factor, accept, low_rank)
        if factor > 1:
            idata = thin(idata, factor)
        idata.posterior.attrs["mass_matrix"] = "low-rank" if low_rank else "diagonal"
        if careful:
            idata.posterior.attrs["target_accept"] = accept
        step = next_pass(diagnose(idata), low_rank, factor, longer, careful)
        if step is None:
            return idata
        low_rank, factor, careful = step


def thin(idata, k: int):
    """Every k-th draw of a run k times as long as the settings ask: a forecast reads as
    many draws as from any fit, and a slowly mixing quantity (autocorrelated over far more
    than k draws) keeps nearly all its effective draws.  Each kept draw's ``diverging``
    counts the divergences of its block of k, so the fit's count is the whole run's."""
    n = idata.posterior.sizes["draw"] // k
    keep = np.arange(n) * k + (k - 1)
    groups = {g: idata[g].isel(draw=keep).assign_coords(draw=np.arange(n)) if "draw" in idata[g].dims
              else idata[g] for g in idata.groups()}
    div = idata.sample_stats["diverging"].values[:, : n * k]
    groups["sample_stats"]["diverging"] = (("chain", "draw"), div.reshape(div.shape[0], n, k).sum(-1))
    groups["posterior"].attrs["thinned"] = k
    return import_quietly("arviz").InferenceData(**groups)


def _sampler_only(var: str) -> bool:
    """Variables the sampler moves but no forecast reads: PyMC's unconstrained copies
    (``rho_logodds__``) and the standard-normal raw effects (``z_series``, a shard's
    ``tau_code_z``) — 40 % of the cached file, skipped when a warm run reads it."""
    return var.endswith("__") or var.startswith("z_") or var.endswith("_z")


def _load_posterior(path: Path) -> xr.Dataset:
    """The posterior group of a cached fit, in memory, without the sampler-only variables."""
    return read_group(path, "posterior", keep=lambda v: not _sampler_only(v))


def default_cache_dir() -> Path:
    """Posteriors and compiled models: $IPSIM_CACHE, else the user's cache directory
    ($XDG_CACHE_HOME/ipsim, by default ~/.cache/ipsim) — never inside the package."""
    env = os.environ.get("IPSIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ipsim"


# Measured on this 2-core machine (docs/speed-log.md; hier-5, 159 series, nutpie): compiling
# 44–46 s on a machine that never compiled it (2026-12-05, on both cores with the compile
# helper, benchmarks/compile.py and first_run.py; 42–62 s on one core before, the upper
# end in a slow hour), 4–28 s once PyTensor's numba cache holds
# its parts (the same structure — other numbers, new series — ≈ 5 s; a panel of
# another structure ≈ 28 s; models/compiled.py); then 25–39 s for 4 chains × 3,000
# iterations on 2 cores with the diagonal mass matrix (40 s with the low-rank one), about
# linear in series × draws.
COMPILE_SECONDS_COLD = 45.0
COMPILE_SECONDS_WARM = 12.0
SAMPLE_SECONDS_PER_SERIES_DRAW = 0.00003


def compile_cache_is_warm(base: Path | None = None) -> bool:
    """Whether PyTensor's numba cache (under ``base``, default PyTensor's
    ``base_compiledir``) already holds compiled parts — a model was compiled on this
    machine before — which takes most of the compile time off."""
    d = pytensor_numba_cache(base)
    try:   # the shipped model leaves ≈ 150 index files there; a few dozen means it was seen
        return sum(1 for _ in itertools.islice(d.rglob("*.nbi"), 50)) >= 50
    except OSError:
        return False


def about(seconds: float) -> str:
    """A duration as a planner reads it: "90 s" under five minutes (to 10 s), else minutes."""
    return f"{max(10, round(seconds, -1)):.0f} s" if seconds < 300 else f"{seconds / 60:.0f} min"


def expected_fit_seconds(n_series: int, settings: dict, warm_compile: bool = False) -> float:
    draws = settings["chains"] * (settings["draws"] + settings["tune"]) / max(1, min(settings["chains"], 2))
    return ((COMPILE_SECONDS_WARM if warm_compile else COMPILE_SECONDS_COLD)
            + SAMPLE_SECONDS_PER_SERIES_DRAW * n_series * draws)


class HierarchicalGrowth(Forecaster):
    """Batched hierarchical growth model: one PyMC model for every series of a run."""

    name = "hierarchical"

    def __init__(self, draws: int | None = None, tune: int | None = None, chains: int = 4, target_accept: float = 0.99,
                 seed: int = 20240529, cache_dir: Path | None = None, use_cache: bool = True,
                 sampler: str | None = None, prior=None, cores: int | None = None, combine_ets: bool = True,
                 longer: int | None = None):
        super().__init__()
        # Long series' paths are an equal mix with a damped trend (models.combination);
        # the posterior does not depend on it, only the paths drawn from it.
        self.combine_ets = combine_ets
        self._ets = None            # the ETS fits of long series, kept between draws
        # IPSIM_MCMC_DRAWS lets the test suite use shorter (still real) chains; the
        # product default is 4 chains of 1000 tuning + 2000 kept draws: the pooling
        # spreads mix slowly (bulk ESS ≈ 250 from 4 × 1000), and the convergence rule
        # (bulk ESS ≥ 400) is met by sampling longer, not by relaxing it.
        fast = int(os.environ.get("IPSIM_MCMC_DRAWS", "0") or 0)
        draws = draws or fast or 2000
        tune = tune or fast or 1000
        # ``longer``: how many times the draws a fit that mixes too slowly may be sampled
        # again with (next_pass); 1 never.  The suite's short chains are short on purpose
        # and are not lengthened.
        longer = longer or (1 if fast else MAX_LONGER)
        self.settings = dict(draws=draws, tune=tune, chains=chains, target_accept=target_accept, seed=seed,
                             sampler=resolve_sampler(sampler), longer=longer)
        self.fit_timing: dict | None = None
        # A shard of a large panel (models.sharding) takes its hyperparameters and its
        # parent series' growth from the parent shard's posterior: a ParentPosterior.
        self.prior = prior
        self.cores = cores          # sampler threads (the draws do not depend on it)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.use_cache = use_cache
        self._posterior = None
        self._diag = None
        self.idata = None
        self.cache_path: Path | None = None
        self.from_cache = False

    # ------------------------------------------------------------------ data arrays
    def _arrays(self, panel: Panel) -> dict:
        S = len(panel.series)
        pts = panel.points
        K = max(1, min(MAX_POINTS, int(pts.groupby("s").size().max()) if len(pts) else 1))
        Y = np.zeros((S, K)); T = np.zeros((S, K)); SD = np.ones((S, K)); M = np.zeros((S, K), bool)
        tref = np.full(S, 2020.0); center = np.zeros(S)
        if len(pts):   # each series' last K readings in time order, first in its row
            p = pts.sort_values(["s", "t"], kind="stable")
            p = p[p.groupby("s").cumcount(ascending=False).to_numpy() < K]
            s_of, col = p.s.to_numpy().astype(int), p.groupby("s").cumcount().to_numpy()
            Y[s_of, col], T[s_of, col], SD[s_of, col], M[s_of, col] = p.z, p.t, p.sd, True
            for s in np.unique(s_of):
                n = M[s].sum()
                tref[s] = T[s, :n].sum() / n; center[s] = Y[s, :n].sum() / n
        for s in range(S):  # series seen only through totals or bounds
            if not M[s].any():
                rows = pd.concat([panel.sums[panel.sums.s == s], panel.censored[panel.censored.s == s]])
                if len(rows):
                    n_years = (rows.y1 - rows.y0 + 1).fillna(1).clip(lower=1)
                    center[s] = float((rows.z - np.log(n_years)).mean())
                    tref[s] = float(((rows.y0.fillna(rows.t) + rows.y1.fillna(rows.t)) / 2).mean())
        # pooling structure
        codes = sorted({i.code for i in panel.series})
        # growth is pooled by family × kind: a running total (stock) must not inherit the
        # growth of the flow it accumulates, nor a share the growth of a count
        fams = sorted({(i.family, i.kind) for i in panel.series})
        code_of = np.array([codes.index(i.code) for i in panel.series])
        fam_of_code = np.array([fams.index(next((i.family, i.kind) for i in panel.series if i.code == c))
                                for c in codes])
        kinds = sorted({k for _, k in fams})
        kind_of_fam = np.array([kinds.index(k) for _, k in fams])
        kind_mean = np.array([0.0 if k in LOGIT_KINDS else 0.05 for k in kinds])
        fam_mean = kind_mean[kind_of_fam]
        keys = panel.keys
        parent = np.array([keys.index(i.parent) if i.parent in keys else -1 for i in panel.series])
        # a shard's series whose parent series sits in the parent shard
        ext_keys = sorted({i.parent for i in panel.series if i.parent and i.parent not in keys})
        ext_parent = np.array([ext_keys.index(i.parent) if i.parent in ext_keys else -1 for i in panel.series],
                              dtype=int)
        depth = np.zeros(S, int)
        for s in range(S):
            p = parent[s]
            while p >= 0:
                depth[s] += 1
                p = parent[p]
        brk = np.array([i.census_break is not None for i in panel.series])
        # Readings on the old population basis: a per-10k figure of the census year was
        # published before the census results (so it is old-basis too); a population
        # figure of the census year is the census count itself.
        old_until = np.array([(float(i.census_break) + (0.5 if i.kind == "ratio" else -0.5))
                              if i.census_break is not None else -np.inf for i in panel.series])
        # a per-10k series moves at the census by minus its place's population shift
        pop_of = np.array([keys.index(f"{i.jurisdiction}:population")
                           if (i.census_break is not None and i.kind == "ratio"
                               and f"{i.jurisdiction}:population" in keys
                               and panel.info(f"{i.jurisdiction}:population").census_break is not None) else -1
                           for i in panel.series])
        # the first reading anchors the integrated growth deviation (see build_model)
        t1 = np.where(M.any(1), T[:, 0], tref)
        # years of growth each family's readings span, summed over its series: decides
        # whether its mean is sampled centred (see build_model)
        span = np.where(M.any(1), np.max(np.where(M, T, -np.inf), axis=1) - T[:, 0], 0.0)
        fam_span = np.bincount(fam_of_code[code_of], weights=span, minlength=len(fams)) if S else np.zeros(len(fams))
        return dict(S=S, K=K, Y=Y, T=T, SD=SD, M=M, tref=tref, t1=t1, center=center, codes=codes, fams=fams,
                    kinds=kinds, kind_of_fam=kind_of_fam, kind_mean=kind_mean, fam_span=fam_span,
                    code_of=code_of, fam_of_code=fam_of_code, fam_mean=fam_mean, parent=parent, depth=depth,
                    ext_keys=ext_keys, ext_parent=ext_parent,
                    brk=brk, old_until=old_until, pop_of=pop_of, group=panel.groups())

    def build_model(self, panel: Panel):
        pm = import_quietly("pymc")
        import pytensor.tensor as pt

        from .kalman import KalmanFilter

        A = self._arrays(panel)
        self._A = A
        S, K = A["S"], A["K"]
        coords = {"series": panel.keys, "code": A["codes"], "family": [f"{f}/{k}" for f, k in A["fams"]],
                  "kind": A["kinds"],
                  "group": GROUPS}
        with pm.Model(coords=coords) as model:
            # Family means share a data-learned location per kind and a learned spread:
            # a family with no multi-year series (a city's programme counts) borrows the
            # growth that the long series of the same kind show (national counts grew
            # 15–20 %/yr) instead of a fixed 5 %.  Weakly informative: N(0.05, 0.1²)
            # on the log scale (0 on the logit scale) for the location.
            # In a shard (self.prior set), every hyperparameter's prior is the parent
            # shard's posterior, summarised as a normal on its unconstrained scale, and
            # the growth of a kind, family, code or parent series the parent shard
            # knows is a normal with that posterior's mean and sd (models.sharding).
            P = self.prior
            mu_kind = P.normal_or(pm, "mu_kind", A["kinds"], A["kind_mean"], 0.1, dims="kind") if P else \
                pm.Normal("mu_kind", mu=A["kind_mean"], sigma=0.1, dims="kind")
            # The three pooling spreads (family within kind, code within family, root
            # series within code) as a total and its shares.  Most codes have one root
            # series and many families one code, so the data tell the total spread but
            # hardly its split; as three free Gamma scales they formed ridges the
            # sampler crawled along (bulk ESS 90–250 on one of them whatever the
            # sampler or centring).  Total ~ Gamma(2, 17): mean 0.12 (the root-sum-square
            # of hier-4's three prior means is 0.115), 95 % within about 0.01–0.33, and
            # zero-avoiding (with a half-normal, hier-1's sampler chased the spreads
            # into the funnel neck near 0);
            # variance shares ~ Dirichlet(4, 1, 1): a priori families differ most
            # (mean sds ≈ 0.09 / 0.05 / 0.05 at the mean total, as hier-4's priors).
            # codes with a single root series (used below; numpy only, no model variable)
            lone_code, lone_root = _lone_roots(A, P)
            if P:
                pool_scale = P.positive(pm, "pool_scale")
                pool_share = P.simplex(pm, "pool_share")
            else:
                pool_scale = pm.Gamma("pool_scale", alpha=2.0, beta=17.0)
                if len(lone_code) == len(A["codes"]):
                    # Every code has a single root series (a province's parent shard, the
                    # earliest as-of panels): the code / series split of the spread is
                    # then told by the prior alone, and in PyMC's simplex coordinates
                    # (log w_f/w_s, log w_c/w_s) it shares both coordinates with the
                    # family share the data do inform — tau_code R-hat 1.08, bulk ESS 57
                    # on the 5,100-series province's parent.  Dirichlet(4, 1, 1) by its
                    # aggregation property instead: w_f ~ Beta(4, 2) and the split
                    # w_c / (w_c + w_s) ~ Beta(1, 1), independent — the same prior.  Where
                    # some code has several roots the data inform the split, and the
                    # back-test measured the Dirichlet's coordinates better there
                    # (docs/model.md, Convergence).
                    fam_share = pm.Beta("fam_share", 4.0, 2.0)
                    code_split = pm.Beta("code_split", 1.0, 1.0)
                    pool_share = pm.Deterministic("pool_share", pt.stack([fam_share, (1 - fam_share) * code_split,
                                                                          (1 - fam_share) * (1 - code_split)]))
                else:
                    pool_share = pm.Dirichlet("pool_share", a=np.array([4.0, 1.0, 1.0]))
            tau_family = pm.Deterministic("tau_family", pool_scale * pt.sqrt(pool_share[0]))
            # A family whose series span many years of readings has its mean pinned by
            # them; sampled non-centred, its raw effect then narrows as 1/tau_family and
            # the sampler diverged at the top of pool_scale (the back-test's as-of fits,
            # the shipped fit below target_accept 0.99).  Such families are sampled
            # centred, the others (most: one reading or none) non-centred — centring all
            # of them made the small early panels mix worse (docs/model.md).
            loc = mu_kind[A["kind_of_fam"]]
            mu_fam = _mixed_centring(pm, pt, loc, tau_family, A["fam_span"] >= CENTRE_FAMILY_SPAN, "family")
            if P:
                mu_fam = P.known("mu_family", coords["family"], mu_fam)
            mu_fam = pm.Deterministic("mu_family", mu_fam, dims="family")
            tau_code = pm.Deterministic("tau_code", pool_scale * pt.sqrt(pool_share[1]))
            z_code = pm.Normal("z_code", 0, 1, dims="code")
            mu_code = mu_fam[A["fam_of_code"]] + tau_code * z_code
            if P:
                mu_code = P.known("mu_code", A["codes"], mu_code)
            tau_series = pm.Deterministic("tau_series", pool_scale * pt.sqrt(pool_share[2]))
            tau_tie = P.positive(pm, "tau_tie") if P else pm.HalfNormal("tau_tie", 0.05)
            z_series = pm.Normal("z_series", 0, 1, dims="series")
            # A code with a single root series: the data see only the sum of the code's
            # and the series' deviations, e_c + e_s, and as two non-centred effects they
            # traded off along a ridge whose width is set by the share split — the
            # parent shard of a province (every code one series) reached bulk ESS 40–127
            # on tau_code.  Sample the sum, D = tau √(w_c + w_s) z_s, and the code's part
            # from its exact conditional, e_c | D ~ N(D w_c / (w_c + w_s),
            # tau² w_c w_s / (w_c + w_s)) (non-centred, z_code): the same joint prior, so
            # the same model, but the split no longer touches anything the data see.
            # (Codes whose mean a parent shard gives are not among them.)
            if len(lone_code):
                w_c, w_s = pool_share[1], pool_share[2]
                dev = pool_scale * pt.sqrt(w_c + w_s) * z_series[lone_root]
                lone_fam = mu_fam[A["fam_of_code"][lone_code]]
                mu_code = pt.set_subtensor(
                    mu_code[lone_code],
                    lone_fam + dev * w_c / (w_c + w_s) + pool_scale * pt.sqrt(w_c * w_s / (w_c + w_s)) * z_code[lone_code])
            mu_code = pm.Deterministic("mu_code", mu_code, dims="code")
            # roots pool to their code; children to their parent place's series (by depth)
            mu = mu_code[A["code_of"]] + tau_series * z_series
            if len(lone_code):
                mu = pt.set_subtensor(mu[lone_root], lone_fam + dev)
            ext = np.where(A["ext_parent"] >= 0)[0]
            if len(ext):
                # a shard's series whose parent series is in the parent shard: tied to
                # that parent's growth as the parent shard's posterior gives it
                mu_ext = P.known("mu_series", A["ext_keys"], None, name="mu_parent")
                mu = pt.set_subtensor(mu[ext], mu_ext[A["ext_parent"][ext]] + tau_tie * z_series[ext])
            for d in range(1, int(A["depth"].max()) + 1):
                idx = np.where(A["depth"] == d)[0]
                mu = pt.set_subtensor(mu[idx], mu[A["parent"][idx]] + tau_tie * z_series[idx])
            mu = pm.Deterministic("mu_series", mu, dims="series")
            nb = int(A["brk"].sum())
            delta = pt.zeros(S)
            if nb:
                # census shift: N(0, 0.2²) for a population series or a per-10k series
                # whose place has no population series; otherwise minus the place's
                # population shift, give or take 0.05 (other denominators, rounding)
                brk_idx = np.where(A["brk"])[0]
                d_raw = pm.Normal("census_shift_raw", 0, 1, shape=nb)
                linked = A["pop_of"][brk_idx] >= 0
                delta = pt.set_subtensor(delta[brk_idx], 0.2 * d_raw)
                if linked.any():
                    li = brk_idx[linked]
                    delta = pt.set_subtensor(delta[li], -delta[A["pop_of"][li]] + 0.05 * d_raw[linked])
                pm.Deterministic("census_shift", delta[brk_idx])
            # Two deviations from the trend, both per group g:
            #  * growth deviations g_i(t), an Ornstein-Uhlenbeck process (AR(1) in
            #    continuous time, persistence phi_g a year, stationary sd s_g) whose
            #    integral x_i(t) moves the level: a year of fast growth raises every later
            #    year, so uncertainty accumulates with the horizon (local linear trend);
            #  * level deviations u_i(t), AR(1) with persistence rho and sd sigma_g:
            #    short-lived departures (a reporting change, a one-off rush) that revert.
            # The two scales are set as a total and the growth's share of it: with few
            # readings per series the data tell the total well but not the split, and as
            # two free scales they traded off (posterior correlation −0.55 on the log
            # scale; bulk ESS 311–335 at product settings).  Total ~ HalfNormal with
            # the root-sum-square of hier-4's two prior scales; share ~ Beta(2, 2)
            # (either component may dominate, neither may vanish).
            if P:
                total = P.positive(pm, "dev_scale", dims="group")
                share = P.unit(pm, "growth_share", dims="group")
            else:
                total = pm.HalfNormal("dev_scale", sigma=np.sqrt(np.array([0.2, 0.1, 0.1, 0.1, 0.1]) ** 2
                                                                 + np.array([0.1, 0.05, 0.1, 0.1, 0.1]) ** 2),
                                      dims="group")
                share = pm.Beta("growth_share", 2.0, 2.0, dims="group")
            sigma_g = pm.Deterministic("sigma_g", total * pt.sqrt(1 - share), dims="group")
            s_grow = pm.Deterministic("s_growth", total * pt.sqrt(share), dims="group")
            rho = P.unit(pm, "rho") if P else pm.Beta("rho", 2.0, 2.0)
            phi_grow = P.unit(pm, "phi_growth", dims="group") if P else pm.Beta("phi_growth", 5.0, 2.0, dims="group")
            sg = sigma_g[A["group"]]
            vstat = sg ** 2 / (1 - rho ** 2)
            s2 = s_grow[A["group"]] ** 2
            theta = -pt.log(phi_grow[A["group"]])

            # The level offset a_i ~ N(0, A_SD²) around the series' mean reading is
            # integrated out analytically for series with readings: a Kalman filter per
            # series on the state (level L = a + x, growth deviation g, level deviation
            # u), unrolled over reading positions and vectorised over series.  Sampling
            # a_i instead creates a funnel with the deviation scales (one reading cannot
            # tell level from deviation) and mixed badly; a dense batched Cholesky was
            # ~50x slower.  The transition over dt years is the exact one of the
            # continuous-time processes, so part-year readings need no special case.
            # Readings sit first in each row of T/Y/SD (M is a prefix mask).
            T, M, Y, SDv = A["T"], A["M"], A["Y"], A["SD"]
            shift_pts = (pt.switch(T <= A["old_until"][:, None], delta[:, None], 0.0) if nb else 0.0)
            base = A["center"][:, None] + mu[:, None] * (T - A["tref"][:, None]) - shift_pts
            dts = np.where(M, np.diff(T, axis=1, prepend=T[:, :1]), 0.0)

            # One Op (models.kalman): numba kernels for the filter and its hand-written
            # reverse pass, looping over each series' own readings.  A pytensor.scan
            # made every gradient cost ≈ 1 ms and took ≈ 90 s of C compile.
            ll, m_a, _ = KalmanFilter(A_SD ** 2)(Y, dts, M.sum(1).astype(np.int64), SDv, base, rho, vstat, s2, theta)
            pm.Potential("readings", pt.sum(ll))
            # series seen only through totals or lower bounds carry an explicit level
            free = np.where(~M.any(1))[0]
            a = A["center"] + m_a
            if len(free):
                a_free = pm.Normal("a_free", mu=A["center"][free], sigma=A_SD, shape=len(free))
                a = pt.set_subtensor(a[free], a_free)

            # multi-year totals and lower bounds on them: each reads the log of the
            # path's sum over its window's years, with the deviation variance added
            def window_total(s_idx, y0, y1, width):
                """(log Σ_t e^{z(t)} over each row's years y0..y1, the years counted)."""
                yrs = y0[:, None] + np.arange(width)[None, :]
                valid = yrs <= y1[:, None]
                lev = (a[s_idx][:, None] + mu[s_idx][:, None] * (yrs - A["tref"][s_idx][:, None])
                       - (pt.switch(yrs <= A["old_until"][s_idx][:, None], delta[s_idx][:, None], 0.0) if nb else 0.0))
                lev = pt.where(valid, lev, -np.inf)
                return pt.logsumexp(lev, axis=1), valid.sum(1)

            sums = panel.sums
            if len(sums):
                s_idx = sums.s.to_numpy().astype(int)
                zsum, n_years = window_total(s_idx, sums.y0.to_numpy(), sums.y1.to_numpy(),
                                             int((sums.y1 - sums.y0).max()) + 1)
                sd = pt.sqrt(sums.sd.to_numpy() ** 2 + vstat[s_idx] / n_years)
                pm.Normal("totals", mu=zsum, sigma=sd, observed=sums.z.to_numpy())
            cens = panel.censored
            if len(cens):
                # One vectorised term for all bounds (超过 b on a multi-year total), not
                # one set of Ops per bound: with a term per bound, every bound a planner
                # added made another graph to compile (≈ 30 Ops each; the compiled model
                # is keyed on the graph's structure, models/compiled.py) and a panel
                # with hundreds of bounds a graph too large to compile.  One padding row
                # of weight 0 keeps that structure the same for any number of bounds:
                # PyTensor's rewrites run while the panel's numbers are still constants,
                # and they specialise on an axis of length 1 and on an array whose
                # entries are all equal (one bound; bounds of one reliability, one
                # window length or one series).  The padding row differs from the first
                # bound in each of those: another series, another window length, its own
                # z and sd.  It adds exactly 0 to the log density and to its gradient.
                if cens.y0.isna().any():   # Panel reads a one-year 超过 b as a reading, not a bound
                    raise ValueError("a lower bound in the model must be on a multi-year total (y0..y1)")
                first = cens.iloc[0]
                width = int(first.y1 - first.y0) + 1
                pad = dict(s=(int(first.s) + 1) % S, t=np.nan, y0=first.y0, y1=first.y0 + (1 if width == 1 else 0),
                           z=first.z + 1.0, sd=1.0)
                rows = pd.concat([cens, pd.DataFrame([pad])], ignore_index=True)
                weight = np.r_[np.ones(len(cens)), 0.0]
                s_idx = rows.s.to_numpy().astype(int)
                y0, y1 = rows.y0.to_numpy().astype(int), rows.y1.to_numpy().astype(int)
                m_k, n_years = window_total(s_idx, y0, y1, max(2, int((y1 - y0).max()) + 1))
                sd = pt.sqrt(rows.sd.to_numpy() ** 2 + vstat[s_idx] / n_years)
                pm.Potential("lower_bounds", pt.sum(weight * normal_log_sf((rows.z.to_numpy() - m_k) / sd)))
        return model

    # ------------------------------------------------------------------ fitting
    def cache_key(self, panel: Panel, A: dict | None = None) -> str:
        """The posterior's identity: the data (panel fingerprint), what defines the model
        (the source of the code that builds it, its constants, the family map and
        pooling structure it derives from the panel), the sampler settings and the
        PyMC / PyTensor versions — so a changed prior or family map can never be served
        a stale posterior, even if nobody bumps ``MODEL_VERSION``."""
        import inspect
        from importlib import metadata

        h = hashlib.sha256()
        h.update(panel.fingerprint().encode())
        h.update(MODEL_VERSION.encode())
        h.update(json.dumps(self.settings, sort_keys=True).encode())
        # the transformed data are in the panel's fingerprint; what is hashed here is
        # the code that turns them into a model, and how it is sampled (the mass matrix)
        for fn in (HierarchicalGrowth._arrays, HierarchicalGrowth.build_model, _lone_roots,
                   HierarchicalGrowth._sample_nutpie, HierarchicalGrowth._diagnostics, meets_rules, next_pass,
                   careful_accept, sample_by_rules, thin):
            h.update(inspect.getsource(fn).encode())
        # the filter's kernels (read as text: importing them would load numba on a warm run)
        h.update((Path(__file__).parent / "kalman.py").read_bytes())
        h.update(repr((MAX_POINTS, A_SD, CENTRE_FAMILY_SPAN)).encode())
        A = A if A is not None else self._arrays(panel)
        h.update(repr((A["fams"], A["fam_of_code"].tolist(), A["fam_mean"].tolist(), A["parent"].tolist(),
                       A["group"].tolist(), A["ext_keys"], A["ext_parent"].tolist())).encode())
        if self.prior is not None:   # a shard: the parent posterior it is conditioned on
            h.update(self.prior.digest().encode())
        for pkg in ("pymc", "pytensor"):
            try:
                h.update(f"{pkg}={metadata.version(pkg)}".encode())
            except metadata.PackageNotFoundError:
                pass
        return h.hexdigest()[:20]

    # The InferenceData is loaded on first use.  A warm scenario re-run needs only the
    # posterior group (read with xarray) and the stored diagnostics, which spares it
    # the import of ArviZ — seconds on this machine.
    @property
    def idata(self):
        if self._idata is None and self.from_cache and self.cache_path is not None:
            self._idata = import_quietly("arviz").from_netcdf(self.cache_path)
        return self._idata

    @idata.setter
    def idata(self, value):
        self._idata = value
        self._posterior = None

    def _posterior_dataset(self):
        if self._idata is not None:
            return self._idata.posterior
        if self._posterior is None:
            self._posterior = _load_posterior(self.cache_path)
        return self._posterior

    def cache_file(self, panel: Panel, A: dict | None = None) -> Path:
        """Where this model's posterior for ``panel`` is (or would be) cached."""
        return self.cache_dir / f"{MODEL_VERSION}-{self.cache_key(panel, A)}.nc"

    def needs_fit(self, panel: Panel) -> bool:
        """Whether :meth:`fit` would sample (no usable cached posterior for ``panel``)."""
        return not (self.use_cache and self.cache_file(panel).exists())

    def fit(self, panel: Panel, progressbar: bool = False, progress=None) -> "HierarchicalGrowth":
        """Sample the posterior, or load it from the cache.  ``progress(text, transient)``
        receives a stage / share done / ETA line while a fit runs (see models.progress)."""
        self.panel = panel
        self._A = self._arrays(panel)
        self.cache_path = self.cache_file(panel, self._A)
        self.from_cache = False
        self._diag = None
        if self.use_cache and self.cache_path.exists():
            posterior, problem = self._read_cached_posterior()
            if problem is None:
                self.idata = None
                self._posterior = posterior   # checked and loaded once: a warm run reads it once
                self.from_cache = True
                if not self._load_diagnostics():
                    self._save_diagnostics()   # a cache written before diagnostics were kept
                return self
            # a truncated file, another version's file, an unreadable one: discard, refit
            warn(f"warning: cached posterior {self.cache_path.name} is damaged ({problem}); "
                 "discarding it and fitting again")
            for p in (self.cache_path, self._diag_path()):
                p.unlink(missing_ok=True)
        import contextlib

        from .progress import FitProgress

        st = self.settings
        emit = progress or (lambda text, transient: None)
        tracker = FitProgress(f"fitting {len(panel.series)} series", st["chains"] * (st["draws"] + st["tune"]), emit,
                              shown=progress is not None)
        with (tracker if progress else contextlib.nullcontext(tracker)):
            emit(f"first fit of these {len(panel.series)} series takes about "
                 f"{about(expected_fit_seconds(len(panel.series), st, compile_cache_is_warm()))}; "
                 "later runs reuse it "
                 f"({self.cache_dir})", False)
            tracker.set_stage("compiling")
            pm = import_quietly("pymc")  # only when sampling: importing PyMC costs seconds on a warm run

            t0 = time.perf_counter()
            with quiet_sampling():   # PyTensor's BLAS notice, ArviZ's FutureWarning: not for a planner
                model = self.build_model(panel)
                if st["sampler"] == "nutpie":
                    idata = self._sample_nutpie(model, tracker, t0)
                else:
                    with model:
                        idata = pm.sample(draws=st["draws"], tune=st["tune"], chains=st["chains"],
                                          cores=min(st["chains"], 2), target_accept=st["target_accept"],
                                          random_seed=st["seed"], progressbar=progressbar,
                                          callback=tracker.on_draw,
                                          compute_convergence_checks=False, idata_kwargs={"log_likelihood": False})
                    self.fit_timing = dict(compile=tracker.t_sample - t0 if tracker.done else float("nan"),
                                           sampling=time.perf_counter() - tracker.t_sample if tracker.done
                                           else float("nan"))
        self.idata = idata
        if self.use_cache:
            self.save(self.cache_path)
            self._save_diagnostics()
        return self

    def _sample_nutpie(self, model, tracker, t0):
        """nutpie (Rust NUTS) over the model compiled by PyTensor's numba backend — the
        filter Op runs as its numba kernels there; the progress line shows the share of
        draws done and an ETA (:func:`models.progress.sample_nutpie`)."""
        from .progress import sample_nutpie

        st = self.settings
        compiled = compile_for_nutpie(model)
        t1 = time.perf_counter()
        # A diagonal mass matrix first.  Measured 2026-11-26 (stop 28): nutpie's low-rank
        # update costs more than the gradient on these panels — the shipped fit sampled in
        # 25–32 s against 40 s at equal leapfrog steps (min bulk ESS 756 / 1,095 against
        # 752, 0 divergences), a 100-series place shard of the synthetic province in 9–13 s
        # against 18–25 s — but the small as-of panels diverge with it (as of 2014: 3 / 3 / 0
        # on three seeds, 2016: 3 / 7 / 0; low-rank 2 / 2 / 0 and 0 / 1 / 0), and a fit that
        # diverges is sampled again low-rank.  A fit that only mixes too slowly is sampled
        # again longer instead (next_pass): the parent shard of the 5,100-series province
        # reached min bulk ESS 168 diagonal and 97 low-rank (stop 29).
        def stage(low_rank, factor, careful):
            tracker.set_stage("sampling" if (not low_rank and factor == 1 and not careful) else
                              "sampling again (low-rank mass matrix)" if low_rank and factor == 1 else
                              "sampling again (smaller steps)" if factor == 1 else
                              f"sampling again, {factor}× longer")

        def sample(factor, accept, low_rank):
            return sample_nutpie(compiled, on_progress=tracker.on_progress if tracker.shown else None,
                                 draws=st["draws"] * factor,
                                 tune=st["tune"], chains=st["chains"],
                                 cores=self.cores or min(st["chains"], os.cpu_count() or 1), seed=st["seed"],
                                 target_accept=accept, save_warmup=False,
                                 low_rank_modified_mass_matrix=low_rank)

        def diagnose(idata):
            # the diagnostics are needed anyway (cache, report): computed once here
            self.idata, self._diag = idata, None
            return self.diagnostics()

        idata = sample_by_rules(sample, diagnose, st["target_accept"], st["longer"], stage)
        self.fit_timing = dict(compile=t1 - t0, sampling=time.perf_counter() - t1)
        return idata

    def _read_cached_posterior(self):
        """(posterior group, None) if the cached posterior can serve this panel, else
        (None, why): it must open, hold the model's variables with this panel's series
        and a full set of finite draws."""
        try:
            ds = _load_posterior(self.cache_path)
        except Exception as exc:  # noqa: BLE001 — h5netcdf/HDF5 raise many kinds on a bad file
            return None, f"unreadable: {type(exc).__name__}"
        for var in ("mu_series", "rho", "sigma_g", "s_growth", "phi_growth"):
            if var not in ds:
                return None, f"no variable {var}"
        if list(ds["mu_series"].coords["series"].values) != self.panel.keys:
            return None, "series differ from the data"
        st = self.settings
        if ds.sizes.get("chain") != st["chains"] or ds.sizes.get("draw") != st["draws"]:
            return None, "draws differ from the settings"
        if not np.isfinite(ds["mu_series"].values).all():
            return None, "non-finite draws"
        return ds, None

    # Diagnostics are computed once per fit and kept beside the posterior: ArviZ's
    # summary over every parameter takes seconds, which a warm re-run should not pay.
    def _diag_path(self) -> Path:
        return self.cache_path.with_suffix(".diag.json")

    def _save_diagnostics(self):
        d, per = self.diagnostics(), self.series_diagnostics()
        # to_dict, not to_json: pandas' JSON writer keeps 10 decimals, and a warm run's
        # manifest then differed from the cold run's in the last digits of R-hat and ESS
        doc = {"summary": d.to_dict(orient="split"), "divergences": int(d.attrs["divergences"]),
               "series": per.to_dict(orient="split")}
        tmp = self._diag_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self._diag_path())

    def _load_diagnostics(self):
        path = self._diag_path()
        if not path.exists():
            return False
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return False                    # damaged: recomputed from the posterior
        summ = pd.DataFrame(**doc["summary"])
        summ.attrs["divergences"] = doc["divergences"]
        per = pd.DataFrame(**doc["series"])
        per.index.name = "series"
        if list(per.index) == self.panel.keys:
            self._diag = (summ, per)
            return True
        return False

    def save(self, path: Path) -> Path:
        """ArviZ netCDF; written to a temporary name first so a crash leaves no half file."""
        return write_inference_data(self.idata, path)

    @classmethod
    def load(cls, path: Path, panel: Panel) -> "HierarchicalGrowth":
        az = import_quietly("arviz")

        m = cls(use_cache=False)
        m.panel = panel
        m.idata = az.from_netcdf(path)
        m._A = m._arrays(panel)
        return m

    # ------------------------------------------------------------------ diagnostics
    def _diagnostics(self):
        """(summary, per-series) computed once per posterior: ArviZ's summary of every
        parameter the rules judge, unrounded — ``az.summary`` rounds R-hat to two decimals
        by default, which let a fit with R-hat 1.0149 pass "R-hat ≤ 1.01" — and each
        series' growth-mean rows of it (the level is integrated out).  The per-series rows
        are read from the summary, not computed again (0.2–0.3 s a fit on the shipped panel)."""
        if self._diag is None:
            az = import_quietly("arviz")

            names = [v for v in ("mu_series", "a_free", "mu_code", "mu_family", "mu_kind", "tau_family",
                                 "tau_code", "tau_series", "tau_tie", "pool_scale", "pool_share", "dev_scale",
                                 "growth_share", "sigma_g", "rho", "s_growth", "phi_growth", "census_shift")
                     if v in self.idata.posterior]
            summ = az.summary(self.idata, var_names=names, kind="diagnostics", round_to="none")
            summ.attrs["divergences"] = int(self.idata.sample_stats["diverging"].sum())
            rows = summ.loc[[f"mu_series[{k}]" for k in self.panel.keys]]
            per = pd.DataFrame({"r_hat": rows.r_hat.to_numpy(), "ess_bulk": rows.ess_bulk.to_numpy()},
                               index=pd.Index(self.panel.keys, name="series"))
            self._diag = (summ, per)
        return self._diag

    def diagnostics(self) -> pd.DataFrame:
        """R-hat, bulk/tail ESS and Monte Carlo errors per parameter, unrounded;
        divergences in ``.attrs``."""
        return self._diagnostics()[0]

    def series_diagnostics(self) -> pd.DataFrame:
        """R-hat and bulk ESS of each series' growth mean (its level is integrated out)."""
        return self._diagnostics()[1]

    def mass_matrix(self) -> str | None:
        """The mass matrix the kept draws were sampled with: "diagonal", or "low-rank"
        after the diagonal fit diverged; " ×k" added when the fit mixed too slowly and was
        sampled again with k times the draws, thinned by k, and ", target_accept 0.999"
        when it was sampled again with smaller steps (next_pass); None for PyMC's
        sampler."""
        attrs = self._posterior_dataset().attrs
        mm, k, accept = attrs.get("mass_matrix"), int(attrs.get("thinned", 1)), attrs.get("target_accept")
        if mm and k > 1:
            mm = f"{mm} ×{k}"
        return f"{mm}, target_accept {float(accept):g}" if mm and accept is not None else mm

    def converged(self, max_rhat=MAX_RHAT, min_ess=MIN_ESS) -> bool:
        return meets_rules(self.diagnostics(), max_rhat, min_ess)

    def data_weight(self) -> dict:
        """Share of the uncertainty about each series' growth mean that its own readings
        removed (Gelman & Pardoe's pooling factor): 1 − Var_post(μ_i) / Var_prior(μ_i),
        where the prior is what the series would get from its pool alone — its parent
        place's growth plus τ_tie, or its code's growth plus τ_series.  0 for a series
        with nothing but a baseline; near 1 for a long history."""
        A = self._A
        post = self._posterior_dataset()
        mu = post["mu_series"].stack(sample=("chain", "draw")).values          # (S, n)
        mu_code = post["mu_code"].stack(sample=("chain", "draw")).values        # (C, n)
        var_post = mu.var(axis=1)
        t_s = float((post["tau_series"].values ** 2).mean())
        t_t = float((post["tau_tie"].values ** 2).mean())
        parent = A["parent"]
        prior = np.where(parent >= 0, t_t + mu[np.maximum(parent, 0)].var(axis=1),
                         t_s + mu_code[A["code_of"]].var(axis=1))
        if len(A["ext_keys"]):   # a shard: the parent's growth is known to its posterior sd
            sd_ext = np.array([self.prior.growth["mu_series"][k][1] for k in A["ext_keys"]])
            ext = A["ext_parent"]
            prior = np.where(ext >= 0, t_t + sd_ext[np.maximum(ext, 0)] ** 2, prior)
        w = np.clip(1.0 - var_post / np.maximum(prior, 1e-12), 0.0, 1.0)
        return dict(zip(self.panel.keys, w.round(3)))

    # ------------------------------------------------------------------ forecasting
    def sample_posterior_predictive(self, years, draws: int = 1000, seed: int = 0, keys=None) -> xr.DataArray:
        """Paths (draw, series, year) on the natural scale.

        Each draw takes one posterior draw (resampled with replacement when more
        draws are asked for than the posterior holds) and draws the deviations
        :math:`u_i` at ``years`` jointly, conditioned on the series' readings."""
        A = self._A
        keys = list(keys) if keys is not None else self.panel.keys
        sidx = np.array([self.panel.index(k) for k in keys], dtype=int)
        years = np.asarray(list(years), dtype=float)
        post = self._posterior_dataset().stack(sample=("chain", "draw"))
        n_post = post.sizes["sample"]
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, n_post, size=draws) if draws != n_post else np.arange(n_post)
        # The conditional law of the deviations depends only on the posterior draw, so
        # parameters and that law are taken once per distinct posterior draw (U of them)
        # and shared by the paths that use it (inv maps each path to its draw); series
        # are handled in groups of equal reading counts so no padded K×K solve is
        # wasted on a series with one reading (most of them).
        uniq, inv = np.unique(pick, return_inverse=True)
        mu_u = post["mu_series"].values[sidx][:, uniq].T      # (U, S)
        rho_u = post["rho"].values[uniq]                      # (U,)
        sg = post["sigma_g"].values[A["group"][sidx]][:, uniq].T
        s2_u = (post["s_growth"].values[A["group"][sidx]][:, uniq].T) ** 2
        th_u = -np.log(post["phi_growth"].values[A["group"][sidx]][:, uniq].T)
        dl_u = np.zeros((len(uniq), len(sidx)))
        if "census_shift" in post:
            full = np.zeros((len(A["brk"]), n_post))
            full[np.where(A["brk"])[0]] = post["census_shift"].values
            dl_u = full[sidx][:, uniq].T
        has_pts = A["M"][sidx].any(1)
        off_u = np.zeros((len(uniq), len(sidx)))  # explicit level of series without readings
        if "a_free" in post:
            free = np.where(~A["M"].any(1))[0]
            full = np.zeros((len(A["M"]), n_post))
            full[free] = post["a_free"].values - A["center"][free][:, None]
            off_u = full[sidx][:, uniq].T
        pa = np.where(has_pts, A_SD ** 2, 0.0)          # integrated-out level variance
        v_u = sg ** 2 / (1 - rho_u[:, None] ** 2)
        T, Y, SD, M = A["T"][sidx], A["Y"][sidx], A["SD"][sidx], A["M"][sidx]
        center, tref, t1, old_until = A["center"][sidx], A["tref"][sidx], A["t1"][sidx], A["old_until"][sidx]
        G = len(years)
        # one random stream per series: a series' paths do not depend on which other
        # series are drawn in the same call
        eps = np.empty((draws, len(sidx), G))
        for j, key in enumerate(keys):
            eps[:, j, :] = np.random.default_rng([seed, stable_seed(key)]).standard_normal((draws, G))

        def base(t, cols, u):  # (u, s, n) mean of z at times t (s, n) before conditioning
            shift = np.where(t[None] <= old_until[cols][None, :, None], dl_u[u][:, cols, None], 0.0)
            return (center[cols][None, :, None] + off_u[u][:, cols, None]
                    + mu_u[u][:, cols, None] * (t[None] - tref[cols][None, :, None]) - shift)

        n_pts = M.sum(1)
        group_s = A["group"][sidx]
        z = np.empty((draws, len(sidx), G))
        Tg = np.broadcast_to(years, (len(sidx), G))
        for n in np.unique(n_pts):
            cols = np.where(n_pts == n)[0]
            chunk = max(1, 20000 // max(1, len(cols) * max(1, n)))
            rep_g, of_g = _distinct(cols, group_s[cols], t1[cols])
            rep_o, of_o = _distinct(cols, group_s[cols], t1[cols], *T[cols, :n].T)
            for lo in range(0, len(uniq), chunk):
                u = slice(lo, min(len(uniq), lo + chunk))
                # The prior covariances depend on a series only through its group's
                # parameters, its anchor t1 and its reading times (whether its level is
                # integrated out is the same for all: they have n readings): computed
                # once per distinct combination (a handful, not one per series) and
                # taken from there — the same numbers.
                cov_of = lambda ta, tb, c: deviation_cov(  # noqa: E731
                    ta, tb, pa=pa[c][None, :, None, None], v=v_u[u][:, c, None, None],
                    lr=np.log(rho_u[u])[:, None, None, None], s2=s2_u[u][:, c, None, None],
                    th=th_u[u][:, c, None, None], t1=t1[c][None, :, None, None])
                Kgg = cov_of(Tg[rep_g][None, :, :, None], Tg[rep_g][None, :, None, :], rep_g)[:, of_g]
                bg = base(Tg[cols], cols, u)
                if n == 0:
                    cmean, ccov = 0.0, Kgg
                else:
                    Tn, Yn, SDn = T[cols, :n], Y[cols, :n], SD[cols, :n]
                    r = Yn[None] - base(Tn, cols, u)
                    Tr = T[rep_o, :n]
                    Koo = cov_of(Tr[None, :, :, None], Tr[None, :, None, :], rep_o)[:, of_o]
                    Koo = Koo + np.eye(n)[None, None] * (SDn ** 2)[None, :, :, None]
                    Kgo = cov_of(Tg[rep_o][None, :, :, None], Tr[None, :, None, :], rep_o)[:, of_o]
                    sol = np.linalg.solve(Koo, np.concatenate([r[..., None], np.swapaxes(Kgo, -1, -2)], axis=-1))
                    cmean = np.einsum("dsgk,dsk->dsg", Kgo, sol[..., 0])
                    ccov = Kgg - np.einsum("dsgk,dskh->dsgh", Kgo, sol[..., 1:])
                ccov = 0.5 * (ccov + np.swapaxes(ccov, -1, -2)) + 1e-9 * np.eye(G)
                L = np.linalg.cholesky(ccov)
                mean_u = bg + cmean
                rows = np.where((inv >= u.start) & (inv < u.stop))[0]
                k = inv[rows] - u.start
                z[rows[:, None], cols[None, :]] = mean_u[k] + np.einsum("dsgh,dsh->dsg", L[k], eps[rows][:, cols])
        paths = self._wrap(z, keys, years.astype(int), seed)
        # which posterior draw (chain-major) each path was built from: the Monte Carlo
        # error of a probability is measured by batch means in this order
        paths = paths.assign_coords(posterior_draw=("draw", pick))
        if self.combine_ets:
            from .combination import combine_with_ets
            from .ets import ETS

            self._ets = self._ets or ETS(cache_dir=self.cache_dir, use_cache=self.use_cache)
            paths = combine_with_ets(paths, self.panel, seed, ets=self._ets)
        return paths


def _distinct(cols: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(representatives, inverse): one column of ``cols`` per distinct combination of
    the per-column ``keys``, and which representative each column maps to."""
    _, first, inverse = np.unique(np.stack(keys, axis=1), axis=0, return_index=True, return_inverse=True)
    return cols[first], inverse.ravel()


def normal_log_sf(z):
    r"""log P(Z > z) for a standard normal Z, written without ``erfcx``.

    PyMC's ``logccdf`` uses ``erfcx``, which PyTensor's numba backend runs through a
    Python fallback: slower per gradient and, worse, it makes the whole compiled graph
    uncacheable, so every fit pays the ≈ 20 s numba compile again.  Here
    :math:`\log\tfrac12\operatorname{erfc}(z/\sqrt2)` is exact in float64 up to
    z ≈ 37; above z = 30 (a bound 30 sd above the mean) the asymptotic series
    :math:`-z^2/2 - \log z - \tfrac12\log 2\pi + \log(1 - z^{-2} + 3z^{-4} - 15z^{-6})` takes
    over (error < 1e-9 there).  Each branch sees a clipped z so that the
    branch not taken never produces inf/nan in the gradient.
    """
    import pytensor.tensor as pt

    cut = 30.0
    z_lo = pt.minimum(z, cut)
    z_hi = pt.maximum(z, cut)
    direct = pt.log(0.5 * pt.erfc(z_lo / np.sqrt(2.0)))
    asym = (-0.5 * z_hi ** 2 - pt.log(z_hi) - 0.5 * np.log(2 * np.pi)
            + pt.log1p(-1.0 / z_hi ** 2 + 3.0 / z_hi ** 4 - 15.0 / z_hi ** 6))
    return pt.switch(z > cut, asym, direct)


def integrated_ou_cov(a, b, theta):
    r"""Cov(x(a), x(b)) of :math:`x(t)=\int_0^t g` for a stationary OU process g of unit
    variance and rate θ, with signed offsets a, b from the anchor (x = 0 there):

    same side: (2θ·min(|a|,|b|) − 1 + e^{−θ|a|} + e^{−θ|b|} − e^{−θ||a|−|b||}) / θ²;
    opposite sides: −(1 − e^{−θ|a|})(1 − e^{−θ|b|}) / θ².  Written with expm1 so a
    slow rate (θ → 0, a random-walk growth) loses no precision."""
    A, B = np.abs(a), np.abs(b)
    eA, eB, th2 = np.expm1(-theta * A), np.expm1(-theta * B), theta ** 2
    same = (2 * theta * np.minimum(A, B) + eA + eB - np.expm1(-theta * np.abs(A - B))) / th2
    opposite = a * b < 0
    if not opposite.any():  # forecast years against each other, or one side only
        return same
    return np.where(opposite, -eA * eB / th2, same)


def deviation_cov(ta, tb, *, pa, v, lr, s2, th, t1):
    """Prior covariance of a series' deviations from its trend line at times ta, tb:
    level offset (variance pa) + AR(1) level deviation (variance v, ρ^|Δt|) +
    integrated growth deviation anchored at the first reading t1 — the same process
    the Kalman filter in :meth:`HierarchicalGrowth.build_model` runs, so forecasts
    condition on the readings exactly as the likelihood saw them."""
    return pa + v * np.exp(lr * np.abs(ta - tb)) + s2 * integrated_ou_cov(ta - t1, tb - t1, th)
