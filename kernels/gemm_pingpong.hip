// 8-wave bf16 GEMM for gfx950 in the ping-pong schedule: 256x256 block tile (128x256 with HKRT_BM=128), K
// step 64, two LDS stages.
//
// C = A * B^T with A M x K and B N x K, both K-contiguous (row strides lda, ldb), fp32 accumulation;
// C is M x N (row stride ldc), bf16 or, with HKRT_OUT_F32, fp32. Strides are in elements. With
// HKRT_FUSED the epilogue act(alpha * acc + beta * Cin + bias) is applied before the store.
//
// Batches: grid (tiles, batch, 1); blockIdx.y picks the batch, whose matrices lie batch_a, batch_b,
// batch_c (and batch_cin) elements past the previous one's (64-bit; batch_b 0 shares one B; a null Cin
// comes with batch_cin 0). Each matrix keeps a buffer descriptor of its own, so the 2 GiB limit is per
// matrix.
//
// The 8 waves form 2 x 4, each owning a 128 x 64 sub-tile (8 x 4 MFMA 16x16x32 tiles, 32 MFMAs per K half).
// The two wave rows take turns: each K tile is four phases per wave, separated by barriers: [prefetch the
// next tile and read this half's fragments | MFMAs | read the second half's | MFMAs], and row 1 starts one
// barrier late, so in every phase one row issues memory while the other runs its MFMA cluster. A stage is
// refilled only after every read of its old tile (two phases earlier at least), and read only after both
// rows waited for their loads of it. Edge rules: hkrt/gemm_tile.hpp (the runtime repacks operands that miss
// them).
//
// With HKRT_STREAM_K the launch is a grid of G blocks (G at most the CUs, or twice the tiles): they run the
// whole rounds of tiles, one tile per block in each, and the first `sharers` of them then share out the K
// iterations of the tiles left evenly (hkrt/stream_k.hpp): for tile counts that leave a last round
// part-empty (2048 x 14336: 448 tiles on 256 CUs). A block runs the same schedule over each piece of its
// work; a tile cut between two blocks is finished by the second to arrive at its counter (one 64-bit word
// per tile and batch in `counters`, epochs as in gemm_small), from the fp32 partials in W (two tile slots per
// sharing block and batch). The tiles left x tiles_k x sharers must stay under 2^32. With nothing left
// (sharers 0) the grid is persistent: W and counters are not touched. With HKRT_FUSED too, the epilogue is
// the one HKRT_ACT (0 none, 1 relu, 2 gelu, 3 silu) and HKRT_HAS_C (beta * Cin or not) compile in; `act` is
// not read.
#include "hkrt/gemm_tile.hpp"
#include "hkrt/schedule.hpp"
#include "hkrt/stream_k.hpp"

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif
#ifndef HKRT_FUSED
#define HKRT_FUSED 0
#endif
#ifndef HKRT_BM  // block tile rows: 256, or 128 to give twice the blocks to shapes too small to fill the CUs
#define HKRT_BM 256
#endif
#ifndef HKRT_STREAM_K
#define HKRT_STREAM_K 0
#endif

using namespace hkrt;

#if HKRT_OUT_F32
using out_t = float;
#else
using out_t = bf16;
#endif

namespace {
// a bf16 C is stored from row runs, 16 bytes per lane; an fp32 one keeps column quads, whose 4-byte stores
// are already bound by bytes, not lines, on the address path
using Gemm = TileGemm<HKRT_BM, 256, 2, 4, HKRT_OUT_F32 ? AccLayout::kColumnQuads : AccLayout::kRowRuns>;
constexpr int GROUP_M = 8;
}  // namespace

extern "C" __global__ __launch_bounds__(Gemm::THREADS, 2) void gemm_pingpong(
    const bf16* __restrict__ A, const bf16* __restrict__ B, out_t* __restrict__ C, int M, int N, int K,
    int lda, int ldb, int ldc, int64_t batch_a, int64_t batch_b, int64_t batch_c
#if HKRT_FUSED
    , const float* __restrict__ Cin, const float* __restrict__ bias, float alpha, float beta, int act, int ld_cin,
    int64_t batch_cin
#endif
#if HKRT_STREAM_K
    , float* __restrict__ W, unsigned long long* __restrict__ counters, uint64_t epoch, int sharers, int rounds
#endif
) {
  __shared__ __attribute__((aligned(1024))) bf16 As0[Gemm::ATile::kBytes / 2], As1[Gemm::ATile::kBytes / 2];
  __shared__ __attribute__((aligned(1024))) bf16 Bs0[Gemm::BTile::kBytes / 2], Bs1[Gemm::BTile::kBytes / 2];

  const int batch = blockIdx.y;
  A += batch * batch_a;
  B += batch * batch_b;
  C += batch * batch_c;
#if HKRT_FUSED
  Cin += batch * batch_cin;  // a null Cin has batch_cin 0 (the runtime passes 0 without one): it stays null
#endif

  const int tiles_m = (M + Gemm::BM - 1) / Gemm::BM, tiles_n = (N + Gemm::BN - 1) / Gemm::BN;
  const int tiles_k = (K + kSliceK - 1) / kSliceK;
  // blocks of one XCD take neighbouring work: tiles, or stream-K ranges of the tiles' K iterations
  const int b = xcd_remap(blockIdx.x, gridDim.x);
  auto origin = [&](int tile, int& m0, int& n0) {
    int tm, tn;
    grouped_tile<GROUP_M>(tile, tiles_m, tiles_n, tm, tn);
    m0 = tm * Gemm::BM, n0 = tn * Gemm::BN;
  };
#if HKRT_FUSED && HKRT_STREAM_K
  // the stream-K loop holds every SGPR the plain kernel has: the epilogue's arguments wait in VGPRs (uniform
  // values, copied back at each store)
  uint64_t parked_bias = reinterpret_cast<uintptr_t>(bias), parked_cin = reinterpret_cast<uintptr_t>(Cin);
  float parked_alpha = alpha, parked_beta = beta;
  int parked_ld_cin = ld_cin;
  asm volatile("" : "+v"(parked_bias), "+v"(parked_cin), "+v"(parked_alpha), "+v"(parked_beta), "+v"(parked_ld_cin));
#endif
  auto store = [&](Gemm& g, int m0, int n0) {
    const TileStore<out_t> out(C, M, N, ldc);
#if HKRT_FUSED && HKRT_STREAM_K
    // one form of the store, fixed at compile time: the eight a run-time dispatch compiles spill
    const Epilogue ep(reinterpret_cast<const float*>(unpark(parked_cin)), M, unpark(parked_ld_cin),
                      reinterpret_cast<const float*>(unpark(parked_bias)), N, unpark(parked_alpha), unpark(parked_beta));
    store_tile_as<HKRT_ACT, HKRT_HAS_C>(g, ep, out, m0, n0);
#elif HKRT_FUSED
    store_tile(g, Epilogue(Cin, M, ld_cin, bias, N, alpha, beta), out, act, m0, n0);
#else
    store_tile(g, out, m0, n0);
#endif
  };

  // K tiles kt_begin .. kt_end - 1 into g's accumulators, the first already being loaded into stage 0, with
  // at least `after_fill` vector-memory instructions of this wave issued since (vmcnt retires in issue
  // order, so waiting for all but that many waits for the loads and not for the stores behind them). Each K
  // tile from stage (as, bs) prefetches the next into (next_as, next_bs); past the last the prefetch reads
  // zeros into a stage no one reads again, so the final step needs no branch of its own.
  auto k_loop = [&](Gemm& g, int kt_begin, int kt_end, auto after_fill) {
    auto step = [&](int kt, const bf16* as, const bf16* bs, bf16* next_as, bf16* next_bs) {
      g.prepare(kt + 1, kt_end);
      g.fill(next_as, next_bs, kt + 1);
      for (int ks = 0; ks < 2; ++ks) {
        bf16x8 a[Gemm::TM], b[Gemm::TN];
        g.read_half(as, bs, ks, a, b);
        if (ks == 1) wait_vmcnt<0>();  // the next tile's loads, issued a phase ago, have landed (docs/kernels.md)
        wait_lgkmcnt<0>();              // and this half's reads are done
        // the priority changes sit outside the barriers, so that nothing but the barrier separates one
        // row's last MFMA from the other row's first (each takes an issue slot on the SIMD)
        setprio<1>();
        barrier();
        sched_fence();
        g.mmas(a, b);
        sched_fence();
        barrier();
        setprio<0>();
      }
    };
    g.settle();  // zeroed while the first K tile loads: row 1's first phase has its reads to do
    wait_vmcnt<decltype(after_fill)::value>();
    barrier();
    if (g.wm == 1) barrier();  // row 1 runs one phase behind row 0
    for (int kt = kt_begin; kt < kt_end; kt += 2) {  // unrolled by two so each stage is a constant address
      step(kt, As0, Bs0, As1, Bs1);
      if (kt + 1 < kt_end) step(kt + 1, As1, Bs1, As0, Bs0);
    }
  };
  // row 0 meets row 1's last barrier: before it refills a stage, or after storing its own results (which
  // then overlap row 1's last MFMA cluster)
  auto meet = [&](const Gemm& g) {
    if (g.wm == 0) barrier();
  };

#if HKRT_STREAM_K
  // The fewest vector-memory instructions a wave issues after the next piece's fill with no vmcnt(0) between:
  // a whole tile's stores (bf16 row runs: one per run of 8; the per-element and fp32 stores are more); a cut
  // tile's partial waits for everything before its release, and its sum's loads are waited for before its
  // stores.
  constexpr int kStoresAfterFill = Gemm::TM * Gemm::TN / 2;
  // `rounds` whole rounds of tiles first, one tile per block in each (data-parallel: the blocks of an XCD walk
  // K in step, sharing their operands' slices in L2), then the tiles left (the runtime may leave a round's
  // worth more: hkrt.strategy.StreamKLayout) share out their K iterations over the first `sharers` blocks.
  const int tiles = tiles_m * tiles_n, whole = rounds * gridDim.x;
  const StreamK sk(tiles - whole, tiles_k, sharers);
  // each batch's product has counters (one per tile) and partial slots (two per sharing block) of its own
  counters += static_cast<size_t>(batch) * tiles;
  const TilePartials<Gemm> parts(W + static_cast<size_t>(batch) * 2 * sharers * TilePartials<Gemm>::kSlotBytes / 4,
                                 2 * sharers);
  PieceWalk walk(sk, b, whole, gridDim.x);
  // the fused kernel does not look before storing a partial (PieceWalk::worth_looking): the test's scalar
  // state would spill beside the epilogue's
  constexpr bool LOOKS = !HKRT_FUSED;
  Piece piece;
  if (!walk.next(piece)) return;
  int m0, n0;
  origin(piece.tile, m0, n0);
  Gemm g(A, B, M, N, K, lda, ldb, m0, n0);
  g.prepare(piece.kt_begin, piece.kt_end);
  g.fill(As0, Bs0, piece.kt_begin);
  g.settle();
  wait_vmcnt<0>();  // nothing follows this first fill: the loop's wait leaves kStoresAfterFill in flight
  for (;;) {
    // what is derived from these (the stores' row offsets, the loads' lane offsets) is computed again for
    // every piece, not hoisted out of the loop into SGPRs held across it, which would spill
    asm volatile("" : "+s"(ldc), "+s"(lda), "+s"(ldb));
    k_loop(g, piece.kt_begin, piece.kt_end, std::integral_constant<int, kStoresAfterFill>{});
    meet(g);
    const Piece done = piece;
    const int done_m0 = m0, done_n0 = n0;
    // the next piece's first K tile is loaded while this one's results are stored
    const bool more = walk.next(piece);
    if (more) {
      origin(piece.tile, m0, n0);
      g.aim(m0, n0, lda, ldb);
      g.prepare(piece.kt_begin, piece.kt_end);
      g.fill(As0, Bs0, piece.kt_begin);
    }
    // a cut tile: the second of its two blocks to arrive stores it
    if (!done.cut(tiles_k) || finish_cut_tile(g, sk, parts, b, done.shared, LOOKS && !more && PieceWalk::worth_looking(sk, b, done),
                                               counters + done.tile, static_cast<unsigned>(epoch)))
      store(g, done_m0, done_n0);
    if (!more) break;
    g.clear();
  }
#else
  int m0, n0;
  origin(b, m0, n0);
  Gemm g(A, B, M, N, K, lda, ldb, m0, n0);
  g.prepare(0, tiles_k);
  g.fill(As0, Bs0, 0);
  k_loop(g, 0, tiles_k, std::integral_constant<int, 0>{});
  store(g, m0, n0);
  meet(g);
#endif
}
