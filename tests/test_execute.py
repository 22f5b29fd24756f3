"""hkrt.execute: products taller than one launch's grid, and repacks of operands taller than theirs.

HIP's grid holds at most 65535 workgroups in y; a fallback product of 4.3M rows (whose operands are too
large for the fast kernels' 32-bit buffers) once failed with a grid LaunchConfigError. Emulating such a
product takes minutes, so the limit is lowered here: the same code paths, bands of a few tiles.
"""
from __future__ import annotations

import numpy as np
import pytest

import hkrt
from hkrt import prepared, registry

from kernel_harness import fresh_rng
from test_gemm import BF16, check, normal


@pytest.fixture
def tiny_grid(monkeypatch):
    """A device whose grids hold 2 workgroups in y (the registry refuses more, as HIP refuses 65536)."""
    monkeypatch.setattr(registry, "MAX_GRID", (registry.MAX_GRID[0], 2, registry.MAX_GRID[2]))


@pytest.fixture
def grids(driver_launches):
    """The grid of every launch, in order."""
    class Grids:
        def __iter__(self):
            return iter([g for _, g in driver_launches])
    return Grids()


@pytest.mark.parametrize("out_dtype", [BF16, np.float32])
def test_fallback_runs_products_taller_than_a_grid(tiny_grid, grids, out_dtype):
    rng = np.random.default_rng()
    m, n, k = 64 * 5 + 17, 70, 40             # 6 row tiles: three bands of two, the last one partial
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    check(hkrt.gemm(a, b, strategy="basic", out_dtype=out_dtype), a, b, out_dtype=out_dtype)
    assert [g[1] for g in grids if g[0] == 2] == [2, 2, 2]   # N = 70: two column tiles; three bands


def test_fallback_with_epilogue_over_bands(tiny_grid):
    rng = np.random.default_rng()
    m, n, k = 64 * 4 + 3, 50, 24
    a, b, bias = normal(rng, (m, k)), normal(rng, (k, n)), normal(rng, n)
    check(hkrt.gemm(a, b, strategy="basic", bias=bias, activation="relu"), a, b, bias=bias, activation="relu")


def test_repacks_taller_than_a_grid(tiny_grid):
    """A transposed device A (K x M in memory) is repacked to M x K, band by band; so is a K that the fast
    kernels need padded to a multiple of 8."""
    rng = np.random.default_rng()
    m, n, k = 64 * 5 + 9, 64, 44
    a = normal(rng, (m, k))
    at = hkrt.asarray(np.ascontiguousarray(a.T).astype(BF16)).T   # an m x k view of k x m memory
    b = normal(rng, (k, n))
    check(hkrt.gemm(at, hkrt.Weight(b), strategy="basic").numpy(), a, b)
    check(hkrt.gemm(at, hkrt.Weight(b), strategy="pingpong").numpy(), a, b)
    a2 = hkrt.asarray(normal(rng, (m, 42)).astype(BF16))           # K = 42: padded to 48 by the repack
    b2 = normal(rng, (42, n))
    check(hkrt.gemm(a2, b2, strategy="pingpong").numpy(), a2.numpy(), b2)


def _counter_words(block, nbytes: int) -> np.ndarray:
    host = np.empty(nbytes // 8, np.uint64)
    hkrt.get_device().driver.memcpy_dtoh(host, block.ptr, host.nbytes, None)
    return host


def test_split_k_counters_count_each_run_under_its_own_epoch():
    """The small kernel's last block of each tile sums the splits, found by arrival counters kept between
    runs (per stream). Each run counts under a new epoch, so a later run never takes a word's old count
    for its own: repeated calls through gemm, a plan and numpy, on two streams, stay right, and after each
    run every word holds that run's epoch with every split counted."""
    rng = fresh_rng()
    m, n, k = 16, 1024, 4096
    b = normal(rng, (k, n))
    w = hkrt.Weight(b)
    prepared.clear()
    plan = hkrt.plan((m, k), w)
    splits = plan.plan.splits
    assert splits > 1
    for stream in (None, hkrt.Stream(), None):
        for call in ("gemm", "plan", "numpy"):
            a = normal(rng, (m, k))
            da = hkrt.asarray(a.astype(BF16), stream=stream)
            got = (hkrt.gemm(da, w, stream=stream).numpy() if call == "gemm" else
                   plan(da, stream=stream).numpy() if call == "plan" else hkrt.gemm(a, b))
            check(got, a, b, what=f"{call} on {stream}")
    for prog in [plan._exe.program] + [e.program for e in prepared._cache.values()]:
        seen = set()   # each program's runs count under epochs of their own (programs' words never meet)
        for blk in prog._counter_blocks.values():
            words = _counter_words(blk, prog.counters)
            assert (words & np.uint64(0xFFFFFFFF) == splits).all(), words
            epoch = set((words >> np.uint64(32)).tolist())
            assert len(epoch) == 1 and not epoch & seen, (epoch, seen)
            seen |= epoch


def test_split_k_counters_are_zeroed_again_when_the_epochs_wrap():
    """The kernels take a word of a smaller epoch for no arrivals, so when a program's 32-bit epochs wrap
    (after 2^32 - 1 runs) its words, left at the largest epoch, must be zeroed again; otherwise no block
    of the next run would be last and nothing would be stored."""
    import itertools
    rng = fresh_rng()
    m, n, k = 16, 1024, 4096
    b = normal(rng, (k, n))
    plan = hkrt.plan((m, k), hkrt.Weight(b))
    assert plan.plan.splits > 1
    prog = plan._exe.program
    prog._epochs = itertools.count(0xFFFFFFFD)   # runs at epochs 0xFFFFFFFE, 0xFFFFFFFF, then 1, 2
    for run in range(4):
        a = normal(rng, (m, k))
        check(plan(hkrt.asarray(a.astype(BF16))).numpy(), a, b, what=f"run {run}")


# -- products past the fast kernels' buffer reach, in bands of rows

@pytest.fixture
def short_reach(monkeypatch):
    """Fast kernels whose buffers reach 300 rows of 512 fp32 (the real 2 GiB takes minutes to emulate): an M of
    700 with N = 512 runs as bands of 256, 256 and 188 rows."""
    from hkrt import execute, request
    for module in (request, execute):
        monkeypatch.setattr(module, "FAST_MAX_BUFFER", 300 * 512 * 4)


def _request(m: int, n: int, k: int, **kw):
    """A request of this shape, for the planner only (its operands are never read)."""
    from hkrt.request import Epilogue, GemmRequest
    fields = dict(a=None, b=None, m=m, n=n, k=k, batch=None, epilogue=Epilogue(), out_dtype=BF16, out=None,
                  stream=None, strategy=None, device=hkrt.get_device())
    return GemmRequest(**{**fields, **kw})


def test_a_product_whose_c_passes_2_gib_runs_the_fast_kernels_in_bands():
    """8192 x 128256 x 4096: its bf16 C (2.1 GB) passes a buffer descriptor's reach; it once ran the basic
    kernel whole (398 TFLOP/s on the mi355x model). Now two bands of 4096 rows run on the fast kernels."""
    from hkrt import strategy
    plan = strategy.plan(_request(8192, 128256, 4096))
    assert [(band.r0, band.rows, band.plan.family) for band in plan.bands] == [(0, 4096, "stream_k"),
                                                                             (4096, 4096, "stream_k")]
    assert plan.family == "stream_k" and "2 bands" in plan.reason
    assert not strategy.plan(_request(4096, 128256, 4096)).bands
    # uneven: 3 bands as even as 256-row tiles allow, the last one shorter and planned for its own height
    tall = strategy.plan(_request(10000, 128256, 4096))
    assert [(band.r0, band.rows) for band in tall.bands] == [(0, 3584), (3584, 3584), (7168, 2832)]
    # a B past the reach cannot be banded: the basic kernel runs, and the plan says why
    wide = strategy.plan(_request(64, 300000, 4096))
    assert wide.family == "basic" and "B is" in wide.reason and not wide.bands


@pytest.mark.parametrize("strategy", [None, "small", "small_m128", "pingpong", "pingpong_m128", "stream_k", "basic"])
@pytest.mark.parametrize("epilogue", ["none", "bias", "abc"])
def test_bands_of_rows_compute_the_whole_product(short_reach, driver_launches, strategy, epilogue):
    """Every family over three bands (the last partial), each band's A, C and result at its own rows, its
    split-K counters its own (one run counts under one epoch) and workspace shared; outputs poisoned."""
    from kernel_harness import poison_allocations
    rng = fresh_rng()
    m, n, k = 700, 512, 264
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    kw = {"none": {}, "bias": dict(bias=normal(rng, n), activation="gelu"),
          "abc": dict(alpha=0.5, beta=-1.5, c=normal(rng, (m, n)))}[epilogue]
    req_plan = hkrt.plan((m, k), hkrt.Weight(b), strategy=strategy, **kw).plan
    assert [(band.r0, band.rows) for band in req_plan.bands] == [(0, 256), (256, 256), (512, 188)]
    poison_allocations()
    for out_dtype in (BF16, np.float32):
        check(hkrt.gemm(a, b, strategy=strategy, out_dtype=out_dtype, **kw), a, b, out_dtype=out_dtype, **kw)
    assert len(driver_launches) >= 2 * 3, "expected a launch per band and call"


@pytest.mark.parametrize("strategy", [None, "pingpong", "stream_k"])
def test_bands_of_rows_over_a_batch_and_device_operands(short_reach, strategy):
    """A batch (B per matrix, then shared) of device operands, each matrix in bands: the batch strides stay the
    whole matrices', the band offsets within each."""
    from kernel_harness import poison_allocations
    rng = fresh_rng()
    batch, m, n, k = 2, 600, 512, 136
    a = normal(rng, (batch, m, k))
    for b in (normal(rng, (batch, k, n)), normal(rng, (k, n))):
        poison_allocations()
        got = hkrt.gemm(hkrt.asarray(a.astype(BF16)), hkrt.asarray(b.astype(BF16)), strategy=strategy)
        check(got.numpy(), a, b)


def test_whole_rounds_run_as_a_persistent_grid_with_no_workspace():
    """Two whole rounds of 256x256 tiles (512 on 256 CUs) run the stream-K kernel with nothing to share: it
    once took two tile slots per block (128 MiB) and a counter per tile that nothing used."""
    from hkrt import execute, strategy
    from hkrt.request import GemmRequest
    rng = fresh_rng()
    m, n, k = 4096, 8192, 40
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    req = GemmRequest.make(a, b)
    plan = strategy.plan(req)
    assert plan.family == "stream_k" and plan.blocks == 256
    prog = execute.compile_request(req, plan)
    assert prog.workspace == [] and prog.counters == 0
    check(hkrt.gemm(a, b), a, b)
