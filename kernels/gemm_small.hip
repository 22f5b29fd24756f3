// Small and skinny bf16 GEMMs for gfx950: 64x128 block tile, 4 waves (1 x 4, 64 x 32 each), or with
// HKRT_BM=128 a 128x128 tile of 8 waves (2 x 4); split-K, finished in the same launch.
//
// For problems that cannot fill 256 CUs with 256x256 tiles (decode-like M <= 128, small N): grid.z
// splits the K tiles into ranges. With one split a block applies the epilogue act(alpha * acc +
// beta * Cin + bias) and stores C itself. With more, each block stores its range's fp32 partial sums
// to W + split * M * N (row stride N) and arrives at its tile's counter; the last block to arrive sums
// the splits in split order (so the result does not depend on which block is last), applies the
// epilogue and stores C. No second launch: on the model a launch costs about 4 us, the whole roofline
// time of a 4096 x 4096 weight.
//
// C = A * B^T, A M x K and B N x K K-contiguous; C and Cin M x N (row stride N), C bf16 or, with
// HKRT_OUT_F32, fp32; edge rules as in hkrt/gemm_tile.hpp. `counters` holds one 64-bit word per output tile
// of each batch (blockIdx.x + tiles * batch), zero or left by launches of other epochs (hkrt/sync.hpp);
// `epoch` must differ from theirs.
//
// Batches: grid (tiles, batch, splits); blockIdx.y picks the batch (z is taken by the splits). Its A, B, C
// and Cin lie batch_a, batch_b, batch_c, batch_cin elements (64-bit) past the previous one's (batch_b 0
// shares one B; a null Cin has batch_cin 0), its partials splits * M * N elements past the previous batch's.
#include "hkrt/gemm_tile.hpp"
#include "hkrt/schedule.hpp"

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif
#ifndef HKRT_BM  // block tile rows: 64 (4 waves), or 128 (8 waves, 2 x 4) so that M <= 128 reads B once
#define HKRT_BM 64
#endif


using namespace hkrt;

#if HKRT_OUT_F32
using out_t = float;
#else
using out_t = bf16;
#endif

namespace {
using Gemm = TileGemm<HKRT_BM, 128, HKRT_BM / 64, 4>;
constexpr int GROUP_M = 8;
// Blocks per CU, as the LDS allows (48 or 64 KiB each): the epilogue must not take the registers that would
// cost one. __launch_bounds__ takes them as waves per SIMD.
constexpr int BLOCKS_PER_CU = HKRT_BM == 64 ? 3 : 2;
constexpr int WAVES_PER_SIMD = BLOCKS_PER_CU * Gemm::WAVES / 4;

// The tile's last block sums the splits' fp32 partials in a layout of its own: thread t owns column
// n0 + t % BN of rows m0 + ROWS_PER_PASS i + t / BN, coalesced. Rows go PASSES at a time, and the
// loads of SPLIT_GROUP splits for them are issued together, so the sum waits on memory once per group of
// splits and rows, not once per element; row groups past M are skipped.
constexpr int ROWS_PER_PASS = Gemm::THREADS / Gemm::BN, PASSES = 8, SPLIT_GROUP = 4;

template <int ACT>
__device__ void sum_splits(const Epilogue& ep, const TileStore<out_t>& out, const float* W, int M, int N, int m0,
                           int n0, int splits) {
  const rsrc_t parts = make_buffer(W, static_cast<uint32_t>(M) * N * 4 * splits);
  const uint32_t split_bytes = static_cast<uint32_t>(M) * N * 4;
  const int col = n0 + static_cast<int>(threadIdx.x) % Gemm::BN, row0 = m0 + static_cast<int>(threadIdx.x) / Gemm::BN;
  for (int r = 0; r < Gemm::BM && m0 + r < M; r += ROWS_PER_PASS * PASSES) {
    uint32_t at[PASSES];
    float sum[PASSES];
#pragma unroll
    for (int i = 0; i < PASSES; ++i) {
      const int row = row0 + r + ROWS_PER_PASS * i;
      at[i] = col < N && row < M ? (static_cast<uint32_t>(row) * N + col) * 4 : kOutOfRange;
      sum[i] = 0.0f;
    }
    for (int s0 = 0; s0 < splits; s0 += SPLIT_GROUP) {  // GROUP splits' loads in flight at once
      float part[SPLIT_GROUP][PASSES];
#pragma unroll
      for (int j = 0; j < SPLIT_GROUP; ++j)
#pragma unroll
        for (int i = 0; i < PASSES; ++i)
          part[j][i] = load_f32(parts, s0 + j < splits && at[i] != kOutOfRange ? at[i] + (s0 + j) * split_bytes
                                                                              : kOutOfRange);
#pragma unroll
      for (int j = 0; j < SPLIT_GROUP; ++j)  // in split order: the same sum whichever block is last
        if (s0 + j < splits)
#pragma unroll
          for (int i = 0; i < PASSES; ++i) sum[i] += part[j][i];
    }
#pragma unroll
    for (int i = 0; i < PASSES; ++i) {
      const int row = row0 + r + ROWS_PER_PASS * i;
      out.store(row, col, 0, ep.apply<ACT>(row, col, 0, sum[i]));
    }
  }
}
}  // namespace

extern "C" __global__ __launch_bounds__(Gemm::THREADS, WAVES_PER_SIMD) void gemm_small(
    const bf16* __restrict__ A, const bf16* __restrict__ B, out_t* __restrict__ C, float* __restrict__ W,
    unsigned long long* __restrict__ counters, uint64_t epoch, int M, int N, int K, int lda, int ldb,
    int64_t batch_a, int64_t batch_b, int64_t batch_c, const float* __restrict__ Cin, const float* __restrict__ bias,
    float alpha, float beta, int act, int64_t batch_cin) {
  __shared__ __attribute__((aligned(1024))) bf16 As0[Gemm::ATile::kBytes / 2], As1[Gemm::ATile::kBytes / 2];
  __shared__ __attribute__((aligned(1024))) bf16 Bs0[Gemm::BTile::kBytes / 2], Bs1[Gemm::BTile::kBytes / 2];

  const int batch = blockIdx.y, splits = gridDim.z, split = blockIdx.z;
  A += batch * batch_a;
  B += batch * batch_b;
  C += batch * batch_c;
  Cin += batch * batch_cin;  // a null Cin has batch_cin 0: it stays null

  const int tiles_m = (M + Gemm::BM - 1) / Gemm::BM, tiles_n = (N + Gemm::BN - 1) / Gemm::BN;
  int tm, tn;
  grouped_tile<GROUP_M>(xcd_remap(blockIdx.x, tiles_m * tiles_n), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * Gemm::BM, n0 = tn * Gemm::BN;
  const int tiles_k = (K + kSliceK - 1) / kSliceK, per_split = (tiles_k + splits - 1) / splits;
  const int kt_begin = min(tiles_k, split * per_split);
  const int kt_end = min(tiles_k, kt_begin + per_split);

  Gemm g(A, B, M, N, K, lda, ldb, m0, n0);
  // One K tile from stage (as, bs): prefetch the next into (next_as, next_bs) (past the split's last tile:
  // zeros, into a stage no one reads again), both halves' reads and MFMAs, then wait for the prefetch
  // before the barrier that publishes it.
  auto step = [&g, kt_end](int kt, const bf16* as, const bf16* bs, bf16* next_as, bf16* next_bs) {
    g.prepare(kt + 1, kt_end);
    g.fill(next_as, next_bs, kt + 1);
    for (int ks = 0; ks < 2; ++ks) {
      bf16x8 a[Gemm::TM], b[Gemm::TN];
      g.read_half(as, bs, ks, a, b);
      g.mma_cluster(a, b);
    }
    wait_vmcnt<0>();
    barrier();
  };

  g.prepare(kt_begin, kt_end);
  g.fill(As0, Bs0, kt_begin);
  wait_vmcnt<0>();
  barrier();
  for (int kt = kt_begin; kt < kt_end; kt += 2) {  // unrolled by two so each stage is a constant address
    step(kt, As0, Bs0, As1, Bs1);
    if (kt + 1 < kt_end) step(kt + 1, As1, Bs1, As0, Bs0);
  }

  const Epilogue ep(Cin, M, N, bias, N, alpha, beta);
  const TileStore<out_t> out(C, M, N, N);
  if (splits == 1) {
    store_tile(g, ep, out, act, m0, n0);
    return;
  }

  W += static_cast<size_t>(batch) * splits * M * N;
  const TileStore<float> partial(W + static_cast<size_t>(split) * M * N, M, N, N);
  g.for_each_output([&](int r, int c, int ur, float v) { partial.store(m0 + r, n0 + c, ur, v); });
  if (!last_to_arrive(counters + batch * tiles_m * tiles_n + blockIdx.x, splits, static_cast<unsigned>(epoch))) return;

  with_activation(act, [&](auto a) { sum_splits<a()>(ep, out, W, M, N, m0, n0, splits); });
}
