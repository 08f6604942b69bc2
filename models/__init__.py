"""Forecasters behind one interface (see :mod:`models.base`).

>>> from models import get_forecaster
>>> fc = get_forecaster("hierarchical").fit(panel)
>>> paths = fc.sample_posterior_predictive(range(2023, 2027), draws=4000, seed=1)
"""
from .lazy_dask import install as _install_lazy_dask

_install_lazy_dask()  # before any xarray variable exists: saves ≈ 0.5 s per run

from .base import Forecaster, ModelRefusal
from .ets import ETS, ARIMADrift
from .hierarchical import HierarchicalGrowth
from .naive import CAGR, LastValue, LinearTrend
from .panel import Panel

FORECASTERS = {"hierarchical": HierarchicalGrowth, "ets": ETS, "arima": ARIMADrift,
               "cagr": CAGR, "linear": LinearTrend, "last": LastValue}


def get_forecaster(name: str, **kwargs) -> Forecaster:
    try:
        return FORECASTERS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown model '{name}'; choose one of {', '.join(FORECASTERS)}") from None


__all__ = ["Forecaster", "ModelRefusal", "Panel", "get_forecaster", "FORECASTERS", "HierarchicalGrowth", "ETS",
           "ARIMADrift", "CAGR", "LinearTrend", "LastValue"]
