"""A process-wide setting shared by blocks that may overlap.

Compiling changes settings that belong to the whole process — numba's LLVM level,
:data:`tempfile.tempdir`, PyTensor's translation function — and two compiles may run at
once (a fit and the reference class's in one process, or threads).  The first block to
enter applies the setting; the last to leave puts the old one back; blocks in between
share it.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager


class ProcessWide:
    """``apply(*args)`` runs when the first block enters and returns what
    ``restore(saved)`` needs when the last block leaves (also after an exception).  A
    block entering while others hold the setting gets theirs, whatever its arguments."""

    def __init__(self, apply, restore):
        self._apply, self._restore = apply, restore
        self._lock = threading.Lock()
        self._users = 0
        self._saved = None

    @contextmanager
    def held(self, *args):
        with self._lock:
            if self._users == 0:
                self._saved = self._apply(*args)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._restore(self._saved)
                    self._saved = None
