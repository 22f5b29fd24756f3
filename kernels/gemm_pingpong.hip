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
#include "hkrt/gemm_tile.hpp"
#include "hkrt/schedule.hpp"

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif
#ifndef HKRT_FUSED
#define HKRT_FUSED 0
#endif
#ifndef HKRT_BM  // block tile rows: 256, or 128 to give twice the blocks to shapes too small to fill the CUs
#define HKRT_BM 256
#endif

using namespace hkrt;

#if HKRT_OUT_F32
using out_t = float;
#else
using out_t = bf16;
#endif

namespace {
using Gemm = TileGemm<HKRT_BM, 256, 2, 4>;
constexpr int GROUP_M = 8;
}  // namespace

extern "C" __global__ __launch_bounds__(Gemm::THREADS, 2) void gemm_pingpong(
    const bf16* __restrict__ A, const bf16* __restrict__ B, out_t* __restrict__ C, int M, int N, int K,
    int lda, int ldb, int ldc, int64_t batch_a, int64_t batch_b, int64_t batch_c
#if HKRT_FUSED
    , const float* __restrict__ Cin, const float* __restrict__ bias, float alpha, float beta, int act, int ld_cin,
    int64_t batch_cin
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
  int tm, tn;
  grouped_tile<GROUP_M>(xcd_remap(blockIdx.x, tiles_m * tiles_n), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * Gemm::BM, n0 = tn * Gemm::BN;

  Gemm g(A, B, M, N, K, lda, ldb, m0, n0);
  const int tiles_k = (K + kSliceK - 1) / kSliceK;

  // One K tile from stage (as, bs), prefetching the next into (next_as, next_bs); past the last tile the
  // prefetch reads zeros into a stage no one reads again, so the final step needs no branch of its own.
  auto step = [&](int kt, const bf16* as, const bf16* bs, bf16* next_as, bf16* next_bs) {
    g.prepare(kt + 1, tiles_k);
    g.fill(next_as, next_bs, kt + 1);
    for (int ks = 0; ks < 2; ++ks) {
      bf16x8 a[Gemm::TM], b[Gemm::TN];
      g.read_half(as, bs, ks, a, b);
      if (ks == 1) wait_vmcnt<0>();  // the next tile's loads, issued a phase ago, have landed (docs/kernels.md)
      wait_lgkmcnt<0>();              // and this half's reads are done
      barrier();
      sched_fence();
      g.mma_cluster(a, b);
      sched_fence();
      barrier();
    }
  };

  g.prepare(0, tiles_k);
  g.fill(As0, Bs0, 0);
  wait_vmcnt<0>();
  barrier();
  if (g.wm == 1) barrier();  // row 1 runs one phase behind row 0
  for (int kt = 0; kt < tiles_k; kt += 2) {  // unrolled by two so each stage is a constant address
    step(kt, As0, Bs0, As1, Bs1);
    if (kt + 1 < tiles_k) step(kt + 1, As1, Bs1, As0, Bs0);
  }
  if (g.wm == 0) barrier();  // and row 0 meets row 1's last barrier

  const TileStore<out_t> out(C, M, N, ldc);
#if HKRT_FUSED
  store_tile(g, Epilogue(Cin, M, ld_cin, bias, N, alpha, beta), out, act, m0, n0);
#else
  g.for_each_output([&](int r, int c, int ur, float v) { out.store(m0 + r, n0 + c, ur, v); });
#endif
}
