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

// The counter word of `arrivals` arrivals in launch `epoch`.
__device__ inline unsigned long long arrival_word(unsigned epoch, unsigned arrivals) {
  return static_cast<unsigned long long>(epoch) << 32 | arrivals;
}

// Split-K's meeting point: every block of an output tile calls this once, with the same counter and launch
// epoch, after storing its partial sums. It returns true in the block that arrives last, which from then on
// sees every other block's stores (agent-scope release before the arrival, acquire after it: docs/facts.md
// §9.1). The counter word holds (epoch << 32 | arrivals so far). A block first raises the word to at least
// (epoch << 32), which turns a word left by an earlier launch (a smaller epoch, even one that ended
// part-way) into zero arrivals of this one and leaves this launch's count alone, then adds its arrival:
// two atomics, whatever the contention (a compare-and-swap loop retries once per block that got in first:
// 16 splits took up to 16 round trips). So the words need no reset between launches, as long as each
// launch using them passes a larger epoch than every launch before it.
__device__ inline bool last_to_arrive(unsigned long long* counter, unsigned arrivals, unsigned epoch) {
  __shared__ bool last;
  // this wave's partial stores are visible device-wide before the block arrives
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "agent");
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned long long base = arrival_word(epoch, 0);
    // one thread, one address: the add follows the max in the word's modification order
    __hip_atomic_fetch_max(counter, base, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
    const unsigned long long seen = __hip_atomic_fetch_add(counter, 1ull, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
    last = static_cast<unsigned>(seen) + 1u == arrivals;
  }
  __syncthreads();
  if (last) __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "agent");  // and the other blocks' stores are visible here
  return last;
}

// Whether every other block of an output tile has already arrived at its counter (last_to_arrive, same
// counter, arrivals and epoch), so that this block, arriving now, is the last: it can skip storing a partial
// no one would read. Only a word of this epoch counts. When true the block has arrived (an add whose result
// nobody waits for, so that every tile's word ends the launch counting all its blocks), and the others'
// stores are visible here (acquire after the load that saw their arrivals); when false it has not, and
// stores and arrives as usual (it may still turn out last).
__device__ inline bool others_arrived(unsigned long long* counter, unsigned arrivals, unsigned epoch) {
  __shared__ bool arrived;
  if (threadIdx.x == 0) {
    arrived = __hip_atomic_load(counter, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT) == arrival_word(epoch, arrivals - 1);
    if (arrived) __hip_atomic_fetch_add(counter, 1ull, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
  }
  __syncthreads();
  if (arrived) __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "agent");
  return arrived;
}

}  // namespace hkrt
