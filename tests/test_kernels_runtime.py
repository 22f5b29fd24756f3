"""Every kernel family through hkrt.gemm, including the operands the fast kernels cannot read directly
(K not a multiple of 8, B as K x N on the device, misaligned batches), which the runtime repacks on
the device. Results against float64 numpy within the one error bound of hkrt.reference.expected()
(split-K through the epilogue kernel passes its split count: the partials' fp32 sum rounds once per split).
"""
import numpy as np
import pytest

import hkrt
from hkrt import registry
from hkrt import strategy as strategies

from kernel_harness import BF16, F32, check

FAMILIES = ["basic", "small", "pingpong", "pingpong_m128", "stream_k", "interleave", "producer_consumer"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (37, 53, 131), (130, 70, 64), (3, 300, 17)],
                         ids=lambda s: "x".join(map(str, s)))
def test_every_family_any_shape(family, shape, launched):
    m, n, k = shape
    rng = np.random.default_rng()
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    if family == "producer_consumer":  # takes the epilogue it fuses
        bias = rng.standard_normal(n).astype(np.float32)
        got = hkrt.gemm(a, b, bias=bias, alpha=0.5, strategy=family)
        check(got, a, b, bias=bias, alpha=0.5)
    else:
        check(hkrt.gemm(a, b, strategy=family), a, b)
    fams = {registry.spec(hkrt.get_device().arch, x).launch.strategy for x in launched}
    assert family in fams
    if family != "basic" and k % 8:
        assert "repack_bf16" in launched, "K % 8 != 0 must be repacked for the fast kernels"


@pytest.mark.parametrize("family", ["pingpong", "small", "producer_consumer"])
def test_device_b_as_k_by_n_is_transposed_on_the_device(family, launched):
    m, n, k = 70, 90, 72
    rng = np.random.default_rng()
    a = rng.standard_normal((m, k), np.float32)
    b = rng.standard_normal((k, n), np.float32)
    got = hkrt.gemm(hkrt.asarray(a.astype(BF16)), hkrt.asarray(b.astype(BF16)), strategy=family,
                    out_dtype=np.float32)
    check(got.numpy(), a, b, out_dtype=F32)
    assert "repack_bf16" in launched


def test_batched_with_unaligned_batches(launched):
    """Batches of 5 x 7 bf16 are 70 bytes apart: not 16-byte aligned, so A is repacked per batch."""
    rng = np.random.default_rng()
    a, b = rng.standard_normal((3, 5, 7), np.float32), rng.standard_normal((3, 7, 9), np.float32)
    got = hkrt.gemm(a, b, strategy="pingpong")
    for i in range(3):
        check(got[i], a[i], b[i])
    assert "repack_bf16" in launched


def test_weight_with_odd_k_is_padded_once(driver_launches):
    rng = np.random.default_rng()
    b = rng.standard_normal((45, 33), np.float32)
    w = hkrt.Weight(b)
    assert w.operand.cols == 48 and w.operand.layout == "nk"
    repack = registry.kernel(hkrt.get_device(), "repack_bf16").function
    driver_launches.clear()
    for _ in range(2):
        a = rng.standard_normal((20, 45), np.float32)
        check(hkrt.gemm(a, w, strategy="pingpong"), a, b)
    # one repack per call: a's K is padded; the prepared weight is not touched again
    assert [f is repack for f, _ in driver_launches] == [True, False] * 2


@pytest.mark.parametrize("strategy", ["pingpong", "small", "basic", "producer_consumer"])
def test_weight_rows_fill_whole_lines(strategy):
    """K = 200 needs no padding for 16-byte loads, but its 400-byte rows start mid-line: a Weight stores them
    in 512 bytes, zero-padded, and every kernel reads K = 200 at that row stride."""
    rng = np.random.default_rng()
    b = rng.standard_normal((200, 72), np.float32)
    w = hkrt.Weight(b)
    assert (w.operand.cols, w.operand.ld) == (200, 256)
    a = rng.standard_normal((40, 200), np.float32)
    check(hkrt.gemm(a, w, strategy=strategy), a, b)


def test_weight_rows_stay_unpadded_where_padding_would_pass_the_fast_kernels_limit(monkeypatch):
    """Padding to whole lines must not push a Weight past what one buffer descriptor reaches (the fast
    kernels' limit, 2 GiB; lowered here so that 72 rows of 200 fit and 72 rows of 256 do not)."""
    from hkrt import weight
    monkeypatch.setattr(weight, "FAST_MAX_BUFFER", 72 * 200 * 2)
    rng = np.random.default_rng()
    b = rng.standard_normal((200, 72), np.float32)
    w = hkrt.Weight(b)
    assert (w.operand.cols, w.operand.ld) == (200, 200)
    a = rng.standard_normal((40, 200), np.float32)
    check(hkrt.gemm(a, w), a, b)


def test_split_k_sums_partials_with_epilogue():
    rng = np.random.default_rng()
    m, n, k = 4, 130, 1000
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    p = strategies.choose(hkrt.get_device(), m, n, k, b_layout="nk", out="f32", epilogue=True, fast_ok=True,
                          strategy="small")
    assert p.splits > 1
    got = hkrt.gemm(a, b, c=c, beta=-1.0, bias=bias, strategy="small", out_dtype=np.float32)
    check(got, a, b, c=c, beta=-1.0, bias=bias, out_dtype=F32, splits=p.splits)


def test_default_table_reaches_the_fast_families():
    dev = hkrt.get_device()
    plan = strategies.choose

    def family(*args, **kw):
        return plan(dev, *args, b_layout="nk", out="bf16", fast_ok=True, **kw).family
    assert family(8192, 8192, 8192, epilogue=False) == "stream_k"   # whole rounds: a persistent grid
    assert family(4096, 4096, 1024, epilogue=False) == "pingpong"
    assert family(2048, 4096, 4096, epilogue=False) == "stream_k"  # 128 tiles of 256x256
    assert family(2048, 4096, 4096, epilogue=True) == "small_m128"
    assert family(64, 4096, 4096, epilogue=False) == "small"
    assert family(4096, 4096, 4096, epilogue=True) == "pingpong"   # its fused variant
    assert family(8192, 8192, 8192, epilogue=True) == "pingpong"
    assert family(1, 4096, 4096, epilogue=True) == "small"  # not forced onto 128 x 256 tiles
    assert family(16, 16, 100000, epilogue=True) == "small"
    assert plan(dev, 100, 100, 100, b_layout="kn", out="bf16", epilogue=False, fast_ok=False,
                why_not_fast="too big").family == "basic"


@pytest.mark.parametrize("family", ["basic", "pingpong", "small"])
def test_transposed_device_a(family, launched):
    """A device A held as K x M (a transposed view) is repacked to M x K on the device."""
    rng = np.random.default_rng()
    m, n, k = 45, 38, 29
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    da = hkrt.asarray(np.ascontiguousarray(a.T).astype(BF16)).T
    got = hkrt.gemm(da, hkrt.asarray(b.astype(BF16)), strategy=family, out_dtype=np.float32)
    check(got.numpy(), a, b, out_dtype=F32)
    assert launched[0] == "repack_bf16"


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
@pytest.mark.parametrize("family", ["basic", "pingpong_m128"])
def test_epilogue_kernel_activations(family, activation, launched):
    """Families without a fused epilogue finish in the epilogue kernel: every activation, both dtypes, and
    rows enough that each of its threads takes several (the runtime asks it for an eighth of them).
    (This test once ran small and pingpong, whose fused variants had made it miss the kernel.)"""
    rng = np.random.default_rng()
    m, n, k = 61, 70, 40
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    for out_dtype in (F32, BF16):
        got = hkrt.gemm(a, b, bias=bias, activation=activation, out_dtype=out_dtype, strategy=family)
        check(got, a, b, bias=bias, activation=activation, out_dtype=out_dtype, what=f"{np.dtype(out_dtype)}")
    assert {"gemm_epilogue_f32", "gemm_epilogue_bf16"} <= set(launched), launched
