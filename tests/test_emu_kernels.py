"""Whole kernels on the emulator: the built GEMM against numpy, and planted bugs that must not pass.

Tolerance for the GEMM (inputs are bf16, so every product is exact in float64): the emulator's MFMA
adds exact products and rounds to fp32 once per instruction, so after ceil(K/32) MFMAs the error is
at most ceil(K/32) * 2^-24 * sum_k |a_ik b_kj| (each rounding is within half an fp32 ulp of a partial
sum bounded by that absolute sum). A bf16 output adds one rounding of 2^-8 * |C| (RNE, 8-bit
significand). We allow twice the bound.
"""
import math
import struct

import ml_dtypes
import numpy as np
import pytest

from hkrt import manifest as mf
from hkrt.emu.errors import HazardError, MemoryFault
from hkrt.emu.machine import Machine

BF16 = ml_dtypes.bfloat16


def gemm_tolerance(a, b, out_bf16: bool):
    a64, b64 = np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))
    absum = a64 @ b64
    ref = a.astype(np.float64) @ b.astype(np.float64)
    tol = 2 * (math.ceil(a.shape[1] / 32) * 2.0**-24 * absum + (2.0**-8 * np.abs(ref) if out_bf16 else 0))
    return ref, tol + 1e-30


class Device:
    """Minimal driver over one emulated Machine for these tests."""

    def __init__(self, **kw):
        self.m = Machine(1 << 30, **kw)

    def put(self, arr: np.ndarray) -> int:
        addr = self.m.memory.alloc(arr.nbytes)
        self.m.memory.view(addr, arr.nbytes)[:] = np.ascontiguousarray(arr).tobytes()
        return addr

    def get(self, addr: int, shape, dtype) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(bytes(self.m.memory.view(addr, n)), dtype).reshape(shape)

    def load(self, path):
        return self.m.load(open(path, "rb").read())


def run_gemm(dev, variant, a, b_stored, m, n, k, ldb):
    e = mf.load()["kernels"][variant]
    mod = dev.load(mf.arch_dir() / e["code_object"])
    out_dtype = np.float32 if e["launch"]["dtypes"]["c"] == "f32" else BF16
    da, db = dev.put(a), dev.put(b_stored)
    poison = np.full((m, n), np.nan, out_dtype)
    dc = dev.put(poison)
    args = struct.pack("<QQQiiiiii", da, db, dc, m, n, k, k, ldb, n)
    tile = e["launch"]["tile"]
    grid = (-(-n // tile["n"]), -(-m // tile["m"]), 1)
    stats = dev.m.launch(mod, e["symbol"], grid, (e["launch"]["threads"], 1, 1), e["launch"]["dynamic_lds"], args)
    assert stats.wave_instructions > 0
    return dev.get(dc, (m, n), out_dtype)


SHAPES = [(1, 1, 1), (1, 7, 33), (37, 91, 53), (64, 64, 32), (100, 70, 129), (130, 65, 1), (3, 200, 64)]


@pytest.mark.parametrize("variant", ["gemm_basic_kn_bf16", "gemm_basic_kn_f32", "gemm_basic_nk_bf16",
                                     "gemm_basic_nk_f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_basic_matches_numpy(variant, shape):
    m, n, k = shape
    rng = np.random.default_rng()
    a = rng.standard_normal((m, k)).astype(BF16)
    b = rng.standard_normal((k, n)).astype(BF16)
    stored = b if "_kn_" in variant else np.ascontiguousarray(b.T)
    ldb = n if "_kn_" in variant else k
    dev = Device(strict=True)
    c = run_gemm(dev, variant, a, stored, m, n, k, ldb).astype(np.float64)
    ref, tol = gemm_tolerance(a, b, out_bf16=variant.endswith("bf16"))
    assert not np.isnan(c).any(), "some outputs were never written"
    bad = np.abs(c - ref) > tol
    assert not bad.any(), f"{bad.sum()} elements off; worst {np.abs(c - ref).max()}"


def test_gemm_under_random_wave_interleavings():
    m, n, k = 70, 66, 96
    rng = np.random.default_rng()
    a, b = rng.standard_normal((m, k)).astype(BF16), rng.standard_normal((k, n)).astype(BF16)
    ref, tol = gemm_tolerance(a, b, out_bf16=False)
    for seed in range(3):
        dev = Device(strict=True, seed=seed)
        c = run_gemm(dev, "gemm_basic_kn_f32", a, b, m, n, k, n).astype(np.float64)
        assert (np.abs(c - ref) <= tol).all()


# ---------------------------------------------------------------- planted bugs

MISSING_WAIT = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ void k(const float* in, float* out) {
  float v;
  const float* p = in + threadIdx.x;
  // The compiler cannot see this load, so it inserts no s_waitcnt before v is used.
  asm volatile("global_load_dword %0, %1, off" : "=v"(v) : "v"(p) : "memory");
#if FIXED
  asm volatile("s_waitcnt vmcnt(0)" ::: "memory");
#endif
  out[threadIdx.x] = v * 2.0f;
}
"""

MISSING_BARRIER = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ __launch_bounds__(128) void k(const float* in, float* out) {
  __shared__ float s[128];
  int t = threadIdx.x;
  s[t] = in[t];
#if FIXED
  __syncthreads();
#endif
  out[t] = s[(t + 64) % 128];  // the other wave's element
}
"""

DMA_RACE = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ __launch_bounds__(128) void k(const float* in, float* out) {
  __shared__ float s[128];
  int t = threadIdx.x;
  // Each wave copies its 64 floats straight into LDS (4 bytes per lane at M0 + 4*lane).
  __builtin_amdgcn_global_load_lds(in + t, s + 64 * (t / 64), 4, 0, 0);
#if FIXED
  asm volatile("s_waitcnt vmcnt(0)" ::: "memory");
#endif
  __syncthreads();  // does not wait for the DMA (docs/facts.md section 3.5)
  out[t] = s[(t + 64) % 128];
}
"""

OOB_STORE = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ void k(float* out, int n) {
  out[threadIdx.x + n] = 1.0f;  // n past the end of the allocation
}
"""


def _launch_simple(dev, path, threads, *args, fmt):
    mod = dev.load(path)
    return dev.m.launch(mod, "k", (1, 1, 1), (threads, 1, 1), 0, struct.pack(fmt, *args))


@pytest.mark.parametrize("fixed", [0, 1])
def test_missing_waitcnt_is_not_silently_right(compile_hip, fixed):
    co = compile_hip(MISSING_WAIT, name=f"wait{fixed}", extra=[f"-DFIXED={fixed}"])
    x = np.random.default_rng().standard_normal(64).astype(np.float32)
    for strict in (False, True):
        dev = Device(strict=strict)
        din, dout = dev.put(x), dev.put(np.full(64, np.nan, np.float32))
        if not fixed and strict:
            with pytest.raises(HazardError, match=r"outstanding.*kernel k, pc 0x"):
                _launch_simple(dev, co, 64, din, dout, fmt="<QQ")
            continue
        _launch_simple(dev, co, 64, din, dout, fmt="<QQ")
        out = dev.get(dout, (64,), np.float32)
        if fixed:
            np.testing.assert_array_equal(out, 2 * x)
        else:
            assert np.isnan(out).all(), "a read before s_waitcnt produced real data"


@pytest.mark.parametrize("fixed", [0, 1])
@pytest.mark.parametrize("seed", [None, 7])
def test_missing_barrier_gives_wrong_results(compile_hip, fixed, seed):
    co = compile_hip(MISSING_BARRIER, name=f"bar{fixed}", extra=[f"-DFIXED={fixed}"])
    x = np.random.default_rng().standard_normal(128).astype(np.float32)
    dev = Device(strict=True, seed=seed)
    din, dout = dev.put(x), dev.put(np.full(128, np.nan, np.float32))
    _launch_simple(dev, co, 128, din, dout, fmt="<QQ")
    out = dev.get(dout, (128,), np.float32)
    expect = np.roll(x, -64)
    if fixed:
        np.testing.assert_array_equal(out, expect)
    else:
        assert not np.array_equal(out, expect), "a read of another wave's LDS data without a barrier passed"


@pytest.mark.parametrize("fixed", [0, 1])
def test_lds_dma_without_vmcnt_before_barrier(compile_hip, fixed):
    co = compile_hip(DMA_RACE, name=f"dma{fixed}", extra=[f"-DFIXED={fixed}"])
    x = np.random.default_rng().standard_normal(128).astype(np.float32)
    for strict in (False, True):
        dev = Device(strict=strict)
        din, dout = dev.put(x), dev.put(np.full(128, np.nan, np.float32))
        if not fixed and strict:
            with pytest.raises(HazardError, match="direct-to-LDS"):
                _launch_simple(dev, co, 128, din, dout, fmt="<QQ")
            continue
        _launch_simple(dev, co, 128, din, dout, fmt="<QQ")
        out = dev.get(dout, (128,), np.float32)
        if fixed:
            np.testing.assert_array_equal(out, np.roll(x, -64))
        else:
            assert np.isnan(out[:64]).all(), "wave 0 read wave 1's undelivered DMA data as if it had arrived"


def test_out_of_bounds_store_is_a_memory_fault(compile_hip):
    co = compile_hip(OOB_STORE, name="oob")
    dev = Device()
    dout = dev.put(np.zeros(64, np.float32))
    neighbour = dev.put(np.zeros(64, np.float32))
    with pytest.raises(MemoryFault, match=r"outside every device allocation.*kernel k, pc 0x[0-9a-f]+") as err:
        _launch_simple(dev, co, 64, dout, 1 << 20, fmt="<Qi")
    assert err.value.address is not None and err.value.address >= dout + (1 << 22)
    assert "global_store" in str(err.value)
    assert not dev.get(neighbour, (64,), np.float32).any()


@pytest.mark.parametrize("past_end", [4, 512, 64 * 1024])
def test_short_overruns_never_reach_the_next_allocation(compile_hip, past_end):
    """Allocations are separated by unmapped guard space: a store just past one faults, and the
    allocation after it is untouched."""
    co = compile_hip(OOB_STORE, name="oob_short")
    dev = Device()
    dout = dev.put(np.zeros(64, np.float32))           # 256 bytes
    neighbour = dev.put(np.zeros(64, np.float32))
    with pytest.raises(MemoryFault):
        _launch_simple(dev, co, 64, dout, (256 + past_end) // 4 - 63, fmt="<Qi")
    assert not dev.get(neighbour, (64,), np.float32).any()
