"""The low-precision formats on one wave: every fp8/bf8/fp6/bf6/fp4 conversion (with and without an E8M0 scale,
stochastic rounding included) and the f8f6f4 MFMAs with their scaled forms, against numpy.

Expectations come from ml_dtypes (float8_e4m3fn, float8_e5m2, float6_e2m3fn, float6_e3m2fn, float4_e2m1fn:
decoding every code, and rounding to nearest even), numpy float16/float32/float64, and a table search for
truncation, written from the CDNA4 ISA's description (docs/facts.md §1.15), not from hkrt/emu/core.c. Inputs are
random and fresh each run with the edge cases mixed in (every code of each format, NaN, infinities, values past
the largest finite one, subnormals, exact ties); a failing test prints the seed (HKRT_TEST_SEED replays it).
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emu_harness import EmuError, assemble_listing, new_state, run  # noqa: E402
from emu_harness import SEED, snippet_book  # noqa: E402
from test_emu_isa import f32, mfma_cd_slot, mfma_cd_words, u32, ulp_close  # noqa: E402

from hkrt.emu import decode, isa  # noqa: E402

SNIPPETS, _, COVERED, snippet = snippet_book()
_GEN = np.random.default_rng(SEED)  # choices baked into the assembly (fresh each run, replayed by the seed)


# ------------------------------------------------------------------------------------------------ the formats

@dataclass(frozen=True)
class Fmt:
    name: str
    bits: int
    dtype: np.dtype
    overflow: str   # what a too-large value becomes (MODE.FP16_OVFL = 0): "nan", "inf" or "max"


FMTS = {f.name: f for f in (
    Fmt("fp8", 8, np.dtype(ml_dtypes.float8_e4m3fn), "nan"), Fmt("bf8", 8, np.dtype(ml_dtypes.float8_e5m2), "inf"),
    Fmt("fp6", 6, np.dtype(ml_dtypes.float6_e2m3fn), "max"), Fmt("bf6", 6, np.dtype(ml_dtypes.float6_e3m2fn), "max"),
    Fmt("fp4", 4, np.dtype(ml_dtypes.float4_e2m1fn), "max"), Fmt("f16", 16, np.dtype(np.float16), "inf"),
    Fmt("bf16", 16, np.dtype(ml_dtypes.bfloat16), "inf"), Fmt("f32", 32, np.dtype(np.float32), "inf"))}
NARROW = ("fp8", "bf8", "fp6", "bf6", "fp4")   # the f8f6f4 MFMAs' CBSZ/BLGP codes 0-4


def decode_codes(codes, fmt: str) -> np.ndarray:
    """Values (float64) of codes of a format."""
    f = FMTS[fmt]
    c = np.asarray(codes, np.uint64)
    if f.bits == 32:
        return c.astype(np.uint32).view(np.float32).astype(np.float64)
    if f.bits == 16:
        with np.errstate(invalid="ignore"):  # NaN codes widen to NaN
            return c.astype(np.uint16).view(f.dtype).astype(np.float64)
    return c.astype(np.uint8).view(f.dtype).astype(np.float64)


@functools.lru_cache(maxsize=None)
def _finite_table(fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """The non-negative finite values of a format (up to 16 bits), sorted, and their codes."""
    f = FMTS[fmt]
    assert f.bits <= 16, fmt
    codes = np.arange(1 << (f.bits - 1), dtype=np.uint64)
    vals = decode_codes(codes, fmt)
    keep = np.isfinite(vals)
    order = np.argsort(vals[keep], kind="stable")
    return vals[keep][order], codes[keep][order]


def _special(fmt: str, kind: str, sign) -> np.ndarray:
    """The code of NaN / an overflow of a format, with the given signs."""
    f = FMTS[fmt]
    vals, codes = _finite_table(fmt)
    top = int(codes[-1])
    nan = {"fp8": 0x7F, "bf8": 0x7E, "f16": 0x7E00, "bf16": 0x7FC0}.get(fmt, top)  # 6/4-bit: NaN -> max
    over = {"nan": nan, "inf": {"bf8": 0x7C, "f16": 0x7C00, "bf16": 0x7F80}.get(fmt, 0), "max": top}[f.overflow]
    base = nan if kind == "nan" else over
    return np.where(sign, base | 1 << (f.bits - 1), base).astype(np.uint64)


def encode_rne(x, fmt: str) -> np.ndarray:
    """Codes of x (float64) rounded to nearest even (ml_dtypes / numpy), with the ISA's overflow rule and NaN."""
    f = FMTS[fmt]
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(f.dtype)
    codes = y.view({8: np.uint8, 16: np.uint16, 32: np.uint32}.get(f.bits, np.uint8)).astype(np.uint64)
    if f.bits >= 16:  # IEEE formats: numpy's rounding, overflow to infinity and NaN are the ISA's
        return codes
    sign = np.signbit(x)
    vals, _ = _finite_table(fmt)
    big = np.isinf(x) | ((np.abs(x) > vals[-1]) & ~np.isfinite(decode_codes(codes, fmt)))
    codes = np.where(big | (np.abs(x) > vals[-1]) & (f.overflow == "max"), _special(fmt, "over", sign), codes)
    return np.where(np.isnan(x), _special(fmt, "nan", sign), codes)


def encode_trunc(x, fmt: str) -> np.ndarray:
    """Codes of x truncated toward zero: the largest finite magnitude not above |x|; from the value the next code
    above the largest finite one would have (largest + its ulp) on, the format's overflow."""
    x = np.asarray(x, np.float64)
    vals, codes = _finite_table(fmt)
    a = np.abs(np.where(np.isnan(x), 0, x))
    idx = np.searchsorted(vals, a, side="right") - 1
    out = codes[np.maximum(idx, 0)] | (np.signbit(x).astype(np.uint64) << np.uint64(FMTS[fmt].bits - 1))
    limit = vals[-1] + (vals[-1] - vals[-2])
    out = np.where(a >= limit, _special(fmt, "over", np.signbit(x)), out)
    return np.where(np.isnan(x), _special(fmt, "nan", np.signbit(x)), out)


def sr_add(x32: np.ndarray, random: np.ndarray, fmt: str) -> np.ndarray:
    """The ISA's stochastic rounding step (V_CVT_SR_FP8_F32): the random word's top 23 - m bits are added to
    the fp32 mantissa field, a carry out of it lost; NaN and infinities pass. Then encode_trunc does the rest."""
    m = {"fp8": 3, "bf8": 2, "fp6": 3, "bf6": 2, "fp4": 1, "f16": 10, "bf16": 7}[fmt]
    u = np.asarray(x32, np.float32).view(np.uint32).astype(np.uint64)
    add = np.asarray(random, np.uint64) >> np.uint64(9 + m)
    mixed = (u & 0xFF800000) | ((u + add) & 0x7FFFFF)
    special = (u & 0x7F800000) == 0x7F800000
    return np.where(special, u, mixed).astype(np.uint32).view(np.float32).astype(np.float64)


def prng(r: np.ndarray) -> np.ndarray:
    """V_PRNG_B32: (r << 1) ^ (r[31] ? 197 : 0)."""
    r = np.asarray(r, np.uint64)
    return (((r << np.uint64(1)) & 0xFFFFFFFF) ^ np.where(r >> np.uint64(31), 197, 0).astype(np.uint64))


def get_bits(words: np.ndarray, off: int, width: int) -> np.ndarray:
    """Bits [off, off + width) of each lane's value in registers words (regs, 64), the first register lowest."""
    w = np.asarray(words, np.uint64)
    out = w[off // 32] >> np.uint64(off % 32)
    if off % 32 + width > 32:
        out = out | (w[off // 32 + 1] << np.uint64(32 - off % 32))
    return out & np.uint64((1 << width) - 1)


def pack(codes: list[np.ndarray], width: int, nregs: int) -> np.ndarray:
    """Registers (nregs, 64) holding element e of each lane at bits width*e (the inverse of get_bits)."""
    words = np.zeros((nregs + 1, 64), np.uint64)
    for e, code in enumerate(codes):
        off = e * width
        words[off // 32] |= (np.asarray(code, np.uint64) << np.uint64(off % 32)) & 0xFFFFFFFF
        if off % 32 + width > 32:
            words[off // 32 + 1] |= np.asarray(code, np.uint64) >> np.uint64(32 - off % 32)
    return words[:nregs].astype(np.uint32)


def same_codes(got, want, fmt) -> np.ndarray:
    """Equal codes, where any NaN of the format matches any NaN."""
    got, want = np.asarray(got, np.uint64), np.asarray(want, np.uint64)
    return (got == want) | (np.isnan(decode_codes(got, fmt)) & np.isnan(decode_codes(want, fmt)))


def test_the_reference_tables_match_the_isa():
    """Table 30 of the CDNA4 ISA: largest and smallest values, and which codes are NaN or infinite."""
    for fmt, top, low in (("fp8", 448.0, 2.0 ** -9), ("bf8", 57344.0, 2.0 ** -16), ("fp6", 7.5, 0.125),
                          ("bf6", 28.0, 0.0625), ("fp4", 6.0, 0.5)):
        vals, _ = _finite_table(fmt)
        assert vals[-1] == top and vals[1] == low, fmt
    assert np.isnan(decode_codes([0x7F, 0xFF], "fp8")).all() and np.isinf(decode_codes([0x7C, 0xFC], "bf8")).all()
    assert np.isnan(decode_codes([0x7D, 0x7E, 0x7F], "bf8")).all()


# ------------------------------------------------------------------------------------------------ conversions

@dataclass(frozen=True)
class Conv:
    """One conversion as the ISA describes it (docs/facts.md §1.15)."""
    name: str
    src: str          # element format of the inputs
    dst: str          # element format of the results
    n: int            # elements per lane
    sr: bool = False  # S1 holds the random word
    scaled: bool = False  # the last source's exponent is the scale
    pair: bool = False    # 2xpk16: elements alternate between S0 and S1
    vop1: bool = False

    @property
    def nvals(self) -> int:   # sources holding the elements
        return 2 if self.pair or (self.src == "f32" and self.n == 2 and not self.sr) else 1

    @property
    def in_bits(self) -> int:
        return self.n * FMTS[self.src].bits

    @property
    def out_bits(self) -> int:
        return self.n * FMTS[self.dst].bits

    @property
    def vregs(self) -> int:   # registers of each element source
        return max(1, self.in_bits // 32 // self.nvals)

    @property
    def oregs(self) -> int:
        return max(1, self.out_bits // 32)

    @property
    def nsrc(self) -> int:
        return self.nvals + self.sr + self.scaled


def _conversions() -> list[Conv]:
    out = [Conv(f"v_cvt_f32_{t}", t, "f32", 1, vop1=True) for t in ("fp8", "bf8")]
    out += [Conv(f"v_cvt_pk_f32_{t}", t, "f32", 2, vop1=True) for t in ("fp8", "bf8")]
    out += [Conv(f"v_cvt_pk_{t}_f32", "f32", t, 2) for t in ("fp8", "bf8")]
    out += [Conv(f"v_cvt_sr_{t}_f32", "f32", t, 1, sr=True) for t in ("fp8", "bf8", "f16", "bf16")]
    out += [Conv("v_cvt_pk_f16_f32", "f32", "f16", 2)]
    for name in isa.VOP3.values():
        m = re.fullmatch(r"v_cvt_scalef32_(sr_)?(pk32_|pk_|2xpk16_)?([a-z0-9]+)_([a-z0-9]+)", name)
        if not m:
            continue
        sr, pk, dst, src = bool(m.group(1)), m.group(2) or "", m.group(3), m.group(4)
        n = 32 if pk in ("pk32_", "2xpk16_") else 2 if pk == "pk_" else 1
        out.append(Conv(name, src, dst, n, sr=sr, scaled=True, pair=pk == "2xpk16_"))
    return out


CONVS = {c.name: c for c in _conversions()}


def test_every_conversion_is_described():
    declared = {n for n, op in isa.OPS.items() if op.handler == "valu_lowp_convert"}
    assert set(CONVS) == declared


def opsel_text(c: Conv, bits: int) -> str:
    """llvm-mc's op_sel list for OPSEL bits 3:0 (the assembled encoding is checked against `bits`)."""
    b = [bits >> i & 1 for i in range(4)]
    vals = b if c.out_bits == 8 else [b[0], b[1], 0, b[3]] if c.nsrc == 3 else [b[0], b[1], b[3]]
    return f" op_sel:[{','.join(map(str, vals))}]" if bits else ""


def _regs(first: int, n: int) -> str:
    return f"v{first}" if n == 1 else f"v[{first}:{first + n - 1}]"


def layout(c: Conv) -> tuple[int, list[int]]:
    """(destination register, first register of each source) of a conversion's snippets."""
    srcs, r = [], 16
    for i in range(c.nsrc):
        srcs.append(r)
        r += c.vregs if i < c.nvals else 1
    return 100, srcs


def _opsel_choices(c: Conv) -> list[int]:
    """OPSEL values that select something for this conversion: input byte / half, output byte / half."""
    ins = [0, 1, 2, 3] if c.in_bits == 8 else [0, 1] if c.in_bits == 16 and c.src in NARROW else [0]
    if c.in_bits == 16 and c.src in ("f16", "bf16"):
        ins = [0, 1]   # the half of S0 a one-element 16-bit source is
    outs = [0, 4, 8, 12] if c.out_bits == 8 else [0, 8] if c.out_bits == 16 else [0]
    return sorted({i | o for i in ins for o in outs})


_CONV_CASES = []
for _c in CONVS.values():
    _d, _s = layout(_c)
    _ops = ", ".join([_regs(_d, _c.oregs)] + [_regs(r, _c.vregs if i < _c.nvals else 1) for i, r in enumerate(_s)])
    for _bits in (_opsel_choices(_c) if not _c.vop1 else [0]):
        _CONV_CASES.append(snippet(f"cvt:{_c.name}:{_bits}", [f"{_c.name} {_ops}{opsel_text(_c, _bits)}"],
                                   covers=[_c.name]))
    if _c.vop1:   # the SDWA byte/word selects and a DPP form
        _sels = ["BYTE_1", "BYTE_2", "BYTE_3"] if _c.n == 1 else ["WORD_1"]
        for _sel in _sels:
            _CONV_CASES.append(snippet(f"cvt:{_c.name}:sdwa-{_sel}",
                                       [f"{_c.name}_sdwa {_regs(100, _c.oregs)}, v16 src0_sel:{_sel}"]))
        _dpp = "row_newbcast:3" if _c.n == 2 else "quad_perm:[1,0,3,2]"
        _CONV_CASES.append(snippet(f"cvt:{_c.name}:dpp", [f"{_c.name}_dpp {_regs(100, _c.oregs)}, v16 {_dpp}"]))


def _narrow_words(fmt: str, n: int, nregs: int, rnd: int) -> np.ndarray:
    """Registers packing n codes per lane: element e of lane l is code (64 * rnd + l + 17 e) mod 2^bits, so that
    over four rounds every element position holds every code of an 8-bit format (and each round every code of a
    6- or 4-bit one)."""
    bits = FMTS[fmt].bits
    lanes = np.arange(64, dtype=np.uint64)
    return pack([(64 * rnd + lanes + 17 * e) % (1 << bits) for e in range(n)], bits, nregs)


def _scale_exponents(rng) -> np.ndarray:
    """E8M0 scales per lane: mostly near 127 (unit scale), some at the ends (0, 254) and NaN (255)."""
    e = rng.integers(118, 137, 64)
    k = rng.random(64)
    e[k < 0.08] = rng.choice(np.array([0, 1, 254, 255]), (k < 0.08).sum())
    return e.astype(np.uint32)


def _scale_words(rng, exps: np.ndarray) -> np.ndarray:
    """fp32 words whose exponent field is the scale (mantissa and sign random: they do not count)."""
    return (exps << 23) | rng.integers(0, 1 << 23, 64).astype(np.uint32) | \
        (rng.integers(0, 2, 64).astype(np.uint32) << 31)


def _values_near(rng, shape, near: str) -> np.ndarray:
    """float64 values around the range of format `near`: ordinary ones, exact ties between neighbours, ones past
    its largest value, its subnormals, +-0, +-inf and NaN; both signs."""
    vals, _ = _finite_table(near)
    k = rng.random(shape)
    i = rng.integers(0, len(vals) - 1, shape)
    x = vals[i + 1] * rng.uniform(0.6, 1.4, shape)
    x = np.where(k < 0.3, (vals[i] + vals[i + 1]) / 2, x)                     # ties
    x = np.where((k >= 0.3) & (k < 0.38), vals[-1] * rng.uniform(1.0, 3.0, shape), x)   # overflow
    x = np.where((k >= 0.38) & (k < 0.46), vals[1] * rng.uniform(0.0, 3.0, shape), x)   # subnormals, underflow
    x = np.where((k >= 0.46) & (k < 0.49), 0.0, x)
    x = np.where((k >= 0.49) & (k < 0.52), np.inf, x)
    x = np.where((k >= 0.52) & (k < 0.54), np.nan, x)
    return np.where(rng.random(shape) < 0.5, -x, x)


def conversion_reference(c: Conv, srcs: list[np.ndarray], opsel: int, old: np.ndarray, sdwa_sel=None,
                         dpp=None) -> np.ndarray:
    """Expected destination registers (oregs, 64) from the source registers, as the ISA describes them."""
    scale = (srcs[-1][0].astype(np.uint64) >> np.uint64(23)) & 0xFF if c.scaled else np.full(64, 127, np.uint64)
    factor = np.where(scale == 255, np.nan, np.ldexp(1.0, scale.astype(np.int64) - 127))
    elems = []
    if c.src in NARROW:
        words = srcs[0] if dpp is None else srcs[0][:, dpp]
        bits = FMTS[c.src].bits
        shift = 8 * (opsel & 3) if c.in_bits == 8 else 16 * (opsel & 1) if c.in_bits == 16 else 0
        if sdwa_sel is not None:
            shift = {"BYTE_1": 8, "BYTE_2": 16, "BYTE_3": 24, "WORD_1": 16}[sdwa_sel]
        for e in range(c.n):
            with np.errstate(over="ignore", invalid="ignore"):
                v = decode_codes(get_bits(words, shift + e * bits, bits), c.src) * factor
                elems.append(encode_rne(v, c.dst) if c.dst != "f32" else u32(v.astype(np.float32)).astype(np.uint64))
    else:
        random = srcs[c.nvals][0].astype(np.uint64) if c.sr else None
        for e in range(c.n):
            s = e % 2 if c.pair else e if c.nvals == 2 else 0
            k = e // 2 if c.pair else 0 if c.nvals == 2 else e
            if c.src == "f32":
                x = f32(srcs[s][k]).astype(np.float64)
            else:
                half = opsel & 1 if c.n == 1 else k % 2
                x = decode_codes(get_bits(srcs[s], 32 * (k // 2) + 16 * half, 16), c.src)
            with np.errstate(over="ignore", invalid="ignore", under="ignore"):
                v = x / factor
                if c.sr:
                    elems.append(encode_trunc(sr_add(v.astype(np.float32), random, c.dst), c.dst))
                    random = prng(random)
                else:
                    elems.append(encode_rne(v, c.dst))
    wt = FMTS[c.dst].bits
    if c.out_bits < 32:   # into the selected byte or half, the rest kept
        shift = 8 * (opsel >> 2) if c.out_bits == 8 else 16 * (opsel >> 3)
        field = np.uint64(((1 << c.out_bits) - 1) << shift)
        packed = pack(elems, wt, 1).astype(np.uint64)
        return ((old[:1].astype(np.uint64) & ~field) | (packed << np.uint64(shift))).astype(np.uint32)
    return pack(elems, wt, c.oregs)


def check_conversion(c: Conv, got: np.ndarray, want: np.ndarray, opsel: int, what: str):
    """Element by element (any NaN matches any NaN of the format); a partial write's other bits exactly."""
    wt = FMTS[c.dst].bits
    first = 0
    if c.out_bits < 32:
        first = 8 * (opsel >> 2) if c.out_bits == 8 else 16 * (opsel >> 3)
        field = np.uint32(((1 << c.out_bits) - 1) << first)
        kept = ((got[0] ^ want[0]) & ~field) != 0
        assert not kept.any(), f"{what}: bits outside the result changed in lanes {np.flatnonzero(kept)[:6]}"
    for e in range(c.n):
        g, w = get_bits(got, first + e * wt, wt), get_bits(want, first + e * wt, wt)
        bad = ~same_codes(g, w, c.dst)
        assert not bad.any(), f"{what} element {e}: lanes {np.flatnonzero(bad)[:6]} got " \
                              f"{[hex(int(x)) for x in g[bad][:6]]}, want {[hex(int(x)) for x in w[bad][:6]]}"


@pytest.mark.parametrize("key", _CONV_CASES)
def test_conversion(code, rng, key):
    """Each conversion over every code of its narrow format, or random values with the edge cases (ties,
    overflow, subnormals, +-0, +-inf, NaN), random scales including 0, 254 and NaN, each byte/half select;
    EXEC-off lanes keep their destination."""
    _, name, form = key.split(":")
    c = CONVS[name]
    opsel = int(form) if form.isdigit() else 0
    enc = code[key]
    if not c.vop1:
        assert (int.from_bytes(enc[:4], "little") >> 11) & 15 == opsel, "the op_sel text did not give the bits"
    dst, firsts = layout(c)
    for rnd in range(4 if c.src in NARROW else 2):
        st = new_state(seed=int(rng.integers(1 << 62)))
        exec_mask = (1 << 64) - 1 if form == "dpp" else int(rng.integers(0, 1 << 63)) << 1 | 1
        st.s[126], st.s[127] = exec_mask & 0xFFFFFFFF, exec_mask >> 32
        exps = _scale_exponents(rng) if c.scaled else np.full(64, 127, np.uint32)
        factor = np.where(exps == 255, 1.0, np.ldexp(1.0, exps.astype(np.int64) - 127))
        for i, r in enumerate(firsts):
            if i < c.nvals:
                if c.src in NARROW:
                    per = c.n if c.in_bits > 16 else 32 // FMTS[c.src].bits
                    words = _narrow_words(c.src, per, c.vregs, rnd)
                else:  # values around the destination's range times the lane's scale
                    per = max(c.n // c.nvals, 1 if c.src == "f32" else 2)
                    x = _values_near(rng, (per, 64), c.dst) * factor
                    codes = encode_rne(x, c.src)
                    words = pack(list(codes), FMTS[c.src].bits, c.vregs)
            elif c.sr and i == c.nvals:
                words = rng.integers(0, 1 << 32, (1, 64), dtype=np.uint64).astype(np.uint32)
            else:
                words = _scale_words(rng, exps)[None]
            st.v[r:r + words.shape[0]] = words
        srcs = [st.v[r:r + (c.vregs if i < c.nvals else 1)].copy() for i, r in enumerate(firsts)]
        old = st.v[dst:dst + c.oregs].copy()
        sdwa = form.removeprefix("sdwa-") if form.startswith("sdwa-") else None
        dpp = None
        if form == "dpp":
            dpp = np.array([(l & ~15) | 3 if c.n == 2 else (l & ~3) | [1, 0, 3, 2][l & 3] for l in range(64)])
        want = conversion_reference(c, srcs, opsel, old, sdwa, dpp)
        out = run(enc, st)
        on = np.array([(exec_mask >> l) & 1 for l in range(64)], bool)
        got = out.v[dst:dst + c.oregs]
        assert (got[:, ~on] == old[:, ~on]).all(), f"{key}: an EXEC-off lane was written"
        check_conversion(c, got[:, on], want[:, on], opsel, f"{key} round {rnd}")


snippet("mods:v_cvt_pk_fp8_f32", ["v_cvt_pk_fp8_f32 v100, -v16, |v17|"])
snippet("mods:v_cvt_sr_bf8_f32", ["v_cvt_sr_bf8_f32 v100, -|v16|, v17"])


@pytest.mark.parametrize("name", ["v_cvt_pk_fp8_f32", "v_cvt_sr_bf8_f32"])
def test_fp32_source_modifiers(code, rng, name):
    """neg and abs act on the fp32 value sources (CDNA4 ISA Table 31: "supports: neg, abs"); the random word of
    the SR form is an integer and takes none here."""
    c = CONVS[name]
    st = new_state(seed=int(rng.integers(1 << 62)))
    st.v[16] = u32(_values_near(rng, 64, c.dst).astype(np.float32))
    a = f32(st.v[16]).astype(np.float64)
    if c.sr:   # -|v16|, v17
        srcs = [u32((-np.abs(a)).astype(np.float32))[None], st.v[17:18].copy()]
    else:      # -v16, |v17|
        st.v[17] = u32(_values_near(rng, 64, c.dst).astype(np.float32))
        srcs = [u32((-a).astype(np.float32))[None], u32(np.abs(f32(st.v[17])))[None]]
    want = conversion_reference(c, srcs, 0, st.v[100:101].copy())
    out = run(code[f"mods:{name}"], st)
    check_conversion(c, out.v[100:101], want, 0, name)


snippet("clamp:v_cvt_pk_f16_f32", ["v_cvt_pk_f16_f32 v100, v16, v17 clamp"])
snippet("ld_scale:alone", ["v_mfma_ld_scale_b32 v1, v2", "v_nop"], covers=["v_mfma_ld_scale_b32"])


def test_undocumented_modifiers_and_a_lone_ld_scale_are_refused(code):
    st = new_state(seed=1)
    with pytest.raises(EmuError, match="clamp or an output modifier on v_cvt_pk_f16_f32: not modelled"):
        run(code["clamp:v_cvt_pk_f16_f32"], st)
    with pytest.raises(EmuError, match="v_mfma_ld_scale_b32 not followed by an f8f6f4 MFMA"):
        run(code["ld_scale:alone"], st)


# ------------------------------------------------------------------------------------------------ MFMAs

def _f8f6f4_k(M: int, K: int, g: int, it: int, bits: int) -> int:
    """The k of item `it` of lane group g (CDNA4 ISA §7.1.5.1): 8-bit formats hold two 16-deep runs, K/2 apart;
    6- and 4-bit ones 32 consecutive k."""
    return (it // 16) * (K // 2) + 16 * g + it % 16 if bits == 8 else 32 * g + it


def _nregs(fmt: str) -> int:
    return {8: 8, 6: 6, 4: 4}[FMTS[fmt].bits]


def mfma_f8f6f4_reference(M, K, ncd, a_words, b_words, c_words, fa, fb, sa=None, sb=None) -> np.ndarray:
    """D = A B + C in float64, rounded once to fp32; A, B unpacked by the ISA's layout, scaled per 32-deep K
    block by 2^(scale - 127) (a scale of 255 is NaN)."""
    N = M
    A, B = np.zeros((M, K)), np.zeros((K, N))
    for fmt, words, mat, is_a in ((fa, a_words, A, True), (fb, b_words, B, False)):
        bits = FMTS[fmt].bits
        stream = sum(words[r].astype(object) << (32 * r) for r in range(words.shape[0]))
        for lane in range(64):
            g, row = lane // M, lane % M
            for it in range(32):
                code = (int(stream[lane]) >> (it * bits)) & ((1 << bits) - 1)
                v = float(decode_codes([code], fmt)[0])
                k = _f8f6f4_k(M, K, g, it, bits)
                if is_a:
                    mat[row, k] = v
                else:
                    mat[k, row] = v
    if sa is not None:
        fa_ = np.where(sa == 255, np.nan, np.ldexp(1.0, sa.astype(np.int64) - 127))
        fb_ = np.where(sb == 255, np.nan, np.ldexp(1.0, sb.astype(np.int64) - 127))
        for k in range(K):
            A[:, k] *= fa_[np.arange(M) + M * (k // 32)]
            B[k, :] *= fb_[np.arange(N) + N * (k // 32)]
    C = np.zeros((M, N))
    for i in range(M):
        for j in range(N):
            C[i, j] = float(f32(c_words[mfma_cd_slot(i, j, N)]))
    with np.errstate(invalid="ignore", over="ignore"):
        D = u32((A @ B + C).astype(np.float32))
    return mfma_cd_words(D, ncd)


_MFMA_CASES = []
for _mn, _M, _N, _K, _nab, _ncd in isa.MAI_F8F6F4.values():
    for _fa, _ta in enumerate(NARROW):
        for _fb, _tb in enumerate(NARROW):
            _line = (f"{_mn} v[200:{199 + _ncd}], v[0:{_nregs(_ta) - 1}], v[16:{15 + _nregs(_tb)}], "
                     f"v[32:{31 + _ncd}] cbsz:{_fa} blgp:{_fb}")
            _MFMA_CASES.append(snippet(f"mfma:{_mn}:{_ta}:{_tb}", [_line], covers=[_mn]))
for _mn, _M, _N, _K, _nab, _ncd in isa.VOP3PX2.values():
    for _fa, _ta in enumerate(NARROW):
        for _fb, _tb in enumerate(NARROW):
            _sel = [int(x) for x in _GEN.integers(0, 2, 4)]
            _line = (f"{_mn} v[200:{199 + _ncd}], v[0:{_nregs(_ta) - 1}], v[16:{15 + _nregs(_tb)}], "
                     f"v[32:{31 + _ncd}], v60, v61 op_sel:[{_sel[0]},{_sel[1]},0] op_sel_hi:[{_sel[2]},{_sel[3]},0]"
                     f" cbsz:{_fa} blgp:{_fb}")
            _MFMA_CASES.append(snippet(f"mfma:{_mn}:{_ta}:{_tb}", [_line], covers=[_mn]))


def _mfma_values(rng, fmt: str, nregs: int) -> np.ndarray:
    """Registers of random codes of a format, finite and of both signs (NaN and infinities have their own test)."""
    _, codes = _finite_table(fmt)
    sign = np.uint64(1 << (FMTS[fmt].bits - 1))
    pick = codes[rng.integers(0, len(codes), (32, 64))] | rng.integers(0, 2, (32, 64)).astype(np.uint64) * sign
    return pack(list(pick), FMTS[fmt].bits, nregs)


@pytest.mark.parametrize("key", _MFMA_CASES)
def test_mfma_f8f6f4(code, rng, key):
    """Every A/B format pair of both shapes, unscaled and scaled (random E8M0 scales and byte selects), against
    float64; all 64 lanes compute whatever EXEC says."""
    _, name, ta, tb = key.split(":")
    scaled = name.startswith("v_mfma_scale_")
    _, M, N, K, nab, ncd = next(v for v in (*isa.MAI_F8F6F4.values(), *isa.VOP3PX2.values()) if v[0] == name)
    st = new_state(seed=int(rng.integers(1 << 62)))
    st.s[126] = int(rng.integers(0, 1 << 32))
    st.v[0:_nregs(ta)] = _mfma_values(rng, ta, _nregs(ta))
    st.v[16:16 + _nregs(tb)] = _mfma_values(rng, tb, _nregs(tb))
    st.v[32:32 + ncd] = u32(rng.standard_normal((ncd, 64)).astype(np.float32) * 8)
    sa = sb = None
    if scaled:
        w0 = int.from_bytes(code[key][:4], "little")
        w1 = int.from_bytes(code[key][4:8], "little")
        sel_a = (w0 >> 11 & 1) | (w1 >> 27 & 1) << 1
        sel_b = (w0 >> 12 & 1) | (w1 >> 28 & 1) << 1
        st.v[60] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
        st.v[61] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
        for reg, sel in ((60, sel_a), (61, sel_b)):   # scales near 127, so that sums stay finite
            byte = rng.integers(120, 135, 64).astype(np.uint32)
            st.v[reg] = (st.v[reg] & ~np.uint32(0xFF << (8 * sel))) | (byte << np.uint32(8 * sel))
        sa, sb = (st.v[60] >> (8 * sel_a)) & 0xFF, (st.v[61] >> (8 * sel_b)) & 0xFF
    want = mfma_f8f6f4_reference(M, K, ncd, st.v[0:_nregs(ta)], st.v[16:16 + _nregs(tb)], st.v[32:32 + ncd],
                                 ta, tb, sa, sb)
    out = run(code[key], st)
    got = out.v[200:200 + ncd]
    # one fp32 ulp: numpy's float64 dot products may add in another order than the core's k order
    bad = ~ulp_close(got.ravel(), want.ravel(), 1).reshape(got.shape)
    assert not bad.any(), f"{key}: {bad.sum()} mismatches, first {np.argwhere(bad)[:4].tolist()}: " \
                          f"{f32(got[bad][:3])} vs {f32(want[bad][:3])}"


snippet("mfma-scale-nan", ["v_mfma_scale_f32_16x16x128_f8f6f4 v[200:203], v[0:3], v[16:19], 0, v60, 1.0 "
                           "op_sel_hi:[0,0,0] cbsz:4 blgp:4"])
snippet("mfma-fp8-special", ["v_mfma_f32_16x16x128_f8f6f4 v[200:203], v[0:7], v[16:23], 0 cbsz:0 blgp:1"])


def test_mfma_scale_nan_and_inline_scale(code, rng):
    """A scale of 255 is NaN (only the rows it scales become NaN); an inline float constant scale is its
    exponent, 1.0 meaning 2^0 (CDNA4 ISA §7.2)."""
    st = new_state(seed=int(rng.integers(1 << 62)))
    st.v[0:4] = _mfma_values(rng, "fp4", 4)
    st.v[16:20] = _mfma_values(rng, "fp4", 4)
    st.v[60] = 127
    st.v[60, 5] = 255                 # A's row 5, k 0-31
    out = run(code["mfma-scale-nan"], st)
    sa = st.v[60] & 0xFF
    want = mfma_f8f6f4_reference(16, 128, 4, st.v[0:4], st.v[16:20], np.zeros((4, 64), np.uint32), "fp4", "fp4",
                                 sa, np.full(64, 127, np.uint32))
    assert (np.isnan(f32(out.v[200:204])) == np.isnan(f32(want))).all()
    assert np.isnan(f32(want)).sum() == 16   # row 5 of D only
    ok = ~np.isnan(f32(want))
    assert (out.v[200:204][ok] == want[ok]).all()


def test_mfma_fp8_nan_and_infinity_inputs(code, rng):
    """An E4M3 NaN code and E5M2 infinities reach the sums as IEEE values: NaN and inf - inf give NaN."""
    st = new_state(seed=int(rng.integers(1 << 62)))
    st.v[0:8] = _mfma_values(rng, "fp8", 8)
    st.v[16:24] = _mfma_values(rng, "bf8", 8)
    st.v[0, 3] = (st.v[0, 3] & ~np.uint32(0xFF)) | 0x7F        # A row 3: a NaN
    st.v[16, 7] = (st.v[16, 7] & ~np.uint32(0xFF)) | 0x7C      # B column 7: +inf
    want = mfma_f8f6f4_reference(16, 128, 4, st.v[0:8], st.v[16:24], np.zeros((4, 64), np.uint32), "fp8", "bf8")
    out = run(code["mfma-fp8-special"], st)
    assert np.isnan(f32(want)).any() and np.isinf(f32(want)).any()
    assert same_f32_all(out.v[200:204], want)


def same_f32_all(got, want) -> bool:
    g, w = f32(got), f32(want)
    return bool(((got == want) | (np.isnan(g) & np.isnan(w))).all())


snippet("mfma-bad-format", ["v_mfma_f32_16x16x128_f8f6f4 v[200:203], v[0:7], v[16:23], 0 cbsz:0 blgp:0"])


def test_mfma_format_codes_above_4_are_refused(code):
    enc = bytearray(code["mfma-bad-format"])
    enc[1] |= 5                       # CBSZ = 5: no format
    with pytest.raises(EmuError, match="CBSZ 5 / BLGP 0: formats are 0-4"):
        run(bytes(enc), new_state(seed=2))


def test_mfma_timing_and_passes():
    """Pass counts (CDNA4 ISA Table 28 and §7.1.5): 16x16x128 8 passes with an 8-bit operand, 4 without;
    32x32x64 16 and 8. The table holds the larger; the core halves it for 6/4-bit A and B."""
    for name, m, *_ in (*isa.MAI_F8F6F4.values(), *isa.VOP3PX2.values()):
        assert isa.timing_class(name) == ("mfma", 32 if m == 16 else 64), name


# ------------------------------------------------------------------------------------------------ decoding

def test_scaled_mfma_decodes_like_objdump(tc, tmp_path):
    """The VOP3PX2 form is one 16-byte instruction to llvm-objdump and to the decoder (the v_mfma_ld_scale_b32
    word pair, then the MFMA's), with the scale operands in imm2 and their byte selects in OP_SEL/OP_SEL_HI."""
    cases = []   # (line, A scale code, B scale code, op_sel bits, op_sel_hi bits)
    for i in range(8):
        name, _, _, _, _, ncd = list(isa.VOP3PX2.values())[i % 2]
        sel, hi = i & 3, (i >> 2) | 2
        cases.append((f"{name} v[0:{ncd - 1}], v[4:11], v[12:19], v[0:{ncd - 1}], v{20 + i}, s{7 + i} "
                      f"op_sel:[{sel & 1},{sel >> 1},0] op_sel_hi:[{hi & 1},{hi >> 1},0]", 276 + i, 7 + i, sel, hi))
    lines = [c[0] for c in cases] + ["v_mfma_f32_16x16x128_f8f6f4 v[0:3], v[4:11], v[12:19], v[0:3]"]
    encs = assemble_listing(tc.mc, lines)
    prog = decode.decode(b"".join(e for _, e in encs), 0, "t")
    src, obj = tmp_path / "x.s", tmp_path / "x.o"
    src.write_text(".text\n" + "".join(f".byte {','.join(str(b) for b in e)}\n" for _, e in encs))
    env = {**os.environ, "HKRT_MOUNT": str(tmp_path)}  # the toolchain may run where only this folder is seen
    subprocess.run([tc.mc, "-arch=amdgcn", "-mcpu=gfx950", "-filetype=obj", "-o", str(obj), str(src)], check=True,
                   env=env, cwd=tmp_path)
    dump = subprocess.run([tc.objdump, "-d", "--mcpu=gfx950", str(obj)], capture_output=True, text=True,
                          check=True, env=env, cwd=tmp_path).stdout
    theirs = [ln.split()[0] for ln in dump.splitlines() if ln.startswith("\tv_")]
    assert [isa.MNEMONICS[int(r["op"])] for r in prog.insns] == theirs
    assert [int(r["size"]) for r in prog.insns] == [16] * 8 + [8]
    for (line, a_code, b_code, sel, hi), r in zip(cases, prog.insns):
        flags = int(r["flags"])
        assert int(r["imm2"]) == a_code | b_code << 16, line
        assert (flags >> decode.FLAGS["OPSEL"]) & 3 == sel and (flags >> decode.FLAGS["OPSEL_HI"]) & 3 == hi, line


for _ta in ("fp8", "fp4"):
    snippet(f"passes:{_ta}", [f"v_mfma_f32_16x16x128_f8f6f4 v[200:203], v[0:{_nregs(_ta) - 1}], v[16:19], 0 "
                              f"cbsz:{NARROW.index(_ta)} blgp:4", "s_nop 7", "v_mov_b32 v1, v200"])


def test_mfma_passes_follow_the_formats_in_strict_mode(code):
    """A VALU read of an MFMA result needs passes + 4 wait states (docs/facts.md §1.10, §11.1): with an fp8 A the
    16x16x128 MFMA takes 8 passes (12 needed), with fp4 A and B 4 (8 needed): s_nop 7 is enough only for fp4."""
    st = new_state(seed=3)
    run(code["passes:fp4"], st, strict=True)
    with pytest.raises(EmuError, match="MFMA result read by VALU or memory.*12 required"):
        run(code["passes:fp8"], st, strict=True)


snippet("e64-opsel:v_cvt_f32_fp8", ["v_cvt_f32_fp8_e64 v100, v16"])
snippet("e64-opsel:v_cvt_pk_f32_bf8", ["v_cvt_pk_f32_bf8_e64 v[100:101], v16"])


@pytest.mark.parametrize("name, sel", [("v_cvt_f32_fp8", 1), ("v_cvt_f32_fp8", 2), ("v_cvt_f32_fp8", 3),
                                       ("v_cvt_pk_f32_bf8", 1)])
def test_vop3_form_selects_with_op_sel(code, rng, name, sel):
    """[I] In the VOP3 form the byte (half) comes from OP_SEL[1:0] (OP_SEL[0]), as in the scaled forms (CDNA4 ISA
    Table 31 names "Op_Sel"; llvm-mc has no syntax for it, so the bits are set in the encoding here)."""
    c = CONVS[name]
    enc = bytearray(code[f"e64-opsel:{name}"])
    enc[1] |= sel << 3                      # OP_SEL is bits 14:11 of the first word
    st = new_state(seed=int(rng.integers(1 << 62)))
    st.v[16] = _narrow_words(c.src, 32 // FMTS[c.src].bits, 1, int(rng.integers(0, 4)))[0]
    want = conversion_reference(c, [st.v[16:17].copy()], sel, st.v[100:100 + c.oregs].copy())
    out = run(bytes(enc), st)
    check_conversion(c, out.v[100:100 + c.oregs], want, sel, name)


for _ta in ("fp8", "fp4"):
    snippet(f"timed:{_ta}", [f"v_mfma_scale_f32_32x32x64_f8f6f4 v[200:215], v[0:{_nregs(_ta) - 1}], v[16:19], "
                             f"v[200:215], v60, v61 cbsz:{NARROW.index(_ta)} blgp:4"] * 6)


def test_timing_model_charges_the_format_s_cycles(code):
    """The timing model's matrix pipe is busy 64 cycles per 32x32x64 MFMA with an fp8 operand, 32 without."""
    from hkrt.emu import launch, timing
    from hkrt.emu.machine import Machine
    busy = {}
    for ta in ("fp8", "fp4"):
        prog = decode.decode(code[f"timed:{ta}"], 0, "timed")
        mod = launch.core()
        L, keep = launch.new_launch(mod.ffi, prog, Machine(1 << 20).memory)  # noqa: F841
        L.grid, L.block, L.max_insns = [1, 1, 1], [64, 1, 1], 1000
        P = timing.fill(mod.ffi, timing.get_model("mi355x"), 1, False)
        L.model = P
        assert mod.lib.emu_run(L) == 0, mod.ffi.string(L.err_msg).decode()
        busy[ta] = P.xdl_busy
    assert busy == {"fp8": 6 * 64, "fp4": 6 * 32}
