"""The MODE register in the gfx950 emulator (docs/facts.md §13.4): its rounding and denormal fields, set by
s_setreg or by the kernel descriptor, as the VALU ops honour them, against exact rational arithmetic rounded in
each IEEE direction; MFMAs never flush; the default mode is unchanged.

Inputs are random and fresh each run (HKRT_TEST_SEED replays them, as in test_emu_isa.py).
"""
from __future__ import annotations

import struct
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emu_harness import EmuError, new_state, run  # noqa: E402
from kernel_harness import EmuMachine  # noqa: E402
from emu_harness import SEED, snippet_book  # noqa: E402

_GEN = np.random.default_rng([SEED, 3])
SNIPPETS, _, COVERED, snippet = snippet_book()


# ------------------------------------------------------------------------------------------------ the reference

NEAREST, UP, DOWN, ZERO = 0, 1, 2, 3
FORMATS = {"f32": (np.float32, np.uint32, 8, 23), "f64": (np.float64, np.uint64, 11, 52),
           "f16": (np.float16, np.uint16, 5, 10)}


def _value(x) -> Fraction:
    return Fraction(float(x))


def round_to(q: Fraction, fmt: str, mode: int, zero_sign=False):
    """The IEEE result of an exact value q in format fmt under a rounding direction; an exact zero takes
    zero_sign's sign. Returns a numpy scalar of the format."""
    ft, _, ebits, mbits = FORMATS[fmt]
    if q == 0:
        return ft(-0.0) if zero_sign else ft(0.0)
    emax = 2 ** (ebits - 1) - 1
    largest = (2 - Fraction(1, 2 ** mbits)) * Fraction(2) ** emax
    sign, a = (-1 if q < 0 else 1), abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # floor(log2 a), give or take one
    e += (Fraction(2) ** (e + 1) <= a) - (Fraction(2) ** e > a)
    ulp = Fraction(2) ** (max(e, 1 - emax) - mbits)  # the denormal grid below the smallest normal
    lo = (a // ulp) * ulp
    toward_zero = mode == ZERO or (mode == UP and sign < 0) or (mode == DOWN and sign > 0)
    if lo == a:
        pick = lo
    elif mode == NEAREST:
        d_lo, d_hi = a - lo, lo + ulp - a
        pick = lo if d_lo < d_hi or (d_lo == d_hi and (lo / ulp) % 2 == 0) else lo + ulp
    else:
        pick = lo if toward_zero else lo + ulp
    if pick > largest:  # overflow: infinity, or the largest finite value when rounding toward zero
        return ft(sign * float(largest)) if toward_zero and mode != NEAREST else ft(sign * np.inf)
    return ft(sign * float(pick))


def is_denormal(x, fmt) -> bool:
    ft, _, ebits, mbits = FORMATS[fmt]
    return x != 0 and np.isfinite(x) and abs(float(x)) < 2.0 ** (2 - 2 ** (ebits - 1))


def flushed(x, fmt):
    ft = FORMATS[fmt][0]
    return ft(-0.0) if np.signbit(x) else ft(0.0)


def reference(op, xs, fmt, rnd, daz, ftz):
    """One lane of v_add/v_mul/v_fma in format fmt: inputs flushed if daz, the exact result rounded by rnd,
    flushed if ftz and denormal. NaN and infinite operands follow IEEE (numpy)."""
    ft = FORMATS[fmt][0]
    xs = [flushed(x, fmt) if daz and is_denormal(x, fmt) else ft(x) for x in xs]
    if not all(np.isfinite(x) for x in xs):
        with np.errstate(all="ignore"):
            return ft(xs[0] + xs[1]) if op == "add" else ft(xs[0] * xs[1]) if op == "mul" else \
                ft(np.float64(xs[0]) * np.float64(xs[1]) + np.float64(xs[2]))
    v = [_value(x) for x in xs]
    # an exact zero sum is -0 if both terms are -0 or when rounding down, else +0 (IEEE 754 §6.3)
    if op == "add":
        q = v[0] + v[1]
        zs = bool(np.signbit(xs[0]) and np.signbit(xs[1])) or rnd == DOWN
    elif op == "mul":
        q = v[0] * v[1]
        zs = bool(np.signbit(xs[0]) != np.signbit(xs[1]))
    else:
        q = v[0] * v[1] + v[2]
        psign = bool(np.signbit(xs[0]) != np.signbit(xs[1]))
        zs = (psign and bool(np.signbit(xs[2]))) or rnd == DOWN
    r = round_to(q, fmt, rnd, zs)
    return flushed(r, fmt) if ftz and is_denormal(r, fmt) else r


def rand_values(rng, fmt, n=64, denormals=False):
    """Values whose sums and products are mostly inexact, of both signs, some exact cancellations, some
    denormal (if asked) and a few overflowing."""
    ft, ut, ebits, mbits = FORMATS[fmt]
    emax = 2 ** (ebits - 1) - 1
    e = rng.integers(-emax // 2, emax // 2, n)
    m = rng.integers(0, 1 << min(mbits, 50), n).astype(np.float64) / (1 << min(mbits, 50)) + 1.0
    x = (m * np.exp2(e.astype(np.float64))).astype(ft)
    x[rng.random(n) < 0.5] *= -1
    if denormals:
        d = rng.random(n) < 0.4
        bits = rng.integers(1, 1 << min(mbits, 62), n, dtype=np.uint64).astype(ut)
        x[d] = (bits.view(ft) * np.where(rng.random(n) < 0.5, 1, -1).astype(ft))[d]
    big = rng.random(n) < 0.05
    with np.errstate(over="ignore"):
        x[big] = ft(2.0 ** emax) * ft(1.5)
    return x


# ------------------------------------------------------------------------------------------------ VALU ops

def _ops_snippet(key, setup):
    return snippet(key, setup + [
        "v_add_f32 v10, v1, v2", "v_mul_f32 v11, v1, v2", "v_fma_f32 v12, v1, v2, v3",
        "v_add_f64 v[20:21], v[4:5], v[6:7]", "v_mul_f64 v[22:23], v[4:5], v[6:7]",
        "v_fma_f64 v[24:25], v[4:5], v[6:7], v[8:9]",
        "v_add_f16 v13, v30, v31", "v_mul_f16 v14, v30, v31", "v_fma_f16 v15, v30, v31, v32",
        "v_mov_b32 v40, v1", "v_mov_b32 v42, v2", "v_mov_b32 v44, v3",
        "v_pk_fma_f32 v[26:27], v[40:41], v[42:43], v[44:45]"])


for _r in range(4):
    _ops_snippet(f"round:{_r}", [f"s_setreg_imm32_b32 hwreg(HW_REG_MODE, 0, 4), {_r | _r << 2}"])
for _d in range(4):
    _ops_snippet(f"denorm:{_d}", [f"s_setreg_imm32_b32 hwreg(HW_REG_MODE, 4, 4), {_d | _d << 2}"])
_ops_snippet("default", [])


def _inputs(rng, denormals):
    st = new_state(seed=int(rng.integers(1 << 62)))
    f32 = [rand_values(rng, "f32", denormals=denormals) for _ in range(3)]
    f64 = [rand_values(rng, "f64", denormals=denormals) for _ in range(3)]
    f16 = [rand_values(rng, "f16", denormals=denormals) for _ in range(3)]
    f32[1][:8] = -f32[0][:8]  # exact cancellations: the sign of zero depends on the direction
    f64[1][:8] = -f64[0][:8]
    f16[1][:8] = -f16[0][:8]
    for i in range(3):
        st.v[1 + i] = f32[i].view(np.uint32)
        bits = f64[i].view(np.uint64)
        st.v[4 + 2 * i], st.v[5 + 2 * i] = (bits & 0xFFFFFFFF).astype(np.uint32), (bits >> 32).astype(np.uint32)
        st.v[30 + i] = f16[i].view(np.uint16).astype(np.uint32) | (rng.integers(0, 1 << 16, 64) << 16).astype(np.uint32)
    return st, f32, f64, f16


def _check(out, f32, f64, f16, rnd, daz32, ftz32, daz16, ftz16):
    def same(got, want, fmt):
        ft, ut = FORMATS[fmt][:2]
        w = np.asarray(want, ft)
        return (got.view(ut) == w.view(ut)) | (np.isnan(got) & np.isnan(w))

    for reg, op, fmt, src in ((10, "add", "f32", f32), (11, "mul", "f32", f32), (12, "fma", "f32", f32),
                              (20, "add", "f64", f64), (22, "mul", "f64", f64), (24, "fma", "f64", f64),
                              (13, "add", "f16", f16), (14, "mul", "f16", f16), (15, "fma", "f16", f16),
                              (26, "fma", "f32", None)):
        daz, ftz = (daz32, ftz32) if fmt == "f32" else (daz16, ftz16)
        if fmt == "f32":
            got = out.v[reg].view(np.float32)
        elif fmt == "f64":
            got = (out.v[reg].astype(np.uint64) | out.v[reg + 1].astype(np.uint64) << 32).view(np.float64)
        else:
            got = (out.v[reg] & 0xFFFF).astype(np.uint16).view(np.float16)
        if src is None:  # v_pk_fma_f32, low half: v1, v2, v3 (copied) as for v_fma_f32
            src = f32
        n = 3 if op == "fma" else 2
        want = [reference(op, [s[l] for s in src[:n]], fmt, rnd, daz, ftz) for l in range(64)]
        ok = same(got, want, fmt)
        bad = np.nonzero(~ok)[0]
        assert bad.size == 0, (f"v_{op}_{fmt} (v{reg}) round {rnd} daz {daz} ftz {ftz}: lanes {bad[:4].tolist()} "
                               f"inputs {[[repr(s[l]) for s in src[:n]] for l in bad[:2]]} got "
                               f"{[repr(got[l]) for l in bad[:4]]} want {[repr(want[l]) for l in bad[:4]]}")


@pytest.mark.parametrize("rnd", [NEAREST, UP, DOWN, ZERO])
def test_rounding_modes(code, rng, rnd):
    """FP_ROUND (f32 in bits 1:0, f16/f64 in 3:2; 0 nearest even, 1 toward +inf, 2 toward -inf, 3 toward zero)
    on add, mul and fma of every float width, against the exact result rounded in that direction (overflow
    to infinity or the largest finite value, the sign of exact zeros as IEEE gives it)."""
    st, f32, f64, f16 = _inputs(rng, denormals=False)
    out = run(code[f"round:{rnd}"], st)
    _check(out, f32, f64, f16, rnd, 0, 0, 0, 0)


@pytest.mark.parametrize("den", [0, 1, 2, 3])
def test_denormal_modes(code, rng, den):
    """FP_DENORM (f32 in bits 5:4, f16/f64 in 7:6): 0 flushes inputs and results, 1 results only, 2 inputs only,
    3 neither; a flushed value keeps its sign."""
    st, f32, f64, f16 = _inputs(rng, denormals=True)
    out = run(code[f"denorm:{den}"], st)
    daz, ftz = not den & 1, not den & 2
    _check(out, f32, f64, f16, NEAREST, daz, ftz, daz, ftz)


def test_default_mode_keeps_denormals_and_rounds_to_nearest(code, rng):
    st, f32, f64, f16 = _inputs(rng, denormals=True)
    out = run(code["default"], st)
    _check(out, f32, f64, f16, NEAREST, 0, 0, 0, 0)


snippet("flush:others", ["s_setreg_imm32_b32 hwreg(HW_REG_MODE, 4, 4), 0", "v_mov_b32 v10, v1",
                         "v_max_f32 v11, v1, v1", "v_cvt_f64_f32 v[12:13], v1",
                         "v_mfma_f32_16x16x16_bf16 v[20:23], v[2:3], v[4:5], 0", "s_nop 7", "s_nop 3",
                         "v_add_f32 v24, v1, 0"])


def test_mfma_and_moves_never_flush(code, rng):
    """With every flush on: v_mov, v_max (it returns an operand) and the f32 -> f64 conversion keep a denormal
    (docs/facts.md §13.4), and an MFMA keeps denormal inputs and results (CDNA4 ISA §7.4), while v_add flushes."""
    st = new_state(seed=int(rng.integers(1 << 62)))
    den = rng.integers(1, 1 << 23, 64).astype(np.uint32) | (rng.integers(0, 2, 64) << 31).astype(np.uint32)
    st.v[1] = den
    st.v[2] = st.v[3] = np.full(64, 0x00010001, np.uint32)  # bf16 2^-133 (a denormal) everywhere in A
    st.v[4] = st.v[5] = np.full(64, 0x3F803F80, np.uint32)  # bf16 1.0 everywhere in B
    out = run(code["flush:others"], st)
    assert (out.v[10] == den).all() and (out.v[11] == den).all()
    f64 = (out.v[12].astype(np.uint64) | out.v[13].astype(np.uint64) << 32).view(np.float64)
    assert (f64 == den.view(np.float32).astype(np.float64)).all()
    want = np.float32(16 * 2.0 ** -133)  # D = sum over K = 16 of A * B: a denormal fp32
    assert (out.v[20:24].view(np.float32) == want).all()
    assert (out.v[24] == 0).all()  # the input flushed to a signed zero, plus +0: +0


# ------------------------------------------------------------------------------------------------ the registers

snippet("getreg", ["s_getreg_b32 s20, hwreg(HW_REG_MODE)", "s_setreg_imm32_b32 hwreg(HW_REG_MODE, 0, 8), 0x5c",
                   "s_setreg_b32 hwreg(HW_REG_MODE, 2, 2), s1", "s_getreg_b32 s21, hwreg(HW_REG_MODE)",
                   "s_getreg_b32 s22, hwreg(HW_REG_HW_ID)", "s_getreg_b32 s23, hwreg(HW_REG_STATUS)",
                   "s_getreg_b32 s24, hwreg(HW_REG_TRAPSTS)", "s_getreg_b32 s25, hwreg(HW_REG_XCC_ID)",
                   "s_getreg_b32 s26, hwreg(HW_REG_STATUS, 9, 2)"])
snippet("setreg:hw_id", ["s_setreg_imm32_b32 hwreg(HW_REG_HW_ID, 0, 4), 1"])


def test_getreg_setreg(code, rng):
    """MODE's float fields read back what s_setreg wrote; STATUS shows SCC, EXECZ, VCCZ and VALID; HW_ID, TRAPSTS
    and XCC_ID read plausible values; the read-only registers refuse writes by name."""
    st = new_state(seed=int(rng.integers(1 << 62)))
    st.s[1] = 1
    st.scc = 1
    st.s[106] = st.s[107] = 0  # VCC = 0
    out = run(code["getreg"], st)
    assert out.s[20] == 0x3F0
    assert out.s[21] == (0x300 | 0x5C & ~0xC | 1 << 2)
    assert out.s[22] & 0x3F == 0  # the only wave: slot 0 of SIMD 0
    assert out.s[23] & 1 == 1 and out.s[23] >> 9 & 3 == 0b10 and out.s[23] >> 16 & 1 == 1
    assert out.s[24] == 0 and out.s[25] == 0 and out.s[26] == 0b10
    with pytest.raises(EmuError, match="hardware register 4: the emulator treats it as read-only"):
        run(code["setreg:hw_id"], st)


# ------------------------------------------------------------------------------------------------ descriptors

MUL_KERNEL = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ void k(const float *a, const float *b, float *out, unsigned *mode) {
    int i = threadIdx.x;
    out[i] = a[i] * b[i];
    if (i == 0) *mode = __builtin_amdgcn_s_getreg(1 | (31 << 11));  // hwreg(HW_REG_MODE, 0, 32)
}
"""


@pytest.mark.parametrize("flush", [False, True])
def test_descriptor_float_mode(compile_hip, rng, flush):
    """A kernel built with -fgpu-flush-denormals-to-zero has FLOAT_DENORM_MODE_32 = 0 in its descriptor; the
    emulator starts its waves in that MODE (read back by s_getreg) and its fp32 multiply flushes; the default
    build keeps denormals. Neither is refused any more."""
    co = compile_hip(MUL_KERNEL, name=f"mul_{int(flush)}", extra=("-fgpu-flush-denormals-to-zero",) if flush else ())
    dev = EmuMachine(strict=True)
    a = rand_values(rng, "f32", denormals=True)
    b = rand_values(rng, "f32", denormals=True)
    b[:16] = np.float32(2.0 ** -3)  # normal * small: denormal results
    a[:16] = np.float32(2.0 ** -124)
    da, db, dout, dmode = dev.put(a), dev.put(b), dev.put(np.zeros(64, np.float32)), dev.put(np.zeros(1, np.uint32))
    dev.m.launch(dev.load(co), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<QQQQ", da, db, dout, dmode))
    got = dev.get(dout, (64,), np.float32)
    mode = int(dev.get(dmode, (1,), np.uint32)[0])
    assert mode & 0xFF == (0xC0 if flush else 0xF0), f"MODE {mode:#x}"  # fp16/fp64 denormals kept either way
    want = [reference("mul", [a[l], b[l]], "f32", NEAREST, flush, flush) for l in range(64)]
    ok = (got.view(np.uint32) == np.asarray(want, np.float32).view(np.uint32)) | np.isnan(got)
    assert ok.all(), f"lanes {np.nonzero(~ok)[0][:6].tolist()}"


SETREG_KERNEL = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ void k(const float *a, const float *b, float *out) {
    int i = threadIdx.x;
    __builtin_amdgcn_s_setreg(1 | (1 << 11), 3);  // hwreg(HW_REG_MODE, 0, 2) = 3: fp32 rounds toward zero
    out[i] = a[i] + b[i];
}
"""


def test_kernel_setting_its_rounding_with_s_setreg(compile_hip, rng):
    """A compiled kernel switches fp32 rounding to toward-zero with __builtin_amdgcn_s_setreg; its sums are
    truncated, not rounded to nearest."""
    co = compile_hip(SETREG_KERNEL, name="setreg")
    dev = EmuMachine(strict=True)
    a, b = rand_values(rng, "f32"), rand_values(rng, "f32")
    da, db, dout = dev.put(a), dev.put(b), dev.put(np.zeros(64, np.float32))
    dev.m.launch(dev.load(co), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<QQQ", da, db, dout))
    got = dev.get(dout, (64,), np.float32)
    want = np.array([reference("add", [a[l], b[l]], "f32", ZERO, False, False) for l in range(64)], np.float32)
    assert (got.view(np.uint32) == want.view(np.uint32)).all()
    with np.errstate(over="ignore"):
        assert (want != (a + b)).any()  # some sums differ from nearest-even rounding
