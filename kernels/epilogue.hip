// GEMM epilogue over fp32 accumulators: out = act(alpha * sum_s acc_s + beta * c + bias).
//
// acc holds `splits` partial products (split-K), each M x N fp32 (row stride ld_acc), split_stride
// elements apart; c, if non-null, M x N fp32 (row stride ldc); bias, if
// non-null, N fp32; out is M x N (row stride ld_out), bf16 (round-to-nearest-even) or, with
// HKRT_OUT_F32, fp32. act: 0 none, 1 relu, 2 gelu (tanh form), 3 silu. Strides are in elements.
// Used after a GEMM kernel without a fused epilogue; one thread per column and about eight rows.
// Batches: grid (N / 256, rows, batch); blockIdx.z picks the batch (y strides over the rows), whose acc, c
// and out lie batch_acc, batch_c, batch_out elements (64-bit) past the previous one's; bias is shared.
#include "hkrt/epilogue.hpp"

#ifndef HKRT_OUT_F32
#define HKRT_OUT_F32 0
#endif

using namespace hkrt;

#if HKRT_OUT_F32
using out_t = float;
#else
using out_t = bf16;
#endif

constexpr int THREADS = 256;

extern "C" __global__ __launch_bounds__(THREADS) void gemm_epilogue(
    const float* __restrict__ acc, const float* __restrict__ c, const float* __restrict__ bias,
    out_t* __restrict__ out, int M, int N, int ld_acc, int ldc, int ld_out, float alpha, float beta, int act,
    int splits, int64_t split_stride, int64_t batch_acc, int64_t batch_c, int64_t batch_out) {
  const int col = blockIdx.x * THREADS + threadIdx.x;
  if (col >= N) return;
  acc += blockIdx.z * batch_acc;
  if (c) c += blockIdx.z * batch_c;  // a null c stays null: no beta * c term
  out += blockIdx.z * batch_out;
  const float b = bias ? bias[col] : 0.0f;
  // grid.y is capped at 65535, and the runtime asks for an eighth of the rows (hkrt/execute.py,
  // EPILOGUE_ROWS): each thread's loads of its eight rows are issued together (one row at a time, a wave kept a
  // quarter of a kilobyte in flight). Compiled once per activation, so that no element branches on it, and
  // once for one split, whose rows then have no inner loop to keep their loads apart.
  auto rows = [&](auto a, auto one_split) {
#pragma unroll 8
    for (int row = blockIdx.y; row < M; row += gridDim.y) {
      const float* p = acc + static_cast<int64_t>(row) * ld_acc + col;
      float sum = p[0];
      if constexpr (!one_split())
        for (int s = 1; s < splits; ++s) sum += p[s * split_stride];
      float x = alpha * sum + b;
      if (c) x += beta * c[static_cast<int64_t>(row) * ldc + col];
      out[static_cast<int64_t>(row) * ld_out + col] = to_out(activate<a()>(x), out_t{});
    }
  };
  with_activation(act, [&](auto a) {
    if (splits == 1)
      rows(a, std::true_type{});
    else
      rows(a, std::false_type{});
  });
}
