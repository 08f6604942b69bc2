"""User-facing input errors.

Every problem a user can cause is reported as one line naming the file, the line or
key, what was wrong and how to fix it.  The CLI prints them and exits with status 2;
nothing here ever reaches the user as a traceback.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    file: str
    where: str  # "line 12", "key indicators[3].target", "row 7, column value"
    message: str
    fix: str = ""
    level: str = "error"  # or "warning"

    def __str__(self) -> str:
        loc = f"{self.file}: {self.where}" if self.where else self.file
        text = f"{loc}: {self.message}"
        if self.fix:
            text += f" — {self.fix}"
        return text


class InputError(Exception):
    """One or more problems with user input (exit status 2)."""

    def __init__(self, problems: Iterable[Problem] | Problem):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Problems:
    """Collects problems so a user sees all of them at once, not one per run."""

    items: list[Problem] = field(default_factory=list)

    def add(self, file, where, message, fix="", level="error"):
        self.items.append(Problem(str(file), where, message, fix, level))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.level == "warning"]

    def raise_if_any(self):
        if self.errors:
            raise InputError(self.errors)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def allowed(choices: Iterable[str], limit: int = 12) -> str:
    choices = sorted(choices)
    shown = ", ".join(choices[:limit])
    return f"allowed: {shown}" + (", …" if len(choices) > limit else "")
