// Device-side transpose of a bf16 matrix: dst (cols x rows, row stride ld_dst) = src^T, src rows x cols
// (row stride ld_src). The fast GEMM kernels take B as N x K; this turns a K x N B into that form on
// the device (memory-bound, and needed once for a weight). 64 x 64 tiles through LDS, 256 threads.
#include "hkrt/types.hpp"

using namespace hkrt;

namespace {
constexpr int T = 64, THREADS = 256;
}

extern "C" __global__ __launch_bounds__(THREADS) void transpose_bf16(const bf16* __restrict__ src,
                                                                     bf16* __restrict__ dst, int rows, int cols,
                                                                     int ld_src, int ld_dst) {
  __shared__ bf16 tile[T][T + 2];  // +2 keeps column reads off a single bank
  const int r0 = blockIdx.y * T, c0 = blockIdx.x * T;
  for (int i = threadIdx.x; i < T * T; i += THREADS) {
    const int r = r0 + i / T, c = c0 + i % T;
    if (r < rows && c < cols) tile[i / T][i % T] = src[static_cast<int64_t>(r) * ld_src + c];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < T * T; i += THREADS) {
    const int c = c0 + i / T, r = r0 + i % T;  // dst row c, column r
    if (r < rows && c < cols) dst[static_cast<int64_t>(c) * ld_dst + r] = tile[i % T][i / T];
  }
}
