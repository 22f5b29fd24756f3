"""Code objects and kernel launches: loading modules onto devices, their functions and attributes, and
hipModuleLaunchKernel with HIP's checks. Images and kernel arguments, whose sizes or pointers come from
what they point at, are read through hostmem (an unreadable address is a HIP error, not a fault).

A kernel that faults still returns hipSuccess from its launch, as on hardware; the fault sticks to its
device (faults.py)."""
from __future__ import annotations

import threading

from ... import codeobject
from .. import chip
from .. import machine as m
from ..errors import EmulationError, MemoryFault
from . import codes as c
from . import hostmem, image, props
from .codes import HipError
from .devices import Device, Devices
from .faults import Fault, check_faults
from .handles import Handles
from .streams import Streams
from .threadstate import ThreadState

INT_MAX = 2**31 - 1


class Module:
    """A loaded code object; loaded onto each further device at its first launch there."""

    def __init__(self, elf: bytes, device: Device, loaded: m.EmuModule):
        self.elf = elf
        self.kernels = loaded.kernels
        self._loaded = {device.index: loaded}
        self._lock = threading.RLock()  # reentrant: see Handles.lock
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


class Modules:
    def __init__(self, devices: Devices, handles: Handles, streams: Streams, threads: ThreadState):
        self._devices, self._handles, self._streams, self._threads = devices, handles, streams, threads

    def load_data(self, addr: int) -> int:
        if not addr:
            raise HipError(c.INVALID_VALUE, "null image")
        return self._load(image.image_at(
            lambda off, n: hostmem.read(addr + off, n, "code object image", c.INVALID_IMAGE)))

    def load_file(self, path: str) -> int:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise HipError(c.FILE_NOT_FOUND, f"{path}: {e.strerror}") from None
        return self._load(data)

    def _load(self, data: bytes) -> int:
        elf = image.select(data)
        d = self._devices.current()
        try:
            loaded = d.machine.load(elf)
        except codeobject.WrongArchitectureError as e:
            raise HipError(c.NO_BINARY_FOR_GPU, str(e)) from None
        except codeobject.CodeObjectError as e:
            raise HipError(c.INVALID_IMAGE, str(e)) from None
        return self._handles.new(Module(elf, d, loaded))

    def unload(self, h: int) -> None:
        with self._handles.lock:
            mod = self._handles.get(h, Module)
            for f in mod.functions.values():
                self._handles.discard(f)
            self._handles.discard(h)

    def function(self, h: int, name: str) -> int:
        """hipModuleGetFunction: one handle per kernel, made at its first request."""
        mod = self._handles.get(h, Module)
        if name not in mod.kernels:
            raise HipError(c.NOT_FOUND, f"no kernel {name!r} in the module (has: {', '.join(mod.kernels)})")
        with self._handles.lock:
            if name not in mod.functions:
                mod.functions[name] = self._handles.new(Function(mod, mod.kernels[name]))
            return mod.functions[name]

    def function_attribute(self, attr: int, h: int) -> int:
        f = self._handles.get(h, Function)
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

    def set_function_attribute(self, h: int, attr: int, value: int) -> None:
        f = self._handles.get(h, Function, c.INVALID_DEVICE_FUNCTION)
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

    def launch(self, h: int, grid: tuple, block: tuple, dynamic_lds: int, stream: int,
               params: int, extra: int) -> None:
        """hipModuleLaunchKernel, with HIP's checks in HIP's order and HIP's error codes."""
        f = self._handles.get(h, Function)
        queue = self._streams.get(stream)
        if grid[0] > INT_MAX or grid[1] > 65536 or grid[2] > 65536:
            raise HipError(c.INVALID_VALUE, f"grid {grid} exceeds the maximum grid size")
        threads = block[0] * block[1] * block[2]
        if 0 in grid or 0 in block or threads > chip.MAX_WORKGROUP_SIZE:
            raise HipError(c.INVALID_VALUE, f"grid {grid} / block {block} is not a valid launch")
        if any(g * b >= 2**32 for g, b in zip(grid, block)):
            raise HipError(c.INVALID_VALUE, "grid * block reaches 2**32 work-items in a dimension")
        if dynamic_lds > props.LDS_PER_BLOCK:
            raise HipError(c.INVALID_VALUE, f"{dynamic_lds} bytes of dynamic LDS exceed {props.LDS_PER_BLOCK}")
        if queue.device is not self._devices.current():
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
        check_faults(d)
        loaded = f.module.on(d)
        t = self._threads
        with d.lock:
            try:
                stats = d.machine.launch(loaded, k.name, grid, block, dynamic_lds, kernarg)
                if stats.report is not None:
                    d.clock += stats.report.seconds
                    t.last_report = stats.report
                    for sink in t.collectors:
                        sink.append(stats.report)
            except EmulationError as e:
                t.note(e)
                d.fault = Fault(c.ILLEGAL_ADDRESS if isinstance(e, MemoryFault) else c.LAUNCH_FAILURE, e)
                t.error = d.fault.code
            except Exception as e:  # an emulator defect, not a kernel fault: fail the launch itself
                t.note(e)
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
