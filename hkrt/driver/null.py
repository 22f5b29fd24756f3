"""A driver that does nothing: no HIP, no memory, no kernels run. It exists to measure hkrt's own host
path (validation, planning, allocation, argument packing) with the runtime underneath taken out, as
`bench/host_cost.py` does; nothing computed on it is a result.

Addresses are distinct and aligned (so hkrt's alignment and overlap checks behave as on a device);
streams and events are counters, and every event has completed.
"""
from __future__ import annotations

import itertools

from .base import DeviceInfo, Driver, PreparedLaunch

_ALIGN = 256


class NullDriver(Driver):
    name = "null"
    runtime = "hkrt's null driver (does nothing; for timing hkrt's own host path)"

    def __init__(self, devices: int = 1, total_memory: int = 1 << 40, compute_units: int = 256):
        self.devices = devices
        self.total_memory = total_memory
        self.compute_units = compute_units
        self._addresses = itertools.count(1 << 44, 1 << 36)   # 64 GiB apart: room for any one block
        self._handles = itertools.count(1)

    def device_count(self) -> int:
        return self.devices

    def device_info(self, index: int) -> DeviceInfo:
        return DeviceInfo(index=index, name="null gfx950", arch="gfx950", total_memory=self.total_memory,
                          compute_units=self.compute_units, max_lds_per_block=160 * 1024,
                          lds_per_cu=160 * 1024,
                          max_threads_per_block=1024, wave_size=64)

    def set_device(self, index: int) -> None: pass
    def synchronize(self) -> None: pass
    def reset(self) -> None: pass

    def mem_info(self) -> tuple[int, int]:
        return self.total_memory, self.total_memory

    def malloc(self, nbytes: int) -> int:
        return next(self._addresses)

    def free(self, ptr: int) -> None: pass
    def memcpy_htod(self, dst, src, nbytes, stream) -> None: pass
    def memcpy_dtoh(self, dst, src, nbytes, stream) -> None: pass
    def memcpy_dtod(self, dst, src, nbytes, stream) -> None: pass
    def memset(self, dst, value, nbytes, stream) -> None: pass

    def stream_create(self):
        return next(self._handles)

    def stream_synchronize(self, stream) -> None: pass
    def stream_destroy(self, stream) -> None: pass
    def stream_wait_event(self, stream, event) -> None: pass

    def event_create(self):
        return next(self._handles)

    def event_record(self, event, stream) -> None: pass
    def event_synchronize(self, event) -> None: pass

    def event_query(self, event) -> bool:
        return True

    def event_elapsed_ms(self, start, end) -> float:
        return 0.0

    def event_destroy(self, event) -> None: pass

    def module_load(self, image: bytes):
        return next(self._handles)

    def module_unload(self, module) -> None: pass

    def module_function(self, module, name: str):
        return next(self._handles)

    def set_max_dynamic_lds(self, function, nbytes: int) -> None: pass
    def launch(self, function, grid, block, dynamic_lds, stream, kernarg: bytes) -> None: pass

    def prepare_launch(self, function, grid, block, dynamic_lds, kernarg: bytes) -> PreparedLaunch:
        return _NullLaunch(bytearray(kernarg))


class _NullLaunch(PreparedLaunch):
    def __init__(self, args: bytearray):
        self.args = args

    def __call__(self, stream) -> None: pass
