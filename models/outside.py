r"""The outside view: how often past plans' targets like this one were met.

Reference-class forecasting (Kahneman & Lovallo; Flyvbjerg): before asking what a
series' own trend says, ask how often targets *of this kind* were reached.  Each past
target :math:`i` of plan :math:`j` with a known outcome is a Bernoulli trial,

.. math::

    \text{met}_{i} &\sim \text{Bernoulli}(p_i), \qquad
    \operatorname{logit} p_i = \alpha + \beta^{\text{kind}}_{k(i)} + \beta^{\text{measure}}_{m(i)}
        + \beta^{\text{attr}}_{a(i)} + \beta^{\text{level}}_{l(i)}
        + \gamma\, A_i + \lambda\, H_i + \nu\,[\text{no baseline}]_i + \sigma_{\text{plan}}\,\eta_{j(i)} \\
    \beta^{f}_{g} &\sim \mathcal N(0, \sigma_f^2), \quad \sigma_f \sim \text{HalfNormal}(0.7), \qquad
    \eta_j \sim \mathcal N(0, 1), \quad \sigma_{\text{plan}} \sim \text{HalfNormal}(1) \\
    \alpha &\sim \mathcal N(0, 1.5^2), \quad -\gamma \sim \text{HalfNormal}(0.5), \quad
    \lambda \sim \mathcal N(0, 0.5^2), \quad \nu \sim \mathcal N(0, 1)

* kind groups: ``programme`` (``count`` series: 工作站、中心、基地、示范企业 — units a
  government programme creates), ``flow``, ``stock`` (stock and ratio series),
  ``bounded`` (percent and score);
* :math:`A_i` — ambition: the annual change the target asks for on the model's scale
  (log, logit for bounded series) from the baseline, in units of 10 %/yr, signed so
  that larger is harder, entered as 5·tanh(a/5) (strictly increasing, saturating at
  ±50 %/yr); 0 with the no-baseline flag where the
  plan prints no baseline;
* :math:`H_i` — horizon (target year − baseline year − 4) / 2;
* :math:`\eta_j` — the plan effect: targets of one plan succeed or fail together
  (one administration, one budget, one political push).

Why these priors: N(0, 1.5²) on the intercept spreads the base rate over roughly
5 %–95 % (weakly informative, Gelman et al. 2008); HalfNormal(0.7) group scales allow
a kind or measure to differ from the rest by about ±1.4 on the logit scale at most in
practice and shrink strongly when the data cannot tell; the ambition slope is
constrained to be ≤ 0 (a more ambitious target cannot be easier — so raising a target
never raises its probability) with a HalfNormal(0.5) size per 10 %/yr, which keeps an
ambition never seen (a 60 %/yr target) from producing a probability of 0 or 1.

The sample is small and biased toward success (reports rarely state misses); the
intervals of :meth:`predict` show how little is known, and ``docs/model.md`` says so.

``covariates=False, plan_effect=False, intercept="flat"`` reduces the model to a
Beta(1, 1)-binomial (a Logistic(0, 1) prior on the logit is the uniform prior on p):
the test uses that known answer.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .base import stable_seed
from .posterior_file import read_group, write_cache_entry, write_inference_data
from .quiet import import_quietly, quiet_sampling, warn

KIND_GROUP = {"count": "programme", "flow": "flow", "stock": "stock", "ratio": "stock", "percent": "bounded",
              "score": "bounded"}
KIND_GROUPS = ["programme", "flow", "stock", "bounded"]
MEASURES = ["level", "cumulative", "increment", "relative"]
ATTRS = ["expected", "binding", "unknown"]
LEVELS = ["nation", "province", "city", "local"]   # local = county / district
LEVEL_OF = {"nation": "nation", "province": "province", "city": "city", "county": "local", "district": "local"}
AMBITION_UNIT = 0.10          # ambition measured in 10 %/yr on the log (logit) scale
AMBITION_SAT = 5.0            # ambition enters as 5·tanh(a/5) in units of 10 %/yr
KIND_ZH = {"programme": "项目/载体类计数", "flow": "年度流量", "stock": "存量/比率", "bounded": "比例/评分"}
KIND_EN = {"programme": "programme counts", "flow": "annual flows", "stock": "stocks and ratios",
           "bounded": "shares and scores"}
FEATURES = ["kind_group", "measure", "attribute", "level", "ambition", "horizon"]


def ambition(kind: str, measure: str, comparator: str, baseline, target, horizon: float, window_years: int = 1,
             bounds=None) -> float | None:
    """Annual change the target asks for on the model's scale (log; logit for bounded
    series), signed so that larger is harder; ``None`` without a usable baseline."""
    if baseline is None or target is None or baseline != baseline or target != target or horizon <= 0:
        return None
    if kind in ("percent", "score"):
        lo, hi = bounds or (0.0, 100.0)
        q = lambda v: np.log(np.clip((v - lo) / (hi - lo), 1e-3, 1 - 1e-3))  # noqa: E731
        lq = lambda v: q(v) - np.log1p(-np.clip((v - lo) / (hi - lo), 1e-3, 1 - 1e-3))  # noqa: E731
        if measure != "level":
            return None
        change = (lq(target) - lq(baseline)) / horizon
    else:
        floor = 0.5 if kind == "count" else 1e-9
        b = max(float(baseline), floor)
        if measure == "level":
            change = np.log(max(float(target), floor) / b) / horizon
        elif measure == "cumulative":
            n = max(int(window_years), 1)
            change = np.log(max(float(target), floor) / (b * n)) / ((n + 1) / 2)
        elif measure == "increment":
            change = np.log((b + max(float(target), 0.0)) / b) / horizon
        else:
            return None
    sign = -1.0 if comparator in ("<=", "<") else 1.0
    return float(sign * change)


def design(cases: pd.DataFrame) -> dict:
    """Index arrays and covariates from a feature table (one row per target)."""
    amb = pd.to_numeric(cases["ambition"], errors="coerce")
    no_base = amb.isna().to_numpy().astype(float)
    # saturating, strictly increasing: an ambition far beyond the cases (a what-if target
    # 20× the baseline) still counts as harder, but cannot drive P to 0 by extrapolation
    a = AMBITION_SAT * np.tanh(amb.fillna(0.0).to_numpy() / AMBITION_UNIT / AMBITION_SAT)
    h = (pd.to_numeric(cases["horizon"], errors="coerce").fillna(5.0).to_numpy() - 4.0) / 2.0
    return dict(kind=cases["kind_group"].map(KIND_GROUPS.index).to_numpy().astype(int),
                measure=cases["measure"].map(MEASURES.index).to_numpy().astype(int),
                attr=cases["attribute"].map(ATTRS.index).to_numpy().astype(int),
                level=cases["level"].map(LEVELS.index).to_numpy().astype(int),
                ambition=a, horizon=h, no_baseline=no_base)


class OutsideView:
    """Bayesian logistic reference-class model with partial pooling and a plan effect."""

    name = "outside"
    VERSION = "outside-2"

    def __init__(self, draws: int = 1000, tune: int = 1000, chains: int = 2, target_accept: float = 0.95,
                 seed: int = 20261122, covariates: bool = True, plan_effect: bool = True, intercept: str = "weak",
                 cache_dir: Path | None = None, use_cache: bool = True, sampler: str | None = None,
                 longer: int | None = None):
        from .hierarchical import MAX_LONGER, resolve_sampler

        fast = int(os.environ.get("IPSIM_MCMC_DRAWS", "0") or 0)
        sampler = resolve_sampler(sampler)
        # ``longer``: as the trend model's (models.hierarchical.next_pass) — a fit that only
        # mixes too slowly is sampled again with up to this many times the draws; the
        # suite's short chains are short on purpose and are not lengthened
        self.settings = dict(draws=fast or draws, tune=fast or tune, chains=chains, target_accept=target_accept,
                             seed=seed, covariates=covariates, plan_effect=plan_effect, intercept=intercept,
                             sampler=sampler, longer=longer or (1 if fast else MAX_LONGER))
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.use_cache = use_cache
        self.idata = None
        self.cases: pd.DataFrame | None = None
        self.plans: list[str] = []
        self.from_cache = False
        self.path: Path | None = None     # the cached posterior (None without a cache)
        self._diag: dict | None = None

    # ------------------------------------------------------------------ model
    def build_model(self, cases: pd.DataFrame):
        pm = import_quietly("pymc")

        st = self.settings
        X = design(cases)
        self.plans = sorted(cases["plan"].unique())
        plan_idx = cases["plan"].map(self.plans.index).to_numpy().astype(int)
        coords = {"kind_group": KIND_GROUPS, "measure": MEASURES, "attribute": ATTRS, "level": LEVELS,
                  "plan": self.plans, "case": cases["case"].tolist()}
        with pm.Model(coords=coords) as model:
            if st["intercept"] == "flat":
                alpha = pm.Logistic("alpha", 0.0, 1.0)   # = uniform prior on p
            else:
                alpha = pm.Normal("alpha", 0.0, 1.5)
            eta = alpha
            if st["covariates"]:
                # non-centred group effects: with few groups per factor the scales are
                # weakly identified and a centred form would funnel
                for name, dim, idx in (("kind", "kind_group", X["kind"]), ("measure", "measure", X["measure"]),
                                       ("attr", "attribute", X["attr"]), ("level", "level", X["level"])):
                    sd = pm.HalfNormal(f"sigma_{name}", 0.7)
                    raw = pm.Normal(f"z_{name}", 0.0, 1.0, dims=dim)
                    b = pm.Deterministic(f"b_{name}", sd * raw, dims=dim)
                    eta = eta + b[idx]
                # monotone by construction: asking for more growth can never make a target
                # easier (so raising a target never raises its probability)
                g_amb = -pm.HalfNormal("ambition_penalty", 0.5)
                pm.Deterministic("b_ambition", g_amb)
                g_hor = pm.Normal("b_horizon", 0.0, 0.5)
                g_nob = pm.Normal("b_no_baseline", 0.0, 1.0)
                eta = eta + g_amb * X["ambition"] + g_hor * X["horizon"] + g_nob * X["no_baseline"]
            if st["plan_effect"]:
                s_plan = pm.HalfNormal("sigma_plan", 1.0)
                z_plan = pm.Normal("z_plan", 0.0, 1.0, dims="plan")
                eta = eta + s_plan * z_plan[plan_idx]
            pm.Bernoulli("met", logit_p=eta, observed=cases["met"].to_numpy().astype(int), dims="case")
        return model

    def cache_key(self, cases: pd.DataFrame) -> str:
        h = hashlib.sha256()
        h.update(self.VERSION.encode())
        h.update(inspect.getsource(OutsideView).encode())
        h.update(pd.util.hash_pandas_object(cases[["case", "plan", "met"] + FEATURES].astype(str), index=False)
                 .values.tobytes())
        h.update(json.dumps(self.settings, sort_keys=True).encode())
        return h.hexdigest()[:20]

    def cache_path(self, cases: pd.DataFrame) -> Path | None:
        """Where the posterior for ``cases`` is (or would be) cached; None without a cache."""
        return None if self.cache_dir is None else self.cache_dir / f"{self.VERSION}-{self.cache_key(cases)}.nc"

    def fit(self, cases: pd.DataFrame) -> "OutsideView":
        cases = cases.reset_index(drop=True)
        self.cases = cases
        self.plans = sorted(cases["plan"].unique())
        path = None
        self._diag = None
        if self.cache_dir is not None:
            path = self.path = self.cache_path(cases)
            if self.use_cache and path.exists():
                try:
                    self.posterior = read_group(path, "posterior")
                    self.from_cache = True
                    return self
                except Exception as exc:  # noqa: BLE001 — a damaged cache entry: say so, refit
                    warn(f"warning: cached reference-class posterior {path.name} is damaged "
                         f"({type(exc).__name__}); discarding it and fitting again")
                    path.unlink(missing_ok=True)
        pm = import_quietly("pymc")

        model = self.build_model(cases)
        st = self.settings
        with model, quiet_sampling():
            if st["sampler"] == "nutpie":
                # The trend model's sampler: its numba compile shares PyTensor's disk cache
                # with the trend model's.  Measured 2026-11-26: compile 6 s with that cache
                # warm, 14.5 s with part of it empty, sampling 0.4 s — against PyMC's
                # ≈ 15 s C compile + ≈ 10 s of sampling on a cold run.
                import nutpie

                from .hierarchical import compile_for_nutpie, sample_by_rules

                # no compile helper: a small graph, fitted beside the trend model's compile
                # (simulate.join), whose helper has the other core
                compiled = compile_for_nutpie(model, helper=False)

                def sample(factor, accept, low_rank):
                    return nutpie.sample(compiled, draws=st["draws"] * factor, tune=st["tune"], chains=st["chains"],
                                         cores=1, seed=st["seed"], save_warmup=False, progress_bar=False,
                                         target_accept=accept, low_rank_modified_mass_matrix=low_rank)

                def diagnose(idata):
                    # the last one judged is the fit kept: its figures are not computed again
                    s = self._summary(idata)
                    self._diag = self._figures(s, idata)
                    return s

                # A fit that breaks the rules is sampled again as the trend model's is
                # (next_pass): longer if it only mixes slowly, with smaller steps if it
                # diverged.  The leave-one-plan-out fits mix with bulk ESS 459–1,085 from
                # 2 × 1000 draws (stop 33): a planner's own past outcomes may make it less.
                self.idata = sample_by_rules(sample, diagnose, st["target_accept"], st["longer"])
            else:
                self.idata = pm.sample(draws=st["draws"], tune=st["tune"], chains=st["chains"], cores=1,
                                       target_accept=st["target_accept"], random_seed=st["seed"],
                                       progressbar=False, compute_convergence_checks=False,
                                       idata_kwargs={"log_likelihood": False})
        self.posterior = self.idata.posterior
        if path is not None:
            write_inference_data(self.idata, path)
            self._keep(self.diagnostics())   # beside it: a warm run reports them unrecomputed
        return self

    def diagnostics(self) -> dict:
        """The fit held to the trend model's convergence rules (R-hat ≤ 1.01, bulk ESS ≥ 400,
        no divergence; unrounded): ``max_r_hat``, ``min_ess_bulk``, ``divergences``,
        ``converged``, over the intercept, the scales and the plan effects — the group
        effects ``b_*`` are products of a scale and a raw effect already counted.  Kept
        beside the cached posterior (``.diag.json``), so a warm run reports the fit its
        probabilities rest on without recomputing; computed from the cached file when
        that is missing; ``{}`` for a model that was neither fitted nor cached."""
        if self._diag is not None:
            return self._diag
        if self.idata is None and self.path is not None and self._side().exists():
            try:
                self._diag = json.loads(self._side().read_text())
                return self._diag
            except (OSError, ValueError):
                pass                          # damaged: recomputed from the posterior below
        idata = self.idata
        if idata is None:
            if self.path is None or not self.path.exists():
                return {}
            idata = import_quietly("arviz").InferenceData(posterior=read_group(self.path, "posterior"),
                                                          sample_stats=read_group(self.path, "sample_stats"))
        self._diag = self._figures(self._summary(idata), idata)
        if self.idata is None:
            self._keep(self._diag)           # a cache written before they were kept
        return self._diag

    def reported(self) -> dict:
        """:meth:`diagnostics` with what a run's manifest and the back-test say beside
        them: how many past targets the fit learned from and its cache file."""
        return dict(self.diagnostics(), cases=len(self.cases), cache=str(self.path or ""),
                    from_cache=bool(self.from_cache))

    def _side(self) -> Path:
        return self.path.with_suffix(".diag.json")

    def _keep(self, d: dict):
        write_cache_entry(self._side(), lambda tmp: tmp.write_text(json.dumps(d)))

    @staticmethod
    def _figures(s: pd.DataFrame, idata) -> dict:
        from .hierarchical import meets_rules

        d = {"max_r_hat": float(s.r_hat.max()), "min_ess_bulk": float(s.ess_bulk.min()),
             "divergences": int(s.attrs["divergences"]), "converged": meets_rules(s)}
        if "thinned" in idata.posterior.attrs:
            d["thinned"] = int(idata.posterior.attrs["thinned"])
        return d

    @staticmethod
    def _summary(idata) -> pd.DataFrame:
        """ArviZ's diagnostics (unrounded: the rules read R-hat unrounded) of the intercept,
        scales, slopes and plan effects, the divergences in ``attrs``."""
        az = import_quietly("arviz")
        names = [v for v in idata.posterior.data_vars if not v.startswith("b_") or v in
                 ("b_ambition", "b_horizon", "b_no_baseline")]
        s = az.summary(idata, var_names=names, kind="diagnostics", round_to="none")
        s.attrs["divergences"] = int(idata.sample_stats["diverging"].sum())
        return s

    def converged(self) -> bool | None:
        """Whether the fit meets the rules; None when there is no fit to judge."""
        return self.diagnostics().get("converged")

    # ------------------------------------------------------------------ prediction
    def predict_draws(self, targets: pd.DataFrame, draws: int, seed: int = 0) -> np.ndarray:
        """P(met) per draw (draw × target).  A target of a plan the model has seen takes
        that plan's effect; a new plan gets one new effect per draw, shared by all its
        targets — so the plan summary sees targets of one plan move together."""
        post = self.posterior.stack(sample=("chain", "draw"))
        n_post = post.sizes["sample"]
        rng = np.random.default_rng([seed, 13])
        pick = rng.integers(0, n_post, size=draws)
        st = self.settings
        eta = np.repeat(post["alpha"].values[pick][:, None], len(targets), axis=1)
        if st["covariates"]:
            X = design(targets)
            for name, key in (("kind", "kind"), ("measure", "measure"), ("attr", "attr"), ("level", "level")):
                eta = eta + post[f"b_{name}"].values[:, pick].T[:, X[key]]
            eta = (eta + post["b_ambition"].values[pick][:, None] * X["ambition"][None]
                   + post["b_horizon"].values[pick][:, None] * X["horizon"][None]
                   + post["b_no_baseline"].values[pick][:, None] * X["no_baseline"][None])
        if st["plan_effect"]:
            s_plan = post["sigma_plan"].values[pick]
            for plan in sorted(targets["plan"].unique()):
                cols = np.where(targets["plan"].to_numpy() == plan)[0]
                if plan in self.plans:
                    z = post["z_plan"].values[self.plans.index(plan), pick]
                else:  # one new plan effect per draw, seeded by the plan's name
                    z = np.random.default_rng([seed, stable_seed(plan)]).standard_normal(draws)
                eta[:, cols] += (s_plan * z)[:, None]
        return 1.0 / (1.0 + np.exp(-eta))

    def predict(self, targets: pd.DataFrame, draws: int = 4000, seed: int = 0) -> pd.DataFrame:
        """Mean P(met) and its 80 % interval per target (the uncertainty of the rate itself)."""
        p = self.predict_draws(targets, draws, seed)
        return pd.DataFrame({"p_outside": p.mean(0), "p_outside_lo": np.quantile(p, 0.1, axis=0),
                             "p_outside_hi": np.quantile(p, 0.9, axis=0)}, index=targets.index)
