"""Batched GEMMs in one launch: the batch is a grid dimension of every GEMM kernel and of the epilogue
kernel, which offset their pointers by per-batch strides (0: a B shared by the whole batch).

Fresh random inputs every run (the seed is printed), poisoned outputs, results against the one reference
and bound of hkrt.reference through kernel_harness's check helpers. The launch counts are read from the
device driver's launch itself, so a loop over the batch anywhere in the runtime shows up.
"""
from __future__ import annotations

import numpy as np
import pytest

import hkrt
from hkrt import registry
from hkrt import strategy as strategies

from kernel_harness import (BF16, F32, EmuMachine, check, check_variant, fresh_rng, launch_info, nan_array,
                            normal, poison_allocations, run_variant, variants)

FAMILIES = ["basic", "small", "small_m128", "pingpong", "stream_k", "interleave", "producer_consumer"]
# the variants with one epilogue compiled in have their batch test in test_kernels (their form, not the identity)
GEMM_VARIANTS = [v for f in FAMILIES for v in variants(f) if "form" not in launch_info(v)]
OUT = {BF16: "bf16", F32: "f32"}


@pytest.fixture
def rng():
    return fresh_rng()


def _splits(batch, m, n, k, family, epilogue=True, out="bf16"):
    """The split-K factor the plan uses (the bound grows by one rounding per split)."""
    p = strategies.choose(hkrt.get_device(), m, n, k, b_layout="nk", out=out, epilogue=epilogue, fast_ok=True,
                          strategy=family, batch=batch)
    return p.splits


# ---------------------------------------------------------------------------------------------------------
# the kernels, launched directly with a batch in the grid

@pytest.mark.parametrize("variant", GEMM_VARIANTS)
def test_direct_launch_of_a_batch(variant):
    """Every GEMM variant over a batch of 3 in one launch: per-batch B, then one B shared by the batch
    (stride 0). M != N != K, so a stride applied to the wrong operand lands on wrong data."""
    rng = np.random.default_rng()
    batch, m, n, k = 3, 70, 90, 136
    a = rng.standard_normal((batch, m, k)).astype(BF16)
    for b in (rng.standard_normal((batch, n, k)).astype(BF16), rng.standard_normal((n, k)).astype(BF16)):
        got, _ = run_variant(EmuMachine(), variant, a, b, splits=2)
        check_variant(got, variant, a, b, what=f"{b.ndim}-D b")


@pytest.mark.parametrize("variant", [v for v in GEMM_VARIANTS if launch_info(v)["epilogue"] == "alpha_beta_bias_act"])
def test_direct_launch_of_a_batch_with_fused_epilogue(variant):
    """The fused kernels read each batch's own Cin (and one shared bias)."""
    rng = np.random.default_rng()
    batch, m, n, k = 3, 40, 300, 64
    a, b = rng.standard_normal((batch, m, k)).astype(BF16), rng.standard_normal((n, k)).astype(BF16)
    cin, bias = rng.standard_normal((batch, m, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    got, _ = run_variant(EmuMachine(), variant, a, b, c=cin, bias=bias, alpha=0.5, beta=-1.5, act=1)
    check_variant(got, variant, a, b, c=cin, bias=bias, alpha=0.5, beta=-1.5, activation="relu")


# ---------------------------------------------------------------------------------------------------------
# through hkrt.gemm

@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_batched(rng, family, launched):
    batch, m, n, k = 4, 70, 90, 72
    a = normal(rng, (batch, m, k))
    for b in (normal(rng, (batch, k, n)), normal(rng, (k, n))):  # per-batch B, shared 2-D B
        for out_dtype in (BF16, F32):
            poison_allocations()
            launched.clear()
            got = hkrt.gemm(a, b, strategy=family, out_dtype=out_dtype)
            check(got, a, b, out_dtype=out_dtype, splits=_splits(batch, m, n, k, family, False, OUT[out_dtype]),
                  what=f"{family}, {b.ndim}-D b, {np.dtype(out_dtype)}")
            assert family in {registry.spec(hkrt.get_device().arch, x).launch.strategy for x in launched}


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_with_epilogue(rng, family):
    """bias and activation shared by the batch, alpha and beta with a per-batch C: fused kernels read each
    batch's C, the epilogue kernel (split-K sums, fp32 products) each batch's partials and C."""
    batch, m, n, k = 3, 65, 130, 264  # small: 5 K tiles, so it splits K
    a, b = normal(rng, (batch, m, k)), normal(rng, (k, n))
    c, bias = normal(rng, (batch, m, n)), normal(rng, n)
    splits = _splits(batch, m, n, k, family)
    if family in ("small", "small_m128"):
        assert splits > 1
    for out_dtype in (BF16, F32):
        out = nan_array((batch, m, n), out_dtype)
        hkrt.gemm(a, b, c=c, alpha=1.25, beta=-0.5, bias=bias, activation="gelu", out=out, strategy=family)
        check(out, a, b, c=c, alpha=1.25, beta=-0.5, bias=bias, activation="gelu", out_dtype=out_dtype,
              splits=splits, what=f"{family}, {np.dtype(out_dtype)}")
    b3 = normal(rng, (batch, k, n))  # and a per-batch B
    got = hkrt.gemm(a, b3, c=c, beta=2.0, activation="relu", strategy=family, out_dtype=np.float32)
    check(got, a, b3, c=c, beta=2.0, activation="relu", out_dtype=F32, splits=splits)


@pytest.fixture
def small_grid(monkeypatch):
    """Grids of at most 2 workgroups in y and z (the registry refuses more, as HIP refuses 65536)."""
    monkeypatch.setattr(registry, "MAX_GRID", (registry.MAX_GRID[0], 2, 2))


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_larger_than_the_grid_is_launched_in_chunks(rng, family, small_grid, driver_launches, launched):
    """A batch of 5 with room for 2 per grid: the GEMM and the epilogue kernel run over chunks of 2, 2, 1,
    each on its own batches (the epilogue's fp32 buffer, one chunk's worth, is reused in stream order)."""
    batch, m, n, k = 5, 33, 70, 40
    a, b, c = normal(rng, (batch, m, k)), normal(rng, (batch, k, n)), normal(rng, (batch, m, n))
    bias = normal(rng, n)
    splits = _splits(batch, m, n, k, family)
    got = hkrt.gemm(a, b, c=c, beta=0.5, bias=bias, activation="silu", strategy=family)
    check(got, a, b, c=c, beta=0.5, bias=bias, activation="silu", splits=splits)
    dev = hkrt.get_device()
    names = sorted(set(launched))  # a copy: looking the kernels up below appends to `launched`
    gemm_name = next(x for x in names if registry.spec(dev.arch, x).launch.strategy == family)
    gemm = registry.kernel(dev, gemm_name).function
    axis = 2 if family == "basic" else 1  # basic's grid is (N tiles, M tiles, batch)
    assert [g[axis] for f, g in driver_launches if f is gemm] == [2, 2, 1]
    ep_names = [x for x in names if x.startswith("gemm_epilogue")]
    if ep_names:
        ep = registry.kernel(dev, ep_names[0]).function
        assert [g[2] for f, g in driver_launches if f is ep] == [2, 2, 1]
    # a shared B, and no epilogue
    b2 = normal(rng, (k, n))
    check(hkrt.gemm(a, b2, strategy=family, out_dtype=np.float32), a, b2, out_dtype=F32,
          splits=_splits(batch, m, n, k, family, False, "f32"))


@pytest.mark.parametrize("epilogue", [False, True], ids=["plain", "bias_relu"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_of_64_is_one_launch(rng, family, epilogue, driver_launches, launched):
    """One GEMM launch for the whole batch, plus at most one of the epilogue kernel, and nothing else (these
    operands need no repack). A loop over the batch would launch 64 (or 128) times."""
    batch, m, n, k = 64, 20, 40, 32
    a, b = normal(rng, (batch, m, k)), normal(rng, (batch, k, n))
    kw = dict(bias=normal(rng, n), activation="relu") if epilogue else {}
    got = hkrt.gemm(a, b, strategy=family, **kw)
    check(got, a, b, splits=_splits(batch, m, n, k, family, epilogue), **kw)
    dev = hkrt.get_device()
    names = sorted(set(launched))  # a copy: looking the kernels up below appends to `launched`
    functions = {x: registry.kernel(dev, x).function for x in names}
    per_kernel = {x: sum(f is fn for f, _ in driver_launches) for x, fn in functions.items()}
    gemms = [x for x in per_kernel if registry.spec(dev.arch, x).launch.is_gemm]
    assert len(gemms) == 1 and per_kernel[gemms[0]] == 1, per_kernel
    assert all(per_kernel[x] <= 1 for x in per_kernel if x.startswith("gemm_epilogue")), per_kernel
    assert len(driver_launches) == sum(per_kernel.values()) <= 2, per_kernel


def test_a_batch_of_64_repacks_in_one_launch(rng, driver_launches, launched):
    """A device B held K x N, one per batch, is transposed to N x K for the fast kernels in one launch."""
    batch, m, n, k = 64, 20, 40, 32
    a = normal(rng, (batch, m, k))
    b = normal(rng, (batch, k, n))
    got = hkrt.gemm(hkrt.asarray(a.astype(BF16)), hkrt.asarray(b.astype(BF16)), strategy="pingpong",
                    out_dtype=np.float32)
    check(got.numpy(), a, b, out_dtype=F32)
    assert launched[0] == "repack_bf16"
    repack = registry.kernel(hkrt.get_device(), "repack_bf16").function
    assert [g for f, g in driver_launches if f is repack] == [(1, 1, batch)]
    assert len(driver_launches) == 2
