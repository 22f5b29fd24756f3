"""The runtime around hkrt.gemm: caching allocator, threads, device selection, kernel registry, CLI.

What needs a fresh process (the backend is chosen once per process; the emulator reads HKRT_EMU_MEMORY and
HKRT_EMU_DEVICES when it starts) runs in a subprocess of sys.executable.
"""
from __future__ import annotations

import csv
import gc
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import hkrt
from hkrt import manifest as mf
from hkrt import registry
from hkrt.memory import size_class

from test_gemm import BF16, check, normal

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
MiB = 1 << 20
REAL_KERNELS_DIR = mf.KERNELS_DIR


def run_python(code: str, env: dict | None = None, args=("-c",), timeout: float = 120, stdout=subprocess.PIPE):
    """Run code (or `python -m ...` with args) in a fresh interpreter at the repository root.

    The HKRT_* variables of this process are dropped first so that each test states its own; the
    emulator runs strict there too unless a test says otherwise. stdout is captured unless a file is given.
    """
    e = {k: v for k, v in os.environ.items() if not k.startswith("HKRT_")}
    e["HKRT_EMU_STRICT"] = "1"
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    e.update(env or {})
    cmd = [sys.executable, *args] + ([textwrap.dedent(code)] if code is not None else [])
    return subprocess.run(cmd, cwd=ROOT, env=e, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout)


def ok(res) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res.stdout


def last_json(res):
    return json.loads(ok(res).strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# the caching allocator

def _mixed_calls(rng, w, stream):
    """One round of gemm calls over every path: plain, epilogue, batched, device arrays, streams, out=, empty."""
    a = normal(rng, (33, 64))
    hkrt.gemm(a, normal(rng, (64, 48)))
    hkrt.gemm(a, w, bias=normal(rng, 48), activation="gelu")
    hkrt.gemm(normal(rng, (2, 33, 64)), normal(rng, (2, 64, 48)), c=normal(rng, (2, 33, 48)), beta=1.0,
              out_dtype=np.float32)
    da = hkrt.asarray(a.astype(BF16))
    hkrt.gemm(da, w).numpy()
    hkrt.gemm(hkrt.asarray(a.astype(BF16), stream=stream), w, stream=stream, bias=hkrt.asarray(normal(rng, 48)),
              alpha=0.5).numpy()
    out = np.empty((33, 48), np.float32)
    hkrt.gemm(a, w, out=out)
    hkrt.gemm(np.zeros((0, 64), np.float32), w)
    hkrt.gemm(a[:, :0], normal(rng, (0, 48)), bias=normal(rng, 48))
    try:
        hkrt.gemm(a, w, bias=normal(rng, 47))
    except ValueError:
        pass
    return out


def test_allocator_usage_stays_flat():
    rng = np.random.default_rng()
    alloc = hkrt.get_device().allocator
    w = hkrt.Weight(normal(rng, (64, 48)))
    stream = hkrt.Stream()
    for _ in range(3):  # warm-up: the cache fills with what one round needs
        _mixed_calls(rng, w, stream)
    gc.collect()
    base, high = alloc.in_use, alloc.cached
    assert base >= size_class(64 * 48 * 2)  # the weight stays
    for i in range(25):
        _mixed_calls(rng, w, stream)
        assert alloc.in_use == base, f"round {i}: {alloc.in_use} bytes in use, {base} before"
        assert alloc.cached <= high, f"round {i}: cache grew to {alloc.cached} bytes from {high}"
    for i in range(5):
        _mixed_calls(rng, w, stream)
        gc.collect()
        assert alloc.in_use == base and alloc.cached <= high
    del w
    gc.collect()
    assert alloc.in_use == base - size_class(64 * 48 * 2)


def test_free_then_collect_gives_back_once():
    """DeviceArray.free() and the later garbage collection of the array give its block back exactly once."""
    alloc = hkrt.get_device().allocator
    gc.collect()
    alloc.empty_cache()
    base = alloc.in_use
    x = hkrt.empty((1000,), np.float32)
    x.free()
    y = hkrt.empty((1000,), np.float32)          # takes the block x gave back
    assert alloc.in_use == base + size_class(4000)
    del x
    gc.collect()
    assert alloc.in_use == base + size_class(4000), "collecting x gave back the block y now holds"
    z = hkrt.empty((1000,), np.float32)
    assert z.ptr != y.ptr
    y.copy_from(np.arange(1000, dtype=np.float32))
    z.copy_from(np.zeros(1000, np.float32))
    np.testing.assert_array_equal(y.numpy(), np.arange(1000, dtype=np.float32))
    del y, z
    gc.collect()
    assert alloc.in_use == base, "a block handed out again after free() was never given back"
    # the same through many reuse cycles of one size class
    for i in range(50):
        t = hkrt.empty((3000,), np.float32)
        if i % 2:
            t.free()
        del t
    gc.collect()
    assert alloc.in_use == base


def test_allocator_accounting_and_empty_cache():
    dev = hkrt.get_device()
    alloc = dev.allocator
    gc.collect()
    alloc.empty_cache()
    assert alloc.cached == 0
    base = alloc.in_use
    free0, total = dev.driver.mem_info()
    sizes = [1, 511, 512, 513, MiB - 1, MiB, 3 * MiB + 5]
    arrays = [hkrt.empty((max(1, s // 2),), np.float16) for s in sizes]
    expect = sum(size_class(a.nbytes) for a in arrays)
    assert alloc.in_use == base + expect
    assert dev.driver.mem_info()[0] <= free0 - expect
    ptrs = {a.ptr for a in arrays}
    del arrays
    gc.collect()
    assert alloc.in_use == base and alloc.cached == expect
    again = [hkrt.empty((max(1, s // 2),), np.float16) for s in sizes]   # served from the cache
    assert {a.ptr for a in again} == ptrs and alloc.cached == 0
    del again
    alloc.empty_cache()
    assert alloc.cached == 0 and dev.driver.mem_info()[0] == free0


def test_size_class():
    for n in (0, 1, 512, 513, MiB - 1, MiB, MiB + 1, 5 * MiB):
        s = size_class(n)
        assert s >= max(n, 1)
        assert s % (512 if n < MiB else 2 * MiB) == 0
        assert s - n < (512 if n < MiB else 2 * MiB) or n == 0


def test_gc_inside_allocator_does_not_deadlock():
    """A collection may run at any allocation, including the allocator's own inside its lock; a device
    array in a reference cycle then gets collected there, and giving its block back must not deadlock."""
    code = """
        import faulthandler, gc, sys, numpy as np, hkrt
        faulthandler.dump_traceback_later(30, exit=True)
        dev = hkrt.get_device()
        real = dev.driver.malloc
        def malloc(n):
            gc.collect()          # what an automatic collection at an allocation inside the HIP call does
            return real(n)
        dev.driver.malloc = malloc
        class Cycle:
            def __init__(self):
                self.me, self.arr = self, hkrt.empty((1000,), np.float32)
        gc.disable()
        Cycle()
        x = hkrt.empty((5000,), np.float32)
        y = hkrt.gemm(np.ones((70, 40), np.float32), np.ones((40, 30), np.float32), out_dtype=np.float32)
        assert (y == 40).all()
        del x, y
        gc.collect()
        print("in_use", dev.allocator.in_use)
    """
    res = run_python(code, timeout=60)
    out = ok(res)
    assert out.strip().splitlines()[-1] == "in_use 0"


OOM_CODE = """
    import gc, json, numpy as np, hkrt
    dev = hkrt.get_device()
    alloc = dev.allocator
    calls = []
    real = dev.driver.malloc
    def malloc(n):
        calls.append(n)
        return real(n)
    dev.driver.malloc = malloc
    MiB = 1 << 20
    free0, total = dev.driver.mem_info()
    xs = [hkrt.empty((MiB,), np.float16) for _ in range(3)]   # 3 x 2 MiB
    del xs
    gc.collect()
    cached = alloc.cached
    free1 = dev.driver.mem_info()[0]
    calls.clear()
    big = hkrt.empty((2 * MiB,), np.float16)                 # 4 MiB: fits only once the cache is emptied
    r = dict(total=total, free0=free0, cached=cached, free1=free1, calls_ok=list(calls), cached_after=alloc.cached,
             in_use=alloc.in_use)
    calls.clear()
    try:
        hkrt.empty((3 * MiB + 100,), np.float16)
    except hkrt.DeviceMemoryError as e:
        r.update(msg=str(e), mro=[c.__name__ for c in type(e).__mro__], free_err=dev.driver.mem_info()[0],
                 calls_err=list(calls))
    # the allocator works afterwards, and a gemm too large for the device fails cleanly
    small = hkrt.empty((MiB // 2,), np.float16)
    try:
        hkrt.gemm(np.ones((1200, 1200), np.float32), np.ones((1200, 1200), np.float32))
    except hkrt.DeviceMemoryError as e:
        r["gemm_msg"] = str(e)
    del small
    gc.collect()
    rng = np.random.default_rng()
    a, b = rng.standard_normal((40, 50), dtype=np.float32), rng.standard_normal((50, 60), dtype=np.float32)
    from test_gemm import check
    check(hkrt.gemm(a, b), a, b)
    del big
    gc.collect()
    r["in_use_end"] = alloc.in_use
    print(json.dumps(r))
"""


def test_out_of_memory_empties_cache_then_reports():
    capacity = 8 * MiB
    r = last_json(run_python(OOM_CODE, env={"HKRT_EMU_MEMORY": str(capacity)}))
    assert r["total"] == capacity and r["free0"] == capacity
    assert r["cached"] == 6 * MiB and r["free1"] == 2 * MiB
    # the 4 MiB request failed, the cache was emptied, the one retry succeeded
    assert r["calls_ok"] == [4 * MiB, 4 * MiB]
    assert r["cached_after"] == 0 and r["in_use"] == 4 * MiB
    # 6 MiB + 200 bytes cannot fit: one retry, then DeviceMemoryError with the bytes requested and free
    assert r["calls_err"] == [8 * MiB, 8 * MiB]
    assert {"DeviceMemoryError", "HkrtError", "MemoryError"} <= set(r["mro"])
    msg = r["msg"]
    assert f"{6 * MiB + 200} bytes requested" in msg, msg
    assert f"{r['free_err']} of {capacity} bytes free" in msg, msg
    assert "gemm_msg" in r and "bytes requested" in r["gemm_msg"]
    assert r["in_use_end"] == 0


# ---------------------------------------------------------------------------------------------------------
# threads

def test_threads_concurrent_gemm():
    n_threads, calls = 8, 3
    seq = np.random.SeedSequence()
    print(f"entropy {seq.entropy}")
    shared = normal(np.random.default_rng(seq), (48, 40))
    w = hkrt.Weight(shared)
    results, errors = [], []
    barrier = threading.Barrier(n_threads)
    lock = threading.Lock()

    def work(t, child):
        rng = np.random.default_rng(child)
        try:
            stream = hkrt.Stream() if t % 2 else None
            barrier.wait()
            for i in range(calls):
                m, n, k = 1 + 13 * t + 7 * i, 40 if t % 3 == 0 else 17 + 11 * t + 3 * i, 48 if t % 3 == 0 else 5 + 9 * i + t
                a = normal(rng, (m, k))
                kw = {}
                if t % 3 == 0:
                    b = shared
                    kw = dict(bias=normal(rng, n), activation="relu")
                    got = hkrt.gemm(a, w, **kw)
                elif t % 3 == 1:
                    b = normal(rng, (k, n))
                    kw = dict(bias=normal(rng, n), activation="silu", out_dtype=np.float32)
                    got = hkrt.gemm(a, b, stream=stream, **kw)
                else:
                    b = normal(rng, (k, n), BF16)
                    r = hkrt.gemm(hkrt.asarray(a.astype(BF16), stream=stream), hkrt.asarray(b, stream=stream),
                                  stream=stream)
                    got = r.numpy()
                with lock:
                    results.append((t, i, got, a, b, kw))
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append((t, repr(exc)))

    threads = [threading.Thread(target=work, args=(t, c)) for t, c in enumerate(seq.spawn(n_threads))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors
    assert len(results) == n_threads * calls
    for t, i, got, a, b, kw in results:
        check(got, a, b, what=f"thread {t} call {i}", **kw)


# ---------------------------------------------------------------------------------------------------------
# kernel faults: sticky per device (as HIP's), reported to the work that caused them, cleared by a reset

@pytest.fixture
def planted_fault(monkeypatch):
    """Every GEMM launch faults (as an out-of-bounds store would); the device is reset afterwards."""
    from hkrt.emu import errors, machine
    real = machine.Machine.launch

    def faulty(self, module, name, *args):
        if name.startswith("gemm_"):
            raise errors.MemoryFault("planted fault", kernel=name, pc=0x80, address=0xDEAD)
        return real(self, module, name, *args)
    monkeypatch.setattr(machine.Machine, "launch", faulty)
    yield
    monkeypatch.undo()
    hkrt.get_device().reset()


def test_kernel_fault_reaches_the_gemm_that_caused_it(planted_fault):
    rng = np.random.default_rng()
    a = hkrt.asarray(normal(rng, (64, 64)).astype(BF16))
    w = hkrt.Weight(normal(rng, (64, 32)))
    side = hkrt.Stream()
    c = hkrt.gemm(a, w, strategy="pingpong")     # one launch, which returns before the fault shows (as on a GPU)
    with pytest.raises(hkrt.HipError, match="planted fault"):  # the device is unusable now, for all work
        hkrt.asarray(np.ones(8, np.float32), stream=side)
    unrelated = hkrt.Stream()
    del unrelated                                # its finalizer once synchronized and swallowed the fault
    gc.collect()
    with pytest.raises(hkrt.HipError, match=r"planted fault \(kernel gemm_\w+, pc 0x80\).*reset") as err:
        c.numpy()                                # the faulting gemm's result: once zeros, with no error
    assert err.value.name == "hipErrorIllegalAddress"


def test_device_reset_recovers_and_retires_old_handles(planted_fault, monkeypatch):
    rng = np.random.default_rng()
    dev = hkrt.get_device()
    a = hkrt.asarray(normal(rng, (64, 64)).astype(BF16))
    side = hkrt.Stream()
    with pytest.raises(hkrt.HipError, match="planted fault"):
        hkrt.gemm(a, a).numpy()
    monkeypatch.undo()
    dev.reset()
    for use in (a.numpy, side.synchronize, lambda: hkrt.gemm(a, a)):
        with pytest.raises(ValueError, match="reset"):
            use()
    assert dev.allocator.in_use == 0
    x, y = normal(rng, (96, 80)), normal(rng, (80, 40))
    check(hkrt.gemm(x, y), x, y)                 # kernels load again, memory is fresh
    a = side = None
    gc.collect()                                 # finalizers of retired objects stay quiet and harmless
    assert dev.allocator.in_use == 0


def test_finalizer_failures_warn(monkeypatch):
    """Finalizers cannot raise; a failed stream destroy once passed silently."""
    from hkrt.errors import HipError
    dev = hkrt.get_device()
    s = hkrt.Stream()

    def broken(handle):
        raise HipError("hipStreamDestroy", 400, "hipErrorInvalidHandle")
    monkeypatch.setattr(dev.driver, "stream_destroy", broken)
    with pytest.warns(RuntimeWarning, match="destroying a stream.*hipErrorInvalidHandle"):
        del s
        gc.collect()


def test_a_block_that_cannot_be_pooled_loses_nothing_else(monkeypatch):
    """Giving back blocks freed on a stream records an event for each; one failing once lost that block
    and left the others queued behind an exception raised from a counter read."""
    from hkrt.errors import HipError
    dev = hkrt.get_device()
    alloc = dev.allocator
    gc.collect()
    base = alloc.in_use
    s = hkrt.Stream()
    arrays = [hkrt.empty((1000 + 1000 * i,), np.float32, stream=s) for i in range(3)]
    real, calls = dev.driver.event_record, []

    def flaky(event, stream):
        calls.append(event)
        if len(calls) == 2:
            raise HipError("hipEventRecord", 400, "hipErrorInvalidHandle")
        return real(event, stream)
    monkeypatch.setattr(dev.driver, "event_record", flaky)
    free0 = dev.driver.mem_info()[0]
    del arrays
    gc.collect()
    assert alloc.in_use == base                  # every block is accounted for, none raised
    assert dev.driver.mem_info()[0] == free0 + size_class(8000)  # the one that failed went back to the device
    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------------------
# device selection (per process: subprocesses)

SELECT_CODE = """
    import json, sys, numpy as np, hkrt
    from test_gemm import check
    d = hkrt.get_device()
    rng = np.random.default_rng()
    a, b = rng.standard_normal((30, 20), dtype=np.float32), rng.standard_normal((20, 10), dtype=np.float32)
    check(hkrt.gemm(a, b), a, b)
    print(json.dumps(dict(kind=d.kind, arch=d.arch, name=d.info.name, emulated=d.driver.emulated)))
"""


@pytest.mark.parametrize("env", [{}, {"HKRT_DEVICE": "auto"}, {"HKRT_DEVICE": "emu"}, {"HKRT_DEVICE": "emu:0"}],
                         ids=["unset", "auto", "emu", "emu:0"])
def test_emulator_selected_with_notice(env):
    res = run_python(SELECT_CODE, env=env)
    r = last_json(res)
    assert r["kind"] == "emu" and r["arch"] == "gfx950" and r["emulated"] is True
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "emulator" in lines[0], f"expected a one-line notice on stderr, got {res.stderr!r}"


def test_gpu_requested_but_absent():
    from hkrt.devices import gfx950_present
    assert not gfx950_present(), "this test expects a machine without a gfx950 GPU"
    code = """
        import json, numpy as np, hkrt
        r = {}
        for call in ("get_device", "gemm"):
            try:
                hkrt.get_device() if call == "get_device" else hkrt.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
                r[call] = None
            except hkrt.DeviceNotFoundError as e:
                r[call] = str(e)
        print(json.dumps(r))
    """
    for spec in ("gpu", "hip", "gpu:1"):
        res = run_python(code, env={"HKRT_DEVICE": spec})
        r = last_json(res)
        for call, msg in r.items():
            assert msg is not None, f"HKRT_DEVICE={spec}: {call} did not raise DeviceNotFoundError"
            assert "gfx950" in msg and "HKRT_DEVICE=emu" in msg, msg
        assert "emulator" not in res.stderr


def test_bad_device_spec():
    res = run_python("""
        import hkrt
        for spec in ("tpu", "emu:x"):
            try:
                hkrt.get_device(spec)
            except ValueError as e:
                print(repr(spec) in str(e))
        try:
            hkrt.get_device(1.5)
        except TypeError as e:
            print("device" in str(e))
    """)
    assert ok(res).split() == ["True", "True", "True"]


TWO_DEVICES_CODE = """
    import gc, json, numpy as np, hkrt
    from test_gemm import check, normal, BF16
    rng = np.random.default_rng()
    r = {}
    devs = hkrt.devices()
    d0, d1 = hkrt.get_device("emu:0"), hkrt.get_device("emu:1")
    r["count"] = len(devs)
    r["distinct"] = d0 is not d1 and d1.index == 1 and devs[1] is d1 and hkrt.get_device(1) is d1
    a, b = normal(rng, (70, 40)), normal(rng, (40, 50))
    # numpy in, run on emu:1
    check(hkrt.gemm(a, b, device="emu:1", bias=normal(rng, 50) * 0), a, b, bias=np.zeros(50))
    # device arrays on emu:1 -> result on emu:1
    da, db = hkrt.asarray(a.astype(BF16), device=d1), hkrt.asarray(b.astype(BF16), device=d1)
    used0, used1 = d0.allocator.in_use, d1.allocator.in_use
    res = hkrt.gemm(da, db, out_dtype=np.float32)
    r["result_on_1"] = res.device is d1
    check(res.numpy(), a, b, out_dtype=np.float32)
    r["alloc_on_1"] = d1.allocator.in_use > used1 and d0.allocator.in_use == used0
    # a Weight and a stream on emu:1
    w1 = hkrt.Weight(b, device=d1)
    s1 = hkrt.Stream(d1)
    res = hkrt.gemm(hkrt.asarray(a.astype(BF16), device=d1, stream=s1), w1, stream=s1, activation="gelu")
    check(res.numpy(), a, b, activation="gelu")
    check(hkrt.gemm(a, w1), a, b)                       # numpy a with a device weight: runs where the weight is
    # both devices in turn stay correct
    check(hkrt.gemm(a, b, device="emu:0"), a, b)
    check(hkrt.gemm(da, db).numpy(), a, b)
    errors = {}
    def expect(name, exc_type, fn):
        try:
            fn()
            errors[name] = None
        except exc_type as e:
            errors[name] = str(e)
    expect("emu:2", hkrt.DeviceNotFoundError, lambda: hkrt.get_device("emu:2"))
    da0 = hkrt.asarray(a.astype(BF16), device=d0)
    expect("mixed_b", ValueError, lambda: hkrt.gemm(da0, db))
    expect("mixed_weight", ValueError, lambda: hkrt.gemm(da0, w1))
    expect("mixed_a", ValueError, lambda: hkrt.gemm(da0, b, device="emu:1"))
    expect("mixed_out", ValueError, lambda: hkrt.gemm(da, db, out=hkrt.empty((70, 50), BF16, device=d0)))
    expect("mixed_bias", ValueError, lambda: hkrt.gemm(da, db, bias=hkrt.asarray(np.zeros(50, np.float32), device=d0)))
    # a stream of the other device once gave a bare HipError and broke the next calls on the first device
    expect("mixed_stream", ValueError, lambda: hkrt.gemm(da0, hkrt.asarray(b.astype(BF16), device=d0), stream=s1))
    check(hkrt.gemm(da0, hkrt.asarray(b.astype(BF16), device=d0)).numpy(), a, b)
    r["errors"] = errors
    del da, db, res, w1, da0
    gc.collect()
    r["in_use"] = [d0.allocator.in_use, d1.allocator.in_use]
    print(json.dumps(r))
"""


def test_two_emulated_devices():
    r = last_json(run_python(TWO_DEVICES_CODE, env={"HKRT_EMU_DEVICES": "2"}))
    assert r["count"] == 2 and r["distinct"]
    assert r["result_on_1"] and r["alloc_on_1"]
    e = r["errors"]
    assert e["emu:2"] is not None and "emu:2" in e["emu:2"] and "2 emu devices" in e["emu:2"], e["emu:2"]
    for name, arg in (("mixed_b", "b"), ("mixed_weight", "b"), ("mixed_a", "a"), ("mixed_out", "out"),
                      ("mixed_bias", "bias"), ("mixed_stream", "stream")):
        msg = e[name]
        assert msg is not None, f"{name}: mixing devices was not rejected"
        assert msg.startswith(f"{arg} lives on " if arg != "stream" else "stream belongs to ") and \
            "emu:0" in msg and "emu:1" in msg, msg
    assert r["in_use"] == [0, 0]


# ---------------------------------------------------------------------------------------------------------
# the kernel registry

def _basic_f32_kn() -> str:
    kernels = registry.manifest(hkrt.get_device().arch)["kernels"]
    return next(n for n, e in sorted(kernels.items()) if e["launch"]["strategy"] == "basic"
                and e["launch"]["b_layout"] == "kn" and e["launch"]["dtypes"]["c"] == "f32")


def test_launch_direct_and_bad_launches():
    rng = np.random.default_rng()
    dev = hkrt.get_device()
    name = _basic_f32_kn()
    k = registry.kernel(dev, name)
    assert registry.kernel(dev, name) is k                 # loaded once
    m, n, kk = 70, 40, 50
    tile = k.entry["launch"]["tile"]
    grid = (-(-n // tile["n"]), -(-m // tile["m"]))
    a, b = normal(rng, (m, kk), BF16), normal(rng, (kk, n), BF16)
    da, db = hkrt.asarray(a), hkrt.asarray(b)
    dc = hkrt.asarray(np.full((m, n), np.nan, np.float32))
    args = [da.ptr, db.ptr, dc.ptr, m, n, kk, kk, n, n]
    nargs = len([x for x in k.entry["args"] if not x["kind"].startswith("hidden_")])
    assert nargs == len(args)
    max_threads = k.entry["max_workgroup_size"]
    lds_left = dev.info.max_lds_per_block - k.entry["static_lds"]
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
    entry = registry.spec(hkrt.get_device().arch, _basic_f32_kn())
    explicit = [x for x in entry["args"] if not x["kind"].startswith("hidden_")]
    rng = np.random.default_rng()
    values = []
    for x in explicit:
        values.append(int(rng.integers(1, 2 ** 47)) if x["kind"] == "global_buffer" else int(rng.integers(-2 ** 31, 2 ** 31)))
    buf = registry.pack_args(entry, values, "k")
    assert len(buf) == entry["kernarg_size"]
    for x, v in zip(explicit, values):
        got = int.from_bytes(buf[x["offset"]:x["offset"] + x["size"]], "little", signed=x["kind"] != "global_buffer")
        assert got == v
    fake = {"args": [{"offset": 0, "size": 4, "kind": "by_value"}, {"offset": 4, "size": 4, "kind": "by_value"}],
            "kernarg_size": 8}
    buf = registry.pack_args(fake, [1.5, -3], "k")
    assert np.frombuffer(buf[:4], np.float32)[0] == 1.5 and np.frombuffer(buf[4:], np.int32)[0] == -3


@pytest.fixture
def private_registry(monkeypatch, tmp_path):
    """The registry pointed at an empty kernels directory; its caches are restored afterwards."""
    monkeypatch.setattr(mf, "KERNELS_DIR", tmp_path)
    monkeypatch.setattr(registry, "_manifests", {})
    monkeypatch.setattr(registry, "_loaded", {})
    return tmp_path


def test_corrupt_manifest_is_named(private_registry, monkeypatch):
    """A corrupt manifest.json once gave a raw JSONDecodeError naming no file."""
    dev = hkrt.get_device()
    path = mf.manifest_path(dev.arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"kernels": {')
    with pytest.raises(hkrt.KernelNotFoundError, match="manifest.json is corrupt") as exc:
        hkrt.gemm(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))
    assert str(path) in str(exc.value) and "make kernels" in str(exc.value)


def test_scalars_beyond_float32_are_value_errors():
    a = np.ones((64, 64), np.float32)
    with pytest.raises(ValueError, match="alpha=1e\\+39 is outside float32's range"):
        hkrt.gemm(a, a, alpha=1e39)  # once an OverflowError from argument packing


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
    (private_registry / arch).mkdir()
    shutil.copy(mf.manifest_path(arch, root=REAL_KERNELS_DIR), private_registry / arch / mf.MANIFEST_NAME)
    kernels = registry.manifest(arch)["kernels"]
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
    (private_registry / arch).mkdir()
    shutil.copy(mf.manifest_path(arch, root=REAL_KERNELS_DIR), private_registry / arch / mf.MANIFEST_NAME)
    name = "gemm_basic_kn_bf16"
    entry = registry.manifest(arch)["kernels"][name]
    other = compile_hip('#include <hip/hip_runtime.h>\nextern "C" __global__ void gemm_basic(float* x) { x[0] = 1; }\n',
                        arch="gfx942", name="other_arch")
    shutil.copy(other, private_registry / arch / entry["code_object"])
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        registry.kernel(dev, name)
    msg = str(exc.value)
    assert name in msg and "gfx942" in msg and arch in msg and "make kernels" in msg, msg
    # a file that is not a code object at all
    (private_registry / arch / entry["code_object"]).write_bytes(b"not an ELF file")
    with pytest.raises(hkrt.KernelNotFoundError) as exc:
        registry.kernel(dev, name)
    assert name in str(exc.value) and "not an ELF" in str(exc.value) and "make kernels" in str(exc.value)


# ---------------------------------------------------------------------------------------------------------
# the CLI

def test_cli_info():
    out = ok(run_python(None, args=("-m", "hkrt", "info")))
    m = mf.load()
    assert "runtime:" in out and "emulator" in out and "gfx950" in out
    assert f"{len(m['kernels'])} built for {m['arch']}" in out
    for name in m["kernels"]:
        assert name in out


def test_cli_demo():
    res = run_python(None, args=("-m", "hkrt", "demo"))
    out = ok(res)
    assert "max |C - numpy(float64)|" in out and "within" in out
    assert " ms" in out and "GFLOP/s" in out
    res = run_python(None, args=("-m", "hkrt", "demo", "--shape", "33x65x17", "--seed", "3"))
    assert "A 33x17, B 17x65" in ok(res)


BENCH_FIELDS = ["m", "n", "k", "seconds", "tflops", "host_overhead_us", "device", "emulated"]


def _check_bench_row(row, shape):
    assert list(row) == BENCH_FIELDS
    m, n, k = (int(row[f]) for f in "mnk")
    assert (m, n, k) == shape
    seconds, tflops = float(row["seconds"]), float(row["tflops"])
    assert seconds > 0 and float(row["host_overhead_us"]) > 0
    assert tflops == pytest.approx(2 * m * n * k / seconds / 1e12, rel=1e-6)
    assert "emu" in row["device"] and "gfx950" in row["device"]


def test_cli_bench_json():
    res = run_python(None, args=("-m", "hkrt", "bench", "64x64x64", "--repeat", "1", "--format", "json"))
    rows = json.loads(ok(res))
    assert isinstance(rows, list) and len(rows) == 1
    _check_bench_row(rows[0], (64, 64, 64))
    res = run_python(None, args=("-m", "hkrt", "bench", "1x70x33", "65x3x1", "--repeat", "2", "--format", "json"))
    rows = json.loads(ok(res))
    assert [(r["m"], r["n"], r["k"]) for r in rows] == [(1, 70, 33), (65, 3, 1)]
    for r, shape in zip(rows, [(1, 70, 33), (65, 3, 1)]):
        _check_bench_row(r, shape)


def test_cli_bench_csv():
    res = run_python(None, args=("-m", "hkrt", "bench", "64x64x64", "--repeat", "1", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(ok(res))))
    assert len(rows) == 1
    _check_bench_row(rows[0], (64, 64, 64))


def test_cli_usage_errors():
    res = run_python(None, args=("-m", "hkrt", "bench", "64x64"))
    assert res.returncode == 2 and "MxNxK" in res.stderr
    res = run_python(None, args=("-m", "hkrt", "frobnicate"))
    assert res.returncode == 2 and "invalid choice" in res.stderr


def _one_line_error(res, *words):
    """The CLI failed with one line on stderr (besides the device notice) that names every word."""
    assert res.returncode not in (0, None), f"exit {res.returncode}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("hkrt: error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), res.stderr


def test_cli_host_out_of_memory():
    """A host MemoryError (numpy failing to allocate) is an error line, not a traceback."""
    res = run_python("""
        import sys
        import hkrt, hkrt.__main__
        def no_memory(*args, **kwargs):
            raise MemoryError("Unable to allocate 64.0 GiB for an array")
        hkrt.gemm = no_memory  # cmd_demo imports it from the package at call time
        sys.exit(hkrt.__main__.main(["demo"]))
    """)
    _one_line_error(res, "out of host memory", "Unable to allocate 64.0 GiB")


# PYTHONUNBUFFERED set: a write fails inside the command; unset (the usual default when stdout is not a
# terminal): the output sits in stdout's buffer until it is flushed, at interpreter exit unless main() does it
BUFFERING = pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@BUFFERING
def test_cli_output_on_a_full_disk(unbuffered):
    with open("/dev/full", "w") as full:
        res = run_python(None, args=("-m", "hkrt", "info"), env={"PYTHONUNBUFFERED": unbuffered}, stdout=full)
    _one_line_error(res, "standard output", "No space left on device")


@BUFFERING
def test_cli_broken_pipe_is_quiet(unbuffered):
    """`python -m hkrt bench | head -1`, with the reader gone before the table is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = run_python(None, args=("-m", "hkrt", "bench", "16x16x16", "--repeat", "1"),
                         env={"PYTHONUNBUFFERED": unbuffered}, stdout=write_end)
    finally:
        os.close(write_end)
    assert res.returncode == 141, res.stderr  # 128 + SIGPIPE, what the shell reports for a killed writer
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    assert "hkrt: error" not in res.stderr, res.stderr


def test_cli_plot_without_matplotlib(tmp_path):
    plot = tmp_path / "bench.png"
    res = run_python(f"""
        import sys
        sys.modules["matplotlib"] = None  # makes `import matplotlib` raise ImportError, installed or not
        import hkrt.__main__
        sys.exit(hkrt.__main__.main(["bench", "16x16x16", "--repeat", "1", "--plot", {str(plot)!r}]))
    """)
    _one_line_error(res, "matplotlib", str(plot))
    assert list(csv.DictReader(io.StringIO(res.stdout)))  # the table itself was written
    assert not plot.exists()


def test_cli_plot_to_a_missing_directory(tmp_path):
    """The plot's file cannot be opened: one error line naming it. matplotlib is optional (and absent in
    CI), so the child gets a stand-in whose savefig opens the file as the real one does."""
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("def use(backend):\n    pass\n")
    (fake / "pyplot.py").write_text(textwrap.dedent("""
        class _Any:
            def __getattr__(self, name):
                return lambda *args, **kwargs: None
        class Figure(_Any):
            def savefig(self, path):
                open(path, "wb").close()
        def subplots(*args, **kwargs):
            return Figure(), _Any()
    """))
    plot = tmp_path / "no such dir" / "bench.png"
    path = os.pathsep.join([str(ROOT), str(TESTS), str(fake.parent)])
    res = run_python(None, args=("-m", "hkrt", "bench", "16x16x16", "--repeat", "1", "--plot", str(plot)),
                     env={"PYTHONPATH": path})
    _one_line_error(res, "cannot write the plot", str(plot))
    assert list(csv.DictReader(io.StringIO(res.stdout)))


def test_array_and_its_stream_collected_together():
    """An array and the stream it was allocated on, dying in one garbage collection (a reference cycle),
    in either order: the block still goes back to the pool (its stream must outlive the free)."""
    alloc = hkrt.get_device().allocator
    gc.collect()
    alloc.empty_cache()
    base = alloc.in_use

    class Holder:
        pass

    for order in range(6):
        h = Holder()
        h.me = h
        if order % 2:
            h.arr, h.stream = None, hkrt.Stream()
            h.arr = hkrt.empty((1000 + order,), np.float32, stream=h.stream)
        else:
            s = hkrt.Stream()
            h.arr = hkrt.empty((1000 + order,), np.float32, stream=s)
            h.stream = s
            del s
        h.arr.copy_from(np.ones(1000 + order, np.float32))
        del h
    gc.collect()
    assert alloc.in_use == base
    assert alloc.cached == 6 * size_class(4000)
    # the pooled blocks are handed out again, on other streams too
    s = hkrt.Stream()
    again = [hkrt.empty((1000 + i,), np.float32, stream=s if i % 2 else None) for i in range(6)]
    assert alloc.cached == 0
    del again
    gc.collect()
    assert alloc.in_use == base


@pytest.mark.parametrize("value", [np.float32(3.0), np.array(-1.5, np.float32), np.array(2.5, np.float16),
                                   np.array(0.75, BF16)], ids=["scalar", "f32", "f16", "bf16"])
def test_zero_d_arrays_round_trip(value):
    """0-d arrays on the device behave as numpy's: shape (), size 1, and back as a 0-d numpy array."""
    d = hkrt.asarray(value)
    assert (d.shape, d.ndim, d.size, d.nbytes) == ((), 0, 1, value.dtype.itemsize)
    back = d.numpy()
    assert back.shape == () and back.dtype == value.dtype and back == value
    d.copy_from(np.array(4.0, value.dtype))
    assert d.numpy().shape == () and d.numpy() == 4.0
    assert hkrt.empty((), value.dtype).numpy().shape == ()
    with pytest.raises(IndexError, match="0-d"):
        d[0]


def test_indexing_a_vector_gives_a_zero_d_view():
    host = np.arange(5, dtype=np.float32)
    element = hkrt.asarray(host)[3]
    assert element.shape == () and element.numpy().shape == () and element.numpy() == host[3]
