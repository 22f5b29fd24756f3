"""What the emulated HIP runtime keeps per calling thread: its current device and its latest error."""
from __future__ import annotations

import threading

from . import codes as c


class ThreadState(threading.local):
    """One instance serves every thread; each thread sees its own attributes, set here on first use."""

    def __init__(self):
        self.device = 0                              # index of the current device (hipSetDevice)
        self.error = c.SUCCESS                       # hipGetLastError's code
        self.exception: BaseException | None = None  # the latest failure (hkrt.emu.last_error)
        self.message: str | None = None              # ... in words
        self.last_report = None                      # timing report of the latest launch
        self.collectors: list[list] = []             # lists receiving every launch report (collect_reports)

    def note(self, exc: BaseException, message: str | None = None) -> None:
        """Record exc as this thread's latest failure (message: its account, if not str(exc))."""
        self.exception, self.message = exc, message or str(exc)
