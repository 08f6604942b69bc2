"""Scenario sweeps: many scenario files against one registry.

Each distinct model fit (model × as-of year) is fitted or loaded once, here; then the
scenarios are judged — on Dask when the sweep is large enough to pay for starting the
workers (more than ``SWEEP_LOCAL_ABOVE`` scenarios) or when a scheduler is named
(``--cluster``), otherwise one after another in this process.  Every scenario carries
its own seed, so the results are the same wherever they ran.
"""
from __future__ import annotations

from .engine import fit_model, run_scenario

# A local cluster takes ≈ 5 s to start and its workers ≈ 3 s to import the engine; a
# warm scenario takes ≈ 2 s here, so a handful of scenarios run faster in this process.
SWEEP_LOCAL_ABOVE = 6


def _judge(sc, reg, forecaster, draws, seed, plan_ids):
    return run_scenario(sc, reg, draws=draws, seed=seed, plan_ids=plan_ids, forecaster=forecaster)


def run_sweep(scenarios, reg, *, draws=None, seed=None, plan_ids=None, progress=None, fit_progress=None):
    """``[run_scenario(sc, reg, …) for sc in scenarios]``, the fits shared."""
    from .cluster import get_client, in_process, run_tasks, scheduler_address

    say = progress or (lambda msg: None)
    fits = {}
    for sc in scenarios:
        key = (sc.model, sc.as_of)
        if key not in fits:
            say("fitting / loading the model …")
            fc, _ = fit_model(reg, sc.as_of, sc.model, fit_progress=fit_progress)
            if hasattr(fc, "client"):
                fc.client = None          # a client does not travel to the workers
            fits[key] = fc
    on_dask = not in_process() and (scheduler_address() or len(scenarios) > SWEEP_LOCAL_ABOVE)
    client = get_client() if on_dask and len(scenarios) > 1 else None
    if client is not None:
        say(f"judging {len(scenarios)} scenarios on Dask …")
        shared = {k: client.scatter(fc, broadcast=True) for k, fc in fits.items()}
        reg_f = client.scatter(reg, broadcast=True)
        return run_tasks(_judge, [(sc, reg_f, shared[(sc.model, sc.as_of)], draws, seed, plan_ids)
                                  for sc in scenarios], client)
    return [run_scenario(sc, reg, draws=draws, seed=seed, plan_ids=plan_ids, progress=say,
                         forecaster=fits[(sc.model, sc.as_of)]) for sc in scenarios]
