// Epilogue arithmetic shared by the GEMM kernels: act(alpha * acc + beta * c + bias).
#pragma once
#include <type_traits>

#include "hkrt/types.hpp"

namespace hkrt {

enum Activation { kNone = 0, kRelu = 1, kGelu = 2, kSilu = 3 };

// gelu is the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) with tanh(u) = 1 - 2/(e^2u + 1);
// gelu and silu use the hardware exp and reciprocal (about 1 ulp each).
template <int ACT>
__device__ inline float activate(float x) {
  if constexpr (ACT == kRelu) {
    return x < 0.0f ? 0.0f : x;  // NaN stays NaN (numpy's maximum; IEEE 754-2019 maximum)
  } else if constexpr (ACT == kGelu) {
    const float u = 0.7978845608f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (2.0f - 2.0f * __builtin_amdgcn_rcpf(__expf(2.0f * u) + 1.0f));
  } else if constexpr (ACT == kSilu) {
    return x * __builtin_amdgcn_rcpf(1.0f + __expf(-x));
  } else {
    return x;
  }
}

__device__ inline float activate(float x, int act) {
  switch (act) {
    case kRelu: return activate<kRelu>(x);
    case kGelu: return activate<kGelu>(x);
    case kSilu: return activate<kSilu>(x);
    default: return x;
  }
}

// Calls f(std::integral_constant<int, ACT>{}) for the activation `act`, so that code applying it to many
// elements is compiled once per activation, free of per-element branches.
template <class F>
__device__ inline void with_activation(int act, F&& f) {
  switch (act) {
    case kRelu: f(std::integral_constant<int, kRelu>{}); break;
    case kGelu: f(std::integral_constant<int, kGelu>{}); break;
    case kSilu: f(std::integral_constant<int, kSilu>{}); break;
    default: f(std::integral_constant<int, kNone>{}); break;
  }
}

__device__ inline float to_out(float x, float) { return x; }
__device__ inline bf16 to_out(float x, bf16) { return to_bf16(x); }

}  // namespace hkrt
