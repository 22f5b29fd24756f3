// Epilogue arithmetic shared by the GEMM kernels: act(alpha * acc + beta * c + bias).
#pragma once
#include <type_traits>

#include "hkrt/buffer.hpp"
#include "hkrt/types.hpp"

namespace hkrt {

enum Activation { kNone = 0, kRelu = 1, kGelu = 2, kSilu = 3 };

// gelu is the tanh form 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as
// x (1 - 1 / (e^2u + 1)) with e^2u = 2^(x (K0 + K1 x^2)), the constants folded: six VALU operations and
// two transcendentals. The epilogue is VALU-bound (8192^3: 128 elements per lane per tile), so every
// operation counts. The raw v_exp_f32 and v_rcp_f32 (about 1 ulp each, no range fix-up): 2^u overflowing
// to inf gives x, underflowing to 0 gives 0; gelu(inf) = inf, gelu(-inf) and NaN give NaN, as numpy's
// formula does. silu is x / (1 + e^-x) the same way.
constexpr float kLog2e = 1.4426950409f;
constexpr float kGeluK0 = 2.0f * 0.7978845608f * kLog2e, kGeluK1 = kGeluK0 * 0.044715f;  // 2 sqrt(2/pi) log2(e)

template <int ACT>
__device__ inline float activate(float x) {
  if constexpr (ACT == kRelu) {
    return x < 0.0f ? 0.0f : x;  // NaN stays NaN (numpy's maximum; IEEE 754-2019 maximum)
  } else if constexpr (ACT == kGelu) {
    const float e = __builtin_amdgcn_exp2f(x * __builtin_fmaf(kGeluK1, x * x, kGeluK0));
    return x * (1.0f - __builtin_amdgcn_rcpf(e + 1.0f));
  } else if constexpr (ACT == kSilu) {
    return x * __builtin_amdgcn_rcpf(1.0f + __builtin_amdgcn_exp2f(x * -kLog2e));
  } else {
    return x;
  }
}

// The same on two elements at once: the arithmetic on f32x2 compiles to the packed v_pk_mul/fma/add_f32,
// two elements per instruction; the transcendentals stay one per element.
template <int ACT>
__device__ inline f32x2 activate(f32x2 x) {
  if constexpr (ACT == kGelu) {
    const f32x2 u = x * (kGeluK1 * (x * x) + kGeluK0);
    const f32x2 r = {__builtin_amdgcn_rcpf(__builtin_amdgcn_exp2f(u.x) + 1.0f),
                     __builtin_amdgcn_rcpf(__builtin_amdgcn_exp2f(u.y) + 1.0f)};
    return x * (1.0f - r);
  } else {
    return f32x2{activate<ACT>(x.x), activate<ACT>(x.y)};
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

// act(alpha * v + beta * Cin + bias) of the elements of a tile, two rows of a column at a time: Cin (M x N
// fp32, row stride ld_cin) and bias (N fp32) are read through range-checked buffers, and a null Cin gives a
// zero-sized buffer, which reads zeros: no branches. Applied to the accumulators in place before any store,
// so that its loads do not wait behind the stores' acknowledgements (vmcnt counts both, in order) and loads
// of one address merge.
struct Epilogue {
  rsrc_t cin_buf, bias_buf;
  int ld_cin;
  float alpha, beta;
  bool has_c, has_bias;

  __device__ Epilogue(const float* Cin, int M, int ld_cin_, const float* bias, int N, float alpha_, float beta_)
      : ld_cin(ld_cin_), alpha(alpha_), beta(beta_), has_c(Cin != nullptr), has_bias(bias != nullptr) {
    cin_buf = make_buffer(Cin, Cin ? static_cast<uint32_t>(M) * ld_cin * 4 : 0);
    bias_buf = make_buffer(bias, bias ? static_cast<uint32_t>(N) * 4 : 0);
  }

  // Calls f(std::integral_constant<bool, HAS_C>{}): code applying the epilogue to a whole tile is compiled
  // with and without the beta * Cin term, so that a product without Cin issues no load and no address
  // arithmetic for it (three VALU operations of about seventeen per element with gelu).
  template <class F>
  __device__ void with_cin(F&& f) const {
    if (has_c)
      f(std::true_type{});
    else
      f(std::false_type{});
  }

  // Whether act(alpha * v + beta * Cin + bias) is v itself: no Cin, no bias, alpha 1, no activation.
  __device__ bool identity(int act) const { return !has_c && !has_bias && alpha == 1.0f && act == kNone; }

  // The bias of column col (0 without one: no load, so nothing to wait for).
  __device__ float bias_at(int col) const { return has_bias ? load_f32(bias_buf, static_cast<uint32_t>(col) * 4) : 0.0f; }

  // Elements (row + urow, col) and (row + urow + 1, col), urow wave-uniform (see TileGemm::for_each_output),
  // with b = bias_at(col): one column, so one bias; the arithmetic on the pair runs on the packed VALU.
  template <int ACT, bool HAS_C = true>
  __device__ f32x2 apply(int row, int col, int urow, f32x2 v, float b) const {
    if constexpr (!HAS_C) return activate<ACT>(alpha * v + b);
    const uint32_t at = (static_cast<uint32_t>(row) * ld_cin + col) * 4 + static_cast<uint32_t>(urow * ld_cin) * 4;
    const f32x2 c = {load_f32(cin_buf, at), load_f32(cin_buf, at + static_cast<uint32_t>(ld_cin) * 4)};
    return activate<ACT>(alpha * v + beta * c + b);
  }

  // Elements (row + urow, col .. col + 3) (one row: TileGemm's row-run layout), with the biases b of
  // those columns, in two packed pairs.
  template <int ACT, bool HAS_C = true>
  __device__ f32x4 apply_row(int row, int col, int urow, f32x4 v, f32x4 b) const {
    f32x2 lo = alpha * f32x2{v[0], v[1]}, hi = alpha * f32x2{v[2], v[3]};
    if constexpr (HAS_C) {
      const uint32_t at = (static_cast<uint32_t>(row) * ld_cin + col) * 4 + static_cast<uint32_t>(urow * ld_cin) * 4;
      lo += beta * f32x2{load_f32(cin_buf, at), load_f32(cin_buf, at + 4)};
      hi += beta * f32x2{load_f32(cin_buf, at + 8), load_f32(cin_buf, at + 12)};
    }
    lo = activate<ACT>(lo + f32x2{b[0], b[1]});
    hi = activate<ACT>(hi + f32x2{b[2], b[3]});
    return f32x4{lo.x, lo.y, hi.x, hi.y};
  }
};

__device__ inline float to_out(float x, float) { return x; }
__device__ inline bf16 to_out(float x, bf16) { return to_bf16(x); }

}  // namespace hkrt
