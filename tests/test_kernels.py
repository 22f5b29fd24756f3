"""Every GEMM kernel variant on the emulator, launched directly, in strict hazard mode.

Inputs are fresh random bf16 each run, outputs are poisoned with NaN before the launch, and results
are compared with float64 numpy within the one error bound of hkrt.reference.expected() (derived there:
ceil(K/32) fp32 roundings of the MFMA's exact products, the fused epilogue's fp32 roundings, the
hardware exp and reciprocal of gelu and silu, the bf16 output's rounding).
The fast kernels take B as N x K with K a multiple of 8 (the runtime repacks other operands on the
device; test_kernels_runtime covers that path), so K here is a multiple of 8 for them.
"""
import numpy as np
import pytest

from hkrt.manifest import ACTIVATION_CODES
from hkrt.reference import expected
from kernel_harness import (ACT_CODES, BF16, EmuMachine, assert_close, bf16_operands, check_variant, launch_info,
                            out_dtype, run_variant, variants)

# (M, N, K): single element, short-wide, tall-skinny, primes for M and N, exact tiles, every dimension
# one past a tile multiple, K equal to one 16-byte chunk.
FAST_SHAPES = [(1, 1, 8), (1, 300, 64), (300, 1, 64), (37, 53, 136), (256, 256, 64), (257, 257, 264),
               (130, 70, 8)]
BASIC_SHAPES = [(1, 1, 1), (7, 13, 1), (37, 53, 131), (65, 65, 33), (1, 200, 17), (130, 3, 64)]


@pytest.mark.parametrize("shape", FAST_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", variants("pingpong") + variants("pingpong_m128") + variants("interleave"))
def test_pingpong_and_interleave(variant, shape):
    m, n, k = shape
    a, b = bf16_operands(m, n, k)
    got, _ = run_variant(EmuMachine(), variant, a, b)
    check_variant(got, variant, a, b)


FUSED = [v for v in variants("pingpong") + variants("producer_consumer") + variants("small") + variants("small_m128")
         if launch_info(v)["epilogue"] in ("alpha_beta_bias_act", "split_k_fused")]


@pytest.mark.parametrize("act", sorted(ACT_CODES))
@pytest.mark.parametrize("shape", [(1, 1, 8), (37, 53, 136), (129, 257, 72), (200, 30, 64)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", FUSED)
def test_fused_epilogue(variant, shape, act):
    m, n, k = shape
    a, b = bf16_operands(m, n, k)
    rng = np.random.default_rng()
    cin, bias = rng.standard_normal((m, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    alpha, beta = float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2))
    got, _ = run_variant(EmuMachine(), variant, a, b, c=cin, bias=bias, alpha=alpha, beta=beta, act=act)
    check_variant(got, variant, a, b, c=cin, bias=bias, alpha=alpha, beta=beta, activation=ACT_CODES[act])


@pytest.mark.parametrize("variant", FUSED)
def test_fused_epilogue_without_cin_or_bias(variant):
    """Null Cin and bias pointers read as zeros (a zero-sized buffer)."""
    m, n, k = 70, 90, 64
    a, b = bf16_operands(m, n, k)
    got, _ = run_variant(EmuMachine(), variant, a, b, alpha=2.0, beta=5.0)
    check_variant(got, variant, a, b, alpha=2.0, beta=5.0, c=np.zeros((m, n)), bias=np.zeros(n))


# The last block sums a wave's accumulator rows below M in groups of splits (gemm_small.hip, Partials::sum):
# 1 to 4 rows per wave (M = 1, 5: one; 90 in its second 64 rows: two; 40: three; 70, 128: four; the 128-row
# kernel's second wave row: none at M = 1, 5 and 40, one at 70), splits that fill their last group or not,
# and an odd or even number of groups.
@pytest.mark.parametrize("splits", [1, 3, 8, 11])
@pytest.mark.parametrize("shape", [(1, 1, 8), (1, 300, 1024), (70, 129, 520), (128, 64, 8), (5, 7, 64),
                                   (40, 130, 520), (90, 70, 264)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", variants("small") + variants("small_m128"))
def test_small_sums_its_splits_in_the_launch(variant, shape, splits):
    """Every split count (more splits than K tiles too: the extra blocks add zeros), with an epilogue: the
    tile's last block sums the splits and leaves the counters at zero (run_variant checks)."""
    m, n, k = shape
    a, b = bf16_operands(m, n, k)
    rng = np.random.default_rng()
    cin, bias = rng.standard_normal((m, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    got, _ = run_variant(EmuMachine(), variant, a, b, splits=splits, c=cin, bias=bias, alpha=0.75, beta=-1.5, act=3)
    check_variant(got, variant, a, b, c=cin, bias=bias, alpha=0.75, beta=-1.5, activation="silu")


# The split-K kernels store a plain product (no Cin, no bias, alpha 1, no activation) without the epilogue's
# code; each case one step from plain must still take the epilogue.
NEAR_PLAIN = {"plain": {}, "alpha": {"alpha": -0.5}, "bias": {"bias": True}, "relu": {"act": 1},
              "beta without Cin": {"beta": 3.0}}


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("case", sorted(NEAR_PLAIN))
@pytest.mark.parametrize("variant", variants("small") + variants("small_m128"))
def test_small_plain_product_and_the_epilogues_next_to_it(variant, case, splits):
    m, n, k = 150, 70, 136  # whole 64- and 128-row tiles, and a last one cut at M
    a, b = bf16_operands(m, n, k)
    kw = dict(NEAR_PLAIN[case])
    bias = np.random.default_rng().standard_normal(n).astype(np.float32) if kw.pop("bias", False) else None
    act = kw.pop("act", 0)
    got, _ = run_variant(EmuMachine(), variant, a, b, splits=splits, bias=bias, act=act, **kw)
    check_variant(got, variant, a, b, bias=bias, activation=ACT_CODES[act], alpha=kw.get("alpha", 1.0),
                  what=f"{case}, {splits} splits")


@pytest.mark.parametrize("variant", variants("small") + variants("small_m128"))
def test_small_ignores_counts_other_epochs_left(variant):
    """Counter words left by earlier launches (any smaller epoch, any count, e.g. a launch that ended
    part-way) count as no arrivals: the sums are right and every word ends at this launch's full count."""
    m, n, k, splits = 70, 300, 1024, 5
    a, b = bf16_operands(m, n, k)
    rng = np.random.default_rng()
    tiles = -(-m // launch_info(variant)["tile"]["m"]) * -(-n // 128)
    epoch = int(rng.integers(2, 1 << 32))
    stale = rng.integers(0, epoch, tiles, dtype=np.uint64)
    words = stale << np.uint64(32) | rng.integers(0, splits + 3, tiles, dtype=np.uint64)
    words[0] = np.uint64((epoch - 1) << 32 | (splits - 1))   # one arrival short of "last" in the previous epoch
    got, _ = run_variant(EmuMachine(), variant, a, b, splits=splits, counters=words, epoch=epoch)
    check_variant(got, variant, a, b)


@pytest.mark.parametrize("shape", BASIC_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", variants("basic"))
def test_basic_any_shape(variant, shape):
    m, n, k = shape
    a, b_nk = bf16_operands(m, n, k)
    got, _ = run_variant(EmuMachine(), variant, a, b_nk)
    check_variant(got, variant, a, b_nk)


@pytest.mark.parametrize("variant", variants("pingpong")[:1] + variants("pingpong_m128")[:1] + variants("interleave")[:1]
                         + variants("small") + variants("basic")[:1])
def test_the_bound_holds_under_the_cdna3_mfma_model(variant):
    """The shared tolerance is derived for both MFMA accumulation models (hkrt/reference.py). The chunked one
    truncates every product toward zero: with all-positive inputs over a long K its error is one-sided and
    adds up, the worst case for the bound; and inputs spread over 2^12 make the truncations large."""
    rng = np.random.default_rng()
    m, n, k = 40, 72, 2048
    changed = False
    for a, b in ((np.abs(rng.standard_normal((m, k))), np.abs(rng.standard_normal((n, k)))),
                 (rng.standard_normal((m, k)) * 2.0 ** rng.integers(-6, 6, (m, k)),
                  rng.standard_normal((n, k)) * 2.0 ** rng.integers(-6, 6, (n, k)))):
        a, b = a.astype(BF16), b.astype(BF16)
        exact, _ = run_variant(EmuMachine(), variant, a, b)
        chunked, _ = run_variant(EmuMachine(mfma="cdna3"), variant, a, b)
        check_variant(chunked, variant, a, b)
        changed |= not np.array_equal(chunked, exact)
    if out_dtype(variant) == np.float32:  # a bf16 result's rounding may hide the difference
        assert changed, "the cdna3 model changed nothing"


@pytest.mark.parametrize("transpose", [0, 1])
@pytest.mark.parametrize("shape", [(1, 1), (70, 130), (129, 64), (3, 200)], ids=lambda s: "x".join(map(str, s)))
def test_repack_transposes_and_zero_pads(shape, transpose):
    rows, cols = shape
    x = np.random.default_rng().standard_normal((rows, cols)).astype(BF16)
    src = x.T if transpose else x
    dst_rows, dst_cols = src.shape[0], -(-src.shape[1] // 8) * 8 + 8
    dev = EmuMachine()
    dd = dev.poisoned((dst_rows, dst_cols), BF16)
    dev.launch("repack_bf16", (-(-dst_cols // 64), -(-dst_rows // 64), 1), "<QQiiiiiiiqq", dev.put(x), dd, rows, cols,
               cols, dst_rows, dst_cols, dst_cols, transpose, 0, 0)
    expect = np.zeros((dst_rows, dst_cols), BF16)
    expect[:, :src.shape[1]] = src
    np.testing.assert_array_equal(dev.get(dd, (dst_rows, dst_cols), BF16), expect)


FAST = ["pingpong", "interleave", "producer_consumer", "small", "small_m128"]


@pytest.mark.parametrize("family", FAST)
def test_random_wave_interleavings(family):
    """Seeded interleavings run waves in random order and random quanta: a stage refilled before every
    wave finished reading it, or read before its loads landed, shows up as wrong results."""
    m, n, k = 100, 300, 200  # four K tiles: both stages are filled and reused
    a, b = bf16_operands(m, n, k)
    variant = variants(family)[0]
    for seed in (1, 2, 3):
        got, _ = run_variant(EmuMachine(seed=seed), variant, a, b)
        check_variant(got, variant, a, b, what=f"seed {seed}")


@pytest.mark.parametrize("family", ["pingpong", "pingpong_m128", "producer_consumer"])
def test_large_grids_cover_every_tile_once(family):
    """27 tiles: xcd_remap spreads them over 8 XCDs and grouped_tile walks groups of 8 tile-rows; a tile
    computed twice or never shows up (poisoned NaN or wrong values)."""
    variant = variants(family)[0]
    tile = launch_info(variant)["tile"]
    m, n, k = 9 * tile["m"] - 5, 3 * tile["n"] - 7, 8
    a, b = bf16_operands(m, n, k)
    got, _ = run_variant(EmuMachine(), variant, a, b)
    check_variant(got, variant, a, b)


def test_the_direct_check_can_fail():
    """check_variant rejects a result with the last K term missing, or with one element off by 1%."""
    m, n, k = 40, 70, 72
    a, b = bf16_operands(m, n, k)
    variant = variants("pingpong")[0]
    got, _ = run_variant(EmuMachine(), variant, a, b)
    check_variant(got, variant, a, b)
    dropped = (a[:, :-1].astype(np.float64) @ b[:, :-1].astype(np.float64).T).astype(got.dtype)
    with pytest.raises(AssertionError, match="outside the error bound"):
        check_variant(dropped, variant, a, b)
    off = got.copy()
    i, j = np.unravel_index(np.argmax(np.abs(got.astype(np.float64))), got.shape)
    off[i, j] = off[i, j] * 1.01
    with pytest.raises(AssertionError, match="outside the error bound"):
        check_variant(off, variant, a, b)


@pytest.mark.parametrize("act", [1, 2, 3], ids=["relu", "gelu", "silu"])
@pytest.mark.parametrize("variant", FUSED)
def test_fused_activations_at_extreme_values(variant, act):
    """The activations where their exp overflows or underflows (|x| of 9 to 1e30), at +-inf and NaN (a bias
    of these values): finite results within the bound, the rest as numpy's formula gives them (gelu(inf) =
    inf, gelu(-inf) = NaN, silu(-inf) = NaN, relu(-inf) = 0)."""
    m, n, k = 40, 128, 64
    a, b = bf16_operands(m, n, k)
    special = np.array([np.inf, -np.inf, np.nan, 100, -100, 1e30, -1e30, 30, -30, 9, -9, 0.5, -0.5, 0, 4, -4],
                       np.float32)
    bias = np.resize(special, n)
    got, _ = run_variant(EmuMachine(), variant, a, b, bias=bias, act=act)
    with np.errstate(all="ignore"):
        ref, tol = expected(a, b, b_nk=True, out_dtype=out_dtype(variant), bias=bias, activation=ACT_CODES[act])
    g = got.astype(np.float64)
    finite = np.isfinite(ref)
    assert_close(np.where(finite, g, 0), np.where(finite, ref, 0), np.where(finite, tol, 0), ACT_CODES[act])
    assert np.array_equal(g[~finite], ref[~finite], equal_nan=True), (g[~finite][:8], ref[~finite][:8])


STREAM_K_CASES = [  # (M, N, K, blocks): tiles, K tiles, and how the blocks cut them
    ((256, 256, 64), 2),      # one tile, one K tile: one block gets nothing, the other the whole tile
    ((300, 600, 200), 12),    # 6 tiles, each cut in two, a K tail
    ((513, 700, 1000), 12),   # 9 tiles over 12 blocks: ranges of 12 of 16 K tiles, every tile cut in two
    ((700, 300, 1112), 4),    # 6 tiles: a whole round of 4, then 2 tiles shared out by 4 blocks
    ((700, 600, 200), 3),     # 9 tiles, three whole rounds and nothing shared: a persistent grid, no slots
    ((512, 512, 136), 2),     # 4 tiles, two whole rounds, a K tail
    ((768, 1792, 256), 16),   # 21 tiles: a whole round of 16, then 5 tiles shared by 10 of the 16 blocks
    ((768, 768, 1496), 4),    # 9 tiles of 24 K tiles: one whole round, not two, then 5 shared by 4 (a K tail)
    ((1, 1, 8), 2),
    ((37, 53, 136), 2),
]


PLAIN_STREAM_K = [v for v in variants("stream_k") if launch_info(v)["epilogue"] == "stream_k"]
FUSED_STREAM_K = [v for v in variants("stream_k") if launch_info(v)["epilogue"] == "stream_k_fused"]


@pytest.mark.parametrize("case", STREAM_K_CASES, ids=lambda c: "x".join(map(str, c[0])) + f"-{c[1]}blocks")
@pytest.mark.parametrize("variant", PLAIN_STREAM_K)
def test_stream_k_finishes_cut_tiles_in_the_launch(variant, case):
    """Whole rounds of tiles, then the tiles left shared out over the blocks: a tile cut between two blocks is
    finished by the second to arrive from the other's partial (run_variant checks the counters)."""
    (m, n, k), blocks = case
    a, b = bf16_operands(m, n, k)
    got, _ = run_variant(EmuMachine(), variant, a, b, blocks=blocks)
    check_variant(got, variant, a, b, splits=2)


@pytest.mark.parametrize("variant", PLAIN_STREAM_K)
def test_stream_k_skips_the_partial_of_a_block_that_finds_the_other_arrived(variant):
    """Blocks run one after another here: a block ending its range on a cut tile's first K tiles, whose other
    block (which began its range with the tile's last ones) is done already, adds that block's partial
    without storing its own, so fewer slots than two per cut tile are written. 9 tiles over 12 blocks, 12
    of 16 K tiles each: every tile cut in two, most blocks' ranges over two tiles."""
    m, n, k, blocks = 513, 700, 1000, 12
    a, b = bf16_operands(m, n, k)
    partials = []
    got, _ = run_variant(EmuMachine(), variant, a, b, blocks=blocks, partials=partials)
    check_variant(got, variant, a, b, splits=2)
    written = int((~np.isnan(partials[0][0])).any(axis=1).sum())
    assert 9 <= written < 2 * 9, f"{written} partial slots written for 9 cut tiles"


@pytest.mark.parametrize("case", [((512, 512, 512), 8), ((513, 700, 1000), 12)],
                         ids=["halves-that-tie", "ranges-over-two-tiles"])
@pytest.mark.parametrize("variant", PLAIN_STREAM_K)
def test_stream_k_with_blocks_side_by_side_on_the_timing_model(variant, case):
    """On the timing model every block runs at once, so the two blocks of a cut tile can arrive together
    (each finding the other absent, both storing) or one long after the other (its partial skipped): the
    sums and counters come out right either way."""
    (m, n, k), blocks = case
    a, b = bf16_operands(m, n, k)
    got, _ = run_variant(EmuMachine(model="mi355x"), variant, a, b, blocks=blocks)
    check_variant(got, variant, a, b, splits=2)


@pytest.mark.parametrize("variant", PLAIN_STREAM_K)
def test_stream_k_under_random_wave_interleavings_and_stale_counters(variant):
    """Seeded wave interleavings in strict mode, counter words left by smaller epochs (a launch that ended
    part-way) counting as no arrivals, and a batch of two products."""
    m, n, k, blocks = 300, 600, 200, 12
    rng = np.random.default_rng()
    for seed in (1, 2):
        a, b = bf16_operands(m, n, k)
        epoch = int(rng.integers(2, 1 << 32))
        words = rng.integers(0, epoch, 2 * 6, dtype=np.uint64) << np.uint64(32) | np.uint64(1)
        batch_a = np.stack([a, bf16_operands(m, n, k)[0]])
        got, _ = run_variant(EmuMachine(seed=seed), variant, batch_a, np.stack([b, b]), blocks=blocks,
                             counters=words, epoch=epoch)
        for i in range(2):
            check_variant(got[i], variant, batch_a[i], b, splits=2, what=f"seed {seed}, product {i}")


def form_of(variant) -> tuple[int, bool]:
    """A fused stream-K variant's compiled-in epilogue: (act code, whether it reads Cin)."""
    form = launch_info(variant)["form"]
    return ACTIVATION_CODES[form["activation"]], form["reads_c"]


def random_epilogue(variant, m, n, batch=None):
    rng = np.random.default_rng()
    act, reads_c = form_of(variant)
    shape = (batch, m, n) if batch else (m, n)
    return dict(c=rng.standard_normal(shape).astype(np.float32) if reads_c else None,
                bias=rng.standard_normal(n).astype(np.float32), alpha=float(rng.uniform(-2, 2)),
                beta=float(rng.uniform(-2, 2)) if reads_c else 0.0, act=act)


def reference_kw(ep: dict) -> dict:
    return dict(c=ep["c"], bias=ep["bias"], alpha=ep["alpha"], beta=ep["beta"], activation=ACT_CODES[ep["act"]])


# cut tiles with a K tail, a whole round then tiles shared out, a persistent grid, and an edge tile alone
FUSED_STREAM_K_CASES = [STREAM_K_CASES[i] for i in (1, 3, 4, 9)]


@pytest.mark.parametrize("case", FUSED_STREAM_K_CASES, ids=lambda c: "x".join(map(str, c[0])) + f"-{c[1]}blocks")
@pytest.mark.parametrize("variant", FUSED_STREAM_K)
def test_fused_stream_k_applies_its_epilogue(variant, case):
    """The epilogue compiled into a stream-K variant, on whole-round tiles and on cut tiles (applied once, by
    the block that sums the two partials), with random alpha, bias and (where it reads one) beta and Cin."""
    (m, n, k), blocks = case
    a, b = bf16_operands(m, n, k)
    ep = random_epilogue(variant, m, n)
    got, _ = run_variant(EmuMachine(), variant, a, b, blocks=blocks, **ep)
    check_variant(got, variant, a, b, splits=2, **reference_kw(ep))


@pytest.mark.parametrize("variant", [v for v in FUSED_STREAM_K if form_of(v)[0] != 0])
def test_fused_stream_k_activation_at_extreme_values(variant):
    """Its activation where exp overflows or underflows, at +-inf and NaN, as the data-parallel kernels'."""
    m, n, k, blocks = 300, 600, 200, 12
    a, b = bf16_operands(m, n, k)
    special = np.array([np.inf, -np.inf, np.nan, 100, -100, 1e30, -1e30, 30, -30, 9, -9, 0.5, -0.5, 0, 4, -4],
                       np.float32)
    act, reads_c = form_of(variant)
    ep = dict(bias=np.resize(special, n), act=act, c=np.zeros((m, n), np.float32) if reads_c else None,
              beta=1.0 if reads_c else 0.0)
    got, _ = run_variant(EmuMachine(), variant, a, b, blocks=blocks, **ep)
    with np.errstate(all="ignore"):
        ref, tol = expected(a, b, b_nk=True, out_dtype=out_dtype(variant), c=ep["c"], beta=ep["beta"],
                            bias=ep["bias"], activation=ACT_CODES[act])
    g = got.astype(np.float64)
    finite = np.isfinite(ref)
    assert_close(np.where(finite, g, 0), np.where(finite, ref, 0), np.where(finite, tol, 0), ACT_CODES[act])
    assert np.array_equal(g[~finite], ref[~finite], equal_nan=True), (g[~finite][:8], ref[~finite][:8])


@pytest.mark.parametrize("variant", FUSED_STREAM_K)
def test_fused_stream_k_batch_under_random_wave_interleavings(variant):
    """A batch of two products with a Cin per product (where it reads one), seeded wave interleavings."""
    m, n, k, blocks = 300, 600, 200, 12
    a = np.stack([bf16_operands(m, n, k)[0] for _ in range(2)])
    b = bf16_operands(m, n, k)[1]
    ep = random_epilogue(variant, m, n, batch=2)
    got, _ = run_variant(EmuMachine(seed=3), variant, a, np.stack([b, b]), blocks=blocks, **ep)
    for i in range(2):
        kw = reference_kw(ep)
        kw["c"] = None if ep["c"] is None else ep["c"][i]
        check_variant(got[i], variant, a[i], b, splits=2, what=f"product {i}", **kw)
