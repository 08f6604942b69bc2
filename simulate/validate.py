"""``ipsim validate``: recognise each file by its content and check it."""
from __future__ import annotations

from pathlib import Path

from .errors import InputError, Problem, Problems
from .registry import Registry, load_observations, load_plan
from .yamlio import load_yaml


def kind_of(path: Path) -> str:
    """plan, scenario or observations — by content, not by name."""
    if path.suffix.lower() in (".csv", ".xlsx", ".xlsm", ".txt"):
        return "observations"
    doc = load_yaml(path)
    if isinstance(doc, dict):
        if "indicators" in doc:
            return "plan"
        if {"adjustments", "shocks", "draws", "as_of", "plans", "seed"} & set(doc):
            return "scenario"
        if "series" in doc:
            return "series"
        if "jurisdictions" in doc:
            return "jurisdictions"
    raise InputError(Problem(str(path), "", "cannot tell what this file is",
                             "a plan has 'indicators', a scenario has 'adjustments' or 'draws', observations are CSV/XLSX"))


def validate_files(files, home=None) -> tuple[list[tuple[str, str]], list[Problem]]:
    """Validate the shipped registry (always) plus the given files.

    Returns (file, kind) pairs checked and the warnings; raises InputError listing
    every error found across all files."""
    reg = Registry.load(home)  # the shipped registry must be valid for anything else to be
    checked = [(str(p), "registry") for p in reg.input_files]
    problems = Problems()
    problems.items.extend(reg.warnings)
    from .reference import REFERENCE_FILE, load_reference_file

    if (reg.home / REFERENCE_FILE).exists():
        load_reference_file(reg.home / REFERENCE_FILE, problems)
        checked.append((str(reg.home / REFERENCE_FILE), "reference class"))
    for f in files:
        path = Path(f)
        if not path.exists():
            problems.add(path, "", "file not found", "check the path")
            continue
        try:
            kind = kind_of(path)
            if kind == "plan":
                jurs = dict(reg.jurisdictions)
                plan = load_plan(path, reg.series, jurs, problems)
                if plan and plan.id in reg.plans and reg.plans[plan.id].file != str(path.resolve()) \
                        and Path(reg.plans[plan.id].file).resolve() != path.resolve():
                    problems.add(path, "key id", f"plan id '{plan.id}' is already used by a shipped plan", "choose another id", level="warning")
            elif kind == "observations":
                # checked together with the shipped observations: a user's figure may contradict one of them
                shipped = [f for f in reg.input_files if Path(f).parent.name == "observations"]
                load_observations([*shipped, path], reg.series, reg.jurisdictions, problems)
            elif kind == "scenario":
                from .scenario import load_scenario

                load_scenario(path, reg, problems)
            checked.append((str(path), kind))
        except InputError as exc:
            problems.items.extend(exc.problems)
    problems.raise_if_any()
    return checked, problems.warnings
