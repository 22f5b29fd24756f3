"""Device selection: a real gfx950 GPU through ROCm when one is present, otherwise the emulator.

The choice is per process (hip-python binds one libamdhip64): `HKRT_DEVICE` or the first explicit
request decides it. Accepted: "auto" (default), "gpu" / "hip" (a real gfx950, error if absent),
"emu" (the emulator), each optionally with ":N" for a device index.
"""
from __future__ import annotations

import ctypes.util
import glob
import os
import sys
import threading
from dataclasses import dataclass, field

from . import config
from .driver.base import DeviceInfo, Driver
from .manifest import TARGET_ARCH
from .errors import DeviceNotFoundError

ARCH = TARGET_ARCH
GFX950_TARGET_VERSION = "90500"  # KFD topology encoding of gfx950 (major*10000 + minor*100 + stepping)

_lock = threading.RLock()
_backend: tuple[str, Driver] | None = None
_devices: dict[int, "Device"] = {}
_current = threading.local()


def gfx950_present() -> bool:
    """ROCm's runtime library and a gfx950 agent in the kernel driver's topology."""
    if not os.path.exists("/dev/kfd"):
        return False
    if not (ctypes.util.find_library("amdhip64") or glob.glob("/opt/rocm*/lib/libamdhip64.so*")):
        return False
    for props in glob.glob("/sys/class/kfd/kfd/topology/nodes/*/properties"):
        try:
            for line in open(props):
                if line.split()[:2] == ["gfx_target_version", GFX950_TARGET_VERSION]:
                    return True
        except OSError:
            continue
    return False


def parse_spec(spec: str | int | None) -> tuple[str, int | None]:
    """("auto" | "gpu" | "emu", index or None) from a device spec."""
    if spec is None:
        spec = config.get("HKRT_DEVICE")
    if isinstance(spec, int):
        return "auto", spec
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string like 'emu', 'gpu:1' or an int, not {type(spec).__name__}")
    kind, _, idx = spec.strip().lower().partition(":")
    kind = {"hip": "gpu", "rocm": "gpu", "emulator": "emu", "cpu": "emu"}.get(kind, kind)
    if kind not in ("auto", "gpu", "emu"):
        raise ValueError(f"unknown device {spec!r}: use 'auto', 'gpu' or 'emu', optionally with ':N'")
    try:
        index = int(idx) if idx else None
    except ValueError:
        raise ValueError(f"bad device index in {spec!r}") from None
    return kind, index


def backend(kind: str = "auto", **emulator_options) -> tuple[str, Driver]:
    """The process's backend ("gpu" or "emu") and its driver, chosen once. emulator_options (model,
    sample, strict, ...: see hkrt.emu.activate) configure the emulator when it is the one chosen."""
    global _backend
    with _lock:
        if _backend is not None:
            if kind != "auto" and kind != _backend[0]:
                raise DeviceNotFoundError(f"this process already uses the {_backend[0]} backend; the backend "
                                          f"is chosen once per process (set HKRT_DEVICE before the first call)")
            if emulator_options and _backend[0] == "emu":
                from . import emu
                emu.activate(**emulator_options)  # the same options again are fine; others are refused
            return _backend
        from .driver.hip import HipDriver
        if kind == "gpu" or (kind == "auto" and gfx950_present()):
            if not gfx950_present():
                raise DeviceNotFoundError("no gfx950 GPU here: ROCm's libamdhip64 and a gfx950 device in "
                                          "/sys/class/kfd are both needed (use HKRT_DEVICE=emu for the emulator)")
            _backend = ("gpu", HipDriver())
        else:
            from . import emu
            emu.activate(**emulator_options)
            print("hkrt: no gfx950 GPU found; running on the gfx950 emulator" if kind == "auto" else
                  "hkrt: running on the gfx950 emulator, as requested", file=sys.stderr)
            _backend = ("emu", HipDriver(emulation=emu.HipEmulation()))
        return _backend


@dataclass(eq=False)
class Device:
    index: int
    kind: str               # "gpu" or "emu"
    info: DeviceInfo
    driver: Driver = field(repr=False)
    generation: int = 0     # how many resets: what a handle or block from before one is told apart by

    @property
    def arch(self) -> str:
        return self.info.arch

    def activate(self) -> None:
        """Make this the calling thread's current HIP device (HIP's current device is per thread)."""
        if getattr(_current, "index", None) != self.index:
            self.driver.set_device(self.index)
            _current.index = self.index

    @property
    def allocator(self):
        a = self.__dict__.get("_allocator")
        if a is None:
            from .memory import allocator_for
            a = self._allocator = allocator_for(self)
        return a

    def synchronize(self) -> None:
        self.activate()
        self.driver.synchronize()

    def reset(self) -> None:
        """Recover from a kernel fault. A fault leaves the device refusing all work (as a GPU does), each
        call raising HipError with the fault's detail, until this: it frees every allocation, stream, event
        and loaded kernel of the device; its DeviceArrays, Weights and Streams refuse to be used after it."""
        from . import prepared, registry
        from .memory import allocator_for
        with _lock:
            self.generation += 1  # first: a block given back from now on is known to be gone
            self.activate()
            allocator_for(self).forget_all()
            registry.forget(self)
            prepared.forget(self)
            self.driver.reset()

    def __str__(self) -> str:
        return f"{self.kind}:{self.index} ({self.info.name}, {self.info.arch})"


def get_device(spec: str | int | Device | None = None) -> Device:
    """The device a spec names (default: HKRT_DEVICE, else the best present)."""
    if isinstance(spec, Device):
        return spec
    kind, index = parse_spec(spec)
    kind, driver = backend(kind)
    index = 0 if index is None else index
    with _lock:
        dev = _devices.get(index)
        if dev is None:
            count = driver.device_count()
            if not 0 <= index < count:
                raise DeviceNotFoundError(f"device {kind}:{index} does not exist ({count} {kind} device"
                                          f"{'s' if count != 1 else ''} present)")
            info = driver.device_info(index)
            if info.arch != ARCH:
                raise DeviceNotFoundError(f"device {kind}:{index} is {info.arch}; hkrt's kernels are built for {ARCH}")
            dev = _devices[index] = Device(index=index, kind=kind, info=info, driver=driver)
    return dev


def devices() -> list[Device]:
    """Every usable device of the process's backend."""
    _, driver = backend()
    return [get_device(i) for i in range(driver.device_count())]
