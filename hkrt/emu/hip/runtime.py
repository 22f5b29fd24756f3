"""State and semantics of the emulated HIP runtime: devices, memory, streams, events, modules, launches.

Entry points take and return plain ints (addresses, handles) and raise HipError; capi.py adapts them
to the C ABI. Host buffers of memory copies are reached through ctypes at the addresses the caller passes;
images and kernel arguments, whose sizes or pointers come from what they point at, through hostmem (an
unreadable address is a HIP error, not a fault).

Work runs synchronously inside the call that submits it. So streams never hold pending work, queries
always find it complete, and an event records the time at which it is reached: without a timing model,
host wall time (hipEventElapsedTime then includes the emulation time of the work between two records);
with one (HKRT_EMU_MODEL), the device's modelled clock, which every launch advances by its modelled
duration, so elapsed times are predicted device times. Work runs on a device in submission order, so one
clock per device serves all its streams.

A kernel that faults still returns hipSuccess from its launch, as on hardware. The fault
(hipErrorIllegalAddress for a MemoryFault, hipErrorLaunchFailure otherwise) is sticky, as HIP's are: every
later synchronizing call, launch, copy and record on that device returns it, so it reaches the work that
caused it whichever call comes first, until hipDeviceReset (which frees everything the device holds).
Freeing and destroying still succeed, so cleanup does not leak. Each thread's last error carries its own
message (last_exception(): the emulator's exception naming kernel, PC and address, for a fault).
"""
from __future__ import annotations

import ctypes
import itertools
import threading
import time
from dataclasses import dataclass

import numpy as np

from ... import codeobject, config
from .. import machine as m
from .. import timing
from ..errors import EmulationError, MemoryFault
from . import codes as c
from . import hostmem, image, props
from .codes import HipError

ADDRESS_SPACE = m.ADDRESS_SPACE  # [HEAP_BASE, HEAP_BASE + this) is split evenly between the devices
HANDLE_BASE = 0x10_0000_0000    # streams, events, modules, functions: opaque, never dereferenced
INT_MAX = 2**31 - 1
MAX_DEVICES = 64



@dataclass(frozen=True)
class Fault:
    """A kernel fault, kept on its device until hipDeviceReset."""
    code: int
    exception: BaseException

    def error(self) -> HipError:
        err = HipError(self.code, f"{self.exception}; the device is unusable until it is reset "
                                  f"(hipDeviceReset), as a GPU is after a kernel fault")
        err.__cause__ = self.exception  # what hkrt.emu.last_error() gives the caller
        return err


def last_exception() -> BaseException | None:
    """The calling thread's latest failure: the emulator's exception for a kernel fault or an internal
    error, the HipError (with its message) for any other failed call; None if none failed yet."""
    return get()._thread().exception


def last_message() -> str | None:
    """The calling thread's latest failed call in words (for a fault: the fault, then what to do)."""
    return get()._thread().message


def note_exception(exc: BaseException, message: str | None = None) -> None:
    """Record exc as the calling thread's latest failure (message: its account, if not str(exc))."""
    t = get()._thread()
    t.exception, t.message = exc, message or str(exc)


class Device:
    def __init__(self, index: int, machine: m.Machine, base: int, limit: int):
        self.index, self.machine = index, machine
        self.base, self.limit = base, limit           # this device's slice of the address space
        self.lock = threading.RLock()                 # memory and launches of this device
        self.fault: Fault | None = None               # sticky until reset
        self.clock = 0.0                              # modelled device seconds (timing model on)
        self.props = props.properties(index, machine)
        self.null_stream = Stream(self, 0)


class Stream:
    def __init__(self, device: Device, flags: int):
        self.device, self.flags = device, flags


class Event:
    def __init__(self, device: Device, flags: int):
        self.device, self.flags = device, flags
        self.time: float | None = None                # perf_counter() at the latest record


class Module:
    """A loaded code object; loaded onto each further device at its first launch there."""

    def __init__(self, elf: bytes, device: Device, loaded: m.EmuModule):
        self.elf = elf
        self.kernels = loaded.kernels
        self._loaded = {device.index: loaded}
        self._lock = threading.RLock()  # reentrant: see Runtime._lock
        self.functions: dict[str, int] = {}           # kernel name -> function handle

    def on(self, device: Device) -> m.EmuModule:
        with self._lock:
            if device.index not in self._loaded:
                self._loaded[device.index] = device.machine.load(self.elf)
            return self._loaded[device.index]

    def forget(self, device: Device) -> None:
        """Drop the mapping on a device whose memory was reset."""
        with self._lock:
            self._loaded.pop(device.index, None)


class Function:
    def __init__(self, module: Module, kernel: codeobject.Kernel):
        self.module, self.kernel = module, kernel
        self.max_dynamic_lds = props.LDS_PER_BLOCK - kernel.group_segment_fixed_size
        self.carveout = -1


def _address_of(view: memoryview) -> int:
    """Host address of a device allocation's backing bytes."""
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


class Runtime:
    def __init__(self, devices: int = 1, *, strict: bool | None = None, seed: int | None = None,
                 model=None, sample: bool | None = None, trace: int | None = None):
        if not 1 <= devices <= MAX_DEVICES:
            raise ValueError(f"the emulator offers 1 to {MAX_DEVICES} devices, not {devices}")
        span = ADDRESS_SPACE // devices // m.ALIGN * m.ALIGN
        self.devices = []
        for i in range(devices):
            base = m.HEAP_BASE + i * span
            # Each device allocates in its own slice so a pointer names its device (unified addressing).
            machine = m.Machine(strict=strict, seed=seed, model=model, sample=sample, trace=trace,
                                address_base=base, address_limit=base + span)
            self.devices.append(Device(i, machine, base, base + span))
        self._tls = threading.local()
        # Reentrant: this runtime is Python, so a garbage collection inside one HIP call can run a
        # finalizer (hip-python users destroy streams and events in them) that makes another HIP call
        # on the same thread. The re-entered call touches other handles, so letting it in is safe.
        self._lock = threading.RLock()
        self._handles: dict[int, object] = {}
        self._next_handle = itertools.count(HANDLE_BASE, 16)

    # ---- per-thread state: current device and last error
    def _thread(self):
        t = self._tls
        if not hasattr(t, "device"):
            t.device, t.error, t.last_report, t.collectors = 0, c.SUCCESS, None, []
            t.exception = t.message = None
        return t

    def collectors(self) -> list:
        """Lists that receive every report of this thread's launches (hkrt.emu.collect_reports)."""
        return self._thread().collectors

    def last_report(self):
        """The timing model's report of this thread's latest launch, or None."""
        return self._thread().last_report

    def set_error(self, code: int) -> None:
        self._thread().error = code

    def last_error(self, clear: bool) -> int:
        t = self._thread()
        code = t.error
        if clear:
            t.error = c.SUCCESS
        return code

    # ---- devices
    def device(self, index: int) -> Device:
        if not 0 <= index < len(self.devices):
            raise HipError(c.INVALID_DEVICE, f"device {index} does not exist ({len(self.devices)} emulated)")
        return self.devices[index]

    def current(self) -> Device:
        return self.devices[self._thread().device]

    def set_device(self, index: int) -> None:
        self._thread().device = self.device(index).index

    def attribute(self, attr: int, index: int) -> int:
        value = props.attribute(self.device(index).props, attr)
        if value is None:
            raise HipError(c.INVALID_VALUE, f"device attribute {attr} is not supported")
        return value

    def _sync(self, *devices: Device) -> None:
        """Fail with the fault of any of these devices (sticky: every call until a reset)."""
        for d in devices:
            fault = d.fault
            if fault is not None:
                raise fault.error()

    def device_synchronize(self) -> None:
        self._sync(self.current())

    def device_reset(self) -> None:
        """hipDeviceReset: free every allocation, stream, event and module mapping of the current device
        and clear its fault. Module and function handles stay valid (mapped again at their next launch)."""
        d = self.current()
        with self._lock, d.lock:
            for h, obj in list(self._handles.items()):
                if isinstance(obj, (Stream, Event)) and obj.device is d:
                    del self._handles[h]
                elif isinstance(obj, Module):
                    obj.forget(d)
            for base, _ in d.machine.memory.blocks():
                d.machine.memory.free(base)
            d.fault, d.clock = None, 0.0

    # ---- memory
    def _owner(self, addr: int) -> Device | None:
        for d in self.devices:
            if d.base <= addr < d.limit:
                return d
        return None

    def _device_range(self, addr: int, n: int) -> tuple[Device, memoryview] | None:
        """The device bytes at [addr, addr + n), or None if addr is in no device allocation."""
        d = self._owner(addr)
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

    def malloc(self, n: int) -> int:
        if n == 0:
            return 0
        d = self.current()
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
        d = self._owner(addr)
        if d is None:
            raise HipError(c.INVALID_VALUE, f"{addr:#x} is not a device allocation")
        with d.lock:
            try:
                d.machine.memory.free(addr)
            except ValueError as e:
                raise HipError(c.INVALID_VALUE, str(e)) from None

    def mem_info(self) -> tuple[int, int]:
        d = self.current()
        with d.lock:
            mem = d.machine.memory
            return mem.capacity - mem.used, mem.capacity

    def allocation_size(self, addr: int) -> int:
        d = self._owner(addr)
        hit = d.machine.memory.find(addr) if d else None
        if hit is None:
            raise HipError(c.INVALID_VALUE, f"{addr:#x} is not in a device allocation")
        return hit[1]

    def memcpy(self, dst: int, src: int, n: int, kind: int, stream: int = 0) -> None:
        """hipMemcpy* (synchronous or not: the work is done before the call returns).

        The direction is taken from where the pointers lie, as HIP does with unified addressing;
        a side that `kind` says is device memory must be, since the host cannot reach it otherwise.
        """
        if kind not in (c.MEMCPY_H2H, c.MEMCPY_H2D, c.MEMCPY_D2H, c.MEMCPY_D2D, c.MEMCPY_DEFAULT,
                        c.MEMCPY_D2D_NO_CU):
            raise HipError(c.INVALID_MEMCPY_DIRECTION)
        queue = self.stream(stream)
        if n == 0:
            return
        if not dst or not src:
            raise HipError(c.INVALID_VALUE, "null pointer")
        to, frm = self._device_range(dst, n), self._device_range(src, n)
        if to is None and kind in (c.MEMCPY_H2D, c.MEMCPY_D2D, c.MEMCPY_D2D_NO_CU):
            raise HipError(c.INVALID_VALUE, f"destination {dst:#x}+{n} is not device memory")
        if frm is None and kind in (c.MEMCPY_D2H, c.MEMCPY_D2D, c.MEMCPY_D2D_NO_CU):
            raise HipError(c.INVALID_VALUE, f"source {src:#x}+{n} is not device memory")
        self._sync(queue.device, *(r[0] for r in (to, frm) if r))
        ctypes.memmove(_address_of(to[1]) if to else dst, _address_of(frm[1]) if frm else src, n)

    def memset(self, dst: int, value: int, width: int, count: int, stream: int = 0) -> None:
        """Fill `count` elements of `width` bytes (1, 2 or 4) with value."""
        self.stream(stream)
        if count == 0:
            return
        hit = self._device_range(dst, count * width) if dst else None
        if hit is None:
            raise HipError(c.INVALID_VALUE, f"{dst:#x} is not device memory")
        self._sync(hit[0])
        np.frombuffer(hit[1], dtype=f"<u{width}")[:] = value & ((1 << 8 * width) - 1)

    # ---- handles
    def _new_handle(self, obj) -> int:
        with self._lock:
            h = next(self._next_handle)
            self._handles[h] = obj
            return h

    def _get(self, h: int, cls, code: int = c.INVALID_HANDLE):
        obj = self._handles.get(h)
        if not isinstance(obj, cls):
            raise HipError(code, f"{h:#x} is not a {cls.__name__.lower()} handle")
        return obj

    def _drop(self, h: int, cls) -> None:
        with self._lock:
            self._get(h, cls)
            del self._handles[h]

    # ---- streams
    def stream(self, h: int) -> Stream:
        if h in (0, c.STREAM_PER_THREAD):
            return self.current().null_stream
        return self._get(h, Stream)

    def stream_create(self, flags: int) -> int:
        if flags not in (0, c.STREAM_NON_BLOCKING):
            raise HipError(c.INVALID_VALUE, f"stream flags {flags:#x}")
        return self._new_handle(Stream(self.current(), flags))

    def stream_destroy(self, h: int) -> None:
        self._drop(h, Stream)

    def stream_synchronize(self, h: int) -> None:
        self._sync(self.stream(h).device)

    def stream_wait_event(self, h: int, e: int, flags: int) -> None:
        self.stream(h)
        self._get(e, Event)
        if flags not in (0, 1):  # hipEventWaitDefault, hipEventWaitExternal
            raise HipError(c.INVALID_VALUE, f"wait flags {flags:#x}")

    # ---- events
    def event_create(self, flags: int) -> int:
        if flags & ~c.EVENT_FLAGS & 0xFFFFFFFF:
            raise HipError(c.INVALID_VALUE, f"event flags {flags:#x}")
        if flags & c.EVENT_INTERPROCESS and not flags & c.EVENT_DISABLE_TIMING:
            raise HipError(c.INVALID_VALUE, "an interprocess event must disable timing")
        return self._new_handle(Event(self.current(), flags))

    def event(self, h: int) -> Event:
        return self._get(h, Event)

    def event_destroy(self, h: int) -> None:
        self._drop(h, Event)

    def event_record(self, e: int, s: int) -> None:
        ev, st = self.event(e), self.stream(s)
        if ev.device is not st.device:
            raise HipError(c.INVALID_HANDLE, "event and stream belong to different devices")
        self._sync(st.device)
        ev.time = st.device.clock if st.device.machine.model else time.perf_counter()

    def event_synchronize(self, e: int) -> None:
        self._sync(self.event(e).device)

    def event_elapsed_ms(self, start: int, stop: int) -> float:
        a, b = self.event(start), self.event(stop)
        if a.time is None or b.time is None:
            raise HipError(c.INVALID_HANDLE, "event not recorded")
        if (a.flags | b.flags) & c.EVENT_DISABLE_TIMING or a.device is not b.device:
            raise HipError(c.INVALID_HANDLE, "events without timing or of different devices")
        return (b.time - a.time) * 1000.0

    # ---- modules and functions
    def module_load_data(self, addr: int) -> int:
        if not addr:
            raise HipError(c.INVALID_VALUE, "null image")
        return self._load(image.image_at(
            lambda off, n: hostmem.read(addr + off, n, "code object image", c.INVALID_IMAGE)))

    def module_load_file(self, path: str) -> int:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise HipError(c.FILE_NOT_FOUND, f"{path}: {e.strerror}") from None
        return self._load(data)

    def _load(self, data: bytes) -> int:
        elf = image.select(data)
        d = self.current()
        try:
            loaded = d.machine.load(elf)
        except codeobject.WrongArchitectureError as e:
            raise HipError(c.NO_BINARY_FOR_GPU, str(e)) from None
        except codeobject.CodeObjectError as e:
            raise HipError(c.INVALID_IMAGE, str(e)) from None
        return self._new_handle(Module(elf, d, loaded))

    def module_unload(self, h: int) -> None:
        with self._lock:
            mod = self._get(h, Module)
            for f in mod.functions.values():
                self._handles.pop(f, None)
            del self._handles[h]

    def module_get_function(self, h: int, name: str) -> int:
        mod = self._get(h, Module)
        if name not in mod.kernels:
            raise HipError(c.NOT_FOUND, f"no kernel {name!r} in the module (has: {', '.join(mod.kernels)})")
        with self._lock:
            if name not in mod.functions:
                mod.functions[name] = h_f = next(self._next_handle)
                self._handles[h_f] = Function(mod, mod.kernels[name])
            return mod.functions[name]

    def func_get_attribute(self, attr: int, h: int) -> int:
        f = self._get(h, Function)
        k = f.kernel
        version = 10 * 9 + 5  # HIP reports 10 * major + minor of the device: gfx950 -> 95
        values = {
            c.FUNC_MAX_THREADS_PER_BLOCK: k.max_flat_workgroup_size,
            c.FUNC_SHARED_SIZE_BYTES: k.group_segment_fixed_size,
            c.FUNC_CONST_SIZE_BYTES: 0,
            c.FUNC_LOCAL_SIZE_BYTES: k.private_segment_fixed_size,
            c.FUNC_NUM_REGS: k.vgpr_count,
            c.FUNC_PTX_VERSION: version,
            c.FUNC_BINARY_VERSION: version,
            c.FUNC_CACHE_MODE_CA: 0,
            c.FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES: f.max_dynamic_lds,
            c.FUNC_PREFERRED_SHARED_MEMORY_CARVEOUT: f.carveout,
        }
        if attr not in values:
            raise HipError(c.INVALID_VALUE, f"function attribute {attr}")
        return values[attr]

    def func_set_attribute(self, h: int, attr: int, value: int) -> None:
        f = self._get(h, Function, c.INVALID_DEVICE_FUNCTION)
        if attr == c.FUNC_MAX_DYNAMIC_SHARED_SIZE_BYTES:
            if not 0 <= value <= props.LDS_PER_BLOCK - f.kernel.group_segment_fixed_size:
                raise HipError(c.INVALID_VALUE, f"{value} bytes of dynamic LDS cannot fit")
            f.max_dynamic_lds = value
        elif attr == c.FUNC_PREFERRED_SHARED_MEMORY_CARVEOUT:
            if not -1 <= value <= 100:
                raise HipError(c.INVALID_VALUE, f"carveout {value}%")
            f.carveout = value
        else:
            raise HipError(c.INVALID_VALUE, f"function attribute {attr} cannot be set")

    # ---- launches
    def launch(self, h: int, grid: tuple, block: tuple, dynamic_lds: int, stream: int,
               params: int, extra: int) -> None:
        """hipModuleLaunchKernel, with HIP's checks in HIP's order and HIP's error codes."""
        f = self._get(h, Function)
        queue = self.stream(stream)
        if grid[0] > INT_MAX or grid[1] > 65536 or grid[2] > 65536:
            raise HipError(c.INVALID_VALUE, f"grid {grid} exceeds the maximum grid size")
        threads = block[0] * block[1] * block[2]
        if 0 in grid or 0 in block or threads > m.MAX_WORKGROUP_SIZE:
            raise HipError(c.INVALID_VALUE, f"grid {grid} / block {block} is not a valid launch")
        if any(g * b >= 2**32 for g, b in zip(grid, block)):
            raise HipError(c.INVALID_VALUE, "grid * block reaches 2**32 work-items in a dimension")
        if dynamic_lds > props.LDS_PER_BLOCK:
            raise HipError(c.INVALID_VALUE, f"{dynamic_lds} bytes of dynamic LDS exceed {props.LDS_PER_BLOCK}")
        if queue.device is not self.current():
            raise HipError(c.INVALID_HANDLE, "the stream belongs to another device than the current one")
        if params and extra:
            raise HipError(c.INVALID_VALUE, "both kernelParams and extra given")
        k = f.kernel
        if k.explicit_args and not params and not extra:
            raise HipError(c.INVALID_VALUE, f"kernel {k.name} takes arguments, none given")
        if threads > k.max_flat_workgroup_size:
            raise HipError(c.LAUNCH_FAILURE, f"{threads} threads exceed the launch bounds "
                                             f"({k.max_flat_workgroup_size}) of {k.name}")
        if k.group_segment_fixed_size + dynamic_lds > props.LDS_PER_BLOCK:
            raise HipError(c.LAUNCH_OUT_OF_RESOURCES, f"{k.group_segment_fixed_size} static + {dynamic_lds} "
                                                      f"dynamic bytes of LDS exceed {props.LDS_PER_BLOCK}")
        if dynamic_lds > f.max_dynamic_lds:
            raise HipError(c.INVALID_VALUE, f"{dynamic_lds} bytes of dynamic LDS exceed the function's "
                                            f"MaxDynamicSharedMemorySize {f.max_dynamic_lds}")
        kernarg = _explicit_kernarg(k, params, extra)
        d = queue.device
        self._sync(d)
        loaded = f.module.on(d)
        with d.lock:
            try:
                stats = d.machine.launch(loaded, k.name, grid, block, dynamic_lds, kernarg)
                if stats.report is not None:
                    d.clock += stats.report.seconds
                    t = self._thread()
                    t.last_report = stats.report
                    for sink in t.collectors:
                        sink.append(stats.report)
            except EmulationError as e:
                note_exception(e)
                d.fault = Fault(c.ILLEGAL_ADDRESS if isinstance(e, MemoryFault) else c.LAUNCH_FAILURE, e)
                self.set_error(d.fault.code)
            except Exception as e:  # an emulator defect, not a kernel fault: fail the launch itself
                note_exception(e)
                raise HipError(c.LAUNCH_FAILURE, f"emulator error: {e}") from e


def _explicit_kernarg(k: codeobject.Kernel, params: int, extra: int) -> bytes:
    """The explicit-argument bytes from kernelParams (pointers to each argument) or extra (one buffer)."""
    args = k.explicit_args
    buf = bytearray(max((a.offset + a.size for a in args), default=0))
    if params:
        for i, a in enumerate(args):
            p = hostmem.read_pointer(params + 8 * i, f"kernelParams[{i}]")
            if not p:
                raise HipError(c.INVALID_VALUE, f"kernelParams[{i}] is NULL")
            buf[a.offset:a.offset + a.size] = hostmem.read(p, a.size, f"argument {i} (kernelParams[{i}])")
    elif extra:
        words = [hostmem.read_pointer(extra + 8 * i, "extra") for i in range(5)]
        if (words[0], words[2], words[4]) != (c.LAUNCH_PARAM_BUFFER_POINTER, c.LAUNCH_PARAM_BUFFER_SIZE,
                                              c.LAUNCH_PARAM_END) or not words[3]:
            raise HipError(c.INVALID_VALUE, "extra is not {BUFFER_POINTER, p, BUFFER_SIZE, &size, END}")
        ptr, size = words[1], hostmem.read_pointer(words[3], "extra's buffer size")
        if args and (not ptr or not size):
            raise HipError(c.INVALID_VALUE, f"kernel {k.name} takes arguments, the buffer is empty")
        if not args and size:
            raise HipError(c.LAUNCH_OUT_OF_RESOURCES, f"kernel {k.name} takes no arguments")
        data = hostmem.read(ptr, min(size, len(buf)), "extra's argument buffer")  # only what is used
        for a in args:  # as HIP: an argument only partly inside the buffer is left zero
            if a.offset + a.size <= size:
                buf[a.offset:a.offset + a.size] = data[a.offset:a.offset + a.size]
    return bytes(buf)


# ---- the process-wide runtime, configured by hkrt.emu.activate() or the environment
_runtime: Runtime | None = None
_config: dict = {}
_config_lock = threading.Lock()


def configure(devices: int | None = None, strict: bool | None = None, seed: int | None = None,
              model=None, sample: bool | None = None, trace: int | None = None) -> None:
    """Set options before the first HIP call; repeating the same options later is fine."""
    if model is not None:
        model = timing.get_model(model)  # an unknown name fails here, listing the known ones
    if trace is not None and (not isinstance(trace, int) or isinstance(trace, bool) or trace < 0):
        raise ValueError(f"trace is a number of workgroups (0 or more), not {trace!r}")
    asked = {k: v for k, v in (("devices", devices), ("strict", strict), ("seed", seed), ("model", model),
                               ("sample", sample), ("trace", trace)) if v is not None}
    with _config_lock:
        if _runtime is not None:
            m0 = _runtime.devices[0].machine
            have = {"devices": len(_runtime.devices), "strict": m0.strict, "seed": m0.seed,
                    "model": m0.model, "sample": m0.sample,
                    "trace": m0.trace_workgroups}
            clash = {k: v for k, v in asked.items() if have[k] != v}
            if clash:
                raise RuntimeError(f"the emulated HIP runtime is already running with {have}; "
                                   f"cannot change {clash} in this process")
        _config.update(asked)


def get() -> Runtime:
    global _runtime
    if _runtime is None:
        with _config_lock:
            if _runtime is None:
                devices = _config.get("devices") or config.get("HKRT_EMU_DEVICES")
                _runtime = Runtime(devices, strict=_config.get("strict"), seed=_config.get("seed"),
                                   model=_config.get("model"), sample=_config.get("sample"),
                                   trace=_config.get("trace"))
    return _runtime
