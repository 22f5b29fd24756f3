// The first GEMM: C = A * B with bf16 inputs, fp32 accumulation, any M, N, K.
//
// A is M x K (row stride lda). B is K x N (row stride ldb) when HKRT_B_KN is 1,
// else N x K (row stride ldb, the "TN" form). C is M x N (row stride ldc),
// bf16 or, with HKRT_OUT_F32, fp32. Strides are in elements.
//
// Batches: grid (N tiles, M tiles, batch); blockIdx.z picks the batch (x and y are the tile grid), its
// matrices batch_a, batch_b, batch_c elements (64-bit) past the previous one's; batch_b 0 shares one B.
//
// 64x64 block tile, K step 32, 256 threads = 4 waves as 2x2, each wave a
// 32x32 sub-tile made of 2x2 MFMA 16x16x32. One LDS stage: meant to be read
// in one sitting and to prove the pipeline, not to be fast.
#include "hkrt/mfma.hpp"

#ifndef HKRT_B_KN
#define HKRT_B_KN 1
#endif
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

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 256;
constexpr int LDS_ROW = BK + 8;  // padded row keeps 16-byte alignment (80 bytes) and spreads banks

// Eight consecutive elements of a row, zero outside [0, rows) x [0, cols).
// The vector path needs the whole chunk in range and 16-byte alignment.
__device__ inline bf16x8 load_row8(const bf16* base, int64_t ld, int row, int col, int rows, int cols,
                                   bool aligned) {
  bf16x8 v;
  if (row < rows && col + 8 <= cols && aligned) {
    v = *reinterpret_cast<const bf16x8*>(base + row * ld + col);
  } else {
    for (int i = 0; i < 8; ++i)
      v[i] = (row < rows && col + i < cols) ? base[row * ld + col + i] : static_cast<bf16>(0.0f);
  }
  return v;
}

}  // namespace

extern "C" __global__ __launch_bounds__(THREADS) void gemm_basic(
    const bf16* __restrict__ A, const bf16* __restrict__ B, out_t* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int64_t batch_a, int64_t batch_b, int64_t batch_c) {
  __shared__ __attribute__((aligned(16))) bf16 As[BM][LDS_ROW];
  __shared__ __attribute__((aligned(16))) bf16 Bs[BN][LDS_ROW];  // stored N x K: k contiguous

  A += blockIdx.z * batch_a;
  B += blockIdx.z * batch_b;
  C += blockIdx.z * batch_c;

  const int tid = threadIdx.x, lane = lane_id(), wave = wave_id();
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int wm = (wave / 2) * 32, wn = (wave % 2) * 32;
  const bool a_aligned = (lda % 8 == 0) && (reinterpret_cast<uintptr_t>(A) % 16 == 0);
  const bool b_aligned = (ldb % 8 == 0) && (reinterpret_cast<uintptr_t>(B) % 16 == 0);

  f32x4 acc[2][2] = {};

  for (int k0 = 0; k0 < K; k0 += BK) {
    // Global -> LDS. A: thread owns row tid/4, k chunk 8*(tid%4).
    {
      const int r = tid / 4, c = 8 * (tid % 4);
      *reinterpret_cast<bf16x8*>(&As[r][c]) = load_row8(A, lda, m0 + r, k0 + c, M, K, a_aligned);
    }
#if HKRT_B_KN
    // B is K x N: thread reads 8 consecutive n at one k and writes them transposed.
    {
      const int kk = tid / 8, nn = 8 * (tid % 8);
      const bf16x8 v = load_row8(B, ldb, k0 + kk, n0 + nn, K, N, b_aligned);
      for (int i = 0; i < 8; ++i) Bs[nn + i][kk] = v[i];
    }
#else
    {
      const int r = tid / 4, c = 8 * (tid % 4);
      *reinterpret_cast<bf16x8*>(&Bs[r][c]) = load_row8(B, ldb, n0 + r, k0 + c, N, K, b_aligned);
    }
#endif
    __syncthreads();

    bf16x8 a[2], b[2];
    for (int i = 0; i < 2; ++i)
      a[i] = *reinterpret_cast<const bf16x8*>(
          &As[wm + 16 * i + Mfma16x16x32::operand_row(lane)][Mfma16x16x32::operand_k(lane)]);
    for (int j = 0; j < 2; ++j)
      b[j] = *reinterpret_cast<const bf16x8*>(
          &Bs[wn + 16 * j + Mfma16x16x32::operand_row(lane)][Mfma16x16x32::operand_k(lane)]);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) acc[i][j] = mma_16x16x32(a[i], b[j], acc[i][j]);
    __syncthreads();
  }

  // Each lane holds rows out_row..out_row+3 of column out_col in every 16x16 tile.
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      const int col = n0 + wn + 16 * j + Mfma16x16x32::out_col(lane);
      for (int r = 0; r < 4; ++r) {
        const int row = m0 + wm + 16 * i + Mfma16x16x32::out_row(lane) + r;
        if (row < M && col < N) {
#if HKRT_OUT_F32
          C[static_cast<int64_t>(row) * ldc + col] = acc[i][j][r];
#else
          C[static_cast<int64_t>(row) * ldc + col] = to_bf16(acc[i][j][r]);
#endif
        }
      }
    }
}
