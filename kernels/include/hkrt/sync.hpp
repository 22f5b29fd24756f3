// Waits, barriers, priorities and scheduling fences (docs/facts.md §4).
#pragma once
#include <hip/hip_runtime.h>

namespace hkrt {

// s_waitcnt immediates: vmcnt in [3:0] and [15:14], expcnt [6:4], lgkmcnt [11:8]; a field at its
// maximum means "don't wait" on that counter.
constexpr int waitcnt_imm(int vm, int lgkm) {
  return (vm & 0xF) | ((vm >> 4) << 14) | (0x7 << 4) | ((lgkm & 0xF) << 8);
}

// All but the N most recent vector-memory ops (loads, stores, direct-to-LDS) of this wave are done.
template <int N>
__device__ inline void wait_vmcnt() { __builtin_amdgcn_s_waitcnt(waitcnt_imm(N, 15)); }

// All but the N most recent LDS / scalar-memory ops of this wave are done.
template <int N>
__device__ inline void wait_lgkmcnt() { __builtin_amdgcn_s_waitcnt(waitcnt_imm(63, N)); }

// Meet every wave of the workgroup. Waits for no counter: __syncthreads() does not cover
// direct-to-LDS loads, so wait_vmcnt first when other waves will read what this wave loaded.
__device__ inline void barrier() { __builtin_amdgcn_s_barrier(); }

// Stops the compiler from moving instructions across this point (emits nothing).
__device__ inline void sched_fence() { __builtin_amdgcn_sched_barrier(0); }

// Issue priority for this wave (0..3); raised around MFMA clusters so they are not starved.
template <int P>
__device__ inline void setprio() { __builtin_amdgcn_s_setprio(P); }

}  // namespace hkrt
