// Device-side repack of a bf16 matrix for the fast GEMM kernels (which take K-contiguous operands with
// K a multiple of 8 and 16-byte aligned rows): dst (dst_rows x dst_cols, row stride ld_dst) gets
// src (rows x cols, row stride ld_src) or, with transpose, src^T, zero-filled beyond the source.
// Turns a K x N B into N x K, and pads K up to a multiple of 8, on the device: memory-bound, and done
// once for a weight. 64 x 64 tiles through LDS, 256 threads.
// Batches: grid (dst column tiles, dst row tiles, batch); blockIdx.z picks the batch, whose src and dst lie
// batch_src, batch_dst elements (64-bit) past the previous one's.
#include "hkrt/types.hpp"

using namespace hkrt;

namespace {
constexpr int T = 64, THREADS = 256;
}

extern "C" __global__ __launch_bounds__(THREADS) void repack_bf16(const bf16* __restrict__ src,
                                                                  bf16* __restrict__ dst, int rows, int cols,
                                                                  int ld_src, int dst_rows, int dst_cols,
                                                                  int ld_dst, int transpose, int64_t batch_src,
                                                                  int64_t batch_dst) {
  __shared__ bf16 tile[T][T + 2];  // +2 keeps a transposed read off a single bank
  src += blockIdx.z * batch_src;
  dst += blockIdx.z * batch_dst;
  const int r0 = blockIdx.y * T, c0 = blockIdx.x * T;  // of dst
  const bf16 zero = static_cast<bf16>(0.0f);
  // Stage the source block that feeds dst block (r0, c0): element (i, j) of the tile is dst's.
  for (int e = threadIdx.x; e < T * T; e += THREADS) {
    const int i = e / T, j = e % T;
    // transposed: read along source rows (dst columns) so that global reads stay contiguous
    const int sr = transpose ? c0 + i : r0 + i, sc = transpose ? r0 + j : c0 + j;
    const bf16 v = (sr < rows && sc < cols) ? src[static_cast<int64_t>(sr) * ld_src + sc] : zero;
    if (transpose) tile[j][i] = v;
    else tile[i][j] = v;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < T * T; e += THREADS) {
    const int i = e / T, j = e % T, r = r0 + i, c = c0 + j;
    if (r < dst_rows && c < dst_cols) dst[static_cast<int64_t>(r) * ld_dst + c] = tile[i][j];
  }
}
