"""The gfx950 emulator, and the switch that puts hip-python on it.

activate() loads the emulated libamdhip64.so before hip-python opens one, so every `from hip import hip`
call in this process then runs on emulated gfx950 devices. HKRT_EMULATE=1 activates on import of
this package; `LD_PRELOAD=$(python -m hkrt.emu libpath)` does the same for any hip-python program.
Options: the HKRT_EMU_* variables (hkrt.config lists them: device count, memory, strict mode, seed,
budgets, timing model, sampling, trace).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading

from .. import config
from ..driver.base import Emulation

_lock = threading.Lock()
_library: ctypes.CDLL | None = None


def _mapped_hip_libraries() -> set[str]:
    """Real paths of every libamdhip64 mapped into this process."""
    with open("/proc/self/maps") as maps:
        fields = [line.split(None, 5) for line in maps]
    paths = {f[5].strip().removesuffix(" (deleted)") for f in fields if len(f) == 6}
    return {os.path.realpath(p) for p in paths if os.path.basename(p).startswith("libamdhip64.so")}


def activate(devices: int | None = None, *, strict: bool | None = None, seed: int | None = None,
             model=None, sample: bool | None = None, trace: int | None = None) -> str:
    """Make hip-python use emulated gfx950 devices in this process; returns the library's path.

    Idempotent. devices, strict, seed, model ("mi355x", "mi350x": time every launch on that GPU's timing
    model; or a timing.ChipModel, e.g. one with a parameter changed), sample (time a representative subset
    of each large launch) and trace (record every instruction the first `trace` workgroups of each timed
    launch issue, in its report's .trace) apply to every emulated device (see machine.Machine) and must be
    given before the first HIP call; repeating the same values later is fine.
    """
    global _library
    from .hip import build, runtime

    config.check("emulator")  # a bad HKRT_EMU_* value fails here, by name, not as a failed hipInit later
    with _lock:
        runtime.configure(devices=devices, strict=strict, seed=seed, model=model, sample=sample, trace=trace)
        if _library is None:
            path = build.build()
            foreign = _mapped_hip_libraries() - {os.path.realpath(path)}
            if foreign:
                raise RuntimeError(f"a real HIP runtime ({', '.join(sorted(foreign))}) is already loaded in this "
                                   f"process; call hkrt.emu.activate() (or set HKRT_EMULATE=1) before the "
                                   f"first HIP call")
            _library = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        return _library._name


def is_active() -> bool:
    """Whether HIP calls in this process go to the emulator (through activate() or LD_PRELOAD)."""
    if _library is not None:
        return True
    from .hip import build
    return os.path.realpath(build.path()) in _mapped_hip_libraries()


def last_error() -> BaseException | None:
    """The calling thread's latest failed HIP call, as an exception: for a kernel fault the emulator's
    (its message names kernel, PC and address), otherwise the runtime's own with its message; or None."""
    from .hip import runtime
    return runtime.last_exception()


def error_detail() -> str | None:
    """The calling thread's latest failed call in words: what the HIP driver adds to its error."""
    from .hip import runtime
    return runtime.last_message()


class HipEmulation(Emulation):
    """This emulator as hkrt's HIP driver sees it."""

    def error_detail(self) -> str | None:
        return error_detail()

    def collect_reports(self):
        return collect_reports()

    def timing_model(self):
        from .hip import runtime
        return runtime.get().devices[0].machine.model

    def skip_kernels(self):
        return skip_kernels()


def last_report():
    """The timing model's report (hkrt.emu.timing.LaunchReport) of this thread's latest emulated launch,
    or None when no model is on or nothing was launched."""
    from .hip import runtime
    return runtime.get().threads.last_report


@contextlib.contextmanager
def collect_reports():
    """Collect the timing model's reports of the launches this thread makes inside the block:
    `with hkrt.emu.collect_reports() as reports: hkrt.gemm(...)`."""
    from .hip import runtime
    sinks = runtime.get().threads.collectors
    out: list = []
    sinks.append(out)
    try:
        yield out
    finally:
        sinks.remove(out)


@contextlib.contextmanager
def skip_kernels():
    """Inside this block emulated launches do all their host-side work but do not execute the kernel
    (results are not computed): for timing the host path of a call, which on the emulator otherwise
    includes the kernel's emulation. Process-wide: no other thread should launch work meanwhile."""
    from .hip import runtime
    machines = [d.machine for d in runtime.get().devices]
    before = [m.execute for m in machines]
    for m in machines:
        m.execute = False
    try:
        yield
    finally:
        for m, execute in zip(machines, before):
            m.execute = execute


if config.get("HKRT_EMULATE"):
    activate()
