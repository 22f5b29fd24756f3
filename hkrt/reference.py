"""The float64 reference for hkrt's GEMM and the error bound its results must meet.

One derivation, shared by the tests (whatever kernel or launch path they exercise) and by
`python -m hkrt demo`, so that what "correct" means is stated once.
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np

BF16 = np.dtype(ml_dtypes.bfloat16)

U32 = 2.0 ** -24   # unit roundoff of fp32 (24-bit significand, round to nearest)
U16 = 2.0 ** -8    # unit roundoff of bf16 (8-bit significand): |RNE(y) - y| <= 2^-8 |y|
MFMA_CHUNK = 8     # K depth an MFMA may sum before a rounding (the CDNA3 model; the exact one sums 32)
FP32_SUBNORMAL_FLOOR = 2.0 ** -126  # results in fp32's subnormal range may be flushed to zero


def bf64(x) -> np.ndarray:
    """x rounded to bf16 (ml_dtypes, round to nearest even), as float64."""
    return np.asarray(x).astype(BF16).astype(np.float64)


def activate64(x: np.ndarray, activation) -> np.ndarray:
    """The activation in float64, with the definitions the kernels implement."""
    with np.errstate(over="ignore", invalid="ignore"):
        if activation == "relu":  # NaN stays NaN, as numpy's maximum does
            return np.where(x < 0, 0.0, x)
        if activation == "gelu":  # the tanh form
            return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
        if activation == "silu":
            return x / (1.0 + np.exp(-x))
    return x


def expected(a, b, *, bias=None, activation=None, alpha=1.0, beta=0.0, c=None, out_dtype=BF16, b_nk=False,
             splits=1):
    """(reference, tolerance), float64 arrays of the result's shape.

    a is (..., M, K); b is (..., K, N), or (..., N, K) with b_nk=True.
    The reference is act(alpha * A @ B + beta * c + bias) in float64, from the bf16-rounded A and B.
    The tolerance bounds what bf16 inputs with fp32 accumulation may legitimately differ by:
    - the products of two bf16 numbers are exact in fp32 (8 + 8 significant bits). How an MFMA sums them
      is not documented (docs/facts.md §1.8, OQ 1); the bound holds for both models the emulator offers
      (HKRT_EMU_MFMA). Exact: 32 products summed exactly, one fp32 rounding per 32-deep K step. CDNA3's
      chunked model: per 8-deep chunk, each product truncated below 2^-24 of the chunk's largest
      (at most 8 * 2^-24 * (|A| @ |B|) over all chunks, since the chunks' largest products sum to at most
      |A| @ |B|), the accumulator truncated once its exponent is below the chunk's (at most 2^-24 of that
      chunk's largest: 2^-24 * (|A| @ |B|) in all), the chunk sum floored to 2^-31 of the larger (2^-7 of a
      rounding) and one rounding per chunk. So, with R = ceil(K/8) * (1 + 2^-7) + 9 >= ceil(K/32), the
      sum is off by at most R * 2^-24 * (|A| @ |B|) (first order; doubled below for the second-order terms);
    - split-K (`splits` > 1, partial sums over 64-aligned K ranges added afterwards in fp32, as the
      epilogue kernel does): the ranges' own steps add up to at most R roundings, each bounded by
      the whole |A| @ |B|, and each of the splits - 1 fp32 additions rounds once more, bounded by it too.
      Partials summed exactly (in float64, by a test) need splits=1;
    - a separate epilogue (bias, activation, alpha, beta) works in fp32: alpha and beta are rounded to
      fp32, and alpha*acc, beta*c and the two additions round once each: 4 * 2^-24 * (|alpha acc| +
      |beta c| + |bias|);
    - relu is 1-Lipschitz, gelu and silu at most 1.13-Lipschitz (1.2 used), carrying the error above
      through; gelu and silu use the hardware exp and reciprocal (about 1 ulp each, 2^-23 relative) in
      0.5 x (2 - 2/(exp(2u)+1)) and x/(1+exp(-x)): with the fp32 roundings of the formulas that is a few
      2^-23 relative to x; 2^-19 |x| covers it with margin;
    - a bf16 result adds one round-to-nearest-even: 2^-8 relative to the value before rounding.
    The bound is far below a single missing or duplicated product (see test_tolerance_catches_errors).
    """
    A, B = bf64(a), bf64(b)
    if b_nk:
        B = np.swapaxes(B, -1, -2)
    k = A.shape[-1]
    prod, mag = A @ B, np.abs(A) @ np.abs(B)
    fused = bias is not None or activation not in (None, "none") or alpha != 1.0 or beta != 0.0
    x, xmag = alpha * prod, abs(alpha) * mag
    if beta != 0.0:
        c64 = np.asarray(c).astype(np.float64)
        x, xmag = x + beta * c64, xmag + abs(beta) * np.abs(c64)
    if bias is not None:
        b64 = np.asarray(bias).astype(np.float64)
        x, xmag = x + b64, xmag + np.abs(b64)
    roundings = max(1, -(-k // MFMA_CHUNK)) * (1 + 2.0 ** -7) + 9 + (splits - 1)
    err = 2 * roundings * U32 * abs(alpha) * mag
    if fused:
        err = err + 4 * U32 * xmag
    y = activate64(x, activation)
    if activation in ("gelu", "silu"):
        err = 1.2 * err + 2.0 ** -19 * (np.abs(x) + err)
    if np.dtype(out_dtype) == BF16:
        tol = U16 * (np.abs(y) + err) + err
    else:
        tol = err + 2 * U32 * (np.abs(y) + err)
    return y, tol + FP32_SUBNORMAL_FLOOR


def outside(got, ref, tol) -> np.ndarray:
    """Where got lies outside ref +- tol; NaN (e.g. a poisoned element never written) counts as outside."""
    return ~(np.abs(np.asarray(got).astype(np.float64) - ref) <= tol)


def describe_outside(got, ref, tol, what="result") -> str | None:
    """None when every element of got is within the bound, else a message naming the first one outside."""
    g = np.asarray(got)
    if g.shape != ref.shape:
        return f"{what}: shape {g.shape}, expected {ref.shape}"
    g = g.astype(np.float64)
    bad = outside(g, ref, tol)
    if not bad.any():
        return None
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return (f"{what}: {int(bad.sum())} of {bad.size} elements outside the error bound; first at "
            f"{idx}: got {g[idx]!r}, expected {ref[idx]!r} +- {tol[idx]:.3g} "
            f"(max excess {np.nanmax(np.where(bad, np.abs(g - ref) - tol, 0)):.3g})")
