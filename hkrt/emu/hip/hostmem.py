"""Reading host memory behind pointers a HIP caller hands over, without trusting them.

hipModuleLoadData gets a bare pointer and takes the image's size from the image's own headers;
kernelParams and extra are pointers to pointers. A wrong pointer or a corrupt header must become a HIP
error, not a fault that ends the process: reads go through /proc/self/mem, where an unmapped address
gives EIO instead of SIGSEGV. Where that file cannot be opened, reads are plain memory accesses.
"""
from __future__ import annotations

import ctypes
import os
import threading

from .codes import INVALID_VALUE, HipError

CHUNK = 1 << 24  # large reads go in pieces, so a header claiming gigabytes fails at the first bad page
_fd: int | None = None
_opened = False
_lock = threading.Lock()


def _mem() -> int | None:
    global _fd, _opened
    with _lock:
        if not _opened:
            _opened = True
            try:
                _fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                _fd = None
    return _fd


def read(addr: int, n: int, what: str, code: int = INVALID_VALUE) -> bytes:
    """n bytes at host address addr; raises HipError(code) naming `what` if any of them is unreadable."""
    if n <= 0:
        return b""
    fd = _mem()
    if fd is None:
        return ctypes.string_at(addr, n)
    out = bytearray()
    while len(out) < n:
        at, want = addr + len(out), min(CHUNK, n - len(out))
        try:
            piece = os.pread(fd, want, at) if 0 < at < 1 << 63 else b""
        except (OSError, OverflowError):
            piece = b""
        if not piece:
            raise HipError(code, f"{what}: {n} bytes at {addr:#x} are not readable memory of this process "
                                 f"(unreadable from {at:#x})")
        out += piece
    return bytes(out)


def read_pointer(addr: int, what: str) -> int:
    return int.from_bytes(read(addr, 8, what), "little")
