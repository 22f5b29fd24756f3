"""Device arrays, streams and events.

Work on device arrays is asynchronous (ordered on a stream); `.numpy()` waits for it. Arrays own
their memory through the caching allocator and give it back when garbage collected or `.free()`d.
"""
from __future__ import annotations

import math
from functools import cached_property
import numbers
import sys
import warnings
import weakref

import ml_dtypes
import numpy as np

from .devices import Device, get_device
from .memory import stream_handle

bfloat16 = np.dtype(ml_dtypes.bfloat16)
SUPPORTED = {np.dtype(np.float32), np.dtype(np.float16), bfloat16}


class Stream:
    """A HIP stream on one device. `Stream.null(device)` is the device's default stream;
    `Stream.from_handle(h)` wraps a stream another library made (hkrt never destroys it)."""

    def __init__(self, device: Device | str | None = None, *, _handle=None, _owned=True):
        self.device = get_device(device)
        self.device.activate()
        self._handle = self.device.driver.stream_create() if _owned else _handle
        self._generation = self.device.generation
        if _owned:
            weakref.finalize(self, _destroy_stream, self.device, self._handle, self._generation)

    @property
    def handle(self):
        """The HIP stream (None: the null stream); an error once a device reset destroyed it."""
        if self._handle is not None and self._generation != self.device.generation:
            raise ValueError(f"this stream was destroyed when {self.device} was reset")
        return self._handle

    @classmethod
    def null(cls, device: Device | str | None = None) -> "Stream":
        return cls(device, _handle=None, _owned=False)

    @classmethod
    def from_handle(cls, handle, device: Device | str | None = None) -> "Stream":
        """A foreign hipStream_t (an int, or hip-python's stream object) on `device` (default: the default
        device; HIP does not say which device a handle belongs to). Its owner keeps it alive and destroys it."""
        if isinstance(handle, Stream):
            return handle
        if not is_stream_handle(handle):
            raise TypeError(f"a stream handle is an int or a hip-python hipStream_t, not {type(handle).__name__}")
        value = int(handle)
        if value < 0:
            raise ValueError(f"a stream handle is not negative, got {value}")
        return cls(device, _handle=value or None, _owned=False)

    def wait(self, event: "Event") -> None:
        """Work queued on this stream from now on waits for the work before `event` (on any stream)."""
        self.device.activate()
        self.device.driver.stream_wait_event(self.handle, event.handle)

    def synchronize(self) -> None:
        self.device.activate()
        self.device.driver.stream_synchronize(self.handle)

    def record(self) -> "Event":
        ev = Event(self.device)
        ev.record(self)
        return ev


def is_stream_handle(x) -> bool:
    """An int (not a bool) or an object that converts to one and is not a number (hip-python's handles)."""
    if isinstance(x, numbers.Real):
        return isinstance(x, numbers.Integral) and not isinstance(x, bool)
    return hasattr(x, "__int__")


def as_stream(stream, device: Device | None = None) -> Stream | None:
    """`stream=` as hkrt takes it: None (the null stream), a Stream, or a foreign handle (an int or a
    hip-python stream object) on `device`."""
    if stream is None or isinstance(stream, Stream):
        return stream
    return Stream.from_handle(stream, device)


def _destroy_stream(device, handle, generation) -> None:
    # No synchronize: HIP destroys a stream once its work is done, and a fault pending on the device
    # belongs to the work that caused it, not to this finalizer.
    if generation == device.generation:  # else the reset destroyed it already
        _quietly(f"destroying a stream on {device}", device.driver.stream_destroy, handle)


def _quietly(what: str, fn, *args) -> None:
    """Run a finalizer's HIP call: a failure becomes a warning (a finalizer cannot raise), except at
    interpreter exit, when the runtime may already be gone."""
    try:
        fn(*args)
    except Exception as exc:
        if not sys.is_finalizing():
            warnings.warn(f"hkrt: {what} failed: {exc}", RuntimeWarning, stacklevel=2)


class Event:
    def __init__(self, device: Device | str | None = None):
        self.device = get_device(device)
        self.device.activate()
        self.handle = self.device.driver.event_create()
        weakref.finalize(self, _destroy_event, self.device, self.handle, self.device.generation)

    def record(self, stream: Stream | None = None) -> "Event":
        self.device.activate()
        self.device.driver.event_record(self.handle, stream_handle(stream))
        return self

    def synchronize(self) -> None:
        self.device.driver.event_synchronize(self.handle)

    def query(self) -> bool:
        return self.device.driver.event_query(self.handle)

    def elapsed_ms(self, end: "Event") -> float:
        return self.device.driver.event_elapsed_ms(self.handle, end.handle)


def _destroy_event(device, handle, generation) -> None:
    if generation == device.generation:
        _quietly(f"destroying an event on {device}", device.driver.event_destroy, handle)


class DeviceArray:
    """An array in device memory: shape, dtype and strides (in bytes), like numpy's."""

    # an array of its own contiguous memory from the allocator, until said otherwise (the hot path sets less)
    read_only = False
    _base = _keep = None
    _freed = False
    _owns = True

    def __init__(self, shape, dtype, *, device: Device | str | None = None, stream: Stream | None = None,
                 strides=None, read_only: bool = False, _block=None, _ptr=None, _base=None, _keep=None):
        self.device = device if type(device) is Device else get_device(device)
        self.shape = shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"negative dimension in shape {shape}")
        self.dtype = dtype = dtype if type(dtype) is np.dtype else np.dtype(dtype)
        if dtype not in SUPPORTED:  # raw bytes of anything else (object pointers!) must not go there
            raise TypeError(f"unsupported dtype {dtype}; use bfloat16, float16 or float32")
        self.strides = tuple(strides) if strides is not None else contiguous_strides(shape, dtype.itemsize)
        self.stream = stream
        self.read_only = read_only   # memory another library lent read-only: never written
        self._base = _base
        self._keep = _keep           # what keeps memory lent by another library alive
        self._freed = False
        self._owns = _ptr is None    # memory from the allocator, given back by free() or collection
        if _ptr is not None:
            self._block, self._ptr = _block, _ptr
        else:
            self._block = self.device.allocator.malloc(self.nbytes, stream)
            self._ptr = self._block.ptr

    @classmethod
    def _allocate(cls, shape: tuple, dtype: np.dtype, strides: tuple, nbytes: int, device: Device,
                  stream) -> "DeviceArray":
        """A new contiguous array from arguments already checked (the hot path of a compiled call)."""
        self = cls.__new__(cls)
        self.device, self.shape, self.dtype, self.strides, self.stream = device, shape, dtype, strides, stream
        self.is_contiguous = True   # fills the cached property: this array is contiguous by construction
        self._block = block = device.allocator.malloc(nbytes, stream)
        self._ptr = block.ptr
        return self

    def __del__(self):
        # Block.free only queues the block (no lock, no HIP): safe in a finalizer, at any time
        block = self.__dict__.get("_block")  # absent if the allocation itself failed
        if block is not None and self._owns:
            block.free()

    # -- numpy-like attributes
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def ptr(self) -> int:
        """The device address of element 0; using an array after .free() is an error."""
        owner = self._base
        if owner is None:
            owner = self
        if owner._freed:
            raise ValueError("this device array was freed; it cannot be used any more")
        block = owner._block
        if block is not None and block.generation != self.device.generation:
            raise ValueError(f"this device array's memory was freed when {self.device} was reset")
        return self._ptr

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # Python ints: no wrap-around for absurd shapes

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @cached_property  # shape and strides never change
    def is_contiguous(self) -> bool:
        return self.strides == contiguous_strides(self.shape, self.dtype.itemsize)

    @cached_property
    def layout_key(self) -> tuple:
        """What a compiled call depends on of this array but its address: shape, strides, dtype, device."""
        return (self.shape, self.strides, self.dtype, self.device)

    @cached_property
    def _extent(self) -> int:
        """Bytes from element 0 to the end of the last element."""
        if not self.size:
            return 0
        return sum((n - 1) * s for n, s in zip(self.shape, self.strides)) + self.dtype.itemsize

    def _axes_in_memory(self) -> tuple[int, ...] | None:
        """The axis order in which this array's elements lie contiguously (a transpose of a contiguous
        array, e.g. .T), or None if they do not."""
        order = tuple(sorted(range(self.ndim), key=lambda d: -self.strides[d]))
        shape = tuple(self.shape[d] for d in order)
        strides = tuple(self.strides[d] for d in order)
        return order if strides == contiguous_strides(shape, self.dtype.itemsize) else None

    def span(self) -> tuple[int, int]:
        """The device bytes [start, end) this array's elements lie in."""
        p = self.ptr
        return p, p + self._extent

    def overlaps(self, other: "DeviceArray") -> bool:
        a0 = self.ptr
        b0 = other.ptr
        return a0 < b0 + other._extent and b0 < a0 + self._extent

    @property
    def T(self) -> "DeviceArray":
        """The transposed view of a 2-D array (no copy)."""
        if self.ndim != 2:
            raise ValueError(f".T needs a 2-D array, not {self.ndim}-D")
        return DeviceArray(self.shape[::-1], self.dtype, device=self.device, stream=self.stream,
                           strides=self.strides[::-1], read_only=self.read_only, _block=self._block, _ptr=self._ptr,
                           _base=self._owner)

    def __getitem__(self, i: int) -> "DeviceArray":
        """Index the leading dimension (a view)."""
        if not isinstance(i, (int, np.integer)):
            raise TypeError("device arrays support integer indexing of the leading dimension only")
        if not self.ndim:
            raise IndexError("a 0-d device array has no dimension to index")
        n = self.shape[0]
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for leading dimension {n}")
        i %= n
        return DeviceArray(self.shape[1:], self.dtype, device=self.device, stream=self.stream,
                           strides=self.strides[1:], read_only=self.read_only, _block=self._block,
                           _ptr=self._ptr + i * self.strides[0], _base=self._owner)

    @property
    def _owner(self) -> "DeviceArray":
        return self._base if self._base is not None else self

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.device})"

    # -- interop (hkrt.interop): DLPack and the CUDA array interface, ROCm form
    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        from . import interop
        return interop.to_dlpack(self, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        from . import interop
        return interop.dlpack_device(self)

    @property
    def __cuda_array_interface__(self) -> dict:
        from . import interop
        return interop.cuda_array_interface(self)

    # -- transfers
    def _layout(self, what: str) -> tuple[int, ...]:
        order = self._axes_in_memory()
        if order is None:
            raise ValueError(f"{what} needs an array whose elements lie contiguously in some axis order "
                             f"(strides {self.strides} of shape {self.shape} leave gaps)")
        return order

    def numpy(self) -> np.ndarray:
        """Copy to a new numpy array, waiting for the work that produces it."""
        if self.is_contiguous and self.ndim:  # the common case, without the layout's analysis
            host = np.empty(self.shape, self.dtype)
            self._copy_out(host)
            return host
        order = self._layout("numpy()")
        mem = np.empty(tuple(self.shape[d] for d in order), self.dtype)  # the elements as they lie
        self._copy_out(mem)
        # not np.ascontiguousarray: it turns a 0-d array into shape (1,)
        return np.asarray(mem.transpose(np.argsort(order)), order="C")

    def _copy_out(self, mem: np.ndarray) -> None:
        """This array's bytes into `mem` (as many as it holds), after the work that produces them."""
        if self.nbytes:
            self.device.activate()
            self.device.driver.memcpy_dtoh(mem, self.ptr, self.nbytes, stream_handle(self.stream))
            if self.stream is not None:
                self.stream.synchronize()
            else:
                self.device.synchronize()

    def copy_from(self, host: np.ndarray) -> "DeviceArray":
        """Copy a numpy array of this shape in (a view such as .T is written through its strides)."""
        order = self._layout("copy_from()")
        host = np.asarray(host)
        if host.dtype == object:
            raise TypeError("object arrays cannot go to the device")
        if host.shape != self.shape:
            raise ValueError(f"shape {host.shape} does not match the device array's {self.shape}")
        host = np.ascontiguousarray(host.astype(self.dtype, copy=False).transpose(order))
        if self.nbytes:
            self.device.activate()
            self.device.driver.memcpy_htod(self.ptr, host, self.nbytes, stream_handle(self.stream))
            # the copy reads `host` asynchronously: keep it alive until the stream passes this point
            (self.stream.synchronize() if self.stream is not None else self.device.synchronize())
        return self

    def copy(self, device: Device | str | None = None, stream: Stream | None = None) -> "DeviceArray":
        """A contiguous copy, on this device or another (device to device, through unified addressing),
        ordered on `stream` (default: this array's)."""
        target = get_device(device) if device is not None else self.device
        stream = self.stream if stream is None and target is self.device else stream
        if not self.is_contiguous:
            raise ValueError(f"copy() of a non-contiguous device array (strides {self.strides}) is not supported")
        out = DeviceArray(self.shape, self.dtype, device=target, stream=stream)
        if self.nbytes:
            if self.stream is not None and self.stream is not stream:
                self.stream.synchronize()  # the work producing this array comes first
            target.activate()
            target.driver.memcpy_dtod(out.ptr, self.ptr, self.nbytes, stream_handle(stream))
        return out

    def free(self) -> None:
        """Give the memory back now; the array (and its views) then refuse to be used."""
        if self._base is not None:
            raise ValueError("free() the array that owns the memory, not a view of it")
        if self._keep is not None:
            raise ValueError("this array views memory another library owns; that library frees it")
        if self._owns and self._block is not None:
            self._freed = True
            block, self._block = self._block, None
            block.free()


def contiguous_strides(shape, itemsize) -> tuple[int, ...]:
    strides, acc = [], itemsize
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def empty(shape, dtype=bfloat16, *, device=None, stream: Stream | None = None) -> DeviceArray:
    """An uninitialised device array."""
    if isinstance(shape, int):
        shape = (shape,)
    return DeviceArray(shape, dtype, device=device, stream=stream)


def asarray(obj, dtype=None, *, device=None, stream=None) -> DeviceArray:
    """A device array from anything array-like:
    - an hkrt DeviceArray: itself (a copy if `device` names another device);
    - another library's device array (DLPack, or the CUDA array interface: hip-python, CuPy, PyTorch or JAX
      on ROCm): a view of its memory, with the producer's pending work ordered before `stream`;
    - host data (numpy, or anything numpy or DLPack can read on the CPU): copied up.
    `dtype` converts host data; device data keeps its type (a mismatch is a TypeError)."""
    stream = as_stream(stream, get_device(device) if device is not None else None)
    if isinstance(obj, DeviceArray):
        if dtype is not None and np.dtype(dtype) != obj.dtype:
            raise TypeError(f"device array has dtype {obj.dtype}; converting on the device is not supported")
        if device is not None and get_device(device) is not obj.device:
            return obj.copy(device, stream)
        return obj
    if not isinstance(obj, np.ndarray):
        from . import interop
        if interop.is_device_object(obj):
            return interop.device_array(obj, dtype, device=device, stream=stream)
        if hasattr(obj, "__dlpack__") and not hasattr(obj, "__array__"):
            obj = np.from_dlpack(obj)
    return upload(obj, dtype, device=device, stream=stream)


def upload_contiguous(host: np.ndarray, device: Device, stream) -> DeviceArray:
    """A device copy of a C-contiguous host array of a supported dtype, queued on `stream` without waiting:
    the caller keeps `host` alive until the stream has passed the copy."""
    nbytes = host.nbytes
    arr = DeviceArray._allocate(host.shape, host.dtype, host.strides, nbytes, device, stream)
    if nbytes:
        device.activate()
        device.driver.memcpy_htod(arr._ptr, host, nbytes, stream_handle(stream))
    return arr


def upload(obj, dtype=None, *, device=None, stream: Stream | None = None) -> DeviceArray:
    """A device copy of host data."""
    host = np.asarray(obj)
    if host.dtype == object:
        raise TypeError("object arrays cannot go to the device")
    target = np.dtype(dtype) if dtype is not None else host.dtype
    if target not in SUPPORTED:
        raise TypeError(f"unsupported dtype {target}; use bfloat16, float16 or float32")
    arr = DeviceArray(host.shape, target, device=device, stream=stream)
    return arr.copy_from(host.astype(target, copy=False))
