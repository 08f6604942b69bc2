"""xarray without importing ``dask.array`` until something holds a dask array.

xarray asks of every new variable whether its data is a dask array, and its first
question imports ``dask.array`` (which imports ``scipy.fft`` and ``scipy.special``):
≈ 0.5 s, a fifth of a warm ``ipsim run``, which never holds a dask array (ipsim uses
Dask for its scheduler, not its arrays).  A dask array can only exist once
``dask.array`` is imported, so until then "not a dask array" is the exact answer.
:func:`install` gives xarray a dask-array *type* that answers ``isinstance`` by asking
``dask.array`` when — and only when — it has been imported; from then on xarray sees
dask arrays as before.

It fills xarray's cache of duck-array modules (``xarray.namedarray.pycompat``), a
private table; if a later xarray changes it, :func:`install` does nothing and xarray
behaves as it ships (tests/test_lazy_dask.py then fails, which is how we hear of it).
"""
from __future__ import annotations

import sys


class _DaskArrayType(type):
    def __instancecheck__(cls, obj) -> bool:
        da = sys.modules.get("dask.array")
        return da is not None and isinstance(obj, da.Array)

    def __subclasscheck__(cls, sub) -> bool:
        da = sys.modules.get("dask.array")
        return da is not None and issubclass(sub, da.Array)


class LazyDaskArray(metaclass=_DaskArrayType):
    """Stands for ``dask.array.Array`` without importing it."""


def install() -> bool:
    """Give xarray the lazy dask-array type; True if it now has it."""
    if "dask.array" in sys.modules:
        return False                     # already paid for: nothing to save
    try:
        from importlib.metadata import PackageNotFoundError, version
        from xarray.namedarray import pycompat
        dask_version = version("dask")   # without importing dask (≈ 0.1 s more)
    except (ImportError, PackageNotFoundError):
        return False
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    duck = getattr(pycompat, "DuckArrayModule", None)
    if not isinstance(cache, dict) or duck is None or not hasattr(pycompat, "Version"):
        return False
    if "dask" in cache:
        return isinstance(cache["dask"].type, tuple) and LazyDaskArray in cache["dask"].type
    entry = duck.__new__(duck)           # the fields DuckArrayModule.__init__ sets
    entry.module = None                  # read nowhere in xarray; dask stays unimported
    entry.version = pycompat.Version(dask_version)
    entry.type = (LazyDaskArray,)
    entry.available = True
    cache["dask"] = entry
    return True
