"""Device memory: allocation in the current device's address slice, copies and fills. Host buffers of copies
are reached through ctypes at the addresses the caller passes."""
from __future__ import annotations

import ctypes

import numpy as np

from . import codes as c
from .codes import HipError
from .devices import Device, Devices
from .faults import check_faults
from .streams import Streams


def _address_of(view: memoryview) -> int:
    """Host address of a device allocation's backing bytes."""
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


class Memory:
    def __init__(self, devices: Devices, streams: Streams):
        self._devices, self._streams = devices, streams

    def _device_range(self, addr: int, n: int) -> tuple[Device, memoryview] | None:
        """The device bytes at [addr, addr + n), or None if addr is in no device allocation."""
        d = self._devices.owner(addr)
        if d is None:
            return None
        with d.lock:
            hit = d.machine.memory.find(addr)
            if hit is None:
                return None
            base, size = hit
            if addr + n > base + size:
                raise HipError(c.INVALID_VALUE, f"{n} bytes at {addr:#x} run past the {size}-byte "
                                                f"allocation at {base:#x}")
            return d, d.machine.memory.view(addr, n)

    def alloc(self, n: int) -> int:
        if n == 0:
            return 0
        d = self._devices.current()
        with d.lock:
            try:
                addr = d.machine.memory.alloc(n)
            except MemoryError as e:
                raise HipError(c.OUT_OF_MEMORY, str(e)) from None
            if addr + n > d.limit:
                d.machine.memory.free(addr)
                raise HipError(c.OUT_OF_MEMORY, f"device {d.index}'s address space is used up")
        return addr

    def free(self, addr: int) -> None:
        if addr == 0:
            return
        d = self._devices.owner(addr)
        if d is None:
            raise HipError(c.INVALID_VALUE, f"{addr:#x} is not a device allocation")
        with d.lock:
            try:
                d.machine.memory.free(addr)
            except ValueError as e:
                raise HipError(c.INVALID_VALUE, str(e)) from None

    def info(self) -> tuple[int, int]:
        """(free, total) bytes of the current device."""
        d = self._devices.current()
        with d.lock:
            mem = d.machine.memory
            return mem.capacity - mem.used, mem.capacity

    def allocation_size(self, addr: int) -> int:
        d = self._devices.owner(addr)
        hit = d.machine.memory.find(addr) if d else None
        if hit is None:
            raise HipError(c.INVALID_VALUE, f"{addr:#x} is not in a device allocation")
        return hit[1]

    def copy(self, dst: int, src: int, n: int, kind: int, stream: int = 0) -> None:
        """hipMemcpy* (synchronous or not: the work is done before the call returns).

        The direction is taken from where the pointers lie, as HIP does with unified addressing;
        a side that `kind` says is device memory must be, since the host cannot reach it otherwise.
        """
        if kind not in (c.MEMCPY_H2H, c.MEMCPY_H2D, c.MEMCPY_D2H, c.MEMCPY_D2D, c.MEMCPY_DEFAULT,
                        c.MEMCPY_D2D_NO_CU):
            raise HipError(c.INVALID_MEMCPY_DIRECTION)
        queue = self._streams.get(stream)
        if n == 0:
            return
        if not dst or not src:
            raise HipError(c.INVALID_VALUE, "null pointer")
        to, frm = self._device_range(dst, n), self._device_range(src, n)
        if to is None and kind in (c.MEMCPY_H2D, c.MEMCPY_D2D, c.MEMCPY_D2D_NO_CU):
            raise HipError(c.INVALID_VALUE, f"destination {dst:#x}+{n} is not device memory")
        if frm is None and kind in (c.MEMCPY_D2H, c.MEMCPY_D2D, c.MEMCPY_D2D_NO_CU):
            raise HipError(c.INVALID_VALUE, f"source {src:#x}+{n} is not device memory")
        check_faults(queue.device, *(r[0] for r in (to, frm) if r))
        ctypes.memmove(_address_of(to[1]) if to else dst, _address_of(frm[1]) if frm else src, n)

    def fill(self, dst: int, value: int, width: int, count: int, stream: int = 0) -> None:
        """hipMemset*: `count` elements of `width` bytes (1, 2 or 4) set to value."""
        self._streams.get(stream)
        if count == 0:
            return
        hit = self._device_range(dst, count * width) if dst else None
        if hit is None:
            raise HipError(c.INVALID_VALUE, f"{dst:#x} is not device memory")
        check_faults(hit[0])
        np.frombuffer(hit[1], dtype=f"<u{width}")[:] = value & ((1 << 8 * width) - 1)
