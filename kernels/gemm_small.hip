// Small and skinny bf16 GEMMs for gfx950: 64x128 block tile, 4 waves (1 x 4, 64 x 32 each), or with
// HKRT_BM=128 a 128x128 tile of 8 waves (2 x 4); split-K, finished in the same launch.
//
// For problems that cannot fill 256 CUs with 256x256 tiles (decode-like M <= 128, small N): grid.z
// splits the K tiles into ranges. With one split a block applies the epilogue act(alpha * acc +
// beta * Cin + bias) and stores C itself. With more, each block stores its range's fp32 partial sums
// (Partials, below) and arrives at its tile's counter; the last block to arrive sums the splits in split
// order (so the result does not depend on which block is last), applies the epilogue and stores C. No
// second launch: on the model a launch costs about 4 us, the whole roofline time of a 4096 x 4096 weight.
//
// C = A * B^T, A M x K and B N x K K-contiguous; C and Cin M x N (row stride N), C bf16 or, with
// HKRT_OUT_F32, fp32; edge rules as in hkrt/gemm_tile.hpp. `counters` holds one 64-bit word per output tile
// of each batch (blockIdx.x + tiles * batch), zero or left by launches of smaller epochs (hkrt/sync.hpp);
// `epoch` must be larger than theirs.
//
// Batches: grid (tiles, batch, splits); blockIdx.y picks the batch (z is taken by the splits). Its A, B, C
// and Cin lie batch_a, batch_b, batch_c, batch_cin elements (64-bit) past the previous one's (batch_b 0
// shares one B; a null Cin has batch_cin 0), its partials splits * M4 * N elements past the previous batch's.
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

// Split-K partials, in the accumulators' own layout: split s's partial is an N x M4 column-major fp32 matrix
// (M4 = M rounded up to 4), so a lane's four rows of a column (one f32x4 accumulator) are 16 contiguous
// bytes. A block stores its partial with one 16-byte store per accumulator, and the last block sums the
// splits into its accumulators with one 16-byte load per accumulator and split; then the block stores the
// sum like an unsplit tile. Rows past M are skipped (uniform branch per accumulator row; per lane, the range
// check), so M = 1 moves 4 rows of each column, not 64.
// The sum runs over groups of splits, SUM_LOADS loads per wave each, one group in flight while the one
// before is added. It used to take the accumulator rows one after another, eight splits' loads per row
// whatever the split count, and wait for each row's: on the mi355x model the last block of 64 x 28672 x 8192
// (two splits) took 8,120 cycles from its last MFMA to its end, now 6,458.
constexpr int SUM_LOADS = 8;

struct Partials {
  rsrc_t buf;
  int M, N, m4, m0, n0;

  __device__ Partials(float* W, int M_, int N_, int splits, int m0_, int n0_)
      : M(M_), N(N_), m4((M_ + 3) & ~3), m0(m0_), n0(n0_) {
    buf = make_buffer(W, static_cast<uint32_t>(m4) * N * 4 * splits);
  }
  // Lane part of the offset of the accumulator at (lane_row + urow, col) of the tile, or out of range.
  __device__ uint32_t at(int lane_row, int col, int urow) const {
    const int row = m0 + lane_row + urow;
    return row < M && n0 + col < N ? (static_cast<uint32_t>(n0 + col) * m4 + m0 + lane_row) * 4 : kOutOfRange;
  }
  __device__ uint32_t split_bytes() const { return static_cast<uint32_t>(m4) * N * 4; }

  __device__ void store(Gemm& g, int split) const {
    g.for_each_accumulator(M - m0, [&](int lr, int c, int ur, f32x4& acc) {
      hkrt::store(buf, at(lr, c, ur), split * split_bytes() + ur * 4, acc);
    });
  }

  // acc = the sum of every split's partial, in split order (the same sum whichever block is last).
  __device__ void sum(Gemm& g, int splits) const {
    // the accumulator rows this wave holds below M: its first `held` (wave-uniform)
    const int held = min(Gemm::TM, max(0, (M - m0 - g.wm * Gemm::WM + 15) / 16));
    switch (held) {
      case 4: if constexpr (Gemm::TM >= 4) sum_rows<4>(g, splits); break;
      case 3: if constexpr (Gemm::TM >= 3) sum_rows<3>(g, splits); break;
      case 2: sum_rows<2>(g, splits); break;
      case 1: sum_rows<1>(g, splits); break;
      default: g.clear();
    }
  }

  // The same over the first H accumulator rows: GROUP splits' loads per group, the next group issued before
  // this one is added. A load past the last split reads the last again and is not added: the scalar offset
  // clamps it, where an out-of-range lane offset would take a select per load.
  template <int H>
  __device__ void sum_rows(Gemm& g, int splits) const {
    constexpr int GROUP = SUM_LOADS / (H * Gemm::TN) > 0 ? SUM_LOADS / (H * Gemm::TN) : 1;
    using Group = f32x4[GROUP][H][Gemm::TN];
    const int lane_row = g.lane_row(), col = g.lane_col(0);
    uint32_t off[H][Gemm::TN];
#pragma unroll
    for (int i = 0; i < H; ++i)
#pragma unroll
      for (int j = 0; j < Gemm::TN; ++j) {
        off[i][j] = at(lane_row, col + 16 * j, 16 * i);
        g.acc[i][j] = f32x4{};
      }
#pragma unroll
    for (int i = H; i < Gemm::TM; ++i)  // rows past M, never stored: zeros end their values' lives here
#pragma unroll
      for (int j = 0; j < Gemm::TN; ++j) g.acc[i][j] = f32x4{};
    auto load = [&](Group& part, int s0) {
#pragma unroll
      for (int s = 0; s < GROUP; ++s)
#pragma unroll
        for (int i = 0; i < H; ++i)
#pragma unroll
          for (int j = 0; j < Gemm::TN; ++j)
            part[s][i][j] = load_f32x4(buf, off[i][j], min(s0 + s, splits - 1) * split_bytes() + 64 * i);
    };
    auto add = [&](const Group& part, int s0) {
#pragma unroll
      for (int s = 0; s < GROUP; ++s)
        if (s0 + s < splits)
#pragma unroll
          for (int i = 0; i < H; ++i)
#pragma unroll
            for (int j = 0; j < Gemm::TN; ++j) g.acc[i][j] += part[s][i][j];
    };
    // Two buffers, so that neither is copied; each is written only where it is then read (a buffer loaded
    // in a branch would keep its old value alive beside the new: the compiler spilled).
    Group even, odd;
    load(even, 0);
    for (int s0 = 0;; s0 += 2 * GROUP) {
      if (s0 + GROUP >= splits) {
        add(even, s0);
        break;
      }
      load(odd, s0 + GROUP);
      add(even, s0);
      if (s0 + 2 * GROUP >= splits) {
        add(odd, s0 + GROUP);
        break;
      }
      load(even, s0 + 2 * GROUP);
      add(odd, s0 + GROUP);
    }
  }
};
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
  if (splits > 1) {  // the tile's last block to arrive sums the splits and stores C
    W += static_cast<size_t>(batch) * splits * ((M + 3) & ~3) * N;
    const Partials partials(W, M, N, splits, m0, n0);
    partials.store(g, split);
    const unsigned this_epoch = static_cast<unsigned>(epoch);
    if (!last_to_arrive(counters + batch * tiles_m * tiles_n + blockIdx.x, splits, this_epoch)) return;
    partials.sum(g, splits);
  }
  // A whole tile has no row to skip (the branches would cost 1% on 64 x 128256 x 4096). The plain product
  // skips the epilogue's dispatch over activations and Cin: its branches and set-up came before the first
  // store, and where the activations' store code merged the compiler waited for the stores issued so far
  // (mi355x model, the last block of 64 x 28672 x 8192: 1,915 cycles from its last add to its end, now 1,196).
  const bool whole = m0 + Gemm::BM <= M;
  if (ep.identity(act)) {
    if (whole)
      store_tile(g, out, m0, n0);
    else
      store_tile<true>(g, out, m0, n0, M);
  } else if (whole) {
    store_tile(g, ep, out, act, m0, n0);
  } else {
    store_tile<true>(g, ep, out, act, m0, n0, M);
  }
}
