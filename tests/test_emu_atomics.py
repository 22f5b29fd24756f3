"""Atomics, lane exchanges and the private segment (scratch) in the gfx950 emulator, against numpy models.

The models below are written from the ISA's descriptions (docs/facts.md §9), independently of core.c: each
lane's read-modify-write is applied in ascending lane order (lanes of one instruction that hit the same
address see each other's results), out-of-range buffer and LDS lanes are dropped and return 0, and a
returning form gives the value memory held before the lane's own operation. Inputs are random and fresh
each run (HKRT_TEST_SEED replays them, as in test_emu_isa.py), with NaN, infinities, signed zeros, denormals
and the integer boundaries mixed in.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emu_harness import new_state, run  # noqa: E402
from kernel_harness import EmuMachine  # noqa: E402
from emu_harness import SEED, snippet_book  # noqa: E402
from test_emu_isa import (_LOADS, _STORES, ALL, LDS_BYTES, M32, WORD3, Mem, _w, expect_error, lanes,  # noqa: E402
                          load_rows, rand_exec, set64, store_bytes)
from test_emu_isa import _regs_text as _regs  # noqa: E402

from hkrt.emu import isa, timing  # noqa: E402
from hkrt.emu.errors import EmulationError  # noqa: E402
from hkrt.emu.launch import PRIVATE_APERTURE  # noqa: E402

_GEN = np.random.default_rng([SEED, 1])
SNIPPETS, _, COVERED, snippet = snippet_book()


# ------------------------------------------------------------------------------------------------ the model

F32_EDGES = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC12345, 0x00000001, 0x807FFFFF,
             0x00800000, 0x7F7FFFFF, 0x3F800000, 0xBF800000]
F64_EDGES = [0, 1 << 63, 0x7FF0 << 48, 0xFFF0 << 48, 0x7FF8 << 48, 1, (1 << 63) | 0xFFFFFFFFFFFFF, 1 << 52,
             0x7FEFFFFFFFFFFFFF, 0x3FF0 << 48]
H16_EDGES = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x0001, 0x83FF, 0x7BFF, 0x3C00, 0x7F80, 0xFF80, 0x0080]


def _f32(u):
    return np.array([u], np.uint32).view(np.float32)[0]


def _f64(u):
    return np.array([u], np.uint64).view(np.float64)[0]


def _bits32(f):
    return int(np.array([f], np.float32).view(np.uint32)[0])


def _bits64(f):
    return int(np.array([f], np.float64).view(np.uint64)[0])


def _minnum(a, b, lower):
    """IEEE 754-2008 minNum/maxNum: a quiet NaN loses to a number; -0 orders below +0."""
    if np.isnan(a):
        return b
    if np.isnan(b):
        return a
    if a == b == 0:
        return a if (np.signbit(a) == lower) else b
    return min(a, b) if lower else max(a, b)


def _halves(x, y, add):
    out = 0
    for h in (0, 16):
        out |= add((x >> h) & 0xFFFF, (y >> h) & 0xFFFF) << h
    return out


def _f16_add(a, b):
    s = np.array([a], np.uint16).view(np.float16)[0] + np.array([b], np.uint16).view(np.float16)[0]
    return int(np.array([s], np.float16).view(np.uint16)[0])


def _bf16_add(a, b):
    bf = np.dtype(ml_dtypes.bfloat16)
    s = np.array([a], np.uint16).view(bf).astype(np.float32)[0] + np.array([b], np.uint16).view(bf).astype(np.float32)[0]
    return int(np.array([s], np.float32).astype(bf).view(np.uint16)[0])


def model(op: str, width: int, old: int, x: int, y: int) -> int:
    """The new memory value. x: the data operand (cmpswap's new value, mskor's mask); y: the second one
    (cmpswap's compare value, mskor's OR bits)."""
    bits = 8 * width
    mask = (1 << bits) - 1

    def sgn(v):
        return v - (1 << bits) if v >> (bits - 1) else v
    fl, fb = (_f64, _bits64) if width == 8 else (_f32, _bits32)
    with np.errstate(all="ignore"):
        return {
            "swap": lambda: x, "wrxchg": lambda: x, "cmpswap": lambda: x if old == y else old,
            "add": lambda: (old + x) & mask, "sub": lambda: (old - x) & mask, "rsub": lambda: (x - old) & mask,
            "smin": lambda: x if sgn(x) < sgn(old) else old, "smax": lambda: x if sgn(x) > sgn(old) else old,
            "umin": lambda: min(x, old), "umax": lambda: max(x, old),
            "and": lambda: old & x, "or": lambda: old | x, "xor": lambda: old ^ x,
            "inc": lambda: 0 if old >= x else old + 1, "dec": lambda: x if old == 0 or old > x else old - 1,
            "mskor": lambda: (old & ~x & mask) | y,
            "cmpswap_f": lambda: x if fl(old) == fl(y) else old,
            "add_f": lambda: fb(fl(old) + fl(x)),
            "min_f": lambda: fb(_minnum(fl(old), fl(x), True)), "max_f": lambda: fb(_minnum(fl(old), fl(x), False)),
            "pk_add_f16": lambda: _halves(old, x, _f16_add), "pk_add_bf16": lambda: _halves(old, x, _bf16_add),
        }[op]()


def same(op, width, got, want) -> bool:
    """Bit equality; for float ops any NaN matches any NaN (per half for the packed ones)."""
    if got == want:
        return True
    if op.startswith("pk_add"):
        nan = (lambda h: (h & 0x7C00) == 0x7C00 and h & 0x3FF) if op == "pk_add_f16" else \
            (lambda h: (h & 0x7F80) == 0x7F80 and h & 0x7F)
        return all(((got >> s) & 0xFFFF) == ((want >> s) & 0xFFFF) or (nan((got >> s) & 0xFFFF) and
                                                                          nan((want >> s) & 0xFFFF)) for s in (0, 16))
    if op in ("add_f", "min_f", "max_f"):
        fl = _f64 if width == 8 else _f32
        return bool(np.isnan(fl(got)) and np.isnan(fl(want)))
    return False


def operands(rng, op, width, n):
    """Random data operands with the op's edge cases."""
    if op in ("add_f", "min_f", "max_f", "cmpswap_f"):
        edges = F64_EDGES if width == 8 else F32_EDGES
        if width == 8:
            v = rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)
            x = v.view(np.uint64).astype(object)
        else:
            v = (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)).astype(np.float32)
            x = v.view(np.uint32).astype(object)
        pick = rng.random(n) < 0.35
        x[pick] = rng.choice(np.array(edges, dtype=object), pick.sum())
        if op in ("min_f", "max_f"):  # signalling NaNs are left out: the ISA text we have does not say (OQ 17)
            x = np.array([(7 << 60 | 0x7FF8 << 48) if width == 8 and np.isnan(_f64(int(v))) else
                          0x7FC00000 if width == 4 and np.isnan(_f32(int(v))) else int(v) for v in x], object)
        return [int(v) for v in x]
    if op.startswith("pk_add"):
        h = rng.integers(0, 1 << 16, (n, 2))
        pick = rng.random((n, 2)) < 0.3
        h[pick] = rng.choice(H16_EDGES, pick.sum())
        return [int(a) | int(b) << 16 for a, b in h]
    bits = 8 * width
    edges = [0, 1, 2, (1 << (bits - 1)) - 1, 1 << (bits - 1), (1 << bits) - 1, (1 << bits) - 2]
    x = [int(a) << 32 | int(b) for a, b in rng.integers(0, 1 << 32, (n, 2))]
    x = [v & ((1 << bits) - 1) for v in x]
    if op in ("inc", "dec"):
        x = [v % 8 for v in x]  # small limits, so that the wrap-around happens
    return [edges[int(rng.integers(len(edges)))] if rng.random() < 0.3 else v for v in x]


def simulate(op, width, mem: dict, addrs, active, x, y):
    """Apply the lanes in order to mem (address -> value); returns each lane's old value (0 if dropped)."""
    old = [0] * 64
    for lane in range(64):
        if active[lane] and addrs[lane] is not None:
            old[lane] = mem[addrs[lane]]
            mem[addrs[lane]] = model(op, width, old[lane], x[lane], y[lane])
    return old


def _rows(values, width):
    """Registers x 64 lanes from per-lane values of `width` bytes."""
    v = np.array([int(x) for x in values], dtype=np.uint64)
    rows = [_w(v)]
    if width == 8:
        rows.append(_w(v >> np.uint64(32)))
    return rows


def _read(buf: np.ndarray, at: int, width: int) -> int:
    return int.from_bytes(buf[at:at + width].tobytes(), "little")


def _write(buf: np.ndarray, at: int, width: int, value: int) -> None:
    buf[at:at + width] = np.frombuffer(value.to_bytes(width, "little"), np.uint8)


# ------------------------------------------------------------------------------------------------ VMEM atomics
# (mnemonic suffix) -> (model op, bytes, takes a second operand)
VMEM_OPS = {}
for _name in [n for n in isa.FLAT.values() if n.startswith("atomic_")]:
    _s = _name[len("atomic_"):]
    _wide = _s.endswith(("_x2", "_f64"))
    _base = _s.removesuffix("_x2")
    _op = {"add_f32": "add_f", "add_f64": "add_f", "min_f64": "min_f", "max_f64": "max_f"}.get(_base, _base)
    VMEM_OPS[_s] = (_op, 8 if _wide else 4, _base == "cmpswap")

for _s, (_op, _wd, _pair) in VMEM_OPS.items():
    _nd, _nr = (2 if _pair else 1) * _wd // 4, _wd // 4
    _io = int(_GEN.integers(-256, 256)) * 8
    snippet(f"global:{_s}:ret", [f"global_atomic_{_s} {_regs(10, _nr)}, v1, {_regs(20, _nd)}, s[30:31] offset:{_io} sc0",
                                 "s_waitcnt vmcnt(0)"], covers=[f"global_atomic_{_s}"])
    snippet(f"global:{_s}:noret", [f"global_atomic_{_s} v[2:3], {_regs(20, _nd)}, off offset:{_io}"])
    snippet(f"flat:{_s}:ret", ["s_mov_b64 s[22:23], src_shared_base", "v_mov_b32 v5, s23",
                               "v_cndmask_b32 v3, v3, v5, vcc",  # lanes in VCC go to LDS through the aperture
                               f"flat_atomic_{_s} {_regs(10, _nr)}, v[2:3], {_regs(20, _nd)} sc0",
                               "s_waitcnt vmcnt(0) lgkmcnt(0)"], covers=[f"flat_atomic_{_s}"])
    snippet(f"flat:{_s}:noret", ["s_mov_b64 s[22:23], src_shared_base", "v_mov_b32 v5, s23",
                                 "v_cndmask_b32 v3, v3, v5, vcc", f"flat_atomic_{_s} v[2:3], {_regs(20, _nd)}",
                                 "s_waitcnt vmcnt(0) lgkmcnt(0)"])
    snippet(f"buffer:{_s}:ret", [f"buffer_atomic_{_s} {_regs(20, _nd)}, v1, s[8:11], s12 offen offset:{abs(_io)} sc0",
                                 "s_waitcnt vmcnt(0)"], covers=[f"buffer_atomic_{_s}"])
    snippet(f"buffer:{_s}:noret", [f"buffer_atomic_{_s} {_regs(20, _nd)}, v1, s[8:11], s12 offen offset:{abs(_io)}"])


def _imm(key):
    return int(SNIPPETS[key][-2 if key.endswith("noret") else -3].split("offset:")[1].split()[0])


def _slots(rng, width, span, n_slots=16):
    """n_slots distinct aligned byte offsets under span, and which one each lane hits (about 4 lanes each)."""
    offs = (rng.permutation(span // 16)[:n_slots] * 16 + int(rng.integers(0, 16 // width)) * width).astype(int)
    return offs, offs[rng.integers(0, n_slots, 64)]


def _vmem_case(rng, suffix):
    op, width, pair = VMEM_OPS[suffix]
    e = rand_exec(rng)
    x = operands(rng, op, width, 64)
    y = operands(rng, op, width, 64) if pair else [0] * 64
    return op, width, pair, e, x, y


def _initial(rng, op, width, buf, offs):
    for o, v in zip(offs, operands(rng, op, width, len(offs))):
        _write(buf, int(o), width, v)


def _check_returned(out, st, op, width, e, old, what):
    n = width // 4
    reg = 20 if what.startswith("buffer") else 10
    got = [int(out.v[reg][l]) | (int(out.v[reg + 1][l]) << 32 if n == 2 else 0) for l in range(64)]
    for l in range(64):
        if e >> l & 1:
            assert same(op, width, got[l], old[l]), f"{what}: lane {l} returned {got[l]:#x}, want {old[l]:#x}"
    kept = [r for r in range(reg, reg + n) if (out.v[r][~lanes(e)] != st.v[r][~lanes(e)]).any()]
    assert not kept, f"{what}: inactive lanes of v{kept} were written"


def _check_memory(got_buf, want: dict, op, width, what):
    for at, v in want.items():
        g = _read(got_buf, at, width)
        assert same(op, width, g, v), f"{what}: memory at +{at:#x} holds {g:#x}, want {v:#x}"


@pytest.mark.parametrize("ret", [True, False], ids=["sc0", "nosc0"])
@pytest.mark.parametrize("suffix", list(VMEM_OPS))
def test_global_atomics(code, rng, suffix, ret):
    """Returning (sc0: the pre-op value lands in VDST) and not (VDST untouched); lanes share addresses."""
    op, width, pair, e, x, y = _vmem_case(rng, suffix)
    key = f"global:{suffix}:{'ret' if ret else 'noret'}"
    imm = _imm(key)
    mem = Mem(rng, 8192)
    img = mem.bytes()
    offs, lane_off = _slots(rng, width, 4096)
    offs, lane_off = offs + 2048, lane_off + 2048
    _initial(rng, op, width, img, offs)
    mem.m.memory.view(mem.bases[0], 8192)[:] = img.tobytes()
    st = new_state(seed=int(rng.integers(1 << 62)))
    set64(st, 126, e)
    addr = mem.bases[0] + lane_off.astype(np.uint64) - np.uint64(imm) if imm >= 0 else \
        mem.bases[0] + lane_off.astype(np.uint64) + np.uint64(-imm)
    st.v[2], st.v[3] = _w(addr), _w(addr >> np.uint64(32))
    st.v[1] = _w(lane_off - imm)  # an unsigned 32-bit offset from the SGPR base
    set64(st, 30, mem.bases[0])
    for r, row in enumerate(_rows(x, width) + (_rows(y, width) if pair else [])):
        st.v[20 + r] = row
    want = {int(o): _read(img, int(o), width) for o in offs}
    old = simulate(op, width, want, [int(o) for o in lane_off], lanes(e), x, y)
    out = run(code[key], st, machine=mem.m)
    _check_memory(mem.bytes(), want, op, width, f"global_atomic_{suffix}")
    if ret:
        _check_returned(out, st, op, width, e, old, f"global_atomic_{suffix} sc0")
    else:
        assert (out.v[10:12] == st.v[10:12]).all(), "without sc0 the destination is not written"


@pytest.mark.parametrize("ret", [True, False], ids=["sc0", "nosc0"])
@pytest.mark.parametrize("suffix", list(VMEM_OPS))
def test_flat_atomics(code, rng, suffix, ret):
    """FLAT atomics reach global memory, and LDS for lanes whose address falls in the shared aperture."""
    op, width, pair, e, x, y = _vmem_case(rng, suffix)
    mem = Mem(rng, 4096)
    img = mem.bytes()
    st = new_state(LDS_BYTES, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    set64(st, 126, e)
    to_lds = rng.random(64) < 0.5
    set64(st, 106, int(sum(1 << l for l in range(64) if to_lds[l])))
    goffs, g_lane = _slots(rng, width, 4096, 8)
    loffs, l_lane = _slots(rng, width, LDS_BYTES, 8)
    _initial(rng, op, width, img, goffs)
    _initial(rng, op, width, st.lds, loffs)
    mem.m.memory.view(mem.bases[0], 4096)[:] = img.tobytes()
    ga = mem.bases[0] + g_lane.astype(np.uint64)
    st.v[2] = np.where(to_lds, _w(l_lane), _w(ga))
    st.v[3] = _w(ga >> np.uint64(32))  # the snippet puts the aperture's high half here for LDS lanes
    for r, row in enumerate(_rows(x, width) + (_rows(y, width) if pair else [])):
        st.v[20 + r] = row
    want = {("g", int(o)): _read(img, int(o), width) for o in goffs} | \
        {("l", int(o)): _read(st.lds, int(o), width) for o in loffs}
    where = [("l", int(l_lane[l])) if to_lds[l] else ("g", int(g_lane[l])) for l in range(64)]
    old = simulate(op, width, want, where, lanes(e), x, y)
    out = run(code[f"flat:{suffix}:{'ret' if ret else 'noret'}"], st, machine=mem.m)
    _check_memory(mem.bytes(), {k[1]: v for k, v in want.items() if k[0] == "g"}, op, width, f"flat_atomic_{suffix}")
    _check_memory(out.lds, {k[1]: v for k, v in want.items() if k[0] == "l"}, op, width,
                  f"flat_atomic_{suffix} (LDS)")
    if ret:
        _check_returned(out, st, op, width, e, old, f"flat_atomic_{suffix} sc0")


@pytest.mark.parametrize("ret", [True, False], ids=["sc0", "nosc0"])
@pytest.mark.parametrize("suffix", list(VMEM_OPS))
def test_buffer_atomics(code, rng, suffix, ret):
    """Raw buffer atomics: base + soffset + voffset + imm; lanes past num_records are dropped (return 0)."""
    op, width, pair, e, x, y = _vmem_case(rng, suffix)
    key = f"buffer:{suffix}:{'ret' if ret else 'noret'}"
    imm = _imm(key)
    mem = Mem(rng, 16384)
    img = mem.bytes()
    soffset = int(rng.integers(0, 64)) * 16
    offs, lane_off = _slots(rng, width, 4096)
    offs, lane_off = offs + 4096, lane_off + 4096
    num = int(np.sort(offs)[12]) + width  # the slots above the 13th are out of range
    _initial(rng, op, width, img, offs + soffset)
    mem.m.memory.view(mem.bases[0], 16384)[:] = img.tobytes()
    st = new_state(seed=int(rng.integers(1 << 62)))
    set64(st, 126, e)
    base = mem.bases[0]
    st.s[8:12] = [base & M32, base >> 32, num, WORD3]
    st.s[12] = soffset
    st.v[1] = _w(lane_off - imm)  # voffset + imm is the range-checked offset
    for r, row in enumerate(_rows(x, width) + (_rows(y, width) if pair else [])):
        st.v[20 + r] = row
    want = {int(o) + soffset: _read(img, int(o) + soffset, width) for o in offs}
    where = [int(o) + soffset if o + width <= num else None for o in lane_off]
    old = simulate(op, width, want, where, lanes(e), x, y)
    out = run(code[key], st, machine=mem.m)
    _check_memory(mem.bytes(), want, op, width, f"buffer_atomic_{suffix}")
    if ret:
        _check_returned(out, st, op, width, e, old, f"buffer_atomic_{suffix} sc0")
    else:
        assert (out.v[20:24] == st.v[20:24]).all(), "without sc0 VDATA keeps its operands"


snippet("global:misaligned", ["global_atomic_add v10, v[2:3], v20, off sc0", "s_waitcnt vmcnt(0)"])
snippet("global:outside", ["global_atomic_add_x2 v[2:3], v[20:21], off"])


def test_vmem_atomic_faults(code, rng):
    mem = Mem(rng, 256)
    st = new_state(seed=int(rng.integers(1 << 62)))
    addr = np.full(64, mem.bases[0] + 8, np.uint64)
    addr[5] += 2
    st.v[2], st.v[3] = _w(addr), _w(addr >> np.uint64(32))
    expect_error(code["global:misaligned"], st, "misaligned 4-byte atomic", machine=mem.m)
    addr[5] = mem.bases[0] + 256
    st.v[2], st.v[3] = _w(addr), _w(addr >> np.uint64(32))
    expect_error(code["global:outside"], st, "outside every device allocation", machine=mem.m)


# ------------------------------------------------------------------------------------------------ DS atomics
def _ds_op(name):
    """ds mnemonic -> (model op, bytes, returns, operand registers): DATA0 (and DATA1 for cmpst/mskor)."""
    body = name[len("ds_"):].replace("_rtn", "")
    ret = "_rtn_" in name
    width = 8 if body.endswith("64") else 4
    base, ty = body.rsplit("_", 1)
    op = {"min": "smin" if ty[0] == "i" else "umin" if ty[0] == "u" else "min_f",
          "max": "smax" if ty[0] == "i" else "umax" if ty[0] == "u" else "max_f",
          "cmpst": "cmpswap_f" if ty[0] == "f" else "cmpswap", "add": "add_f" if ty[0] == "f" else "add",
          "pk_add": "pk_add_f16" if ty == "f16" else "pk_add_bf16"}.get(base, base)
    return op, width, ret, 2 if base in ("cmpst", "mskor") else 1


DS_ATOMICS = [n for n in isa.DS.values() if n.split("_")[1] in
              ("add", "sub", "rsub", "inc", "dec", "min", "max", "and", "or", "xor", "mskor", "cmpst", "pk",
               "wrxchg") and "wrxchg2" not in n]
for _m in DS_ATOMICS:
    _op, _wd, _ret, _nops = _ds_op(_m)
    _n = _wd // 4
    _data = ", ".join(_regs(20 + 4 * k, _n) for k in range(_nops))
    _off = int(_GEN.integers(0, 64)) * 8
    snippet(f"ds:{_m}", [f"{_m} {_regs(10, _n) + ', ' if _ret else ''}v1, {_data} offset:{_off}",
                         "s_waitcnt lgkmcnt(0)"], covers=[_m])


@pytest.mark.parametrize("name", DS_ATOMICS)
def test_ds_atomics(code, rng, name):
    """LDS atomics: lanes share addresses and apply in lane order; lanes past the LDS end are dropped and return
    0. cmpst compares with DATA0 and stores DATA1; mskor keeps the bits DATA0 clears and ORs in DATA1."""
    op, width, ret, nops = _ds_op(name)
    off = int(SNIPPETS[f"ds:{name}"][0].split("offset:")[1])
    e = rand_exec(rng)
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    offs, lane_off = _slots(rng, width, LDS_BYTES - 1024)
    _initial(rng, op, width, st.lds, offs)
    oob = rng.random(64) < 0.1
    lane_off = np.where(oob, LDS_BYTES + 16 * rng.integers(0, 64, 64), lane_off)
    st.v[1] = _w(lane_off - off)
    d0 = operands(rng, op, width, 64)
    d1 = operands(rng, op, width, 64) if nops == 2 else [0] * 64
    if op in ("cmpswap", "cmpswap_f"):  # compare with what memory holds in about half the lanes
        d0 = [_read(st.lds, int(lane_off[l]), width) if not oob[l] and rng.random() < 0.5 else d0[l]
              for l in range(64)]
    for k, vals in enumerate((d0, d1)[:nops]):
        for r, row in enumerate(_rows(vals, width)):
            st.v[20 + 4 * k + r] = row
    x, y = (d1, d0) if op.startswith("cmpswap") else (d0, d1)  # the model's (new value, compare) order
    want = {int(o): _read(st.lds, int(o), width) for o in offs}
    old = simulate(op, width, want, [None if oob[l] else int(lane_off[l]) for l in range(64)], lanes(e), x, y)
    out = run(code[f"ds:{name}"], st)
    _check_memory(out.lds, want, op, width, name)
    rest = np.ones(LDS_BYTES, bool)
    for o in offs:
        rest[o:o + width] = False
    assert (out.lds[rest] == st.lds[rest]).all(), f"{name}: LDS outside the addressed slots changed"
    if ret:
        _check_returned(out, st, op, width, e, old, name)
    else:
        assert (out.v[10:12] == st.v[10:12]).all()


for _m in ("ds_wrxchg2_rtn_b32", "ds_wrxchg2st64_rtn_b32", "ds_wrxchg2_rtn_b64", "ds_wrxchg2st64_rtn_b64"):
    _n = 2 if _m.endswith("64") else 1
    _o0, _o1 = (1, 0) if "st64" in _m else (3, 1)  # inside each lane's 1 KiB
    snippet(f"ds:{_m}", [f"{_m} {_regs(10, 2 * _n)}, v1, {_regs(20, _n)}, {_regs(24, _n)} offset0:{_o0} "
                         f"offset1:{_o1}", "s_waitcnt lgkmcnt(0)"], covers=[_m])


@pytest.mark.parametrize("name", ["ds_wrxchg2_rtn_b32", "ds_wrxchg2st64_rtn_b32", "ds_wrxchg2_rtn_b64",
                                  "ds_wrxchg2st64_rtn_b64"])
def test_ds_wrxchg2(code, rng, name):
    """Two exchanges: DATA0 at offset0 and DATA1 at offset1 (elements, or 64-element strides); both old values
    return, offset0's first."""
    width = 8 if name.endswith("64") else 4
    scale = width * (64 if "st64" in name else 1)
    e = rand_exec(rng)
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    st.v[1] = (rng.permutation(64) * 1024).astype(np.uint32)
    o0, o1 = (1, 0) if "st64" in name else (3, 1)
    d0, d1 = operands(rng, "swap", width, 64), operands(rng, "swap", width, 64)
    for r, row in enumerate(_rows(d0, width)):
        st.v[20 + r] = row
    for r, row in enumerate(_rows(d1, width)):
        st.v[24 + r] = row
    want = st.lds.copy()
    olds = []
    for l in range(64):
        pair = []
        for k, (o, d) in enumerate(((o0, d0[l]), (o1, d1[l]))):
            at = int(st.v[1][l]) + o * scale
            pair.append(_read(want, at, width))
            if e >> l & 1:
                _write(want, at, width, d)
        olds.append(pair)
    out = run(code[f"ds:{name}"], st)
    assert (out.lds == want).all(), f"{name}: LDS differs"
    n = width // 4
    for k in range(2):
        got = [int(out.v[10 + k * n][l]) | (int(out.v[11 + k * n][l]) << 32 if n == 2 else 0) for l in range(64)]
        for l in np.nonzero(lanes(e))[0]:
            assert got[l] == olds[l][k], f"{name}: lane {l} element {k}"


snippet("ds:nop", ["ds_nop", "s_waitcnt lgkmcnt(0)"], covers=["ds_nop"])


def test_ds_nop(code, rng):
    st = new_state(1024, seed=int(rng.integers(1 << 62)))
    st.lds[:] = rng.integers(0, 256, 1024, dtype=np.uint8)
    out = run(code["ds:nop"], st)
    assert (out.v == st.v).all() and (out.lds == st.lds).all() and (out.s == st.s).all()


snippet("ds:misaligned", ["ds_add_u64 v1, v[20:21]"])


def test_ds_atomic_misaligned_raises(code, rng):
    st = new_state(1024, seed=int(rng.integers(1 << 62)))
    st.v[1] = np.full(64, 8, np.uint32)
    st.v[1][9] = 12
    expect_error(code["ds:misaligned"], st, "misaligned LDS atomic at 0xc")


# ------------------------------------------------------------------------------------------------ lane exchange
snippet("ds:permute", ["ds_permute_b32 v10, v1, v2 offset:8", "s_waitcnt lgkmcnt(0)"], covers=["ds_permute_b32"])
snippet("ds:bpermute", ["ds_bpermute_b32 v10, v1, v2 offset:4", "s_waitcnt lgkmcnt(0)"], covers=["ds_bpermute_b32"])
SWIZZLES = [0x8000 | int(_GEN.integers(0, 256)), int(_GEN.integers(0, 0x8000)), 0x041F, 0x003F, 0x7C00 | 0x1F]
for _i, _o in enumerate(SWIZZLES):
    snippet(f"ds:swizzle{_i}", [f"ds_swizzle_b32 v10, v2 offset:{_o}", "s_waitcnt lgkmcnt(0)"],
            covers=["ds_swizzle_b32"])
snippet("ds:swizzle_rotate", ["ds_swizzle_b32 v10, v2 offset:0xc021", "s_waitcnt lgkmcnt(0)"])


def test_ds_permute(code, rng):
    """Forward permute: each active lane writes its DATA0 to lane (addr + offset) / 4 mod 64, the highest
    writer winning; active lanes nobody wrote get 0."""
    e = rand_exec(rng)
    st = new_state(0, e, seed=int(rng.integers(1 << 62)))
    st.v[1] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    st.v[1][:32] = rng.integers(0, 256, 32)  # some collisions, some unaligned
    st.v[2] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    want = np.zeros(64, np.uint32)
    for l in range(64):
        if e >> l & 1:
            want[((int(st.v[1][l]) + 8) >> 2) & 63] = st.v[2][l]
    out = run(code["ds:permute"], st)
    act = lanes(e)
    assert (out.v[10][act] == want[act]).all() and (out.v[10][~act] == st.v[10][~act]).all()


def test_ds_bpermute(code, rng):
    """Backward permute: lane l reads DATA0 of lane (addr + offset) / 4 mod 64, or 0 if that lane is inactive."""
    e = rand_exec(rng)
    st = new_state(0, e, seed=int(rng.integers(1 << 62)))
    st.v[1] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    st.v[2] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    src = ((st.v[1].astype(np.uint64) + 4) >> np.uint64(2)).astype(np.int64) & 63
    want = np.where(lanes(e)[src], st.v[2][src], 0).astype(np.uint32)
    out = run(code["ds:bpermute"], st)
    act = lanes(e)
    assert (out.v[10][act] == want[act]).all() and (out.v[10][~act] == st.v[10][~act]).all()


@pytest.mark.parametrize("i", range(len(SWIZZLES)))
def test_ds_swizzle(code, rng, i):
    """offset[15] set: a permute within each quad (two bits per lane); clear: within each half of the wave, lane
    ((l & and) | or) ^ xor with the masks in offset bits 4:0, 9:5, 14:10. Inactive sources give 0."""
    off = SWIZZLES[i]
    e = rand_exec(rng)
    st = new_state(0, e, seed=int(rng.integers(1 << 62)))
    st.v[2] = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    want = np.zeros(64, np.uint32)
    for l in range(64):
        if off & 0x8000:
            j = (l & ~3) | (off >> (2 * (l & 3))) & 3
        else:
            j = (l & 32) | ((((l & 31) & (off & 31)) | ((off >> 5) & 31)) ^ ((off >> 10) & 31))
        want[l] = st.v[2][j] if e >> j & 1 else 0
    out = run(code[f"ds:swizzle{i}"], st)
    act = lanes(e)
    assert (out.v[10][act] == want[act]).all() and (out.v[10][~act] == st.v[10][~act]).all()
    expect_error(code["ds:swizzle_rotate"], st, "rotate and FFT modes are not implemented")


# ------------------------------------------------------------------------------------------------ scratch
# docs/facts.md §9.5: a lane's private offset is VGPR (if the SVE bit) + SGPR (if any) + the signed immediate;
# each lane has its own segment of PRIVATE bytes, reached also by FLAT through the private aperture. The tests
# fill every lane's segment with scratch stores, then read it back in other forms: what they check does not
# depend on where the emulator keeps the segments.
PRIVATE = 512
_FILL = [f"scratch_store_dwordx4 off, v[{100 + 4 * (k % 16)}:{103 + 4 * (k % 16)}], s40 offset:{16 * k}"
         for k in range(PRIVATE // 16 // 2)] + \
    [f"scratch_store_dwordx4 v40, v[{100 + 4 * (k % 16)}:{103 + 4 * (k % 16)}], off offset:{16 * k}"
     for k in range(PRIVATE // 16 // 2)]
_READ_BACK = [f"scratch_load_dwordx4 v[{128 + 4 * k}:{131 + 4 * k}], off, off offset:{16 * k}"
              for k in range(PRIVATE // 16)] + ["s_waitcnt vmcnt(0)"]  # the whole segment into v128..v255

for _s, (_wd, _n, _how) in _LOADS.items():
    snippet(f"scratch:load:{_s}", _FILL + [
        f"scratch_load_{_s} {_regs(10, _n)}, v1, off offset:-16",     # SVE: VGPR offset
        f"scratch_load_{_s} {_regs(20, _n)}, off, s20 offset:32",      # SGPR offset
        f"scratch_load_{_s} {_regs(30, _n)}, v2, s21 offset:4",        # both
        f"scratch_load_{_s} {_regs(50, _n)}, off, off offset:{PRIVATE - 16}",  # immediate only
        "s_waitcnt vmcnt(0)"], covers=[f"scratch_load_{_s}"])
for _s, (_wd, _n, _how) in _STORES.items():
    snippet(f"scratch:store:{_s}", _FILL + [
        f"scratch_store_{_s} v1, {_regs(10, _n)}, off offset:-16",
        f"scratch_store_{_s} off, {_regs(20, _n)}, s20 offset:32"] + _READ_BACK, covers=[f"scratch_store_{_s}"])


def _scratch_state(rng, e=ALL):
    mem = Mem(rng, 64 * PRIVATE)
    st = new_state(LDS_BYTES, e, seed=int(rng.integers(1 << 62)))
    set64(st, 102, mem.bases[0])  # FLAT_SCRATCH: the wave's private segments
    st.s[40] = 0
    st.v[40] = np.full(64, PRIVATE // 2, np.uint32)
    priv = rng.integers(0, 256, (64, PRIVATE), dtype=np.uint8)  # what _FILL writes: v100..v163 twice
    for k in range(16):
        for r in range(4):
            st.v[100 + 4 * k + r] = priv[:, 16 * k + 4 * r:16 * k + 4 * r + 4].copy().view("<u4")[:, 0]
    for k in range(PRIVATE // 16):  # the second half repeats the first (the same registers)
        priv[:, 16 * k:16 * k + 16] = priv[:, 16 * (k % 16):16 * (k % 16) + 16]
    return mem, st, priv


def _chunks(priv, offs, width):
    return np.stack([priv[l, o:o + width] for l, o in enumerate(offs)])


@pytest.mark.parametrize("suffix", list(_LOADS))
def test_scratch_loads(code, rng, suffix):
    width, n, how = _LOADS[suffix]
    e = rand_exec(rng)
    mem, st, priv = _scratch_state(rng, e)
    st.v[1] = (rng.integers(1, PRIVATE // 16 - 1, 64) * 16 + 16).astype(np.uint32)  # minus the -16
    st.s[20] = int(rng.integers(0, PRIVATE // 16 - 4)) * 16
    st.s[21] = 16 * int(rng.integers(0, 8))
    st.v[2] = (rng.integers(0, PRIVATE // 16 - 9, 64) * 16).astype(np.uint32)
    out = run(code[f"scratch:load:{suffix}"], st, machine=mem.m, scratch_lane_bytes=PRIVATE)
    for dst, offs in ((10, st.v[1].astype(int) - 16), (20, np.full(64, int(st.s[20]) + 32)),
                      (30, st.v[2].astype(int) + int(st.s[21]) + 4), (50, np.full(64, PRIVATE - 16))):
        want = load_rows(_chunks(priv, offs, width), how, st.v[dst])
        for r in range(n):
            act = lanes(e)
            assert (out.v[dst + r][act] == want[r][act]).all(), f"scratch_load_{suffix} v{dst + r}"
            assert (out.v[dst + r][~act] == st.v[dst + r][~act]).all()


@pytest.mark.parametrize("suffix", list(_STORES))
def test_scratch_stores(code, rng, suffix):
    width, n, how = _STORES[suffix]
    mem, st, priv = _scratch_state(rng)
    st.v[1] = (rng.integers(1, PRIVATE // 16 - 1, 64) * 16 + 16).astype(np.uint32)
    st.s[20] = int(rng.integers(0, PRIVATE // 16 - 4)) * 16
    for r in range(n):
        st.v[10 + r], st.v[20 + r] = (rng.integers(0, 1 << 32, (2, 64), dtype=np.uint64).astype(np.uint32))
    out = run(code[f"scratch:store:{suffix}"], st, machine=mem.m, scratch_lane_bytes=PRIVATE)
    for base, offs in ((10, st.v[1].astype(int) - 16), (20, np.full(64, int(st.s[20]) + 32))):
        data = store_bytes(st.v[base:base + n], how, width)
        for l in range(64):
            priv[l, offs[l]:offs[l] + width] = data[l]
    got = np.stack([out.v[128 + r] for r in range(128)]).T.copy().view(np.uint8).reshape(64, PRIVATE)
    assert (got == priv).all(), f"scratch_store_{suffix}: a lane's private segment differs"


snippet("scratch:flat", _FILL + ["v_mov_b32 v3, s31", "flat_load_dwordx2 v[10:11], v[2:3] offset:8",
                                 "flat_store_dword v[2:3], v5", "flat_atomic_add v12, v[2:3], v6 offset:4 sc0",
                                 "s_waitcnt vmcnt(0) lgkmcnt(0)", "scratch_load_dword v13, v2, off",
                                 "scratch_load_dword v14, v2, off offset:4", "s_waitcnt vmcnt(0)"])
snippet("scratch:past_end", [f"scratch_load_dword v10, v1, off offset:{PRIVATE - 4}", "s_waitcnt vmcnt(0)"])
snippet("scratch:aperture", ["s_mov_b64 s[20:21], src_private_base", "s_mov_b32 s22, src_private_base"])


def test_flat_reaches_the_private_segment(code, rng):
    """FLAT addresses in the private aperture (src_private_base) are the lane's private offsets: loads, stores
    and atomics there see what scratch instructions see."""
    mem, st, priv = _scratch_state(rng)
    out = run(code["scratch:aperture"], st, machine=mem.m)
    assert int(out.s[20]) | int(out.s[21]) << 32 == PRIVATE_APERTURE and out.s[22] == PRIVATE_APERTURE >> 32
    st.s[31] = PRIVATE_APERTURE >> 32
    st.v[2] = (rng.integers(0, PRIVATE // 16 - 1, 64) * 16).astype(np.uint32)
    st.v[5], st.v[6] = (rng.integers(0, 1 << 32, (2, 64), dtype=np.uint64).astype(np.uint32))
    out = run(code["scratch:flat"], st, machine=mem.m, scratch_lane_bytes=PRIVATE)
    offs = st.v[2].astype(int)
    want = _chunks(priv, offs + 8, 8).view("<u4")
    assert (out.v[10] == want[:, 0]).all() and (out.v[11] == want[:, 1]).all(), "flat_load from the aperture"
    old = _chunks(priv, offs + 4, 4).view("<u4")[:, 0]
    assert (out.v[12] == old).all(), "flat_atomic_add returns the private dword"
    assert (out.v[13] == st.v[5]).all(), "scratch_load sees flat_store's data"
    assert (out.v[14] == (old.astype(np.uint64) + st.v[6]).astype(np.uint32)).all(), "and the atomic's sum"


def test_scratch_bounds(code, rng):
    """An access past the end of the lane's private segment, or with no private segment, is a kernel error."""
    mem, st, _ = _scratch_state(rng)
    st.v[1] = np.zeros(64, np.uint32)
    run(code["scratch:past_end"], st, machine=mem.m, scratch_lane_bytes=PRIVATE)
    st.v[1][17] = 4
    expect_error(code["scratch:past_end"], st, f"past the end of the kernel's {PRIVATE}-byte private segment",
                 machine=mem.m, scratch_lane_bytes=PRIVATE)
    expect_error(code["scratch:past_end"], st, "the kernel has no private segment", machine=mem.m)


_DMA = [m[len("scratch_load_lds_"):] for m in isa.MNEMONICS if m.startswith("scratch_load_lds_")]
for _s in _DMA:
    snippet(f"scratch:dma:{_s}", _FILL + ["s_mov_b32 m0, s13", "s_nop 0", f"scratch_load_lds_{_s} v1, off",
                                          "s_waitcnt vmcnt(0)"], covers=[f"scratch_load_lds_{_s}"])


@pytest.mark.parametrize("suffix", _DMA)
def test_scratch_lds_dma(code, rng, suffix):
    """The LDS-DMA form from the private segment: each active lane's data lands at M0 + lane * 4, only its
    loaded bytes checked (the offset is 0: whether the immediate also moves the LDS side is OQ 3's question)."""
    width = {"ubyte": 1, "sbyte": 1, "ushort": 2, "sshort": 2, "dword": 4}[suffix]
    e = rand_exec(rng)
    mem, st, priv = _scratch_state(rng, e)
    st.lds[:] = rng.integers(0, 256, LDS_BYTES, dtype=np.uint8)
    st.s[13] = int(rng.integers(0, 64)) * 64
    st.v[1] = (rng.integers(0, PRIVATE // 4, 64) * 4).astype(np.uint32)
    out = run(code[f"scratch:dma:{suffix}"], st, machine=mem.m, scratch_lane_bytes=PRIVATE)
    want = st.lds.copy()
    check = np.zeros(LDS_BYTES, bool)
    for l in np.nonzero(lanes(e))[0]:
        at = int(st.s[13]) + 4 * l
        want[at:at + width] = priv[l, st.v[1][l]:st.v[1][l] + width]
        check[at:at + width] = True
    check |= ~np.isin(np.arange(LDS_BYTES), [int(st.s[13]) + 4 * l + k for l in range(64) for k in range(4)])
    assert (out.lds[check] == want[check]).all(), f"scratch_load_lds_{suffix}"


# ------------------------------------------------------------------------------------------------ whole kernels
SCRATCH_KERNEL = r"""
#include <hip/hip_runtime.h>
// A dynamically indexed private array too large for registers: it lives in scratch.
extern "C" __global__ void k(const int* idx, float* out, int n) {
  float a[256];
  int t = threadIdx.x + blockIdx.x * blockDim.x;
  for (int i = 0; i < 256; i++) a[i] = (float)(i * 3 + t);
  for (int s = 0; s < n; s++) {
    int j = idx[t * n + s] & 255;
    a[j] += a[(j * 7 + s) & 255] * 0.5f;
  }
  float sum = 0.0f;
  for (int s = 0; s < n; s++) sum += a[idx[t * n + s] & 255];
  out[t] = sum;
}
"""

ATOMIC_KERNEL = r"""
#include <hip/hip_runtime.h>
// Every thread adds its value to one counter and records what it saw before its add.
extern "C" __global__ void k(unsigned* counter, const unsigned* x, unsigned* seen, float* fsum, const float* y) {
  int t = threadIdx.x + blockIdx.x * blockDim.x;
  seen[t] = atomicAdd(counter, x[t]);
  atomicAdd(fsum, y[t]);
}
"""


def _scratch_reference(idx, threads, n):
    out = np.zeros(threads, np.float32)
    for t in range(threads):
        a = (np.arange(256) * 3 + t).astype(np.float32)
        for s in range(n):
            j = idx[t * n + s] & 255
            a[j] = np.float32(a[j] + a[(j * 7 + s) & 255] * np.float32(0.5))
        acc = np.float32(0)
        for s in range(n):
            acc = np.float32(acc + a[idx[t * n + s] & 255])
        out[t] = acc
    return out


@pytest.mark.parametrize("seed", [None, 3])
def test_hip_kernel_with_scratch(compile_hip, seed):
    """A HIP kernel whose private array the compiler puts in scratch runs and matches numpy, in several waves
    and workgroups (each lane's array is its own), under both wave orders."""
    from hkrt import codeobject
    co = compile_hip(SCRATCH_KERNEL, name="scratchy")
    kernel = codeobject.parse(co.read_bytes()).kernel("k")
    assert kernel.private_segment_fixed_size >= 1024, "the array did not go to scratch: the test proves nothing"
    rng = np.random.default_rng()
    threads, blocks, n = 128, 3, 6
    idx = rng.integers(0, 1 << 20, threads * blocks * n).astype(np.int32)
    dev = EmuMachine(strict=True, seed=seed)
    d_idx, d_out = dev.put(idx), dev.put(np.full(threads * blocks, np.nan, np.float32))
    mod = dev.load(co)
    dev.m.launch(mod, "k", (blocks, 1, 1), (threads, 1, 1), 0, struct.pack("<QQi", d_idx, d_out, n))
    got = dev.get(d_out, (threads * blocks,), np.float32)
    np.testing.assert_array_equal(got, _scratch_reference(idx, threads * blocks, n))


def test_atomics_are_atomic_across_waves_and_workgroups(compile_hip):
    """Many waves in many workgroups add to one address: the sum is exact and each thread's returned value is
    the counter before its own add, so the returned values sorted by value are the partial sums of some order
    of the threads' adds (docs/facts.md §9.1); a second launch continues from the first's result."""
    co = compile_hip(ATOMIC_KERNEL, name="atomics")
    rng = np.random.default_rng()
    threads, blocks = 256, 7
    total = threads * blocks
    for seed in (None, 11):
        x = rng.integers(1, 1 << 20, total).astype(np.uint32)
        y = rng.integers(-64, 64, total).astype(np.float32)  # small integers: every fp32 partial sum is exact
        dev = EmuMachine(strict=True, seed=seed)
        start = int(rng.integers(0, 1 << 20))
        d_c, d_x, d_seen = dev.put(np.array([start], np.uint32)), dev.put(x), dev.put(np.zeros(total, np.uint32))
        d_f, d_y = dev.put(np.zeros(1, np.float32)), dev.put(y)
        mod = dev.load(co)
        args = struct.pack("<QQQQQ", d_c, d_x, d_seen, d_f, d_y)
        dev.m.launch(mod, "k", (blocks, 1, 1), (threads, 1, 1), 0, args)
        counter = int(dev.get(d_c, (1,), np.uint32)[0])
        seen = dev.get(d_seen, (total,), np.uint32).astype(np.int64)
        assert counter == (start + int(x.astype(np.int64).sum())) % (1 << 32)
        order = np.argsort(seen, kind="stable")
        partial = start + np.concatenate([[0], np.cumsum(x[order].astype(np.int64))[:-1]])
        np.testing.assert_array_equal(seen[order], partial % (1 << 32))
        assert dev.get(d_f, (1,), np.float32)[0] == y.astype(np.float64).sum()
        dev.m.launch(mod, "k", (blocks, 1, 1), (threads, 1, 1), 0, args)  # across launches
        assert int(dev.get(d_c, (1,), np.uint32)[0]) == (counter + int(x.astype(np.int64).sum())) % (1 << 32)


def test_timing_model_refuses_scratch(compile_hip):
    co = compile_hip(SCRATCH_KERNEL, name="scratchy_model")
    dev = EmuMachine(strict=True)
    dev.m.model = timing.get_model("mi355x")
    d = dev.put(np.zeros(64 * 6, np.int32))
    with pytest.raises(EmulationError, match="timing model does not model scratch"):
        dev.m.launch(dev.load(co), "k", (1, 1, 1), (64, 1, 1), 0, struct.pack("<QQi", d, d, 6))
