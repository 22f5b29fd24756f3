"""hkrt: ahead-of-time compiled HipKittens-style bf16 GEMM kernels for AMD gfx950, driven from numpy.

    import hkrt
    c = hkrt.gemm(a, b)          # numpy in, numpy out; a real gfx950 GPU, else the emulator

See README.md for devices (HKRT_DEVICE), weights kept on the device (hkrt.Weight), device arrays, several
devices (hkrt.multi.gemm) and Dask (hkrt.dask, with `pip install hkrt[dask]`).
"""
from .array import DeviceArray, Event, Stream, asarray, bfloat16, empty
from .interop import from_dlpack
from .devices import Device, devices, get_device
from .errors import (DeviceMemoryError, DeviceNotFoundError, HipError, HkrtError, KernelNotFoundError,
                     LaunchConfigError)
from .gemm import Weight, gemm
from .prepared import PreparedGemm, plan
from . import multi

__version__ = "0.1.0"

__all__ = ["gemm", "plan", "PreparedGemm", "Weight", "DeviceArray", "asarray", "from_dlpack", "empty", "Stream",
           "Event", "bfloat16", "Device", "devices", "get_device", "multi", "HkrtError", "HipError",
           "DeviceNotFoundError", "KernelNotFoundError",
           "LaunchConfigError", "DeviceMemoryError"]
