r"""Fitting a large panel in shards — a province's cities and counties, the nation's
demonstration cities — the way the UN's subnational projections do.

1. The **parent shard** (every nation- and province-level series) is fitted as one
   model (:class:`~models.hierarchical.HierarchicalGrowth`).
2. Its posterior is summarised (:class:`ParentPosterior`): each hyperparameter as a
   normal on its unconstrained scale (log for scales, logit for persistences and shares,
   log-ratio for the pooling shares), and the growth of every kind, family, code and
   series as a normal with the posterior's mean and sd.
3. Each **place shard** (a city with its counties and districts; small places packed
   together up to ``max_series``) is fitted as the same model with those normals as its
   priors: a place's series are tied to their province series' growth
   :math:`\mu_p \sim N(\bar\mu_p, s_p^2)` with the usual :math:`\tau_\text{tie}`, a code or
   family the parent knows starts from the parent's estimate, one it does not know is
   pooled as in the joint model.  Place shards are independent of one another, so they
   run in parallel (on Dask, :mod:`simulate.cluster`).  Each is sampled first by a short
   run (:data:`FIRST_PASS`) and again at the product settings only if that run breaks
   a convergence rule.

What this changes statistically: a place's data inform its own shard only — they no
longer sharpen the pooled growth of the other places or the hyperparameters (siblings
share strength only through the parent); the summary keeps each quantity's mean and
sd but not the correlations between them.  With a parent shard of long national and
provincial series (the usual case) the loss is small; docs/model.md gives the measured
difference on the shipped data.

A shard's posterior is cached like any fit, keyed also by the summary it was
conditioned on; the draws depend on the seed, not on where a shard ran.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np

from .base import Forecaster
from .hierarchical import MAX_RHAT, MIN_ESS
from .panel import Panel
from .quiet import import_quietly

PARENT_LEVELS = ("nation", "province")
# Above this many series a fit is sharded by default (a joint fit grows about linearly
# in series × draws; see docs/speed-log.md).
SHARD_ABOVE = 500
POSITIVE = ("pool_scale", "tau_tie", "dev_scale")
UNIT = ("growth_share", "rho", "phi_growth")
GROWTH = (("mu_kind", "kind"), ("mu_family", "family"), ("mu_code", "code"), ("mu_series", "series"))


def split(panel: Panel, max_series: int | None = None) -> tuple[list[str], list[list[str]]]:
    """(parent keys, [shard keys, …]): the nation- and province-level series, then one
    shard per place below them (a city with its counties), packed up to ``max_series``
    series (a place is never split)."""
    places = panel.meta.get("places", {})

    def level(jur):
        return places.get(jur, ("city", None))[0]

    def top(jur):   # the place right below the parent levels that ``jur`` belongs to
        while True:
            parent = places.get(jur, ("city", None))[1]
            if parent is None or level(parent) in PARENT_LEVELS:
                return jur
            jur = parent

    parent_keys = [i.key for i in panel.series if level(i.jurisdiction) in PARENT_LEVELS]
    groups: dict[str, list[str]] = {}
    for i in panel.series:
        if level(i.jurisdiction) not in PARENT_LEVELS:
            groups.setdefault(top(i.jurisdiction), []).append(i.key)
    shards, current = [], []
    for place in sorted(groups):
        if current and (max_series is None or len(current) + len(groups[place]) > max_series):
            shards.append(current)
            current = []
        current = current + groups[place]
    if current:
        shards.append(current)
    return parent_keys, shards


@dataclass(frozen=True)
class ParentPosterior:
    """The parent shard's posterior as the priors of a place shard."""

    hyper: dict = field(default_factory=dict)    # name -> (mean, sd) arrays, unconstrained scale
    growth: dict = field(default_factory=dict)   # "mu_code" -> {label: (mean, sd)}

    @classmethod
    def from_posterior(cls, post) -> "ParentPosterior":
        st = post.stack(sample=("chain", "draw"))

        def ms(x):
            return (np.round(x.mean(axis=-1), 10), np.round(x.std(axis=-1, ddof=1), 10))

        hyper = {n: ms(np.log(st[n].values)) for n in POSITIVE}
        hyper.update({n: ms(np.log(st[n].values) - np.log1p(-st[n].values)) for n in UNIT})
        share = st["pool_share"].values                                   # (3, sample)
        hyper["pool_share"] = ms(np.log(share[1:] / share[:1]))
        growth = {}
        for var, dim in GROWTH:
            vals = st[var].values
            m, s = ms(vals)
            growth[var] = {str(lab): (float(a), float(b))
                           for lab, a, b in zip(st[var].coords[dim].values, m, s)}
        return cls(hyper, growth)

    def digest(self) -> str:
        doc = {"hyper": {k: [np.asarray(v).tolist() for v in mv] for k, mv in sorted(self.hyper.items())},
               "growth": {k: sorted(v.items()) for k, v in sorted(self.growth.items())}}
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]

    # -- building a shard's priors (called inside a pm.Model) ------------------------
    def _latent(self, pm, name, dims=None):
        m, s = (np.asarray(v, dtype=float) for v in self.hyper[name])
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims) if dims else pm.Normal(f"{name}_z", 0.0, 1.0, shape=m.shape)
        return m + s * z

    def positive(self, pm, name, dims=None):
        import pytensor.tensor as pt

        return pm.Deterministic(name, pt.exp(self._latent(pm, name, dims)), dims=dims)

    def unit(self, pm, name, dims=None):
        import pytensor.tensor as pt

        return pm.Deterministic(name, pt.sigmoid(self._latent(pm, name, dims)), dims=dims)

    def simplex(self, pm, name):
        import pytensor.tensor as pt

        logits = pt.concatenate([pt.zeros(1), self._latent(pm, name)])
        return pm.Deterministic(name, pt.special.softmax(logits))

    def normal_or(self, pm, var, labels, default_mean, default_sd, dims):
        known = self.growth.get(var, {})
        mean = [known[str(lab)][0] if str(lab) in known else float(d) for lab, d in zip(labels, default_mean)]
        sd = [known[str(lab)][1] if str(lab) in known else default_sd for lab in labels]
        return pm.Normal(var, mu=np.array(mean), sigma=np.array(sd), dims=dims)

    def known(self, var, labels, fallback, name=None):
        """``fallback`` with the entries the parent knows replaced by N(mean, sd) draws
        (non-centred); with ``fallback`` None every label must be known."""
        pm = import_quietly("pymc")
        import pytensor.tensor as pt

        table = self.growth.get(var, {})
        idx = np.array([k for k, lab in enumerate(labels) if str(lab) in table], dtype=int)
        if fallback is None and len(idx) != len(labels):
            missing = [lab for lab in labels if str(lab) not in table]
            raise ValueError(f"the parent shard has no posterior for {missing}")
        if not len(idx):
            return fallback
        m = np.array([table[str(labels[k])][0] for k in idx])
        s = np.array([table[str(labels[k])][1] for k in idx])
        z = pm.Normal(f"{name or var}_known_z", 0.0, 1.0, shape=len(idx))
        vals = m + s * z
        if fallback is None:
            return vals
        return pt.set_subtensor(fallback[idx], vals)


# Place shards are sampled first by a shorter, less cautious run: their hyperparameters
# come from the parent's posterior as tight normals, which leaves little of the funnel
# geometry that made the joint model need target_accept 0.99 and 1000 tuning draws.
# Measured on the synthetic province's place shards (2026-11-26): 40-series shards at
# 500 tuning + 1000 draws a chain: bulk ESS 850–870, no divergences, sampling 6 s
# against 25 s at product settings, growth means within 0.08 posterior sd of the
# product-length run; but 34 of the 50 100-series shards of the 5,100-series province
# fell short of bulk ESS 400 there (the deviation split of the stock group: 413–454) and
# were fitted twice — so the first run keeps the product's 2000 draws (ESS 639–749 on
# two such shards, sampling 18–23 s).  300 tuning draws instead of 500 (stop 27) sampled
# six such shards alone in 14–17 s against 19–24 s, but in the 5,100-series run 5 of 50
# shards then needed the second fit (2 with 500) and the whole run took 1,001 s against
# 1,025 s: not kept.  A shard that does not pass the convergence rules
# on this run is fitted again at the product settings, so the rules are never relaxed —
# only the first try is cheaper.
# Within each of these fits nutpie tries the diagonal mass matrix before the low-rank one
# (models.hierarchical): on a place shard it halves the sampling time.  The product-length
# fit (not the first try) may also be sampled again longer if it only mixes too slowly —
# as the parent shard of the synthetic province does (models.hierarchical.next_pass).
FIRST_PASS = dict(tune=500, draws=2000, target_accept=0.9)


def first_pass(settings: dict) -> dict:
    """The settings of a place shard's first try (never longer or more cautious than
    ``settings``, and never sampled again longer: a shard that falls short of the rules
    is fitted again at the product settings, which may)."""
    return dict(settings, **{k: min(settings[k], v) for k, v in FIRST_PASS.items()}, longer=1)


def fit_shard(panel: Panel, settings: dict, prior: ParentPosterior | None, cores: int | None = None):
    """Fit one place shard (no cache: the caller keeps it) — the function a Dask worker
    runs: the short first pass, then the product settings if that did not converge.
    Returns the model with a lean posterior (what forecasting reads) and its diagnostics."""
    from .hierarchical import HierarchicalGrowth

    def fit(st):
        return HierarchicalGrowth(**_init_args(st), use_cache=False, prior=prior, cores=cores).fit(panel)

    t0 = time.perf_counter()
    first = first_pass(settings)
    m = fit(first)
    spent = dict(m.fit_timing)
    if not m.converged() and first != settings:
        m = fit(settings)
        spent = {k: spent[k] + m.fit_timing[k] for k in spent}
    m = _lean(m)
    # what the worker spent on this shard (both passes): benchmarks/scaling.py adds it up
    m.shard_seconds = dict(spent, total=time.perf_counter() - t0)
    return m


def _lean(m):
    """``m`` with its diagnostics computed and only the draws forecasting reads kept:
    a shard's InferenceData travels from a worker and sits in memory with fifty others."""
    from .hierarchical import _sampler_only

    az = import_quietly("arviz")
    m._diagnostics()
    post = m.idata.posterior
    post = post.drop_vars([v for v in post.data_vars if _sampler_only(v)])
    m.idata = az.InferenceData(posterior=post, sample_stats=m.idata.sample_stats[["diverging"]])
    return m


def _init_args(settings: dict) -> dict:
    return {k: settings[k] for k in ("draws", "tune", "chains", "target_accept", "seed", "sampler", "longer")}


class ShardedGrowth(Forecaster):
    """The hierarchical growth model fitted in shards (see the module docstring); the
    same interface as :class:`~models.hierarchical.HierarchicalGrowth`.

    ``client``: a ``dask.distributed.Client`` to run the place shards on (each with one
    sampler thread, so the workers are the parallelism), a function returning one (or
    None) — called only when a shard needs fitting, so a warm run starts no cluster —
    or None to run them here one after another.  The draws are the same either way."""

    name = "hierarchical"

    def __init__(self, max_series: int | None = None, client=None, **kwargs):
        super().__init__()
        from .hierarchical import HierarchicalGrowth

        self.max_series = max_series
        self.client = client
        self._template = HierarchicalGrowth(**kwargs)
        self.settings = self._template.settings
        self.cache_dir = self._template.cache_dir
        self.use_cache = self._template.use_cache
        self.shards: list = []
        self.from_cache = False
        self.cache_path = None
        self.summary: ParentPosterior | None = None

    def fit(self, panel: Panel, progress=None, **_) -> "ShardedGrowth":
        from .hierarchical import HierarchicalGrowth

        self.panel = panel
        parent_keys, groups = split(panel, self.max_series)
        emit = progress or (lambda text, transient: None)
        kw = dict(_init_args(self.settings), cache_dir=self.cache_dir, use_cache=self.use_cache)
        t0 = time.perf_counter()
        self.stage_seconds = {}
        if parent_keys:
            emit(f"shard 1/{len(groups) + 1}: {len(parent_keys)} nation and province series", False)
            parent = HierarchicalGrowth(**kw).fit(panel.subset(parent_keys), progress=progress)
            self.summary = ParentPosterior.from_posterior(parent._posterior_dataset())
            fitted = [parent]
        else:   # no parent level: each place shard learns its hyperparameters itself
            fitted = []
        self.stage_seconds["parent"] = time.perf_counter() - t0
        todo = []
        for keys in groups:
            sub = panel.subset(keys)
            # a cached shard: from its first pass, or from the product-length run when
            # the first pass did not converge (only the final fit is kept)
            for st in (first_pass(self.settings), self.settings):
                m = HierarchicalGrowth(**dict(kw, **_init_args(st)), prior=self.summary)
                if self.use_cache and m.cache_file(sub).exists():
                    fitted.append(m.fit(sub))      # a cache hit (or a damaged file refitted)
                    break
            else:
                fitted.append(None)
                todo.append((len(fitted) - 1, sub))
        if todo:
            emit(f"fitting {len(todo)} place shards ({sum(len(s.series) for _, s in todo)} series)", False)
            again = 0
            for (k, sub), m in zip(todo, self._run(todo)):
                m.cache_dir = self.cache_dir
                m.use_cache = self.use_cache
                m.cache_path = m.cache_file(sub)
                again += m.settings != first_pass(self.settings)
                if self.use_cache:
                    m.save(m.cache_path)
                    m._save_diagnostics()
                fitted[k] = m
            if again:
                emit(f"{again} of {len(todo)} place shards did not converge on the short first run "
                     "and were fitted again at full length", False)
        self.stage_seconds["places"] = time.perf_counter() - t0 - self.stage_seconds["parent"]
        self.shards = fitted
        self.from_cache = all(getattr(m, "from_cache", False) for m in fitted)
        self.cache_path = fitted[0].cache_path if fitted else None
        self._owner = {k: m for m in fitted for k in m.panel.keys}
        return self

    def _run(self, todo):
        if callable(self.client) and not hasattr(self.client, "submit"):
            self.client = self.client()
        if self.client is None:
            return [fit_shard(sub, self.settings, self.summary) for _, sub in todo]
        futures = [self.client.submit(fit_shard, sub, self.settings, self.summary, 1, pure=False)
                   for _, sub in todo]
        return self.client.gather(futures)

    # -- the forecaster interface: each call goes to the shards holding the keys ------
    def sample_posterior_predictive(self, years, draws: int = 1000, seed: int = 0, keys=None):
        import xarray as xr

        keys = list(keys) if keys is not None else self.panel.keys
        parts = []
        for m in self.shards:
            mine = [k for k in keys if self._owner[k] is m]
            if mine:
                parts.append(m.sample_posterior_predictive(years, draws=draws, seed=seed, keys=mine))
        # the posterior-draw order (for Monte Carlo errors) holds only if every shard
        # resampled the same draw positions — shards fitted at other lengths do not
        picks = [p.posterior_draw.values for p in parts if "posterior_draw" in p.coords]
        if len(picks) != len(parts) or any(not np.array_equal(picks[0], q) for q in picks[1:]):
            parts = [p.drop_vars("posterior_draw", errors="ignore") for p in parts]
        return xr.concat(parts, dim="series").sel(series=keys)

    def diagnostics(self):
        import pandas as pd

        ds = [m.diagnostics() for m in self.shards]
        out = pd.concat([d.assign(shard=k) for k, d in enumerate(ds)])
        out.attrs["divergences"] = int(sum(d.attrs["divergences"] for d in ds))
        return out

    def series_diagnostics(self):
        import pandas as pd

        return pd.concat([m.series_diagnostics() for m in self.shards]).loc[self.panel.keys]

    def converged(self, max_rhat=MAX_RHAT, min_ess=MIN_ESS) -> bool:
        return all(m.converged(max_rhat, min_ess) for m in self.shards)

    def mass_matrix(self) -> str | None:
        """How many shards kept each mass matrix, e.g. "diagonal 50, low-rank 1"; None
        for PyMC's sampler, as for one model."""
        from collections import Counter

        n = Counter(k for k in (m.mass_matrix() for m in self.shards) if k)
        return ", ".join(f"{k} {v}" for k, v in sorted(n.items())) or None

    def data_weight(self) -> dict:
        out = {}
        for m in self.shards:
            out.update(m.data_weight())
        return out
