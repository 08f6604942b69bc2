"""Command line: a thin layer over the library (every command calls functions
that tests call directly)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pandas as pd

from . import labels as L
from .errors import InputError
from .registry import Registry
from .terminal import fit_table

pd.options.display.unicode.east_asian_width = True
pd.options.display.width = 200
pd.options.display.max_colwidth = 60

LANG = click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
                    help="Language of table headers and names.")
PLAN_FILES = click.option("--plan-file", "plan_files", multiple=True, type=click.Path(dir_okay=False),
                          help="A plan file of your own (repeatable).")
DATA_FILES = click.option("--data", "data_files", multiple=True, type=click.Path(dir_okay=False),
                          help="An observation file of your own, CSV or XLSX (repeatable).")


WIDE = click.option("--wide", is_flag=True, help="Show every column (tables are fitted to 100 columns otherwise).")


def _summary_text(probs, lang, wide):
    zh = lang == "zh"
    return fit_table(summary_table(probs, lang), name_col=L.col("name", lang), wide=wide, lang=lang,
                     drop_order=["依据" if zh else "basis", "可能性" if zh else "likelihood"])


def SCENARIO_RUN(f):
    """Options shared by commands that run one scenario for one plan (rank, inverse)."""
    for opt in reversed([click.option("--scenario", default="baseline", show_default=True),
                         click.option("--draws", type=click.IntRange(1, 200000), default=None),
                         click.option("--seed", type=int, default=None), PLAN_FILES, DATA_FILES, LANG]):
        f = opt(f)
    return f


def load_registry(plan_files=(), data_files=()) -> Registry:
    reg = Registry.load(plan_files=plan_files, data_files=data_files)
    for w in reg.warnings:
        click.echo(f"warning: {w}", err=True)
    return reg


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ipsim")
def cli():
    """ipsim — probability that each target of an IP plan is reached."""


# ----------------------------------------------------------------- plans
@cli.group("plans", invoke_without_command=True)
@PLAN_FILES
@DATA_FILES
@LANG
@WIDE
@click.pass_context
def plans_cmd(ctx, plan_files, data_files, lang, wide):
    """List plans: id, name, period, number of targets, how many have history."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = dict(plan_files=plan_files, data_files=data_files, lang=lang)
        return
    reg = load_registry(plan_files, data_files)
    click.echo(fit_table(plans_table(reg, lang), name_col=L.col("name", lang), wide=wide, lang=lang))


def plans_table(reg: Registry, lang: str = "zh") -> pd.DataFrame:
    rows = []
    for p in reg.plans.values():
        rows.append({L.col("plan", lang): p.id, L.col("name", lang): L.name(p, lang),
                     L.col("period", lang): f"{p.period[0]}–{p.period[1]}",
                     L.col("targets", lang): sum(i.evaluable for i in p.indicators),
                     L.col("with_history", lang): reg.history_count(p)})
    return pd.DataFrame(rows)


@plans_cmd.command("show")
@click.argument("plan_id")
@PLAN_FILES
@DATA_FILES
@LANG
@WIDE
@click.pass_context
def plans_show(ctx, plan_id, plan_files, data_files, lang, wide):
    """Indicator table of one plan: baseline, target, measure, interpretation."""
    parent = ctx.obj or {}
    reg = load_registry(plan_files or parent.get("plan_files", ()), data_files or parent.get("data_files", ()))
    lang = lang if lang != "zh" or not parent else parent.get("lang", lang)
    plan = reg.plan(plan_id)
    click.echo(f"{plan.id}  {L.name(plan, lang)}  ({plan.period[0]}–{plan.period[1]}, "
               f"{'基期' if lang == 'zh' else 'baseline'} {plan.baseline_year})")
    click.echo(fit_table(plan_table(reg, plan, lang), name_col=L.col("name", lang), wide=wide, lang=lang,
                         drop_order=[L.col(c, lang) for c in ("interpretation", "attribute", "unit", "indicator")]))


def plan_table(reg: Registry, plan, lang: str = "zh") -> pd.DataFrame:
    rows = []
    for i in plan.indicators:
        s = reg.series[i.series]
        rows.append({L.col("indicator", lang): i.id, L.col("name", lang): L.name(i, lang),
                     L.col("measure", lang): L.pick(L.MEASURES[i.measure], lang)
                     + (f" {i.window[0]}–{i.window[1]}" if i.window else ""),
                     L.col("baseline", lang): "" if i.baseline is None else f"{i.baseline:g}",
                     L.col("target", lang): ("—" if i.target is None else f"{i.comparator} {i.target:g}"),
                     L.col("unit", lang): s.unit, L.col("target_year", lang): i.target_year,
                     L.col("attribute", lang): L.pick(L.ATTRIBUTES[i.attribute], lang),
                     L.col("interpretation", lang): (i.interpretation or i.note)[:60]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------- validate
@cli.command("validate")
@click.argument("files", nargs=-1, type=click.Path())
def validate_cmd(files):
    """Check the shipped registry and FILES (plans, scenarios, observation CSV/XLSX)."""
    from .validate import validate_files

    checked, warnings = validate_files(files)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    kinds = {}
    for _, k in checked:
        kinds[k] = kinds.get(k, 0) + 1
    click.echo("OK: " + ", ".join(f"{n} {k} file(s)" for k, n in kinds.items()))


# ----------------------------------------------------------------- data
@cli.group("data")
def data_cmd():
    """Bring your own data."""


@data_cmd.command("template")
@click.argument("plan_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="xlsx", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Output file (default: <plan>-data.<format>).")
@PLAN_FILES
@DATA_FILES
def data_template(plan_id, fmt, out, plan_files, data_files):
    """Write a fill-in sheet listing every series PLAN needs, known values pre-filled."""
    from .template import write_template

    reg = load_registry(plan_files, data_files)
    plan = reg.plan(plan_id)
    path = write_template(reg, plan, fmt, Path(out or f"{plan_id}-data.{fmt}"))
    click.echo(f"wrote {path}  — fill in 'value' and 'source', then: ipsim validate {path}")


# ----------------------------------------------------------------- modelling
def results_root() -> Path:
    """Where runs are written without --out: results/ under the current directory
    (never inside an installed package)."""
    return Path.cwd() / "results"


_STATE = {"quiet": False}
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr (warnings and errors still).")


def _set_sampler(ctx, param, value):
    # the forecaster reads IPSIM_SAMPLER wherever a run builds one (run, rank, fit, backtest)
    if value:
        os.environ["IPSIM_SAMPLER"] = value
    return value


SAMPLER = click.option("--sampler", type=click.Choice(["nutpie", "pymc"]), default=None, expose_value=False,
                       callback=_set_sampler, is_eager=True,
                       help="MCMC sampler for a new fit (default nutpie; pymc = PyMC's own NUTS). "
                            "Posteriors of different samplers are cached apart.")


def _set_env(name):
    def callback(ctx, param, value):
        if value:
            os.environ[name] = value
        return value
    return callback


SHARD = click.option("--shard", type=click.Choice(["auto", "on", "off"]), default=None, expose_value=False,
                     callback=_set_env("IPSIM_SHARD"), is_eager=True,
                     help="Fit in shards (nation/province first, then each city with its counties, "
                          "in parallel on Dask). auto (default): above 500 series.")
CLUSTER = click.option("--cluster", default=None, expose_value=False, metavar="ADDRESS",
                       callback=_set_env("IPSIM_DASK_SCHEDULER"), is_eager=True,
                       help="Dask scheduler for shards and scenario sweeps (default: a local cluster, "
                            "one worker per core; 'none' = in this process). Also IPSIM_DASK_SCHEDULER.")


def _say(msg):
    if sys.stderr.isatty() and not _STATE["quiet"]:
        click.echo(f"… {msg}", err=True)


def _fit_progress(text, transient):
    """A fit's progress: one rewritten line on a terminal; without a terminal (a log, CI)
    one line per stage; nothing with --quiet."""
    if _STATE["quiet"]:
        return
    if sys.stderr.isatty():
        end = "\n" if (not transient and "done in" in text) else ""   # the last line stays
        sys.stderr.write("\r" + text.ljust(60) + end)
        sys.stderr.flush()
    elif not transient:
        click.echo(text, err=True)


def _scenario_path(name_or_path, reg) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    from .registry import shipped_home

    file = name_or_path if name_or_path.endswith(".yaml") else name_or_path + ".yaml"
    # the registry's own scenarios first (a clone or $IPSIM_HOME), then the shipped ones
    dirs = [reg.home / "scenarios", shipped_home() / "scenarios"]
    for d in dirs:
        if (d / file).exists():
            return d / file
    from .errors import Problem
    from .errors import did_you_mean as dym

    names = sorted({f.stem for d in dirs if d.is_dir() for f in d.glob("*.yaml")})
    raise InputError(Problem(str(name_or_path), "", "scenario file not found",
                             dym(p.stem, names) or f"shipped scenarios: {', '.join(sorted(names))}"))


@cli.command("fit")
@DATA_FILES
@PLAN_FILES
@click.option("--as-of", type=int, default=None, help="Use observations up to this year only.")
@click.option("--model", default="hierarchical", show_default=True)
@QUIET
@WIDE
@SAMPLER
@SHARD
@CLUSTER
def fit_cmd(data_files, plan_files, as_of, model, quiet, wide):
    """Fit (or load from cache) the model on all observed series and the reference class of
    past plans; print their diagnostics."""
    from .engine import diagnostics_of, fit_model

    _STATE["quiet"] = quiet
    reg = load_registry(plan_files, data_files)
    fc, panel = fit_model(reg, as_of, model, fit_progress=_fit_progress)
    if hasattr(fc, "series_diagnostics"):
        per = fc.series_diagnostics().join(pd.Series({i.key: i.basis for i in panel.series}, name="basis"))
        per["n_years"] = [panel.info(k).n_years for k in per.index]
        click.echo(fit_table(diagnostics_table(per), name_col="series", wide=wide, lang="en"))
    d = diagnostics_of(fc)
    click.echo(json.dumps({k: v for k, v in d.items() if k != "series_not_converged"}, ensure_ascii=False))
    if hasattr(fc, "series_diagnostics") and not d["converged"]:
        click.echo(f"WARNING: the fit did not converge (series: {', '.join(d['series_not_converged'][:10])})", err=True)
    if getattr(fc, "cache_path", None):
        click.echo(f"posterior cache: {fc.cache_path}")
    for k, why in list(fc.refusals.items())[:20]:
        click.echo(f"refused {k}: {why}", err=True)
    # the other fit a run's probabilities rest on: the reference class of past plans
    from .join import MIN_CASES, known_cases, outside_view

    if len(known_cases(reg, as_of)) >= MIN_CASES:
        ref = outside_view(reg, as_of).reported()
        click.echo("reference class: " + json.dumps(ref, ensure_ascii=False))
        if ref.get("converged") is False:
            click.echo(f"WARNING: the reference class of past plans did not converge ({_figures(ref)})", err=True)


def diagnostics_table(per: pd.DataFrame) -> pd.DataFrame:
    """Per-series convergence, worst R-hat first, numbers rounded for the terminal."""
    t = per.sort_values("r_hat", ascending=False).reset_index()
    t = t.rename(columns={t.columns[0]: "series"})
    for c in t.columns:
        if c.startswith("ess"):
            t[c] = t[c].map(lambda v: f"{v:.0f}")
        elif pd.api.types.is_float_dtype(t[c]):
            t[c] = t[c].map(lambda v: f"{v:.3f}")
    return t


def _run(scenarios, plan_ids, draws, seed, plan_files, data_files):
    from .engine import run_scenario
    from .scenario import load_scenario

    reg = load_registry(plan_files, data_files)
    loaded = []
    for name in scenarios:
        sc = load_scenario(_scenario_path(name, reg), reg)
        for w in getattr(sc, "warnings", []):
            click.echo(f"warning: {w}", err=True)
        loaded.append(sc)
    for pid in plan_ids:
        reg.plan(pid)
    from .sweep import run_sweep

    results = run_sweep(loaded, reg, draws=draws, seed=seed, plan_ids=list(plan_ids) or None, progress=_say,
                        fit_progress=_fit_progress)
    return reg, loaded, results


def _figures(d: dict) -> str:
    """A fit's convergence figures, as every warning prints them."""
    return f"max R-hat {d['max_r_hat']:.3f}, min ESS {d['min_ess_bulk']:.0f}, divergences {d['divergences']}"


def _check_convergence(results, strict):
    bad = [r for r in results if r.diagnostics.get("converged") is False]
    for r in bad:
        d = r.diagnostics
        click.echo(f"WARNING: scenario {r.scenario.name}: the model did not converge ({_figures(d)}); probabilities "
                   f"of series {', '.join(d['series_not_converged'][:8]) or '(global parameters)'} are unreliable",
                   err=True)
    bad_ref = [r for r in results if r.diagnostics.get("reference_class", {}).get("converged") is False]
    for r in bad_ref:
        click.echo(f"WARNING: scenario {r.scenario.name}: the reference class of past plans did not converge "
                   f"({_figures(r.diagnostics['reference_class'])}); the joined probabilities are unreliable", err=True)
    if (bad or bad_ref) and strict:
        sys.exit(3)


def _pct(v):
    return "" if v != v else f"{100 * v:.0f}%"


def summary_table(probs: pd.DataFrame, lang: str) -> pd.DataFrame:
    name = "name_zh" if lang == "zh" else "name_en"
    t = pd.DataFrame({L.col("indicator", lang): probs["indicator"], L.col("name", lang): probs[name].str.slice(0, 24),
                      L.col("target", lang): [("—" if pd.isna(t) else f"{c} {t:g}") for c, t in zip(probs.comparator, probs.target)],
                      ("实现概率" if lang == "zh" else "P(met)"): probs.p_met.map(_pct),
                      ("趋势" if lang == "zh" else "trend"): probs.p_inside.map(_pct),
                      ("参照组" if lang == "zh" else "ref.class"): probs.p_outside.map(_pct),
                      ("结论" if lang == "zh" else "category"): probs["category_zh" if lang == "zh" else "category_en"],
                      ("可能性" if lang == "zh" else "likelihood"): probs["likelihood_zh" if lang == "zh" else "likelihood_en"],
                      ("依据" if lang == "zh" else "basis"): probs.basis})
    if (probs.converged == False).any():  # noqa: E712 — None means "not evaluated", not "failed"
        t["模型收敛" if lang == "zh" else "converged"] = [
            ("否⚠" if lang == "zh" else "NO ⚠") if c is False or c == False else "" for c in probs.converged]  # noqa: E712
    return t


@cli.command("run")
@click.argument("scenarios", nargs=-1, required=True)
@click.option("--plan", "plan_ids", multiple=True, help="Only these plans (repeatable).")
@click.option("--draws", type=click.IntRange(1, 200000), default=None, help="Monte Carlo draws (default: scenario's).")
@click.option("--seed", type=int, default=None, help="Random seed (default: scenario's).")
@click.option("--out", "out_root", type=click.Path(file_okay=False), default=None, help="Results root (default results/).")
@click.option("--strict", is_flag=True, help="Exit with status 3 if a fit (the trend model or the reference class) did not converge.")
@PLAN_FILES
@DATA_FILES
@LANG
@WIDE
@QUIET
@SAMPLER
@SHARD
@CLUSTER
def run_cmd(scenarios, plan_ids, draws, seed, out_root, strict, plan_files, data_files, lang, wide, quiet):
    """Run SCENARIO files (or shipped names) and write a new results/ directory."""
    from .results import write_run

    _STATE["quiet"] = quiet
    reg, loaded, results = _run(scenarios, plan_ids, draws, seed, plan_files, data_files)
    label = "+".join(sc.name for sc in loaded)
    run_dir = write_run(results, reg, Path(out_root) if out_root else results_root(), label,
                        seed if seed is not None else loaded[0].seed, draws or loaded[0].draws,
                        [sc.file for sc in loaded], command=command_line())
    probs = pd.concat([r.probabilities for r in results])
    summ = pd.concat([r.plan_summary for r in results])
    if len(results) == 1:
        for pid, g in probs.groupby("plan", sort=False):
            s = summ[(summ.plan == pid) & (summ.attribute == "all")].iloc[0]
            if not s.evaluable:
                click.echo(f"\n== {pid}  " + ("没有可评估的目标：缺少本地数据（ipsim data template " + pid + "）" if lang == "zh"
                                               else f"no evaluable target: no local data (ipsim data template {pid})"))
                click.echo(_summary_text(g, lang, wide))
                continue
            click.echo(f"\n== {pid}  " + (f"预期实现 {s.expected_met:.1f}/{s.evaluable} 项, 全部实现概率 {_pct(s.p_all_met)}, "
                                           f"≥80%实现概率 {_pct(s.p_80pct_met)}" if lang == "zh" else
                                           f"expected met {s.expected_met:.1f}/{s.evaluable}, P(all) {_pct(s.p_all_met)}, "
                                           f"P(≥80%) {_pct(s.p_80pct_met)}"))
            click.echo(_summary_text(g, lang, wide))
    else:
        click.echo(fit_table(compare_table(probs, lang), name_col="name_zh" if lang == "zh" else "name_en",
                             wide=wide, lang=lang))
    click.echo(f"\nresults: {run_dir}")
    _check_convergence(results, strict)


def compare_table(probs: pd.DataFrame, lang: str) -> pd.DataFrame:
    name = "name_zh" if lang == "zh" else "name_en"
    from .results import scenarios_side_by_side

    wide = scenarios_side_by_side(probs, ["plan", "indicator", name])
    wide = wide.map(_pct).reset_index()
    wide[name] = wide[name].str.slice(0, 24)
    return wide


@cli.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@LANG
@WIDE
def compare_cmd(runs, lang, wide):
    """One table of P(met) side by side for the scenarios of RUN directories."""
    from .results import read_run

    frames = [read_run(r)["probabilities"] for r in runs]
    names = [f.scenario.tolist() for f in frames]
    flat = [n for ns in names for n in set(ns)]
    for r, f in zip(runs, frames):
        # the same scenario in two runs (baseline before and after new data): label by run
        if any(flat.count(n) > 1 for n in set(f.scenario)):
            f["scenario"] = f.scenario + " @" + Path(r).name
    probs = pd.concat(frames)
    probs = probs.drop_duplicates(["plan", "indicator", "scenario"])
    click.echo(fit_table(compare_table(probs, lang), name_col="name_zh" if lang == "zh" else "name_en",
                         wide=wide, lang=lang))


@cli.command("rank")
@click.argument("plan_id")
@SCENARIO_RUN
@WIDE
@QUIET
@SAMPLER
@SHARD
@CLUSTER
def rank_cmd(plan_id, scenario, draws, seed, plan_files, data_files, lang, wide, quiet):
    """Risk ranking of one plan's targets for evaluators, most at risk first."""
    _STATE["quiet"] = quiet
    reg, loaded, results = _run([scenario], [plan_id], draws, seed, plan_files, data_files)
    zh = lang == "zh"
    drop = (["依据", "进度比", "近期增速", "所需增速", "可能性", "最新值", "中位预测"] if zh else
            ["basis", "progress", "recent growth", "required growth", "likelihood", "latest", "median"])
    click.echo(fit_table(rank_table(results[0].probabilities, lang), name_col=L.col("name", lang), wide=wide,
                         lang=lang, drop_order=drop))
    _check_convergence(results, False)


def rank_table(probs: pd.DataFrame, lang: str) -> pd.DataFrame:
    p = probs.copy()
    p["_order"] = p.p_met.fillna(2.0)
    p = p.sort_values(["_order", "indicator"])
    zh = lang == "zh"
    g = lambda v: "" if v is None or v != v else f"{100 * v:+.1f}%"  # noqa: E731
    return pd.DataFrame({
        ("排名" if zh else "rank"): range(1, len(p) + 1),
        L.col("name", lang): p["name_zh" if zh else "name_en"].str.slice(0, 22),
        L.col("target", lang): [("—" if pd.isna(t) else f"{c}{t:g}") for c, t in zip(p.comparator, p.target)],
        ("最新值" if zh else "latest"): [("" if pd.isna(v) else f"{v:g} ({int(y)})") for v, y in zip(p.latest, p.latest_year)],
        ("中位预测" if zh else "median"): p["median"].map(lambda v: "" if v != v else f"{v:.4g}"),
        ("实现概率" if zh else "P(met)"): p.p_met.map(_pct),
        ("趋势模型" if zh else "trend"): p.p_inside.map(_pct),
        ("参照组" if zh else "ref.class"): p.p_outside.map(_pct),
        ("结论" if zh else "category"): p["category_zh" if zh else "category_en"],
        ("可能性" if zh else "likelihood"): p["likelihood_zh" if zh else "likelihood_en"],
        ("所需增速" if zh else "required growth"): p.required_growth.map(g),
        ("近期增速" if zh else "recent growth"): p.recent_growth.map(g),
        ("进度比" if zh else "progress"): p.progress_ratio.map(lambda v: "" if v is None or v != v else f"{v:.2f}"),
        ("依据" if zh else "basis"): p.basis,
    })


@cli.command("inverse")
@click.argument("plan_id")
@click.option("--prob", type=click.FloatRange(0.01, 0.99), default=0.8, show_default=True)
@SCENARIO_RUN
@WIDE
def inverse_cmd(plan_id, prob, scenario, draws, seed, plan_files, data_files, lang, wide):
    """For each indicator, the target value reachable with probability --prob."""
    from .engine import inverse_query

    reg, loaded, results = _run([scenario], [plan_id], draws, seed, plan_files, data_files)
    t = inverse_query(results[0], prob)
    zh = lang == "zh"
    out = pd.DataFrame({L.col("indicator", lang): t.indicator,
                        L.col("name", lang): t["name_zh" if zh else "name_en"],
                        L.col("target", lang): [f"{c}{v:g}" for c, v in zip(t.comparator, t.target)],
                        (f"{prob:.0%}把握可达" if zh else f"reachable at {prob:.0%}"): t.reachable.map(lambda v: f"{v:.4g}"),
                        L.col("unit", lang): t.unit})
    click.echo(fit_table(out, name_col=L.col("name", lang), wide=wide, lang=lang,
                         drop_order=[L.col("unit", lang), L.col("indicator", lang)]))


def _csv_list(value, cast=str):
    out = []
    for v in value:
        out += [cast(x.strip()) for x in str(v).split(",") if x.strip()]
    return out


@cli.command("backtest")
@click.option("--models", "models", multiple=True, help="Models, comma-separated or repeated "
              "(default: hierarchical,ets,arima,cagr,linear,last).")
@click.option("--origins", multiple=True, help="Origin years, comma-separated (default: 2015,2017,2020,2022).")
@click.option("--plan", "plan_ids", multiple=True, help="Past plans to judge (default: suzhou-2016, china-2016, china-2021).")
@click.option("--draws", type=click.IntRange(10, 100000), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@SAMPLER
@click.option("--out", "out_root", type=click.Path(file_okay=False), default=None, help="Results root (default results/).")
@PLAN_FILES
@DATA_FILES
def backtest_cmd(models, origins, plan_ids, draws, seed, out_root, plan_files, data_files):
    """Rolling-origin back-test of every model and of the evaluators' rules; writes results/backtest-*/."""
    from models import FORECASTERS

    from .backtest import (DEFAULT_MODELS, DEFAULT_ORIGINS, by_history, run_backtest, summarise_points,
                           write_backtest)
    from .errors import Problem
    from .errors import did_you_mean as dym

    reg = load_registry(plan_files, data_files)
    models = _csv_list(models) or DEFAULT_MODELS
    for m in models:
        if m not in FORECASTERS:
            raise InputError(Problem("--models", m, "unknown model", dym(m, list(FORECASTERS))
                                     or f"choose from {', '.join(FORECASTERS)}"))
    try:
        origins = _csv_list(origins, int) or DEFAULT_ORIGINS
    except ValueError:
        raise InputError(Problem("--origins", ",".join(origins), "origins must be years", "e.g. --origins 2015,2018"))
    years = reg.observations.year
    for o in origins:
        if not (years.min() < o < years.max()):
            raise InputError(Problem("--origins", str(o), f"no data on both sides of {o}",
                                     f"use years between {years.min() + 1} and {years.max() - 1}"))
    for pid in plan_ids:
        reg.plan(pid)
    res = run_backtest(reg, models, origins, draws=draws, seed=seed, plan_ids=list(plan_ids) or None, progress=_say)
    out = write_backtest(res, Path(out_root) if out_root else results_root(), command_line())
    # established (≥ 3 readings, the headline), thin (1–2) and all points, horizons pooled
    ss = by_history(res.points, summarise_points)
    if len(ss):
        ss = ss[ss.horizon == "all"].drop(columns=["horizon", "log_score", "log_score_n"])
        click.echo(ss.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    ps = res.plan_scores()
    if len(ps):
        click.echo(ps.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    click.echo(f"wrote {out}/report.md")


@cli.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "parquet", "json"]), required=True)
@click.option("--out", type=click.Path(), default=None)
@LANG
def export_cmd(run_dir, fmt, out, lang):
    """Export a run to CSV, XLSX (sheet per plan + README), Parquet or JSON."""
    from .results import export_run

    path = export_run(Path(run_dir), fmt, Path(out) if out else None, lang)
    click.echo(f"wrote {path}")


@cli.command("plot")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--plan", "plan_ids", multiple=True)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Directory for PNGs (default RUN_DIR/charts).")
@PLAN_FILES
@DATA_FILES
@LANG
def plot_cmd(run_dir, plan_ids, out, plan_files, data_files, lang):
    """Fan chart PNG per indicator: history, median, 80 %/95 % bands, target."""
    from .charts import plot_run

    reg = load_registry(plan_files, data_files)
    written, notice = plot_run(reg, Path(run_dir), list(plan_ids), Path(out) if out else None, lang=lang)
    if notice:
        click.echo(notice, err=True)
    click.echo(f"wrote {len(written)} charts to {written[0].parent if written else out}")


@cli.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--plan", "plan_ids", multiple=True, help="Only these plans (default: every plan in the run).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="HTML file (default RUN_DIR/report-LANG.html).")
@PLAN_FILES
@DATA_FILES
@LANG
def report_cmd(run_dir, plan_ids, out, plan_files, data_files, lang):
    """One self-contained HTML report (tables, fan charts, methods) to attach to a mid-term review."""
    from .charts import font_notice
    from .report import write_report
    from .results import read_run

    reg = load_registry(plan_files, data_files)
    run = read_run(Path(run_dir))
    have = set(run["probabilities"].plan)
    for pid in plan_ids:
        if pid not in have:
            from .errors import Problem
            from .errors import did_you_mean as dym

            raise InputError(Problem("--plan", pid, "plan not in this run", dym(pid, sorted(have))
                                     or f"the run holds: {', '.join(sorted(have))}"))
    notice = font_notice() if lang == "zh" else None
    if notice:
        click.echo(notice, err=True)
    path = write_report(Path(run_dir), Path(out) if out else None, reg, list(plan_ids) or None, lang)
    click.echo(f"wrote {path}")


@cli.command("extract")
@click.argument("document", type=click.Path(exists=True, dir_okay=False))
@click.option("--plan-id", default=None, help="id of the draft plan (default: from the file name).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Draft YAML (default DOCUMENT-draft.yaml).")
def extract_cmd(document, plan_id, out):
    """Draft a plan file from a plan document (plain text, UTF-8 or GBK) for a person to review."""
    from .extract import extract, write_draft

    reg = load_registry()
    plan = extract(Path(document), reg, plan_id)
    path = write_draft(plan, Path(out) if out else Path(document).with_name(Path(document).stem + "-draft.yaml"))
    inds = plan["indicators"]
    unmapped = sum(1 for d in inds if not d["series"])
    unread = sum(1 for d in inds if d["target"] is None)
    click.echo(f"wrote {path}: {len(inds)} targets ({unmapped} without a series code, {unread} unreadable numbers); "
               f"jurisdiction {plan['jurisdiction']}, period {plan['period'][0]}–{plan['period'][1]}")
    click.echo(f"review every value against its quote and line, then: ipsim validate {path}")


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that clean-up (temporary run directory) runs."""


_ARGV: list[str] = []


def command_line() -> str:
    """The command as the user typed it, for the manifest."""
    import shlex

    return "ipsim " + shlex.join(_ARGV)


def main(argv=None):
    import signal

    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)

    def _terminate(signum, frame):
        raise Terminated()

    installed, previous = False, None
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
        installed = True
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass
    try:
        _dispatch(argv)
    finally:
        # called in-process (tests, a notebook), the caller's own SIGTERM handling
        # comes back: a later SIGTERM must not raise ipsim's Terminated in their code
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _dispatch(argv):
    """Run the click command; every outcome ends in sys.exit with ipsim's status."""
    try:
        cli.main(args=argv, prog_name="ipsim", standalone_mode=False)
    except InputError as exc:
        for p in exc.problems:
            click.echo(f"error: {p}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted — no new results written; earlier runs untouched", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("interrupted (SIGTERM) — no new results written; earlier runs untouched", err=True)
        sys.exit(143)
    except click.UsageError as exc:
        # one line, like every other input error: what is wrong and where to look
        cmd = exc.ctx.command_path if exc.ctx else "ipsim"
        click.echo(f"error: {exc.format_message()} — see '{cmd} --help'", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
