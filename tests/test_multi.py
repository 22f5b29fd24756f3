"""hkrt.multi.gemm: a GEMM's leading dimension split across the devices of one host, one thread per device.

Two emulated devices need a fresh interpreter (the emulator reads HKRT_EMU_DEVICES when it starts), so the
checks run there and report back as JSON; the results are checked against the float64 reference and bound
of hkrt.reference inside it (an AssertionError there fails the test with its message).
"""
from __future__ import annotations

import numpy as np
import pytest

import hkrt

from helpers import last_json, run_python

TWO_DEVICES = """
    import gc, json, threading, numpy as np, hkrt
    from hkrt import multi, registry, strategy as strategies
    from kernel_harness import BF16, F32, check, fresh_rng, nan_array, normal
    rng = fresh_rng()
    d0, d1 = hkrt.get_device("emu:0"), hkrt.get_device("emu:1")
    r = {}
    loads, real_load = [], d0.driver.module_load
    def spy_load(image):  # every module load of the process (one driver serves both devices)
        loads.append(threading.current_thread().name)
        return real_load(image)
    d0.driver.module_load = spy_load

    def splits(m, n, k, batch=1, epilogue=False, out="bf16"):
        # the split-K factor a part's plan uses: one more fp32 rounding per split in the bound
        return strategies.choose(d0, m, n, k, b_layout="nk", out=out, epilogue=epilogue, fast_ok=True,
                                 batch=batch).splits

    # a batch of 5 (3 rows of it on emu:0, 2 on emu:1), per-batch B, the whole epilogue, fp32 out, written
    # into a NaN-filled out (a batch no device wrote stays NaN)
    a, b = normal(rng, (5, 70, 136)), normal(rng, (5, 136, 90))
    c, bias = normal(rng, (5, 70, 90)), normal(rng, 90)
    out = nan_array((5, 70, 90), F32)
    got = multi.gemm(a, b, devices=[d0, d1], bias=bias, activation="gelu", alpha=0.5, beta=-1.5, c=c,
                     out_dtype=np.float32, out=out)
    r["returns_out"] = got is out
    check(got, a, b, bias=bias, activation="gelu", alpha=0.5, beta=-1.5, c=c, out_dtype=F32,
          splits=splits(70, 90, 136, 3, True, "f32"), what="batched with epilogue")
    # one 2-D B shared by the batch; devices given by spec and by index; bf16 out
    a, b = normal(rng, (4, 33, 64)), normal(rng, (64, 50))
    check(multi.gemm(a, b, devices=["emu:1", 0]), a, b, splits=splits(33, 50, 64, 2), what="shared b")
    # a 2-D product: its rows are split (65 + 65)
    a, b = normal(rng, (130, 72)), normal(rng, (72, 40))
    check(multi.gemm(a, b, devices=[0, 1], out_dtype=np.float32), a, b, out_dtype=F32,
          splits=splits(65, 40, 72, out="f32"), what="2-D rows split")
    # fewer rows than devices: emu:1 gets none; every device by default
    a, b = normal(rng, (1, 20, 16)), normal(rng, (1, 16, 24))
    check(multi.gemm(a, b), a, b, what="one batch, two devices")
    # empty: a batch of 0, and K = 0 (zeros)
    r["empty_shape"] = list(multi.gemm(np.ones((0, 3, 8), np.float32), np.ones((8, 5), np.float32)).shape)
    r["k0"] = multi.gemm(np.ones((4, 0), np.float32), np.ones((0, 3), np.float32), out_dtype=np.float32).tolist()
    r["kernels_on"] = sorted({dev.index for dev, _ in registry._loaded})

    # Repeated calls: each device's modules are loaded once; its allocator's figures stay flat.
    a, b = normal(rng, (6, 64, 96)), normal(rng, (6, 96, 48))
    figures = []
    for _ in range(4):
        check(multi.gemm(a, b, devices=[d0, d1], activation="relu"), a, b, activation="relu",
              splits=splits(64, 48, 96, 3, True))
        gc.collect()
        figures.append([[d.allocator.in_use, d.allocator.cached] for d in (d0, d1)])
        r.setdefault("loads_after_each", []).append(len(loads))
    r["figures"] = figures
    r["loaded"] = len(registry._loaded)

    # The parts run at once: each waits at a barrier for the other (run one after another, they would
    # break it by its timeout).
    barrier = threading.Barrier(2, timeout=10)
    seen, real = [], multi.single_gemm
    def meet(*args, device, **kw):
        seen.append((device.index, threading.current_thread().name))
        barrier.wait()
        return real(*args, device=device, **kw)
    multi.single_gemm = meet
    a, b = normal(rng, (2, 40, 32)), normal(rng, (2, 32, 40))
    check(multi.gemm(a, b, devices=[d0, d1]), a, b, what="concurrent parts")
    r["threads"] = sorted(seen)
    r["main_thread"] = threading.current_thread().name

    # A part that fails: the other part finishes, the failure is raised naming its device.
    done = []
    def fail_on_1(*args, device, **kw):
        if device.index == 1:
            raise hkrt.DeviceMemoryError("out of device memory (simulated)")
        result = real(*args, device=device, **kw)
        done.append(device.index)
        return result
    multi.single_gemm = fail_on_1
    try:
        multi.gemm(a, b, devices=[d0, d1])
        r["failure"] = None
    except hkrt.DeviceMemoryError as e:
        r["failure"] = [str(e), getattr(e, "__notes__", [])]
    r["done_despite_failure"] = done
    multi.single_gemm = real

    # Bad input: each a TypeError or ValueError naming the problem, before any device work.
    errors = {}
    def expect(name, fn):
        try:
            fn()
            errors[name] = None
        except (TypeError, ValueError) as e:
            errors[name] = [type(e).__name__, str(e)]
    x, y = np.ones((2, 8, 8), np.float32), np.ones((2, 8, 8), np.float32)
    expect("empty", lambda: multi.gemm(x, y, devices=[]))
    expect("twice", lambda: multi.gemm(x, y, devices=["emu:1", 1]))
    expect("twice_same_object", lambda: multi.gemm(x, y, devices=[d0, d0]))
    expect("not_a_list", lambda: multi.gemm(x, y, devices="emu:0"))
    expect("bad_entry", lambda: multi.gemm(x, y, devices=[0, 1.5]))
    expect("bool_entry", lambda: multi.gemm(x, y, devices=[True]))
    expect("bad_spec", lambda: multi.gemm(x, y, devices=["tpu:0"]))
    expect("device_array", lambda: multi.gemm(hkrt.asarray(x.astype(BF16), device=d1), y, devices=[d0, d1]))
    expect("weight", lambda: multi.gemm(x, hkrt.Weight(y[0]), devices=[d0, d1]))
    expect("shapes", lambda: multi.gemm(x, np.ones((2, 9, 8), np.float32), devices=[d0, d1]))
    expect("dtype", lambda: multi.gemm(x.astype(np.int32), y, devices=[d0, d1]))
    expect("out_shape", lambda: multi.gemm(x, y, devices=[d0, d1], out=np.empty((2, 8, 9), BF16)))
    try:
        multi.gemm(x, y, devices=[0, 2])
        errors["missing"] = None
    except hkrt.DeviceNotFoundError as e:
        errors["missing"] = ["DeviceNotFoundError", str(e)]
    r["errors"] = errors
    gc.collect()
    r["in_use_at_end"] = [d0.allocator.in_use, d1.allocator.in_use]
    print(json.dumps(r))
"""


@pytest.fixture(scope="module")
def two_devices():
    return last_json(run_python(TWO_DEVICES, env={"HKRT_EMU_DEVICES": "2"}, timeout=600))


def test_results_on_two_devices(two_devices):
    """Batched (per-batch and shared B, full epilogue, out=), 2-D, fewer rows than devices and empty
    products are right (the checks ran in the child; a NaN-filled out shows any part left unwritten)."""
    r = two_devices
    assert r["returns_out"]
    assert r["empty_shape"] == [0, 3, 5]
    assert r["k0"] == [[0.0] * 3] * 4
    assert r["kernels_on"] == [0, 1], "both devices ran kernels"


def test_modules_loaded_once_and_memory_flat(two_devices):
    r = two_devices
    loads = r["loads_after_each"]
    assert loads[0] == r["loaded"], "each module load is one (device, kernel) of the registry: none twice"
    assert loads == [loads[0]] * len(loads), "repeated calls load nothing more"
    first = r["figures"][0]
    assert all(f == first for f in r["figures"]), r["figures"]
    assert all(in_use == 0 for in_use, _ in first), "no device block stays in use after a call"
    assert all(cached > 0 for _, cached in first), "both devices did work"
    assert r["in_use_at_end"] == [0, 0]


def test_parts_run_concurrently_in_threads_of_their_own(two_devices):
    r = two_devices
    (d0, t0), (d1, t1) = r["threads"]
    assert (d0, d1) == (0, 1) and t0 != t1 and r["main_thread"] not in (t0, t1)


def test_a_failing_part_is_raised_after_the_others_finish(two_devices):
    msg, notes = two_devices["failure"]
    assert "simulated" in msg and any("emu:1" in n for n in notes), (msg, notes)
    assert two_devices["done_despite_failure"] == [0]


def test_bad_input(two_devices):
    e = two_devices["errors"]
    want = {
        "empty": ("ValueError", "devices is empty"),
        "twice": ("ValueError", "more than once"),
        "twice_same_object": ("ValueError", "more than once"),
        "not_a_list": ("TypeError", "devices must be a list or tuple"),
        "bad_entry": ("TypeError", "float"),
        "bool_entry": ("TypeError", "bool"),
        "bad_spec": ("ValueError", "'tpu:0'"),
        "device_array": ("TypeError", "a is a DeviceArray on emu:1"),
        "weight": ("TypeError", "b is a Weight"),
        "shapes": ("ValueError", "inner dimensions differ"),
        "dtype": ("TypeError", "int32"),
        "out_shape": ("ValueError", "out must have shape"),
        "missing": ("DeviceNotFoundError", "emu:2 does not exist"),
    }
    for name, (kind, text) in want.items():
        assert e[name] is not None, f"{name}: accepted"
        assert e[name][0] == kind and text in e[name][1], (name, e[name])


def test_one_device_in_process():
    """On this process's single device: the one-part path, and a device given twice by spec and object."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 24, 40)).astype(np.float32), rng.standard_normal((3, 40, 16)).astype(np.float32)
    from kernel_harness import check
    check(hkrt.multi.gemm(a, b, devices=[hkrt.get_device()]), a, b)
    with pytest.raises(ValueError, match="more than once"):
        hkrt.multi.gemm(a, b, devices=[hkrt.get_device(), 0])
