"""The emulated HIP runtime: one object per process joining its parts, each a module with one concept:
devices.py (devices, the current device), memory.py (allocations, copies, fills), streams.py (streams and
events), modules.py (code objects, functions, launches), with faults.py, handles.py and threadstate.py.

Entry points take and return plain ints (addresses, handles) and raise HipError; capi.py adapts them
to the C ABI.

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

import threading

from ... import config
from .. import timing
from . import codes as c
from .devices import Devices
from .handles import Handles
from .memory import Memory
from .modules import Module, Modules
from .streams import Event, Events, Stream, Streams
from .threadstate import ThreadState


class Runtime:
    def __init__(self, devices: int = 1, *, strict: bool | None = None, seed: int | None = None,
                 model=None, sample: bool | None = None, trace: int | None = None):
        self.threads = ThreadState()
        self.handles = Handles()
        self.devices = Devices(devices, self.threads, strict=strict, seed=seed, model=model, sample=sample,
                               trace=trace)
        self.streams = Streams(self.devices, self.handles)
        self.events = Events(self.devices, self.handles, self.streams)
        self.memory = Memory(self.devices, self.streams)
        self.modules = Modules(self.devices, self.handles, self.streams, self.threads)

    def set_error(self, code: int) -> None:
        self.threads.error = code

    def last_error(self, clear: bool) -> int:
        """hipGetLastError (clear) / hipPeekAtLastError."""
        t = self.threads
        code = t.error
        if clear:
            t.error = c.SUCCESS
        return code

    def reset_device(self) -> None:
        """hipDeviceReset: free every allocation, stream, event and module mapping of the current device
        and clear its fault. Module and function handles stay valid (mapped again at their next launch)."""
        d = self.devices.current()
        with self.handles.lock, d.lock:
            for h, obj in self.handles.objects():
                if isinstance(obj, (Stream, Event)) and obj.device is d:
                    self.handles.discard(h)
                elif isinstance(obj, Module):
                    obj.forget(d)
            d.reset()


def last_exception() -> BaseException | None:
    """The calling thread's latest failure: the emulator's exception for a kernel fault or an internal
    error, the HipError (with its message) for any other failed call; None if none failed yet."""
    return get().threads.exception


def last_message() -> str | None:
    """The calling thread's latest failed call in words (for a fault: the fault, then what to do)."""
    return get().threads.message


def note_exception(exc: BaseException, message: str | None = None) -> None:
    """Record exc as the calling thread's latest failure (message: its account, if not str(exc))."""
    get().threads.note(exc, message)


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
