r"""Compiling a PyMC model for nutpie (PyTensor's numba backend), with the sampler's C
entry points kept in PyTensor's numba disk cache.

What nutpie needs from a model is two C functions: the log density with its gradient,
:math:`x \mapsto (\log p(x), \nabla \log p(x))`, and the "expand" function that turns
an unconstrained draw into every named variable.  ``nutpie.compile_pymc_model`` builds
each as a ``numba.cfunc`` around PyTensor's compiled graph function.

Why this module exists (measured on the shipped model, README *Speed*): numba links a
callee's LLVM code into its caller and optimises and machine-compiles the whole again,
once per layer.  Between the graph's own function and nutpie's C function PyTensor puts
one more layer (its "final" function with a Python entry point, which the sampler never
calls), and nutpie's C function cannot be cached on disk (it closes over run-time
objects), so every fit paid two full passes over the whole graph after the graph's own:
about 3 s each on the shipped model, whether or not the graph had been compiled before.

Here the C functions are written as plain module-level source that calls the graph's
own function directly, registered under the graph's PyTensor cache key: a new graph
(a first run, a planner's changed data, each shard of a province) pays one pass fewer,
and a graph compiled before loads its C functions from disk instead of compiling them.
The arithmetic is the graph's, unchanged (no fast-math): the same seed gives the same
draws either way (tests/test_models.py).

The C functions keep nutpie's contract exactly (return codes 0 ok, -1 wrong size,
1 or -2 an exception, 3 a non-finite gradient, 4 a non-finite log density).  Where the
installed nutpie or PyTensor is not laid out as this module expects (another version),
or the graph has no cache key, the model is compiled by ``nutpie.compile_pymc_model``
as before; a test checks that the installed versions take the cached path.

numba trusts its disk cache: a truncated or unreadable file (a full disk, a killed run)
made the compile fail in a pickle traceback.  When a compile fails, the cache files that
cannot be read back are removed (:func:`discard_damaged_entries`) with one ``warning:``
line and the model compiled again; a failure with an intact cache is raised unchanged.
"""
from __future__ import annotations

import hashlib
import threading
from functools import wraps

# nutpie's own C functions (nutpie/compile_pymc.py, _make_c_logp_func and
# _make_c_expand_func), written as source so that numba can cache them: the only
# globals are the graph function, numpy, numba.carray and two sizes, all fixed by the
# cache key below.
_LOGP_SRC = '''
def ipsim_nutpie_logp(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = carray(x_, (N_DIM,))
        out = carray(out_, (N_DIM,))
        logp = carray(logp_, ())
        logp_val, grad = graph_fn(x)
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
'''

_EXPAND_SRC = '''
def ipsim_nutpie_expand(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        x = carray(x_, (N_DIM,))
        out = carray(out_, (N_EXPANDED,))
        (values,) = graph_fn(x)
        out[...] = values
    except Exception:
        return -2
    return 0
'''


def _signatures():
    """The C signatures nutpie calls (the same as in nutpie/compile_pymc.py)."""
    from numba import types

    logp = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                       types.CPointer(types.double), types.voidptr)
    expand = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                         types.CPointer(types.double), types.voidptr)
    return logp, expand


class _Unsupported(Exception):
    """The installed nutpie/PyTensor are not laid out as this module expects."""


def compile_for_nutpie(model):
    """The model compiled by PyTensor's numba backend, for nutpie — without fast-math.

    With fast-math (PyTensor's default) LLVM may reorder floating-point sums, and
    whether it does depends on what got inlined — which differs between a fresh compile
    and one assembled from the disk cache.  The draws then differed in the last bits,
    and after a few hundred NUTS steps entirely: the same seed gave two posteriors
    (a test fits twice, with a cold and with a warm cache).  IEEE arithmetic keeps the
    seed's promise."""
    import nutpie
    import pytensor

    def compile_once():
        with pytensor.config.change_flags(numba__fastmath=False):
            try:
                return _compile_cached(model)
            except _Unsupported:
                return nutpie.compile_pymc_model(model, backend="numba")

    try:
        return compile_once()
    except Exception:
        # numba reads its disk cache without checking it: a truncated or unreadable
        # entry (a full disk, a killed process, another user's file) ends the fit in a
        # pickle traceback.  Such entries are found, discarded and compiled again —
        # one warning line; anything else is not the cache's fault and is raised as is.
        damaged = discard_damaged_entries()
        if not damaged:
            raise
        from .quiet import warn

        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        warn(f"warning: damaged compile-cache file discarded: {damaged[0]}{more}; compiling the model again")
        return compile_once()


def pytensor_numba_cache(base=None):
    """PyTensor's numba cache (the graph's parts and ipsim's C entry points): ``numba``
    under ``base``, by default PyTensor's ``base_compiledir`` (read from its config
    without importing numba: a warm run asks whether the cache is warm)."""
    from pathlib import Path

    if base is None:
        import pytensor

        base = pytensor.config.base_compiledir
    return Path(base) / "numba"


def compile_cache_dirs() -> list:
    """Where numba keeps what a fit compiles: PyTensor's numba cache and the Kalman
    filter's kernels' cache."""
    from pathlib import Path

    from . import kalman

    dirs = [pytensor_numba_cache()]
    for kernel in (getattr(kalman, "_forward", None), getattr(kalman, "_backward", None)):
        path = getattr(getattr(kernel, "_cache", None), "_cache_path", None)
        if path:
            dirs.append(Path(path))
    return list(dict.fromkeys(dirs))


def discard_damaged_entries(dirs=None) -> list:
    """Remove every numba cache file in ``dirs`` (default :func:`compile_cache_dirs`)
    that cannot be read back — an index (``.nbi``: a version, then the pickled table)
    or a data file (``.nbc``: one pickle) — and return their paths.  numba treats a
    missing file as a cache miss and writes it again."""
    import pickle

    damaged = []
    for d in dirs if dirs is not None else compile_cache_dirs():
        if not d.is_dir():
            continue
        for path in sorted(d.iterdir()):
            if path.suffix not in (".nbi", ".nbc"):
                continue
            try:
                with open(path, "rb") as f:
                    if path.suffix == ".nbi":
                        pickle.load(f)
                    pickle.loads(f.read())
            except Exception:
                try:
                    path.unlink()
                except OSError:
                    continue        # not ours to remove: the original error stands
                damaged.append(path)
    return damaged


def takes_cached_path() -> bool:
    """Whether the installed nutpie and PyTensor offer what :func:`_compile_cached`
    uses (a test asserts it, so that an upgrade that loses it is noticed)."""
    try:
        _internals()
    except _Unsupported:
        return False
    return True


def _internals():
    try:
        import nutpie.compile_pymc as ncp
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src
    except ImportError as e:
        raise _Unsupported(str(e)) from e
    needed = ("_make_functions", "_prepare_dims_and_coords", "make_user_data", "CompiledPyMCModel")
    if not all(hasattr(ncp, n) for n in needed):
        raise _Unsupported("nutpie.compile_pymc lacks " + ", ".join(n for n in needed if not hasattr(ncp, n)))
    return ncp, CACHED_SRC_FUNCTIONS, compile_numba_function_src


def _initial_point_fn(model):
    """nutpie's default start (``compile_pymc_model``): PyMC's support point with
    jitter on every free variable, behind a lock as nutpie's is."""
    from pymc.initial_point import make_initial_point_fn

    fn = make_initial_point_fn(model=model, overrides=None, default_strategy="support_point",
                               jitter_rvs=set(model.free_RVs), return_transformed=True)
    lock = threading.Lock()

    @wraps(fn)
    def locked(*args, **kwargs):
        with lock:
            return fn(*args, **kwargs)

    return locked


def _graph_function(pytensor_fn, cache_key_of):
    """(the graph's own numba function, its PyTensor cache key) behind PyTensor
    function ``pytensor_fn`` — the function PyTensor's "final" wrapper calls."""
    final = getattr(getattr(pytensor_fn, "vm", None), "jit_fn", None)
    py_func = getattr(final, "py_func", None)
    key = cache_key_of.get(py_func) if py_func is not None else None
    inner = getattr(py_func, "__globals__", {}).get("jitable_func")
    if key is None or inner is None:
        raise _Unsupported("the graph function has no PyTensor cache key or no wrapper as expected")
    return inner, key


def _cached_cfunc(src: str, name: str, signature, env: dict, key: str, compile_src):
    import warnings

    import numba
    import numpy as np

    # The key names the graph, the sizes and this source: PyTensor's cache locator
    # trusts the key alone (it never looks at the source's age).
    sizes = sorted((k, v) for k, v in env.items() if isinstance(v, int))
    digest = hashlib.sha256(f"{key}|{src}|{sizes}".encode()).hexdigest()
    # __name__: a cached function's environment is rebuilt by importing its module
    py_func = compile_src(src, name, global_env=dict(env, np=np, carray=numba.carray, __name__=__name__),
                          cache_key=f"ipsim-nutpie-{digest}")
    with warnings.catch_warnings():
        # as nutpie does: should numba decline to cache, the fit still runs (a test
        # checks that it does cache, so a silent miss is noticed there)
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(signature, cache=True)(py_func)


def _compile_cached(model):
    ncp, cache_key_of, compile_src = _internals()
    initial = _initial_point_fn(model)
    n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_fn, shape_info = ncp._make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=initial)
    if logp_fn_pt.get_shared() or expand_fn_pt.get_shared():
        # nutpie passes shared variables through user_data; ipsim's models have none
        raise _Unsupported("the model has shared variables")
    logp_graph, logp_key = _graph_function(logp_fn_pt, cache_key_of)
    expand_graph, expand_key = _graph_function(expand_fn_pt, cache_key_of)
    logp_sig, expand_sig = _signatures()
    logp = _cached_cfunc(_LOGP_SRC, "ipsim_nutpie_logp", logp_sig,
                         dict(graph_fn=logp_graph, N_DIM=int(n_dim)), logp_key, compile_src)
    expand = _cached_cfunc(_EXPAND_SRC, "ipsim_nutpie_expand", expand_sig,
                           dict(graph_fn=expand_graph, N_DIM=int(n_dim), N_EXPANDED=int(n_expanded)),
                           expand_key, compile_src)
    user_data = ncp.make_user_data({}, {})
    dims, coords = ncp._prepare_dims_and_coords(model, shape_info)
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp, compiled_expand_func=expand, initial_point_func=initial_point_fn,
        shared_data={}, user_data=user_data, n_expanded=n_expanded, shape_info=shape_info,
        logp_func=logp_fn_pt, expand_func=expand_fn_pt)
