"""hkrt.strategy: the shape -> kernel table, on the built manifest and a fake device (no emulator)."""
from __future__ import annotations

import pytest

from hkrt import strategy

from fake_driver import fake_device


def family(dev, m, n, k, epilogue=False, **kw):
    return strategy.choose(dev, m, n, k, b_layout="nk", out="bf16", epilogue=epilogue, fast_ok=True, **kw).family


def test_the_device_s_compute_units_decide_what_is_small():
    """1024^3 is 16 tiles of 256 x 256: too few for 256 CUs (small, split-K) and for a 64-CU part; 2048 x 1024 x
    1024 (32) is enough for unsplit 128x128 tiles on that part, 2048^3 (64) fills it with 256-row tiles, and
    4096x2048x2048 (128) fills half of the big one.
    The table once assumed 256 CUs whatever the device reported."""
    big, part = fake_device(compute_units=256), fake_device(compute_units=64)
    assert family(big, 1024, 1024, 1024) == "small"
    assert family(part, 1024, 1024, 1024) == "small"
    assert family(part, 2048, 1024, 1024, epilogue=True) == "small_m128"
    assert family(big, 4096, 2048, 2048, epilogue=True) == "small_m128"
    assert family(big, 4096, 2048, 2048) == "stream_k"
    assert family(big, 4096, 4096, 4096) == "pingpong" and family(part, 2048, 2048, 2048) == "pingpong"
    assert family(part, 2048, 2048, 2048) == "pingpong"
    tiles = strategy.choose(big, 64, 2048, 4096, b_layout="nk", out="f32", epilogue=False, fast_ok=True)
    few = strategy.choose(part, 64, 2048, 4096, b_layout="nk", out="f32", epilogue=False, fast_ok=True)
    assert tiles.splits > few.splits >= 1                   # split-K fills the CUs the device has


def test_rules_in_order_and_the_fallback():
    dev = fake_device(compute_units=256)
    # two or more whole rounds of 256x256 tiles: the stream-K kernel, nothing shared, as a persistent grid
    # (8192^3: 0.6591 ms against pingpong's 0.6648; 4096x16384x1024 0.1012 against 0.1068); one round stays
    assert family(dev, 8192, 8192, 8192) == "stream_k" and family(dev, 4096, 8192, 1024) == "stream_k"
    assert family(dev, 4096, 4096, 4096) == "pingpong" and family(dev, 8192, 8192, 8192, epilogue=True) == "pingpong"
    assert family(dev, 8192, 8192, 8192, batch=2) == "pingpong"
    persistent = strategy.choose(dev, 8192, 8192, 8192, b_layout="nk", out="bf16", epilogue=False, fast_ok=True)
    assert persistent.blocks == 256
    # past the kernel's 32-bit range arithmetic (2^33 shared iterations) the data-parallel kernel runs
    assert family(dev, 256, 255 * 256 + 256 * 256, 1 << 23) == "pingpong"
    # 128 tiles of 256x256: stream-K over 256 blocks (0.0587 ms, small_m128 0.0628); with an epilogue 128x128
    # tiles two per CU, 0.0699 (the fused pingpong 0.105)
    assert family(dev, 2048, 4096, 4096) == "stream_k"
    assert family(dev, 2048, 4096, 4096, epilogue=True) == "small_m128"
    # a part-empty last round: stream-K (448 tiles: 0.1680 ms, pingpong 0.1749), but not for a batch
    assert family(dev, 2048, 14336, 4096) == "stream_k" and family(dev, 2048, 14336, 4096, epilogue=True) == "pingpong"
    sk = strategy.choose(dev, 2048, 14336, 4096, b_layout="nk", out="bf16", epilogue=False, fast_ok=True)
    assert (sk.gemm, sk.blocks, sk.epilogue) == ("gemm_pingpong_sk_nk_bf16", 256, None)
    assert family(dev, 2048, 4096, 4096, batch=2) == "pingpong"
    # 16 K tiles: the pieces' fixed cost outweighs the round saved (0.0592 ms against pingpong's 0.0562),
    # unless the persistent grid saves block starts enough (7000^2 x 1000, 4 rounds: 0.0958 against 0.1082)
    assert family(dev, 5000, 5000, 1000) == "pingpong" and family(dev, 5000, 5000, 5000) == "stream_k"
    assert family(dev, 6912, 6912, 1024) == "pingpong" and family(dev, 7000, 7000, 1000) == "stream_k"
    # many rounds too (2048x128256x4096, 4008 tiles: 1.3286 ms, pingpong 1.3715); it once held every round
    # to the 236 blocks that could share the last tiles, and lost (1.442)
    assert family(dev, 2048, 128256, 4096) == "stream_k" and family(dev, 4096, 14336, 4096) == "stream_k"
    many = strategy.choose(dev, 2048, 128256, 4096, b_layout="nk", out="bf16", epilogue=False, fast_ok=True)
    assert (many.blocks, many.sharers) == (256, 252)
    unsplit = strategy.choose(dev, 2048, 4096, 4096, b_layout="nk", out="bf16", epilogue=True, fast_ok=True)
    assert unsplit.splits == 1 and unsplit.fused and unsplit.epilogue is None
    assert family(dev, 2048, 8192, 4096) == "pingpong"          # 256 tiles: 0.0896 ms, small_m128 0.124
    assert family(dev, 2048, 2048, 2048) == "small"            # 64 tiles: 0.0326 ms, pingpong_m128 0.0402
    assert family(dev, 2048, 2048, 2048, epilogue=True) == "small"  # 0.0357 ms, pingpong 0.0651
    assert family(dev, 1024, 1024, 1024) == "small"            # 16 tiles: 0.0155 ms, pingpong_m128 0.0240
    assert family(dev, 4096, 4096, 4096, epilogue=True) == "pingpong"
    fused = strategy.choose(dev, 4096, 4096, 4096, b_layout="nk", out="bf16", epilogue=True, fast_ok=True)
    assert fused.fused and fused.epilogue is None and fused.gemm == "gemm_pingpong_fused_nk_bf16"
    plain = strategy.choose(dev, 4096, 4096, 4096, b_layout="nk", out="bf16", epilogue=False, fast_ok=True)
    assert plain.gemm == "gemm_pingpong_nk_bf16"   # no epilogue code when none is asked (0.090 vs 0.099 ms)
    assert family(dev, 64, 4096, 4096, epilogue=True) == "small"
    # M in 65..128 on 128-row split-K tiles when they need at most 8 splits (64 tiles of 128 x 128)
    assert family(dev, 128, 14336, 4096) == family(dev, 96, 8192, 28672, epilogue=True) == "small_m128"
    assert family(dev, 128, 4096, 4096) == family(dev, 128, 6144, 4096) == family(dev, 64, 14336, 4096) == "small"
    one = strategy.choose(dev, 128, 8192, 28672, b_layout="nk", out="bf16", epilogue=True, fast_ok=True)
    assert one.gemm == "gemm_small_m128_nk_bf16" and one.splits == 8 and one.fused and one.epilogue is None
    plan = strategy.choose(dev, 100, 100, 100, b_layout="kn", out="bf16", epilogue=False, fast_ok=False,
                           why_not_fast="A is too big")
    assert plan.family == "basic" and "A is too big" in plan.reason


def test_a_batch_counts_all_its_tiles():
    """One launch runs the whole batch, so its tiles fill the device together: 16 x 1024^3 is 256 tiles
    (pingpong), and 64 x 256^3 gives split-K nothing to split: its 64 tiles of 256x256 go to the 128-row
    ping-pong (0.0121 ms, small's 0.0136). A batch that splits K stays small, with the splits counted over
    the batch."""
    dev = fake_device(compute_units=256)
    assert family(dev, 1024, 1024, 1024) == "small"
    assert family(dev, 1024, 1024, 1024, batch=16) == "pingpong"
    assert family(dev, 256, 256, 256, batch=64) == "pingpong_m128"
    assert family(dev, 16384, 256, 256) == "small"             # 64 tiles: 0.0108 ms, pingpong_m128 0.0119
    assert family(dev, 512, 512, 256, batch=32) == "pingpong_m128"   # 128 tiles
    assert family(dev, 64, 4096, 4096, batch=8) == "small"     # M <= 128
    one = strategy.choose(dev, 256, 1024, 8192, b_layout="nk", out="f32", epilogue=False, fast_ok=True)
    two = strategy.choose(dev, 256, 1024, 8192, b_layout="nk", out="f32", epilogue=False, fast_ok=True, batch=2)
    assert two.family == "small" and one.splits == 2 * two.splits == 16


def test_a_batch_with_an_epilogue_goes_to_the_split_k_kernels():
    """pingpong_m128 has no fused epilogue (it would run one as a second launch), so a batch with an epilogue
    and fewer 256x256 tiles than the CUs went to the fused ping-pong; the split-K kernels apply it in the
    same launch (mi355x model, bias + gelu: 64 x 256^3 small 0.0146 ms against pingpong's 0.0213, 8 x 1024^3
    small_m128 0.0299 against 0.0362). At 256 tiles (16 x 1024^3) pingpong stays (0.0422 against 0.0546)."""
    dev = fake_device(compute_units=256)
    assert family(dev, 256, 256, 256, epilogue=True, batch=64) == "small"
    assert family(dev, 256, 256, 256, epilogue=True, batch=16) == "small"
    assert family(dev, 512, 512, 512, epilogue=True, batch=32) == "small_m128"
    assert family(dev, 1024, 1024, 1024, epilogue=True, batch=8) == "small_m128"
    assert family(dev, 256, 256, 256, epilogue=True, batch=128) == "small_m128"
    assert family(dev, 1024, 1024, 1024, epilogue=True, batch=16) == "pingpong"
    assert family(dev, 256, 256, 256, batch=64) == "pingpong_m128"   # without one: unchanged
    one = strategy.choose(dev, 256, 256, 256, b_layout="nk", out="bf16", epilogue=True, fast_ok=True, batch=64)
    assert one.splits == 1 and one.fused


def test_split_k_blocks_are_held_to_the_residency_that_evens_the_last_round():
    """1 x 128256 x 4096 is 1002 blocks of gemm_small, 4 on most of 256 CUs: with the 3 its LDS allows, each CU
    ends on one block alone, which cannot keep its share of HBM busy (mi355x model: 0.1547 ms, against 0.1412
    held to 2 + 2). The launch asks for enough dynamic LDS that only 2 fit. 512 blocks (2 per CU) keep 3."""
    assert strategy.resident_blocks(1002, 256, 3) == 2
    assert strategy.resident_blocks(1280, 256, 3) == 3     # 5 per CU: 3 + 2
    assert strategy.resident_blocks(512, 256, 3) == 3
    assert strategy.resident_blocks(100, 256, 2) == 2
    assert strategy.resident_blocks(100, 256, 1) == 1
    dev = fake_device(compute_units=256)
    wide = strategy.choose(dev, 1, 128256, 4096, b_layout="nk", out="bf16", epilogue=False, fast_ok=True)
    assert (wide.family, wide.splits, wide.blocks_per_cu) == ("small", 1, 2)
    from hkrt import registry
    own = registry.spec("gfx950", wide.gemm).static_lds
    assert 2 * (own + wide.dynamic_lds) <= 160 * 1024 < 3 * (own + wide.dynamic_lds)
    even = strategy.choose(dev, 1, 4096, 4096, b_layout="nk", out="bf16", epilogue=False, fast_ok=True)
    assert (even.blocks_per_cu, even.dynamic_lds) == (3, 0)
    big = strategy.choose(dev, 4096, 4096, 4096, b_layout="nk", out="bf16", epilogue=False, fast_ok=True)
    assert (big.blocks_per_cu, big.dynamic_lds) == (0, 0)


def test_stream_k_gives_up_a_whole_round_when_sharing_it_out_finishes_sooner():
    """7000 x 7000 x 1000 is 784 tiles of 16 K tiles on 256 blocks: three whole rounds leave 16 tiles for 32
    blocks, and each of those still runs a round's worth after the others have stopped (64 K iterations on the
    busiest block); two rounds and 272 tiles over all 256 blocks take 57. Whole rounds that fill the grid stay
    whole, and a round is never given up where the overhead of sharing outweighs it."""
    sk = strategy.StreamKLayout.of(784, 16, 256)
    assert (sk.rounds, sk.shared, sk.sharers, sk.busiest) == (2, 272, 256, 57)
    assert strategy.StreamKLayout.with_rounds(784, 16, 256, 3).busiest == 64
    assert strategy.StreamKLayout.of(1024, 128, 256) == strategy.StreamKLayout(256, 4, 0, 0, 128)   # 8192^3
    assert strategy.StreamKLayout.of(448, 64, 256).rounds == 1    # 2048 x 14336 x 4096: never no whole round
    assert strategy.StreamKLayout.of(9, 4, 3).rounds == 3         # a short K: sharing would cost more
    plan = strategy.choose(fake_device(compute_units=256), 7000, 7000, 1000, b_layout="nk", out="bf16",
                           epilogue=False, fast_ok=True)
    assert (plan.family, plan.blocks, plan.rounds, plan.sharers) == ("stream_k", 256, 2, 256)


def test_stream_k_refuses_more_iterations_than_its_32_bit_arithmetic_holds():
    """255 tiles left of 2^17 K tiles over 256 blocks: 2^33 block-iterations, past the kernel's 32-bit range
    arithmetic; asking for stream-K there is a clear error, not a wrong result. Whole rounds share nothing, so
    65536^3 (65536 tiles, 2^34 iterations in all) runs as a persistent grid."""
    dev = fake_device(compute_units=256)
    with pytest.raises(ValueError, match="too many K iterations for stream-K"):
        strategy.choose(dev, 256, 255 * 256, 1 << 23, b_layout="nk", out="bf16", epilogue=False, fast_ok=True,
                        strategy="stream_k")
    whole = strategy.choose(dev, 65536, 65536, 65536, b_layout="nk", out="bf16", epilogue=False, fast_ok=True,
                            strategy="stream_k")
    assert (whole.blocks, whole.sharers) == (256, 0)
    assert strategy.stream_k_grid(448, 256) == 256 and strategy.stream_k_grid(6, 256) == 12  # or twice the tiles
    assert strategy.stream_k_sharers(192, 64, 256) == 256 and strategy.stream_k_sharers(0, 64, 256) == 0
    # 144 tiles of 47 K tiles on 256 blocks would cut some tile three ways: fewer blocks share them
    sharers = strategy.stream_k_sharers(144, 47, 256)
    assert sharers < 256 and strategy._cut_at_most_twice(144, 47, sharers)
    assert not strategy._cut_at_most_twice(144, 47, 256)


def test_an_epilogue_runs_stream_k_where_a_kernel_has_it_compiled_in():
    """A part-empty last round with an epilogue: the stream-K variant with that epilogue compiled in (mi355x
    model, 2048x14336x4096 bias + gelu: 0.1756 ms against the data-parallel fused pingpong's 0.1865), and the
    data-parallel kernel where none is built (a bf16 C with Cin) or the form is not known."""
    from hkrt.manifest import EpilogueForm
    dev = fake_device(compute_units=256)

    def chosen(out, form):
        return strategy.choose(dev, 2048, 14336, 4096, b_layout="nk", out=out, epilogue=True, fast_ok=True, form=form)
    gelu = chosen("bf16", EpilogueForm(2, False))
    assert (gelu.gemm, gelu.fused, gelu.epilogue, gelu.blocks) == ("gemm_pingpong_sk_gelu_nk_bf16", True, None, 256)
    assert chosen("f32", EpilogueForm(0, True)).gemm == "gemm_pingpong_sk_none_cin_nk_f32"
    assert chosen("bf16", EpilogueForm(1, True)).gemm == "gemm_pingpong_fused_nk_bf16"
    assert chosen("bf16", None).gemm == "gemm_pingpong_fused_nk_bf16"
    with pytest.raises(ValueError, match="one epilogue compiled in"):
        strategy.choose(dev, 2048, 14336, 4096, b_layout="nk", out="bf16", epilogue=True, fast_ok=True,
                        form=EpilogueForm(3, False), strategy="gemm_pingpong_sk_gelu_nk_bf16")
