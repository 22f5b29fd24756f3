// MFMA wrappers and the lane maps of their operands (docs/facts.md §1.3).
#pragma once
#include "hkrt/types.hpp"

namespace hkrt {

// D = A(16x32) * B(32x16) + C, fp32 accumulation.
// Lane l holds A row l%16, k = 8*(l/16) .. +7; B column l%16, same k range;
// D rows 4*(l/16) .. +3 of column l%16.
__device__ inline f32x4 mma_16x16x32(const bf16x8& a, const bf16x8& b, const f32x4& c) {
  return __builtin_amdgcn_mfma_f32_16x16x32_bf16(a, b, c, 0, 0, 0);
}

struct Mfma16x16x32 {
  static constexpr int M = 16, N = 16, K = 32;
  // Which operand row/column and k offset a lane supplies.
  __device__ static int operand_row(int lane) { return lane % 16; }
  __device__ static int operand_k(int lane) { return 8 * (lane / 16); }
  // First output row a lane holds (it holds 4 consecutive rows of column lane%16).
  __device__ static int out_row(int lane) { return 4 * (lane / 16); }
  __device__ static int out_col(int lane) { return lane % 16; }
};

}  // namespace hkrt
