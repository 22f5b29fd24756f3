"""Kernel faults: sticky on their device until hipDeviceReset, reported by every later call that touches it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .codes import HipError

if TYPE_CHECKING:
    from .devices import Device


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


def check_faults(*devices: Device) -> None:
    """Fail with the fault of any of these devices (sticky: every call until a reset)."""
    for d in devices:
        fault = d.fault
        if fault is not None:
            raise fault.error()
