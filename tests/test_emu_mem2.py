"""Formatted buffer access (MUBUF *_format_*, MTBUF), the remaining DS ops and scalar scratch in the gfx950
emulator, against numpy/fraction models written from docs/facts.md §3.6, §9.6 and §9.7, independently of core.c.

Inputs are random and fresh each run (HKRT_TEST_SEED replays them, as in test_emu_isa.py).
"""
from __future__ import annotations

import bisect
import functools
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emu_harness import new_state, run  # noqa: E402
from test_emu_atomics import _FILL, _READ_BACK, PRIVATE, _scratch_state  # noqa: E402
from emu_harness import SEED, snippet_book  # noqa: E402
from test_emu_isa import ALL, LDS_BYTES, M32, Mem, expect_error, lanes, rand_exec, round_f32, set64, u32  # noqa: E402
from test_emu_isa import _regs_text as _regs  # noqa: E402

from hkrt.emu import isa  # noqa: E402

_GEN = np.random.default_rng([SEED, 2])
SNIPPETS, _, COVERED, snippet = snippet_book()


# ================================================================================================ the format model
# DATA_FORMAT -> component widths, x first from bit 0 (a packed format's name lists them from the top down)
LAYOUT = {1: [8], 2: [16], 3: [8, 8], 4: [32], 5: [16, 16], 6: [11, 11, 10], 7: [10, 11, 11], 8: [2, 10, 10, 10],
          9: [10, 10, 10, 2], 10: [8] * 4, 11: [32] * 2, 12: [16] * 4, 13: [32] * 3, 14: [32] * 4}
UNORM, SNORM, USCALED, SSCALED, UINT, SINT, FLOAT = 0, 1, 2, 3, 4, 5, 7
FLOAT_WIDTHS = {10, 11, 16, 32}
FORMATS = [(d, n) for d in LAYOUT for n in (UNORM, SNORM, USCALED, SSCALED, UINT, SINT, FLOAT)
           if n != FLOAT or set(LAYOUT[d]) <= FLOAT_WIDTHS]
ONE_F = 0x3F800000


def is_floatlike(nfmt):
    return nfmt not in (UINT, SINT)


def f32bits(q) -> int:
    return int(u32(round_f32(Fraction(q))))


def small_float_value(code, bits):
    """The unsigned 11/10-bit float (5-bit exponent, bias 15) as an exact Fraction, or 'inf'/'nan'."""
    mb = bits - 5
    e, m = code >> mb, code & ((1 << mb) - 1)
    if e == 31:
        return "nan" if m else "inf"
    return Fraction(m, 1 << mb) * Fraction(2) ** -14 if e == 0 else (1 + Fraction(m, 1 << mb)) * Fraction(2) ** (e - 15)


def unpack(raw, bits, nfmt) -> int:
    """A component's bits -> the 32-bit value a load returns."""
    top = (1 << bits) - 1
    s = raw - (1 << bits) if raw >> (bits - 1) else raw
    if nfmt == UNORM:
        return f32bits(Fraction(raw, top))
    if nfmt == SNORM:
        return f32bits(max(Fraction(s, top >> 1), Fraction(-1)))
    if nfmt == USCALED:
        return f32bits(raw)
    if nfmt == SSCALED:
        return f32bits(s)
    if nfmt == UINT:
        return raw
    if nfmt == SINT:
        return s & M32
    if bits == 32:
        return raw
    if bits == 16:
        return int(u32(np.uint16(raw).view(np.float16).astype(np.float32)))
    v = small_float_value(raw, bits)
    return 0x7FC00000 if v == "nan" else 0x7F800000 if v == "inf" else f32bits(v)


def _round_even(q: Fraction) -> int:
    return round(q)  # Python rounds a Fraction half to even


@functools.cache
def _small_float_table(bits):
    """Every finite code's value in increasing order, then 2^16 standing for infinity (the first code past them)."""
    mb = bits - 5
    return [small_float_value(c, bits) for c in range(31 << mb)] + [Fraction(2) ** 16]


def small_float_code(v, bits) -> int:
    """f32 bits -> the nearest 11/10-bit code, ties to the even code (-1: any NaN code)."""
    f = float(np.uint32(v).view(np.float32))
    if f != f:
        return -1
    if not f > 0:
        return 0  # no sign: negative values and -0 give 0
    table = _small_float_table(bits)
    if f == np.inf:
        return len(table) - 1
    q = Fraction(f)
    i = bisect.bisect_left(table, q)
    cands = [c for c in (i - 1, i) if 0 <= c < len(table)]
    return min(cands, key=lambda c: (abs(table[c] - q), c & 1))


def pack(v, bits, nfmt) -> int:
    """The 32-bit register value v -> a component's bits, as a store writes them (-1: any NaN code)."""
    top, hi = (1 << bits) - 1, (1 << (bits - 1)) - 1
    f = np.uint32(v).view(np.float32)
    if nfmt in (UNORM, SNORM, USCALED, SSCALED) and np.isnan(f):
        return 0
    q = Fraction(float(f)) if np.isfinite(f) else (Fraction(10) ** 40 if f > 0 else -Fraction(10) ** 40)
    if nfmt == UNORM:
        return _round_even(min(max(q, Fraction(0)), Fraction(1)) * top)
    if nfmt == SNORM:
        return _round_even(min(max(q, Fraction(-1)), Fraction(1)) * hi) & top
    if nfmt == USCALED:
        return _round_even(min(max(q, Fraction(0)), Fraction(top)))
    if nfmt == SSCALED:
        return _round_even(min(max(q, Fraction(-hi - 1)), Fraction(hi))) & top
    if nfmt == UINT:
        return min(int(v), top)
    if nfmt == SINT:
        sv = int(np.uint32(v).view(np.int32))
        return min(max(sv, -hi - 1), hi) & top
    if bits == 32:
        return int(v)
    if bits == 16:
        with np.errstate(over="ignore"):
            h = f.astype(np.float16)
        return -1 if np.isnan(h) else int(h.view(np.uint16))
    return small_float_code(v, bits)


def element_of(comps, bits_list) -> int:
    out, at = 0, 0
    for c, b in zip(comps, bits_list):
        out |= (c & ((1 << b) - 1)) << at
        at += b
    return out


def components_of(el, bits_list) -> list[int]:
    out, at = [], 0
    for b in bits_list:
        out.append((el >> at) & ((1 << b) - 1))
        at += b
    return out


def load_results(el_bytes, ok, dfmt, nfmt, sel, ncomp):
    """Per lane the ncomp 32-bit results of a format load (el_bytes: 64 x element bytes; ok: in range)."""
    bits = LAYOUT[dfmt]
    one = ONE_F if is_floatlike(nfmt) else 1
    out = np.zeros((ncomp, 64), np.uint32)
    for l in range(64):
        comp = [0, 0, 0, one]
        if ok[l]:
            el = int.from_bytes(bytes(el_bytes[l]), "little")
            for k, raw in enumerate(components_of(el, bits)):
                comp[k] = unpack(raw, bits[k], nfmt)
        else:
            comp = [0, 0, 0, 0]
        for k in range(ncomp):
            s = sel[k]
            out[k, l] = 0 if s == 0 else one if s == 1 else comp[s - 4]
    return out


def to_d16(v, nfmt) -> int:
    if is_floatlike(nfmt):
        with np.errstate(over="ignore"):
            return int(np.uint32(v).view(np.float32).astype(np.float16).view(np.uint16))
    return int(v) & 0xFFFF


def from_d16(h, nfmt) -> int:
    if is_floatlike(nfmt):
        return int(u32(np.uint16(h).view(np.float16).astype(np.float32)))
    return (h - (1 << 16) if nfmt == SINT and h >> 15 else h) & M32


def same_value(got, want):
    g, w = np.asarray(got, np.uint32), np.asarray(want, np.uint32)
    gf, wf = g.view(np.float32), w.view(np.float32)
    return (g == w) | (np.isnan(gf) & np.isnan(wf))


def element_memory(rng, n_el, dfmt, nfmt):
    """Random element bytes, with NaN/inf/denormal codes mixed in for the float components."""
    bits = LAYOUT[dfmt]
    size = sum(bits) // 8
    raw = rng.integers(0, 256, (n_el, size), dtype=np.uint8)
    if nfmt == FLOAT:
        specials = {32: [0x7F800000, 0x7FC00000, 0x00000001, 0x80000000], 16: [0x7C00, 0x7E00, 0x0001, 0x8000],
                    11: [0x7C0, 0x7C1, 0x001, 0x7BF], 10: [0x3E0, 0x3E1, 0x001, 0x3DF]}
        for i in range(n_el):
            if rng.random() < 0.3:
                comps = components_of(int.from_bytes(bytes(raw[i]), "little"), bits)
                k = int(rng.integers(len(bits)))
                comps[k] = int(rng.choice(specials[bits[k]]))
                raw[i] = np.frombuffer(element_of(comps, bits).to_bytes(size, "little"), np.uint8)
    return raw


def register_values(rng, bits, nfmt):
    """Store data: floats around the component's range with exact rounding ties, or integers with
    out-of-range ones."""
    n = 64
    if nfmt in (UINT, SINT):
        x = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
        small = rng.integers(-(1 << min(bits, 31)), 1 << min(bits, 31), n).astype(np.int64).astype(np.uint32)
        return np.where(rng.random(n) < 0.5, small, x).astype(np.uint32)
    top = (1 << bits) - 1 if bits < 32 else 1 << 24
    if nfmt in (UNORM, SNORM):
        scale = top if nfmt == UNORM else top >> 1
        f = rng.uniform(-1.3, 1.3, n)
        ties = (rng.integers(-scale, scale + 1, n) + 0.5) / scale  # exactly halfway between two codes
        f = np.where(rng.random(n) < 0.3, ties, f).astype(np.float32)
    elif nfmt in (USCALED, SSCALED):
        f = rng.uniform(-1.2 * top, 1.2 * top, n)
        f = np.where(rng.random(n) < 0.3, np.round(f) + 0.5, f).astype(np.float32)
    else:
        f = (rng.standard_normal(n) * 2.0 ** rng.integers(-20, 17, n)).astype(np.float32)
    f[rng.random(n) < 0.05] = np.nan
    f[rng.random(n) < 0.05] = np.inf
    f[rng.random(n) < 0.05] = -np.inf
    return u32(f)


def word3(dfmt, nfmt, sel=(4, 5, 6, 7)):
    return sel[0] | sel[1] << 3 | sel[2] << 6 | sel[3] << 9 | nfmt << 12 | dfmt << 15


STRIDE = 32


def buffer_state(rng, mem, e, w3, num_records):
    """Structured V# in s[8:11] (stride STRIDE, IDXEN) and a raw one in s[16:19], both with word3 w3."""
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    base = mem.bases[0]
    st.s[8:12] = [base & M32, (base >> 32) | STRIDE << 16, num_records, w3]
    st.s[16:20] = [base & M32, base >> 32, num_records * STRIDE, w3]
    st.s[12] = 0
    return st


# ------------------------------------------------------------------------------------------------ loads

_LOAD_OPS = {f"buffer_load_format_{x}": (len(x), 0, 0) for x in ("x", "xy", "xyz", "xyzw")}
_LOAD_OPS |= {f"buffer_load_format_d16_{x}": (len(x), 1, 0) for x in ("x", "xy", "xyz", "xyzw")}
_LOAD_OPS["buffer_load_format_d16_hi_x"] = (1, 1, 1)


def _nregs(ncomp, d16, hi):
    return 1 if hi else (ncomp + 1) // 2 if d16 else ncomp


for _m, (_nc, _d16, _hi) in _LOAD_OPS.items():
    _r = _nregs(_nc, _d16, _hi)
    snippet(f"fload:{_m}", [f"{_m} {_regs(10, _r)}, v2, s[8:11], s12 idxen", "s_waitcnt vmcnt(0)"], covers=[_m])
    _t = "t" + _m
    if _t in isa.MTBUF.values():
        for _d, _n in FORMATS:
            snippet(f"fload:{_t}:{_d}:{_n}", [f"{_t} {_regs(10, _r)}, v2, s[8:11], s12 format:{_d | _n << 4} idxen",
                                              "s_waitcnt vmcnt(0)"], covers=[_t])


def _want_load(mem, index, nrec, dfmt, nfmt, sel, ncomp, d16, hi, old):
    size = sum(LAYOUT[dfmt]) // 8
    img = mem.bytes()
    el = np.stack([img[i * STRIDE:i * STRIDE + size] if i < nrec else np.zeros(size, np.uint8) for i in index])
    res = load_results(el, index < nrec, dfmt, nfmt, sel, ncomp)
    if not d16:
        return res
    regs = _nregs(ncomp, d16, hi)
    out = np.zeros((regs, 64), np.uint32)
    for l in range(64):
        h = [to_d16(res[k, l], nfmt) for k in range(ncomp)]
        if hi:
            out[0, l] = (int(old[0][l]) & 0xFFFF) | h[0] << 16
            continue
        for r in range(regs):
            lo_, hi_ = h[2 * r], h[2 * r + 1] if 2 * r + 1 < ncomp else None
            out[r, l] = lo_ | hi_ << 16 if hi_ is not None else (int(old[r][l]) & 0xFFFF0000) | lo_
    return out


def _load_inputs(rng, dfmt, nfmt):
    size = sum(LAYOUT[dfmt]) // 8
    nrec = int(rng.integers(40, 60))
    mem = Mem(rng, STRIDE * 64)
    els = element_memory(rng, 64, dfmt, nfmt)
    view = mem.m.memory.view(mem.bases[0], STRIDE * 64)
    for i in range(64):
        view[i * STRIDE:i * STRIDE + size] = els[i].tobytes()
    index = rng.permutation(64).astype(np.uint32)  # some indices past num_records
    return mem, nrec, index


@pytest.mark.parametrize("dfmt,nfmt", FORMATS)
def test_buffer_load_format_every_format(code, rng, dfmt, nfmt):
    """buffer_load_format_xyzw through the V#'s format, and tbuffer_load_format_xyzw through the instruction's,
    against the component layout and number-format conversion of docs/facts.md §3.6; records past NUM_RECORDS
    read 0; components the format lacks read (0, 0, 0, 1)."""
    mem, nrec, index = _load_inputs(rng, dfmt, nfmt)
    e = rand_exec(rng)
    for key, w3 in (("fload:buffer_load_format_xyzw", word3(dfmt, nfmt)),
                    (f"fload:tbuffer_load_format_xyzw:{dfmt}:{nfmt}", word3(4, 0))):
        st = buffer_state(rng, mem, e, w3, nrec)
        st.v[2] = index
        out = run(code[key], st, machine=mem.m)
        want = _want_load(mem, index, nrec, dfmt, nfmt, (4, 5, 6, 7), 4, 0, 0, None)
        act = lanes(e)
        for k in range(4):
            ok = same_value(out.v[10 + k], want[k])
            bad = np.nonzero(act & ~ok)[0]
            assert bad.size == 0, (f"{key} dfmt {dfmt} nfmt {nfmt} component {k}: lanes {bad[:4].tolist()} got "
                                   f"{[hex(int(out.v[10 + k][i])) for i in bad[:4]]} want "
                                   f"{[hex(int(want[k][i])) for i in bad[:4]]}")
            assert (out.v[10 + k][~act] == st.v[10 + k][~act]).all()


@pytest.mark.parametrize("name", list(_LOAD_OPS))
def test_buffer_load_format_forms(code, rng, name):
    """Every component count and the d16 forms (two fp16 or 16-bit integer results per register; d16_x and the
    last half of d16_xyz keep the high half; d16_hi_x writes the high half), through a random DST_SEL
    (zero, one and the components in any order) on a random format."""
    ncomp, d16, hi = _LOAD_OPS[name]
    dfmt, nfmt = FORMATS[int(rng.integers(len(FORMATS)))]
    sel = tuple(int(s) for s in rng.choice([0, 1, 4, 5, 6, 7], 4))
    mem, nrec, index = _load_inputs(rng, dfmt, nfmt)
    e = rand_exec(rng)
    keys = [("fload:" + name, word3(dfmt, nfmt, sel))]
    if "t" + name in isa.MTBUF.values():
        keys.append((f"fload:t{name}:{dfmt}:{nfmt}", word3(4, 0, sel)))
    for key, w3 in keys:
        st = buffer_state(rng, mem, e, w3, nrec)
        st.v[2] = index
        out = run(code[key], st, machine=mem.m)
        regs = _nregs(ncomp, d16, hi)
        want = _want_load(mem, index, nrec, dfmt, nfmt, sel, ncomp, d16, hi, st.v[10:10 + regs])
        act = lanes(e)
        for r in range(regs):
            ok = same_value(out.v[10 + r], want[r]) if not d16 else _same_halves(out.v[10 + r], want[r], nfmt)
            assert (ok | ~act).all(), f"{key} (dfmt {dfmt} nfmt {nfmt} sel {sel}) register {r}"
            assert (out.v[10 + r][~act] == st.v[10 + r][~act]).all()


def _same_halves(got, want, nfmt):
    ok = np.ones(64, bool)
    for sh in (0, 16):
        g, w = (np.asarray(got) >> sh) & 0xFFFF, (np.asarray(want) >> sh) & 0xFFFF
        nan = is_floatlike(nfmt) & ((g & 0x7C00) == 0x7C00) & ((g & 0x3FF) != 0) & ((w & 0x7C00) == 0x7C00) & \
            ((w & 0x3FF) != 0)
        ok &= (g == w) | nan
    return ok


# ------------------------------------------------------------------------------------------------ stores

_STORE_OPS = {f"buffer_store_format_{x}": (len(x), 0, 0) for x in ("x", "xy", "xyz", "xyzw")}
_STORE_OPS |= {f"buffer_store_format_d16_{x}": (len(x), 1, 0) for x in ("x", "xy", "xyz", "xyzw")}
_STORE_OPS["buffer_store_format_d16_hi_x"] = (1, 1, 1)
for _m, (_nc, _d16, _hi) in _STORE_OPS.items():
    _r = _nregs(_nc, _d16, _hi)
    snippet(f"fstore:{_m}", [f"{_m} {_regs(10, _r)}, v2, s[8:11], s12 idxen"], covers=[_m])
    _t = "t" + _m
    if _t in isa.MTBUF.values():
        for _d, _n in FORMATS:
            snippet(f"fstore:{_t}:{_d}:{_n}", [f"{_t} {_regs(10, _r)}, v2, s[8:11], s12 format:{_d | _n << 4} idxen"],
                    covers=[_t])


def _check_store(rng, code, key, w3, dfmt, nfmt, ncomp, d16, hi):
    bits = LAYOUT[dfmt]
    size = sum(bits) // 8
    mem = Mem(rng, STRIDE * 64)
    before = mem.bytes()
    nrec = int(rng.integers(40, 60))
    e = rand_exec(rng)
    index = rng.permutation(64).astype(np.uint32)
    st = buffer_state(rng, mem, e, w3, nrec)
    st.v[2] = index
    regs = _nregs(ncomp, d16, hi)
    vals = np.stack([register_values(rng, bits[min(k, len(bits) - 1)], nfmt) for k in range(ncomp)])
    if d16:  # the 16-bit forms of those values (fp16 or the low 16 bits)
        halves = np.array([[to_d16(vals[k, l], nfmt) for l in range(64)] for k in range(ncomp)], np.uint32)
        vals = np.array([[from_d16(halves[k, l], nfmt) for l in range(64)] for k in range(ncomp)], np.uint32)
        junk = rng.integers(0, 1 << 16, (regs, 64)).astype(np.uint32)
        for r in range(regs):
            if hi:
                st.v[10] = junk[0] | halves[0] << 16
            else:
                lo_ = halves[2 * r]
                hi_ = halves[2 * r + 1] if 2 * r + 1 < ncomp else junk[r]
                st.v[10 + r] = lo_ | hi_ << 16
    else:
        for k in range(ncomp):
            st.v[10 + k] = vals[k]
    run(code[key], st, machine=mem.m)
    got = mem.bytes()
    want = before.copy()
    nanpos = []
    for l in range(64):
        i = int(index[l])
        if not (e >> l & 1) or i >= nrec:
            continue
        old = components_of(int.from_bytes(bytes(before[i * STRIDE:i * STRIDE + size]), "little"), bits)
        new = list(old)
        for k in range(min(ncomp, len(bits))):
            new[k] = pack(vals[k, l], bits[k], nfmt)
            if new[k] == -1:
                nanpos.append((i, k))
                new[k] = 0
        want[i * STRIDE:i * STRIDE + size] = np.frombuffer(element_of(new, bits).to_bytes(size, "little"), np.uint8)
    for i, k in nanpos:  # a NaN may be any NaN code: take the emulator's after checking it is one
        gc = components_of(int.from_bytes(bytes(got[i * STRIDE:i * STRIDE + size]), "little"), bits)
        mb = 10 if bits[k] == 16 else bits[k] - 5  # mantissa bits; the exponent field above them is all ones
        assert gc[k] >> mb & 31 == 31 and gc[k] & ((1 << mb) - 1), f"{key}: a NaN stored as {gc[k]:#x}"
        wc = components_of(int.from_bytes(bytes(want[i * STRIDE:i * STRIDE + size]), "little"), bits)
        wc[k] = gc[k]
        want[i * STRIDE:i * STRIDE + size] = np.frombuffer(element_of(wc, bits).to_bytes(size, "little"), np.uint8)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, (f"{key} dfmt {dfmt} nfmt {nfmt}: bytes {bad[:6].tolist()} got {got[bad[:6]].tolist()} "
                           f"want {want[bad[:6]].tolist()}")


@pytest.mark.parametrize("dfmt,nfmt", FORMATS)
def test_buffer_store_format_every_format(code, rng, dfmt, nfmt):
    """buffer_store_format_xyzw / tbuffer_store_format_xyzw: clamped, nearest-even norm and scaled conversion,
    saturated integers, fp16 and the unsigned 11/10-bit floats; out-of-range records untouched."""
    _check_store(rng, code, "fstore:buffer_store_format_xyzw", word3(dfmt, nfmt), dfmt, nfmt, 4, 0, 0)
    _check_store(rng, code, f"fstore:tbuffer_store_format_xyzw:{dfmt}:{nfmt}", word3(4, 0), dfmt, nfmt, 4, 0, 0)


_BYTE_ALIGNED = [(d, n) for d, n in FORMATS if all(b % 8 == 0 for b in LAYOUT[d])]


@pytest.mark.parametrize("name", list(_STORE_OPS))
def test_buffer_store_format_forms(code, rng, name):
    """Fewer components than the format has leave the other components' bytes as they were; the d16 forms take
    16-bit data (fp16 for the float-like formats)."""
    ncomp, d16, hi = _STORE_OPS[name]
    pool = _BYTE_ALIGNED if ncomp < 4 else FORMATS
    dfmt, nfmt = pool[int(rng.integers(len(pool)))]
    _check_store(rng, code, "fstore:" + name, word3(dfmt, nfmt), dfmt, nfmt, ncomp, d16, hi)
    if "t" + name in isa.MTBUF.values():
        _check_store(rng, code, f"fstore:t{name}:{dfmt}:{nfmt}", word3(4, 0), dfmt, nfmt, ncomp, d16, hi)


def test_partial_store_of_a_packed_format_is_refused(code, rng):
    mem = Mem(rng, STRIDE * 64)
    st = buffer_state(rng, mem, ALL, word3(6, FLOAT), 64)
    st.v[2] = np.arange(64, dtype=np.uint32)
    expect_error(code["fstore:buffer_store_format_xy"], st, r"packed DATA_FORMAT 6.*undocumented", machine=mem.m)


@pytest.mark.parametrize("w3,why", [(word3(15, 0), "reserved buffer format"), (word3(4, 6), "reserved buffer format"),
                                    (word3(10, FLOAT), "no FLOAT form"), (word3(4, 0, (2, 4, 4, 4)), "DST_SEL"),
                                    (word3(4, 0) | 1 << 23, "ADD_TID")])
def test_invalid_formats_are_errors(code, rng, w3, why):
    mem = Mem(rng, STRIDE * 64)
    st = buffer_state(rng, mem, ALL, w3, 64)
    st.v[2] = np.arange(64, dtype=np.uint32)
    expect_error(code["fload:buffer_load_format_x"], st, why, machine=mem.m)


def test_unbound_resource_reads_zero_and_drops_stores(code, rng):
    """data_format 0 in the V#: the resource is unbound (docs/facts.md §3.1): loads 0 (even a SEL_1 component),
    stores change nothing."""
    mem = Mem(rng, STRIDE * 64)
    before = mem.bytes()
    st = buffer_state(rng, mem, ALL, word3(0, 0, (1, 4, 5, 1)), 64)
    st.v[2] = np.arange(64, dtype=np.uint32)
    out = run(code["fload:buffer_load_format_xyzw"], st, machine=mem.m)
    assert (out.v[10:14] == 0).all()
    run(code["fstore:buffer_store_format_xyzw"], st, machine=mem.m)
    assert (mem.bytes() == before).all()


# ------------------------------------------------------------------------------------------------ addressing

snippet("fload:raw", ["buffer_load_format_xy v[10:11], v1, s[16:19], s12 offen offset:8", "s_waitcnt vmcnt(0)"])
snippet("fload:swizzled", ["tbuffer_load_format_x v10, v2, s[20:23], s12 format:10 idxen", "s_waitcnt vmcnt(0)"])
snippet("fload:tid", ["tbuffer_load_format_xy v[10:11], v1, s[20:23], s12 format:5 offen offset:4",
                      "s_waitcnt vmcnt(0)"])
snippet("fload:lds", ["s_mov_b32 m0, s13", "s_nop 0", "buffer_load_format_x v1, s[16:19], s12 offen lds",
                      "s_waitcnt vmcnt(0)"])


def test_format_raw_addressing_and_range(code, rng):
    """A raw access: offset = VGPR + immediate (+ soffset, outside the check); an element is in range only if
    all of it is below NUM_RECORDS bytes."""
    mem = Mem(rng, 4096)
    img = mem.bytes()
    e = rand_exec(rng)
    num = int(rng.integers(1000, 2000)) // 2 * 2
    st = buffer_state(rng, mem, e, word3(5, UINT), 1)
    st.s[18] = num
    st.s[12] = 4 * int(rng.integers(0, 100))
    st.v[1] = (rng.permutation(2000 // 4)[:64] * 4).astype(np.uint32)
    st.v[1][0] = num - 8 - 2  # straddles num_records
    out = run(code["fload:raw"], st, machine=mem.m)
    for l in range(64):
        if not e >> l & 1:
            continue
        o = int(st.v[1][l]) + 8
        want = [0, 0] if o + 4 > num else [int(img[st.s[12] + o:][:2].view("<u2")[0]),
                                           int(img[st.s[12] + o + 2:][:2].view("<u2")[0])]
        assert [int(out.v[10][l]), int(out.v[11][l])] == want, f"lane {l}"


def test_format_swizzled_and_add_tid(code, rng):
    """MTBUF through a swizzled V# (index stride 16, 4-byte elements) and through an ADD_TID one (index = lane,
    no range check), addressed as the raw buffer ops are (docs/facts.md §3.2)."""
    mem = Mem(rng, 1 << 14)
    img = mem.bytes()
    base = mem.bases[0]
    st = new_state(LDS_BYTES, ALL, seed=int(rng.integers(1 << 62)))
    stride = 64
    st.s[20:24] = [base & M32, (base >> 32) | stride << 16 | 1 << 31, 40, word3(4, 0) | 1 << 21]  # IS = 16
    st.s[12] = 0
    st.v[2] = rng.integers(0, 48, 64).astype(np.uint32)
    out = run(code["fload:swizzled"], st, machine=mem.m)
    for l in range(64):
        i = int(st.v[2][l])
        a = (i // 16) * stride * 16 + (i % 16) * 4
        want = [int(b) for b in img[a:a + 4]] if i < 40 else [0, 0, 0, 0]  # 8_8_8_8 UNORM, x only
        assert int(out.v[10][l]) == unpack(want[0], 8, UNORM), f"swizzled lane {l}"
    st.s[20:24] = [base & M32, (base >> 32) | 8 << 16, 0, word3(0, 0) | 1 << 23]  # ADD_TID, stride 8, no check
    st.v[1] = (4 * rng.integers(0, 100, 64)).astype(np.uint32)
    out = run(code["fload:tid"], st, machine=mem.m)
    for l in range(64):
        a = l * 8 + int(st.v[1][l]) + 4
        assert int(out.v[10][l]) == unpack(int(img[a:a + 2].view("<u2")[0]), 16, UNORM), f"ADD_TID lane {l} x"
        assert int(out.v[11][l]) == unpack(int(img[a + 2:a + 4].view("<u2")[0]), 16, UNORM), f"ADD_TID lane {l} y"


def test_buffer_load_format_x_lds(code, rng):
    """The LDS form puts each lane's converted x result at M0 + 4 * lane (docs/facts.md §3.5)."""
    mem = Mem(rng, 4096)
    img = mem.bytes()
    e = rand_exec(rng)
    st = buffer_state(rng, mem, e, word3(2, SNORM, (4, 0, 0, 0)), 1)
    st.s[18] = 3000
    st.s[13] = 4 * int(rng.integers(0, 1000))
    st.v[1] = (2 * rng.permutation(1600)[:64]).astype(np.uint32)
    out = run(code["fload:lds"], st, machine=mem.m)
    for l in range(64):
        at = int(st.s[13]) + 4 * l
        got = int(out.lds[at:at + 4].view("<u4")[0])
        if not e >> l & 1:
            assert got == int(st.lds[at:at + 4].view("<u4")[0])
            continue
        o = int(st.v[1][l])
        want = unpack(int(img[o:o + 2].view("<u2")[0]), 16, SNORM) if o + 2 <= 3000 else 0
        assert got == want, f"lane {l}"


snippet("cache", ["buffer_wbl2 sc0 sc1", "buffer_inv sc1", "s_waitcnt vmcnt(0)"], covers=["buffer_wbl2", "buffer_inv"])


def test_cache_maintenance_changes_nothing(code, rng):
    """buffer_wbl2 / buffer_inv: no cache to write back or invalidate (docs/facts.md §9.1)."""
    mem = Mem(rng, 256)
    before = mem.bytes()
    st = new_state(LDS_BYTES, seed=int(rng.integers(1 << 62)))
    out = run(code["cache"], st, machine=mem.m)
    assert (out.s == st.s).all() and (out.v == st.v).all() and (mem.bytes() == before).all()


# ================================================================================================ DS (§9.6)

snippet("ds:addtid", ["s_mov_b32 m0, s20", "ds_write_addtid_b32 v5 offset:16", "s_mov_b32 m0, s21",
                      "ds_read_addtid_b32 v10 offset:8", "s_waitcnt lgkmcnt(0)"],
        covers=["ds_write_addtid_b32", "ds_read_addtid_b32"])


def test_ds_addtid(code, rng):
    """Lane l's dword at M0[17:0] + offset + 4 l; lanes past the allocation read 0 / are dropped."""
    e = rand_exec(rng)
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    st.s[20] = 4 * int(rng.integers(0, 4000)) | 0xFFFC0000  # bits above 17 are not part of the address
    st.s[21] = LDS_BYTES - 8 - 4 * 40  # lanes 40.. read past the end
    out = run(code["ds:addtid"], st)
    lds = st.lds.copy()
    base = (int(st.s[20]) & 0x3FFFF) + 16
    for l in range(64):
        if e >> l & 1:
            lds[base + 4 * l:base + 4 * l + 4] = np.frombuffer(int(st.v[5][l]).to_bytes(4, "little"), np.uint8)
    assert (out.lds == lds).all()
    words = lds.view("<u4")
    for l in range(64):
        a = int(st.s[21]) + 8 + 4 * l
        want = int(words[a // 4]) if a + 4 <= LDS_BYTES else 0
        assert not e >> l & 1 or int(out.v[10][l]) == want, f"lane {l}"


snippet("ds:wrap", ["ds_wrap_rtn_b32 v10, v1, v2, v3 offset:4", "s_waitcnt lgkmcnt(0)"], covers=["ds_wrap_rtn_b32"])
snippet("ds:condxchg", ["ds_condxchg32_rtn_b64 v[10:11], v1, v[2:3] offset:8", "s_waitcnt lgkmcnt(0)"],
        covers=["ds_condxchg32_rtn_b64"])


def test_ds_wrap_rtn_b32(code, rng):
    """tmp = mem; mem = tmp >= DATA0 ? tmp - DATA0 : tmp + DATA1; returns tmp; lanes in ascending order."""
    e = rand_exec(rng)
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    st.v[1] = (rng.integers(0, 16, 64) * 8).astype(np.uint32)
    words = st.lds.view("<u4")
    words[1:130:2] = rng.integers(0, 1000, 65).astype(np.uint32)
    st.v[2] = rng.integers(0, 1200, 64).astype(np.uint32)
    st.v[3] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    out = run(code["ds:wrap"], st)
    mem = st.lds.copy().view("<u4")
    for l in range(64):
        if not e >> l & 1:
            continue
        i = (int(st.v[1][l]) + 4) // 4
        tmp = int(mem[i])
        mem[i] = (tmp - int(st.v[2][l])) if tmp >= int(st.v[2][l]) else (tmp + int(st.v[3][l])) & M32
        assert int(out.v[10][l]) == tmp, f"lane {l}"
    assert (out.lds.view("<u4") == mem).all()


def test_ds_condxchg32_rtn_b64(code, rng):
    """Each of the two dwords whose DATA dword has bit 31 set is replaced by that dword's bits 30:0; the old 64
    bits return."""
    e = rand_exec(rng)
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    st.v[1] = (rng.integers(0, 16, 64) * 8).astype(np.uint32)
    out = run(code["ds:condxchg"], st)
    mem = st.lds.copy().view("<u4")
    for l in range(64):
        if not e >> l & 1:
            continue
        i = (int(st.v[1][l]) + 8) // 4
        old = (int(mem[i]), int(mem[i + 1]))
        for h in range(2):
            d = int(st.v[2 + h][l])
            if d >> 31:
                mem[i + h] = d & 0x7FFFFFFF
        assert (int(out.v[10][l]), int(out.v[11][l])) == old, f"lane {l}"
    assert (out.lds.view("<u4") == mem).all()


snippet("ds:counter", ["s_mov_b32 m0, s20", "ds_append v10 offset:4", "ds_consume v11 offset:12",
                       "s_waitcnt lgkmcnt(0)"], covers=["ds_append", "ds_consume"])


def test_ds_append_consume(code, rng):
    """One wave-wide atomic on the dword at (M0 + offset) & ~3: it grows (append) or shrinks (consume) by the
    number of active lanes, and every active lane receives the value from before."""
    e = rand_exec(rng)
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    st.s[20] = 4 * int(rng.integers(0, 1000)) + 1  # the low two bits of the sum are ignored
    out = run(code["ds:counter"], st)
    words = st.lds.copy().view("<u4")
    n = bin(e).count("1")
    a, c = (int(st.s[20]) + 4) // 4, (int(st.s[20]) + 12) // 4
    old_a = int(words[a])
    words[a] = (old_a + n) & M32
    old_c = int(words[c])
    words[c] = (old_c - n) & M32
    act = lanes(e)
    assert (out.v[10][act] == old_a).all() and (out.v[11][act] == old_c).all()
    assert (out.v[10][~act] == st.v[10][~act]).all()
    assert (out.lds.view("<u4") == words).all()


_TR = {"ds_read_b64_tr_b4": (8, 4), "ds_read_b64_tr_b8": (8, 8), "ds_read_b96_tr_b6": (12, 6)}
for _m, (_b, _bits) in _TR.items():
    snippet(f"ds:{_m}", [f"{_m} {_regs(10, _b // 4)}, v1 offset:16", "s_waitcnt lgkmcnt(0)"], covers=[_m])
    snippet(f"ds:{_m}:exec", ["s_mov_b64 exec, s[20:21]", f"{_m} {_regs(10, _b // 4)}, v1", "s_waitcnt lgkmcnt(0)"])


@pytest.mark.parametrize("name", list(_TR))
def test_ds_transposing_reads(code, rng, name):
    """As ds_read_b64_tr_b16 (docs/facts.md §1.11) for 4-, 6- and 8-bit elements: in each group of 16 lanes the
    16 x E elements read (lane-major) are dealt out so that lane q's element e is number 16 e + q."""
    nbytes, bits = _TR[name]
    E = 8 * nbytes // bits
    st = new_state(LDS_BYTES, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    st.v[1] = (rng.permutation(LDS_BYTES // 16 - 2)[:64] * 16).astype(np.uint32)
    out = run(code[f"ds:{name}"], st)
    mask = (1 << bits) - 1
    elems = np.array([[(int.from_bytes(bytes(st.lds[a + 16:a + 16 + nbytes]), "little") >> (bits * p)) & mask
                       for p in range(E)] for a in st.v[1]], dtype=object)  # 64 lanes x E
    for g in range(4):
        dealt = elems[16 * g:16 * g + 16].reshape(-1).reshape(E, 16).T  # lane q, element e = flat[16 e + q]
        for q in range(16):
            want = sum(int(v) << (bits * k) for k, v in enumerate(dealt[q]))
            got = sum(int(out.v[10 + r][16 * g + q]) << (32 * r) for r in range(nbytes // 4))
            assert got == want, f"{name} lane {16 * g + q}"
    set64(st, 20, ALL >> 1)
    expect_error(code[f"ds:{name}:exec"], st, "EXEC")


# ================================================================================================ scalar scratch (§9.7)

_SS_LOADS = [n for n in isa.SMEM.values() if n.startswith("s_scratch_load")]
_SS_STORES = [n for n in isa.SMEM.values() if n.startswith("s_scratch_store")]
for _m in _SS_LOADS:
    _n = 1 if _m.endswith("dword") else int(_m[-1])
    snippet(f"ss:{_m}", _FILL + [f"{_m} {_regs(20, _n, 's')}, s[2:3], 0x{4 * int(_GEN.integers(0, 64)):x}",
                                 f"{_m} {_regs(32, _n, 's')}, s[2:3], s4", "s_waitcnt lgkmcnt(0)"], covers=[_m])
for _m in _SS_STORES:
    _n = 1 if _m.endswith("dword") else int(_m[-1])
    snippet(f"ss:{_m}", _FILL + [f"{_m} {_regs(20, _n, 's')}, s[2:3], s4", "s_waitcnt lgkmcnt(0)"] + _READ_BACK,
            covers=[_m])
snippet("ss:past_end", ["s_scratch_load_dword s20, s[2:3], s4", "s_waitcnt lgkmcnt(0)"])


def _private_dword(priv, a):
    """Dword at private byte offset a of the wave as the hardware lays it out (lanes interleaved by dword)."""
    d = a // 4
    lane, off = d % 64, 4 * (d // 64)
    return int(priv[lane, off:off + 4].view("<u4")[0])


@pytest.mark.parametrize("name", _SS_LOADS)
def test_scalar_scratch_loads(code, rng, name):
    n = 1 if name.endswith("dword") else int(name[-1])
    mem, st, priv = _scratch_state(rng)
    set64(st, 2, 4 * int(rng.integers(0, 64 * PRIVATE // 4 - 200)))
    st.s[4] = 4 * int(rng.integers(0, 40)) + 3  # the low two bits are ignored
    line = next(ln for ln in SNIPPETS[f"ss:{name}"] if ln.startswith(name))
    imm = int(line.split(", ")[-1], 16)
    out = run(code[f"ss:{name}"], st, machine=mem.m, scratch_lane_bytes=PRIVATE)
    base = int(st.s[2])
    for dst, off in ((20, imm), (32, int(st.s[4]) & ~3)):
        for i in range(n):
            assert int(out.s[dst + i]) == _private_dword(priv, base + off + 4 * i), f"{name} s{dst + i}"


@pytest.mark.parametrize("name", _SS_STORES)
def test_scalar_scratch_stores(code, rng, name):
    n = 1 if name.endswith("dword") else int(name[-1])
    mem, st, priv = _scratch_state(rng)
    set64(st, 2, 4 * int(rng.integers(0, 64 * PRIVATE // 4 - 200)))
    st.s[4] = 4 * int(rng.integers(0, 40))
    st.s[20:20 + n] = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    out = run(code[f"ss:{name}"], st, machine=mem.m, scratch_lane_bytes=PRIVATE)
    for i in range(n):
        d = (int(st.s[2]) + int(st.s[4])) // 4 + i
        priv[d % 64, 4 * (d // 64):4 * (d // 64) + 4] = np.frombuffer(int(st.s[20 + i]).to_bytes(4, "little"), np.uint8)
    got = np.stack([out.v[128 + r] for r in range(128)]).T.copy().view(np.uint8).reshape(64, PRIVATE)
    assert (got == priv).all(), f"{name}: the private segment differs"


def test_scalar_scratch_past_the_segment_is_an_error(code, rng):
    mem, st, _ = _scratch_state(rng)
    set64(st, 2, 0)
    st.s[4] = 64 * PRIVATE
    expect_error(code["ss:past_end"], st, r"outside the wave's .*private segment", machine=mem.m,
                 scratch_lane_bytes=PRIVATE)
