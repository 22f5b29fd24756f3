"""Whole kernels on the emulator: the built GEMM against numpy, and planted bugs that must not pass.

The GEMM is checked against the one error bound of hkrt.reference.expected() (inputs are bf16, so
every product is exact; the MFMA rounds to fp32 once per 32-deep K step; a bf16 output adds one RNE).
"""
import struct

import numpy as np
import pytest

from hkrt.emu.errors import HazardError, MemoryFault

from kernel_harness import BF16, EmuMachine, check_variant, run_variant

SHAPES = [(1, 1, 1), (1, 7, 33), (37, 91, 53), (64, 64, 32), (100, 70, 129), (130, 65, 1), (3, 200, 64)]


@pytest.mark.parametrize("variant", ["gemm_basic_kn_bf16", "gemm_basic_kn_f32", "gemm_basic_nk_bf16",
                                     "gemm_basic_nk_f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_basic_matches_numpy(variant, shape):
    m, n, k = shape
    rng = np.random.default_rng()
    a = rng.standard_normal((m, k)).astype(BF16)
    b_nk = rng.standard_normal((n, k)).astype(BF16)
    got, stats = run_variant(EmuMachine(strict=True), variant, a, b_nk)
    assert stats.wave_instructions > 0
    check_variant(got, variant, a, b_nk)


def test_gemm_under_random_wave_interleavings():
    m, n, k = 70, 66, 96
    rng = np.random.default_rng()
    a, b_nk = rng.standard_normal((m, k)).astype(BF16), rng.standard_normal((n, k)).astype(BF16)
    for seed in range(3):
        got, _ = run_variant(EmuMachine(strict=True, seed=seed), "gemm_basic_kn_f32", a, b_nk)
        check_variant(got, "gemm_basic_kn_f32", a, b_nk, what=f"seed {seed}")


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
        dev = EmuMachine(strict=strict)
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
    expect = np.roll(x, -64)
    for strict in (False, True):
        dev = EmuMachine(strict=strict, seed=seed)
        din, dout = dev.put(x), dev.put(np.full(128, np.nan, np.float32))
        if not fixed and strict:  # strict mode names the race (hazards.c): RAW, or WAR when the read came first
            with pytest.raises(HazardError, match=r"LDS race: (ds_read_b32 at pc 0x[0-9a-f]+ \(wave \d\) reads "
                                                  r"LDS byte 0x[0-9a-f]+, written by ds_write_b32|ds_write_b32 at pc "
                                                  r"0x[0-9a-f]+ \(wave \d\) writes LDS byte 0x[0-9a-f]+, read by "
                                                  r"ds_read_b32) at pc 0x"):
                _launch_simple(dev, co, 128, din, dout, fmt="<QQ")
            continue
        _launch_simple(dev, co, 128, din, dout, fmt="<QQ")
        out = dev.get(dout, (128,), np.float32)
        if fixed:
            np.testing.assert_array_equal(out, expect)
        else:
            assert not np.array_equal(out, expect), "a read of another wave's LDS data without a barrier passed"


@pytest.mark.parametrize("fixed", [0, 1])
def test_lds_dma_without_vmcnt_before_barrier(compile_hip, fixed):
    co = compile_hip(DMA_RACE, name=f"dma{fixed}", extra=[f"-DFIXED={fixed}"])
    x = np.random.default_rng().standard_normal(128).astype(np.float32)
    for strict in (False, True):
        dev = EmuMachine(strict=strict)
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
    dev = EmuMachine(strict=None)
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
    dev = EmuMachine(strict=None)
    dout = dev.put(np.zeros(64, np.float32))           # 256 bytes
    neighbour = dev.put(np.zeros(64, np.float32))
    with pytest.raises(MemoryFault):
        _launch_simple(dev, co, 64, dout, (256 + past_end) // 4 - 63, fmt="<Qi")
    assert not dev.get(neighbour, (64,), np.float32).any()


SCALE_KERNEL = """
#include <hip/hip_runtime.h>
extern "C" __global__ void k(float *x, float s) { x[threadIdx.x] *= s; }
"""


def test_the_descriptor_float_mode_is_honoured_and_ieee_off_refused(compile_hip):
    """The descriptor's FLOAT_MODE (rounding, denormals) sets the waves' MODE (docs/facts.md §13.4): a kernel built
    to flush denormals flushes, one asking for round-toward-+inf rounds up, the default keeps denormals and rounds
    to nearest; a kernel with IEEE mode off (which the core does not implement) is refused by name."""
    import struct
    import numpy as np
    from hkrt import codeobject
    from hkrt.emu.errors import EmulationError
    from kernel_harness import EmuMachine
    default = compile_hip(SCALE_KERNEL, name="keeps")
    flushing = compile_hip(SCALE_KERNEL, name="flushes", extra=["-fgpu-flush-denormals-to-zero"])
    assert codeobject.parse(flushing.read_bytes()).kernel("k").descriptor.float_mode["fp32_denorm"] != 3
    dev = EmuMachine()
    x = np.full(64, 2.0 ** -120, np.float32)
    d = dev.put(x)
    dev.m.launch(dev.load(default), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<Qf", d, 2.0 ** -10))
    assert (dev.get(d, (64,), np.float32) == np.float32(2.0 ** -130)).all()   # a denormal, kept
    dev.m.launch(dev.load(flushing), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<Qf", d, 2.0))
    assert (dev.get(d, (64,), np.float32).view(np.uint32) == 0).all()  # 2^-130 * 2 flushed on input: +0

    def patched(clear, set_):
        image = bytearray(default.read_bytes())
        kd_offset = _file_offset(bytes(image), codeobject.parse(bytes(image)).kernel("k").descriptor_address)
        rsrc1 = struct.unpack_from("<I", image, kd_offset + 48)[0]
        struct.pack_into("<I", image, kd_offset + 48, rsrc1 & ~clear | set_)
        return dev.m.load(bytes(image))

    third = np.float32(1) / np.float32(3)
    d = dev.put(np.full(64, 1.0, np.float32))
    dev.m.launch(patched(3 << 12, 1 << 12), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<Qf", d, third))
    assert (dev.get(d, (64,), np.float32) == third).all()  # exact: 1 * third
    dev.m.launch(patched(3 << 12, 1 << 12), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<Qf", d, third))
    exact = np.float64(third) * np.float64(third)  # exact in double
    up = np.float32(exact)
    up = np.nextafter(up, np.float32(1)) if np.float64(up) < exact else up
    assert np.float64(up) != exact and (dev.get(d, (64,), np.float32) == up).all()  # rounded toward +inf
    with pytest.raises(EmulationError, match="ieee"):
        dev.m.launch(patched(1 << 23, 0), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<Qf", d, 2.0))


def _file_offset(image: bytes, vaddr: int) -> int:
    """Where the byte at virtual address `vaddr` lies in an ELF image (through its section headers)."""
    import io
    from elftools.elf.elffile import ELFFile
    for sec in ELFFile(io.BytesIO(image)).iter_sections():
        start = sec["sh_addr"]
        if sec["sh_type"] != "SHT_NOBITS" and start <= vaddr < start + sec["sh_size"] and start:
            return sec["sh_offset"] + vaddr - start
    raise AssertionError(f"no section holds {vaddr:#x}")
