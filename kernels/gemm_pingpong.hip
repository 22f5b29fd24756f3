// 8-wave bf16 GEMM for gfx950: 256x256 block tile, K step 64, two LDS stages.
//
// C = A * B^T with A M x K and B N x K, both K-contiguous (row strides lda, ldb), fp32 accumulation;
// C is M x N (row stride ldc), bf16 or, with HKRT_OUT_F32, fp32. Strides are in elements.
// With HKRT_FUSED the epilogue act(alpha * acc + beta * Cin + bias) is applied before the store.
//
// Schedule per 64-deep K tile: every wave issues its share of the next tile's direct-to-LDS loads into
// the other stage, then reads its operands from the current stage and runs its MFMA 16x16x32 cluster
// (64 MFMAs, raised priority) while those loads fly; then waits for its loads (vmcnt 0) *before* the
// barrier that publishes them. The 8 waves form 2 x 4: each owns a 128 x 64 sub-tile.
//
// Edges: rows past M or N read zeros through the buffer range check and their stores are dropped;
// K must be a multiple of 8 (whole 16-byte chunks); chunks past K are pushed out of range (zeros).
// Requirements the runtime checks: K % 8 == 0, lda and ldb multiples of 8, 16-byte aligned A and B,
// and every buffer (A, B, C, Cin) under 2 GiB.
#include "hkrt/buffer.hpp"
#include "hkrt/epilogue.hpp"
#include "hkrt/schedule.hpp"
#include "hkrt/sync.hpp"
#include "hkrt/tile.hpp"

#include <type_traits>

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif
#ifndef HKRT_FUSED
#define HKRT_FUSED 0
#endif

using namespace hkrt;

#if HKRT_OUT_F32
using out_t = float;
#else
using out_t = bf16;
#endif

namespace {

constexpr int BM = 256, BN = 256, THREADS = 512, WAVES = THREADS / kWave;
constexpr int WM = 128, WN = 64;             // per-wave sub-tile (waves as 2 x 4)
constexpr int TM = WM / 16, TN = WN / 16;    // MFMA tiles per wave: 8 x 4
constexpr int FRAG_STRIDE = 16 * kRowBytes;  // bytes between the 16-row fragments of a tile
using ATile = SliceTile<BM>;
using BTile = SliceTile<BN>;
constexpr int A_LOADS = ATile::kLoads / WAVES, B_LOADS = BTile::kLoads / WAVES;  // 4 + 4 per wave
constexpr int GROUP_M = 8;

}  // namespace

extern "C" __global__ __launch_bounds__(THREADS, 2) void gemm_pingpong(
    const bf16* __restrict__ A, const bf16* __restrict__ B, out_t* __restrict__ C, int M, int N, int K,
    int lda, int ldb, int ldc
#if HKRT_FUSED
    , const float* __restrict__ Cin, const float* __restrict__ bias, float alpha, float beta, int act, int ld_cin
#endif
) {
  __shared__ __attribute__((aligned(1024))) bf16 As0[BM * kSliceK], As1[BM * kSliceK];
  __shared__ __attribute__((aligned(1024))) bf16 Bs0[BN * kSliceK], Bs1[BN * kSliceK];

  const int lane = lane_id(), wave = wave_id();
  const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  int tm, tn;
  grouped_tile<GROUP_M>(xcd_remap(blockIdx.x, tiles_m * tiles_n), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * BM, n0 = tn * BN;

  const rsrc_t a_buf = make_buffer(A, static_cast<uint32_t>(M) * lda * 2);
  const rsrc_t b_buf = make_buffer(B, static_cast<uint32_t>(N) * ldb * 2);

  // This wave fills rows [A_LOADS*8*wave, +A_LOADS*8) of each tile; lane offsets are fixed for the
  // whole loop, the K position travels in the scalar offset.
  const int chunk_k = 8 * ((lane % 8) ^ (lane / 8));
  uint32_t a_off[A_LOADS], b_off[B_LOADS];
  for (int i = 0; i < A_LOADS; ++i)
    a_off[i] = static_cast<uint32_t>(m0 + (A_LOADS * wave + i) * kRowsPerLoad + ATile::fill_row(lane)) * lda * 2 +
               ATile::fill_chunk_offset(lane);
  for (int i = 0; i < B_LOADS; ++i)
    b_off[i] = static_cast<uint32_t>(n0 + (B_LOADS * wave + i) * kRowsPerLoad + BTile::fill_row(lane)) * ldb * 2 +
               BTile::fill_chunk_offset(lane);

  const int tiles_k = (K + kSliceK - 1) / kSliceK, full_k = K / kSliceK;

  // Issue this wave's direct-to-LDS loads of K tile kt into one stage. TAIL: the tile reaches past K,
  // so lanes whose chunk lies beyond K load from out of range (zeros).
  auto fill = [&](auto tail, bf16* as, bf16* bs, int kt) {
    const uint32_t soff = static_cast<uint32_t>(kt) * kRowBytes;
    const bool past = tail && kt * kSliceK + chunk_k >= K;
    for (int i = 0; i < A_LOADS; ++i)
      load_lds_b128(a_buf, as + (A_LOADS * wave + i) * kRowsPerLoad * kSliceK, past ? kOutOfRange : a_off[i], soff);
    for (int i = 0; i < B_LOADS; ++i)
      load_lds_b128(b_buf, bs + (B_LOADS * wave + i) * kRowsPerLoad * kSliceK, past ? kOutOfRange : b_off[i], soff);
  };
  auto prefetch = [&](bf16* as, bf16* bs, int kt) {  // the branch is uniform: no per-lane cost in full tiles
    if (kt < full_k) fill(std::false_type{}, as, bs, kt);
    else if (kt < tiles_k) fill(std::true_type{}, as, bs, kt);
  };

  const int wm = wave / (WAVES / 2), wn = wave % (WAVES / 2);
  const uint32_t a_frag[2] = {ATile::fragment_offset(wm * WM, 0, lane), ATile::fragment_offset(wm * WM, 1, lane)};
  const uint32_t b_frag[2] = {BTile::fragment_offset(wn * WN, 0, lane), BTile::fragment_offset(wn * WN, 1, lane)};
  f32x4 acc[TM][TN] = {};

  auto compute = [&](const bf16* as, const bf16* bs) {
    for (int ks = 0; ks < 2; ++ks) {
      bf16x8 a[TM], b[TN];
      for (int i = 0; i < TM; ++i) a[i] = lds_read_b128(as, a_frag[ks] + i * FRAG_STRIDE);
      for (int j = 0; j < TN; ++j) b[j] = lds_read_b128(bs, b_frag[ks] + j * FRAG_STRIDE);
      setprio<1>();
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) acc[i][j] = mma_16x16x32(a[i], b[j], acc[i][j]);
      setprio<0>();
    }
  };

  // One K tile: prefetch the next into the other stage, compute this one, publish the prefetch.
  auto step = [&](auto next_is_full, int kt, const bf16* as, const bf16* bs, bf16* next_as, bf16* next_bs) {
    if constexpr (next_is_full) fill(std::false_type{}, next_as, next_bs, kt + 1);
    else prefetch(next_as, next_bs, kt + 1);
    compute(as, bs);
    wait_vmcnt<0>();
    barrier();
  };

  prefetch(As0, Bs0, 0);
  wait_vmcnt<0>();
  barrier();
  int kt = 0;
  // Main loop: every prefetch is a whole tile. Unrolled by two so each stage is a constant address.
  for (; kt + 2 < full_k; kt += 2) {
    step(std::true_type{}, kt, As0, Bs0, As1, Bs1);
    step(std::true_type{}, kt + 1, As1, Bs1, As0, Bs0);
  }
  // The last two or three tiles, where a prefetch may be the K tail or nothing.
  for (; kt < tiles_k; kt += 2) {
    step(std::false_type{}, kt, As0, Bs0, As1, Bs1);
    if (kt + 1 < tiles_k) step(std::false_type{}, kt + 1, As1, Bs1, As0, Bs0);
  }

  // Store: lane holds rows 4*(lane/16)..+3 of column lane%16 in every 16x16 tile.
  const rsrc_t c_buf = make_buffer(C, static_cast<uint32_t>(M) * ldc * sizeof(out_t));
#if HKRT_FUSED
  // A null pointer gives a zero-sized buffer, which reads zeros: no branches needed.
  const rsrc_t cin_buf = make_buffer(Cin, Cin ? static_cast<uint32_t>(M) * ld_cin * 4 : 0);
  const rsrc_t bias_buf = make_buffer(bias, bias ? static_cast<uint32_t>(N) * 4 : 0);
#endif
  for (int j = 0; j < TN; ++j) {
    const int col = n0 + wn * WN + 16 * j + lane % 16;
#if HKRT_FUSED
    const float b = load_f32(bias_buf, col < N ? static_cast<uint32_t>(col) * 4 : kOutOfRange);
#endif
    for (int i = 0; i < TM; ++i)
      for (int r = 0; r < 4; ++r) {
        const int row = m0 + wm * WM + 16 * i + 4 * (lane / 16) + r;
        float v = acc[i][j][r];
#if HKRT_FUSED
        const uint32_t cin_off = col < N ? (static_cast<uint32_t>(row) * ld_cin + col) * 4 : kOutOfRange;
        v = activate(alpha * v + beta * load_f32(cin_buf, cin_off) + b, act);
#endif
        const uint32_t off = col < N ? (static_cast<uint32_t>(row) * ldc + col) * sizeof(out_t) : kOutOfRange;
        store(c_buf, off, to_out(v, out_t{}));
      }
  }
}
