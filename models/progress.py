"""A fit's progress for the terminal: stage, share done and ETA.

``emit(text, transient)`` receives the lines; the CLI decides how to show them (one
rewritten line on a terminal, one line per stage otherwise, nothing with --quiet).
A ticker thread keeps the elapsed time moving during the compile, which gives no
callback of its own.
"""
from __future__ import annotations

import threading
import time


class FitProgress:
    def __init__(self, label: str, total_draws: int, emit, tick: float = 1.0, shown: bool = True):
        self.label, self.total, self.emit, self.tick = label, max(1, total_draws), emit, tick
        self.shown = shown     # False: nobody reads the lines (a Dask worker, the back-test)
        self.stage = ""
        self.done = 0
        self.t0 = self.t_sample = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def text(self) -> str:
        now = time.monotonic()
        if self.stage.startswith("sampling") and self.done:
            frac = min(1.0, self.done / self.total)
            rate = (now - self.t_sample) / self.done
            eta = rate * max(0, self.total - self.done)
            return f"{self.label}: {self.stage} {100 * frac:.0f} % ETA {eta:.0f} s"
        return f"{self.label}: {self.stage} … {now - self.t0:.0f} s"

    def set_stage(self, stage: str):
        """A stage: compiling, or a sampling pass of nutpie ("sampling", "sampling again
        …"), whose share done :meth:`on_progress` reports.  PyMC's sampler starts its
        sampling stage with its first draw instead (:meth:`on_draw`)."""
        with self._lock:
            self.stage = stage
            if stage.startswith("sampling"):
                self.t_sample, self.done = time.monotonic(), 0
        self.emit(self.text(), False)

    def on_progress(self, done: int, total: int):
        """nutpie's count of draws done (tuning included) out of ``total`` in this pass."""
        with self._lock:
            self.done, self.total = done, max(1, total)

    def on_draw(self, *args, **kwargs):
        """pm.sample callback: one call per draw of any chain (tuning included)."""
        started = False
        with self._lock:
            if self.stage != "sampling":
                self.stage, self.t_sample, started = "sampling", time.monotonic(), True
            self.done += 1
        if started:   # a new stage: one line even where transient lines are not shown
            self.emit(f"{self.label}: sampling (compiled in {self.t_sample - self.t0:.0f} s)", False)

    def _run(self):
        while not self._stop.wait(self.tick):
            self.emit(self.text(), True)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if exc[0] is None:
            self.emit(f"{self.label}: done in {time.monotonic() - self.t0:.0f} s", False)
        return False


#: what nutpie's progress template renders for :func:`sample_nutpie` (its own template
#: is HTML for notebooks)
_TEMPLATE = "{{ total_finished_draws }} {{ total_draws }}"


class _LibWithProgress:
    """nutpie's compiled module as ``nutpie.sample`` sees it, except that "no progress
    bar" hands the draws done to a callback of ours."""

    def __init__(self, lib, progress):
        self._lib, self._progress = lib, progress

    def __getattr__(self, name):
        if name == "ProgressType":
            return self
        return getattr(self._lib, name)

    def none(self):
        return self._progress


def sample_nutpie(compiled, on_progress=None, rate_ms: int = 500, **kwargs):
    """``nutpie.sample(compiled, progress_bar=False, **kwargs)``, reporting
    ``on_progress(draws done, draws in all)`` about every ``rate_ms`` while it samples.

    Why not nutpie's own progress bar: outside a notebook it draws an ``indicatif`` bar
    on stderr that a log or CI cannot take, and it gives no callback.  Its notebook path
    renders a template through a callback; this passes a one-line template through the
    same Rust callback.  That reaches into nutpie's internals (``nutpie.sample._lib``,
    0.16), so where they differ the sampling runs as plain ``nutpie.sample`` without the
    share done — never a failed fit.  The progress type does not touch the random
    streams: the same seed gives the same draws either way (tests/test_models.py)."""
    import nutpie

    kwargs = dict(kwargs, progress_bar=False)
    if on_progress is None:
        return nutpie.sample(compiled, **kwargs)
    try:
        import importlib

        ns = importlib.import_module("nutpie.sample")   # the module: ``nutpie.sample`` is also the function
        lib = ns._lib
        cores = kwargs.get("cores") or 1

        def callback(text):
            try:
                done, total = (int(v) for v in str(text).split()[:2])
            except ValueError:
                return
            on_progress(done, total)

        progress = lib.ProgressType.template_callback(rate_ms, _TEMPLATE, cores, callback)
    except Exception:  # noqa: BLE001 — another nutpie: sample without the share done
        return nutpie.sample(compiled, **kwargs)
    with _PATCH_LOCK:     # one patched module at a time, whatever threads sample
        ns._lib = _LibWithProgress(lib, progress)
        try:
            return nutpie.sample(compiled, **kwargs)
        finally:
            ns._lib = lib


_PATCH_LOCK = threading.Lock()
