"""A stream-ordered caching allocator per device.

Freed blocks go back to a pool keyed by size class. A block is reused at once by later work on
the stream that freed it (stream order makes that safe); another stream may take it only after an
event recorded at the free has completed. When the device runs out of memory the pool is emptied
and the allocation retried once before DeviceMemoryError reports the bytes requested and free.

A free only queues the block: it runs from garbage-collection finalizers, which may fire at any
allocation, including one the allocator makes under its own lock, so it takes no lock and calls
no HIP. The queue goes back to the pool at the next malloc, empty_cache or read of the counters.
"""
from __future__ import annotations

import threading
import warnings
from collections import defaultdict, deque
from dataclasses import dataclass, field

from .errors import DeviceMemoryError, HipError

SMALL, SMALL_ROUND, LARGE_ROUND = 1 << 20, 512, 2 << 20

_allocators: dict[object, "CachingAllocator"] = {}   # per Device object
_lock = threading.Lock()


def size_class(nbytes: int) -> int:
    """Allocation size for a request: 512-byte steps below 1 MiB, 2 MiB steps above."""
    step = SMALL_ROUND if nbytes < SMALL else LARGE_ROUND
    return max(step, -(-nbytes // step) * step)


def stream_handle(stream):
    """The HIP handle of a Stream (or of a raw handle); None for the null stream."""
    return getattr(stream, "handle", stream)


def stream_key(stream) -> int:
    handle = stream_handle(stream)
    return int(handle) if handle is not None else 0


@dataclass(eq=False)
class Block:
    ptr: int
    size: int
    allocator: "CachingAllocator" = field(repr=False)
    stream: object = None  # the Stream it was allocated on: held, so that its handle stays valid
    event: object = None   # made at the first pooling from a stream, re-recorded at each later one
    recorded: bool = False # the event marks this block's last use (a stream other than its own must wait)
    live: bool = False     # handed out and not yet given back
    queued: bool = False   # given back, waiting in the allocator's queue (see CachingAllocator.free)
    generation: int = 0    # the device's reset count when it was allocated

    @property
    def valid(self) -> bool:
        """False once the device was reset (which freed the memory under it)."""
        return self.generation == self.allocator.device.generation

    def free(self) -> None:
        self.allocator.free(self)


class CachingAllocator:
    def __init__(self, device):
        self.device = device
        self._pool: dict[int, list[Block]] = defaultdict(list)
        self._lock = threading.Lock()
        self._freed: deque[Block] = deque()   # given back, not yet in the pool (see free)
        # Blocks handed out, held here so that a block (and the stream it keeps) outlives the array that
        # dropped it even when both die in one garbage collection: the free still finds its stream alive.
        self._live: set[Block] = set()
        self._in_use = 0
        self._cached = 0

    @property
    def in_use(self) -> int:
        """Bytes handed out (by size class)."""
        with self._lock:
            self._take_freed()
            return self._in_use

    @property
    def cached(self) -> int:
        """Bytes held in the pool."""
        with self._lock:
            self._take_freed()
            return self._cached

    def malloc(self, nbytes: int, stream=None) -> Block:
        """A block of at least nbytes for work on `stream` (a Stream, or None for the null stream)."""
        size = size_class(nbytes)
        lock = self._lock
        lock.acquire()  # not `with`: this is every compiled call's hot path, and `with` costs twice as much
        try:
            freed = self._freed
            if freed:
                blk = freed[-1]
                # the block given back last, of this size and stream: stream order makes it safe to hand out
                # again at once (the hot path of a loop of calls, each dropping the last one's result)
                if blk.size == size and blk.stream is stream and blk.live and blk.generation == self.device.generation:
                    freed.pop()
                    blk.queued = False
                    return blk
                self._take_freed()
            pool = self._pool.get(size)
            blk = self._reuse(pool, stream) if pool else None
            if blk is None:
                blk = Block(self._device_malloc(nbytes, size), size, self,
                            generation=self.device.generation)
            blk.stream = stream
            blk.live = True
            self._live.add(blk)
            self._in_use += size
            return blk
        finally:
            lock.release()

    def _reuse(self, pool: list[Block], stream) -> Block | None:
        key = None
        for i in range(len(pool) - 1, -1, -1):  # the latest freed first: the likeliest to be on this stream
            blk = pool[i]
            if blk.recorded:  # another stream may take it once its event has passed
                if key is None:
                    key = stream_key(stream)
                if stream_key(blk.stream) != key and not self.device.driver.event_query(blk.event):
                    continue
                blk.recorded = False
            del pool[i]
            self._cached -= blk.size
            return blk
        return None

    def _device_malloc(self, nbytes: int, size: int) -> int:
        self.device.activate()
        if size >= 1 << 63:  # beyond any device (and beyond the size_t of the HIP call)
            raise DeviceMemoryError(f"{nbytes} bytes requested on {self.device}: more than any device has")
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
        """Give a block back. Only queues it: no lock, no HIP call (safe inside a finalizer). A block given
        back twice is queued once: malloc may hand it out again straight from the queue."""
        if not blk.queued:
            blk.queued = True
            self._freed.append(blk)

    def _take_freed(self) -> None:
        """Move the queued blocks into the pool (lock held), each with an event on its stream.

        A block whose event cannot be made (the device faulted, or its stream is gone) cannot be told
        safe for other streams: it goes back to the device instead, and the others are still pooled."""
        freed, generation = self._freed, self.device.generation
        while freed:
            blk = freed.popleft()
            blk.queued = False
            if not blk.live or blk.generation != generation:
                continue  # given back twice, or freed by a device reset
            blk.live = False
            self._live.discard(blk)
            self._in_use -= blk.size
            if blk.stream is not None:
                try:
                    if stream_key(blk.stream) != 0:
                        self.device.activate()
                        if blk.event is None:
                            blk.event = self.device.driver.event_create()
                        self.device.driver.event_record(blk.event, stream_handle(blk.stream))
                        blk.recorded = True
                except (HipError, ValueError) as exc:
                    self._release(blk, f"it could not be pooled ({exc})")
                    continue
            self._pool[blk.size].append(blk)
            self._cached += blk.size

    def _release(self, blk: Block, why: str) -> None:
        """Free one block on the device now, because `why`; a failure leaves it there, warned, and
        does not stop the caller from releasing the others."""
        try:
            self._drop_event(blk)
        except HipError:
            blk.event = None
        try:
            self.device.driver.free(blk.ptr)
        except HipError as exc:
            warnings.warn(f"hkrt: a {blk.size}-byte block on {self.device} was to be freed ({why}) but "
                          f"hipFree failed ({exc}); it stays allocated until the device is reset", RuntimeWarning)

    def _drop_event(self, blk: Block) -> None:
        if blk.event is not None:
            self.device.driver.event_destroy(blk.event)
            blk.event = None

    def _empty_locked(self) -> None:
        self._take_freed()
        self.device.activate()
        self.device.driver.synchronize()
        for blocks in self._pool.values():
            for blk in blocks:
                self._release(blk, "the cache is emptied")
        self._pool.clear()
        self._cached = 0

    def forget_all(self) -> None:
        """Drop every block without freeing it: the device reset that follows frees them all."""
        with self._lock:
            self._freed.clear()
            self._live.clear()
            self._pool.clear()
            self._in_use = self._cached = 0

    def empty_cache(self) -> None:
        """Give every cached block back to the device."""
        with self._lock:
            self._empty_locked()


def allocator_for(device) -> CachingAllocator:
    with _lock:
        a = _allocators.get(device)
        if a is None:
            a = _allocators[device] = CachingAllocator(device)
        return a
