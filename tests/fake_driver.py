"""A pure-Python hkrt.driver.base.Driver, for testing the runtime (allocator, registry, strategy) without the
emulator or HIP.

Memory is a dict of bytearrays at distinct, aligned addresses; a malloc beyond `capacity` fails with the
HipError the HIP driver raises (hipErrorOutOfMemory). Streams and events are counters. Work completes at
once, except that events recorded while `hold_events` is set stay incomplete (event_query False) until
complete_events(), a synchronize of their stream or of the device: so a test decides when a stream has
"passed" an event. Launches are recorded, never executed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hkrt.devices import Device
from hkrt.driver.base import DeviceInfo, Driver
from hkrt.errors import HipError

ALIGN = 256          # hipMalloc's alignment
BASE = 0x7F00_0000_0000

# the codes hip_runtime_api.h gives these errors
OUT_OF_MEMORY, INVALID_VALUE, INVALID_HANDLE = (2, "hipErrorOutOfMemory"), (1, "hipErrorInvalidValue"), \
    (400, "hipErrorInvalidHandle")


def fake_info(index=0, total_memory=1 << 30, max_lds_per_block=160 * 1024, max_threads_per_block=1024,
              compute_units=256, lds_per_cu=160 * 1024):
    return DeviceInfo(index=index, name="fake gfx950", arch="gfx950", total_memory=total_memory,
                      compute_units=compute_units, max_lds_per_block=max_lds_per_block, lds_per_cu=lds_per_cu,
                      max_threads_per_block=max_threads_per_block, wave_size=64)


def fake_device(driver: "FakeDriver | None" = None, **info) -> Device:
    """A Device on a FakeDriver (index 0, like the emulator's first device; allocators and loaded kernels
    are kept per Device object, so the two do not meet)."""
    driver = driver or FakeDriver()
    return Device(index=0, kind="fake", info=fake_info(total_memory=driver.capacity, **info), driver=driver)


@dataclass(frozen=True)
class Launch:
    function: object
    grid: tuple
    block: tuple
    dynamic_lds: int
    stream: object
    kernarg: bytes


class FakeDriver(Driver):
    name = "fake"
    runtime = "hkrt's fake driver for tests (nothing executes)"
    emulated = False

    def __init__(self, capacity: int = 1 << 30, devices: int = 1):
        self.capacity = capacity
        self.devices = devices
        self.current = 0
        self.memory: dict[int, bytearray] = {}
        self.malloc_calls: list[int] = []   # sizes asked for, failed calls included
        self.free_calls: list[int] = []
        self.synchronize_calls = 0
        self.streams: set[int] = set()
        self.events: dict[int, int | None] = {}  # event -> the stream it waits on when incomplete
        self.recorded: set[int] = set()
        self.pending: set[int] = set()
        self.hold_events = False
        self.modules: dict[int, bytes] = {}
        self.lds_attr: dict[object, int] = {}
        self.launches: list[Launch] = []
        self._next_address = BASE
        self._next_handle = 1  # 0 would read as the null stream

    # -- helpers
    def _handle(self) -> int:
        self._next_handle += 1
        return self._next_handle

    @staticmethod
    def _fail(call: str, error) -> HipError:
        return HipError(call, *error)

    def _span(self, call: str, ptr: int, nbytes: int) -> memoryview:
        """The bytes [ptr, ptr + nbytes) inside one allocation (a pointer into its middle is fine)."""
        for base, mem in self.memory.items():
            if base <= ptr and ptr + nbytes <= base + len(mem):
                return memoryview(mem)[ptr - base:ptr - base + nbytes]
        raise self._fail(call, INVALID_VALUE)

    def _check_stream(self, call: str, stream) -> None:
        if stream is not None and int(stream) != 0 and int(stream) not in self.streams:
            raise self._fail(call, INVALID_HANDLE)

    @property
    def used(self) -> int:
        return sum(len(m) for m in self.memory.values())

    # -- devices
    def device_count(self) -> int:
        return self.devices

    def device_info(self, index: int) -> DeviceInfo:
        return fake_info(index, total_memory=self.capacity)

    def set_device(self, index: int) -> None:
        if not 0 <= index < self.devices:
            raise self._fail("hipSetDevice", (101, "hipErrorInvalidDevice"))
        self.current = index

    def synchronize(self) -> None:
        self.synchronize_calls += 1
        self.pending.clear()

    def reset(self) -> None:
        self.memory.clear()
        self.streams.clear()
        self.events.clear()
        self.pending.clear()
        self.modules.clear()

    # -- memory
    def mem_info(self) -> tuple[int, int]:
        return self.capacity - self.used, self.capacity

    def malloc(self, nbytes: int) -> int:
        self.malloc_calls.append(nbytes)
        size = max(nbytes, 1)
        if self.used + size > self.capacity:
            raise self._fail("hipMalloc", OUT_OF_MEMORY)
        ptr = self._next_address
        self._next_address += -(-size // ALIGN) * ALIGN + ALIGN  # a gap: an overrun would not land in the next
        self.memory[ptr] = bytearray(size)
        return ptr

    def free(self, ptr: int) -> None:
        self.free_calls.append(ptr)
        if self.memory.pop(ptr, None) is None:
            raise self._fail("hipFree", INVALID_VALUE)

    def memcpy_htod(self, dst: int, src, nbytes: int, stream) -> None:
        self._check_stream("hipMemcpyAsync", stream)
        self._span("hipMemcpyAsync", dst, nbytes)[:] = memoryview(np.ascontiguousarray(src)).cast("B")[:nbytes]

    def memcpy_dtoh(self, dst, src: int, nbytes: int, stream) -> None:
        self._check_stream("hipMemcpyAsync", stream)
        memoryview(dst).cast("B")[:nbytes] = self._span("hipMemcpyAsync", src, nbytes)

    def memcpy_dtod(self, dst: int, src: int, nbytes: int, stream) -> None:
        self._check_stream("hipMemcpyAsync", stream)
        self._span("hipMemcpyAsync", dst, nbytes)[:] = bytes(self._span("hipMemcpyAsync", src, nbytes))

    def memset(self, dst: int, value: int, nbytes: int, stream) -> None:
        self._check_stream("hipMemsetAsync", stream)
        self._span("hipMemsetAsync", dst, nbytes)[:] = bytes([value & 0xFF]) * nbytes

    # -- streams and events
    def stream_create(self):
        handle = self._handle()
        self.streams.add(handle)
        return handle

    def stream_synchronize(self, stream) -> None:
        self._check_stream("hipStreamSynchronize", stream)
        key = int(stream or 0)
        self.pending -= {e for e in self.pending if self.events.get(e) == key}

    def stream_wait_event(self, stream, event) -> None:
        self._check_stream("hipStreamWaitEvent", stream)
        if int(event) not in self.events:
            raise self._fail("hipStreamWaitEvent", INVALID_HANDLE)

    def stream_destroy(self, stream) -> None:
        if int(stream) not in self.streams:
            raise self._fail("hipStreamDestroy", INVALID_HANDLE)
        self.streams.discard(int(stream))

    def event_create(self):
        handle = self._handle()
        self.events[handle] = None
        return handle

    def event_record(self, event, stream) -> None:
        if event not in self.events:
            raise self._fail("hipEventRecord", INVALID_HANDLE)
        self._check_stream("hipEventRecord", stream)
        self.events[event] = int(stream or 0)
        self.recorded.add(event)
        if self.hold_events:
            self.pending.add(event)

    def complete_events(self) -> None:
        """The streams pass every event recorded so far."""
        self.pending.clear()

    def event_synchronize(self, event) -> None:
        if event not in self.events:
            raise self._fail("hipEventSynchronize", INVALID_HANDLE)
        self.pending.discard(event)

    def event_query(self, event) -> bool:
        if event not in self.events:
            raise self._fail("hipEventQuery", INVALID_HANDLE)
        return event not in self.pending

    def event_elapsed_ms(self, start, end) -> float:
        return 0.0

    def event_destroy(self, event) -> None:
        if self.events.pop(event, "gone") == "gone":
            raise self._fail("hipEventDestroy", INVALID_HANDLE)
        self.pending.discard(event)

    # -- modules and launches
    def module_load(self, image: bytes):
        handle = self._handle()
        self.modules[handle] = bytes(image)
        return handle

    def module_unload(self, module) -> None:
        if self.modules.pop(module, None) is None:
            raise self._fail("hipModuleUnload", INVALID_HANDLE)

    def module_function(self, module, name: str):
        if module not in self.modules:
            raise self._fail("hipModuleGetFunction", INVALID_HANDLE)
        return (module, name)

    def set_max_dynamic_lds(self, function, nbytes: int) -> None:
        self.lds_attr[function] = nbytes

    def launch(self, function, grid, block, dynamic_lds, stream, kernarg) -> None:
        self._check_stream("hipModuleLaunchKernel", stream)
        self.launches.append(Launch(function, tuple(grid), tuple(block), dynamic_lds, stream, bytes(kernarg)))
