"""Every GEMM kernel variant on the emulator, launched directly, in strict hazard mode.

Inputs are fresh random bf16 each run, outputs are poisoned with NaN before the launch, and results
are compared with float64 numpy. Tolerance (see test_emu_kernels.py for the derivation): the MFMA
rounds exact products to fp32 once per 32-deep step, so the error is at most ceil(K/32) * 2^-24 *
sum|a b| per element; a bf16 output adds 2^-8 |C|; the fused activations use the hardware's
approximate exp and reciprocal (about 1 ulp each, so a few 2^-23 relative). Twice the bound is allowed.
The fast kernels take B as N x K with K a multiple of 8 (the runtime repacks other operands on the
device; test_kernels_runtime covers that path), so K here is a multiple of 8 for them.
"""
import math
import struct

import ml_dtypes
import numpy as np
import pytest

from hkrt import manifest as mf
from hkrt.emu.machine import Machine

BF16 = ml_dtypes.bfloat16
ACTS = {0: lambda x: x, 1: lambda x: np.maximum(x, 0),
        2: lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3))),
        3: lambda x: x / (1 + np.exp(-x))}

# (M, N, K): single element, short-wide, tall-skinny, primes for M and N, exact tiles, every dimension
# one past a tile multiple, K equal to one 16-byte chunk.
FAST_SHAPES = [(1, 1, 8), (1, 300, 64), (300, 1, 64), (37, 53, 136), (256, 256, 64), (257, 257, 264),
               (130, 70, 8)]
BASIC_SHAPES = [(1, 1, 1), (7, 13, 1), (37, 53, 131), (65, 65, 33), (1, 200, 17), (130, 3, 64)]


def variants(strategy):
    return sorted(n for n, e in mf.load()["kernels"].items() if e["launch"]["strategy"] == strategy)


class Emu:
    def __init__(self, seed=None):
        self.m = Machine(1 << 30, strict=True, seed=seed)

    def put(self, x):
        x = np.ascontiguousarray(x)
        addr = self.m.memory.alloc(max(x.nbytes, 1))
        self.m.memory.view(addr, x.nbytes)[:] = x.tobytes()
        return addr

    def get(self, addr, shape, dtype):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(bytes(self.m.memory.view(addr, n)), dtype).reshape(shape)

    def launch(self, variant, grid, args_fmt, *args):
        e = mf.load()["kernels"][variant]
        mod = self.m.load((mf.arch_dir() / e["code_object"]).read_bytes())
        self.m.launch(mod, e["symbol"], grid, (e["launch"]["threads"], 1, 1), e["launch"]["dynamic_lds"],
                      struct.pack(args_fmt, *args))
        return e


def operands(m, n, k):
    rng = np.random.default_rng()
    return rng.standard_normal((m, k)).astype(BF16), rng.standard_normal((n, k)).astype(BF16)


def product(a, b_nk):
    a64, b64 = a.astype(np.float64), b_nk.astype(np.float64)
    return a64 @ b64.T, np.abs(a64) @ np.abs(b64).T


def check(c, ref, absum, k, bf16_out, extra_rel=0.0):
    tol = 2 * (math.ceil(max(k, 1) / 32) * 2.0**-24 * absum + (2.0**-8 if bf16_out else 0) * np.abs(ref)
               + extra_rel * np.abs(ref)) + 1e-30
    c = c.astype(np.float64)
    assert not np.isnan(c).any(), f"{np.isnan(c).sum()} outputs never written"
    bad = np.abs(c - ref) > tol
    assert not bad.any(), f"{bad.sum()} of {c.size} off; worst {np.abs(c - ref).max():.3g}"


def out_dtype(variant):
    return np.float32 if mf.load()["kernels"][variant]["launch"]["dtypes"]["c"] == "f32" else BF16


@pytest.mark.parametrize("shape", FAST_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", variants("pingpong") + variants("interleave"))
def test_pingpong_and_interleave(variant, shape):
    m, n, k = shape
    a, b = operands(m, n, k)
    dev = Emu()
    dt = out_dtype(variant)
    dc = dev.put(np.full((m, n), np.nan, dt))
    tiles = -(-m // 256) * -(-n // 256)
    dev.launch(variant, (tiles, 1, 1), "<QQQiiiiii", dev.put(a), dev.put(b), dc, m, n, k, k, k, n)
    ref, absum = product(a, b)
    check(dev.get(dc, (m, n), dt), ref, absum, k, dt is BF16)


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("shape", [(1, 1, 8), (37, 53, 136), (129, 257, 72), (200, 30, 64)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", variants("producer_consumer"))
def test_producer_consumer_fused_epilogue(variant, shape, act):
    m, n, k = shape
    a, b = operands(m, n, k)
    rng = np.random.default_rng()
    cin, bias = rng.standard_normal((m, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    alpha, beta = float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2))
    dev = Emu()
    dt = out_dtype(variant)
    dc = dev.put(np.full((m, n), np.nan, dt))
    tiles = -(-m // 128) * -(-n // 256)
    dev.launch(variant, (tiles, 1, 1), "<QQQiiiiiiQQffii", dev.put(a), dev.put(b), dc, m, n, k, k, k, n,
               dev.put(cin), dev.put(bias), alpha, beta, act, n)
    ref, absum = product(a, b)
    pre = alpha * ref + beta * cin.astype(np.float64) + bias
    expect = ACTS[act](pre)
    # error before the activation: |alpha| times the product's, plus fp32 rounding of the sum; the
    # activations' slopes are at most ~1.13, and exp/rcp add a few ulps
    scale = abs(alpha) * absum + np.abs(beta * cin) + np.abs(bias) + np.abs(pre)
    check(dev.get(dc, (m, n), dt), expect, 1.2 * scale, k, dt is BF16, extra_rel=0.0 if act in (0, 1) else 2.0**-20)


def test_producer_consumer_without_cin_or_bias():
    """Null Cin and bias pointers read as zeros (a zero-sized buffer)."""
    m, n, k = 70, 90, 64
    a, b = operands(m, n, k)
    dev = Emu()
    variant = variants("producer_consumer")[0]
    dt = out_dtype(variant)
    dc = dev.put(np.full((m, n), np.nan, dt))
    dev.launch(variant, (1, 1, 1), "<QQQiiiiiiQQffii", dev.put(a), dev.put(b), dc, m, n, k, k, k, n, 0, 0,
               2.0, 5.0, 0, n)
    ref, absum = product(a, b)
    check(dev.get(dc, (m, n), dt), 2 * ref, 2 * absum, k, dt is BF16)


@pytest.mark.parametrize("splits", [1, 3, 8])
@pytest.mark.parametrize("shape", [(1, 1, 8), (1, 300, 1024), (70, 129, 520), (128, 64, 8), (5, 7, 64)],
                         ids=lambda s: "x".join(map(str, s)))
def test_small_split_k_partials_sum_to_the_product(shape, splits):
    m, n, k = shape
    a, b = operands(m, n, k)
    dev = Emu()
    dw = dev.put(np.full((splits, m, n), np.nan, np.float32))
    tiles = -(-m // 64) * -(-n // 128)
    dev.launch("gemm_small_nk_f32", (tiles, 1, splits), "<QQQiiiii", dev.put(a), dev.put(b), dw, m, n, k, k, k)
    parts = dev.get(dw, (splits, m, n), np.float32).astype(np.float64)
    ref, absum = product(a, b)
    check(parts.sum(axis=0), ref, absum * (1 + splits * 2.0**-20), k + 32 * splits, False)


@pytest.mark.parametrize("shape", BASIC_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", variants("basic"))
def test_basic_any_shape(variant, shape):
    m, n, k = shape
    a, b_nk = operands(m, n, k)
    kn = "_kn_" in variant
    stored, ldb = (np.ascontiguousarray(b_nk.T), n) if kn else (b_nk, k)
    dev = Emu()
    dt = out_dtype(variant)
    dc = dev.put(np.full((m, n), np.nan, dt))
    dev.launch(variant, (-(-n // 64), -(-m // 64), 1), "<QQQiiiiii", dev.put(a), dev.put(stored), dc, m, n, k, k,
               ldb, n)
    ref, absum = product(a, b_nk)
    check(dev.get(dc, (m, n), dt), ref, absum, k, dt is BF16)


@pytest.mark.parametrize("transpose", [0, 1])
@pytest.mark.parametrize("shape", [(1, 1), (70, 130), (129, 64), (3, 200)], ids=lambda s: "x".join(map(str, s)))
def test_repack_transposes_and_zero_pads(shape, transpose):
    rows, cols = shape
    x = np.random.default_rng().standard_normal((rows, cols)).astype(BF16)
    src = x.T if transpose else x
    dst_rows, dst_cols = src.shape[0], -(-src.shape[1] // 8) * 8 + 8
    dev = Emu()
    dd = dev.put(np.full((dst_rows, dst_cols), np.nan, BF16))
    dev.launch("repack_bf16", (-(-dst_cols // 64), -(-dst_rows // 64), 1), "<QQiiiiiii", dev.put(x), dd, rows, cols,
               cols, dst_rows, dst_cols, dst_cols, transpose)
    expect = np.zeros((dst_rows, dst_cols), BF16)
    expect[:, :src.shape[1]] = src
    np.testing.assert_array_equal(dev.get(dd, (dst_rows, dst_cols), BF16), expect)


def launch_family(dev, variant, a, b, m, n, k, dt):
    """Launch any GEMM variant of a fast family with a poisoned output; returns (output, partial-sum count)."""
    la = mf.load()["kernels"][variant]["launch"]
    tiles = -(-m // la["tile"]["m"]) * -(-n // la["tile"]["n"])
    if la["strategy"] == "small":
        splits = 3
        dw = dev.put(np.full((splits, m, n), np.nan, np.float32))
        dev.launch(variant, (tiles, 1, splits), "<QQQiiiii", dev.put(a), dev.put(b), dw, m, n, k, k, k)
        return dev.get(dw, (splits, m, n), np.float32).astype(np.float64).sum(axis=0), splits
    dc = dev.put(np.full((m, n), np.nan, dt))
    if la["epilogue"] == "alpha_beta_bias_act":  # identity epilogue
        dev.launch(variant, (tiles, 1, 1), "<QQQiiiiiiQQffii", dev.put(a), dev.put(b), dc, m, n, k, k, k, n, 0, 0,
                   1.0, 0.0, 0, n)
    else:
        dev.launch(variant, (tiles, 1, 1), "<QQQiiiiii", dev.put(a), dev.put(b), dc, m, n, k, k, k, n)
    return dev.get(dc, (m, n), dt), 1


FAST = ["pingpong", "interleave", "producer_consumer", "small"]


@pytest.mark.parametrize("family", FAST)
def test_random_wave_interleavings(family):
    """Seeded interleavings run waves in random order and random quanta: a stage refilled before every
    wave finished reading it, or read before its loads landed, shows up as wrong results."""
    m, n, k = 100, 300, 200  # four K tiles: both stages are filled and reused
    a, b = operands(m, n, k)
    ref, absum = product(a, b)
    variant = variants(family)[0]
    dt = out_dtype(variant)
    for seed in (1, 2, 3):
        got, parts = launch_family(Emu(seed=seed), variant, a, b, m, n, k, dt)
        check(got, ref, absum, k + 32 * parts, dt is BF16)


@pytest.mark.parametrize("family", ["pingpong", "producer_consumer"])
def test_large_grids_cover_every_tile_once(family):
    """27 tiles: xcd_remap spreads them over 8 XCDs and grouped_tile walks groups of 8 tile-rows; a tile
    computed twice or never shows up (poisoned NaN or wrong values)."""
    variant = variants(family)[0]
    la = mf.load()["kernels"][variant]["launch"]["tile"]
    m, n, k = 9 * la["m"] - 5, 3 * la["n"] - 7, 8
    a, b = operands(m, n, k)
    dt = out_dtype(variant)
    got, _ = launch_family(Emu(), variant, a, b, m, n, k, dt)
    ref, absum = product(a, b)
    check(got, ref, absum, k, dt is BF16)
