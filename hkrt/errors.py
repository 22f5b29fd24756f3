"""Exceptions hkrt raises. Bad user input raises TypeError or ValueError instead."""


class HkrtError(RuntimeError):
    """Base class for hkrt's runtime errors."""


class HipError(HkrtError):
    """A HIP call failed; names the call and HIP's error."""

    def __init__(self, call: str, code: int, name: str, detail: str | None = None):
        msg = f"{call} failed: {name} ({code})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)
        self.call, self.code, self.name, self.detail = call, code, name, detail


class DeviceNotFoundError(HkrtError):
    """The requested device does not exist here."""


class KernelNotFoundError(HkrtError):
    """No built kernel for the request (missing variant, or nothing built for the architecture)."""


class LaunchConfigError(HkrtError, ValueError):
    """A launch that the kernel or the device cannot take (threads, grid, LDS)."""


class DeviceMemoryError(HkrtError, MemoryError):
    """Device memory exhausted even after emptying the allocator's cache."""
