"""The kernel registry (hkrt/registry.py): the manifest, loading code objects, packing arguments and the
launch checks of threads, grid and LDS: with the emulator, and on tests/fake_driver.py, where what
reaches the driver is recorded instead of run.
"""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import hkrt
from hkrt import codeobject
from hkrt import manifest as mf
from hkrt import registry

from fake_driver import FakeDriver, fake_device
from kernel_harness import BF16, check, normal

REAL_KERNELS_DIR = mf.KERNELS_DIR


# ---------------------------------------------------------------------------------------------------------
# on the emulated device

def _basic_f32_kn() -> str:
    kernels = registry.manifest(hkrt.get_device().arch).kernels
    return next(n for n, k in sorted(kernels.items()) if k.launch.strategy == "basic"
                and k.launch.b_layout == "kn" and k.launch.out == "f32")


def test_launch_direct_and_bad_launches():
    rng = np.random.default_rng()
    dev = hkrt.get_device()
    name = _basic_f32_kn()
    k = registry.kernel(dev, name)
    assert registry.kernel(dev, name) is k                 # loaded once
    m, n, kk = 70, 40, 50
    tile = k.spec.launch.tile
    grid = (-(-n // tile.n), -(-m // tile.m))
    a, b = normal(rng, (m, kk), BF16), normal(rng, (kk, n), BF16)
    da, db = hkrt.asarray(a), hkrt.asarray(b)
    dc = hkrt.asarray(np.full((m, n), np.nan, np.float32))
    args = [da.ptr, db.ptr, dc.ptr, m, n, kk, kk, n, n, 0, 0, 0]  # batch strides 0: one matrix
    nargs = len(k.spec.explicit_args)
    assert nargs == len(args)
    max_threads = k.spec.max_workgroup_size
    lds_left = dev.info.max_lds_per_block - k.spec.static_lds
    bad = [
        (TypeError, rf"{name} takes {nargs} arguments, got {nargs - 1}", dict(grid=grid, args=args[:-1])),
        (TypeError, rf"{name} takes {nargs} arguments, got {nargs + 1}", dict(grid=grid, args=args + [0])),
        (hkrt.LaunchConfigError, rf"{name}: {2 * max_threads} threads per block.*at most {max_threads}",
         dict(grid=grid, args=args, block=(2 * max_threads, 1, 1))),
        (hkrt.LaunchConfigError, r"2048 threads", dict(grid=grid, args=args, block=(64, 32, 1))),
        (hkrt.LaunchConfigError, r"0 threads", dict(grid=grid, args=args, block=(0, 1, 1))),
        (hkrt.LaunchConfigError, rf"{name}: needs {dev.info.max_lds_per_block + 1} bytes of LDS",
         dict(grid=grid, args=args, dynamic_lds=lds_left + 1)),
        (hkrt.LaunchConfigError, r"grid", dict(grid=(0, 1), args=args)),
        (hkrt.LaunchConfigError, r"grid", dict(grid=(1, 70000), args=args)),
    ]
    for exc_type, pattern, kw in bad:
        with pytest.raises(exc_type, match=pattern):
            k.launch(kw.pop("grid"), kw.pop("args"), **kw)
    assert issubclass(hkrt.LaunchConfigError, ValueError)
    # nothing ran: the output is still poisoned; then a good launch computes the product
    assert np.isnan(dc.numpy()).all()
    k.launch(grid, args)
    check(dc.numpy(), a, b, out_dtype=np.float32)


def test_pack_args_layout():
    spec = registry.spec(hkrt.get_device().arch, _basic_f32_kn())
    rng = np.random.default_rng()
    values = []
    for x in spec.explicit_args:
        values.append(int(rng.integers(1, 2 ** 47)) if x.kind == "global_buffer" else int(rng.integers(-2 ** 31, 2 ** 31)))
    buf = registry.pack_args(spec, values)
    assert len(buf) == spec.kernarg_size
    for x, v in zip(spec.explicit_args, values):
        got = int.from_bytes(buf[x.offset:x.offset + x.size], "little", signed=x.kind != "global_buffer")
        assert got == v
    fake = _spec(args=(mf.Arg(0, 4, "by_value"), mf.Arg(4, 4, "by_value")), kernarg_size=8)
    buf = registry.pack_args(fake, [1.5, -3])
    assert np.frombuffer(buf[:4], np.float32)[0] == 1.5 and np.frombuffer(buf[4:], np.int32)[0] == -3


@pytest.fixture
def private_registry(monkeypatch, tmp_path):
    """The registry pointed at an empty kernels directory; its caches are restored afterwards."""
    monkeypatch.setattr(mf, "KERNELS_DIR", tmp_path)
    monkeypatch.setattr(registry, "_manifests", {})
    monkeypatch.setattr(registry, "_loaded", {})
    return tmp_path


def copy_real_manifest(root, arch):
    """The built manifest, alone, in the private kernels directory."""
    (root / arch).mkdir()
    shutil.copy(mf.manifest_path(arch, root=REAL_KERNELS_DIR), root / arch / mf.MANIFEST_NAME)


def test_corrupt_manifest_is_named(private_registry, monkeypatch):
    """A corrupt manifest.json once gave a raw JSONDecodeError naming no file."""
    dev = hkrt.get_device()
    path = mf.manifest_path(dev.arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"kernels": {')
    with pytest.raises(hkrt.KernelNotFoundError, match="manifest.json is corrupt") as exc:
        hkrt.gemm(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))
    assert str(path) in str(exc.value) and "make kernels" in str(exc.value)


def test_manifest_missing(private_registry, monkeypatch):
    dev = hkrt.get_device()
    arch = dev.arch
    name = "gemm_basic_kn_bf16"
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        registry.kernel(dev, name)
    msg = str(exc.value)
    assert name in msg and arch in msg and "make kernels" in msg, msg
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        hkrt.gemm(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))
    msg = str(exc.value)
    assert arch in msg and "make kernels" in msg, msg
    # after the check the real kernels come back
    monkeypatch.undo()
    assert (hkrt.gemm(np.ones((4, 3), np.float32), np.ones((3, 5), np.float32), out_dtype=np.float32) == 3).all()


def test_code_object_missing(private_registry, monkeypatch):
    dev = hkrt.get_device()
    arch = dev.arch
    copy_real_manifest(private_registry, arch)
    kernels = registry.manifest(arch).kernels
    for name in kernels:
        with pytest.raises(hkrt.KernelNotFoundError) as exc:
            registry.kernel(dev, name)
        msg = str(exc.value)
        assert name in msg and arch in msg and "make kernels" in msg, msg
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        hkrt.gemm(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))
    assert arch in str(exc.value) and "make kernels" in str(exc.value)
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        registry.kernel(dev, "gemm_no_such_variant")
    assert "gemm_no_such_variant" in str(exc.value) and "make kernels" in str(exc.value)
    monkeypatch.undo()
    assert (hkrt.gemm(np.ones((4, 3), np.float32), np.ones((3, 5), np.float32), out_dtype=np.float32) == 3).all()


def test_code_object_for_another_architecture(private_registry, monkeypatch, compile_hip):
    """A code object built for gfx942 in gfx950's place: an error naming kernel, both architectures, the fix."""
    dev = hkrt.get_device()
    arch = dev.arch
    copy_real_manifest(private_registry, arch)
    name = "gemm_basic_kn_bf16"
    entry = registry.manifest(arch).kernels[name]
    other = compile_hip('#include <hip/hip_runtime.h>\nextern "C" __global__ void gemm_basic(float* x) { x[0] = 1; }\n',
                        arch="gfx942", name="other_arch")
    shutil.copy(other, private_registry / arch / entry.code_object)
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        registry.kernel(dev, name)
    msg = str(exc.value)
    assert name in msg and "gfx942" in msg and arch in msg and "make kernels" in msg, msg
    # a file that is not a code object at all
    (private_registry / arch / entry.code_object).write_bytes(b"not an ELF file")
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        registry.kernel(dev, name)
    assert name in str(exc.value) and "not an ELF" in str(exc.value) and "make kernels" in str(exc.value)


def test_a_code_object_swapped_under_the_manifest_is_refused(private_registry, monkeypatch):
    """The bf16-output variant's file replaced by the f32-output one: the same symbol and arguments, so it
    loaded and wrote fp32 into a bf16 result, silently wrong. Now the load names what differs."""
    dev = hkrt.get_device()
    arch = dev.arch
    copy_real_manifest(private_registry, arch)
    kernels = registry.manifest(arch).kernels
    for k in kernels.values():
        shutil.copy(REAL_KERNELS_DIR / arch / k.code_object, private_registry / arch / k.code_object)
    bf16, f32 = kernels["gemm_pingpong_nk_bf16"], kernels["gemm_pingpong_nk_f32"]
    assert (bf16.symbol, bf16.args) == (f32.symbol, f32.args)   # nothing but the contents tells them apart
    shutil.copy(REAL_KERNELS_DIR / arch / f32.code_object, private_registry / arch / bf16.code_object)
    rng = np.random.default_rng()
    a, b = normal(rng, (256, 64)), normal(rng, (64, 256))
    with pytest.raises(hkrt.KernelNotFoundError, match=r"gemm_pingpong_nk_bf16.*does not match the manifest: "
                                                       r"its contents are not the ones built.*make kernels"):
        hkrt.gemm(a, b, strategy="pingpong")
    # an object whose metadata differs is named by what differs, even if its hash were recorded
    basic = kernels["gemm_basic_kn_f32"]
    resized = {4: 8, 8: 4}  # the last argument's size changed
    wrong = dataclasses.replace(basic, kernarg_size=basic.kernarg_size + 8,
                                args=basic.args[:-1] + (mf.Arg(basic.args[-1].offset, resized[basic.args[-1].size],
                                                               "by_value"),))
    image = (REAL_KERNELS_DIR / arch / basic.code_object).read_bytes()
    parsed = codeobject.parse(image, expect_arch=None).kernels[basic.symbol]
    found = registry.mismatches(wrong, image, parsed)
    assert any("arguments" in f for f in found) and any("kernarg size" in f for f in found), found
    assert registry.mismatches(basic, image, parsed) == []


# ---------------------------------------------------------------------------------------------------------
# through the fake driver: the launch checks and what reaches the driver

def _spec(max_workgroup_size=256, static_lds=1024, dynamic_lds=0, args=None, kernarg_size=24):
    """A kernel's manifest record: by default a pointer, an int, a float, then a hidden argument."""
    args = args or (mf.Arg(0, 8, "global_buffer"), mf.Arg(8, 4, "by_value"), mf.Arg(12, 4, "by_value"),
                    mf.Arg(16, 8, "hidden_block_count_x"))
    launch = mf.LaunchSpec(threads=max_workgroup_size, dynamic_lds=dynamic_lds, tile=mf.Tile(64, 64, 32),
                           strategy="basic", epilogue="none", out="f32", b_layout="nk")
    return mf.KernelSpec(name="k", code_object="k.co", symbol="k", args=args, kernarg_size=kernarg_size,
                         static_lds=static_lds, max_workgroup_size=max_workgroup_size, sha256="", launch=launch)


def _fake_kernel(spec, **info):
    driver = FakeDriver()
    dev = fake_device(driver, **info)
    return registry.LoadedKernel(spec, dev, module=1, function="fn"), driver


def test_fake_launch_reaches_the_driver_as_packed():
    k, driver = _fake_kernel(_spec())
    rng = np.random.default_rng()
    ptr, count = int(rng.integers(1, 2 ** 47)), int(rng.integers(-2 ** 31, 2 ** 31))
    k.launch((3, 2), [ptr, count, 0.5])
    (launch,) = driver.launches
    assert launch.grid == (3, 2, 1) and launch.block == (256, 1, 1) and launch.dynamic_lds == 0
    assert launch.kernarg == registry.pack_args(k.spec, [ptr, count, 0.5]) and len(launch.kernarg) == 24
    assert int.from_bytes(launch.kernarg[:8], "little") == ptr
    assert int.from_bytes(launch.kernarg[8:12], "little", signed=True) == count
    assert np.frombuffer(launch.kernarg[12:16], np.float32)[0] == 0.5
    assert driver.lds_attr == {}  # no dynamic LDS: the function's attribute is left alone


def test_fake_dynamic_lds_attribute_raised_only_when_needed():
    k, driver = _fake_kernel(_spec(dynamic_lds=4096))
    k.launch((1,), [0, 0, 0.0])
    k.launch((1,), [0, 0, 0.0], dynamic_lds=2048)   # below what was set: not set again
    assert driver.lds_attr == {"fn": 4096}
    k.launch((1,), [0, 0, 0.0], dynamic_lds=8192)
    assert driver.lds_attr == {"fn": 8192}
    assert [x.dynamic_lds for x in driver.launches] == [4096, 2048, 8192]


def test_fake_bad_launches_never_reach_the_driver():
    k, driver = _fake_kernel(_spec(max_workgroup_size=256, static_lds=1024), max_lds_per_block=64 * 1024)
    args = [0, 0, 0.0]
    bad = [(hkrt.LaunchConfigError, "512 threads", dict(block=(512, 1, 1))),
           (hkrt.LaunchConfigError, "0 threads", dict(block=(0, 1, 1))),
           (hkrt.LaunchConfigError, "grid", dict(grid=(0,))),
           (hkrt.LaunchConfigError, "grid", dict(grid=(1, 65536))),
           (hkrt.LaunchConfigError, "grid", dict(grid=(2 ** 31, 1, 1))),
           (hkrt.LaunchConfigError, f"needs {64 * 1024 + 1} bytes of LDS", dict(dynamic_lds=63 * 1024 + 1)),
           (TypeError, "takes 3 arguments, got 2", dict(args=args[:2]))]
    for exc_type, pattern, kw in bad:
        with pytest.raises(exc_type, match=pattern):
            k.launch(kw.pop("grid", (1,)), kw.pop("args", args), **kw)
    assert driver.launches == [] and driver.lds_attr == {}
    k.launch((2 ** 31 - 1, 65535, 65535), args, dynamic_lds=63 * 1024)  # every limit exactly met
    assert len(driver.launches) == 1


def test_fake_thread_limit_message_names_the_device_limit():
    """A block within the kernel's limit but beyond the device's was refused naming the kernel's limit."""
    k, driver = _fake_kernel(_spec(max_workgroup_size=1024), max_threads_per_block=256)
    with pytest.raises(hkrt.LaunchConfigError, match="512 threads per block, but at most 256 fit"):
        k.launch((1,), [0, 0, 0.0], block=(512, 1, 1))


def test_fake_kernel_loads_once_through_the_driver(monkeypatch):
    """registry.kernel() reads the built code object, checks its architecture and loads it once per device."""
    monkeypatch.setattr(registry, "_loaded", {})  # the emulated device 0's kernels share the fake's index
    driver = FakeDriver()
    dev = fake_device(driver)
    name = "gemm_basic_kn_f32"
    k = registry.kernel(dev, name)
    assert registry.kernel(dev, name) is k and len(driver.modules) == 1
    (image,) = driver.modules.values()
    assert image == (mf.arch_dir(dev.arch) / k.spec.code_object).read_bytes()
    assert k.function == (next(iter(driver.modules)), k.spec.symbol)
