// Buffer resource descriptors and buffer loads/stores, including loads straight into LDS
// (docs/facts.md §3). Out-of-range offsets read 0 and drop stores, which is how
// the kernels handle matrix edges.
#pragma once
#include "hkrt/types.hpp"

namespace hkrt {

using rsrc_t = __amdgpu_buffer_rsrc_t;

// data_format 32 in word 3 (a zero format would be an unbound resource); stride 0, no swizzle.
constexpr int kBufferWord3 = 0x00020000;
// A per-lane offset that is out of range for any buffer smaller than 4 GiB - 256 bytes.
constexpr uint32_t kOutOfRange = 0xFFFFFF00u;

__device__ inline rsrc_t make_buffer(const void* base, uint32_t bytes) {
  return __builtin_amdgcn_make_buffer_rsrc(const_cast<void*>(base), 0, static_cast<int>(bytes), kBufferWord3);
}

using lds_ptr_t = __attribute__((address_space(3))) void*;

// 16 bytes per lane into LDS: lane l's bytes land at lds + 16*l (lds, a __shared__ address, is the
// same for the whole wave). Counted by vmcnt like any vector-memory load.
__device__ inline void load_lds_b128(rsrc_t buf, void* lds, uint32_t voffset, uint32_t soffset) {
  __builtin_amdgcn_raw_ptr_buffer_load_lds(buf, (lds_ptr_t)lds, 16, voffset, soffset, 0, 0);
}

__device__ inline float load_f32(rsrc_t buf, uint32_t voffset) {
  return __builtin_bit_cast(float, __builtin_amdgcn_raw_buffer_load_b32(buf, voffset, 0, 0));
}

// 16 bytes per lane (a 16-byte aligned offset), four floats.
__device__ inline f32x4 load_f32x4(rsrc_t buf, uint32_t voffset, uint32_t soffset) {
  return __builtin_bit_cast(f32x4, __builtin_amdgcn_raw_buffer_load_b128(buf, voffset, soffset, 0));
}

__device__ inline void store(rsrc_t buf, uint32_t voffset, uint32_t soffset, f32x4 v) {
  __builtin_amdgcn_raw_buffer_store_b128(__builtin_bit_cast(u32x4, v), buf, voffset, soffset, 0);
}

__device__ inline void store(rsrc_t buf, uint32_t voffset, float v) {
  __builtin_amdgcn_raw_buffer_store_b32(__builtin_bit_cast(uint32_t, v), buf, voffset, 0, 0);
}

__device__ inline void store(rsrc_t buf, uint32_t voffset, bf16 v) {
  __builtin_amdgcn_raw_buffer_store_b16(__builtin_bit_cast(uint16_t, v), buf, voffset, 0, 0);
}

}  // namespace hkrt
