// 8-wave bf16 GEMM for gfx950 in the interleave schedule: 256x256 block tile, K step 64, two LDS stages.
// Chosen only by request (strategy="interleave"): on the mi355x model it loses to the ping-pong kernel
// (hkrt/strategy.py says by how much).
//
// C = A * B^T with A M x K and B N x K, both K-contiguous (row strides lda, ldb), fp32 accumulation;
// C is M x N (row stride ldc), bf16 or, with HKRT_OUT_F32, fp32. Strides are in elements. Batches as in
// gemm_pingpong.hip.
//
// The 8 waves form 2 x 4, each owning a 128 x 64 sub-tile (8 x 4 MFMA 16x16x32 tiles). Every wave runs
// its 64 MFMAs of a K tile with one of its loads of the next tile after every 8 of them (scheduling-group
// barriers hold that order), then waits for its loads and meets the others at one barrier per tile.
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
using Gemm = TileGemm<256, 256, 2, 4>;
constexpr int GROUP_M = 8;
constexpr int MFMA_PER_LOAD = 2 * Gemm::TM * Gemm::TN / (Gemm::A_LOADS + Gemm::B_LOADS);
}  // namespace

extern "C" __global__ __launch_bounds__(Gemm::THREADS, 2) void gemm_interleave(
    const bf16* __restrict__ A, const bf16* __restrict__ B, out_t* __restrict__ C, int M, int N, int K,
    int lda, int ldb, int ldc, int64_t batch_a, int64_t batch_b, int64_t batch_c) {
  __shared__ __attribute__((aligned(1024))) bf16 As0[Gemm::ATile::kBytes / 2], As1[Gemm::ATile::kBytes / 2];
  __shared__ __attribute__((aligned(1024))) bf16 Bs0[Gemm::BTile::kBytes / 2], Bs1[Gemm::BTile::kBytes / 2];

  const int batch = blockIdx.y;
  A += batch * batch_a;
  B += batch * batch_b;
  C += batch * batch_c;

  const int tiles_m = (M + Gemm::BM - 1) / Gemm::BM, tiles_n = (N + Gemm::BN - 1) / Gemm::BN;
  int tm, tn;
  grouped_tile<GROUP_M>(xcd_remap(blockIdx.x, tiles_m * tiles_n), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * Gemm::BM, n0 = tn * Gemm::BN;

  Gemm g(A, B, M, N, K, lda, ldb, m0, n0);
  const int tiles_k = (K + kSliceK - 1) / kSliceK;

  // One K tile from stage (as, bs), its MFMAs interleaved with the loads of the next tile into
  // (next_as, next_bs); past the last tile those loads read zeros into a stage no one reads again.
  auto step = [&](int kt, const bf16* as, const bf16* bs, bf16* next_as, bf16* next_bs) {
    g.prepare(kt + 1, tiles_k);
    const uint32_t soff = static_cast<uint32_t>(kt + 1) * kRowBytes;
    for (int ks = 0; ks < 2; ++ks) {
      bf16x8 a[Gemm::TM], b[Gemm::TN];
      g.read_half(as, bs, ks, a, b);
      setprio<1>();
      for (int i = 0; i < Gemm::TM; ++i)
        for (int j = 0; j < Gemm::TN; ++j) {
          g.mma(i, j, a, b);
          const int n = ks * Gemm::TM * Gemm::TN + i * Gemm::TN + j + 1;
          if (n % MFMA_PER_LOAD == 0) {
            const int q = n / MFMA_PER_LOAD - 1;
            if (q < Gemm::A_LOADS) g.load_a(q, next_as, soff);
            else g.load_b(q - Gemm::A_LOADS, next_bs, soff);
            __builtin_amdgcn_sched_group_barrier(0x008, MFMA_PER_LOAD, 0);  // these MFMAs, then
            __builtin_amdgcn_sched_group_barrier(0x020, 1, 0);              // one vector-memory load
          }
        }
      setprio<0>();
    }
    wait_vmcnt<0>();
    barrier();
  };

  g.prepare(0, tiles_k);
  g.fill(As0, Bs0, 0);
  wait_vmcnt<0>();
  barrier();
  for (int kt = 0; kt < tiles_k; kt += 2) {  // unrolled by two so each stage is a constant address
    step(kt, As0, Bs0, As1, Bs1);
    if (kt + 1 < tiles_k) step(kt + 1, As1, Bs1, As0, Bs0);
  }

  const TileStore<out_t> out(C, M, N, ldc);
  g.for_each_output([&](int r, int c, int ur, float v) { out.store(m0 + r, n0 + c, ur, v); });
}
