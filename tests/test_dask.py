"""hkrt.dask.matmul on a local Dask cluster: two worker processes with one thread each, each pinned to its own
emulated device (the worker specs of hkrt.dask.device_workers: emu:0 and emu:1 of two emulated devices per
process), results against the float64 reference, a worker killed mid-computation, bad input.

dask and distributed are in the test extra: without them this file fails to import (it is never skipped).
"""
from __future__ import annotations

import gc
import os
import time

import dask.array as da
import numpy as np
import pytest
from distributed import Client, Scheduler, SpecCluster

import hkrt
import hkrt.dask as hd
from hkrt import strategy as strategies

from helpers import ok, run_python
from kernel_harness import BF16, F32, check, fresh_rng, normal

DEVICES = ["emu:0", "emu:1"]
WORKER_ENV = {"HKRT_EMU_DEVICES": "2", "HKRT_EMU_STRICT": "1", "HKRT_EMU_MEMORY": str(1 << 30)}


@pytest.fixture(scope="module")
def client():
    start = time.perf_counter()
    workers = hd.device_workers(DEVICES, env=WORKER_ENV, host="127.0.0.1", memory_limit=0)
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    with SpecCluster(workers=workers, scheduler=scheduler) as cluster, Client(cluster) as c:
        c.wait_for_workers(len(DEVICES))
        print(f"cluster up in {time.perf_counter() - start:.1f} s")
        yield c


@pytest.fixture
def rng():
    return fresh_rng()


def ones(*shape, dtype=np.float32):
    return da.ones(shape, dtype=dtype)


def bound_splits(x, y) -> int:
    """The `splits` of hkrt.reference.expected that bounds matmul(x, y): one more fp32 rounding per K block
    beyond the first (the partials' sum), plus whatever split-K the block products' own plans use (none for
    K blocks under 128)."""
    batch = "b" if x.ndim == 3 else ""
    chunks, _ = da.core.unify_chunks(x, batch + "ik", y, ("b" if y.ndim == 3 else "") + "kj")
    inner = max(strategies.choose(hkrt.get_device(), m, n, k, b_layout="nk", out="f32", epilogue=False,
                                  fast_ok=True, batch=nb).splits
                for nb in chunks.get("b", (1,)) for m in chunks["i"] for n in chunks["j"] for k in chunks["k"])
    return len(chunks["k"]) + inner - 1


# ---------------------------------------------------------------------------------------------------------
# run on the workers

def device_state() -> dict:
    """This worker's device, the devices its kernels were loaded on and its allocators' figures."""
    from hkrt import memory, registry
    gc.collect()
    return {"device": os.environ["HKRT_DEVICE"], "pid": os.getpid(),
            "kernels_on": sorted({dev.index for dev, _ in registry._loaded}),
            "allocators": {d.index: [a.in_use, a.cached] for d, a in memory._allocators.items()}}


def kill_on_call(marker: str, call: int) -> None:
    """Make this worker process die (as a crash would: no clean-up) in its `call`-th block product, after
    writing `marker`; the process that the nanny starts in its place is a fresh one, without this."""
    real, calls = hd.gemm, []

    def gemm_or_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)
        return real(*args, **kwargs)
    hd.gemm = gemm_or_die


# ---------------------------------------------------------------------------------------------------------

def test_2d_against_numpy(client, rng):
    """Row, K and column blocks of uneven sizes, K chunked differently in x and y (dask aligns them:
    K blocks 64, 32, 32, 64), bf16 and fp32 results; float16 inputs."""
    a, b = normal(rng, (100, 192)), normal(rng, (192, 72))
    x, y = da.from_array(a, chunks=(50, 64)), da.from_array(b, chunks=(96, 40))
    z = hd.matmul(x, y)
    assert z.dtype == BF16 and z.shape == (100, 72) and z.chunks == ((50, 50), (40, 32))
    splits = bound_splits(x, y)
    assert splits == 4
    check(z.compute(), a, b, splits=splits)
    check(hd.matmul(x, y, out_dtype=np.float32).compute(), a, b, out_dtype=F32, splits=splits)
    a16 = a.astype(np.float16)
    check(hd.matmul(da.from_array(a16, chunks=(64, 96)), y).compute(), a16, b,
          splits=bound_splits(da.from_array(a16, chunks=(64, 96)), y))


def test_one_k_block_and_empty_sides(client, rng):
    a, b = normal(rng, (30, 40)), normal(rng, (40, 20))
    check(hd.matmul(da.from_array(a), da.from_array(b), out_dtype="float32").compute(), a, b, out_dtype=F32)
    assert hd.matmul(ones(0, 8), ones(8, 5)).compute().shape == (0, 5)
    zero_k = hd.matmul(ones(3, 0), ones(0, 4), out_dtype=np.float32)
    assert np.array_equal(zero_k.compute(), np.zeros((3, 4), np.float32))


def test_batched_against_numpy(client, rng):
    """Batch blocks, each block product one batched hkrt.gemm: per-batch y, and one 2-D y shared by the batch."""
    a, b = normal(rng, (5, 40, 128)), normal(rng, (5, 128, 24))
    x, y = da.from_array(a, chunks=(2, 20, 64)), da.from_array(b, chunks=(3, 64, 24))
    z = hd.matmul(x, y, out_dtype=np.float32)
    assert z.shape == (5, 40, 24) and z.chunks[1:] == ((20, 20), (24,))
    check(z.compute(), a, b, out_dtype=F32, splits=bound_splits(x, y))
    shared = normal(rng, (128, 48))
    ys = da.from_array(shared, chunks=(64, 32))
    check(hd.matmul(x, ys).compute(), a, shared, splits=bound_splits(x, ys))


def test_each_worker_on_its_own_device_with_memory_flat(client, rng):
    """Every worker loaded kernels on its own device only, and both did work; repeating a product leaves each
    worker's allocator figures as they were (nothing in use, the cache no larger)."""
    a, b = normal(rng, (96, 128)), normal(rng, (128, 96))
    z = hd.matmul(da.from_array(a, chunks=32), da.from_array(b, chunks=32))
    figures = []
    for _ in range(3):
        check(z.compute(), a, b, splits=bound_splits(da.from_array(a, chunks=32), da.from_array(b, chunks=32)))
        figures.append(client.run(device_state))
    for state in figures[-1].values():
        own = int(state["device"].split(":")[1])
        assert state["kernels_on"] == [own], state
        assert list(state["allocators"]) == [own], state
        assert state["allocators"][own][0] == 0, f"device memory still in use after the product: {state}"
    assert sorted(s["device"] for s in figures[-1].values()) == DEVICES
    assert figures[1] == figures[2], "allocator figures grew between identical products"


def test_bad_strategy_is_raised_from_the_workers(client):
    x = da.ones((16, 16), dtype=np.float32, chunks=8)
    with pytest.raises(ValueError, match="unknown strategy 'fastest'"):
        hd.matmul(x, x, strategy="fastest").compute()


def test_worker_lost_mid_computation(client, rng, tmp_path):
    """One worker dies in its second block product (its finished partials go with it); Dask reruns the lost
    tasks on the other worker and the nanny's fresh process, and the result is still right."""
    marker = tmp_path / "killed"
    before = {s["device"]: s["pid"] for s in client.run(device_state).values()}
    victim = next(addr for addr, w in client.scheduler_info()["workers"].items() if w["name"] == "emu:0")
    client.run(kill_on_call, str(marker), 2, workers=[victim])
    a, b = normal(rng, (96, 128)), normal(rng, (128, 80))
    x, y = da.from_array(a, chunks=(32, 64)), da.from_array(b, chunks=(64, 40))
    start = time.perf_counter()
    got = hd.matmul(x, y).compute()
    print(f"computed through a lost worker in {time.perf_counter() - start:.1f} s")
    assert marker.exists() and int(marker.read_text()) == before["emu:0"], "the worker was not killed"
    check(got, a, b, splits=bound_splits(x, y))
    client.wait_for_workers(len(DEVICES), timeout=60)
    after = {s["device"]: s["pid"] for s in client.run(device_state).values()}
    assert after["emu:0"] != before["emu:0"] and after["emu:1"] == before["emu:1"]


# ---------------------------------------------------------------------------------------------------------
# no cluster needed: checked when the graph is built

@pytest.mark.parametrize("x, y, kw, exc, text", [
    (np.ones((4, 4), np.float32), ones(4, 4), {}, TypeError, "x must be a dask array, not ndarray"),
    (ones(4, 4), ones(4, 4, dtype=np.int32), {}, TypeError, "y has dtype int32"),
    (ones(4), ones(4, 4), {}, ValueError, "x must be 2-D or 3-D"),
    (ones(4, 5), ones(4, 4), {}, ValueError, "inner dimensions differ"),
    (ones(4, 4), ones(2, 4, 4), {}, ValueError, "batched y"),
    (ones(3, 4, 4), ones(2, 4, 4), {}, ValueError, "same batch size"),
    (ones(4, 4), ones(4, 4), {"out_dtype": np.float16}, TypeError, "out_dtype must be bfloat16 or float32, not float16"),
    (ones(4, 4), ones(4, 4), {"out_dtype": "nonsense"}, TypeError, "out_dtype"),
    (ones(4, 4), ones(4, 4), {"strategy": 5}, TypeError, "strategy must be"),
    (ones(4, 4), ones(4, 4), {"bias": np.ones(4)}, TypeError, "bias"),
])
def test_bad_input(x, y, kw, exc, text):
    with pytest.raises(exc, match=text):
        hd.matmul(x, y, **kw)


def test_unknown_chunk_sizes():
    x = da.ones((6, 4), dtype=np.float32, chunks=3)
    with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
        hd.matmul(x[x[:, 0] > 0], ones(4, 4))


@pytest.mark.parametrize("devices, exc, text", [
    ([], ValueError, "devices is empty"),
    ("emu:0", TypeError, "list or tuple"),
    ([0, 1], TypeError, "spec string"),
    (["emu:0", "emu"], ValueError, "same device as 'emu:0'"),
    (["tpu:0"], ValueError, "unknown device 'tpu:0'"),
])
def test_bad_device_workers(devices, exc, text):
    with pytest.raises(exc, match=text):
        hd.device_workers(devices)


def test_device_workers_env_cannot_unpin():
    with pytest.raises(ValueError, match="must not set HKRT_DEVICE"):
        hd.device_workers(["emu:0"], env={"HKRT_DEVICE": "emu:1"})
    with pytest.raises(TypeError, match="env must be a dict"):
        hd.device_workers(["emu:0"], env=["HKRT_EMULATE=1"])


def test_device_workers_pin_each_worker():
    specs = hd.device_workers(["gpu:0", "gpu:1"], env={"A": "1"}, memory_limit="4GB")
    assert list(specs) == ["gpu:0", "gpu:1"]
    for name, spec in specs.items():
        assert spec["options"] == {"nthreads": 1, "memory_limit": "4GB", "env": {"A": "1", "HKRT_DEVICE": name}}


def test_hkrt_imports_without_dask():
    """`import hkrt` (and a gemm) works with dask absent; `import hkrt.dask` then says how to get it."""
    out = ok(run_python("""
        import sys
        sys.modules["dask"] = None          # as if dask were not installed
        import numpy as np, hkrt
        print(hkrt.gemm(np.eye(8, dtype=np.float32), np.eye(8, dtype=np.float32), out_dtype=np.float32).trace())
        try:
            import hkrt.dask
        except ImportError as e:
            print("ImportError:", e)
    """))
    lines = out.splitlines()
    assert lines[0] == "8.0"
    assert lines[1].startswith("ImportError: hkrt.dask needs dask: install it with `pip install hkrt[dask]`")


def test_import_hkrt_does_not_load_dask():
    out = ok(run_python("import sys, hkrt; print('dask' in sys.modules, 'distributed' in sys.modules)"))
    assert out.split() == ["False", "False"]
