// 8-wave bf16 GEMM for gfx950: 256x256 block tile, K step 64, two LDS stages: the ping-pong kernel,
// and with HKRT_INTERLEAVE the interleave kernel for large problems.
//
// C = A * B^T with A M x K and B N x K, both K-contiguous (row strides lda, ldb), fp32 accumulation;
// C is M x N (row stride ldc), bf16 or, with HKRT_OUT_F32, fp32. Strides are in elements. With
// HKRT_FUSED the epilogue act(alpha * acc + beta * Cin + bias) is applied before the store.
//
// Batches: grid (tiles, batch, 1); blockIdx.y picks the batch, whose matrices lie batch_a, batch_b,
// batch_c (and batch_cin) elements past the previous one's (64-bit; batch_b 0 shares one B; a null Cin
// comes with batch_cin 0). Each matrix
// keeps a buffer descriptor of its own, so the 2 GiB limit is per matrix.
//
// The 8 waves form 2 x 4, each owning a 128 x 64 sub-tile (8 x 4 MFMA 16x16x32 tiles, 64 MFMAs per K
// tile in clusters at raised priority). Ping-pong: the two wave rows alternate, one issuing the next
// tile's direct-to-LDS loads and its LDS reads while the other runs its MFMA cluster, one barrier apart.
// Interleave: every wave spreads its loads between its MFMAs, one after every 8. See hkrt/gemm_tile.hpp
// for the loops and the edge rules (K % 8 == 0, aligned operands, buffers under 2 GiB; the runtime
// repacks operands that miss them).
#include "hkrt/gemm_tile.hpp"
#include "hkrt/schedule.hpp"

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif
#ifndef HKRT_FUSED
#define HKRT_FUSED 0
#endif
#ifndef HKRT_INTERLEAVE
#define HKRT_INTERLEAVE 0
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
using Gemm = TileGemm<HKRT_BM, 256, 2, 4, HKRT_INTERLEAVE, !HKRT_INTERLEAVE>;
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
  g.run({As0, As1, Bs0, Bs1}, 0, (K + kSliceK - 1) / kSliceK);

  const TileStore<out_t> out(C, M, N, ldc);
#if HKRT_FUSED
  store_tile(g, Epilogue(Cin, M, ld_cin, bias, N, alpha, beta), out, act, m0, n0);
#else
  g.for_each_output([&](int r, int c, int ur, float v) { out.store(m0 + r, n0 + c, ur, v); });
#endif
}
