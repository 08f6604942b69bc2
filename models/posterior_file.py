"""Cache files on disk: ArviZ netCDF written uncompressed, one group read back fast; and
any other cache entry written through a temporary name (:func:`write_cache_entry`).

The files are ordinary ArviZ InferenceData netCDF (``az.from_netcdf`` opens them).  Two
choices make a warm run cheaper, measured on the shipped 159-series posterior
(8,000 draws, 2026-11-27):

* **no gzip.** MCMC draws are float64 noise: gzip saved 4 % of the file (43.9 against
  45.9 MB) but took 1.2–1.4 s to write against 0.3 s and tripled the read.
* **one group read with h5py,** not ``xarray.open_dataset``: xarray's backend decodes
  every variable through its CF machinery (and its first question about chunked arrays
  imports ``dask``) — 0.52 s against 0.20 s gzipped, 0.07 s uncompressed.  The netCDF
  layout is plain HDF5: each variable lists its dimension scales in ``DIMENSION_LIST``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

# netCDF-4's bookkeeping attributes, which xarray hides as well
_NETCDF_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Coordinates", "_Netcdf4Dimid",
                 "_FillValue", "_nc3_strict"}


def write_inference_data(idata, path: Path) -> Path:
    """``idata`` as netCDF at ``path``, uncompressed, through a temporary name so that a
    crash leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    idata.to_netcdf(str(tmp), engine="h5netcdf", compress=False)
    os.replace(tmp, path)
    return path


def write_cache_entry(path: Path, write: Callable[[Path], None]) -> bool:
    """``write(tmp)`` then rename ``tmp`` to ``path``: a crash leaves no half entry, and the
    process id in the temporary name keeps concurrent writers apart.  A cache directory
    that cannot be written costs a recomputation next time, nothing else: False then."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        write(tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        return False


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _attr(v):
    """An attribute as h5netcdf (hence xarray) returns it: text decoded, a one-element
    array as its element."""
    if isinstance(v, np.ndarray) and v.ndim and len(v) == 1:
        v = v[0]
    return _text(v)


def read_group(path: Path, group: str, keep: Callable[[str], bool] = lambda name: True) -> xr.Dataset:
    """The variables of ``group`` whose name passes ``keep``, in memory, with their
    dimensions, coordinate values and attributes — what ``xr.open_dataset(path,
    group=group).load()`` gives for them.  Raises (OSError, KeyError, ValueError …) on a
    damaged or foreign file; callers treat any exception as "unreadable"."""
    import h5py

    with h5py.File(path, "r") as h:
        g = h[group]
        scales = {name: d for name, d in g.items()
                  if isinstance(d, h5py.Dataset) and _text(d.attrs.get("CLASS", b"")) == "DIMENSION_SCALE"}
        data_vars = {}
        for name, d in g.items():
            if not isinstance(d, h5py.Dataset) or name in scales or not keep(name):
                continue
            refs = d.attrs.get("DIMENSION_LIST")
            dims = tuple(h[r[0]].name.rsplit("/", 1)[-1] for r in refs) if refs is not None else ()
            if len(dims) != d.ndim:
                raise ValueError(f"variable {name}: {d.ndim} axes but {len(dims)} dimensions")
            attrs = {k: _attr(v) for k, v in d.attrs.items() if k not in _NETCDF_ATTRS}
            data_vars[name] = (dims, d[()], attrs)
        coords = {}
        for dim in dict.fromkeys(dim for dims, _, _ in data_vars.values() for dim in dims):
            if _text(scales[dim].attrs.get("NAME", b"")).startswith("This is a netCDF dimension but not"):
                continue               # a dimension without a coordinate variable
            vals = scales[dim][()]
            if vals.dtype == object:   # strings come back as bytes or str by h5py version
                vals = np.array([_text(x) for x in vals], dtype=object)
            coords[dim] = vals
        return xr.Dataset(data_vars, coords=coords, attrs={k: _attr(v) for k, v in g.attrs.items()})
