// Register types sized to the gfx950 matrix cores (docs/facts.md §1).
#pragma once
#include <hip/hip_runtime.h>
#include <stdint.h>

namespace hkrt {

using bf16 = __bf16;
typedef __bf16 bf16x8 __attribute__((ext_vector_type(8)));   // one MFMA A/B operand: 8 bf16 per lane
typedef float f32x2 __attribute__((ext_vector_type(2)));     // two fp32 for the packed VALU (v_pk_*_f32)
typedef float f32x4 __attribute__((ext_vector_type(4)));     // one 16x16 accumulator: 4 fp32 per lane
typedef uint32_t u32x4 __attribute__((ext_vector_type(4)));  // 16 bytes of a buffer access
typedef float f32x16 __attribute__((ext_vector_type(16)));   // one 32x32 accumulator

constexpr int kWave = 64;

__device__ inline int lane_id() { return threadIdx.x % kWave; }
// Wave-uniform, so addresses built from it stay in scalar registers.
__device__ inline int wave_id() { return __builtin_amdgcn_readfirstlane(threadIdx.x / kWave); }

// A wave-uniform value kept in a VGPR, back in scalar registers.
__device__ inline int unpark(int v) { return __builtin_amdgcn_readfirstlane(v); }
__device__ inline float unpark(float v) { return __builtin_bit_cast(float, unpark(__builtin_bit_cast(int, v))); }
__device__ inline uintptr_t unpark(uint64_t v) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(unpark(static_cast<int>(v >> 32)))) << 32) |
         static_cast<uint32_t>(unpark(static_cast<int>(v)));
}

// fp32 -> bf16 with round-to-nearest-even (hardware v_cvt_pk_bf16_f32 on gfx950).
__device__ inline bf16 to_bf16(float x) { return static_cast<bf16>(x); }

}  // namespace hkrt
