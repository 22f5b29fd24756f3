"""hkrt.execute: products taller than one launch's grid, and repacks of operands taller than theirs.

HIP's grid holds at most 65535 workgroups in y; a fallback product of 4.3M rows (whose operands are too
large for the fast kernels' 32-bit buffers) once failed with a grid LaunchConfigError. Emulating such a
product takes minutes, so the limit is lowered here: the same code paths, bands of a few tiles.
"""
from __future__ import annotations

import numpy as np
import pytest

import hkrt
from hkrt import registry

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
