"""Keep third-party chatter off a planner's terminal.

PyMC, PyTensor and ArviZ print warnings meant for developers (no BLAS linked, an
upcoming ArviZ refactor) and log sampler progress.  They are silenced where ipsim
calls them — not globally, so a user's own code in the same process keeps its
warnings.  Convergence problems are not lost: ipsim computes and reports them itself.
"""
from __future__ import annotations

import contextlib
import logging
import warnings

_LOGGERS = ("pymc", "pytensor", "arviz", "pymc.sampling", "pymc.stats.convergence")


@contextlib.contextmanager
def quiet_sampling():
    saved = {name: logging.getLogger(name).level for name in _LOGGERS}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arviz(\.|$)")
        warnings.filterwarnings("ignore", message=r".*could not link to a BLAS.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pytensor(\.|$)")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"pymc(\.|$)")
        try:
            for name in _LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            yield
        finally:
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)


def warn(message: str) -> None:
    """One line on stderr, ipsim's own (not Python's warnings machinery, which a user's
    filters could hide or turn into errors)."""
    import sys

    print(message, file=sys.stderr)


def import_quietly(module: str):
    """Import a module with its import-time warnings silenced (ArviZ's FutureWarning)."""
    import importlib

    with quiet_sampling():
        return importlib.import_module(module)
