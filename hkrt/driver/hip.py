"""The HIP driver on hip-python: on a real gfx950 GPU, or on the emulator once hkrt.emu.activate() ran.

Every HIP status is checked; a failure raises HipError naming the call and HIP's error (and the runtime's
own account of it, when the runtime offers one through `detail`), after clearing HIP's last error.
"""
from __future__ import annotations

import ctypes
from ..errors import HipError
from .base import DeviceInfo, Driver, Emulation, PreparedLaunch

# hipModuleLaunchKernel's `extra` protocol (hip_runtime_api.h)
_LAUNCH_PARAM_BUFFER_POINTER, _LAUNCH_PARAM_BUFFER_SIZE, _LAUNCH_PARAM_END = 1, 2, 3
_STICKY = (700, 719)  # hipErrorIllegalAddress, hipErrorLaunchFailure: a kernel fault, kept until a reset


class HipDriver(Driver):
    name = "hip"

    def __init__(self, emulation: Emulation | None = None):
        """emulation: what the emulated libamdhip64 behind hip-python offers besides HIP (its account of a
        failed call among others); None on ROCm's runtime."""
        from hip import hip  # imported here: on the emulator, activation must come first
        self.hip = hip
        self.emulation = emulation
        self.runtime = ("hkrt gfx950 emulator (emulated libamdhip64 behind hip-python)" if emulation
                        else "ROCm HIP runtime (libamdhip64 through hip-python)")
        self._call("hipInit", hip.hipInit(0))

    # -- status handling
    def _call(self, name: str, result):
        err, rest = result[0], result[1:]
        code = int(getattr(err, "value", err))
        if code != 0:
            self.hip.hipGetLastError()  # a failed call sets it; the next call must not see it
            error = getattr(err, "name", f"hipError {code}")
            detail = self.emulation.error_detail() if self.emulation is not None else None
            detail = detail if detail != error else None
            if code in _STICKY:
                detail = f"{detail or 'a kernel faulted'} (hkrt: Device.reset() makes the device usable again)"
            raise HipError(name, code, error, detail)
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else rest

    # -- devices
    def device_count(self) -> int:
        try:
            return int(self._call("hipGetDeviceCount", self.hip.hipGetDeviceCount()))
        except HipError as exc:
            if exc.name == "hipErrorNoDevice":
                return 0
            raise

    def device_info(self, index: int) -> DeviceInfo:
        p = self.hip.hipDeviceProp_t()
        self._call("hipGetDeviceProperties", self.hip.hipGetDeviceProperties(p, index))
        arch = _text(p.gcnArchName).split(":", 1)[0]
        return DeviceInfo(index=index, name=_text(p.name), arch=arch, total_memory=int(p.totalGlobalMem),
                          compute_units=int(p.multiProcessorCount), max_lds_per_block=int(p.sharedMemPerBlock),
                          lds_per_cu=int(p.maxSharedMemoryPerMultiProcessor),
                          max_threads_per_block=int(p.maxThreadsPerBlock), wave_size=int(p.warpSize))

    def set_device(self, index: int) -> None:
        self._call("hipSetDevice", self.hip.hipSetDevice(index))

    def synchronize(self) -> None:
        self._call("hipDeviceSynchronize", self.hip.hipDeviceSynchronize())

    def reset(self) -> None:
        self._call("hipDeviceReset", self.hip.hipDeviceReset())

    # -- memory
    def mem_info(self) -> tuple[int, int]:
        free, total = self._call("hipMemGetInfo", self.hip.hipMemGetInfo())
        return int(free), int(total)

    def malloc(self, nbytes: int) -> int:
        return int(self._call("hipMalloc", self.hip.hipMalloc(max(nbytes, 1))))

    def free(self, ptr: int) -> None:
        self._call("hipFree", self.hip.hipFree(ptr))

    def memcpy_htod(self, dst: int, src, nbytes: int, stream) -> None:
        kind = self.hip.hipMemcpyKind.hipMemcpyHostToDevice
        self._call("hipMemcpyAsync", self.hip.hipMemcpyAsync(dst, src, nbytes, kind, stream))

    def memcpy_dtoh(self, dst, src: int, nbytes: int, stream) -> None:
        kind = self.hip.hipMemcpyKind.hipMemcpyDeviceToHost
        self._call("hipMemcpyAsync", self.hip.hipMemcpyAsync(dst, src, nbytes, kind, stream))

    def memcpy_dtod(self, dst: int, src: int, nbytes: int, stream) -> None:
        kind = self.hip.hipMemcpyKind.hipMemcpyDeviceToDevice
        self._call("hipMemcpyAsync", self.hip.hipMemcpyAsync(dst, src, nbytes, kind, stream))

    def memset(self, dst: int, value: int, nbytes: int, stream) -> None:
        self._call("hipMemsetAsync", self.hip.hipMemsetAsync(dst, value, nbytes, stream))

    # -- streams and events
    def stream_create(self):
        return self._call("hipStreamCreate", self.hip.hipStreamCreate())

    def stream_synchronize(self, stream) -> None:
        self._call("hipStreamSynchronize", self.hip.hipStreamSynchronize(stream))

    def stream_destroy(self, stream) -> None:
        self._call("hipStreamDestroy", self.hip.hipStreamDestroy(stream))

    def stream_wait_event(self, stream, event) -> None:
        self._call("hipStreamWaitEvent", self.hip.hipStreamWaitEvent(stream, event, 0))

    def event_create(self):
        return self._call("hipEventCreate", self.hip.hipEventCreate())

    def event_record(self, event, stream) -> None:
        self._call("hipEventRecord", self.hip.hipEventRecord(event, stream))

    def event_synchronize(self, event) -> None:
        self._call("hipEventSynchronize", self.hip.hipEventSynchronize(event))

    def event_query(self, event) -> bool:
        err = self.hip.hipEventQuery(event)[0]
        code = int(getattr(err, "value", err))
        if code == 600:  # hipErrorNotReady
            self.hip.hipGetLastError()
            return False
        self._call("hipEventQuery", (err,))
        return True

    def event_elapsed_ms(self, start, end) -> float:
        return float(self._call("hipEventElapsedTime", self.hip.hipEventElapsedTime(start, end)))

    def event_destroy(self, event) -> None:
        self._call("hipEventDestroy", self.hip.hipEventDestroy(event))

    # -- modules and launches
    def module_load(self, image: bytes):
        return self._call("hipModuleLoadData", self.hip.hipModuleLoadData(image))

    def module_unload(self, module) -> None:
        self._call("hipModuleUnload", self.hip.hipModuleUnload(module))

    def module_function(self, module, name: str):
        return self._call("hipModuleGetFunction", self.hip.hipModuleGetFunction(module, name.encode()))

    def set_max_dynamic_lds(self, function, nbytes: int) -> None:
        attr = self.hip.hipFuncAttribute.hipFuncAttributeMaxDynamicSharedMemorySize
        self._call("hipFuncSetAttribute", self.hip.hipFuncSetAttribute(int(function), attr, nbytes))

    def launch(self, function, grid, block, dynamic_lds, stream, kernarg: bytes) -> None:
        self.prepare_launch(function, grid, block, dynamic_lds, kernarg)(stream)

    def prepare_launch(self, function, grid, block, dynamic_lds, kernarg: bytes) -> PreparedLaunch:
        return _HipLaunch(self, function, grid, block, dynamic_lds, kernarg)


class _HipLaunch(PreparedLaunch):
    """hipModuleLaunchKernel's `extra` form: HIP gets our own kernarg buffer, laid out from the metadata's
    offsets, made once; `args` writes into it."""

    def __init__(self, driver: HipDriver, function, grid, block, dynamic_lds: int, kernarg: bytes):
        self._buf = ctypes.create_string_buffer(bytes(kernarg), max(len(kernarg), 8))
        self._size = ctypes.c_size_t(len(kernarg))
        self._extra = (ctypes.c_void_p * 5)(_LAUNCH_PARAM_BUFFER_POINTER, ctypes.addressof(self._buf),
                                            _LAUNCH_PARAM_BUFFER_SIZE, ctypes.addressof(self._size),
                                            _LAUNCH_PARAM_END)
        self.args = memoryview(self._buf).cast("B")[:len(kernarg)]
        self._driver, self._launch = driver, driver.hip.hipModuleLaunchKernel
        self._fixed = (function, *grid, *block, dynamic_lds)

    def __call__(self, stream) -> None:
        self._driver._call("hipModuleLaunchKernel", self._launch(*self._fixed, stream, None, self._extra))


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).split(b"\0", 1)[0].decode(errors="replace")
    return str(value)
