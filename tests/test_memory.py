"""The stream-ordered caching allocator (hkrt/memory.py): size classes, reuse, accounting, out of memory,
collection at any moment. On the emulated device through hkrt's public API, and on tests/fake_driver.py,
where the test decides when a stream has passed an event and how much memory the device has.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

import hkrt
from hkrt.errors import DeviceMemoryError, HipError
from hkrt.memory import CachingAllocator, size_class

from fake_driver import FakeDriver, fake_device
from helpers import MiB, last_json, ok, run_python
from kernel_harness import BF16, normal


# ---------------------------------------------------------------------------------------------------------
# through hkrt on the emulated device

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
    from kernel_harness import check
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


# ---------------------------------------------------------------------------------------------------------
# through the fake driver: the allocator's own rules, with the device's answers under the test's control

@pytest.fixture
def fake():
    """(allocator, driver) on a fresh fake device of 64 MiB."""
    driver = FakeDriver(capacity=64 * MiB)
    return CachingAllocator(fake_device(driver)), driver


def test_fake_size_classes_are_what_the_device_is_asked_for():
    driver = FakeDriver(capacity=1 << 30)  # room for every request below
    alloc = CachingAllocator(fake_device(driver))
    rng = np.random.default_rng()
    sizes = [0, 1, 511, 512, 513, MiB - 1, MiB, MiB + 1] + [int(n) for n in rng.integers(1, 4 * MiB, 20)]
    blocks = [alloc.malloc(n) for n in sizes]
    assert driver.malloc_calls == [size_class(n) for n in sizes]
    assert [b.size for b in blocks] == driver.malloc_calls
    assert alloc.in_use == sum(driver.malloc_calls) == driver.used and alloc.cached == 0


def test_fake_reuse_on_the_same_stream_at_once(fake):
    """Stream order makes a block freed on a stream safe for that stream's later work, whatever its event says."""
    alloc, driver = fake
    stream = driver.stream_create()
    driver.hold_events = True
    blk = alloc.malloc(3000, stream)
    ptr = blk.ptr
    blk.free()
    assert alloc.cached == size_class(3000)
    again = alloc.malloc(2900, stream)  # same size class
    assert again.ptr == ptr and len(driver.malloc_calls) == 1
    # the block keeps its one event: the next pooling records it again instead of making another
    events = dict(driver.events)
    assert len(events) == 1
    again.free()
    assert alloc.cached == size_class(3000) and driver.events.keys() == events.keys()
    alloc.empty_cache()
    assert driver.events == {}, "an emptied cache left its blocks' events behind"


def test_fake_other_streams_wait_for_the_event(fake):
    alloc, driver = fake
    s1, s2 = driver.stream_create(), driver.stream_create()
    driver.hold_events = True
    blk = alloc.malloc(5000, s1)
    ptr = blk.ptr
    blk.free()
    assert alloc.cached == size_class(5000)          # pooled, with an event recorded on s1
    (event,) = driver.recorded
    assert driver.events[event] == s1
    other = alloc.malloc(5000, s2)                   # s1 may still use it: s2 gets fresh memory
    assert other.ptr != ptr and len(driver.malloc_calls) == 2
    driver.complete_events()                         # s1 has passed the free
    taken = alloc.malloc(5000, s2)
    assert taken.ptr == ptr and len(driver.malloc_calls) == 2
    assert alloc.cached == 0 and list(driver.events) == [event]   # kept for the block's next pooling


def test_fake_a_stream_synchronize_releases_the_block(fake):
    alloc, driver = fake
    s1, s2 = driver.stream_create(), driver.stream_create()
    driver.hold_events = True
    blk = alloc.malloc(100, s1)
    ptr = blk.ptr
    blk.free()
    alloc.cached  # the free is queued; reading a counter pools it (and records its event)
    driver.stream_synchronize(s2)                    # another stream's synchronize does not
    assert alloc.malloc(100, s2).ptr != ptr
    driver.stream_synchronize(s1)
    assert alloc.malloc(100, s2).ptr == ptr


def test_fake_freed_on_the_null_stream_any_stream_may_take_it(fake):
    """No event is recorded for the null stream: the streams hkrt creates wait for it (blocking streams)."""
    alloc, driver = fake
    driver.hold_events = True
    blk = alloc.malloc(100)
    ptr = blk.ptr
    blk.free()
    assert alloc.malloc(100, driver.stream_create()).ptr == ptr
    assert driver.recorded == set()


def test_fake_double_free_gives_back_once(fake):
    alloc, driver = fake
    blk = alloc.malloc(2000)
    blk.free()
    blk.free()
    assert alloc.in_use == 0 and alloc.cached == size_class(2000)
    a, b = alloc.malloc(2000), alloc.malloc(2000)
    assert a.ptr != b.ptr, "a block given back twice was handed out twice"


def test_fake_out_of_memory_empties_the_cache_then_reports(fake):
    alloc, driver = fake
    two_mib = [alloc.malloc(2 * MiB) for _ in range(30)]   # 60 of 64 MiB
    for blk in two_mib[:29]:
        blk.free()
    assert alloc.cached == 29 * 2 * MiB and driver.used == 60 * MiB
    driver.malloc_calls.clear()
    syncs = driver.synchronize_calls
    big = alloc.malloc(10 * MiB)                           # fits only once the cache is given back
    assert driver.malloc_calls == [10 * MiB, 10 * MiB]
    assert driver.synchronize_calls > syncs, "cached blocks freed without waiting for the device"
    assert alloc.cached == 0 and alloc.in_use == 12 * MiB == driver.used
    driver.malloc_calls.clear()
    request = 60 * MiB - 100
    with pytest.raises(DeviceMemoryError) as err:
        alloc.malloc(request)
    assert driver.malloc_calls == [60 * MiB, 60 * MiB]    # one retry after emptying the (empty) cache
    free, total = driver.mem_info()
    msg = str(err.value)
    assert f"{request} bytes requested ({60 * MiB} with rounding)" in msg, msg
    assert f"{free} of {total} bytes free" in msg, msg
    assert isinstance(err.value, MemoryError)
    assert alloc.in_use == 12 * MiB and alloc.cached == 0  # the failure changed no counter
    big.free()
    two_mib[29].free()
    assert alloc.in_use == 0


def test_fake_other_device_errors_are_not_out_of_memory(fake, monkeypatch):
    """Only hipErrorOutOfMemory empties the cache; another failure reaches the caller as it is."""
    alloc, driver = fake
    alloc.malloc(4096).free()
    monkeypatch.setattr(driver, "malloc", lambda n: (_ for _ in ()).throw(
        HipError("hipMalloc", 1, "hipErrorInvalidValue")))
    with pytest.raises(HipError, match="hipErrorInvalidValue"):
        alloc.malloc(MiB * 3)
    assert alloc.cached == size_class(4096)


def test_fake_accounting_stays_flat_under_random_traffic():
    """Every byte the device holds is in use or cached, through any order of allocations, frees, streams
    and event completions; emptying the cache leaves only what is in use."""
    driver = FakeDriver(capacity=1 << 30)  # more than 400 steps can take: no out-of-memory here
    alloc = CachingAllocator(fake_device(driver))
    rng = np.random.default_rng()
    streams = [None] + [driver.stream_create() for _ in range(3)]
    live = []
    for step in range(400):
        driver.hold_events = bool(rng.integers(2))
        if live and (rng.random() < 0.5 or len(live) > 30):
            live.pop(int(rng.integers(len(live)))).free()
        else:
            n = int(rng.choice([rng.integers(1, 4096), rng.integers(MiB, 5 * MiB)]))
            live.append(alloc.malloc(n, streams[int(rng.integers(len(streams)))]))
        if rng.random() < 0.1:
            driver.complete_events()
        assert alloc.in_use == sum(b.size for b in live), f"step {step}"
        assert alloc.in_use + alloc.cached == driver.used, f"step {step}"
        assert len({b.ptr for b in live}) == len(live), f"step {step}: one block handed out twice"
    alloc.empty_cache()
    assert alloc.cached == 0 and driver.used == alloc.in_use
    for b in live:
        b.free()
    alloc.empty_cache()
    assert driver.used == 0 and driver.events == {}


def test_fake_the_last_block_given_back_is_handed_out_again_straight_from_the_queue(fake):
    """A loop of calls drops each result as the next is made: the block given back last, of that size and
    stream, goes out again without passing through the pool (no event recorded, no other stream considered).
    Given back twice, it is still handed out once."""
    alloc, driver = fake
    stream = driver.stream_create()
    blk = alloc.malloc(3000, stream)
    blk.free()
    blk.free()
    again = alloc.malloc(2900, stream)
    assert again is blk and driver.recorded == set() and alloc.in_use == size_class(3000)
    other = alloc.malloc(2900, stream)
    assert other.ptr != blk.ptr, "a block given back twice was handed out twice"
    again.free()
    driver.hold_events = True
    assert alloc.malloc(3000, driver.stream_create()).ptr not in (blk.ptr, other.ptr)  # another stream: the pool
    assert len(driver.recorded) == 1                                  # (where it waits for its event)
