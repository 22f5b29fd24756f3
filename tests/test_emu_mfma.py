"""The older-layout MFMAs (several blocks; f32 and f64 elements) and every SMFMAC, against numpy models.

The models follow docs/facts.md §1.13 and §1.14, written independently of core.c: operands are unpacked from
the register words with numpy's (and ml_dtypes') own decoding, the products summed in float64 (f64: exactly,
with fractions) and rounded once. Inputs are random and fresh each run (HKRT_TEST_SEED replays them), with
subnormals, infinities and NaNs where the element type has them; every CBSZ/ABID pair and every BLGP value an
op takes is run, SMFMAC with random 4:2 sparsity indices in each index set.
"""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emu_harness import new_state, run  # noqa: E402
from emu_harness import SEED, snippet_book  # noqa: E402
from test_emu_isa import expect_error, rand_exec, set64, u32, ulp_close  # noqa: E402

from hkrt.emu import isa  # noqa: E402

_GEN = np.random.default_rng([SEED, 17])
SNIPPETS, META, COVERED, snippet = snippet_book()


def _r(kind, base, n):
    return f"{kind}{base}" if n == 1 else f"{kind}[{base}:{base + n - 1}]"


# ------------------------------------------------------------------------------------------------ the model

_DTYPES = {"bf16": np.dtype(ml_dtypes.bfloat16), "f16": np.dtype(np.float16), "i8": np.dtype(np.int8),
           "fp8": np.dtype(ml_dtypes.float8_e4m3fn), "bf8": np.dtype(ml_dtypes.float8_e5m2),
           "f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}
_BLGP = [lambda l: l, lambda l: l % 32, lambda l: l % 32 + 32, lambda l: (l + 16) % 64, lambda l: l % 16,
         lambda l: l % 16 + 16, lambda l: l % 16 + 32, lambda l: l % 16 + 48]


def element(v, row, lane, item, el):
    """Element `item` of a lane's operand starting at register `row` (an f64 takes a register pair)."""
    dt = _DTYPES[el]
    if el == "f64":
        word = int(v[row + 2 * item][lane]) | int(v[row + 2 * item + 1][lane]) << 32
        return float(np.array([word], np.uint64).view(np.float64)[0])
    per = 4 // dt.itemsize
    return float(np.array([v[row + item // per][lane]], np.uint32).view(dt)[item % per].astype(np.float64))


def out_position(M, N, b, i, j, wide):
    """(register or register pair, lane) of D[i][j] of block b (docs/facts.md §1.13)."""
    rows = 1 if wide else 4                              # rows of a block stacked in one register group
    groups = 64 // N                                     # groups of N lanes in a register
    per_reg = max(1, 64 * rows // (M * N))               # blocks sharing one register
    reg = b * (M * N // 64) + (i // (rows * groups)) * rows + i % rows
    lane = (b % per_reg) * N + ((i // rows) % groups) * per_reg * N + j
    return reg, lane


def read_c(v, c, M, N, NB, el_out):
    """C as float64 [b][i][j] from registers starting at row c, or a broadcast inline constant."""
    wide = el_out == "f64"
    C = np.zeros((NB, M, N))
    for b in range(NB):
        for i in range(M):
            for j in range(N):
                reg, lane = out_position(M, N, b, i, j, wide)
                if not isinstance(c, int):
                    C[b, i, j] = c
                elif wide:
                    C[b, i, j] = element(v, c, lane, reg, "f64")
                else:
                    word = np.array([v[c + reg][lane]], np.uint32)
                    C[b, i, j] = float(word.view(np.int32)[0] if el_out == "i32" else word.view(np.float32)[0])
    return C


def exact_f64(a, b, c):
    """c + sum a*b rounded once to double (IEEE's answer when an input or product is not finite)."""
    with np.errstate(all="ignore"):
        prods = [np.float64(x) * np.float64(y) for x, y in zip(a, b)]
        naive = np.float64(c)
        for p in prods:
            naive = naive + p
    if not (np.isfinite(naive) and np.isfinite(c)):
        return float(naive)
    exact = Fraction(c) + sum(Fraction(x) * Fraction(y) for x, y in zip(a, b))
    if exact == 0:
        return float(naive) if naive == 0 else 0.0
    return float(exact)


def pack_out(D, M, N, NB, ncd, el_out):
    out = np.zeros((ncd, 64), np.uint32)
    for b in range(NB):
        for i in range(M):
            for j in range(N):
                reg, lane = out_position(M, N, b, i, j, el_out == "f64")
                if el_out == "f64":
                    word = int(np.array([D[b, i, j]], np.float64).view(np.uint64)[0])
                    out[2 * reg, lane], out[2 * reg + 1, lane] = word & 0xFFFFFFFF, word >> 32
                elif el_out == "i32":
                    out[reg, lane] = int(D[b, i, j]) & 0xFFFFFFFF
                else:
                    out[reg, lane] = u32(np.float32(D[b, i, j]))
    return out


def out_type(name):
    return "f64" if "_f64_" in name else "i32" if "_i32_" in name else "f32"


def dense_reference(v, name, a_row, b_row, c, cbsz, abid, blgp):
    """D of an older-layout MFMA: A[b][i][k] is item k % KL of lane i + M*src(b) + M*NB*(k // KL), src(b) the
    first block of b's group of 2^CBSZ plus ABID; B[b][k][j] item k % KL of lane BLGP(j + N*b + N*NB*(k // KL));
    f64 ops read BLGP as neg bits for A, B, C instead."""
    _, M, N, K, NB, nab, ncd = next(x for x in isa.MAI_BLOCKS.values() if x[0] == name)
    el, el_out = name.rsplit("_", 1)[1], out_type(name)
    wide = el == "f64"
    KL = K * M * NB // 64
    A, B = np.zeros((NB, M, K)), np.zeros((NB, K, N))
    neg = [(-1.0 if wide and blgp >> t & 1 else 1.0) for t in range(3)]
    for b in range(NB):
        src = (b >> cbsz << cbsz) + abid
        for k in range(K):
            for i in range(M):
                A[b, i, k] = neg[0] * element(v, a_row, i + M * src + M * NB * (k // KL), k % KL, el)
            for j in range(N):
                lane = j + N * b + N * NB * (k // KL)
                B[b, k, j] = neg[1] * element(v, b_row, lane if wide else _BLGP[blgp](lane), k % KL, el)
    C = neg[2] * read_c(v, c, M, N, NB, el_out)
    D = np.zeros((NB, M, N))
    for b in range(NB):
        if wide:
            for i in range(M):
                for j in range(N):
                    D[b, i, j] = exact_f64(A[b, i], B[b, :, j], C[b, i, j])
        elif el_out == "i32":
            D[b] = (A[b].astype(np.int64) @ B[b].astype(np.int64) + C[b].astype(np.int64)) & 0xFFFFFFFF
        else:
            with np.errstate(all="ignore"):
                D[b] = A[b] @ B[b] + C[b]
    return pack_out(D, M, N, NB, ncd, el_out)


def sparse_reference(v, name, a_row, b_row, idx_row, d_row, cbsz, abid):
    """D += A B of an SMFMAC: stored A column kc (K / 2 of them) is item kc % KL of lane i + M*(kc // KL), its
    2-bit index the bits 2*KL*set + 2*(kc % KL) of the index VGPR in the same lane; it sits at dense column
    4*(kc // 2) + index. The set is ABID when CBSZ is 0, else set 0."""
    _, M, N, K, nb, ncd = next(x for x in isa.SMFMAC.values() if x[0] == name)
    suffix = name.split("_", 4)[4]
    ea, _, eb = suffix.partition("_")
    eb = eb or ea
    el_out = out_type(name)
    KL, KLb = (K // 2) * M // 64, K * N // 64
    iset = 0 if cbsz else abid
    A, B = np.zeros((M, K)), np.zeros((K, N))
    for kc in range(K // 2):
        for i in range(M):
            lane = i + M * (kc // KL)
            index = int(v[idx_row][lane]) >> (2 * KL * iset + 2 * (kc % KL)) & 3
            A[i, 4 * (kc // 2) + index] += element(v, a_row, lane, kc % KL, ea)
    for k in range(K):
        for j in range(N):
            B[k, j] = element(v, b_row, j + N * (k // KLb), k % KLb, eb)
    C = read_c(v, d_row, M, N, 1, el_out)[0]
    if el_out == "i32":
        D = (A.astype(np.int64) @ B.astype(np.int64) + C.astype(np.int64)) & 0xFFFFFFFF
    else:
        with np.errstate(all="ignore"):
            D = A @ B + C
    return pack_out(D[None], M, N, 1, ncd, el_out)


# ------------------------------------------------------------------------------------------------ inputs

def random_words(rng, n_regs, el):
    """Register words holding random elements of type el, with subnormals, infinities and NaNs mixed in."""
    if el == "i8":
        return rng.integers(0, 1 << 32, (n_regs, 64), dtype=np.uint64).astype(np.uint32)
    dt = _DTYPES[el]
    count = n_regs * 4 // dt.itemsize
    tiny = float(ml_dtypes.finfo(dt).smallest_subnormal) if el in ("bf16", "fp8", "bf8") else \
        float(np.finfo(dt).smallest_subnormal)
    x = rng.standard_normal((64, count)) * 2.0 ** rng.integers(-4, 4, (64, count))
    k = rng.random((64, count))
    x[k < 0.08] = tiny * rng.integers(1, 4, (k < 0.08).sum())            # subnormals
    x[(k >= 0.08) & (k < 0.1)] = 0.0
    special = [np.inf, -np.inf, np.nan] if el != "fp8" else [np.nan]     # OCP E4M3 has no infinities
    pick = k > 0.998
    x[pick] = rng.choice(special, pick.sum())
    vals = np.ascontiguousarray(x.astype(dt))
    return vals.view(np.uint32).reshape(64, n_regs).T.copy()


def random_c(rng, ncd, el_out):
    if el_out == "i32":
        return rng.integers(0, 1 << 32, (ncd, 64), dtype=np.uint64).astype(np.uint32)
    if el_out == "f64":
        return random_words(rng, ncd, "f64")
    return random_words(rng, ncd, "f32")


def check(got, want, el_out, what):
    if el_out == "i32":
        close = got == want
    elif el_out == "f64":
        g = (got[0::2].astype(np.uint64) | got[1::2].astype(np.uint64) << 32).view(np.float64)
        w = (want[0::2].astype(np.uint64) | want[1::2].astype(np.uint64) << 32).view(np.float64)
        # exact, but a product below the subnormal range loses its tail before the final rounding
        with np.errstate(invalid="ignore"):
            close = (g == w) | (np.isnan(g) & np.isnan(w)) | (np.abs(g - w) <= np.abs(np.spacing(w)))
    else:
        close = ulp_close(got.ravel(), want.ravel(), 1).reshape(got.shape)
    bad = np.argwhere(~close)
    assert bad.size == 0, f"{what}: {len(bad)} mismatches, first (reg, lane) {bad[:4].tolist()}"


# ------------------------------------------------------------------------------------------------ dense

_DENSE = []
for _mn, _M, _N, _K, _NB, _nab, _ncd in isa.MAI_BLOCKS.values():
    _f64 = "f64" in _mn
    _log = _NB.bit_length() - 1
    # every CBSZ/ABID pair the op defines (f64: none) with a random BLGP, and every BLGP (f64: neg bits)
    _mods = [(0, 0, bl) for bl in range(8)]
    if not _f64:
        _mods += [(cb, ab, int(_GEN.integers(0, 8))) for cb in range(1, _log + 1) for ab in range(1 << cb)]
    for _j, (_cb, _ab, _bl) in enumerate(_mods):
        _const = "-2.0" if _f64 else "7" if "i8" in _mn else "1.0"
        # (D, A, B, C): C and D in AGPRs in place; D in VGPRs with an inline C; A/B in AGPRs, C and D apart
        _d, _a, _b, _c = [(("a", 0), ("v", 64), ("v", 72), ("a", 0)), (("v", 100), ("a", 64), ("v", 72), _const),
                          (("v", 100), ("v", 64), ("a", 72), ("v", 160))][_j % 3]
        _ctext = _c if isinstance(_c, str) else _r(_c[0], _c[1], _ncd)
        _text = f" neg:[{_bl & 1},{_bl >> 1 & 1},{_bl >> 2}]" if _f64 else f" cbsz:{_cb} abid:{_ab} blgp:{_bl}"
        _DENSE.append(snippet(f"dense:{_mn}:{_j}", [f"{_mn} {_r(_d[0], _d[1], _ncd)}, {_r(_a[0], _a[1], _nab)}, "
                                                     f"{_r(_b[0], _b[1], _nab)}, {_ctext}{_text}"],
                              covers=[_mn], meta=(_d, _a, _b, _c, _cb, _ab, _bl)))


def _row(ref):
    return ref[1] + (256 if ref[0] == "a" else 0)


@pytest.mark.parametrize("key", _DENSE)
def test_dense_mfma(code, rng, key):
    """Every block, CBSZ/ABID broadcast and BLGP lane pattern (f64: neg) against the numpy model; all 64 lanes
    whatever EXEC says, nothing written outside D."""
    name = key.split(":")[1]
    _, M, N, K, NB, nab, ncd = next(x for x in isa.MAI_BLOCKS.values() if x[0] == name)
    d, a, b, c, cbsz, abid, blgp = META[key]
    el, el_out = name.rsplit("_", 1)[1], out_type(name)
    st = new_state(seed=int(rng.integers(1 << 62)))
    set64(st, 126, rand_exec(rng))
    st.v[_row(a):_row(a) + nab] = random_words(rng, nab, el)
    st.v[_row(b):_row(b) + nab] = random_words(rng, nab, el)
    if not isinstance(c, str):
        st.v[_row(c):_row(c) + ncd] = random_c(rng, ncd, el_out)
    creg = _row(c) if not isinstance(c, str) else float(c)
    if el_out == "i32" and isinstance(c, str):
        creg = float(int(c))
    want = dense_reference(st.v, name, _row(a), _row(b), creg, cbsz, abid, blgp)
    out = run(code[key], st)
    check(out.v[_row(d):_row(d) + ncd], want, el_out, key)
    untouched = np.ones(512, bool)
    untouched[_row(d):_row(d) + ncd] = False
    assert (out.v[untouched] == st.v[untouched]).all(), "an MFMA wrote outside its destination"


for _mn, _M, _N, _K, _NB, _nab, _ncd in isa.MAI_BLOCKS.values():
    _log = _NB.bit_length() - 1
    _bad = [(1, 0)] if "f64" in _mn else [(_log + 1, 0)] + ([(1, 2)] if _log >= 1 else [])
    for _cb, _ab in _bad:
        snippet(f"dense-undefined:{_mn}:{_cb}:{_ab}",
                [f"{_mn} {_r('v', 100, _ncd)}, {_r('v', 0, _nab)}, {_r('v', 4, _nab)}, 0 cbsz:{_cb} abid:{_ab}"])


@pytest.mark.parametrize("key", [k for k in SNIPPETS if k.startswith("dense-undefined:")])
def test_dense_mfma_refuses_undefined_broadcasts(code, key):
    """A CBSZ above log2(blocks), an ABID outside the group, or any CBSZ/ABID on an f64 op: the ISA defines no
    result, so the emulator refuses by name."""
    expect_error(code[key], new_state(seed=3), "CBSZ .* undefined for this")


snippet("f64-specials", ["v_mfma_f64_16x16x4_f64 v[100:107], v[0:1], v[2:3], v[10:17]"])


def f64_rows(words):
    return (words[0::2].astype(np.uint64) | words[1::2].astype(np.uint64) << 32).view(np.float64)


def test_f64_mfma_sums_exactly_keeps_subnormals_and_ieee_specials(code):
    """Lanes 16k .. 16k+15 carry k (docs/facts.md §1.13). (1+2^-30)(1-2^-30) - 1 is -2^-60 exactly, which a
    product rounded before the add loses; a subnormal product is kept, never flushed; +inf - inf is NaN."""
    def put(row, vals):
        w = np.asarray(vals, np.float64).view(np.uint64)
        st.v[row], st.v[row + 1] = (w & 0xFFFFFFFF).astype(np.uint32), (w >> 32).astype(np.uint32)
    def result(a, b, c):
        put(0, a)
        put(2, b)
        for r in range(4):
            put(10 + 2 * r, np.full(64, c))
        return f64_rows(run(code["f64-specials"], st).v[100:108])
    st = new_state(seed=5)
    a, b = np.zeros(64), np.zeros(64)
    a[:16], b[:16] = 1.0 + 2.0 ** -30, 1.0 - 2.0 ** -30
    assert (result(a, b, -1.0) == -(2.0 ** -60)).all()
    a[:16], a[16:32], b[16:32] = 0.0, 2.0 ** -1060, 2.0 ** -5
    assert (result(a, b, 0.0) == 2.0 ** -1065).all()
    a[32:48], b[32:48], a[48:], b[48:] = np.inf, 1.0, np.inf, -1.0
    assert np.isnan(result(a, b, 0.0)).all()


# ------------------------------------------------------------------------------------------------ SMFMAC

_SPARSE = []
for _mn, _M, _N, _K, _nb, _ncd in isa.SMFMAC.values():
    _kl = (_K // 2) * _M // 64
    _nsets = 32 // (2 * _kl)
    # every index set ABID selects, then a nonzero CBSZ (set 0 whatever ABID says)
    _mods = [(0, s) for s in range(_nsets)] + [(int(_GEN.integers(1, 8)), int(_GEN.integers(0, 16)))]
    for _j, (_cb, _ab) in enumerate(_mods):
        _d = ("a", 0) if _j % 2 == 0 else ("v", 100)
        _a = ("v", 64) if _j % 2 == 0 else ("a", 64)
        _SPARSE.append(snippet(f"sparse:{_mn}:{_j}", [
            f"{_mn} {_r(_d[0], _d[1], _ncd)}, {_r(_a[0], _a[1], _nb // 2)}, {_r('v', 72, _nb)}, v90"
            f" cbsz:{_cb} abid:{_ab}"], covers=[_mn], meta=(_d, _a, _cb, _ab)))


def random_indices(rng, kl):
    """Index words: in every set, each pair of stored values gets two distinct increasing positions of its
    group of four (the 4:2 pattern), so every set is a valid, different sparsity pattern."""
    pairs = np.array([(p, q) for p in range(4) for q in range(p + 1, 4)])
    words = np.zeros(64, np.uint64)
    for bit in range(0, 32, 4):
        pick = pairs[rng.integers(0, len(pairs), 64)]
        words |= (pick[:, 0] | pick[:, 1] << 2).astype(np.uint64) << bit
    return words.astype(np.uint32)


@pytest.mark.parametrize("key", _SPARSE)
def test_smfmac(code, rng, key):
    """D += A B with A 4:2 sparse: random stored values and random sparsity patterns in every index set; the
    set ABID picks (CBSZ 0) or set 0 (CBSZ nonzero) decides the result."""
    name = key.split(":")[1]
    _, M, N, K, nb, ncd = next(x for x in isa.SMFMAC.values() if x[0] == name)
    d, a, cbsz, abid = META[key]
    suffix = name.split("_", 4)[4]
    ea, _, eb = suffix.partition("_")
    el_out = out_type(name)
    st = new_state(seed=int(rng.integers(1 << 62)))
    set64(st, 126, rand_exec(rng))
    st.v[_row(a):_row(a) + nb // 2] = random_words(rng, nb // 2, ea)
    st.v[72:72 + nb] = random_words(rng, nb, eb or ea)
    st.v[90] = random_indices(rng, (K // 2) * M // 64)
    st.v[_row(d):_row(d) + ncd] = random_c(rng, ncd, el_out)
    want = sparse_reference(st.v, name, _row(a), 72, 90, _row(d), cbsz, abid)
    out = run(code[key], st)
    check(out.v[_row(d):_row(d) + ncd], want, el_out, key)
    untouched = np.ones(512, bool)
    untouched[_row(d):_row(d) + ncd] = False
    assert (out.v[untouched] == st.v[untouched]).all(), "an SMFMAC wrote outside its destination"


snippet("sparse-abid", ["v_smfmac_i32_16x16x128_i8 v[100:103], v[0:3], v[4:11], v20 abid:1"])
snippet("sparse-blgp", ["v_smfmac_f32_16x16x32_f16 v[100:103], v[0:1], v[2:5], v20"])


def test_smfmac_refuses_undefined_fields(code):
    """An ABID past the shape's index sets (16x16x128 i8 has one set of 16 indices) and a BLGP, which the ISA
    does not define for SMFMAC (llvm-mc will not write one; set here in the encoding), are refused."""
    expect_error(code["sparse-abid"], new_state(seed=4), "ABID 1: this shape's index register holds 1 index sets")
    raw = bytearray(code["sparse-blgp"])
    raw[7] |= 0x20   # BLGP = 1 (bits 31:29 of the second word)
    expect_error(bytes(raw), new_state(seed=4), "SMFMAC with BLGP 1")


# ------------------------------------------------------------------------------------------------ timing

def test_smfmac_timing_reads_its_own_operands(tc, tmp_path):
    """The timing model's register dependencies of an SMFMAC: it waits for an ALU write of its accumulator D
    (its C) and of its index VGPR, but not for registers past that one VGPR or past A, which has half of B's
    registers."""
    from test_emu_timing import _Asm
    from test_emu_timing import run as timed
    asm = _Asm(tc.mc, tmp_path)
    op = "v_smfmac_f32_16x16x32_f16 v[0:3], v[4:5], v[8:11], v20"
    def cycles(first):  # the cycle the SMFMAC issues at
        got = []
        timed(asm, [first, op], trace=got)
        return int(got[0]["cycle"][got[0]["op"] == isa.MNEMONICS.index(op.split()[0])][0])
    # a transcendental result is ready well after the next issue slot, so a reader of it waits
    unrelated = cycles("v_exp_f32 v40, v41")
    assert cycles("v_exp_f32 v2, v41") > unrelated        # D is read as the accumulator
    assert cycles("v_exp_f32 v20, v41") > unrelated       # the index VGPR
    assert cycles("v_exp_f32 v23, v41") == unrelated      # not a source
    assert cycles("v_exp_f32 v6, v41") == unrelated       # past A's two registers
