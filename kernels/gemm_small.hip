// Small and skinny bf16 GEMMs for gfx950: 64x128 block tile, 4 waves (1 x 4, 64 x 32 each), split-K.
//
// For problems that cannot fill 256 CUs with 256x256 tiles (decode-like M <= 128, small N): grid.z
// splits the K tiles into ranges, each block accumulates its range and writes fp32 partial products
// to W + split * M * N (row stride N); the epilogue kernel sums the splits and applies
// alpha/beta/bias/activation and the output type. C = A * B^T, A M x K and B N x K K-contiguous;
// edge rules as in hkrt/gemm_tile.hpp.
//
// Batches: grid (tiles, batch, splits); blockIdx.y picks the batch (z is taken by the splits). Its A and B
// lie batch_a, batch_b elements (64-bit) past the previous one's (batch_b 0 shares one B), its partials
// batch_w elements past the previous batch's (splits * M * N when packed).
#include "hkrt/gemm_tile.hpp"
#include "hkrt/schedule.hpp"

using namespace hkrt;

namespace {
using Gemm = TileGemm<64, 128, 1, 4>;
constexpr int GROUP_M = 8;
}  // namespace

extern "C" __global__ __launch_bounds__(Gemm::THREADS) void gemm_small(
    const bf16* __restrict__ A, const bf16* __restrict__ B, float* __restrict__ W, int M, int N, int K,
    int lda, int ldb, int64_t batch_a, int64_t batch_b, int64_t batch_w) {
  __shared__ __attribute__((aligned(1024))) bf16 As0[Gemm::ATile::kBytes / 2], As1[Gemm::ATile::kBytes / 2];
  __shared__ __attribute__((aligned(1024))) bf16 Bs0[Gemm::BTile::kBytes / 2], Bs1[Gemm::BTile::kBytes / 2];

  const int batch = blockIdx.y;
  A += batch * batch_a;
  B += batch * batch_b;
  W += batch * batch_w;

  const int tiles_m = (M + Gemm::BM - 1) / Gemm::BM, tiles_n = (N + Gemm::BN - 1) / Gemm::BN;
  int tm, tn;
  grouped_tile<GROUP_M>(xcd_remap(blockIdx.x, tiles_m * tiles_n), tiles_m, tiles_n, tm, tn);
  const int m0 = tm * Gemm::BM, n0 = tn * Gemm::BN;
  const int tiles_k = (K + kSliceK - 1) / kSliceK, per_split = (tiles_k + gridDim.z - 1) / gridDim.z;
  const int kt_begin = min(tiles_k, static_cast<int>(blockIdx.z) * per_split);
  const int kt_end = min(tiles_k, kt_begin + per_split);

  Gemm g(A, B, M, N, K, lda, ldb, m0, n0);
  g.run({As0, As1, Bs0, Bs1}, kt_begin, kt_end);

  float* part = W + static_cast<size_t>(blockIdx.z) * M * N;
  const TileStore<float, false> out(part, M, N, N);
  g.for_each_output([&](int r, int c, int ur, float v) { out.store(m0 + r, n0 + c, ur, v); });
}
