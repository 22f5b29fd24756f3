"""A stream-ordered caching allocator per device.

Freed blocks go back to a pool keyed by size class. A block is reused at once by later work on
the stream that freed it (stream order makes that safe); another stream may take it only after an
event recorded at the free has completed. When the device runs out of memory the pool is emptied
and the allocation retried once before DeviceMemoryError reports the bytes requested and free.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from .errors import DeviceMemoryError, HipError

SMALL, SMALL_ROUND, LARGE_ROUND = 1 << 20, 512, 2 << 20

_allocators: dict[int, "CachingAllocator"] = {}
_lock = threading.Lock()


def size_class(nbytes: int) -> int:
    """Allocation size for a request: 512-byte steps below 1 MiB, 2 MiB steps above."""
    step = SMALL_ROUND if nbytes < SMALL else LARGE_ROUND
    return max(step, -(-nbytes // step) * step)


def stream_key(stream) -> int:
    return int(stream) if stream is not None else 0


@dataclass(eq=False)
class Block:
    ptr: int
    size: int
    allocator: "CachingAllocator" = field(repr=False)
    stream: object = None
    event: object = None

    def free(self) -> None:
        self.allocator.free(self)


class CachingAllocator:
    def __init__(self, device):
        self.device = device
        self._pool: dict[int, list[Block]] = defaultdict(list)
        self._lock = threading.Lock()
        self.in_use = 0    # bytes handed out (by size class)
        self.cached = 0    # bytes held in the pool

    def malloc(self, nbytes: int, stream=None) -> Block:
        size = size_class(nbytes)
        with self._lock:
            blk = self._reuse(size, stream)
            if blk is None:
                blk = Block(self._device_malloc(nbytes, size), size, self)
            blk.stream = stream
            self.in_use += size
            return blk

    def _reuse(self, size: int, stream) -> Block | None:
        pool = self._pool.get(size)
        if not pool:
            return None
        key = stream_key(stream)
        for i, blk in enumerate(pool):
            if stream_key(blk.stream) == key or blk.event is None or self.device.driver.event_query(blk.event):
                pool.pop(i)
                self.cached -= blk.size
                self._drop_event(blk)
                return blk
        return None

    def _device_malloc(self, nbytes: int, size: int) -> int:
        self.device.activate()
        try:
            return self.device.driver.malloc(size)
        except HipError as exc:
            if exc.name != "hipErrorOutOfMemory":
                raise
        self._empty_locked()
        try:
            return self.device.driver.malloc(size)
        except HipError as exc:
            if exc.name != "hipErrorOutOfMemory":
                raise
            free, total = self.device.driver.mem_info()
            raise DeviceMemoryError(f"out of device memory on {self.device}: {nbytes} bytes requested "
                                    f"({size} with rounding), {free} of {total} bytes free") from None

    def free(self, blk: Block) -> None:
        with self._lock:
            self.device.activate()
            if stream_key(blk.stream) != 0:
                blk.event = self.device.driver.event_create()
                self.device.driver.event_record(blk.event, blk.stream)
            self._pool[blk.size].append(blk)
            self.in_use -= blk.size
            self.cached += blk.size

    def _drop_event(self, blk: Block) -> None:
        if blk.event is not None:
            self.device.driver.event_destroy(blk.event)
            blk.event = None

    def _empty_locked(self) -> None:
        self.device.activate()
        self.device.driver.synchronize()
        for blocks in self._pool.values():
            for blk in blocks:
                self._drop_event(blk)
                self.device.driver.free(blk.ptr)
        self._pool.clear()
        self.cached = 0

    def empty_cache(self) -> None:
        """Give every cached block back to the device."""
        with self._lock:
            self._empty_locked()


def allocator_for(device) -> CachingAllocator:
    with _lock:
        a = _allocators.get(device.index)
        if a is None:
            a = _allocators[device.index] = CachingAllocator(device)
        return a
