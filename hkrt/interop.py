"""Arrays to and from other libraries without copies: DLPack (both capsule forms) and the CUDA array
interface in its ROCm form (hip-python's device arrays, CuPy's ROCm build, Numba).

The protocols, as implemented here (DLPack 1.x and the array API standard's `__dlpack__`, CAI version 3):
- DLPack describes a tensor by device (type, id), dtype (code, bits, lanes), shape, strides in elements
  (absent: C-contiguous) and a byte offset. A capsule named "dltensor" holds a DLManagedTensor,
  "dltensor_versioned" a DLManagedTensorVersioned (which adds a version and read-only/copied flags). The
  consumer renames the capsule "used_..." and calls the tensor's deleter when it is done; an unconsumed
  capsule calls it when collected.
- `__dlpack__(stream=s)`: s is the consumer's stream; the producer orders its pending work before it. For
  ROCm, None is the legacy default stream, 0 the default stream, larger integers stream handles, and -1
  asks for no synchronisation.
- `__cuda_array_interface__` is a dict: data (pointer, read-only), shape, typestr, strides in bytes (None:
  C-contiguous), version, and stream: the stream the producer's work is ordered on (None: none needed), on
  which the consumer must wait. It carries no device: the consumer is told it (here `device=`).
"""
from __future__ import annotations

import ctypes
import threading
import weakref

import numpy as np

from .array import SUPPORTED, DeviceArray, Event, Stream, as_stream, bfloat16, upload
from .devices import Device, get_device

DL_CPU, DL_CUDA, DL_CUDA_HOST, DL_ROCM, DL_ROCM_HOST = 1, 2, 3, 10, 11
DL_INT, DL_UINT, DL_FLOAT, DL_BFLOAT = 0, 1, 2, 4
FLAG_READ_ONLY, FLAG_IS_COPIED = 1, 2
VERSION = (1, 0)   # the DLPack version exported (its structures have not changed within 1.x)
_DEVICE_NAMES = {DL_CPU: "CPU", DL_CUDA: "CUDA", DL_CUDA_HOST: "CUDA host", 4: "OpenCL", 7: "Vulkan",
                 8: "Metal", 9: "VPI", DL_ROCM: "ROCm", DL_ROCM_HOST: "ROCm host", 13: "CUDA managed",
                 14: "oneAPI", 15: "WebGPU", 16: "Hexagon"}
_DTYPES = {(DL_FLOAT, 16): np.dtype(np.float16), (DL_FLOAT, 32): np.dtype(np.float32), (DL_BFLOAT, 16): bfloat16}
_CODES = {v: k for k, v in _DTYPES.items()}


# -- the C structures (dlpack.h)
class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32), ("dtype", _DataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Managed(ctypes.Structure):
    _fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _ManagedVersioned(ctypes.Structure):
    _fields_ = [("version", _Version), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter),
                ("flags", ctypes.c_uint64), ("dl_tensor", _Tensor)]


# -- capsules, through the C API (the names must outlive every capsule: module-level buffers)
_NAMES = {n: ctypes.create_string_buffer(n) for n in
          (b"dltensor", b"dltensor_versioned", b"used_dltensor", b"used_dltensor_versioned")}
_api = ctypes.pythonapi
_api.PyCapsule_New.restype, _api.PyCapsule_New.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_void_p,
                                                                             ctypes.c_void_p]
_api.PyCapsule_IsValid.restype, _api.PyCapsule_IsValid.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]
_api.PyCapsule_GetPointer.restype, _api.PyCapsule_GetPointer.argtypes = ctypes.c_void_p, [ctypes.c_void_p,
                                                                                         ctypes.c_void_p]
_api.PyCapsule_SetName.restype, _api.PyCapsule_SetName.argtypes = ctypes.c_int, [ctypes.py_object, ctypes.c_void_p]
_api.PyCapsule_GetName.restype, _api.PyCapsule_GetName.argtypes = ctypes.c_char_p, [ctypes.py_object]

# What each exported tensor keeps alive (its structure, shape and strides, the array) until its deleter
# runs, by the structure's address (what the deleter is given).
_exports: dict[int, tuple] = {}
_exports_lock = threading.Lock()


def _delete_export(managed: int) -> None:
    with _exports_lock:
        _exports.pop(managed, None)


_deleter = _Deleter(_delete_export)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _capsule_destructor(capsule: int) -> None:
    """A capsule collected unconsumed still owns its tensor: run the tensor's deleter."""
    for name, form in ((b"dltensor_versioned", _ManagedVersioned), (b"dltensor", _Managed)):
        if _api.PyCapsule_IsValid(capsule, ctypes.addressof(_NAMES[name])):
            ptr = _api.PyCapsule_GetPointer(capsule, ctypes.addressof(_NAMES[name]))
            form.from_address(ptr).deleter(ptr)
            return


# -- export
def dlpack_device(arr: DeviceArray) -> tuple[int, int]:
    return DL_ROCM, arr.device.index


def to_dlpack(arr: DeviceArray, *, stream=None, max_version=None, dl_device=None, copy=None):
    """The capsule for `arr.__dlpack__(...)`: versioned when the consumer accepts DLPack 1.x."""
    if dl_device is not None and tuple(dl_device) != dlpack_device(arr):
        raise BufferError(f"this array is on ROCm device {arr.device.index}; it cannot be exported to "
                          f"DLPack device {tuple(dl_device)} (copy it to the host with .numpy())")
    if copy:
        arr = arr.copy()
    _order_for_consumer(arr, stream)
    versioned = max_version is not None and tuple(max_version)[0] >= 1
    shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
    strides = (ctypes.c_int64 * max(arr.ndim, 1))(*(s // arr.dtype.itemsize for s in arr.strides))
    code, bits = _CODES[arr.dtype]
    tensor = _Tensor(ctypes.c_void_p(arr.ptr), _Device(DL_ROCM, arr.device.index), arr.ndim, _DataType(code, bits, 1),
                     ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64)),
                     ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64)), 0)
    if versioned:
        managed = _ManagedVersioned(_Version(*VERSION), None, _deleter, FLAG_IS_COPIED if copy else 0, tensor)
    else:
        managed = _Managed(tensor, None, _deleter)
    address = ctypes.addressof(managed)
    with _exports_lock:
        _exports[address] = (managed, shape, strides, arr)
    name = _NAMES[b"dltensor_versioned" if versioned else b"dltensor"]
    return _api.PyCapsule_New(address, ctypes.addressof(name), ctypes.cast(_capsule_destructor, ctypes.c_void_p))


def _order_for_consumer(arr: DeviceArray, stream) -> None:
    """Order the work producing `arr` before the consumer's stream (its handle, per the ROCm convention)."""
    if stream is None or stream == -1 or arr.stream is None:
        return  # nothing to order: no stream asked for, or the work is on the null stream, which every
        # blocking stream already waits for
    if not isinstance(stream, int) or stream < 0:
        raise ValueError(f"stream must be a ROCm stream handle (an int >= 0), None or -1, not {stream!r}")
    if stream == int(arr.stream.handle or 0):
        return
    ev = arr.stream.record()
    arr.device.driver.stream_wait_event(stream or None, ev.handle)


def cuda_array_interface(arr: DeviceArray) -> dict:
    """`__cuda_array_interface__` (version 3). bfloat16 has no array-interface type code: it appears as
    raw 2-byte items ('<V2'); DLPack carries it as what it is."""
    return {"shape": arr.shape, "typestr": arr.dtype.str, "data": (arr.ptr, False), "version": 3,
            "strides": None if arr.is_contiguous else arr.strides,
            "stream": int(arr.stream.handle) if arr.stream is not None and arr.stream.handle is not None else None}


# -- import
def is_device_object(x) -> bool:
    """Whether x is device memory another library exports (hkrt's own arrays excluded)."""
    if isinstance(x, (np.ndarray, DeviceArray)):
        return False
    if hasattr(x, "__cuda_array_interface__"):
        return True
    try:
        return hasattr(x, "__dlpack_device__") and int(x.__dlpack_device__()[0]) != DL_CPU
    except Exception:
        return False


def from_dlpack(x, *, device: Device | str | None = None, stream: Stream | None = None, name: str = "x") -> DeviceArray:
    """A device array over the memory of any DLPack producer: a view for ROCm device memory (a copy if
    `device` is another one), a copy up for host (CPU) memory. The producer's pending work is ordered
    before `stream`."""
    if not hasattr(x, "__dlpack__") or not hasattr(x, "__dlpack_device__"):
        raise TypeError(f"{name} ({type(x).__name__}) does not implement the DLPack protocol "
                        f"(__dlpack__ and __dlpack_device__)")
    if isinstance(x, DeviceArray):
        return x if device is None or get_device(device) is x.device else x.copy(device, as_stream(stream, device))
    kind, index = (int(v) for v in x.__dlpack_device__())
    if kind == DL_CPU:
        return upload(np.from_dlpack(x), device=device, stream=stream)
    if kind != DL_ROCM:
        raise ValueError(f"{name} is on a {_DEVICE_NAMES.get(kind, f'type {kind}')} device (DLPack device type "
                         f"{kind}); hkrt takes ROCm device arrays or host (CPU) arrays")
    owner = get_device(index)
    stream = as_stream(stream, owner if device is None else get_device(device))
    handle = int(stream.handle) if stream is not None and stream.handle is not None else 0
    try:
        capsule = x.__dlpack__(stream=handle, max_version=VERSION)
    except TypeError:  # a producer from before DLPack 1.0's keywords
        capsule = x.__dlpack__(stream=handle)
    view = _view_of_capsule(capsule, owner, stream, name)
    return view if device is None or get_device(device) is owner else view.copy(get_device(device), stream)


def _view_of_capsule(capsule, device: Device, stream, name: str) -> DeviceArray:
    cap_name = _api.PyCapsule_GetName(capsule)
    if cap_name not in (b"dltensor", b"dltensor_versioned"):
        raise ValueError(f"{name}'s __dlpack__ returned a capsule named {cap_name!r} (already consumed?)")
    versioned = cap_name == b"dltensor_versioned"
    ptr = _api.PyCapsule_GetPointer(id(capsule), ctypes.addressof(_NAMES[cap_name]))  # id(): the object's address
    managed = (_ManagedVersioned if versioned else _Managed).from_address(ptr)
    if versioned and managed.version.major != 1:
        raise ValueError(f"{name} is a DLPack {managed.version.major}.{managed.version.minor} tensor; hkrt reads 1.x")
    t = managed.dl_tensor
    dtype = _DTYPES.get((t.dtype.code, t.dtype.bits)) if t.dtype.lanes == 1 else None
    if dtype is None:
        raise TypeError(f"{name} holds DLPack type (code {t.dtype.code}, {t.dtype.bits} bits, {t.dtype.lanes} lanes); "
                        f"hkrt takes bfloat16, float16 or float32")
    shape = tuple(t.shape[i] for i in range(t.ndim))
    strides = None if not t.strides else tuple(t.strides[i] * dtype.itemsize for i in range(t.ndim))
    keeper = _Consumed(capsule, cap_name, ptr, managed.deleter)  # from here on, ours to delete
    read_only = bool(versioned and managed.flags & FLAG_READ_ONLY)
    return _view(device, (t.data or 0) + t.byte_offset, shape, dtype, strides, stream, keeper, name, read_only)


class _Consumed:
    """A consumed DLPack tensor: renames its capsule (as the protocol asks) and runs its deleter when
    the last view of it goes."""

    def __init__(self, capsule, cap_name: bytes, managed: int, deleter):
        _api.PyCapsule_SetName(capsule, ctypes.addressof(_NAMES[b"used_" + cap_name]))
        weakref.finalize(self, _run_deleter, deleter, managed)


def _run_deleter(deleter, managed: int) -> None:
    if deleter:
        deleter(managed)


def from_cuda_array_interface(x, *, device: Device | str | None = None, dtype=None, stream: Stream | None = None,
                              name: str = "x") -> DeviceArray:
    """A device array viewing memory described by `__cuda_array_interface__` (e.g. hip-python's
    hipMalloc'd arrays), on `device` (the interface does not say which). Raw 2-byte items ('<V2', as
    bfloat16 is exported) are bfloat16; `dtype` reinterprets items of the same size (uint16 as bfloat16)."""
    cai = x.__cuda_array_interface__
    if not isinstance(cai, dict) or "data" not in cai or "shape" not in cai or "typestr" not in cai:
        raise TypeError(f"{name}'s __cuda_array_interface__ lacks data, shape or typestr")
    if cai.get("mask") is not None:
        raise ValueError(f"{name} has a mask; hkrt takes unmasked arrays")
    ptr, read_only = cai["data"]
    shape = tuple(int(s) for s in cai["shape"])
    try:
        given = np.dtype(cai["typestr"])
    except TypeError:
        raise TypeError(f"{name} has array-interface type {cai['typestr']!r}, which numpy does not know") from None
    # Raw 2-byte items are how bfloat16 travels (the interface has no code for it; numpy's ml_dtypes
    # bfloat16 reports '<V2'); other 2-byte data that holds bfloat16 bits needs dtype= said.
    target = np.dtype(dtype) if dtype is not None else bfloat16 if (given.kind, given.itemsize) == ("V", 2) else given
    if given.itemsize != target.itemsize:
        raise TypeError(f"{name} holds {given} items ({given.itemsize} bytes); they cannot be read as {target}")
    if target not in SUPPORTED:
        hint = " (2-byte items: pass dtype=hkrt.bfloat16 if they are bfloat16)" if given.itemsize == 2 else ""
        raise TypeError(f"{name} holds {given} data{hint}; hkrt takes bfloat16, float16 or float32 "
                        f"(hip-python: .configure(typestr='float32', shape=...) describes the buffer)")
    dev = get_device(device)
    stream = as_stream(stream, dev)
    producer = cai.get("stream") if int(cai.get("version", 0)) >= 3 else None
    if producer is not None:  # the producer's work is ordered on that stream: ours waits for it
        ev = Event(dev)
        dev.driver.event_record(ev.handle, int(producer))
        dev.driver.stream_wait_event(stream.handle if stream is not None else None, ev.handle)
    strides = tuple(int(s) for s in cai["strides"]) if cai.get("strides") is not None else None
    return _view(dev, int(ptr or 0), shape, target, strides, stream, x, name, bool(read_only))


def _view(device: Device, ptr: int, shape, dtype, strides, stream, keeper, name: str, read_only: bool) -> DeviceArray:
    if strides is not None:
        if any(s < 0 for s in strides):
            raise ValueError(f"{name} has negative strides {strides}; hkrt takes non-negative ones")
        if any(s % dtype.itemsize for s in strides):
            raise ValueError(f"{name} has strides {strides} that are not whole {dtype.itemsize}-byte items")
    if any(shape) and not ptr and all(shape):
        raise ValueError(f"{name} has a null data pointer")
    return DeviceArray(shape, dtype, device=device, stream=stream, strides=strides, _ptr=ptr, _keep=keeper,
                       read_only=read_only)


def device_array(obj, dtype=None, *, device=None, stream=None, name: str = "x") -> DeviceArray:
    """hkrt.asarray for another library's device array: DLPack first (it carries the device and the
    bfloat16 type), else the CUDA array interface."""
    if hasattr(obj, "__dlpack_device__") and hasattr(obj, "__dlpack__"):
        arr = from_dlpack(obj, device=device, stream=stream, name=name)
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            raise TypeError(f"{name} has dtype {arr.dtype}; converting on the device is not supported")
        return arr
    return from_cuda_array_interface(obj, device=device, dtype=dtype, stream=stream, name=name)
