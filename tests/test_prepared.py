"""Compiled calls kept for reuse (hkrt/prepared.py): hkrt.gemm's cache of programs by call signature, and
hkrt.plan's prepared GEMMs. A reused program must give the right result for every new operand (fresh data,
poisoned outputs), never for a call it does not fit, and never keep a caller's arrays alive.
"""
from __future__ import annotations

import gc
import time
import threading
import weakref

import numpy as np
import pytest

import hkrt
from hkrt import prepared

from kernel_harness import BF16, check, fresh_rng, nan_array, normal


def poisoned(shape, dtype=BF16):
    return hkrt.asarray(nan_array(shape, np.float32).astype(dtype))


def test_a_repeated_call_compiles_once_and_is_right_every_time(launched, driver_launches):
    rng = fresh_rng()
    m, n, k = 96, 80, 64
    b = normal(rng, (k, n))
    w = hkrt.Weight(b)
    launched.clear()
    driver_launches.clear()
    for _ in range(3):
        a = normal(rng, (m, k))
        out = poisoned((m, n))
        hkrt.gemm(hkrt.asarray(a.astype(BF16)), w, out=out)
        check(out.numpy(), a, b)
    gemm_sites = [x for x in launched if x.startswith("gemm_")]
    assert gemm_sites and len(gemm_sites) == len(set(gemm_sites)), launched   # compiled once
    assert len(driver_launches) == 3 * len(launched)                          # launched every time


def test_a_call_of_another_kind_is_compiled_for_itself():
    """Alignment, strides, epilogue and output type are in the signature: each gets its own program."""
    rng = fresh_rng()
    m, k, n = 3, 35, 40                 # one matrix of A is 210 bytes: batch i starts i * 210 bytes in
    a = normal(rng, (4, m, k))
    b = normal(rng, (k, n))
    w = hkrt.Weight(b)
    da = hkrt.asarray(a.astype(BF16))
    for i in range(4):                  # aligned, unaligned (repacked), unaligned, aligned again...
        assert (da[i].ptr % 16 == 0) == (i * m * k * 2 % 16 == 0)
        check(hkrt.gemm(da[i], w).numpy(), a[i], b)
    at = hkrt.asarray(np.ascontiguousarray(a[1].T).astype(BF16)).T   # same shape, transposed strides
    check(hkrt.gemm(at, w).numpy(), a[1], b)
    check(hkrt.gemm(da[0], w, out_dtype=np.float32).numpy(), a[0], b, out_dtype=np.float32)
    bias = normal(rng, n)
    check(hkrt.gemm(da[0], w, bias=bias, activation="silu").numpy(), a[0], b, bias=bias, activation="silu")


def test_the_cache_keeps_no_array_alive():
    rng = fresh_rng()
    w = hkrt.Weight(normal(rng, (32, 48)))
    a = hkrt.asarray(normal(rng, (16, 32)).astype(BF16))
    bias = hkrt.asarray(normal(rng, 48))
    out = hkrt.empty((16, 48))
    hkrt.gemm(a, w, bias=bias, out=out)
    refs = [weakref.ref(x) for x in (w, a, bias, out)]
    del w, a, bias, out
    gc.collect()
    assert [r() for r in refs] == [None] * 4


def test_a_cached_call_still_refuses_what_it_refused():
    rng = fresh_rng()
    a = hkrt.asarray(normal(rng, (16, 32)).astype(BF16))
    w = hkrt.Weight(normal(rng, (32, 24)))
    hkrt.gemm(a, w, alpha=1.0)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        hkrt.gemm(a, w, alpha=True)              # True == 1.0, but it is not a number gemm takes
    other = hkrt.asarray(normal(rng, (16, 32)).astype(BF16))
    hkrt.gemm(other, w)
    other.free()
    with pytest.raises(ValueError, match="freed"):
        hkrt.gemm(other, w)


def test_device_reset_drops_the_compiled_calls():
    res = hkrt.get_device()
    rng = fresh_rng()
    b = normal(rng, (32, 40))
    a = normal(rng, (8, 32))
    check(hkrt.gemm(hkrt.asarray(a.astype(BF16)), hkrt.Weight(b)).numpy(), a, b)
    res.reset()
    assert not any(exe.device is res for exe in prepared._cache.values())
    check(hkrt.gemm(hkrt.asarray(a.astype(BF16)), hkrt.Weight(b)).numpy(), a, b)   # compiled afresh


def test_numpy_calls_are_cached_and_right():
    rng = fresh_rng()
    b = normal(rng, (40, 56))
    for _ in range(3):
        a = normal(rng, (2, 24, 40))
        out = nan_array((2, 24, 56), BF16)
        assert hkrt.gemm(a, b, out=out) is out
        for i in range(2):
            check(out[i], a[i], b)


def test_a_numpy_call_allocates_one_staging_block(monkeypatch):
    """A numpy call's result, uploads (A, B, bias, C) and split-K workspace share one block: one allocation
    per call (it was six for this call; the first call also makes the program's split-K counters, kept for
    the next calls), and the result still right, written straight into out=."""
    rng = fresh_rng()
    m, k, n = 16, 2048, 64                          # small M, long K: split-K with partials in workspace
    alloc = hkrt.get_device().allocator
    sizes = []
    plain = alloc.malloc

    def counted(nbytes, stream=None):
        sizes.append(nbytes)
        return plain(nbytes, stream)
    monkeypatch.setattr(alloc, "malloc", counted)
    for call in range(3):
        a, b, bias, c = normal(rng, (m, k)), normal(rng, (k, n)), normal(rng, n), normal(rng, (m, n))
        out = nan_array((m, n), np.float32)
        sizes.clear()
        assert hkrt.gemm(a, b, bias=bias, beta=0.5, c=c, activation="relu", out=out) is out
        assert len(sizes) == (2 if call == 0 else 1), sizes   # the first also makes the split-K counters
        check(out, a, b, bias=bias, beta=0.5, c=c, activation="relu", out_dtype=np.float32)
    exe = next(e for e in prepared._cache.values() if e.host_call and e.result_shape == (m, n))
    assert exe.program.workspace, "the shape was meant to need split-K workspace"


def test_threads_share_a_compiled_call():
    """The launches' argument buffers are shared by every call of a program: a call fills and launches
    them under the program's lock, so concurrent calls never mix their operands."""
    rng = fresh_rng()
    b = normal(rng, (32, 48))
    w = hkrt.Weight(b)
    inputs = [normal(rng, (40, 32)) for _ in range(8)]
    devs = [hkrt.asarray(x.astype(BF16)) for x in inputs]
    results = {}

    def work(t):
        for i in range(t, len(devs), 2):
            for _ in range(3):
                results[i] = hkrt.gemm(devs[i], w).numpy()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(inputs):
        check(results[i], x, b)


# -- hkrt.plan

def test_a_plan_runs_every_a_of_its_shape():
    rng = fresh_rng()
    m, k, n = 48, 40, 72
    b, bias = normal(rng, (k, n)), normal(rng, n)
    planned_bias = bias.copy()
    p = hkrt.plan((m, k), b, bias=bias, activation="gelu")
    bias[:] = 1e6                                   # bound at planning, as a Weight is
    for _ in range(3):
        a = normal(rng, (m, k))
        da = hkrt.asarray(a.astype(BF16))
        check(p(da).numpy(), a, b, bias=planned_bias, activation="gelu")
        out = poisoned((m, n))
        assert p(da, out=out) is out
        check(out.numpy(), a, b, bias=planned_bias, activation="gelu")


def test_a_plan_on_split_k_holds_workspace_per_stream():
    rng = fresh_rng()
    m, k, n = 16, 2048, 64                          # small M, long K: split-K with partials in workspace
    b = normal(rng, (k, n))
    p = hkrt.plan((m, k), hkrt.Weight(b))
    assert p.plan.splits > 1 and p._exe.program.workspace
    streams = [hkrt.Stream(), hkrt.Stream(), None]
    for s in streams * 2:
        a = normal(rng, (m, k))
        check(p(hkrt.asarray(a.astype(BF16), stream=s), stream=s).numpy(), a, b)
    assert len(p._workspace) == 3


def test_a_plan_refuses_what_it_was_not_planned_for():
    rng = fresh_rng()
    m, k, n = 3, 35, 40
    p = hkrt.plan((m, k), hkrt.Weight(normal(rng, (k, n))))
    batch = hkrt.asarray(normal(rng, (2, m, k)).astype(BF16))        # batch[1] starts 210 bytes in
    for a, msg in [(hkrt.asarray(normal(rng, (m + 1, k)).astype(BF16)), "this plan takes"),
                   (hkrt.asarray(normal(rng, (m, k)).astype(np.float16)), "this plan takes"),
                   (normal(rng, (m, k)).astype(BF16), "DeviceArray"),
                   (hkrt.asarray(normal(rng, (k, m)).astype(BF16)).T, "this plan takes"),   # strides differ
                   (batch[1], "aligned")]:
        with pytest.raises(ValueError, match=msg):
            p(a)
    with pytest.raises(ValueError, match="out must be"):
        p(batch[0], out=hkrt.empty((m, n), np.float32))
    with pytest.raises(TypeError, match="a_shape"):
        hkrt.plan([m, k], normal(rng, (k, n)))


def test_a_plan_computes_beside_an_overlapping_out():
    rng = fresh_rng()
    n = 32
    b = normal(rng, (n, n))
    p = hkrt.plan((n, n), hkrt.Weight(b))
    a = normal(rng, (n, n))
    da = hkrt.asarray(a.astype(BF16))
    assert p(da, out=da) is da                      # in place: a is read whole before out is written
    check(da.numpy(), a, b)


def test_a_plan_made_before_a_reset_refuses():
    rng = fresh_rng()
    p = hkrt.plan((8, 16), hkrt.Weight(normal(rng, (16, 8))))
    hkrt.get_device().reset()
    with pytest.raises(ValueError, match="reset"):
        p(hkrt.asarray(normal(rng, (8, 16)).astype(BF16)))


class _SlowLaunch:
    """A driver launch that lets other threads run between its arguments being filled and read."""

    def __init__(self, inner):
        self.inner, self.args = inner, inner.args

    def __call__(self, stream):
        time.sleep(0.0005)
        self.inner(stream)


def test_threads_share_a_plan(monkeypatch):
    """A plan of one launch fills that launch's argument buffer on every call: concurrent calls take turns
    (the program's lock), so no call launches with another's A or out."""
    driver = hkrt.get_device().driver
    real = driver.prepare_launch
    monkeypatch.setattr(driver, "prepare_launch", lambda *args: _SlowLaunch(real(*args)))
    rng = fresh_rng()
    m, k, n = 64, 32, 48
    b = normal(rng, (k, n))
    p = hkrt.plan((m, k), hkrt.Weight(b))
    assert p._run.__name__ == "run_one", "meant to test the single-launch path"
    inputs = [normal(rng, (m, k)) for _ in range(8)]
    devs = [hkrt.asarray(x.astype(BF16)) for x in inputs]
    outs = [poisoned((m, n)) for _ in inputs]

    def work(t):
        for i in range(t, len(devs), 2):
            p(devs[i], out=outs[i])
    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, out in zip(inputs, outs):
        check(out.numpy(), x, b)


def test_a_dropped_plan_gives_its_workspace_back_at_once():
    """A plan holds its split-K workspace until it is dropped; nothing in it refers back to the plan, so the
    memory returns when the last reference goes, not at some later garbage collection."""
    rng = fresh_rng()
    m, k, n = 16, 2048, 64
    p = hkrt.plan((m, k), hkrt.Weight(normal(rng, (k, n))))
    assert p._exe.program.workspace
    p(hkrt.asarray(normal(rng, (m, k)).astype(BF16)))
    allocator = hkrt.get_device().allocator
    held = allocator.in_use
    gc.disable()
    try:
        del p
        assert allocator.in_use < held
    finally:
        gc.enable()
