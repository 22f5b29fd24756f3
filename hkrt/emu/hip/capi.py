"""The C entry points of the emulated libamdhip64 (declared in hip_exports.h).

Each converts its C arguments, calls the runtime, writes its out-parameters and returns a hipError_t;
a failing call sets the thread's last error, as HIP does. No Python exception reaches C: HipError
becomes its code, anything else hipErrorUnknown; either is kept as the thread's hkrt.emu.last_error().
"""
from __future__ import annotations

import functools
import sys
import threading

from . import codes as c
from . import props, runtime
from .build import PY
from .codes import HipError

ffi = None          # the embedding module's FFI, set by bind()
lib = None          # its C functions (hkrt_request_interrupt)
ENTRY_POINTS = {}   # C name -> Python function
_strings = {}       # code -> (name, description) as C strings, made once and never freed


def _entry(fn):
    """Register fn as a hipError_t-returning entry point that cannot raise."""
    @functools.wraps(fn)
    def call(*args):
        try:
            fn(*args)
            return c.SUCCESS
        except HipError as e:  # its message (or the kernel fault behind it) is this call's detail
            code, failure, message = e.code, e.__cause__ or e, str(e)
        except KeyboardInterrupt:  # Ctrl-C: the launch was stopped; SIGINT again once the call returned
            if threading.current_thread() is threading.main_thread():
                lib.hkrt_request_interrupt()
            code, failure, message = c.LAUNCH_FAILURE, None, None
        except Exception as e:  # a defect of the emulator; the caller only sees a code
            code, failure, message = c.UNKNOWN, e, f"emulator error: {e!r}"
        try:
            runtime.get().set_error(code)
            if failure is not None:
                runtime.note_exception(failure, message)
        except Exception as e:  # the runtime cannot start (e.g. a bad HKRT_EMU_* value): say why, once
            _report_start_failure(e)
            return c.NOT_INITIALIZED
        return code
    ENTRY_POINTS[fn.__name__] = call
    return call


_start_failure_reported = False


def _report_start_failure(exc: Exception) -> None:
    """A program that only sees hipErrorNotInitialized would never learn the cause: print it to stderr."""
    global _start_failure_reported
    if not _start_failure_reported:
        _start_failure_reported = True
        print(f"hkrt emulator: cannot start: {exc}", file=sys.stderr)


def bind(ffi_, lib_) -> None:
    """Attach every entry point to the library's exported functions (each calls hkrt_py_<its name>)."""
    global ffi, lib
    ffi, lib = ffi_, lib_
    for code, (name, text) in c.ERRORS.items():
        _strings[code] = (ffi.new("char[]", name.encode()), ffi.new("char[]", text.encode()))
    for name, fn in ENTRY_POINTS.items():
        ffi.def_extern(name=PY + name, error=c.UNKNOWN)(fn)
    for name, fn in _STRING_ENTRY_POINTS.items():
        ffi.def_extern(name=PY + name)(fn)


def rt() -> runtime.Runtime:
    return runtime.get()


def _need(*pointers) -> None:
    if any(p == ffi.NULL for p in pointers):
        raise HipError(c.INVALID_VALUE, "null pointer argument")


def _int(p) -> int:
    """A pointer or handle as an int (0 for NULL)."""
    return int(ffi.cast("uintptr_t", p))


def _ptr(value: int):
    return ffi.cast("void *", value)


def _c_strings(code: int):
    return _strings.get(code, _strings[c.UNKNOWN])


# ---- errors and versions
def hipGetErrorName(code):
    return _c_strings(code)[0]


def hipGetErrorString(code):
    return _c_strings(code)[1]


_STRING_ENTRY_POINTS = {"hipGetErrorName": hipGetErrorName, "hipGetErrorString": hipGetErrorString}


def hipGetLastError():
    try:
        return rt().last_error(clear=True)
    except Exception:
        return c.NOT_INITIALIZED


def hipPeekAtLastError():
    try:
        return rt().last_error(clear=False)
    except Exception:
        return c.NOT_INITIALIZED


ENTRY_POINTS.update(hipGetLastError=hipGetLastError, hipPeekAtLastError=hipPeekAtLastError)


@_entry
def hipDrvGetErrorName(code, out):
    _need(out)
    if code not in c.ERRORS:
        raise HipError(c.INVALID_VALUE, f"unknown error code {code}")
    out[0] = _c_strings(code)[0]


@_entry
def hipDrvGetErrorString(code, out):
    _need(out)
    if code not in c.ERRORS:
        raise HipError(c.INVALID_VALUE, f"unknown error code {code}")
    out[0] = _c_strings(code)[1]


@_entry
def hipInit(flags):
    if flags:
        raise HipError(c.INVALID_VALUE, "hipInit flags must be 0")
    rt()


@_entry
def hipDriverGetVersion(out):
    _need(out)
    out[0] = props.HIP_VERSION


@_entry
def hipRuntimeGetVersion(out):
    _need(out)
    out[0] = props.HIP_VERSION


# ---- devices
@_entry
def hipGetDeviceCount(out):
    _need(out)
    out[0] = len(rt().devices)


@_entry
def hipSetDevice(index):
    rt().devices.select(index)


@_entry
def hipGetDevice(out):
    _need(out)
    out[0] = rt().devices.current().index


@_entry
def hipDeviceGet(out, ordinal):
    _need(out)
    out[0] = rt().devices.get(ordinal).index


@_entry
def hipDeviceGetName(out, length, index):
    _need(out)
    if length <= 0:
        raise HipError(c.INVALID_VALUE, "name buffer length must be positive")
    name = rt().devices.get(index).props["name"][:length - 1]
    ffi.memmove(out, name + b"\0", len(name) + 1)


@_entry
def hipDeviceTotalMem(out, index):
    _need(out)
    out[0] = rt().devices.get(index).props["totalGlobalMem"]


@_entry
def hipDeviceComputeCapability(major, minor, index):
    _need(major, minor)
    p = rt().devices.get(index).props
    major[0], minor[0] = p["major"], p["minor"]


@_entry
def hipGetDevicePropertiesR0600(out, index):
    _need(out)
    values = rt().devices.get(index).props
    ffi.memmove(out, bytes(ffi.sizeof(out[0])), ffi.sizeof(out[0]))
    for field, value in values.items():
        if field == "uuid":
            out.uuid.bytes = value
        else:
            setattr(out, field, value)
    for flag in props.ARCH_FLAGS:
        setattr(out.arch, flag, 1)


@_entry
def hipDeviceGetAttribute(out, attr, index):
    _need(out)
    out[0] = rt().devices.attribute(attr, index)


@_entry
def hipDeviceSynchronize():
    rt().devices.synchronize()


@_entry
def hipDeviceReset():
    rt().reset_device()


# ---- memory
@_entry
def hipMalloc(out, size):
    _need(out)
    out[0] = _ptr(rt().memory.alloc(size))


@_entry
def hipFree(p):
    rt().memory.free(_int(p))


@_entry
def hipMemGetInfo(free, total):
    _need(free, total)
    free[0], total[0] = rt().memory.info()


@_entry
def hipMemPtrGetInfo(p, out):
    _need(p, out)
    out[0] = rt().memory.allocation_size(_int(p))


@_entry
def hipMemcpy(dst, src, n, kind):
    rt().memory.copy(_int(dst), _int(src), n, kind)


@_entry
def hipMemcpyWithStream(dst, src, n, kind, stream):
    rt().memory.copy(_int(dst), _int(src), n, kind, _int(stream))


@_entry
def hipMemcpyAsync(dst, src, n, kind, stream):
    rt().memory.copy(_int(dst), _int(src), n, kind, _int(stream))


@_entry
def hipMemcpyHtoD(dst, src, n):
    rt().memory.copy(_int(dst), _int(src), n, c.MEMCPY_H2D)


@_entry
def hipMemcpyDtoH(dst, src, n):
    rt().memory.copy(_int(dst), _int(src), n, c.MEMCPY_D2H)


@_entry
def hipMemcpyDtoD(dst, src, n):
    rt().memory.copy(_int(dst), _int(src), n, c.MEMCPY_D2D)


@_entry
def hipMemcpyHtoDAsync(dst, src, n, stream):
    rt().memory.copy(_int(dst), _int(src), n, c.MEMCPY_H2D, _int(stream))


@_entry
def hipMemcpyDtoHAsync(dst, src, n, stream):
    rt().memory.copy(_int(dst), _int(src), n, c.MEMCPY_D2H, _int(stream))


@_entry
def hipMemcpyDtoDAsync(dst, src, n, stream):
    rt().memory.copy(_int(dst), _int(src), n, c.MEMCPY_D2D, _int(stream))


@_entry
def hipMemset(dst, value, n):
    rt().memory.fill(_int(dst), value, 1, n)


@_entry
def hipMemsetAsync(dst, value, n, stream):
    rt().memory.fill(_int(dst), value, 1, n, _int(stream))


@_entry
def hipMemsetD8(dst, value, count):
    rt().memory.fill(_int(dst), value, 1, count)


@_entry
def hipMemsetD8Async(dst, value, count, stream):
    rt().memory.fill(_int(dst), value, 1, count, _int(stream))


@_entry
def hipMemsetD16(dst, value, count):
    rt().memory.fill(_int(dst), value, 2, count)


@_entry
def hipMemsetD16Async(dst, value, count, stream):
    rt().memory.fill(_int(dst), value, 2, count, _int(stream))


@_entry
def hipMemsetD32(dst, value, count):
    rt().memory.fill(_int(dst), value, 4, count)


@_entry
def hipMemsetD32Async(dst, value, count, stream):
    rt().memory.fill(_int(dst), value, 4, count, _int(stream))


# ---- streams
@_entry
def hipStreamCreate(out):
    _need(out)
    out[0] = _ptr(rt().streams.create(0))


@_entry
def hipStreamCreateWithFlags(out, flags):
    _need(out)
    out[0] = _ptr(rt().streams.create(flags))


@_entry
def hipStreamDestroy(stream):
    rt().streams.destroy(_int(stream))


@_entry
def hipStreamQuery(stream):
    rt().streams.synchronize(_int(stream))  # all work is complete once its call returns; faults stick


@_entry
def hipStreamSynchronize(stream):
    rt().streams.synchronize(_int(stream))


@_entry
def hipStreamWaitEvent(stream, event, flags):
    rt().streams.wait_event(_int(stream), _int(event), flags)


@_entry
def hipStreamGetFlags(stream, out):
    _need(out)
    out[0] = rt().streams.get(_int(stream)).flags


@_entry
def hipStreamGetDevice(stream, out):
    _need(out)
    out[0] = rt().streams.get(_int(stream)).device.index


# ---- events
@_entry
def hipEventCreate(out):
    _need(out)
    out[0] = _ptr(rt().events.create(0))


@_entry
def hipEventCreateWithFlags(out, flags):
    _need(out)
    out[0] = _ptr(rt().events.create(flags))


@_entry
def hipEventRecord(event, stream):
    rt().events.record(_int(event), _int(stream))


@_entry
def hipEventSynchronize(event):
    rt().events.synchronize(_int(event))


@_entry
def hipEventElapsedTime(out, start, stop):
    _need(out)
    out[0] = rt().events.elapsed_ms(_int(start), _int(stop))


@_entry
def hipEventQuery(event):
    rt().events.synchronize(_int(event))  # complete once recorded; faults stick


@_entry
def hipEventDestroy(event):
    rt().events.destroy(_int(event))


# ---- modules, functions, launches
@_entry
def hipModuleLoadData(out, image):
    _need(out)
    out[0] = _ptr(rt().modules.load_data(_int(image)))


@_entry
def hipModuleLoadDataEx(out, image, num_options, options, values):
    _need(out)  # JIT options have nothing to act on: code objects arrive compiled
    out[0] = _ptr(rt().modules.load_data(_int(image)))


@_entry
def hipModuleLoad(out, fname):
    _need(out, fname)
    out[0] = _ptr(rt().modules.load_file(ffi.string(fname).decode()))


@_entry
def hipModuleUnload(module):
    rt().modules.unload(_int(module))


@_entry
def hipModuleGetFunction(out, module, kname):
    _need(out, kname)
    out[0] = _ptr(rt().modules.function(_int(module), ffi.string(kname).decode()))


@_entry
def hipFuncGetAttribute(out, attr, func):
    _need(out)
    out[0] = rt().modules.function_attribute(attr, _int(func))


@_entry
def hipFuncSetAttribute(func, attr, value):
    rt().modules.set_function_attribute(_int(func), attr, value)


@_entry
def hipModuleLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
    rt().modules.launch(_int(f), (gx, gy, gz), (bx, by, bz), shared, _int(stream), _int(params), _int(extra))
