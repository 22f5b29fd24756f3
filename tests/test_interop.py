"""Arrays to and from other libraries (hkrt/interop.py): DLPack both ways, the CUDA array interface with
hip-python's own device memory, foreign streams, and gemm on foreign operands.

A "foreign" producer here is an object exposing only the protocol (no hkrt type), so hkrt must go through
the protocol as it would for CuPy, PyTorch or JAX on ROCm.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest
from hip import hip

import hkrt
from hkrt import interop

from helpers import ok, run_python
from kernel_harness import BF16, check, fresh_rng, normal


class DLPackOnly:
    """Exposes an array through DLPack and nothing else; records how it was asked."""

    def __init__(self, arr, device=None):
        self.arr, self.device, self.calls = arr, device, []

    def __dlpack__(self, **kw):
        self.calls.append(kw)
        return self.arr.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.device or self.arr.__dlpack_device__()


class OldDLPack(DLPackOnly):
    """A producer from before DLPack 1.0: no max_version keyword, unversioned capsules."""

    def __dlpack__(self, stream=None):
        self.calls.append({"stream": stream})
        return self.arr.__dlpack__(stream=stream)


class Copying(DLPackOnly):
    """A consumer that asks the producer for a copy."""

    def __dlpack__(self, **kw):
        return self.arr.__dlpack__(copy=True, **kw)


class CAIOnly:
    def __init__(self, cai):
        self.__cuda_array_interface__ = cai


def hip_malloc_array(shape, typestr, itemsize):
    err, ptr = hip.hipMalloc(int(np.prod(shape)) * itemsize)
    assert int(err) == 0
    ptr.configure(typestr=typestr, shape=tuple(shape), itemsize=itemsize)
    return ptr


def test_dlpack_views_a_foreign_rocm_array_in_place():
    rng = fresh_rng()
    x = normal(rng, (5, 7))
    d = hkrt.asarray(x)
    for producer in (DLPackOnly(d), OldDLPack(d)):
        v = hkrt.from_dlpack(producer)
        assert v.ptr == d.ptr and v.shape == (5, 7) and v.dtype == np.float32 and v is not d
        assert np.array_equal(v.numpy(), x)
    t = hkrt.from_dlpack(DLPackOnly(d.T))      # strides travel in elements and come back in bytes
    assert t.strides == d.T.strides and np.array_equal(t.numpy(), x.T)


def test_capsules_are_versioned_on_request_and_deleted_once():
    d = hkrt.asarray(np.arange(6, dtype=np.float32))
    base = len(interop._exports)
    for kw, name in (({"max_version": (1, 0)}, b"dltensor_versioned"), ({}, b"dltensor")):
        cap = d.__dlpack__(**kw)
        assert interop._api.PyCapsule_GetName(cap) == name
        assert len(interop._exports) == base + 1
        del cap                                 # never consumed: its destructor runs the deleter
        gc.collect()
        assert len(interop._exports) == base
    v = hkrt.from_dlpack(DLPackOnly(d))          # consumed: renamed, deleted when the view goes
    assert len(interop._exports) == base + 1
    del v
    gc.collect()
    assert len(interop._exports) == base


def test_dlpack_device_and_bfloat16_type():
    x = np.arange(12, dtype=np.float32).reshape(3, 4).astype(BF16)
    d = hkrt.asarray(x)
    assert d.__dlpack_device__() == (interop.DL_ROCM, d.device.index)
    v = hkrt.from_dlpack(DLPackOnly(d))
    assert v.dtype == BF16 and np.array_equal(v.numpy(), x)
    with pytest.raises(BufferError, match="cannot be exported"):
        d.__dlpack__(dl_device=(interop.DL_CUDA, 0))
    copy = hkrt.from_dlpack(Copying(d))
    assert copy.ptr != d.ptr and np.array_equal(copy.numpy(), x)


def test_host_producers_are_copied_up():
    rng = fresh_rng()
    x = normal(rng, (4, 3))
    cpu_only = DLPackOnly(x, device=(interop.DL_CPU, 0))   # numpy's own DLPack export, through the protocol
    d = hkrt.from_dlpack(cpu_only)
    assert np.array_equal(d.numpy(), x)
    assert np.array_equal(hkrt.asarray(cpu_only).numpy(), x)


def test_hip_python_memory_through_the_array_interface():
    """hipMalloc'd memory from hip-python, described with configure(): viewed, written, used by gemm."""
    rng = fresh_rng()
    a, b = normal(rng, (40, 24)), normal(rng, (24, 36))
    pa = hip_malloc_array((40, 24), "uint16", 2)          # bf16, as hip-python can describe it
    pb = hip_malloc_array((24, 36), "uint16", 2)
    pc = hip_malloc_array((40, 36), "float32", 4)
    da = hkrt.asarray(pa, dtype=hkrt.bfloat16)
    assert da.ptr == int(pa)
    da.copy_from(a.astype(BF16))
    hkrt.asarray(pb, dtype=hkrt.bfloat16).copy_from(b.astype(BF16))
    with pytest.raises(TypeError, match="dtype=hkrt.bfloat16"):
        hkrt.asarray(pa)                                  # uint16 needs the type said
    assert hkrt.asarray(CAIOnly(da.__cuda_array_interface__)).dtype == BF16   # '<V2', as hkrt exports bf16
    res = hkrt.gemm(da, hkrt.asarray(pb, dtype=hkrt.bfloat16), out=hkrt.asarray(pc), out_dtype=np.float32)
    check(res.numpy(), a, b, out_dtype=np.float32)
    got = np.empty((40, 36), np.float32)
    hip.hipMemcpy(got, pc, got.nbytes, hip.hipMemcpyKind.hipMemcpyDeviceToHost)
    check(got, a, b, out_dtype=np.float32, what="read back by hip-python")
    for p in (pa, pb, pc):
        hip.hipFree(p)


def test_gemm_takes_foreign_operands_and_out():
    rng = fresh_rng()
    a, b = normal(rng, (64, 48)), normal(rng, (48, 80))
    da, db = hkrt.asarray(a.astype(BF16)), hkrt.asarray(b.astype(BF16))
    out = hkrt.empty((64, 80), np.float32)
    out.copy_from(np.full((64, 80), np.nan, np.float32))
    foreign_out = DLPackOnly(out)
    got = hkrt.gemm(DLPackOnly(da), DLPackOnly(db), out=foreign_out, out_dtype=np.float32)
    assert got is foreign_out                     # a foreign out comes back as itself
    check(out.numpy(), a, b, out_dtype=np.float32)
    bias = hkrt.asarray(normal(rng, 80))
    got = hkrt.gemm(DLPackOnly(da), DLPackOnly(db), bias=DLPackOnly(bias), activation="relu")
    check(got.numpy(), a, b, bias=bias.numpy(), activation="relu")


def test_foreign_input_errors_name_the_argument():
    d = hkrt.asarray(np.ones((8, 8), np.float32).astype(BF16))
    f32 = hkrt.asarray(np.ones((8, 8), np.float32))
    cuda = DLPackOnly(d, device=(interop.DL_CUDA, 0))
    with pytest.raises(ValueError, match=r"a is on a CUDA device.*ROCm"):
        hkrt.gemm(cuda, d)
    with pytest.raises(TypeError, match="device array b has dtype float32"):
        hkrt.gemm(d, DLPackOnly(f32))
    ints = CAIOnly({"shape": (8, 8), "typestr": "<i4", "data": (d.ptr, False), "version": 3, "strides": None})
    with pytest.raises(TypeError, match="b holds int32"):
        hkrt.gemm(d, ints)
    neg = CAIOnly({"shape": (8, 8), "typestr": "<V2", "data": (d.ptr + 126, False), "version": 3,
                   "strides": (-16, 2)})
    with pytest.raises(ValueError, match="a has negative strides"):
        hkrt.gemm(neg, d)
    read_only = CAIOnly(d.__cuda_array_interface__ | {"data": (d.ptr, True), "typestr": "<f2"})
    with pytest.raises(ValueError, match="out is read-only"):
        hkrt.gemm(d, d, out=read_only)
    masked = CAIOnly(d.__cuda_array_interface__ | {"mask": object()})
    with pytest.raises(ValueError, match="mask"):
        hkrt.asarray(masked)
    with pytest.raises(TypeError, match="stream must be"):
        hkrt.gemm(d, d, stream="fast")
    with pytest.raises(TypeError, match="DLPack protocol"):
        hkrt.from_dlpack(object())


def test_dlpack_export_orders_work_before_the_consumers_stream(monkeypatch):
    dev = hkrt.get_device()
    s = hkrt.Stream()
    d = hkrt.asarray(np.ones(16, np.float32), stream=s)
    waits = []
    real = dev.driver.stream_wait_event
    monkeypatch.setattr(dev.driver, "stream_wait_event", lambda st, ev: (waits.append(st), real(st, ev)))
    other = hkrt.Stream()
    d.__dlpack__(stream=int(other.handle))
    assert waits == [int(other.handle)]            # the consumer's stream waits on an event of ours
    d.__dlpack__(stream=-1)                         # -1: no synchronisation asked
    d.__dlpack__(stream=int(s.handle))              # the same stream: stream order suffices
    assert len(waits) == 1
    with pytest.raises(ValueError, match="stream handle"):
        d.__dlpack__(stream=-5)


def test_array_interface_stream_is_waited_on(monkeypatch):
    dev = hkrt.get_device()
    err, foreign = hip.hipStreamCreate()
    d = hkrt.asarray(np.ones(16, np.float32))
    recorded = []
    real = dev.driver.event_record
    monkeypatch.setattr(dev.driver, "event_record", lambda ev, st: (recorded.append(st), real(ev, st)))
    hkrt.asarray(CAIOnly(d.__cuda_array_interface__ | {"stream": int(foreign)}))
    assert recorded == [int(foreign)]
    hip.hipStreamDestroy(foreign)


def test_foreign_streams():
    """stream= takes a raw hipStream_t or hip-python's stream object; hkrt never destroys it."""
    rng = fresh_rng()
    a, b = normal(rng, (32, 16)), normal(rng, (16, 24))
    err, foreign = hip.hipStreamCreate()
    da = hkrt.asarray(a.astype(BF16), stream=foreign)
    for handle in (foreign, int(foreign), hkrt.Stream.from_handle(foreign)):
        res = hkrt.gemm(da, hkrt.asarray(b.astype(BF16)), stream=handle)
        assert res.stream.handle == int(foreign)
        check(res.numpy(), a, b)
    wrapped = hkrt.Stream.from_handle(int(foreign))
    del wrapped
    gc.collect()
    assert int(hip.hipStreamSynchronize(foreign)[0]) == 0      # still alive: it is not ours
    # ordering across an hkrt stream and the foreign one through an event
    mine = hkrt.Stream()
    hkrt.Stream.from_handle(foreign).wait(mine.record())
    assert int(hip.hipStreamDestroy(foreign)[0]) == 0
    for bad, exc in ((-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(exc):
            hkrt.Stream.from_handle(bad)


def test_two_devices_copy_explicitly():
    res = run_python("""
        import numpy as np, hkrt
        from test_interop import DLPackOnly
        d0, d1 = hkrt.get_device("emu:0"), hkrt.get_device("emu:1")
        x = np.random.default_rng().standard_normal((6, 5)).astype(np.float32)
        a0 = hkrt.asarray(x, device=d0)
        a1 = hkrt.asarray(a0, device=d1)
        v1 = hkrt.from_dlpack(DLPackOnly(a0), device=d1)
        v0 = hkrt.from_dlpack(DLPackOnly(a0))
        print(a1.device is d1, v1.device is d1, v1.ptr != a0.ptr, v0.device is d0, v0.ptr == a0.ptr,
              np.array_equal(a1.numpy(), x), np.array_equal(v1.numpy(), x))
    """, env={"HKRT_EMU_DEVICES": "2", "HKRT_DEVICE": "emu"})
    assert ok(res).split()[-7:] == ["True"] * 7


def test_ten_thousand_round_trips_leak_nothing():
    dev = hkrt.get_device()
    d = hkrt.asarray(np.arange(64, dtype=np.float32).astype(BF16))
    err, p = hip.hipMalloc(256)
    p.configure(typestr="float32", shape=(64,), itemsize=4)

    def trips(n):
        for _ in range(n):
            hkrt.from_dlpack(DLPackOnly(d))
            hkrt.asarray(p)
            hkrt.asarray(d, device=dev).__cuda_array_interface__
            d.__dlpack__(max_version=(1, 0))          # dropped unconsumed
        gc.collect()
    trips(100)
    before = (dev.allocator.in_use, dev.allocator.cached, dev.driver.mem_info()[0], len(interop._exports))
    trips(10_000)
    after = (dev.allocator.in_use, dev.allocator.cached, dev.driver.mem_info()[0], len(interop._exports))
    assert after == before
    hip.hipFree(p)
