// 8c4p producer-consumer bf16 GEMM for gfx950, used for fused epilogues: 128x256 block tile, K step 64,
// two LDS stages, 12 waves. Waves 8..11 (producers) only stream tiles into LDS with direct-to-LDS
// loads; waves 0..7 (consumers, 2 x 4, 64 x 64 each) only read LDS and run MFMAs, then apply the
// epilogue act(alpha * acc + beta * Cin + bias) and store C (bf16, or fp32 with HKRT_OUT_F32).
//
// Per K tile: producers fill the other stage and wait for their loads; consumers compute the current
// stage; one barrier ends the tile for everyone, so a stage is refilled only after all consumers are
// done with it and read only after its producers' loads have landed.
// C = A * B^T, A M x K and B N x K K-contiguous; edge rules as in hkrt/gemm_tile.hpp.
//
// Batches: grid (tiles, batch, 1); blockIdx.y picks the batch, its matrices batch_a, batch_b, batch_c,
// batch_cin elements (64-bit) past the previous one's (batch_b 0 shares one B); buffers stay per matrix.
#include "hkrt/gemm_tile.hpp"
#include "hkrt/schedule.hpp"

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif

using namespace hkrt;

#if HKRT_OUT_F32
using out_t = float;
#else
using out_t = bf16;
#endif

namespace {
constexpr int BM = 128, BN = 256, CONSUMERS = 8, PRODUCERS = 4;
using Consumer = TileGemm<BM, BN, 2, 4>;  // computes; its own loads go unused
using Producer = TileGemm<BM, BN, 1, 4>;  // loads: 4 waves share the tile
constexpr int THREADS = (CONSUMERS + PRODUCERS) * kWave;
constexpr int GROUP_M = 8;
}  // namespace

extern "C" __global__ __launch_bounds__(THREADS, 3) void gemm_producer_consumer(
    const bf16* __restrict__ A, const bf16* __restrict__ B, out_t* __restrict__ C, int M, int N, int K,
    int lda, int ldb, int ldc, int64_t batch_a, int64_t batch_b, int64_t batch_c, const float* __restrict__ Cin,
    const float* __restrict__ bias, float alpha, float beta, int act, int ld_cin, int64_t batch_cin) {
  __shared__ __attribute__((aligned(1024))) bf16 As0[BM * kSliceK], As1[BM * kSliceK];
  __shared__ __attribute__((aligned(1024))) bf16 Bs0[BN * kSliceK], Bs1[BN * kSliceK];

  const int batch = blockIdx.y;
  A += batch * batch_a;
  B += batch * batch_b;
  C += batch * batch_c;
  if (Cin) Cin += batch * batch_cin;  // a null Cin stays null: it reads as zeros

  const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  int tm, tn;
  grouped_tile<GROUP_M>(xcd_remap(blockIdx.x, tiles_m * tiles_n), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * BM, n0 = tn * BN;
  const int tiles_k = (K + kSliceK - 1) / kSliceK;
  const int wave = wave_id();

  if (wave >= CONSUMERS) {
    Producer p(A, B, M, N, K, lda, ldb, m0, n0, wave - CONSUMERS);
    auto load = [&](bf16* as, bf16* bs, int kt) {
      p.prepare(kt, tiles_k);
      p.fill(as, bs, kt);
      wait_vmcnt<0>();  // before the barrier: s_barrier does not wait for direct-to-LDS loads
      barrier();
    };
    load(As0, Bs0, 0);
    for (int kt = 0; kt < tiles_k; kt += 2) {  // one barrier per tile, matching the consumers'
      load(As1, Bs1, kt + 1);
      if (kt + 1 < tiles_k) load(As0, Bs0, kt + 2);
    }
    return;
  }

  Consumer c(A, B, M, N, K, lda, ldb, m0, n0);
  auto compute = [&](const bf16* as, const bf16* bs) {  // both halves of the tile in one stage
    for (int ks = 0; ks < 2; ++ks) {
      bf16x8 a[Consumer::TM], b[Consumer::TN];
      c.read_half(as, bs, ks, a, b);
      c.mma_cluster(a, b);
    }
  };
  barrier();  // tile 0 is in stage 0
  for (int kt = 0; kt < tiles_k; kt += 2) {
    compute(As0, Bs0);
    barrier();
    if (kt + 1 < tiles_k) {
      compute(As1, Bs1);
      barrier();
    }
  }
  store_tile(c, Epilogue(Cin, M, ld_cin, bias, N, alpha, beta), TileStore<out_t>(C, M, N, ldc), act, m0, n0);
}
