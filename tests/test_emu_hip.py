"""The emulated HIP runtime, driven only through hip-python's own API (`from hip import hip`).

Activation is per process: this module activates at import (idempotent), and what needs another
configuration (two devices, LD_PRELOAD, HKRT_EMULATE, a foreign libamdhip64) runs in a subprocess.
"""
import ctypes
import os
import subprocess
import sys
import textwrap
import threading
import time

import ml_dtypes
import numpy as np
import pytest

import hkrt.emu
from hkrt import manifest as mf
from hkrt.emu import errors, machine
from hkrt.emu.hip import build
from hkrt.reference import expected

from kernel_harness import assert_close

hkrt.emu.activate()
from hip import hip  # noqa: E402  (after activation, as any user of the emulator does)

E = hip.hipError_t
H2D, D2H = hip.hipMemcpyKind.hipMemcpyHostToDevice, hip.hipMemcpyKind.hipMemcpyDeviceToHost
D2D, DEFAULT = hip.hipMemcpyKind.hipMemcpyDeviceToDevice, hip.hipMemcpyKind.hipMemcpyDefault
ATTR = hip.hipDeviceAttribute_t
FATTR = hip.hipFunction_attribute
LDS = 160 * 1024
rng = np.random.default_rng()

SCALE = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ void scale(float* x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}
"""


def ok(result):
    """The value(s) of a hip-python (err, value...) tuple whose err must be hipSuccess."""
    err, *values = result
    assert err == E.hipSuccess, err
    return values[0] if len(values) == 1 else tuple(values) or None


def addr(p) -> int:
    return p.as_c_void_p().value


def run_python(code: str, **env) -> str:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(autouse=True)
def clean_last_error():
    hip.hipGetLastError()
    yield


@pytest.fixture
def gemm(manifest):
    """variant name -> (function, manifest entry); modules stay loaded for the session's process."""
    def load(name):
        entry = manifest["kernels"][name]
        module = ok(hip.hipModuleLoadData((mf.arch_dir() / entry["code_object"]).read_bytes()))
        return ok(hip.hipModuleGetFunction(module, entry["symbol"].encode())), entry
    return load


# ---- the library and its activation

def test_library_is_built_once_with_the_hip_soname():
    from elftools.elf.elffile import ELFFile
    from hkrt.emu import native
    assert build.up_to_date()
    library = build.path()
    assert library.parent.parent == native.cache_dir()
    before = library.stat().st_mtime_ns
    assert build.build() == library and library.stat().st_mtime_ns == before
    with open(library, "rb") as fh:
        dynamic = ELFFile(fh).get_section_by_name(".dynamic")
        assert [t.soname for t in dynamic.iter_tags() if t.entry.d_tag == "DT_SONAME"] == ["libamdhip64.so"]
    assert hkrt.emu.is_active() and hkrt.emu.activate() == str(library)


def test_ld_preload_serves_a_plain_hip_python_program():
    lib = subprocess.run([sys.executable, "-m", "hkrt.emu", "libpath"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert lib == str(build.path())
    out = run_python("""
        from hip import hip
        err, n = hip.hipGetDeviceCount()
        print(err.name, n, hip.hipDeviceGetName(64, 0)[1])
    """, LD_PRELOAD=lib)
    assert out.split(None, 2) == ["hipSuccess", "1", "AMD Instinct MI350X (hkrt gfx950 emulator)\n"]


def test_hkrt_emulate_activates_on_import():
    out = run_python("""
        import hkrt.emu
        from hip import hip
        print(hkrt.emu.is_active(), hip.hipGetDeviceCount()[1])
    """, HKRT_EMULATE="1", HKRT_EMU_DEVICES="3")
    assert out.split() == ["True", "3"]


def test_activate_refuses_a_real_hip_runtime(tmp_path):
    src = tmp_path / "fake.c"
    src.write_text("int hipInit(unsigned flags) { return 0; }\n")
    fake = tmp_path / "libamdhip64.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(fake), str(src)], check=True)
    out = run_python(f"""
        import ctypes, hkrt.emu
        ctypes.CDLL({str(fake)!r})
        try:
            hkrt.emu.activate()
        except RuntimeError as e:
            print("refused:", e)
    """)
    assert out.startswith("refused:") and str(fake) in out and "before the first HIP call" in out


# ---- devices

def test_init_versions_and_device_selection():
    ok(hip.hipInit(0))
    assert hip.hipInit(1)[0] == E.hipErrorInvalidValue
    assert ok(hip.hipDriverGetVersion()) >= 70000000 and ok(hip.hipRuntimeGetVersion()) >= 70000000
    assert ok(hip.hipGetDeviceCount()) == 1
    assert ok(hip.hipGetDevice()) == 0
    ok(hip.hipSetDevice(0))
    assert hip.hipSetDevice(1)[0] == E.hipErrorInvalidDevice
    assert hip.hipGetDevice() == (E.hipSuccess, 0)
    assert str(ok(hip.hipDeviceGetName(256, 0))) == "AMD Instinct MI350X (hkrt gfx950 emulator)"
    assert str(ok(hip.hipDeviceGetName(4, 0))) == "AMD"
    assert hip.hipDeviceGetName(64, 1)[0] == E.hipErrorInvalidDevice


def test_properties_fill_the_struct_hip_python_reads():
    size = hip.hipDeviceProp_t().c_sizeof()
    raw = (ctypes.c_ubyte * (size + 64))(*([0xAB] * (size + 64)))
    prop = hip.hipDeviceProp_t.fromObj(raw)
    ok(hip.hipGetDeviceProperties(prop, 0))
    assert bytes(raw[size:]) == b"\xab" * 64, "wrote past the end of hipDeviceProp_tR0600"
    assert bytes(raw[size - 8:size]) == bytes(8), "did not fill it to its end (isLargeBar, asicRevision)"
    assert prop.name == b"AMD Instinct MI350X (hkrt gfx950 emulator)"
    assert prop.gcnArchName == b"gfx950:sramecc+:xnack-"
    assert prop.totalGlobalMem == machine.default_memory_bytes()
    assert (prop.sharedMemPerBlock, prop.maxSharedMemoryPerMultiProcessor, prop.sharedMemPerBlockOptin) == (LDS,) * 3
    assert (prop.warpSize, prop.maxThreadsPerBlock, prop.multiProcessorCount) == (64, 1024, 256)
    assert list(prop.maxThreadsDim) == [1024] * 3 and list(prop.maxGridSize) == [2**31 - 1, 65536, 65536]
    assert (prop.regsPerBlock, prop.clockRate, prop.l2CacheSize) == (131072, 2200000, 4 << 20)
    assert (prop.major, prop.minor) == (9, 5)
    assert prop.arch.hasDoubles == 1 and prop.arch.hasWarpShuffle == 1 and prop.arch.hasDynamicParallelism == 0
    assert (prop.isLargeBar, prop.asicRevision, prop.cooperativeMultiDeviceUnmatchedSharedMem) == (0, 0, 0)
    assert hip.hipGetDeviceProperties(prop, 3)[0] == E.hipErrorInvalidDevice


def test_attributes_match_properties():
    prop = hip.hipDeviceProp_t()
    ok(hip.hipGetDeviceProperties(prop, 0))
    expect = {
        ATTR.hipDeviceAttributeMaxThreadsPerBlock: prop.maxThreadsPerBlock,
        ATTR.hipDeviceAttributeMaxBlockDimX: 1024, ATTR.hipDeviceAttributeMaxBlockDimZ: 1024,
        ATTR.hipDeviceAttributeMaxGridDimX: 2**31 - 1, ATTR.hipDeviceAttributeMaxGridDimY: 65536,
        ATTR.hipDeviceAttributeWarpSize: 64,
        ATTR.hipDeviceAttributeMultiprocessorCount: 256,
        ATTR.hipDeviceAttributeMaxSharedMemoryPerBlock: LDS,
        ATTR.hipDeviceAttributeSharedMemPerBlockOptin: LDS,
        ATTR.hipDeviceAttributeMaxSharedMemoryPerMultiprocessor: LDS,
        ATTR.hipDeviceAttributeMaxRegistersPerBlock: 131072,
        ATTR.hipDeviceAttributeClockRate: 2200000,
        ATTR.hipDeviceAttributeComputeCapabilityMajor: 9,
        ATTR.hipDeviceAttributeComputeCapabilityMinor: 5,
        ATTR.hipDeviceAttributeL2CacheSize: 4 << 20,
        ATTR.hipDeviceAttributeTotalGlobalMem: min(prop.totalGlobalMem, 2**31 - 1),
        ATTR.hipDeviceAttributeUnifiedAddressing: 1,
    }
    for attr, value in expect.items():
        assert ok(hip.hipDeviceGetAttribute(attr, 0)) == value, attr
    assert hip.hipDeviceGetAttribute(ATTR.hipDeviceAttributeCudaCompatibleEnd, 0)[0] == E.hipErrorInvalidValue
    assert hip.hipDeviceGetAttribute(ATTR.hipDeviceAttributeWarpSize, 7)[0] == E.hipErrorInvalidDevice


# ---- memory

@pytest.mark.parametrize("nbytes", [4, 1000, 1 << 20])
def test_memcpy_round_trips_in_every_direction(nbytes):
    x = rng.integers(0, 256, nbytes, dtype=np.uint8)
    a, b = ok(hip.hipMalloc(nbytes)), ok(hip.hipMalloc(nbytes))
    assert addr(a) != addr(b)
    out = [np.zeros_like(x) for _ in range(6)]
    ok(hip.hipMemcpy(a, x, nbytes, H2D))
    ok(hip.hipMemcpy(b, a, nbytes, D2D))
    ok(hip.hipMemcpy(out[0], b, nbytes, D2H))
    ok(hip.hipMemcpy(out[1], a, nbytes, DEFAULT))
    ok(hip.hipMemcpy(out[2], x, nbytes, hip.hipMemcpyKind.hipMemcpyHostToHost))
    ok(hip.hipMemcpyHtoD(b, x[::-1].copy(), nbytes))
    ok(hip.hipMemcpyDtoD(a, b, nbytes))
    ok(hip.hipMemcpyDtoH(out[3], a, nbytes))
    stream = ok(hip.hipStreamCreate())
    ok(hip.hipMemcpyAsync(a, x, nbytes, DEFAULT, stream))
    ok(hip.hipMemcpyDtoHAsync(out[4], a, nbytes, stream))
    ok(hip.hipMemcpyHtoDAsync(b, out[4], nbytes, None))
    ok(hip.hipMemcpyDtoDAsync(a, b, nbytes, stream))
    ok(hip.hipMemcpyAsync(out[5], a, nbytes, D2H, stream))
    ok(hip.hipStreamSynchronize(stream))
    ok(hip.hipStreamDestroy(stream))
    for i, y in enumerate(out):
        np.testing.assert_array_equal(y, x[::-1] if i == 3 else x, err_msg=f"copy {i}")
    ok(hip.hipFree(a))
    ok(hip.hipFree(b))


def test_memcpy_rejects_what_is_not_device_memory():
    x = np.zeros(64, np.uint8)
    d = ok(hip.hipMalloc(64))
    assert hip.hipMemcpy(d, x, 65, H2D)[0] == E.hipErrorInvalidValue           # past the allocation
    assert hip.hipMemcpy(addr(d) + 32, x, 33, H2D)[0] == E.hipErrorInvalidValue
    assert hip.hipMemcpy(x, x, 64, D2H)[0] == E.hipErrorInvalidValue            # the host is not the device
    assert hip.hipMemcpy(None, d, 64, D2H)[0] == E.hipErrorInvalidValue
    ok(hip.hipMemcpy(None, None, 0, D2H))                                       # nothing to copy
    assert ok(hip.hipMemPtrGetInfo(addr(d) + 10)) == 64
    ok(hip.hipFree(d))
    assert hip.hipMemcpy(d, x, 64, H2D)[0] == E.hipErrorInvalidValue            # freed


def test_malloc_free_and_mem_get_info():
    free0, total = ok(hip.hipMemGetInfo())
    assert total == machine.default_memory_bytes() and free0 <= total
    d = ok(hip.hipMalloc(3 << 20))
    assert ok(hip.hipMemGetInfo()) == (free0 - (3 << 20), total)
    assert hip.hipFree(addr(d) + 256)[0] == E.hipErrorInvalidValue             # not the start
    ok(hip.hipFree(d))
    assert hip.hipFree(d)[0] == E.hipErrorInvalidValue                         # twice
    assert hip.hipFree(12345)[0] == E.hipErrorInvalidValue
    ok(hip.hipFree(None))
    assert ok(hip.hipMemGetInfo()) == (free0, total)
    assert hip.hipMalloc(0) == (E.hipSuccess, None)
    assert hip.hipMalloc(total + 1)[0] == E.hipErrorOutOfMemory


def test_memset_in_every_width():
    n = 1000
    d = ok(hip.hipMalloc(4 * n))
    out = np.zeros(4 * n, np.uint8)
    stream = ok(hip.hipStreamCreate())
    checks = [
        (lambda: hip.hipMemset(d, 0x1A7, 4 * n), np.full(4 * n, 0xA7, np.uint8)),
        (lambda: hip.hipMemsetAsync(d, 3, 4 * n, stream), np.full(4 * n, 3, np.uint8)),
        (lambda: hip.hipMemsetD8(d, 0x5C, 4 * n), np.full(4 * n, 0x5C, np.uint8)),
        (lambda: hip.hipMemsetD16(d, 0xBEEF, 2 * n), np.full(2 * n, 0xBEEF, "<u2").view(np.uint8)),
        (lambda: hip.hipMemsetD32(d, -2, n), np.full(n, 0xFFFFFFFE, "<u4").view(np.uint8)),
        (lambda: hip.hipMemsetD32Async(d, 0x01020304, n, stream), np.full(n, 0x01020304, "<u4").view(np.uint8)),
    ]
    for fill, expect in checks:
        ok(fill())
        ok(hip.hipMemcpy(out, d, out.nbytes, D2H))
        np.testing.assert_array_equal(out, expect)
    ok(hip.hipMemset(d, 0, 2 * n))
    ok(hip.hipMemcpy(out, d, out.nbytes, D2H))
    assert not out[:2 * n].any() and (out[2 * n:] != 0).all()                   # only the bytes asked for
    assert hip.hipMemsetD32(d, 0, n + 1)[0] == E.hipErrorInvalidValue
    assert hip.hipMemset(out, 0, 8)[0] == E.hipErrorInvalidValue               # host memory
    ok(hip.hipStreamDestroy(stream))
    ok(hip.hipFree(d))


def test_threads_share_memory_but_not_last_errors():
    start = threading.Barrier(8)
    failures = []

    def work(i):
        try:
            start.wait()
            for _ in range(20):
                x = rng.standard_normal(1000 + i)
                d = ok(hip.hipMalloc(x.nbytes))
                ok(hip.hipMemcpy(d, x, x.nbytes, H2D))
                y = np.empty_like(x)
                ok(hip.hipMemcpy(y, d, x.nbytes, D2H))
                ok(hip.hipFree(d))
                np.testing.assert_array_equal(x, y)
            if i % 2:
                assert hip.hipFree(1)[0] == E.hipErrorInvalidValue
            start.wait()
            assert hip.hipGetLastError()[0] == (E.hipErrorInvalidValue if i % 2 else E.hipSuccess)
        except BaseException as e:  # reported by the main thread
            failures.append(e)
            start.abort()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


# ---- streams, events, errors

def test_streams():
    s = ok(hip.hipStreamCreate())
    nb = ok(hip.hipStreamCreateWithFlags(hip.hipStreamNonBlocking))
    assert ok(hip.hipStreamGetFlags(nb)) == hip.hipStreamNonBlocking and ok(hip.hipStreamGetFlags(s)) == 0
    assert ok(hip.hipStreamGetDevice(s)) == 0
    for stream in (s, nb, None):
        ok(hip.hipStreamQuery(stream))
        ok(hip.hipStreamSynchronize(stream))
    assert hip.hipStreamCreateWithFlags(7)[0] == E.hipErrorInvalidValue
    ok(hip.hipStreamDestroy(s))
    ok(hip.hipStreamDestroy(nb))
    assert hip.hipStreamDestroy(s)[0] == E.hipErrorInvalidHandle
    assert hip.hipStreamSynchronize(s)[0] == E.hipErrorInvalidHandle
    ok(hip.hipDeviceSynchronize())


def test_events_time_host_wall_clock():
    stream = ok(hip.hipStreamCreate())
    start, stop = ok(hip.hipEventCreate()), ok(hip.hipEventCreateWithFlags(hip.hipEventBlockingSync))
    assert hip.hipEventElapsedTime(start, stop)[0] == E.hipErrorInvalidHandle   # not recorded yet
    ok(hip.hipEventQuery(start))
    ok(hip.hipEventRecord(start, stream))
    time.sleep(0.05)
    ok(hip.hipEventRecord(stop, stream))
    ok(hip.hipEventSynchronize(stop))
    ok(hip.hipEventQuery(stop))
    ok(hip.hipStreamWaitEvent(None, stop, 0))
    assert 45 <= ok(hip.hipEventElapsedTime(start, stop)) < 5000
    assert ok(hip.hipEventElapsedTime(stop, start)) < 0
    untimed = ok(hip.hipEventCreateWithFlags(hip.hipEventDisableTiming))
    ok(hip.hipEventRecord(untimed, None))
    assert hip.hipEventElapsedTime(start, untimed)[0] == E.hipErrorInvalidHandle
    assert hip.hipEventCreateWithFlags(hip.hipEventInterprocess)[0] == E.hipErrorInvalidValue
    for e in (start, stop, untimed):
        ok(hip.hipEventDestroy(e))
    assert hip.hipEventDestroy(start)[0] == E.hipErrorInvalidHandle
    ok(hip.hipStreamDestroy(stream))


def test_error_names_strings_and_last_error():
    name, text = ok(hip.hipGetErrorName(E.hipErrorNoBinaryForGpu)), ok(hip.hipGetErrorString(E.hipErrorInvalidValue))
    assert str(name) == "hipErrorNoBinaryForGpu" and str(text) == "invalid argument"
    assert str(ok(hip.hipGetErrorName(E.hipSuccess))) == "hipSuccess"
    assert str(ok(hip.hipGetErrorString(E.hipErrorIllegalAddress))) == "an illegal memory access was encountered"
    again = ok(hip.hipGetErrorName(E.hipErrorNoBinaryForGpu))
    assert addr(again) == addr(name), "error names must be static strings"
    assert str(ok(hip.hipDrvGetErrorName(E.hipErrorNotFound))) == "hipErrorNotFound"
    assert str(ok(hip.hipDrvGetErrorString(E.hipErrorOutOfMemory))) == "out of memory"

    assert hip.hipPeekAtLastError() == (E.hipSuccess,)
    assert hip.hipSetDevice(5)[0] == E.hipErrorInvalidDevice
    ok(hip.hipGetDeviceCount())                                     # success does not clear it
    assert hip.hipPeekAtLastError() == (E.hipErrorInvalidDevice,)
    assert hip.hipGetLastError() == (E.hipErrorInvalidDevice,)
    assert hip.hipGetLastError() == (E.hipSuccess,)


# ---- modules and functions

def test_module_load_get_function_and_attributes(manifest, gemm):
    entry = manifest["kernels"]["gemm_basic_kn_bf16"]
    path = mf.arch_dir() / entry["code_object"]
    f, _ = gemm("gemm_basic_kn_bf16")
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f)) == entry["max_workgroup_size"]
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f)) == entry["static_lds"]
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_CONST_SIZE_BYTES, f)) == 0
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, f)) == entry["scratch_bytes"]
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_NUM_REGS, f)) == entry["vgpr_unified"]  # .vgpr_count
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_BINARY_VERSION, f)) == 95
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, f)) == \
        LDS - entry["static_lds"]
    assert hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_MAX, f)[0] == E.hipErrorInvalidValue

    module = ok(hip.hipModuleLoad(str(path).encode()))
    g = ok(hip.hipModuleGetFunction(module, b"gemm_basic"))
    assert hip.hipModuleGetFunction(module, b"gemm_basic_nope") == (E.hipErrorNotFound, None)
    dyn = hip.hipFuncAttribute.hipFuncAttributeMaxDynamicSharedMemorySize
    ok(hip.hipFuncSetAttribute(g, dyn, 4096))
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, g)) == 4096
    assert hip.hipFuncSetAttribute(g, dyn, LDS)[0] == E.hipErrorInvalidValue   # no room beside static LDS
    ok(hip.hipModuleUnload(module))
    assert hip.hipModuleUnload(module)[0] == E.hipErrorInvalidHandle
    assert hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_NUM_REGS, g)[0] == E.hipErrorInvalidHandle
    assert hip.hipModuleLoad(b"/nonexistent/k.co") == (E.hipErrorFileNotFound, None)


def _compile(tc, tmp_path, archs, bundle):
    src = tmp_path / "scale.hip"
    src.write_text(SCALE)
    out = tmp_path / f"scale-{'-'.join(archs)}.{'hipfb' if bundle else 'co'}"
    cmd = [tc.hipcc, "-O3", *(f"--offload-arch={a}" for a in archs), "--cuda-device-only",
           *(() if bundle else ("--no-gpu-bundle-output",)), "-c", str(src), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HKRT_MOUNT": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    return out.read_bytes()


def test_other_architectures_and_bundles(tc, tmp_path):
    assert hip.hipModuleLoadData(_compile(tc, tmp_path, ["gfx942"], False)) == (E.hipErrorNoBinaryForGpu, None)
    assert hip.hipModuleLoadData(_compile(tc, tmp_path, ["gfx942"], True)) == (E.hipErrorNoBinaryForGpu, None)
    both = _compile(tc, tmp_path, ["gfx942", "gfx950"], True)
    assert both.startswith(b"__CLANG_OFFLOAD_BUNDLE__")
    module = ok(hip.hipModuleLoadData(both))
    f = ok(hip.hipModuleGetFunction(module, b"scale"))
    assert ok(hip.hipFuncGetAttribute(FATTR.HIP_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f)) == 1024
    ok(hip.hipModuleUnload(module))


def test_target_features_must_match_the_device(tc, tmp_path):
    xnack_on = _compile(tc, tmp_path, ["gfx950:xnack+"], False)
    assert hip.hipModuleLoadData(xnack_on) == (E.hipErrorNoBinaryForGpu, None)   # the device runs xnack-
    either = _compile(tc, tmp_path, ["gfx950:xnack+", "gfx950:xnack-"], True)
    module = ok(hip.hipModuleLoadData(either))
    ok(hip.hipModuleGetFunction(module, b"scale"))
    ok(hip.hipModuleUnload(module))


def test_garbage_images(manifest):
    assert hip.hipModuleLoadData(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes().replace(b"\x7fELF", b"")
                                 )[0] == E.hipErrorInvalidImage
    with open("/bin/true", "rb") as fh:
        assert hip.hipModuleLoadData(fh.read())[0] == E.hipErrorInvalidImage  # an ELF, but not AMDGPU
    assert hip.hipModuleLoadData(b"__CLANG_OFFLOAD_BUNDLE__" + bytes(8))[0] == E.hipErrorNoBinaryForGpu


def test_images_whose_headers_point_past_the_buffer_are_refused(manifest):
    """An image comes as a bare pointer and its size from its own headers: a corrupt header must be a HIP
    error, never a read of unmapped memory (this crashed the process, so it runs in a child)."""
    out = run_python(f"""
        import ctypes, mmap, struct
        import hkrt.emu
        hkrt.emu.activate()
        from hip import hip
        good = open({str(mf.arch_dir() / manifest["kernels"]["repack_bf16"]["code_object"])!r}, "rb").read()
        for field, value in ((0x28, 0x70000000), (0x20, 1 << 40), (0x28, (1 << 64) - 64)):  # e_shoff, e_phoff
            bad = bytearray(good)
            struct.pack_into("<Q", bad, field, value)
            print(hip.hipModuleLoadData(bytes(bad))[0].name)
        # an image at the very end of a mapping: the next page is unmapped
        page = mmap.mmap(-1, 2 * mmap.PAGESIZE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(page))
        ctypes.memmove(base + mmap.PAGESIZE - 64, good[:64], 64)  # its header tables lie beyond
        libc = ctypes.CDLL(None)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        assert libc.mprotect(base + mmap.PAGESIZE, mmap.PAGESIZE, 0) == 0
        print(hip.hipModuleLoadData(base + mmap.PAGESIZE - 64)[0].name)
    """)
    assert out.split() == ["hipErrorInvalidImage"] * 4


# ---- launches

def _gemm_args(M, N, K, a, b, c):
    return [a, b, c] + [ctypes.c_int(v) for v in (M, N, K, K, N, N)] + [ctypes.c_int64(0)] * 3  # one matrix


def test_launch_configuration_checks(gemm):
    f, entry = gemm("gemm_basic_kn_f32")
    d = ok(hip.hipMalloc(1 << 16))
    args = _gemm_args(16, 16, 16, d, d, d)
    static = entry["static_lds"]

    def launch(grid=(1, 1, 1), block=(256, 1, 1), lds=0, params=None, extra=args):
        return hip.hipModuleLaunchKernel(f, *grid, *block, lds, None, params, extra)[0]

    assert launch(block=(1025, 1, 1)) == E.hipErrorInvalidValue           # more than any block may have
    assert launch(block=(32, 32, 2)) == E.hipErrorInvalidValue
    assert launch(block=(512, 1, 1)) == E.hipErrorLaunchFailure           # beyond the kernel's launch bounds
    assert launch(lds=LDS + 1) == E.hipErrorInvalidValue                  # more dynamic LDS than exists
    assert launch(lds=LDS - static + 1) == E.hipErrorLaunchOutOfResources  # static + dynamic too large
    assert launch(grid=(0, 1, 1)) == E.hipErrorInvalidValue
    assert launch(grid=(1, 65537, 1)) == E.hipErrorInvalidValue
    assert launch(extra=None) == E.hipErrorInvalidValue                   # arguments missing
    params = (ctypes.c_void_p * 12)()
    assert launch(params=params) == E.hipErrorInvalidValue                 # both forms
    ok(hip.hipFuncSetAttribute(f, hip.hipFuncAttribute.hipFuncAttributeMaxDynamicSharedMemorySize, 1024))
    assert launch(lds=2048) == E.hipErrorInvalidValue                     # above the function's own limit
    assert hip.hipGetLastError() == (E.hipErrorInvalidValue,)
    ok(hip.hipFree(d))


@pytest.mark.parametrize("form", ["kernelParams", "extra"])
@pytest.mark.parametrize("variant", ["gemm_basic_kn_bf16", "gemm_basic_kn_f32", "gemm_basic_nk_bf16",
                                     "gemm_basic_nk_f32"])
def test_gemm_launch_matches_numpy(gemm, variant, form):
    f, entry = gemm(variant)
    M, N, K = 70, 72, 48   # two block rows, two block columns, edge tiles, a partial K step
    kn = entry["launch"]["b_layout"] == "kn"
    out_t = np.float32 if entry["launch"]["dtypes"]["c"] == "f32" else ml_dtypes.bfloat16
    A = rng.standard_normal((M, K)).astype(ml_dtypes.bfloat16)
    B = rng.standard_normal((K, N) if kn else (N, K)).astype(ml_dtypes.bfloat16)
    C = np.zeros((M, N), out_t)
    dA, dB, dC = (ok(hip.hipMalloc(x.nbytes)) for x in (A, B, C))
    ok(hip.hipMemcpy(dA, A, A.nbytes, H2D))
    ok(hip.hipMemcpy(dB, B, B.nbytes, H2D))
    ok(hip.hipMemset(dC, 0xFF, C.nbytes))
    ldb = N if kn else K
    values = ([ctypes.c_void_p(addr(p)) for p in (dA, dB, dC)] + [ctypes.c_int(v) for v in (M, N, K, K, ldb, N)]
              + [ctypes.c_int64(0)] * 3)  # batch strides: one matrix
    grid = (-(-N // 64), -(-M // 64), 1)
    if form == "kernelParams":
        params = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        ok(hip.hipModuleLaunchKernel(f, *grid, entry["launch"]["threads"], 1, 1, 0, None, params, None))
    else:
        ok(hip.hipModuleLaunchKernel(f, *grid, entry["launch"]["threads"], 1, 1, 0, None, None, values))
    ok(hip.hipDeviceSynchronize())
    ok(hip.hipMemcpy(C, dC, C.nbytes, D2H))
    assert_close(C, *expected(A, B, b_nk=not kn, out_dtype=out_t))  # an element left at the 0xFF poison is NaN: fails
    for p in (dA, dB, dC):
        ok(hip.hipFree(p))


def reset_device():
    """Clear a planted fault. Through hkrt's Device, because hkrt (used by other tests of this process)
    must forget the memory and kernels the reset frees."""
    hkrt.get_device("emu").reset()


def test_kernel_fault_is_sticky_until_reset(gemm):
    f, _ = gemm("gemm_basic_kn_f32")
    small = ok(hip.hipMalloc(256))                      # C needs 64 * 64 * 4 bytes
    args = _gemm_args(64, 64, 32, small, small, small)
    ok(hip.hipModuleLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, None, None, args))  # returns before the fault shows
    fault = hkrt.emu.last_error()
    assert isinstance(fault, errors.MemoryFault) and "gemm_basic" in str(fault) and fault.pc is not None
    assert hip.hipPeekAtLastError() == (E.hipErrorIllegalAddress,)
    stream, event = ok(hip.hipStreamCreate()), ok(hip.hipEventCreate())
    x = np.zeros(64, np.uint8)
    try:
        for call in (hip.hipDeviceSynchronize, hip.hipDeviceSynchronize,   # sticky: not reported once only
                     lambda: hip.hipStreamSynchronize(stream), lambda: hip.hipStreamQuery(stream),
                     lambda: hip.hipMemcpyAsync(small, x, 64, H2D, stream),   # innocent work on another stream
                     lambda: hip.hipMemcpy(x, small, 64, D2H), lambda: hip.hipMemset(small, 0, 64),
                     lambda: hip.hipEventRecord(event, stream),
                     lambda: hip.hipModuleLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, None, None, args)):
            assert call()[0] == E.hipErrorIllegalAddress
            assert hkrt.emu.last_error() is fault             # each failure carries the fault's own detail
        ok(hip.hipEventDestroy(event))                          # cleanup still works
        ok(hip.hipStreamDestroy(stream))
    finally:
        reset_device()
    free, total = ok(hip.hipMemGetInfo())
    assert free == total                                        # the reset freed `small` with everything else
    assert hip.hipFree(small)[0] == E.hipErrorInvalidValue
    d = ok(hip.hipMalloc(64 * 64 * 4))                          # and the module runs again
    ok(hip.hipModuleLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, None, None, _gemm_args(64, 64, 0, d, d, d)))
    ok(hip.hipDeviceSynchronize())
    ok(hip.hipFree(d))


def test_each_thread_gets_its_own_error_detail():
    """A failed call's detail belongs to the thread that made it (it was process-wide)."""
    details = {}

    def fail(size, name):
        assert hip.hipMalloc(size)[0] == E.hipErrorOutOfMemory
        details[name] = str(hkrt.emu.last_error())
        barrier.wait()
        details[name + " after"] = str(hkrt.emu.last_error())
    barrier = threading.Barrier(2)
    ts = [threading.Thread(target=fail, args=(size, name)) for size, name in ((1 << 50, "a"), (1 << 51, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert str(1 << 50) in details["a"] and details["a"] == details["a after"]
    assert str(1 << 51) in details["b"] and details["b"] == details["b after"]


@pytest.mark.parametrize("sync", ["stream", "memcpy", "event"])
def test_other_kernel_errors_are_launch_failures(gemm, monkeypatch, sync):
    def faulty(self, module, name, grid, block, lds, kernarg):
        raise errors.BarrierDeadlock("waves stuck", kernel=name, pc=0x40)
    monkeypatch.setattr(machine.Machine, "launch", faulty)
    f, _ = gemm("gemm_basic_kn_f32")
    d = ok(hip.hipMalloc(64))
    stream, event = ok(hip.hipStreamCreate()), ok(hip.hipEventCreate())
    try:
        ok(hip.hipModuleLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, stream, None, _gemm_args(1, 1, 1, d, d, d)))
        assert "waves stuck (kernel gemm_basic, pc 0x40)" == str(hkrt.emu.last_error())
        x = np.zeros(16, np.float32)
        result = {"stream": lambda: hip.hipStreamSynchronize(stream),
                  "memcpy": lambda: hip.hipMemcpy(x, d, 64, D2H),
                  "event": lambda: hip.hipEventSynchronize(event)}[sync]()
        assert result == (E.hipErrorLaunchFailure,)
        assert hip.hipGetLastError() == (E.hipErrorLaunchFailure,)
        assert hip.hipStreamSynchronize(stream) == (E.hipErrorLaunchFailure,)
    finally:
        reset_device()


def test_two_devices():
    run_python("""
        import threading
        import numpy as np
        import hkrt.emu
        hkrt.emu.activate()
        from hip import hip
        from hkrt import manifest as mf

        E, K = hip.hipError_t, hip.hipMemcpyKind
        def ok(r):
            assert r[0] == E.hipSuccess, r
            return r[1] if len(r) == 2 else r[1:] or None

        assert ok(hip.hipGetDeviceCount()) == 2
        assert hip.hipSetDevice(2)[0] == E.hipErrorInvalidDevice
        free0 = ok(hip.hipMemGetInfo())
        ptrs = []
        for dev in (0, 1):
            ok(hip.hipSetDevice(dev))
            assert ok(hip.hipGetDevice()) == dev
            ptrs.append(ok(hip.hipMalloc(4096)))
        assert ptrs[0].as_c_void_p().value != ptrs[1].as_c_void_p().value
        ok(hip.hipSetDevice(0))
        assert ok(hip.hipMemGetInfo()) == (free0[0] - 4096, free0[1])   # device 1's allocation is elsewhere

        x = np.random.default_rng().integers(0, 256, 4096, dtype=np.uint8)
        y = np.zeros_like(x)
        ok(hip.hipMemcpy(ptrs[0], x, 4096, K.hipMemcpyHostToDevice))
        ok(hip.hipMemcpy(ptrs[1], ptrs[0], 4096, K.hipMemcpyDeviceToDevice))   # across devices
        ok(hip.hipMemcpy(y, ptrs[1], 4096, K.hipMemcpyDefault))
        assert (x == y).all()

        p0, p1 = hip.hipDeviceProp_t(), hip.hipDeviceProp_t()
        ok(hip.hipGetDeviceProperties(p0, 0)), ok(hip.hipGetDeviceProperties(p1, 1))
        assert p0.name == p1.name and p0.pciBusID != p1.pciBusID

        # the current device is per host thread
        ok(hip.hipSetDevice(1))
        seen = []
        t = threading.Thread(target=lambda: seen.append(ok(hip.hipGetDevice())))
        t.start(); t.join()
        assert seen == [0] and ok(hip.hipGetDevice()) == 1

        # a stream of device 0 cannot launch while device 1 is current
        ok(hip.hipSetDevice(0))
        s0 = ok(hip.hipStreamCreate())
        assert ok(hip.hipStreamGetDevice(s0)) == 0
        entry = mf.load()["kernels"]["gemm_basic_kn_f32"]
        module = ok(hip.hipModuleLoadData((mf.arch_dir() / entry["code_object"]).read_bytes()))
        f = ok(hip.hipModuleGetFunction(module, b"gemm_basic"))
        ok(hip.hipSetDevice(1))
        args = [ptrs[1]] * 3 + [__import__("ctypes").c_int(1)] * 6
        r = hip.hipModuleLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, s0, None, args)
        assert r[0] == E.hipErrorInvalidHandle, r
        for p in ptrs:
            ok(hip.hipFree(p))                    # hipFree finds the device from the pointer
        print("ok")
    """, HKRT_EMU_DEVICES="2")


# ---- planted bugs, caught through plain hip-python calls (this process runs the emulator strict)

def _planted(compile_hip, source, name, fixed):
    from test_emu_kernels import DMA_RACE, MISSING_BARRIER, MISSING_WAIT  # the kernels, shared
    src = {"wait": MISSING_WAIT, "barrier": MISSING_BARRIER, "dma": DMA_RACE}[source]
    co = compile_hip(src, name=f"hip_{name}{fixed}", extra=[f"-DFIXED={fixed}"])
    module = ok(hip.hipModuleLoadData(co.read_bytes()))
    return ok(hip.hipModuleGetFunction(module, b"k"))


def _run_planted(f, threads):
    x = rng.standard_normal(threads).astype(np.float32)
    d_in, d_out = ok(hip.hipMalloc(x.nbytes)), ok(hip.hipMalloc(x.nbytes))
    ok(hip.hipMemcpy(d_in, x, x.nbytes, H2D))
    ok(hip.hipMemset(d_out, 0xFF, x.nbytes))
    args = [ctypes.c_void_p(addr(d_in)), ctypes.c_void_p(addr(d_out))]
    ok(hip.hipModuleLaunchKernel(f, 1, 1, 1, threads, 1, 1, 0, None, None, args))
    status = hip.hipDeviceSynchronize()[0]
    out = np.zeros_like(x)
    if status == E.hipSuccess:
        ok(hip.hipMemcpy(out, d_out, x.nbytes, D2H))
        ok(hip.hipFree(d_in)), ok(hip.hipFree(d_out))
    else:
        reset_device()  # frees d_in and d_out with the fault
    return status, x, out


@pytest.mark.parametrize("bug,threads,expect", [("wait", 64, lambda x: 2 * x), ("dma", 128, lambda x: np.roll(x, -64)),
                                                ("barrier", 128, lambda x: np.roll(x, -64))])
def test_planted_hazards_fail_the_launch(compile_hip, bug, threads, expect):
    assert machine.Machine().strict, "this test needs the strict mode conftest sets"
    status, _, _ = _run_planted(_planted(compile_hip, bug, bug, 0), threads)
    assert status == E.hipErrorLaunchFailure
    fault = hkrt.emu.last_error()
    assert isinstance(fault, errors.HazardError) and fault.pc is not None and "kernel k" in str(fault)
    status, x, out = _run_planted(_planted(compile_hip, bug, bug, 1), threads)
    assert status == E.hipSuccess
    np.testing.assert_array_equal(out, expect(x))


def test_device_addresses_are_reused_after_a_quarantine():
    """Every allocation once burnt its size plus a 1 MiB guard of address space for good: a long-running
    process ended with every allocation failing although all memory was free. Now a freed range is reused
    once enough was freed after it, and not before (a stale pointer to it still faults)."""
    mib = 1 << 20
    mem = machine.DeviceMemory(64 * mib, base=machine.HEAP_BASE, limit=machine.HEAP_BASE + 64 * mib,
                               quarantine=8 * mib)
    first = mem.alloc(4096)
    mem.free(first)
    recent = [mem.alloc(4096) for _ in range(4)]
    assert first not in recent and mem.find(first) is None  # quarantined: the stale pointer faults
    for a in recent:
        mem.free(a)
    for _ in range(10_000):  # 10,000 x (4 KiB + 1 MiB guard) of address space: far more than the 64 MiB
        mem.free(mem.alloc(4096))
    assert mem.used == 0
    big = mem.alloc(16 * mib)  # merged ranges serve a larger allocation
    assert mem.find(big + 16 * mib - 1) == (big, 16 * mib)
