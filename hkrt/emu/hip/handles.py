"""Opaque handles of streams, events, modules and functions: numbers the caller holds, never dereferenced."""
from __future__ import annotations

import itertools
import threading

from . import codes as c
from .codes import HipError

HANDLE_BASE = 0x10_0000_0000


class Handles:
    def __init__(self):
        # Reentrant: this runtime is Python, so a garbage collection inside one HIP call can run a
        # finalizer (hip-python users destroy streams and events in them) that makes another HIP call
        # on the same thread. The re-entered call touches other handles, so letting it in is safe.
        self.lock = threading.RLock()
        self._objects: dict[int, object] = {}
        self._next = itertools.count(HANDLE_BASE, 16)

    def new(self, obj) -> int:
        with self.lock:
            h = next(self._next)
            self._objects[h] = obj
            return h

    def get(self, h: int, cls, code: int = c.INVALID_HANDLE):
        """The object behind h, which must be a cls; else HipError(code)."""
        obj = self._objects.get(h)
        if not isinstance(obj, cls):
            raise HipError(code, f"{h:#x} is not a {cls.__name__.lower()} handle")
        return obj

    def drop(self, h: int, cls) -> None:
        """Invalidate h, which must be a cls handle."""
        with self.lock:
            self.get(h, cls)
            del self._objects[h]

    def discard(self, h: int) -> None:
        """Invalidate h if it is a handle."""
        with self.lock:
            self._objects.pop(h, None)

    def objects(self) -> list[tuple[int, object]]:
        with self.lock:
            return list(self._objects.items())
