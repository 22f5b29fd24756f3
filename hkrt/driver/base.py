"""The driver interface: modules, functions, memory, streams, events, launches.

Handles are opaque to the runtime. Every method raises hkrt.errors.HipError (or its counterpart in
another driver) on failure; none returns a status code. Kept narrow so that a CUDA driver fits beside HIP.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    arch: str                  # e.g. "gfx950"
    total_memory: int
    compute_units: int
    max_lds_per_block: int
    lds_per_cu: int            # what the CU's resident workgroups share
    max_threads_per_block: int
    wave_size: int


class Emulation(ABC):
    """What an emulated runtime offers beyond the GPU API (None on real hardware)."""

    @abstractmethod
    def error_detail(self) -> str | None:
        """The emulator's account of the calling thread's latest failed call (a fault: kernel, PC, address)."""
    @abstractmethod
    def collect_reports(self) -> AbstractContextManager[list]:
        """The timing model's report of each launch this thread makes inside the block."""
    @abstractmethod
    def timing_model(self):
        """The timing model launches are timed on (peak rate, bandwidths: hkrt.emu.timing.ChipModel), or None."""
    @abstractmethod
    def skip_kernels(self) -> AbstractContextManager[None]:
        """Launches inside the block do their host-side work but do not run the kernel (for timing the
        host path, which on the emulator otherwise includes the kernel's emulation)."""


class Driver(ABC):
    name: str          # e.g. "hip"
    runtime: str       # which runtime library serves it, in words
    emulation: Emulation | None = None

    @abstractmethod
    def device_count(self) -> int: ...
    @abstractmethod
    def device_info(self, index: int) -> DeviceInfo: ...
    @abstractmethod
    def set_device(self, index: int) -> None: ...
    @abstractmethod
    def synchronize(self) -> None: ...
    @abstractmethod
    def reset(self) -> None:
        """Free everything the current device holds and clear a kernel fault (sticky until then)."""
    @abstractmethod
    def mem_info(self) -> tuple[int, int]:
        """(free, total) bytes on the current device."""
    @abstractmethod
    def malloc(self, nbytes: int) -> int: ...
    @abstractmethod
    def free(self, ptr: int) -> None: ...
    @abstractmethod
    def memcpy_htod(self, dst: int, src, nbytes: int, stream) -> None: ...
    @abstractmethod
    def memcpy_dtoh(self, dst, src: int, nbytes: int, stream) -> None: ...
    @abstractmethod
    def memcpy_dtod(self, dst: int, src: int, nbytes: int, stream) -> None: ...
    @abstractmethod
    def memset(self, dst: int, value: int, nbytes: int, stream) -> None: ...
    @abstractmethod
    def stream_create(self): ...
    @abstractmethod
    def stream_synchronize(self, stream) -> None: ...
    @abstractmethod
    def stream_destroy(self, stream) -> None: ...
    @abstractmethod
    def stream_wait_event(self, stream, event) -> None:
        """Work queued on `stream` after this waits until the work before `event` has completed."""
    @abstractmethod
    def event_create(self): ...
    @abstractmethod
    def event_record(self, event, stream) -> None: ...
    @abstractmethod
    def event_synchronize(self, event) -> None: ...
    @abstractmethod
    def event_query(self, event) -> bool:
        """True when the work before the event has completed."""
    @abstractmethod
    def event_elapsed_ms(self, start, end) -> float: ...
    @abstractmethod
    def event_destroy(self, event) -> None: ...
    @abstractmethod
    def module_load(self, image: bytes): ...
    @abstractmethod
    def module_unload(self, module) -> None: ...
    @abstractmethod
    def module_function(self, module, name: str): ...
    @abstractmethod
    def set_max_dynamic_lds(self, function, nbytes: int) -> None: ...
    @abstractmethod
    def launch(self, function, grid: tuple[int, int, int], block: tuple[int, int, int], dynamic_lds: int,
               stream, kernarg: bytes) -> None:
        """Launch with the kernarg segment given as bytes laid out per the kernel's metadata."""

    def prepare_launch(self, function, grid: tuple[int, int, int], block: tuple[int, int, int], dynamic_lds: int,
                       kernarg: bytes) -> "PreparedLaunch":
        """A launch made ready once and run many times: only its kernarg bytes change between runs."""
        return _Relaunch(self, function, grid, block, dynamic_lds, bytearray(kernarg))


class PreparedLaunch(ABC):
    """One kernel's launch with function, geometry and LDS fixed. `args` is its kernarg segment, writable
    in place (struct.pack_into) between calls; calling it launches on the given stream handle."""
    args: bytearray

    @abstractmethod
    def __call__(self, stream) -> None: ...


class _Relaunch(PreparedLaunch):
    """The generic form: the driver's ordinary launch with the current bytes."""

    def __init__(self, driver: Driver, function, grid, block, dynamic_lds: int, args: bytearray):
        self.driver, self.function, self.grid, self.block, self.dynamic_lds = driver, function, grid, block, dynamic_lds
        self.args = args

    def __call__(self, stream) -> None:
        self.driver.launch(self.function, self.grid, self.block, self.dynamic_lds, stream, bytes(self.args))
