"""Devices (hkrt/devices.py): the backend chosen per process, device specs, several devices, and kernel
faults that leave a device unusable until Device.reset().

Device selection is per process, so those tests run in subprocesses (helpers.run_python).
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

import hkrt

from helpers import last_json, ok, run_python
from kernel_harness import BF16, check, normal


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


# ---------------------------------------------------------------------------------------------------------
# device selection (per process: subprocesses)

SELECT_CODE = """
    import json, sys, numpy as np, hkrt
    from kernel_harness import check
    d = hkrt.get_device()
    rng = np.random.default_rng()
    a, b = rng.standard_normal((30, 20), dtype=np.float32), rng.standard_normal((20, 10), dtype=np.float32)
    check(hkrt.gemm(a, b), a, b)
    print(json.dumps(dict(kind=d.kind, arch=d.arch, name=d.info.name, emulated=d.driver.emulation is not None)))
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
    from kernel_harness import check, normal, BF16
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
