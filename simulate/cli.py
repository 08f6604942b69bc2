"""Command line: a thin layer over the library (every command calls functions
that tests call directly)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import pandas as pd

from . import labels as L
from .errors import InputError
from .registry import Registry

pd.options.display.unicode.east_asian_width = True
pd.options.display.width = 200
pd.options.display.max_colwidth = 60

LANG = click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
                    help="Language of table headers and names.")
PLAN_FILES = click.option("--plan-file", "plan_files", multiple=True, type=click.Path(dir_okay=False),
                          help="A plan file of your own (repeatable).")
DATA_FILES = click.option("--data", "data_files", multiple=True, type=click.Path(dir_okay=False),
                          help="An observation file of your own, CSV or XLSX (repeatable).")


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
@click.pass_context
def plans_cmd(ctx, plan_files, data_files, lang):
    """List plans: id, name, period, number of targets, how many have history."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = dict(plan_files=plan_files, data_files=data_files, lang=lang)
        return
    reg = load_registry(plan_files, data_files)
    click.echo(plans_table(reg, lang).to_string(index=False))


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
@click.pass_context
def plans_show(ctx, plan_id, plan_files, data_files, lang):
    """Indicator table of one plan: baseline, target, measure, interpretation."""
    parent = ctx.obj or {}
    reg = load_registry(plan_files or parent.get("plan_files", ()), data_files or parent.get("data_files", ()))
    lang = lang if lang != "zh" or not parent else parent.get("lang", lang)
    plan = reg.plan(plan_id)
    click.echo(f"{plan.id}  {L.name(plan, lang)}  ({plan.period[0]}–{plan.period[1]}, "
               f"{'基期' if lang == 'zh' else 'baseline'} {plan.baseline_year})")
    click.echo(plan_table(reg, plan, lang).to_string(index=False))


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


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="ipsim", standalone_mode=False)
    except InputError as exc:
        for p in exc.problems:
            click.echo(f"error: {p}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
