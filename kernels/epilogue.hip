// GEMM epilogue over an fp32 accumulator: out = act(alpha * acc + beta * c + bias).
//
// acc is M x N fp32 (row stride ld_acc); c, if non-null, M x N fp32 (row stride ldc); bias, if
// non-null, N fp32; out is M x N (row stride ld_out), bf16 (round-to-nearest-even) or, with
// HKRT_OUT_F32, fp32. act: 0 none, 1 relu, 2 gelu (tanh form), 3 silu. Strides are in elements.
// Used after a GEMM kernel without a fused epilogue; one thread per output element. The activations
// use the fast exp and reciprocal (about 1 ulp each), well inside a bf16 result's rounding.
#include "hkrt/types.hpp"

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif

using namespace hkrt;

#if HKRT_OUT_F32
using out_t = float;
__device__ inline out_t store(float x) { return x; }
#else
using out_t = bf16;
__device__ inline out_t store(float x) { return to_bf16(x); }
#endif

namespace {

constexpr int THREADS = 256;

__device__ inline float activate(float x, int act) {
  switch (act) {
    case 1: return x > 0.0f ? x : 0.0f;
    case 2: {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh(u) = 1 - 2 / (exp(2u) + 1)
      const float u = 0.7978845608f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (2.0f - 2.0f * __builtin_amdgcn_rcpf(__expf(2.0f * u) + 1.0f));
    }
    case 3: return x * __builtin_amdgcn_rcpf(1.0f + __expf(-x));
    default: return x;
  }
}

}  // namespace

extern "C" __global__ __launch_bounds__(THREADS) void gemm_epilogue(
    const float* __restrict__ acc, const float* __restrict__ c, const float* __restrict__ bias,
    out_t* __restrict__ out, int M, int N, int ld_acc, int ldc, int ld_out, float alpha, float beta, int act) {
  const int col = blockIdx.x * THREADS + threadIdx.x;
  if (col >= N) return;
  const float b = bias ? bias[col] : 0.0f;
  for (int row = blockIdx.y; row < M; row += gridDim.y) {  // grid.y is capped at 65535
    float x = alpha * acc[static_cast<int64_t>(row) * ld_acc + col] + b;
    if (c) x += beta * c[static_cast<int64_t>(row) * ldc + col];
    out[static_cast<int64_t>(row) * ld_out + col] = store(activate(x, act));
  }
}
