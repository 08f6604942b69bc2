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
    def __init__(self, label: str, total_draws: int, emit, tick: float = 1.0):
        self.label, self.total, self.emit, self.tick = label, max(1, total_draws), emit, tick
        self.stage = ""
        self.done = 0
        self.t0 = self.t_sample = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def text(self) -> str:
        now = time.monotonic()
        if self.stage == "sampling" and self.done:
            frac = self.done / self.total
            rate = (now - self.t_sample) / self.done
            eta = rate * (self.total - self.done)
            return f"{self.label}: sampling {100 * frac:.0f} % ETA {eta:.0f} s"
        return f"{self.label}: {self.stage} … {now - self.t0:.0f} s"

    def set_stage(self, stage: str):
        """A stage before sampling (sampling starts with the first draw, see on_draw)."""
        with self._lock:
            self.stage = stage
        self.emit(self.text(), False)

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
