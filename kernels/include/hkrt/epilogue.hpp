// Epilogue arithmetic shared by the GEMM kernels: act(alpha * acc + beta * c + bias).
#pragma once
#include <type_traits>

#include "hkrt/buffer.hpp"
#include "hkrt/types.hpp"

namespace hkrt {

enum Activation { kNone = 0, kRelu = 1, kGelu = 2, kSilu = 3 };

// gelu is the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) with tanh(u) = 1 - 2/(e^2u + 1);
// gelu and silu use the hardware exp and reciprocal (about 1 ulp each). (x / (1 + e^-2u), the same function
// in four VALU operations fewer, took gemm_small_m128 to 129 VGPRs: one resident block less.)
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

// act(alpha * v + beta * Cin + bias) of one element of a tile: Cin (M x N fp32, row stride ld_cin) and bias
// (N fp32) are read through range-checked buffers, and a null one gives a zero-sized buffer, which reads
// zeros: no branches. Applied to the accumulators in place before any store, so that its loads do not
// wait behind the stores' acknowledgements (vmcnt counts both, in order) and loads of one address merge.
struct Epilogue {
  rsrc_t cin_buf, bias_buf;
  int ld_cin;
  float alpha, beta;

  __device__ Epilogue(const float* Cin, int M, int ld_cin_, const float* bias, int N, float alpha_, float beta_)
      : ld_cin(ld_cin_), alpha(alpha_), beta(beta_) {
    cin_buf = make_buffer(Cin, Cin ? static_cast<uint32_t>(M) * ld_cin * 4 : 0);
    bias_buf = make_buffer(bias, bias ? static_cast<uint32_t>(N) * 4 : 0);
  }

  // Element (row + urow, col); urow is wave-uniform (see TileGemm::for_each_output).
  template <int ACT>
  __device__ float apply(int row, int col, int urow, float v) const {
    const float b = load_f32(bias_buf, static_cast<uint32_t>(col) * 4);
    const float c = load_f32(cin_buf, (static_cast<uint32_t>(row) * ld_cin + col) * 4 +
                                          static_cast<uint32_t>(urow * ld_cin) * 4);
    return activate<ACT>(alpha * v + beta * c + b);
  }
};

__device__ inline float to_out(float x, float) { return x; }
__device__ inline bf16 to_out(float x, bf16) { return to_bf16(x); }

}  // namespace hkrt
