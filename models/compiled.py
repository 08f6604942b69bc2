r"""Compiling a PyMC model for nutpie (PyTensor's numba backend), with the sampler's C
entry points kept in PyTensor's numba disk cache.

What nutpie needs from a model is two C functions: the log density with its gradient,
:math:`x \mapsto (\log p(x), \nabla \log p(x))`, and the "expand" function that turns
an unconstrained draw into every named variable.  ``nutpie.compile_pymc_model`` builds
each as a ``numba.cfunc`` around PyTensor's compiled graph function.

Why this module exists (measured on the shipped model, docs/speed-log.md): numba links a
callee's LLVM code into its caller and optimises and machine-compiles the whole again,
once per layer.  Between the graph's own function and nutpie's C function PyTensor puts
one more layer (its "final" function with a Python entry point, which the sampler never
calls), and nutpie's C function cannot be cached on disk (it closes over run-time
objects), so every fit paid two full passes over the whole graph after the graph's own:
about 3 s each on the shipped model, whether or not the graph had been compiled before.

Here the C functions are written as plain module-level source that calls the graph's
own function directly, registered under the graph's PyTensor cache key: a new graph
(a first run, a new series, each shard of a province) pays one pass fewer, and a graph
compiled before loads its C functions from disk instead of compiling them.

The panel's numbers and sizes are not compiled in (:func:`_lift_data`).  PyTensor folds
the data into constants while it rewrites the graph, then compiles those constants into
the code and keys its cache on their values — so every corrected or added reading made
another graph to compile (≈ 19 s on the shipped model), and so did every new series
(≈ 24 s: the sizes and slice bounds move).  After the rewrites the array and integer
constants become arguments of the graph's function, the C functions read them and
their sizes through nutpie's ``user_data`` pointer, and the cache key names the
graph's structure only: a planner's edited figures, new series (measured: a new
place for a code the panel has, and new codes of three kinds) or further lower bounds,
or another province shard of the same structure, load the compiled model from disk
(≈ 5 s).  A panel whose structure differs compiles its graph anew (≈ 28 s with the
parts cached): one that gains a kind of term it had none of (a first lower bound), or
one where PyTensor's rewrites, which run while the numbers are still constants, meet a
coincidence of values — an array whose entries are all equal, or two equal arrays,
which they merge into one (the shipped data as of 2023: no bound, and two equal
arrays).  The rewrites ran with the constants, so the compiled arithmetic is the same.

A graph not compiled before is compiled on both cores: its parts half here, half in a
helper process, then the log density's entry point here while the helper compiles the
expansion's (:mod:`models.compile_helper`; ≈ 45 s instead of ≈ 53 s on the shipped
model, cold).

Either way the arithmetic is the graph's, unchanged (no fast-math): the same seed
gives the same draws (tests/test_models.py; the quick start's outputs are
byte-identical to those of the code that compiled the numbers in).

The C functions keep nutpie's contract exactly (return codes 0 ok, -1 wrong size,
1 or -2 an exception, 3 a non-finite gradient, 4 a non-finite log density).  Where the
installed nutpie or PyTensor is not laid out as this module expects (another version),
the graph has no cache key, or its numbers cannot be made arguments, the model is
compiled by ``nutpie.compile_pymc_model`` as before; a test checks that the installed
versions take the cached path.

numba trusts its disk cache: a truncated or unreadable file (a full disk, a killed run)
made the compile fail in a pickle traceback.  When a compile fails, the cache files that
cannot be read back are removed (:func:`discard_damaged_entries`) with one ``warning:``
line and the model compiled again; a failure with an intact cache is raised unchanged.
"""
from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager, nullcontext
from functools import wraps

import numpy as np

from . import scratch
from .process_wide import ProcessWide

# nutpie's own C functions (nutpie/compile_pymc.py, _make_c_logp_func and
# _make_c_expand_func), written as source so that numba can cache them: the only
# globals are the graph function, numpy, numba.carray, nutpie's address-to-pointer
# intrinsic and the length of ``user_data``, all fixed by the cache key below.  The
# panel's numbers and sizes are not among them: they arrive at run time through
# nutpie's ``user_data`` pointer (the numbers of parameters and of expanded values,
# the data arrays' addresses and their sizes), so one compiled function serves every
# panel of the same structure.
_LOGP_SRC = '''
def ipsim_nutpie_logp(dim, x_, out_, logp_, user_data_):
    data = carray(user_data_, (N_WORDS,), np.uintp)
    n_dim = np.intp(data[0])
    if dim != n_dim:
        return -1
    x = carray(x_, (n_dim,))
    out = carray(out_, (n_dim,))
    logp = carray(logp_, ())
{unpack}
    data_arrays = {args}
    try:
        logp_val, grad = graph_fn(x, data_arrays)
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
    data = carray(user_data_, (N_WORDS,), np.uintp)
    n_dim = np.intp(data[0])
    n_expanded = np.intp(data[1])
    if dim != n_dim:
        return -1
    if expanded != n_expanded:
        return -1
    x = carray(x_, (n_dim,))
    out = carray(out_, (n_expanded,))
{unpack}
    data_arrays = {args}
    try:
        (values,) = graph_fn(x, data_arrays)
        out[...] = values
    except Exception:
        return -2
    return 0
'''

#: user_data: the number of free parameters, of expanded values, then each data array's
#: address, then the sizes of their axes — what one panel's numbers and sizes are; the
#: entry points' source names only how many there are, their ranks and their dtypes
_HEAD = 2


def _nested(names: list) -> str:
    """``names`` as a tuple of tuples of at most 16, at most 29 of them — e.g.
    ``((d0, d1, ), (d2, ), )`` — as the entry point builds the data arrays' argument and
    the graph function unpacks it: one text for both sides, so they always agree.  A
    tuple display longer than 30 items compiles (CPython 3.11) to an opcode numba does
    not support (LIST_TO_TUPLE)."""
    if len(names) > 16 * 29:
        raise _Unsupported(f"{len(names)} data arrays (at most {16 * 29})")
    return "(" + "".join("(" + "".join(f"{n}, " for n in names[i:i + 16]) + "), "
                         for i in range(0, len(names), 16)) + ")"


def _numpy_name(dtype) -> str:
    """The name of ``dtype``'s scalar type in numpy 1.26 and 2.x alike."""
    return "bool_" if dtype == np.bool_ else np.dtype(dtype).name


class LiftedScalar(np.ndarray):
    """A lifted integer scalar of the graph (PyTensor's ``ScalarType``, e.g. a slice
    bound): kept as one element, read by the entry points as a number, not an array."""


def _layout(arrays: list) -> tuple[list, list, int]:
    """(address slot, size slots of each array, words in ``user_data``): the addresses
    follow the two counts, the sizes follow the addresses, in the arrays' order."""
    shape_at, k = [], _HEAD + len(arrays)
    for a in arrays:
        ndim = 0 if isinstance(a, LiftedScalar) else a.ndim
        shape_at.append(list(range(k, k + ndim)))
        k += ndim
    return list(range(_HEAD, _HEAD + len(arrays))), shape_at, k


def user_data(arrays: list, n_dim: int, n_expanded: int) -> np.ndarray:
    """The ``user_data`` words nutpie hands both entry points (:func:`_layout`)."""
    address_at, shape_at, words = _layout(arrays)
    out = np.zeros(words, dtype=np.uintp)
    out[0], out[1] = n_dim, n_expanded
    for a, at, sizes in zip(arrays, address_at, shape_at):
        out[at] = a.ctypes.data
        for slot, size in zip(sizes, () if isinstance(a, LiftedScalar) else a.shape):
            out[slot] = size
    return out


def _with_data(template: str, arrays: list, part: range) -> str:
    """The entry point's source reading the data arrays ``arrays[part]`` (of all the
    arrays in ``user_data``, :func:`_layout`): ranks and dtypes written out, sizes read
    at run time, so that the source — part of the cache key — is the same for every
    panel of one structure, whatever its numbers of series and readings.  All of it
    before the ``try`` (none of it can raise): numba's analysis of a ``try`` block grows
    steeply with the variables in it (12 arrays unpacked inside it took 37 s to compile,
    outside 3 s; the arguments of 56 arrays built inside it, 5 s more)."""
    address_at, shape_at, _ = _layout(arrays)
    lines = []
    for i, j in enumerate(part):
        a, at, sizes = arrays[j], address_at[j], shape_at[j]
        dtype = f"np.{_numpy_name(a.dtype)}"
        if isinstance(a, LiftedScalar):
            lines.append(f"    d{i} = carray(pointer_at(data[{at}]), (1,), {dtype})[0]")
        else:
            shape = "(" + "".join(f"np.intp(data[{slot}]), " for slot in sizes) + ")"
            lines.append(f"    d{i} = carray(pointer_at(data[{at}]), {shape}, {dtype})")
    # the arrays go to the graph function as one tuple of tuples (_taking_data_tuple)
    return template.format(unpack="\n".join(lines), args=_nested([f"d{i}" for i in range(len(part))]))


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


def compile_for_nutpie(model, helper: bool = True):
    """The model compiled by PyTensor's numba backend, for nutpie — without fast-math.

    With fast-math (PyTensor's default) LLVM may reorder floating-point sums, and
    whether it does depends on what got inlined — which differs between a fresh compile
    and one assembled from the disk cache.  The draws then differed in the last bits,
    and after a few hundred NUTS steps entirely: the same seed gave two posteriors
    (a test fits twice, with a cold and with a warm cache).  IEEE arithmetic keeps the
    seed's promise."""
    import nutpie

    def compile_once():
        # scratch.contained: PyTensor's generated source files go where they are removed
        with compile_settings(), scratch.contained(), one_dispatcher_per_key():
            try:
                return _compile_cached(model, helper)
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


#: LLVM's optimisation level for the model's compile (numba's default is 3).  Measured on
#: the shipped model, empty caches, back to back (2026-12-05, docs/speed-log.md): compiling
#: 53.5 s at 1 against 64.8 s at 3; sampling at product settings 35.6–36.2 s against
#: 33.7–36.6 s (three runs each, interleaved: within the machine's noise); the same draws
#: bit for bit.  Why the same: without fast-math LLVM may not reorder floating-point
#: arithmetic at any level, so the levels differ in how hard they search for faster code,
#: not in what it computes (a test compiles at both).  Stop 28 measured this too and did
#: not keep it (sampling 7 % slower then, ≈ 4 s net); the filter kernels have changed since.
LLVM_OPT = 1


def _set_opt(level: int):
    from numba.core import config

    saved, config.OPT = config.OPT, config._OptLevel(level)
    return saved


def _put_opt(saved) -> None:
    from numba.core import config

    config.OPT = saved


_opt = ProcessWide(_set_opt, _put_opt)


def llvm_optimisation(level: int):
    """Within the block, numba's LLVM passes run at ``level`` — unless the user chose a
    level with ``NUMBA_OPT``, which stands.  numba reads its level each time it builds a
    pass manager (``numba.core.config.OPT``), so this sets it and puts the old value back
    when the last concurrent user leaves (a fit and the reference class may compile at
    once; numba compiles one function at a time under its own lock)."""
    import os

    return nullcontext() if "NUMBA_OPT" in os.environ else _opt.held(level)


@contextmanager
def compile_settings():
    """What every compile of ipsim's models runs under, the fit's and the compile
    helper's alike (models.compile_helper): fast-math off (compile_for_nutpie) and
    LLVM level :data:`LLVM_OPT`.  The cache keys do not name these settings, so a part
    compiled under others would be loaded as if it were the same."""
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False), llvm_optimisation(LLVM_OPT):
        yield


#: one numba dispatcher per PyTensor cache key, fast-math setting and node types, while a
#: compile runs
_dispatchers: dict = {}
_memo_lock = threading.Lock()


def _memoise_funcify():
    from pytensor.link.numba.dispatch import basic

    real = basic.numba_funcify_ensure_cache
    basic.numba_funcify_ensure_cache = _memoised(real)
    return real


def _unmemoise_funcify(real) -> None:
    from pytensor.link.numba.dispatch import basic

    basic.numba_funcify_ensure_cache = real
    # held no longer than the compile: a Dask worker fits shard after shard, whose
    # static shapes differ, and would keep every shard's parts alive
    _dispatchers.clear()


_memo = ProcessWide(_memoise_funcify, _unmemoise_funcify)


def one_dispatcher_per_key():
    """Within the block, PyTensor's numba translation returns the same dispatcher for
    every node with the same cache key and types.

    Why: PyTensor makes a new numba dispatcher each time it translates a graph, and a
    new dispatcher knows nothing compiled — it loads every part from the disk cache
    again.  A compile translates the log density's graph once whole and once in the
    piece this process types for the compile helper, so this process's half of the parts
    was loaded twice.  Sound by PyTensor's own contract: its disk cache returns one
    compiled function for one key and numba signature, whichever node compiled it first;
    the memo's key is finer (see :func:`_memoised`)."""
    return _memo.held()


def _memoised(real):
    import pytensor

    @wraps(real)
    def funcify(op, *args, **kwargs):
        func, key = real(op, *args, **kwargs)
        node = kwargs.get("node")
        if key is None or node is None:
            return func, key
        # PyTensor's key names a function only together with numba's signature (the
        # disk cache is keyed by both): one scalar ``add`` Op has one key, yet its
        # function for three arguments is not its function for two.  The node's input
        # and output types (dtype, rank, broadcast pattern) fix the signature but for
        # the arrays' layouts, which one dispatcher handles as numba's cache does.
        types = tuple(v.type for v in node.inputs), tuple(v.type for v in node.outputs)
        with _memo_lock:
            func = _dispatchers.setdefault((key, bool(pytensor.config.numba__fastmath), types), func)
        return func, key

    return funcify


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


def _compile_parts_in_parallel(logp_fg, logp_data, expand_fg, expand_data):
    """A new graph's parts compiled on two cores (:mod:`models.compile_helper`); the
    helper, still running, or None."""
    from . import compile_helper

    return compile_helper.compile_parts(logp_fg, logp_data, expand_fg, expand_data)


def _internals():
    try:
        import nutpie.compile_pymc as ncp
        from pytensor.link.numba.cache import compile_numba_function_src
        from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    except ImportError as e:
        raise _Unsupported(str(e)) from e
    needed = ("_make_functions", "_prepare_dims_and_coords", "CompiledPyMCModel", "address_as_void_pointer")
    if not all(hasattr(ncp, n) for n in needed):
        raise _Unsupported("nutpie.compile_pymc lacks " + ", ".join(n for n in needed if not hasattr(ncp, n)))
    return ncp, numba_funcify_and_cache_key, compile_numba_function_src


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


def _lifted(var) -> bool:
    """Whether constant ``var`` becomes an input: an array (the panel's numbers and
    index arrays), or an integer scalar (sizes, slice bounds, positions — what changes
    when a panel gains or loses a series).  Float scalars stay: they are the model's own
    constants, or fused into its elementwise loops."""
    ndim = getattr(var.type, "ndim", 0)
    return ndim >= 1 or np.dtype(getattr(var.type, "dtype", "float64")).kind in "iu"


def _lift_data(fgraph):
    """``fgraph`` with its array and integer constants as extra, trailing inputs, and
    their values (an integer of PyTensor's ``ScalarType`` as a :class:`LiftedScalar`).

    PyTensor compiles a graph's constants into its code and keys its disk cache on
    their values, so every change to the panel's numbers (a planner's corrected or
    added readings) made a new graph to compile (≈ 19 s on the shipped model), and so
    did every change of its sizes (≈ 24 s: a planner's new series moves every size and
    slice bound after it).  Made inputs, the compiled graph depends on the panel's
    structure only — which Ops, wired how, with which ranks and dtypes.  New series keep
    it (measured: a new place for a code the panel has, new codes of three kinds, more
    lower bounds); a kind of term the panel had none of changes it, and so do arrays
    that the rewrites, run with the constants, merged or folded because their values
    happened to coincide (the shipped data as of 2023 compile anew).  An integer's dtype
    is PyTensor's smallest that holds it (uint8 up to 255), so a size crossing such a
    bound changes it too.
    Any constant an in-place operation would write to stays (none today: PyTensor
    never writes into a constant, and the rewrites ran before)."""
    from pytensor.graph.basic import Constant
    from pytensor.scalar import ScalarType

    fg = fgraph.clone()
    written = {id(node.inputs[i]) for node in fg.apply_nodes
               for inputs in getattr(node.op, "destroy_map", {}).values() for i in inputs}
    # An array constant becomes one input wherever it is used.  An integer becomes one
    # input per use: PyTensor merges equal constants, so two sizes that happen to be
    # equal in one panel (three bounds and three codes) are one constant there and two
    # in the next — another graph to compile for a coincidence of values.
    lifts = {}                                      # key → (constant, [(node, position)])
    for node in fg.toposort():                      # any order: the inputs are numbered below
        for i, var in enumerate(node.inputs):
            if isinstance(var, Constant) and _lifted(var) and id(var) not in written:
                key = (id(node), i) if _per_use(var) else id(var)
                lifts.setdefault(key, (var, []))[1].append((node, i))
    n_own = len(fg.inputs)
    lifted = {}
    for const, uses in lifts.values():
        var = const.type()
        fg.add_input(var)
        for node, i in uses:
            fg.change_node_input(node, i, var, import_missing=True)
        value = np.asarray(const.data, order="C")          # 0-d stays 0-d (ascontiguousarray makes it 1-d)
        if isinstance(const.type, ScalarType):
            value = value.reshape(1).view(LiftedScalar)
        value.flags.writeable = False
        lifted[var] = value
    # Number the new inputs by their first use in the lifted graph's own order, which
    # PyTensor's cache key follows: the order found above, before lifting, can differ
    # between two panels of one structure (merged equal constants), and the key with it.
    first_use = {}
    for node in fg.toposort():
        for var in node.inputs:
            if var in lifted:
                first_use.setdefault(var, len(first_use))
    fg.inputs[n_own:] = sorted(fg.inputs[n_own:], key=first_use.__getitem__)
    return fg, [lifted[var] for var in fg.inputs[n_own:]]


def _per_use(var) -> bool:
    """Whether lifted constant ``var`` becomes one input per use: an integer scalar (a
    size, a position).  Not arrays: an index array equal to another by coincidence
    still merges with it (seen on a 9-series toy panel), but lifting every array per
    use took 405 words of ``user_data`` instead of 266 and made the shipped model's
    cold compile 24 s slower (77.7 s against 53.9 s, 2026-12-05)."""
    return getattr(var.type, "ndim", 0) == 0


def _taking_data_tuple(py_func, n_data: int, compile_src):
    """PyTensor's Python source of a lifted graph's function (``x`` and ``n_data``
    arrays as arguments), rewritten to take ``(x, data)`` with the arrays nested in
    ``data`` as the entry points build it, and compiled as PyTensor compiles it.

    Why: the entry point must call the graph inside a ``try`` (nutpie's contract:
    an exception returns 1), and a call with dozens of arguments there took ≈ 3 s
    longer to compile (numba's handling of a ``try`` block grows with the temporaries
    in it; a helper function in between is a further layer numba optimises again, and
    cost more).  Unpacking the tuple inside the graph function costs nothing."""
    import re

    from pytensor.link.numba.dispatch.basic import numba_njit

    src = getattr(py_func, "__source__", None)
    head, _, body = (src or "").partition("\n")
    match = re.fullmatch(r"def (\w+)\(([^()]*)\):", head.strip())
    params = [p.strip() for p in match.group(2).split(",")] if match else []
    if len(params) != 1 + n_data or not body.startswith("    "):
        raise _Unsupported("PyTensor's graph function source is not laid out as expected")
    new_src = (f"def {match.group(1)}({params[0]}, ipsim_data_arrays):\n"
               + (f"    {_nested(params[1:])} = ipsim_data_arrays\n" if n_data else "") + body)
    return numba_njit(compile_src(new_src, match.group(1), global_env=dict(py_func.__globals__)))


def _graph_function(pytensor_fn, funcify, compile_src):
    """(the numba function of the graph behind PyTensor function ``pytensor_fn``,
    taking ``(x, data)``; its PyTensor cache key; the data arrays; the lifted graph)."""
    fg, values = _lift_data(pytensor_fn.maker.fgraph)
    graph_fn, key = _jit_lifted(fg, len(values), funcify, compile_src)
    return graph_fn, key, values, fg


def _jit_lifted(fg, n_data: int, funcify, compile_src):
    """(the numba function of lifted graph ``fg``, taking ``(x, data)``; its key)."""
    # PyTensor's key is that of the graph (its nodes, their types and wiring, the
    # constants left), not of this source: it names the ipsim entry points' cache
    # entries, together with their own source, and nothing else is cached under it
    jitted, key = funcify(fg, fgraph_name="ipsim_lifted_graph")
    if key is None:
        raise _Unsupported("the graph function has no PyTensor cache key")
    return _taking_data_tuple(getattr(jitted, "py_func", None), n_data, compile_src), key


def compile_expand_entry(fg, n_data: int, src: str, n_words: int, key: str) -> bool:
    """Compile (into the disk cache) the expansion's entry point of lifted graph ``fg``
    with entry source ``src`` — what :func:`_compile_cached` compiles after the log
    density's, done by the compile helper meanwhile (:mod:`models.compile_helper`).
    Nothing is compiled unless the graph's key here is ``key``, the one the fit
    computed: the entry would be cached under another name and never found."""
    ncp, funcify, compile_src = _internals()
    graph_fn, here = _jit_lifted(fg, n_data, funcify, compile_src)
    if here != key:
        return False
    _cached_cfunc(_entry_source(src, "ipsim_nutpie_expand", _entry_env(ncp, n_words, graph_fn), key, compile_src),
                  _signatures()[1])
    return True


def _entry_env(ncp, n_words: int, graph_fn) -> dict:
    """The entry point's globals besides numpy and carray (its integers are part of its
    cache key, :func:`_entry_source`: the fit and the compile helper build it here
    alike, or the helper's entry would be cached under a name the fit never asks for)."""
    return dict(N_WORDS=n_words, pointer_at=ncp.address_as_void_pointer, graph_fn=graph_fn)


def _entry_source(src: str, name: str, env: dict, key: str, compile_src):
    """The entry point's Python function, registered for PyTensor's numba cache."""
    import numba

    # The key names the graph, the length of user_data and this source: PyTensor's
    # cache locator trusts the key alone (it never looks at the source's age).
    sizes = sorted((k, v) for k, v in env.items() if isinstance(v, int))
    digest = hashlib.sha256(f"{key}|{src}|{sizes}".encode()).hexdigest()
    # __name__: a cached function's environment is rebuilt by importing its module
    return compile_src(src, name, global_env=dict(env, np=np, carray=numba.carray, __name__=__name__),
                       cache_key=f"ipsim-nutpie-{digest}")


def _is_cached(py_func) -> bool:
    """Whether numba's disk cache holds a compiled entry point for ``py_func`` (an
    unreadable index counts as not: the compile then finds out)."""
    try:
        from numba.core.caching import FunctionCache

        return bool(FunctionCache(py_func)._cache_file._load_index())
    except Exception:
        return False


def _cached_cfunc(py_func, signature):
    import warnings

    import numba

    with warnings.catch_warnings():
        # as nutpie does: should numba decline to cache, the fit still runs (a test
        # checks that it does cache, so a silent miss is noticed there)
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(signature, cache=True)(py_func)


def _compile_cached(model, helper: bool = True):
    ncp, funcify, compile_src = _internals()
    initial = _initial_point_fn(model)
    n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_fn, shape_info = ncp._make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=initial)
    if logp_fn_pt.get_shared() or expand_fn_pt.get_shared():
        # nutpie passes shared variables through user_data; ipsim's models have none
        raise _Unsupported("the model has shared variables")
    try:
        logp_graph, logp_key, logp_data, logp_fg = _graph_function(logp_fn_pt, funcify, compile_src)
        expand_graph, expand_key, expand_data, expand_fg = _graph_function(expand_fn_pt, funcify, compile_src)
    except _Unsupported:
        raise
    except Exception as e:
        # An Op whose numba translation needs one of the lifted arrays to be a
        # constant (none in ipsim's models today) fails here, before anything is
        # compiled: such a model is compiled as nutpie compiles it, slower but sound.
        raise _Unsupported(f"the graph's data could not be made arguments: {e!r}") from e
    data = logp_data + expand_data
    # nutpie hands both C functions the same user_data pointer: the two counts, the
    # addresses of the log density's arrays, then the expansion's, then their sizes
    words = user_data(data, int(n_dim), int(n_expanded))
    logp_sig, expand_sig = _signatures()
    expand_text = _with_data(_EXPAND_SRC, data, range(len(logp_data), len(data)))
    logp_src = _entry_source(_with_data(_LOGP_SRC, data, range(len(logp_data))), "ipsim_nutpie_logp",
                             _entry_env(ncp, len(words), logp_graph), logp_key, compile_src)
    expand_src = _entry_source(expand_text, "ipsim_nutpie_expand", _entry_env(ncp, len(words), expand_graph),
                               expand_key, compile_src)
    helping = None
    if helper and not _is_cached(logp_src):
        # a new graph: its parts compiled on two cores, then the expansion's entry point
        # by the helper while this process compiles the log density's (compile_helper)
        helping = _compile_parts_in_parallel(logp_fg, logp_data, expand_fg, expand_data)
        if helping is not None:
            helping.hand_entry(expand_fg, len(expand_data), expand_text, len(words), expand_key)
    from numba.core.errors import TypingError

    try:
        try:
            logp = _cached_cfunc(logp_src, logp_sig)
        except BaseException:
            if helping is not None:
                helping.stop()
            raise
        if helping is not None:
            helping.finish()
        expand = _cached_cfunc(expand_src, expand_sig)
    except TypingError as e:
        # An Op whose numba translation needs one of the lifted numbers as a constant
        # (none in ipsim's models today: a size or an axis read at run time types the
        # same) is refused by numba's typing, before anything is cached: such a model
        # is compiled as nutpie compiles it, slower but sound.
        raise _Unsupported(f"a lifted constant cannot be an argument: {str(e)[:200]}") from e
    dims, coords = ncp._prepare_dims_and_coords(model, shape_info)
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp, compiled_expand_func=expand, initial_point_func=initial_point_fn,
        # the data arrays live as long as the compiled model (nutpie keeps the model
        # alive while it samples); nutpie's with_data does not apply to them
        shared_data={f"ipsim_data_{i}": a for i, a in enumerate(data)}, user_data=words,
        n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_fn_pt, expand_func=expand_fn_pt)
