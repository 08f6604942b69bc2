"""Scenario sweeps: many scenario files against one registry.

Each distinct model fit (model × as-of year) is fitted or loaded once, here; then the
scenarios are judged — on Dask when the sweep is large enough to pay for starting the
workers (more than ``SWEEP_LOCAL_ABOVE`` scenarios) or when a scheduler is named
(``--cluster``), otherwise one after another in this process.  Every scenario carries
its own seed, so the results are the same wherever they ran.
"""
from __future__ import annotations

from .engine import fit_model, run_scenario
from .join import outside_fit_needed, start_outside_fit

# A local cluster takes ≈ 5 s to start and its workers ≈ 3 s to import the engine; a
# warm scenario takes ≈ 2 s here, so a handful of scenarios run faster in this process.
SWEEP_LOCAL_ABOVE = 6


def _judge(sc, reg, forecaster, draws, seed, plan_ids):
    return run_scenario(sc, reg, draws=draws, seed=seed, plan_ids=plan_ids, forecaster=forecaster)


def run_sweep(scenarios, reg, *, draws=None, seed=None, plan_ids=None, progress=None, fit_progress=None):
    """``[run_scenario(sc, reg, …) for sc in scenarios]``, the fits shared."""
    from .cluster import get_client, in_process, run_tasks, scheduler_address

    say = progress or (lambda msg: None)
    fits, background = {}, {}
    for sc in scenarios:
        key = (sc.model, sc.as_of)
        if key not in fits:
            say("fitting / loading the model …")
            # a first run: the reference class fits in another process while the trend
            # model compiles (simulate.join.start_outside_fit)
            start = None
            if sc.as_of not in background and outside_fit_needed(reg, sc.as_of):
                def start(as_of=sc.as_of):
                    background[as_of] = start_outside_fit(reg, as_of)
            fc, _ = fit_model(reg, sc.as_of, sc.model, fit_progress=fit_progress, before_new_fit=start)
            if hasattr(fc, "client"):
                fc.client = None          # a client does not travel to the workers
            fits[key] = fc
    for future in background.values():
        if future is not None:
            say("fitting the reference class of past plans …")
            try:
                future.result()
            except Exception as exc:   # noqa: BLE001 — judging fits it in this process instead
                from models.quiet import warn

                warn(f"warning: the background fit of the reference class failed ({type(exc).__name__}: {exc}); "
                     "fitting it here")
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
