"""models.lazy_dask: a warm run does not import dask.array, and xarray still knows a
dask array when one exists.  Each check runs in a fresh interpreter, since this test
process may have imported dask.array already."""
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_reading_a_posterior_file_does_not_import_dask_array(tmp_path):
    out = _run(f"""
        import sys
        import numpy as np
        import models
        import xarray as xr
        path = {str(tmp_path / "p.nc")!r}
        xr.Dataset({{"mu": (("chain", "draw"), np.ones((2, 3)))}}).to_netcdf(path, engine="h5netcdf")
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds.load()
        print("dask.array" in sys.modules)
    """, tmp_path)
    assert out == "False"


def test_xarray_still_recognises_dask_arrays_after_dask_array_is_imported(tmp_path):
    out = _run(f"""
        import numpy as np
        import models
        import xarray as xr
        import dask.array as da
        x = xr.DataArray(da.ones((4, 2), chunks=2), dims=("a", "b"))
        path = {str(tmp_path / "p.nc")!r}
        xr.Dataset({{"v": (("a",), np.arange(4.0))}}).to_netcdf(path, engine="h5netcdf")
        lazy = xr.open_dataset(path, engine="h5netcdf", chunks={{"a": 2}})
        print(isinstance(x.data, da.Array), x.chunks, isinstance(lazy.v.data, da.Array), float((x * 2).sum()))
    """, tmp_path)
    assert out == "True ((2, 2), (2,)) True 16.0"
