r"""A new model compiled on both of the machine's cores.

Why (measured on the shipped model, empty caches, 2026-12-05, docs/speed-log.md): a
cold compile took ≈ 53 s on one core.  About 30 s of it is numba compiling the graph's
≈ 130 parts (one function per distinct Op and argument types, each cached on disk by
PyTensor), about 20 s the log density's entry point (which links those parts and
optimises the whole again) and 3–4 s the expansion's entry point.  The second core sat
idle for most of that minute: the reference class's background fit is done within
about 20 s.

How, in two steps:

1. *Parts.*  After the rewrites the log density's graph is cut in two along its own
   order.  This process compiles the first half's functions and the expansion graph's
   while a helper process compiles the second half's; the helper's cache entries are
   then merged into the shared cache.  A part is only *typed* (numba's type inference
   compiles every function it calls, which is the point), never lowered itself.
2. *Entry points.*  This process compiles the log density's entry point, taking every
   part from disk, while the helper compiles the expansion's, against a copy of the
   shared cache (hard links); that entry is merged when both are done, and loaded.

Measured (lab, the shipped model, empty caches): 39.6 s against 52.5 s.

What it does not change: what is compiled.  A part's function is keyed by its Op and
its argument types, and the merged entries are those the whole graph asks for: the
helper types each variable it reads from the other half as the whole graph would
(:func:`_layout`, checked against numba's own inference by a test); were it wrong,
the whole graph would only compile that part itself.  The arithmetic is the graph's,
unchanged (a test compares log density, gradient and draws with a compile without the
helper, bit for bit).

Why a private cache for the helper: numba updates a cache index by reading it,
adding an entry and writing it back, and picks the data file's name from what it
read; two processes compiling one Op with different argument types at the same moment
could leave an index pointing at the other's code.  So the helper writes into a cache
of its own, and its entries join the shared cache only where the shared cache has
none, each file created only if absent (:func:`merge_cache`).

A helper that fails, or is not wanted (one core; a Dask worker, whose cores the
cluster already fills; ``IPSIM_COMPILE_HELPER=0``), costs nothing but its own time:
the whole graph compiles what is missing, as it always did.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import scratch

#: Share of the log density's nodes (in the graph's order) this process types, with the
#: expansion graph; the helper types the rest, starting ≈ 1.5 s later (its imports).
#: Set by measurement (docs/speed-log.md: the two sides then finish within ≈ 1 s of each
#: other), not by statistics: it only moves where the same functions are compiled.
MAIN_SHARE = 0.5

#: Fewer nodes than this and a helper costs more than it saves.
MIN_NODES = 60


def wanted() -> bool:
    """Whether a compile in this process may start a helper."""
    if os.environ.get("IPSIM_COMPILE_HELPER", "1") == "0" or _usable_cores() < 2:
        return False
    try:
        from distributed import get_worker

        get_worker()
        return False                     # inside a Dask worker: the cluster fills the cores
    except Exception:
        return True


def _usable_cores() -> int:
    """The cores this process may run on (a container or ``taskset`` may allow fewer
    than the machine has: a helper on the same core would only slow the compile)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _layout(var) -> str:
    """The memory layout numba infers for intermediate ``var`` in the whole graph's
    function (checked against numba's own inference, every intermediate of the shipped
    model's graphs and of a test's): a DimShuffle makes a view of any layout ("A"),
    a Subtensor too unless it picks one element (a fresh 0-d array); an Op that returns
    one of its inputs, written in place or viewed (an in-place Elemwise, SpecifyShape),
    returns that input's layout; any other Op a fresh C-ordered array."""
    from pytensor.tensor.elemwise import DimShuffle
    from pytensor.tensor.subtensor import Subtensor

    while var.owner is not None:
        op = var.owner.op
        if isinstance(op, DimShuffle):
            return "A"
        if isinstance(op, Subtensor):
            return "C" if var.type.ndim == 0 else "A"
        out = var.owner.outputs.index(var)
        source = getattr(op, "destroy_map", {}).get(out) or getattr(op, "view_map", {}).get(out)
        if not source:
            return "C"
        var = var.owner.inputs[source[0]]
    return "C"


def _numba_type(var, graph_inputs: dict, values: list):
    """The numba type the whole graph's function gives ``var``: a graph input as the entry
    point builds it (a C-ordered array, or a number for a lifted scalar), an
    intermediate by :func:`_layout` — were that wrong, the whole graph would only compile
    that part itself."""
    import numba
    from pytensor.link.numba.dispatch.basic import get_numba_type

    from .compiled import LiftedScalar

    if var in graph_inputs:
        i = graph_inputs[var]
        if i == 0:
            return numba.types.Array(numba.float64, 1, "C")
        a = values[i - 1]
        if isinstance(a, LiftedScalar):
            return numba.from_dtype(a.dtype)
        return numba.types.Array(numba.from_dtype(a.dtype), a.ndim, "C")
    return get_numba_type(var.type, layout=_layout(var))


def part(fgraph, values: list, nodes: list):
    """(a graph of ``nodes`` alone, the numba types of its inputs): its inputs are the
    variables the nodes read and do not make; every output kept (nothing pruned)."""
    from pytensor.graph.basic import Constant
    from pytensor.graph.fg import FunctionGraph

    made = {out for node in nodes for out in node.outputs}
    inputs = []
    for node in nodes:
        for var in node.inputs:
            if var not in made and not isinstance(var, Constant) and var not in inputs:
                inputs.append(var)
    graph_inputs = {var: i for i, var in enumerate(fgraph.inputs)}
    types = tuple(_numba_type(v, graph_inputs, values) for v in inputs)
    return FunctionGraph(inputs, [out for node in nodes for out in node.outputs], clone=True), types


def split(logp_graph, logp_values, expand_graph, expand_values, share: float | None = None):
    """(this process's parts, the helper's parts) of the two lifted graphs: the first
    ``share`` of the log density's nodes and the expansion graph here (its functions
    are mostly the log density's first part's, then cached), the rest in the helper,
    which starts later by its imports."""
    nodes = logp_graph.toposort()
    k = int(round(len(nodes) * (MAIN_SHARE if share is None else share)))
    mine = [part(logp_graph, logp_values, nodes[:k]), part(expand_graph, expand_values, expand_graph.toposort())]
    theirs = [part(logp_graph, logp_values, nodes[k:])]
    return mine, theirs


def type_part(graph, types) -> None:
    """Compile every function ``graph``'s numba function calls, with the arguments
    ``types``, into PyTensor's numba cache: numba's type inference of the graph's
    function compiles each callee it meets; the graph's function itself is not lowered."""
    from numba.core import registry, typed_passes
    from numba.core.compiler import run_frontend
    from pytensor.link.numba.dispatch.basic import numba_funcify

    fn = numba_funcify(graph, fgraph_name="ipsim_part")
    interp = run_frontend(fn.py_func)
    typing, target = registry.cpu_target.typing_context, registry.cpu_target.target_context
    typing.refresh()
    target.refresh()
    typed_passes.type_inference_stage(typing, target, interp, types, None)


def merge_cache(private: Path, shared: Path) -> int:
    """Add the helper's cache entries to the shared cache where it has none; returns how
    many were added.  Per entry (an index ``.nbi`` and its data files ``.N.nbc``): skipped
    if the shared cache has that index; else each data file, then the index, is created
    only if absent (``os.link`` fails on an existing name), so an entry another process
    writes meanwhile is never overwritten and no index ever names data it did not write —
    at worst the helper's entry is dropped and compiled again."""
    added = 0
    if not private.is_dir():
        return 0
    shared.mkdir(parents=True, exist_ok=True)
    data_files = {}                                     # stem → its data files
    for f in private.iterdir():
        match = re.fullmatch(r"(.+)\.\d+\.nbc", f.name)
        if match:
            data_files.setdefault(match.group(1), []).append(f)
    for index in sorted(private.glob("*.nbi")):
        if (shared / index.name).exists():
            continue
        files = [*sorted(data_files.get(index.name[:-len(".nbi")], [])), index]
        try:
            for src in files:
                _create(src, shared / src.name)
        except OSError:
            continue            # a name taken meanwhile (FileExistsError), or no room
        added += 1
    return added


def _create(src: Path, dest: Path) -> None:
    """``dest`` as a copy of ``src``, created only if absent (raises FileExistsError)."""
    try:
        os.link(src, dest)
    except FileExistsError:
        raise
    except OSError:
        # no hard links here (another file system): a copy under a temporary name,
        # then linked to the final name, which fails if that exists
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        try:
            os.link(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)


def _remove_stale(base: Path, age: float = 86400.0) -> None:
    """Remove helper directories a killed run left behind (older than a day)."""
    import time

    for d in base.glob("ipsim-compile-*"):
        try:
            if time.time() - d.stat().st_mtime > age:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def _mirror(shared: Path, cache: Path) -> None:
    """``cache`` holding every cache file of ``shared`` (hard links where the file
    system allows).  numba never writes a cache file in place (it writes a new file
    and renames it over the old), so what the helper writes in ``cache`` never
    reaches ``shared`` but through :func:`merge_cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    if shared.is_dir():
        for f in shared.iterdir():
            if f.suffix in (".nbi", ".nbc"):
                try:
                    _create(f, cache / f.name)
                except FileExistsError:
                    pass


class Helper:
    """The helper process, in two steps: its share of the parts (:func:`split`), merged
    when done; then, on a copy of the shared cache, the expansion's entry point, merged
    when this process has compiled the log density's (:meth:`finish`)."""

    def __init__(self):
        import pytensor

        from .compiled import pytensor_numba_cache

        base = Path(pytensor.config.base_compiledir)
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base)
        # beside the shared cache: on the same file system, so its files can be linked
        self.dir = Path(tempfile.mkdtemp(prefix="ipsim-compile-", dir=base))
        env = dict(os.environ)
        # its own PyTensor cache (see the module docstring); every other setting as here
        env["PYTENSOR_FLAGS"] = ",".join(f for f in (env.get("PYTENSOR_FLAGS", ""),
                                                     f"base_compiledir={self.dir}") if f)
        # its throw-away source files into this process's scratch directory, which goes
        # when this process ends (models.scratch)
        env["TMPDIR"] = scratch.directory()
        self.cache = pytensor_numba_cache(self.dir)
        self.shared = pytensor_numba_cache(base)
        self.merged = 0
        # the helper's cache starts as the shared one (linked, not copied): parts compiled
        # before, by any model, are loaded there, not compiled again
        _mirror(self.shared, self.cache)
        self.proc = subprocess.Popen([sys.executable, "-m", "models.compile_helper"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=str(Path(__file__).resolve().parents[1]))

    def _send(self, job) -> bool:
        try:
            pickle.dump(job, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            return True
        except Exception:
            self.stop()
            return False

    def hand_parts(self, parts) -> bool:
        return self._send(parts)

    def parts_done(self) -> bool:
        """Wait until the helper has compiled its parts; merge them."""
        try:
            if self.proc.stdout.read(1) != b"1":
                self.stop()
                return False
        except Exception:
            self.stop()
            return False
        self.merged += merge_cache(self.cache, self.shared)
        return True

    def hand_entry(self, fg, n_data: int, src: str, n_words: int, key: str) -> None:
        """The expansion's entry point to compile, against a copy of the shared cache
        (every part there now, linked, not copied): the helper is idle meanwhile."""
        if self.proc.poll() is not None:
            return
        try:
            shutil.rmtree(self.cache)
            _mirror(self.shared, self.cache)
        except OSError:
            self.stop()
            return
        if self._send((fg, n_data, src, n_words, key)):
            self.proc.stdin.close()

    def finish(self, timeout: float = 600.0) -> int:
        """Wait for the helper to exit; merge what it compiled; the entries it added."""
        try:
            if self.proc.stdin and not self.proc.stdin.closed:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
            if self.proc.returncode == 0:
                self.merged += merge_cache(self.cache, self.shared)
        except Exception:
            pass
        finally:
            self.stop()
        return self.merged

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream and not stream.closed:
                    stream.close()
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def compile_parts(logp_graph, logp_values, expand_graph, expand_values) -> Helper | None:
    """Compile the two lifted graphs' parts into PyTensor's numba cache, this process
    and a helper sharing the work (module docstring); returns the helper, its parts
    merged, ready for :meth:`Helper.hand_entry` — or None where no helper was wanted or
    it failed (the whole graph then compiles what is missing).  Call it inside the
    fit's compile settings (fast-math off, its LLVM level): this process's part
    compiles under them."""
    if not wanted() or len(logp_graph.apply_nodes) < MIN_NODES:
        return None
    helper = Helper()
    try:
        mine, theirs = split(logp_graph, logp_values, expand_graph, expand_values)
        if not helper.hand_parts(theirs):
            return None
        try:
            for graph, types in mine:
                type_part(graph, types)
        except Exception:
            pass        # the whole graph compiles what is missing, and raises what is wrong
        if not helper.parts_done():
            return None
        return helper
    except BaseException:
        helper.stop()
        raise


def _serve() -> int:
    """The helper process's body: read its parts and type each (compiling their
    functions into this process's own cache), say so, then read the expansion's entry
    point and compile it (models.compiled.compile_expand_entry), exit."""
    import warnings

    # the pipe to the fit carries the one "parts done" byte: anything a library prints
    # goes where stderr goes (nowhere) instead
    signal = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    warnings.simplefilter("ignore")
    from .compiled import compile_expand_entry, compile_settings

    with compile_settings():
        for graph, types in pickle.load(sys.stdin.buffer):
            type_part(graph, types)
        signal.write(b"1")
        signal.flush()
        try:
            entry = pickle.load(sys.stdin.buffer)
        except EOFError:
            return 0
        compile_expand_entry(*entry)
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
