"""ipsim: probability that each target of a Chinese IP plan is reached.

Python API (the CLI is a thin layer over it)::

    from simulate import Registry
    reg = Registry.load()                 # shipped data/ (+ plan_files=, data_files=)
    plan = reg.plan("wuxi-2024")
"""
from .errors import InputError, Problem
from .registry import Indicator, Plan, Registry, Series

__all__ = ["Registry", "Plan", "Indicator", "Series", "InputError", "Problem"]
__version__ = "0.1.0"
