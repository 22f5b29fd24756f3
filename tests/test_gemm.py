"""hkrt.gemm against numpy: shapes, dtypes, epilogue, layouts, device arrays, streams, weights, errors.

Every test draws fresh random inputs (np.random.default_rng() from fresh OS entropy, printed so that a
failure can be replayed) and compares with numpy computed in float64 from the bf16-rounded inputs,
within the error bound hkrt.reference.expected() derives. Outputs are poisoned wherever the API lets us: out=
arrays start as NaN, and the allocator's cache is seeded with NaN-filled blocks that the result and
the fp32 accumulator are then carved from, so an element the kernels fail to write shows up as NaN.
"""
from __future__ import annotations

import gc
import math
import re
import threading

import numpy as np
import pytest

import hkrt
from hkrt import registry
from hkrt.array import DeviceArray
from hkrt.reference import activate64, bf64, expected

from kernel_harness import (ACTS, BF16, F32, assert_close, check, fresh_rng, nan_array, normal, poison_allocations,
                            stop_poisoning)


@pytest.fixture
def rng():
    return fresh_rng()  # fresh entropy every run; printed for replaying a failure


def rne_bf16_bits(x) -> np.ndarray:
    """Our own RNE float32 -> bf16 on the bit patterns (finite inputs), as float32: an independent check."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


# ---------------------------------------------------------------------------------------------------------
# the checker itself must be able to fail

def test_tolerance_catches_errors(rng):
    """The bound is tight enough to reject a product with one K term missing, or inputs truncated."""
    m, n, k = 40, 50, 33
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    got = hkrt.gemm(a, b, out_dtype=np.float32)
    check(got, a, b, out_dtype=np.float32)
    ref, tol = expected(a, b, out_dtype=np.float32)
    # drop the last K term (the classic tail bug of a K loop)
    dropped = (bf64(a)[:, :-1] @ bf64(b)[:-1]).astype(np.float32)
    with pytest.raises(AssertionError):
        assert_close(dropped, ref, tol)
    # inputs truncated to bf16 instead of rounded
    trunc = lambda x: (x.view(np.uint32) & 0xFFFF0000).view(np.float32).astype(np.float64)  # noqa: E731
    with pytest.raises(AssertionError):
        assert_close((trunc(a) @ trunc(b)).astype(np.float32), ref, tol)
    # the bf16 result rounded from a 1%-off value
    ref16, tol16 = expected(a, b)
    with pytest.raises(AssertionError):
        assert_close((ref16 * 1.01).astype(BF16), ref16, tol16)
    # a NaN never passes
    poisoned = got.copy()
    poisoned[rng.integers(m), rng.integers(n)] = np.nan
    with pytest.raises(AssertionError):
        check(poisoned, a, b, out_dtype=np.float32)


def test_poisoned_allocations_are_nan_filled():
    """poison_allocations() hands NaN-filled memory to every allocation of any size, blocks reused from the
    cache included, until stop_poisoning() (the conftest calls it after each test)."""
    def pooled_zeros(n):  # a cached block that holds zeros
        z = DeviceArray((n,), F32)
        z.copy_from(np.zeros(n, F32))
        z.free()
    pooled_zeros(64)
    poison_allocations()
    for shape, dtype in (((64,), F32), ((37, 45), BF16), ((3, 64, 65), F32), ((1, 1), BF16)):
        assert np.isnan(DeviceArray(shape, dtype).numpy()).all(), (shape, dtype)
    stop_poisoning()
    pooled_zeros(64)
    assert (DeviceArray((64,), F32).numpy() == 0).all(), "still poisoning after stop_poisoning()"


# ---------------------------------------------------------------------------------------------------------
# shapes

SHAPES = [(1, 1, 1), (1, 1, 300), (1, 64, 64), (64, 1, 64), (64, 64, 1), (2, 3, 5), (63, 65, 31), (65, 63, 33),
          (64, 64, 64), (64, 64, 32), (127, 129, 97), (200, 3, 70), (3, 200, 70), (100, 100, 257), (17, 130, 1),
          (256, 192, 96)]


@pytest.mark.parametrize("m,n,k", SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
@pytest.mark.parametrize("out_dtype", [BF16, F32], ids=["bf16", "f32"])
def test_shapes(rng, m, n, k, out_dtype):
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    poison_allocations()
    got = hkrt.gemm(a, b, out_dtype=out_dtype)
    assert isinstance(got, np.ndarray)
    check(got, a, b, out_dtype=out_dtype)
    # and into a NaN-filled out= array, which is returned
    out = nan_array((m, n), out_dtype)
    res = hkrt.gemm(a, b, out=out)
    assert res is out
    check(out, a, b, out_dtype=out_dtype, what="out=")


def test_default_out_dtype_is_bf16(rng):
    a, b = normal(rng, (5, 7)), normal(rng, (7, 9))
    assert hkrt.gemm(a, b).dtype == BF16
    assert hkrt.gemm(a, b, out_dtype="bfloat16").dtype == BF16
    assert hkrt.gemm(a, b, out_dtype="float32").dtype == F32
    # out= decides the dtype when out_dtype is not given
    out = nan_array((5, 9), np.float32)
    hkrt.gemm(a, b, out=out)
    check(out, a, b, out_dtype=np.float32)


@pytest.mark.parametrize("m,n,k", [(0, 5, 7), (5, 0, 7), (0, 0, 7), (0, 0, 0), (0, 5, 0), (5, 0, 0)])
def test_empty_dimensions(rng, m, n, k):
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    for out_dtype in (BF16, F32):
        got = hkrt.gemm(a, b, out_dtype=out_dtype)
        assert got.shape == (m, n) and got.dtype == out_dtype
        got = hkrt.gemm(a, b, bias=normal(rng, n), activation="gelu", beta=0.5, c=normal(rng, (m, n)),
                        out_dtype=out_dtype)
        assert got.shape == (m, n) and got.dtype == out_dtype
    out = nan_array((m, n), np.float32)
    assert hkrt.gemm(a, b, out=out) is out
    # batched, with an empty batch too
    for batch in (0, 2):
        a3 = normal(rng, (batch, m, k))
        got = hkrt.gemm(a3, b, bias=normal(rng, n))
        assert got.shape == (batch, m, n) and got.dtype == BF16


@pytest.mark.parametrize("m,n", [(1, 1), (70, 45), (3, 300)])
def test_k_zero(rng, m, n):
    """K = 0: the product is zero, the result only bias and beta * c (through the activation)."""
    a, b = normal(rng, (m, 0)), normal(rng, (0, n))
    poison_allocations()
    got = hkrt.gemm(a, b, out_dtype=np.float32)
    assert got.shape == (m, n)
    assert np.all(got == 0), "K = 0 with no epilogue must give zeros"
    bias, c = normal(rng, n), normal(rng, (m, n))
    for out_dtype in (BF16, F32):
        for act in ACTS:
            poison_allocations()
            got = hkrt.gemm(a, b, bias=bias, c=c, beta=-1.5, alpha=2.0, activation=act, out_dtype=out_dtype)
            check(got, a, b, bias=bias, c=c, beta=-1.5, alpha=2.0, activation=act, out_dtype=out_dtype,
                  what=f"K=0 {act}")
    out = nan_array((m, n), BF16)
    hkrt.gemm(a, b, bias=bias, out=out)
    check(out, a, b, bias=bias)


def test_empty_batch_does_not_launch():
    """A batch of zero matrices: nothing to compute, and nothing read from the empty buffers."""
    rng = np.random.default_rng()
    a = normal(rng, (0, 70, 70))
    b = normal(rng, (70, 70))
    got = hkrt.gemm(a, b)
    assert got.shape == (0, 70, 70)
    got = hkrt.gemm(a, normal(rng, (0, 70, 33)), out_dtype=np.float32, bias=normal(rng, 33))
    assert got.shape == (0, 70, 33) and got.dtype == F32
    hkrt.get_device().synchronize()  # a stray launch over the empty buffers would fault here


# ---------------------------------------------------------------------------------------------------------
# batched

@pytest.mark.parametrize("batch,m,n,k", [(1, 5, 6, 7), (3, 65, 33, 40), (4, 1, 70, 1), (2, 64, 64, 64)])
def test_batched(rng, batch, m, n, k):
    a = normal(rng, (batch, m, k))
    for b in (normal(rng, (k, n)), normal(rng, (batch, k, n))):
        for out_dtype in (BF16, F32):
            poison_allocations()
            got = hkrt.gemm(a, b, out_dtype=out_dtype)
            assert got.shape == (batch, m, n)
            check(got, a, b, out_dtype=out_dtype, what=f"batched a, {b.ndim}-D b")
            # per-batch c, shared bias, activation
            c, bias = normal(rng, (batch, m, n)), normal(rng, n)
            out = nan_array((batch, m, n), out_dtype)
            hkrt.gemm(a, b, c=c, beta=0.75, bias=bias, activation="silu", out=out)
            check(out, a, b, c=c, beta=0.75, bias=bias, activation="silu", out_dtype=out_dtype)
    # each batch entry equals the 2-D gemm of that entry
    b3 = normal(rng, (batch, k, n))
    got = hkrt.gemm(a, b3, out_dtype=np.float32)
    for i in range(batch):
        np.testing.assert_array_equal(got[i], hkrt.gemm(a[i], b3[i], out_dtype=np.float32))


# ---------------------------------------------------------------------------------------------------------
# input dtypes and the rounding to bf16

@pytest.mark.parametrize("dta", [np.float32, np.float16, BF16], ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("dtb", [np.float32, np.float16, BF16], ids=["f32", "f16", "bf16"])
def test_input_dtypes(rng, dta, dtb):
    m, n, k = 33, 47, 70
    a, b = normal(rng, (m, k), dta), normal(rng, (k, n), dtb)
    for out_dtype in (BF16, F32):
        got = hkrt.gemm(a, b, out_dtype=out_dtype)
        check(got, a, b, out_dtype=out_dtype)
    # the result equals that of the inputs rounded to bf16 beforehand, bit for bit
    np.testing.assert_array_equal(hkrt.gemm(a, b, out_dtype=np.float32),
                                  hkrt.gemm(a.astype(BF16), b.astype(BF16), out_dtype=np.float32))


def _not_bf16_values(rng, count, dtype):
    """Values that bf16 cannot hold: ties (which RNE breaks to even), just above/below ties, random."""
    one = np.float32(1.0)
    specials = [one + 2.0 ** -8, one + 3 * 2.0 ** -8, one + 2.0 ** -8 + 2.0 ** -10, one + 2.0 ** -8 - 2.0 ** -10,
                3 * 2.0 ** -9, 1000.0 + 2.0, -(one + 3 * 2.0 ** -8), -(one + 2.0 ** -8), 0.1, -0.3]
    x = np.concatenate([np.array(specials, np.float64), rng.standard_normal(count - len(specials)) * 4])
    x = x.astype(dtype)
    assert np.mean(bf64(x) != x.astype(np.float64)) > 0.7, "test inputs should mostly be unrepresentable"
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
def test_inputs_rounded_to_bf16_rne(rng, dtype):
    """float32/float16 inputs are rounded to bf16 with round-to-nearest-even before the product.

    With K = 1 and the other operand 1.0 the fp32 result is the rounded input itself, exactly.
    """
    x = _not_bf16_values(rng, 300, dtype)
    want = rne_bf16_bits(x.astype(np.float32))
    np.testing.assert_array_equal(want, x.astype(BF16).astype(np.float32))  # ml_dtypes agrees with our RNE
    one = np.ones((1, 1), dtype)
    got_a = hkrt.gemm(x.reshape(-1, 1), one, out_dtype=np.float32)[:, 0]
    np.testing.assert_array_equal(got_a, want, err_msg="a is not rounded to bf16 with RNE")
    got_b = hkrt.gemm(one, x.reshape(1, -1), out_dtype=np.float32)[0]
    np.testing.assert_array_equal(got_b, want, err_msg="b is not rounded to bf16 with RNE")
    # the product uses the rounded values: (1 + 2^-8)^2 would not be (1)^2 if a were not rounded first
    got = hkrt.gemm(x.reshape(-1, 1), x.reshape(1, -1), out_dtype=np.float32)
    np.testing.assert_array_equal(got, np.outer(want, want).astype(np.float32))


def test_bf16_output_is_rne_of_fp32_result(rng):
    """With K = 1 the fp32 result is exact, so the bf16 result must be exactly its RNE rounding."""
    a = normal(rng, (50, 1), BF16)
    b = normal(rng, (1, 60), BF16)
    exact = hkrt.gemm(a, b, out_dtype=np.float32)
    np.testing.assert_array_equal(exact, np.outer(a.astype(np.float64), b.astype(np.float64)).astype(np.float32))
    got = hkrt.gemm(a, b)
    np.testing.assert_array_equal(got.astype(np.float32), rne_bf16_bits(exact))
    # and the epilogue path rounds the same way (bias of zero forces it)
    got = hkrt.gemm(a, b, bias=np.zeros(60, np.float32))
    np.testing.assert_array_equal(got.astype(np.float32), rne_bf16_bits(exact))


# ---------------------------------------------------------------------------------------------------------
# the epilogue: bias, activations, alpha and beta with c

@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("out_dtype", [BF16, F32], ids=["bf16", "f32"])
def test_bias_and_activation(rng, activation, out_dtype):
    m, n, k = 70, 90, 64
    # scaled so that the pre-activation values span about [-6, 6], where the activations differ most
    a, b = normal(rng, (m, k), scale=1.5 / k ** 0.25), normal(rng, (k, n), scale=1.5 / k ** 0.25)
    bias = normal(rng, n)
    poison_allocations()
    got = hkrt.gemm(a, b, bias=bias, activation=activation, out_dtype=out_dtype)
    check(got, a, b, bias=bias, activation=activation, out_dtype=out_dtype)
    poison_allocations()
    got = hkrt.gemm(a, b, activation=activation, out_dtype=out_dtype)
    check(got, a, b, activation=activation, out_dtype=out_dtype, what="activation without bias")
    assert hkrt.gemm(a, b, activation="none", out_dtype=out_dtype).dtype == out_dtype


def test_gelu_is_the_tanh_form(rng):
    """The erf form differs from the tanh form by up to ~1e-3 near |x| = 2: far outside an fp32 bound."""
    x = np.linspace(-6, 6, 241).astype(BF16).reshape(-1, 1)
    got = hkrt.gemm(x, np.ones((1, 1), np.float32), activation="gelu", out_dtype=np.float32)
    check(got, x, np.ones((1, 1)), activation="gelu", out_dtype=np.float32)
    from math import erf
    erf_form = np.array([[0.5 * v * (1 + erf(v / math.sqrt(2)))] for v in x[:, 0].astype(np.float64)])
    ref, tol = expected(x, np.ones((1, 1)), activation="gelu", out_dtype=np.float32)
    assert np.any(np.abs(erf_form - ref) > 10 * tol)  # so the check above tells the two forms apart


@pytest.mark.parametrize("alpha,beta", [(2.5, 0.0), (1.0, 1.0), (-0.5, 0.25), (0.0, 3.0), (0.3, -1.0)])
@pytest.mark.parametrize("out_dtype", [BF16, F32], ids=["bf16", "f32"])
def test_alpha_beta(rng, alpha, beta, out_dtype):
    m, n, k = 65, 70, 45
    a, b, c = normal(rng, (m, k)), normal(rng, (k, n)), normal(rng, (m, n), scale=4.0)
    poison_allocations()
    got = hkrt.gemm(a, b, alpha=alpha, beta=beta, c=c, out_dtype=out_dtype)
    check(got, a, b, alpha=alpha, beta=beta, c=c, out_dtype=out_dtype)
    bias = normal(rng, n)
    got = hkrt.gemm(a, b, alpha=alpha, beta=beta, c=c.astype(BF16), bias=bias, activation="relu",
                    out_dtype=out_dtype)
    check(got, a, b, alpha=alpha, beta=beta, c=c.astype(BF16), bias=bias, activation="relu", out_dtype=out_dtype)


def test_alpha_beta_numpy_scalars_and_c_ignored_without_beta(rng):
    a, b, c = normal(rng, (20, 30)), normal(rng, (30, 40)), normal(rng, (20, 40))
    got = hkrt.gemm(a, b, alpha=np.float32(0.5), beta=np.float64(2.0), c=c, out_dtype=np.float32)
    check(got, a, b, alpha=0.5, beta=2.0, c=c, out_dtype=np.float32)
    got = hkrt.gemm(a, b, alpha=3, c=c, out_dtype=np.float32)  # an int alpha; beta 0: c does not contribute
    check(got, a, b, alpha=3.0, out_dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# out=, inputs untouched, layouts

def test_out_device_array(rng):
    m, n, k = 50, 70, 40
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    for out_dtype in (BF16, F32):
        out = hkrt.asarray(nan_array((m, n), out_dtype))
        res = hkrt.gemm(hkrt.asarray(a.astype(BF16)), hkrt.asarray(b.astype(BF16)), out=out, bias=normal(rng, n) * 0)
        assert res is out
        check(out.numpy(), a, b, out_dtype=out_dtype, bias=np.zeros(n))
        # numpy inputs with a device out: the device array is written too
        out2 = hkrt.asarray(nan_array((m, n), out_dtype))
        host = hkrt.gemm(a, b, out=out2)
        check(out2.numpy(), a, b, out_dtype=out_dtype)
        np.testing.assert_array_equal(np.asarray(host), out2.numpy())


def test_inputs_never_modified(rng):
    m, n, k = 40, 50, 60
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    c, bias = normal(rng, (m, n)), normal(rng, n)
    a[0, 0], b[1, 1] = np.nan, np.inf  # special values must survive untouched too
    a16, b16 = a.astype(np.float16), b.astype(BF16)
    arrays = [a, b, c, bias, a16, b16, np.asfortranarray(a), b.T.copy()]
    copies = [x.copy() for x in arrays]
    flags = [x.flags.c_contiguous for x in arrays]
    hkrt.gemm(a, b, c=c, beta=1.0, bias=bias, activation="gelu")
    hkrt.gemm(a16, b16, c=c, beta=0.5, alpha=2.0, out_dtype=np.float32)
    hkrt.gemm(arrays[6], arrays[7].T, bias=bias)
    hkrt.Weight(b)
    hkrt.Weight(arrays[7], nk=True)
    for x, y, f in zip(arrays, copies, flags):
        assert x.tobytes() == y.tobytes() and x.dtype == y.dtype and x.flags.c_contiguous == f
    # device inputs are not modified either
    da, db = hkrt.asarray(a16.astype(BF16)), hkrt.asarray(b16)
    dc, dbias = hkrt.asarray(c), hkrt.asarray(bias)
    before = [x.numpy().tobytes() for x in (da, db, dc, dbias)]
    hkrt.gemm(da, db, c=dc, beta=1.0, bias=dbias, activation="silu").numpy()
    assert [x.numpy().tobytes() for x in (da, db, dc, dbias)] == before


def _layouts(rng, m, n, k):
    """(name, a, b): non-contiguous numpy operands and the plain arrays they hold."""
    big_a, big_b = normal(rng, (2 * m + 1, 3 * k + 2)), normal(rng, (2 * k + 1, 2 * n + 3))
    at = normal(rng, (k, m))
    bt = normal(rng, (n, k))
    return [
        ("stepped slices", big_a[1::2, ::3][:m, :k], big_b[::2, 1::2][:k, :n]),
        ("transposed views", at.T, bt.T),
        ("Fortran order", np.asfortranarray(normal(rng, (m, k))), np.asfortranarray(normal(rng, (k, n)))),
        ("negative strides", big_a[::-1, ::-2][:m, :k], big_b[::-1][:k, :n]),
        ("column slices", big_a[:m, 2:2 + k], big_b[:k, 1:1 + n]),
        ("f16 transposed", at.astype(np.float16).T, bt.astype(np.float16).T),
    ]


@pytest.mark.parametrize("m,n,k", [(37, 45, 70), (64, 64, 64), (1, 9, 1)])
def test_non_contiguous_inputs(rng, m, n, k):
    for name, a, b in _layouts(rng, m, n, k):
        assert a.shape == (m, k) and b.shape == (k, n)
        for out_dtype in (BF16, F32):
            got = hkrt.gemm(a, b, out_dtype=out_dtype)
            check(got, a, b, out_dtype=out_dtype, what=name)
        bias = normal(rng, 2 * n)[::2]
        c = normal(rng, (n, m)).T
        got = hkrt.gemm(a, b, bias=bias, c=c, beta=1.0, out_dtype=np.float32)
        check(got, a, b, bias=bias, c=c, beta=1.0, out_dtype=np.float32, what=f"{name} with epilogue")


def test_non_contiguous_batched(rng):
    a = normal(rng, (3, 40, 2 * 33))[:, :, ::2]
    b = np.swapaxes(normal(rng, (3, 29, 33)), 1, 2)
    got = hkrt.gemm(a, b, out_dtype=np.float32)
    check(got, a, b, out_dtype=np.float32)
    a_f = np.asfortranarray(normal(rng, (2, 30, 20)))
    b2 = normal(rng, (20, 10))
    got = hkrt.gemm(a_f, b2[::-1], out_dtype=np.float32)
    check(got, a_f, b2[::-1], out_dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# NaN and Inf

def _ieee_reference(a, b):
    """The exact elementwise sum of products in float64 (no BLAS shortcuts), IEEE NaN/Inf rules."""
    A, B = bf64(a), bf64(b)
    with np.errstate(invalid="ignore", over="ignore"):
        return (A[:, :, None] * B[None, :, :]).sum(axis=1)


def _assert_same_specials(got, ref, what):
    g = np.asarray(got).astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(ref), err_msg=f"{what}: NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(g), np.isposinf(ref), err_msg=f"{what}: +Inf positions differ")
    np.testing.assert_array_equal(np.isneginf(g), np.isneginf(ref), err_msg=f"{what}: -Inf positions differ")


@pytest.mark.parametrize("activation", [None, "relu", "gelu", "silu"])
def test_nan_inf_propagate(rng, activation):
    m, n, k = 37, 41, 70
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    rows = rng.choice(m, 6, replace=False)
    cols = rng.choice(n, 6, replace=False)
    free_k = np.setdiff1d(np.arange(k), [3, 7, 11, 12, 13, 50])    # K indices not used by the plants below
    a[rows[0], rng.choice(free_k)] = np.nan                # row of NaN
    a[rows[1], rng.choice(free_k)] = np.inf                # row of +-Inf (sign of b)
    a[rows[2], 3], a[rows[2], 50] = np.inf, -np.inf        # Inf - Inf: NaN where b[3] and b[50] agree in sign
    b[rng.choice(free_k), cols[0]] = -np.inf               # column of -+Inf
    b[rng.choice(free_k), cols[1]] = np.nan                # column of NaN
    b[7, cols[2]] = 0.0
    a[rows[3], 7] = np.inf                                 # Inf * 0: NaN at (rows[3], cols[2])
    a[rows[4], :] = np.abs(a[rows[4], :])
    b[:, cols[3]] = np.abs(b[:, cols[3]])
    a[rows[4], 11] = np.inf                                # a clean +Inf at (rows[4], cols[3])
    # finite inputs whose sum overflows fp32 at (rows[5], cols[4]) only: every product stays finite in fp32
    # (3e38 * 1), elsewhere in the row the two large products add to a finite 1.5e38
    a[rows[5], 12] = a[rows[5], 13] = 3e38
    b[12, :] = b[13, :] = 0.25
    b[12, cols[4]] = b[13, cols[4]] = 1.0
    prod = _ieee_reference(a, b)
    # fp32 overflow: where the exact sum exceeds fp32's range the result is Inf of its sign
    ref = np.where(np.isfinite(prod) & (np.abs(prod) > np.finfo(np.float32).max), np.sign(prod) * np.inf, prod)
    assert np.isnan(ref).any() and np.isposinf(ref).any() and np.isneginf(ref).any()
    ref = activate64(ref, activation)
    for out_dtype in (BF16, F32):
        poison_allocations()
        got = hkrt.gemm(a, b, activation=activation, out_dtype=out_dtype)
        _assert_same_specials(got, ref, f"{activation} {np.dtype(out_dtype)}")
        finite = np.isfinite(ref)
        r, tol = expected(np.where(np.isfinite(a), a, 0), np.where(np.isfinite(b), b, 0), activation=activation,
                          out_dtype=out_dtype)
        # finite results away from the planted values compare as usual
        clean = finite.copy()
        clean[rows] = False
        clean[:, cols] = False
        assert_close(np.where(clean, got.astype(np.float64), 0), np.where(clean, r, 0), tol, "finite part")


def test_nan_inf_through_bias_and_c(rng):
    m, n, k = 20, 30, 40
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    bias, c = normal(rng, n), normal(rng, (m, n))
    bias[3], bias[4] = np.nan, np.inf
    c[5, 6], c[7, 8] = -np.inf, np.nan
    c[9, 4] = -np.inf  # bias +Inf + beta * c -Inf: NaN
    for out_dtype in (BF16, F32):
        got = hkrt.gemm(a, b, bias=bias, c=c, beta=1.0, out_dtype=out_dtype)
        with np.errstate(invalid="ignore"):
            ref = _ieee_reference(a, b) + c.astype(np.float64) + bias.astype(np.float64)
        _assert_same_specials(got, ref, "bias and c")
    # relu keeps +Inf and clamps -Inf to zero
    got = hkrt.gemm(a, b, bias=np.where(np.arange(n) % 2 == 0, np.inf, -np.inf).astype(np.float32),
                    activation="relu", out_dtype=np.float32)
    np.testing.assert_array_equal(got, np.where(np.arange(n) % 2 == 0, np.inf, 0.0)[None, :].repeat(m, 0))


# ---------------------------------------------------------------------------------------------------------
# device arrays and streams

def test_device_arrays_in_device_array_out(rng):
    m, n, k = 70, 65, 90
    a, b = normal(rng, (m, k), BF16), normal(rng, (k, n), BF16)
    da, db = hkrt.asarray(a), hkrt.asarray(b)
    poison_allocations()
    r = hkrt.gemm(da, db)
    assert isinstance(r, DeviceArray) and r.shape == (m, n) and r.dtype == BF16
    check(r.numpy(), a, b)
    # numpy b with device a, device b with numpy a: device array out iff a is on the device
    r2 = hkrt.gemm(da, b.astype(np.float32), out_dtype=np.float32)
    assert isinstance(r2, DeviceArray)
    check(r2.numpy(), a, b, out_dtype=np.float32)
    r3 = hkrt.gemm(a, db)
    assert isinstance(r3, np.ndarray)
    check(r3, a, b)
    # device bias and c (fp32), activation, f32 out
    bias, c = normal(rng, n), normal(rng, (m, n))
    r4 = hkrt.gemm(da, db, bias=hkrt.asarray(bias), c=hkrt.asarray(c), beta=-1.0, activation="gelu",
                   out_dtype=np.float32)
    check(r4.numpy(), a, b, bias=bias, c=c, beta=-1.0, activation="gelu", out_dtype=np.float32)


def test_device_array_layouts(rng):
    m, n, k = 40, 50, 70
    a = normal(rng, (m, k), BF16)
    bt = normal(rng, (n, k), BF16)
    r = hkrt.gemm(hkrt.asarray(a), hkrt.asarray(bt).T, out_dtype=np.float32)  # transposed N x K view
    check(r.numpy(), a, bt.T, out_dtype=np.float32)
    a3 = normal(rng, (3, m, k), BF16)
    b3 = normal(rng, (3, k, n), BF16)
    da3, db3 = hkrt.asarray(a3), hkrt.asarray(b3)
    r = hkrt.gemm(da3, db3)
    assert r.shape == (3, m, n)
    check(r.numpy(), a3, b3)
    r = hkrt.gemm(da3[1], db3[2], out_dtype=np.float32)  # views of batch entries
    check(r.numpy(), a3[1], b3[2], out_dtype=np.float32)
    r = hkrt.gemm(da3, db3[0])
    check(r.numpy(), a3, b3[0])


def test_streams(rng):
    streams = [hkrt.Stream(), hkrt.Stream()]
    jobs = []
    for i, s in enumerate(streams * 2):
        m, n, k = 30 + 7 * i, 40 + 5 * i, 33 + i
        a, b = normal(rng, (m, k), BF16), normal(rng, (k, n), BF16)
        da, db = hkrt.asarray(a, stream=s), hkrt.asarray(b, stream=s)
        r = hkrt.gemm(da, db, stream=s, bias=normal(rng, n) * 0, activation="relu")
        assert isinstance(r, DeviceArray) and r.stream is s
        jobs.append((s, r, a, b, n))
    for s in streams:
        s.synchronize()
    for s, r, a, b, n in jobs:
        check(r.numpy(), a, b, bias=np.zeros(n), activation="relu")
    # numpy in with a stream: still synchronous, numpy out
    a, b = normal(rng, (20, 30)), normal(rng, (30, 40))
    got = hkrt.gemm(a, b, stream=streams[0])
    assert isinstance(got, np.ndarray)
    check(got, a, b)
    # events on a stream bracket the work
    s = streams[1]
    e0 = s.record()
    r = hkrt.gemm(hkrt.asarray(a.astype(BF16), stream=s), b, stream=s)
    e1 = s.record()
    e1.synchronize()
    assert e1.query() and e0.elapsed_ms(e1) >= 0
    check(r.numpy(), a, b)


def test_device_operand_checks(rng):
    da32 = hkrt.asarray(normal(rng, (4, 5)))
    db = hkrt.asarray(normal(rng, (5, 6), BF16))
    with pytest.raises(TypeError, match=r"device array a .*float32"):
        hkrt.gemm(da32, db)
    with pytest.raises(TypeError, match=r"device array b"):
        hkrt.gemm(hkrt.asarray(normal(rng, (4, 5), BF16)), hkrt.asarray(normal(rng, (5, 6))))
    da = hkrt.asarray(normal(rng, (4, 5), BF16))
    with pytest.raises(ValueError, match="bias"):
        hkrt.gemm(da, db, bias=hkrt.asarray(normal(rng, 6, BF16)))
    with pytest.raises(ValueError, match=r"\bc\b"):
        hkrt.gemm(da, db, beta=1.0, c=hkrt.asarray(normal(rng, (4, 6), BF16)))
    with pytest.raises(ValueError, match=r"\bout\b"):
        hkrt.gemm(da, db, out=hkrt.asarray(normal(rng, (6, 4), BF16)).T)
    # a transposed device a (K-major) is repacked on the device, not refused
    at = normal(rng, (5, 4), BF16)
    got = hkrt.gemm(hkrt.asarray(at).T, db, out_dtype=np.float32).numpy()
    np.testing.assert_allclose(got, at.T.astype(np.float64) @ db.numpy().astype(np.float64), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# Weight

def test_weight_reuse(rng):
    k, n = 70, 45
    b = normal(rng, (k, n))
    w = hkrt.Weight(b)
    w_nk = hkrt.Weight(b.T.copy(), nk=True)
    assert w.shape == (k, n) and w_nk.shape == (k, n)
    assert w.layout == "kn" and w_nk.layout == "nk"
    b_saved = b.copy()
    b[:] = np.nan  # the weight holds its own copy
    for i, m in enumerate((1, 33, 64, 130)):
        a = normal(rng, (m, k))
        for weight in (w, w_nk):
            for out_dtype in (BF16, F32):
                poison_allocations()
                got = hkrt.gemm(a, weight, out_dtype=out_dtype)
                check(got, a, b_saved, out_dtype=out_dtype, what=f"{weight!r}")
            bias = normal(rng, n)
            got = hkrt.gemm(a, weight, bias=bias, activation="silu")
            check(got, a, b_saved, bias=bias, activation="silu")
            r = hkrt.gemm(hkrt.asarray(a.astype(BF16)), weight)
            assert isinstance(r, DeviceArray)
            check(r.numpy(), a, b_saved)
    a3 = normal(rng, (2, 20, k))
    check(hkrt.gemm(a3, w_nk), a3, b_saved)
    with pytest.raises(ValueError, match="inner dimensions"):
        hkrt.gemm(normal(rng, (3, k + 1)), w)
    with pytest.raises(ValueError, match="Weight is 2-D"):
        hkrt.Weight(normal(rng, (2, 3, 4)))
    with pytest.raises(TypeError, match=r"\bb\b.*int"):
        hkrt.Weight(np.ones((3, 4), np.int32))


# ---------------------------------------------------------------------------------------------------------
# strategy=

def _variant(**want) -> str:
    for name, spec in sorted(registry.manifest(hkrt.get_device().arch).kernels.items()):
        la = spec.launch
        if la.strategy == want["strategy"] and la.b_layout == want["b_layout"] and la.out == want["c"]:
            return name
    raise AssertionError(f"no variant {want} in the manifest")


def test_strategy_by_family_and_variant(rng, launched):
    m, n, k = 30, 40, 50
    a, b = normal(rng, (m, k)), normal(rng, (k, n))
    got = hkrt.gemm(a, b, strategy="basic")
    check(got, a, b)
    assert all(registry.spec(hkrt.get_device().arch, x).launch.strategy in ("basic", "epilogue")
               for x in launched)
    # numpy b goes to the device as N x K; a K x N variant gets it transposed back on the device
    variant = _variant(strategy="basic", b_layout="kn", c="f32")
    launched.clear()
    got = hkrt.gemm(a, b, strategy=variant, out_dtype=np.float32)
    check(got, a, b, out_dtype=np.float32)
    assert launched == ["repack_bf16", variant]
    # the f32 variant asked for a bf16 result: it feeds the epilogue
    launched.clear()
    got = hkrt.gemm(a, b, strategy=variant)
    check(got, a, b)
    assert launched[1] == variant and launched[2].startswith("gemm_epilogue") and len(launched) == 3
    # an N x K variant takes numpy b, K x N or a transposed view, as uploaded
    nk = _variant(strategy="basic", b_layout="nk", c="bf16")
    bt = normal(rng, (n, k))
    for bb in (b, bt.T):
        launched.clear()
        got = hkrt.gemm(a, bb, strategy=nk)
        check(got, a, bb)
        assert launched == [nk]


def test_unknown_strategy(rng):
    """An unknown strategy name is bad input: a ValueError (as the README says; once KernelNotFoundError)
    naming it and the strategies there are."""
    a, b = normal(rng, (8, 8)), normal(rng, (8, 8))
    with pytest.raises(ValueError) as exc:
        hkrt.gemm(a, b, strategy="no_such_strategy")
    msg = str(exc.value)
    assert "no_such_strategy" in msg and "basic" in msg and "pingpong" in msg


# ---------------------------------------------------------------------------------------------------------
# bad input: TypeError or ValueError naming the problem

def _bad_cases():
    rng = np.random.default_rng()
    a, b = normal(rng, (4, 5)), normal(rng, (5, 6))
    a3 = normal(rng, (2, 4, 5))
    return [
        ("a 1-D", ValueError, r"\ba\b.*2-D", lambda: hkrt.gemm(a[0], b)),
        ("a 4-D", ValueError, r"\ba\b.*4-D", lambda: hkrt.gemm(a[None, None], b)),
        ("a 0-D", ValueError, r"\ba\b", lambda: hkrt.gemm(np.float32(1), b)),
        ("b 1-D", ValueError, r"\bb\b.*1-D", lambda: hkrt.gemm(a, b[0])),
        ("b 4-D", ValueError, r"\bb\b.*4-D", lambda: hkrt.gemm(a3, b[None, None])),
        ("K mismatch", ValueError, r"inner dimensions.*\ba\b.*4 x 5.*\bb\b.*6 x 6",
         lambda: hkrt.gemm(a, normal(rng, (6, 6)))),
        ("K mismatch batched", ValueError, r"inner dimensions", lambda: hkrt.gemm(a3, normal(rng, (2, 4, 6)))),
        ("int a", TypeError, r"\ba\b.*int32", lambda: hkrt.gemm(a.astype(np.int32), b)),
        ("int b", TypeError, r"\bb\b.*int64", lambda: hkrt.gemm(a, b.astype(np.int64))),
        ("uint8 a", TypeError, r"\ba\b.*uint8", lambda: hkrt.gemm(a.astype(np.uint8), b)),
        ("bool a", TypeError, r"\ba\b.*bool", lambda: hkrt.gemm(a > 0, b)),
        ("float64 a", TypeError, r"\ba\b.*float64", lambda: hkrt.gemm(a.astype(np.float64), b)),
        ("complex a", TypeError, r"\ba\b.*complex", lambda: hkrt.gemm(a.astype(np.complex64), b)),
        ("complex b", TypeError, r"\bb\b.*complex", lambda: hkrt.gemm(a, b.astype(np.complex128))),
        ("object a", TypeError, r"\ba\b.*object", lambda: hkrt.gemm(a.astype(object), b)),
        ("object b", TypeError, r"\bb\b.*object", lambda: hkrt.gemm(a, np.array([[None] * 6] * 5))),
        ("string a", TypeError, r"\ba\b", lambda: hkrt.gemm(np.array([["x"] * 5] * 4), b)),
        ("bias length", ValueError, r"bias.*\(6,\)", lambda: hkrt.gemm(a, b, bias=np.ones(5, np.float32))),
        ("bias 2-D", ValueError, r"bias", lambda: hkrt.gemm(a, b, bias=np.ones((1, 6), np.float32))),
        ("bias int", TypeError, r"bias.*int", lambda: hkrt.gemm(a, b, bias=np.ones(6, np.int32))),
        ("bias length, M = 0", ValueError, r"bias",
         lambda: hkrt.gemm(a[:0], b, bias=np.ones(5, np.float32))),
        ("bias length, N = 0", ValueError, r"bias",
         lambda: hkrt.gemm(a, b[:, :0], bias=np.ones(5, np.float32))),
        ("out shape", ValueError, r"\bout\b.*\(4, 6\)", lambda: hkrt.gemm(a, b, out=np.empty((6, 4), BF16))),
        ("out shape batched", ValueError, r"\bout\b", lambda: hkrt.gemm(a3, b, out=np.empty((4, 6), BF16))),
        ("out dtype", ValueError, r"\bout\b.*float16", lambda: hkrt.gemm(a, b, out=np.empty((4, 6), np.float16))),
        ("out dtype vs out_dtype", ValueError, r"\bout\b.*float32",
         lambda: hkrt.gemm(a, b, out=np.empty((4, 6), np.float32), out_dtype=BF16)),
        ("out not contiguous", ValueError, r"\bout\b.*contiguous",
         lambda: hkrt.gemm(a, b, out=np.empty((6, 4), BF16).T)),
        ("out numpy with device a", ValueError, r"\bout\b.*DeviceArray",
         lambda: hkrt.gemm(hkrt.asarray(a.astype(BF16)), b, out=np.empty((4, 6), BF16))),
        ("out a list", TypeError, r"\bout\b.*list", lambda: hkrt.gemm(a, b, out=[[0.0] * 6] * 4)),
        ("out read-only", ValueError, r"\bout\b.*writeable", lambda: hkrt.gemm(a, b, out=_readonly((4, 6)))),
        ("beta without c", ValueError, r"beta.*\bc\b", lambda: hkrt.gemm(a, b, beta=1.0)),
        ("c shape", ValueError, r"\bc\b.*\(4, 6\)", lambda: hkrt.gemm(a, b, beta=1.0, c=np.ones((6, 4), np.float32))),
        ("c int", TypeError, r"\bc\b.*int", lambda: hkrt.gemm(a, b, beta=1.0, c=np.ones((4, 6), np.int64))),
        ("unknown activation", ValueError, r"activation.*'tanh'", lambda: hkrt.gemm(a, b, activation="tanh")),
        ("activation case", ValueError, r"activation", lambda: hkrt.gemm(a, b, activation="ReLU")),
        ("activation list", (TypeError, ValueError), r"activation", lambda: hkrt.gemm(a, b, activation=["relu"])),
        ("activation callable", (TypeError, ValueError), r"activation", lambda: hkrt.gemm(a, b, activation=np.tanh)),
        ("complex alpha", TypeError, r"alpha.*complex", lambda: hkrt.gemm(a, b, alpha=1 + 2j)),
        ("string alpha", TypeError, r"alpha.*str", lambda: hkrt.gemm(a, b, alpha="2")),
        ("bool alpha", TypeError, r"alpha.*bool", lambda: hkrt.gemm(a, b, alpha=True)),
        ("array alpha", TypeError, r"alpha", lambda: hkrt.gemm(a, b, alpha=np.ones(2))),
        ("None beta", TypeError, r"beta.*NoneType", lambda: hkrt.gemm(a, b, beta=None)),
        ("complex beta", TypeError, r"beta", lambda: hkrt.gemm(a, b, beta=np.complex64(1), c=np.ones((4, 6)))),
        ("batch mismatch", ValueError, r"batch.*\(3, 5, 6\).*\(2, 4, 5\)",
         lambda: hkrt.gemm(a3, normal(rng, (3, 5, 6)))),
        ("3-D b with 2-D a", ValueError, r"batch", lambda: hkrt.gemm(a, normal(rng, (2, 5, 6)))),
        ("c batch", ValueError, r"\bc\b", lambda: hkrt.gemm(a3, b, beta=1.0, c=np.ones((3, 4, 6), np.float32))),
        ("out_dtype int8", TypeError, r"out_dtype.*int8", lambda: hkrt.gemm(a, b, out_dtype=np.int8)),
        ("out_dtype f16", TypeError, r"out_dtype.*float16", lambda: hkrt.gemm(a, b, out_dtype=np.float16)),
        ("out_dtype f64", TypeError, r"out_dtype.*float64", lambda: hkrt.gemm(a, b, out_dtype=np.float64)),
        ("out_dtype nonsense", TypeError, r"out_dtype.*nonsense", lambda: hkrt.gemm(a, b, out_dtype="nonsense")),
        ("a non-GEMM kernel as strategy", ValueError, r"repack_bf16 is not a GEMM kernel",
         lambda: hkrt.gemm(a, b, strategy="repack_bf16")),
    ]


def _readonly(shape):
    x = np.empty(shape, BF16)
    x.flags.writeable = False
    return x


BAD = _bad_cases()


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input(case):
    _, exc_type, pattern, call = case
    alloc = hkrt.get_device().allocator
    gc.collect()
    before = alloc.in_use
    with pytest.raises(exc_type) as info:
        call()
    assert isinstance(info.value, (TypeError, ValueError))
    msg = str(info.value)
    assert re.search(pattern, msg), f"message {msg!r} does not match {pattern!r}"
    del info  # its traceback holds the failed call's frames
    gc.collect()
    assert alloc.in_use == before, "a rejected call left device memory in use"


# ---------------------------------------------------------------------------------------------------------
# misuse that once gave silent wrong answers or worse (each failed before its fix)

@pytest.mark.parametrize("m, n, strategy", [(1024, 512, "basic"), (512, 512, "pingpong")])
def test_out_aliasing_an_input_gets_the_right_product(m, n, strategy):
    """gemm(da, w, out=da) read a while writing it: a tile's output overwrote rows of a the next tiles
    still read (errors of 2.5e8 with basic, 1.8e3 with pingpong, against results of about 100)."""
    rng = np.random.default_rng()
    a, b = normal(rng, (m, n)), normal(rng, (n, n))
    da = hkrt.asarray(a.astype(BF16))
    got = hkrt.gemm(da, hkrt.Weight(b), out=da, strategy=strategy)
    assert got is da
    check(da.numpy(), a, b, what="out=a")
    db = hkrt.asarray(b.astype(BF16))
    check(hkrt.gemm(hkrt.asarray(a[:n].astype(BF16)), db, out=db, strategy=strategy).numpy(), a[:n], b,
          what="out=b")


def test_transposed_views_copy_through_their_strides():
    rng = np.random.default_rng()
    x = normal(rng, (48, 64))
    d = hkrt.empty((64, 48), np.float32)
    d.T.copy_from(x)  # once ignored the strides: the data landed scrambled
    assert np.array_equal(d.numpy(), x.T) and np.array_equal(d.T.numpy(), x)
    with pytest.raises(ValueError, match="lie contiguously"):
        hkrt.empty((4, 4), np.float32).T[1].numpy()  # a column: elements 16 bytes apart


def test_device_arrays_refuse_dtypes_and_sizes_they_cannot_hold():
    with pytest.raises(TypeError, match="unsupported dtype object"):
        hkrt.DeviceArray((64,), object)  # once moved raw object pointers through device memory
    with pytest.raises(TypeError, match="unsupported dtype int64"):
        hkrt.DeviceArray((64,), np.int64)
    with pytest.raises(hkrt.DeviceMemoryError, match="more than any device has"):
        hkrt.empty((2 ** 40, 2 ** 40))  # once "succeeded" with nbytes == 0 (int64 wrap-around)


def test_an_array_is_unusable_after_free():
    d = hkrt.asarray(np.ones((64, 64), np.float32))
    view = d.T
    d.free()
    for use in (d.numpy, view.numpy, lambda: d.copy_from(np.ones((64, 64), np.float32)),
                lambda: hkrt.gemm(d.numpy(), np.ones((64, 64), np.float32))):
        with pytest.raises(ValueError, match="was freed"):
            use()
    with pytest.raises(ValueError, match="view"):
        hkrt.asarray(np.ones((4, 4), np.float32)).T.free()


def test_scalars_beyond_float32_are_value_errors():
    a = np.ones((64, 64), np.float32)
    with pytest.raises(ValueError, match="alpha=1e\\+39 is outside float32's range"):
        hkrt.gemm(a, a, alpha=1e39)  # once an OverflowError from argument packing


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
