"""Where the compile's throw-away files go, and that they go away.

PyTensor writes the Python source of every function it generates for numba to a file of
its own in the system's temporary directory (``pytensor.link.utils.compile_function_src``,
``NamedTemporaryFile(delete=False)``) and never removes it: measured on 2026-12-05, a warm
``ipsim run --plan wuxi-2024`` left 188 such files behind and a cold first run and a
back-test about 3,200, so a planner's temporary directory (and a CI machine's) grows by
thousands of files a day.  Nothing reads them back: PyTensor's numba cache finds a compiled
function by the key PyTensor gives it, not by its file (``pytensor.link.numba.cache``).

While :func:`contained` is active, :mod:`tempfile` creates files in one directory of this
process, ``ipsim-scratch-<pid>-…``, which is removed when the process ends.  A process
that ends without running its exit handlers (killed, or a Dask worker its nanny stops)
leaves its directory behind; the next process to open one removes every such directory
whose process no longer runs and which has not changed for an hour.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .process_wide import ProcessWide

PREFIX = "ipsim-scratch-"
_lock = threading.Lock()
_dir: str | None = None


def _ended(pid: int, path: Path) -> bool:
    """Whether the process that made ``path`` has ended.

    Also on POSIX the directory must not have changed for an hour: a process in another
    PID namespace (a container sharing this temporary directory) looks ended from here,
    and its directory must not vanish in the middle of a compile."""
    age = time.time() - path.stat().st_mtime
    if os.name != "posix":
        # Windows's os.kill(pid, 0) terminates the process instead of probing it: there a
        # directory counts as left behind when it is a day old
        return age > 86400.0
    if age < 3600.0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:          # exists, another user's: not ours to judge
        return False
    return False


def sweep(base: str | None = None) -> list[Path]:
    """Remove the scratch directories of processes that no longer run; return them."""
    removed = []
    for d in Path(base or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            pid = int(d.name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        try:
            if pid != os.getpid() and _ended(pid, d):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
        except OSError:      # removed meanwhile by another process's sweep
            pass
    return removed


def directory() -> str:
    """This process's scratch directory (made on first use, removed at exit)."""
    global _dir
    with _lock:
        if _dir is None or not os.path.isdir(_dir):
            base = tempfile.gettempdir()
            sweep(base)
            _dir = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base)
            atexit.register(shutil.rmtree, _dir, True)
        return _dir


def _point_tempfile_here():
    saved, tempfile.tempdir = tempfile.tempdir, directory()
    return saved


def _put_tempfile(saved) -> None:
    tempfile.tempdir = saved


_tempdir = ProcessWide(_point_tempfile_here, _put_tempfile)


def contained():
    """Within the block, :mod:`tempfile` creates its files in :func:`directory`.

    Why :data:`tempfile.tempdir` and not a wrapper around PyTensor's function: PyTensor's
    modules import ``compile_function_src`` by name, so only the place it asks for a
    directory is shared.  The setting is process-wide (blocks in several threads share
    it); the previous one is restored when the last block ends."""
    return _tempdir.held()
