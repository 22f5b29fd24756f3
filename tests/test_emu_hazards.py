"""Strict mode's planted hazards (hkrt/emu/hazards.c, docs/facts.md §11): for every wait-state rule a snippet
one wait state short, which must fail naming both instructions, and the same snippet with the wait state
added, which must pass; for LDS races, multi-wave kernels with and without the barrier that orders them.
"""
import re

import numpy as np
import pytest

from hkrt.emu.errors import HazardError

from emu_harness import EmuError, assemble_many, new_state, run
from kernel_harness import EmuMachine

MFMA16 = "v_mfma_f32_16x16x32_bf16"
MFMA32 = "v_mfma_f32_32x32x16_bf16"
CMPX = "v_cmpx_eq_u32_e32 vcc, v0, v0"  # writes EXEC (unchanged: every lane compares equal)


def nops(n: int) -> list[str]:
    """n wait states of s_nop (s_nop k gives k + 1)."""
    out = []
    while n > 0:
        k = min(n, 16)
        out.append(f"s_nop {k - 1}")
        n -= k
    return out


DGEMM16, DGEMM4 = "v_mfma_f64_16x16x4_f64", "v_mfma_f64_4x4x4_4b_f64"

# rule -> (producer lines, consumer lines, wait states required, producer mnemonic, consumer mnemonic)
RULES = {
    "mfma16 result read by VALU": ([f"{MFMA16} v[0:3], v[4:7], v[8:11], v[0:3]"], ["v_add_f32 v12, v0, v1"], 8,
                                   MFMA16, "v_add_f32"),
    "mfma32 result read by VALU": ([f"{MFMA32} v[0:15], v[16:19], v[20:23], v[0:15]"], ["v_mov_b32 v30, v15"], 12,
                                   MFMA32, "v_mov_b32"),
    "mfma result read by LDS store": (["v_mov_b32 v20, 0", "s_nop 1", f"{MFMA16} v[0:3], v[4:7], v[8:11], v[0:3]"],
                                      ["ds_write_b32 v20, v2"], 8, MFMA16, "ds_write_b32"),
    "mfma result read as SrcA": ([f"{MFMA16} v[0:3], v[4:7], v[8:11], v[0:3]"],
                                 [f"{MFMA16} v[12:15], v[0:3], v[8:11], v[12:15]"], 8, MFMA16, MFMA16),
    "mfma32 result read as SrcB": ([f"{MFMA32} v[0:15], v[16:19], v[20:23], v[0:15]"],
                                   [f"{MFMA16} v[24:27], v[16:19], v[12:15], v[24:27]"], 12, MFMA32, MFMA16),
    # gfx950: P + 2 (one more than gfx940's P + 1)
    "mfma result overlapped as SrcC": ([f"{MFMA16} v[0:3], v[4:7], v[8:11], v[0:3]"],
                                       [f"{MFMA16} v[2:5], v[12:15], v[8:11], v[2:5]"], 6, MFMA16, MFMA16),
    "mfma32 result overlapped as SrcC": ([f"{MFMA32} v[0:15], v[16:19], v[20:23], v[0:15]"],
                                         [f"{MFMA16} v[12:15], v[24:27], v[20:23], v[12:15]"], 10, MFMA32, MFMA16),
    "mfma result overwritten by VALU": ([f"{MFMA16} v[0:3], v[4:7], v[8:11], v[0:3]"], ["v_mov_b32 v3, 0"], 8,
                                        MFMA16, "v_mov_b32"),
    "mfma SrcC overwritten by VALU": ([f"{MFMA16} v[12:15], v[4:7], v[8:11], v[0:3]"], ["v_mov_b32 v1, 0"], 3,
                                      MFMA16, "v_mov_b32"),
    "mfma32 SrcC overwritten by VALU": ([f"{MFMA32} v[16:31], v[4:7], v[8:11], v[32:47]"], ["v_mov_b32 v40, 0"], 7,
                                        MFMA32, "v_mov_b32"),
    "VALU write read by MFMA": (["v_mov_b32 v5, 0"], [f"{MFMA16} v[12:15], v[4:7], v[8:11], v[12:15]"], 2,
                                "v_mov_b32", MFMA16),
    "VALU write of EXEC before MFMA": ([CMPX], [f"{MFMA16} v[12:15], v[4:7], v[8:11], v[12:15]"], 4,
                                       "v_cmpx_eq_u32", MFMA16),
    "VALU SGPR write read by VALU": (["v_readfirstlane_b32 s20, v0"], ["v_add_u32 v1, s20, v1"], 2,
                                     "v_readfirstlane_b32", "v_add_u32"),
    "VALU SGPR write as lane select": (["v_readfirstlane_b32 s20, v0"], ["v_readlane_b32 s21, v1, s20"], 4,
                                       "v_readfirstlane_b32", "v_readlane_b32"),
    "VALU write read by v_readlane": (["v_mov_b32 v1, 0"], ["v_readlane_b32 s21, v1, 3"], 1,
                                      "v_mov_b32", "v_readlane_b32"),
    "VALU write of EXEC before v_writelane": ([CMPX], ["v_writelane_b32 v1, s2, 5"], 4, "v_cmpx_eq_u32",
                                              "v_writelane_b32"),
    "VALU write read by DPP": (["v_mov_b32 v1, 0"], ["v_mov_b32_dpp v2, v1 quad_perm:[1,0,3,2] row_mask:0xf "
                                                    "bank_mask:0xf"], 2, "v_mov_b32", "v_mov_b32"),
    "VALU write of EXEC before DPP": ([CMPX], ["v_mov_b32_dpp v2, v1 quad_perm:[1,0,3,2] row_mask:0xf "
                                              "bank_mask:0xf"], 5, "v_cmpx_eq_u32", "v_mov_b32"),
    "VALU write of VCC read as VCCZ": (["v_cmp_eq_u32_e32 vcc, v0, v1"], ["v_mov_b32 v2, src_vccz"], 5,
                                       "v_cmp_eq_u32", "v_mov_b32"),
    "transcendental read by VALU": (["v_exp_f32 v1, v0"], ["v_add_f32 v2, v1, v1"], 1, "v_exp_f32", "v_add_f32"),
    # the rows added for issue 9 (docs/facts.md §11.3)
    "VALU write of VCC before v_div_fmas": (["v_cmp_eq_u32_e32 vcc, v0, v1"], ["v_div_fmas_f32 v2, v3, v4, v5"], 4,
                                            "v_cmp_eq_u32", "v_div_fmas_f32"),
    "VALU write read by permlane swap": (["v_mov_b32 v1, 0"], ["v_permlane16_swap_b32 v2, v1"], 2, "v_mov_b32",
                                         "v_permlane16_swap_b32"),
    "VALU write of permlane swap's VDST": (["v_mov_b32 v2, 0"], ["v_permlane32_swap_b32 v2, v1"], 2, "v_mov_b32",
                                           "v_permlane32_swap_b32"),
    "v_cmpx before permlane swap": ([CMPX], ["v_permlane32_swap_b32 v2, v3"], 4, "v_cmpx_eq_u32",
                                    "v_permlane32_swap_b32"),
    "SDWA dst_sel result read by VALU": (["v_mov_b32_sdwa v1, v0 dst_sel:WORD_1 dst_unused:UNUSED_PRESERVE "
                                          "src0_sel:DWORD"], ["v_add_u32 v2, v1, v1"], 1, "v_mov_b32", "v_add_u32"),
    "SDWA dst_sel result overwritten by VALU": (["v_mov_b32_sdwa v1, v0 dst_sel:BYTE_1 dst_unused:UNUSED_PAD "
                                                 "src0_sel:DWORD"], ["v_mov_b32 v1, 0"], 1, "v_mov_b32", "v_mov_b32"),
    "VOP3 op_sel high-half result read by VALU": (["v_fma_f16 v1, v2, v3, v4 op_sel:[0,0,0,1]"], ["v_mov_b32 v5, v1"],
                                                  1, "v_fma_f16", "v_mov_b32"),
    "dot result read by another VALU op": (["v_dot2_i32_i16 v1, v2, v3, v4"], ["v_add_u32 v5, v1, v1"], 3,
                                           "v_dot2_i32_i16", "v_add_u32"),
    "dot result read as SrcA of the same dot": (["v_dot2_i32_i16 v1, v2, v3, v4"], ["v_dot2_i32_i16 v5, v1, v3, v4"],
                                                3, "v_dot2_i32_i16", "v_dot2_i32_i16"),
    "dot result overwritten by another VALU op": (["v_dot4_u32_u8 v1, v2, v3, v4"], ["v_mov_b32 v1, 0"], 3,
                                                  "v_dot4_u32_u8", "v_mov_b32"),
    "fp8 conversion into a byte pair read by VALU": (["v_cvt_pk_fp8_f32 v1, v2, v3 op_sel:[0,0,1]"],
                                                     ["v_mov_b32 v5, v1"], 1, "v_cvt_pk_fp8_f32", "v_mov_b32"),
    "SR fp4 conversion result read by VALU": (["v_cvt_scalef32_sr_pk_fp4_f32 v1, v[2:3], v4, v5"],
                                              ["v_add_u32 v6, v1, v1"], 1, "v_cvt_scalef32_sr_pk_fp4_f32", "v_add_u32"),
    # the DGEMM rows (docs/facts.md §11.3's table), now that the f64 MFMAs run
    "DGEMM 16x16x4 result read by VALU": ([f"{DGEMM16} v[0:7], v[8:9], v[10:11], v[0:7]"],
                                          ["v_add_f64 v[20:21], v[0:1], v[0:1]"], 19, DGEMM16, "v_add_f64"),
    "DGEMM 4x4x4 result read by VALU": ([f"{DGEMM4} v[0:1], v[8:9], v[10:11], v[0:1]"], ["v_mov_b32 v20, v1"], 6,
                                        DGEMM4, "v_mov_b32"),
    "DGEMM 16x16x4 result read by LDS store": (["v_mov_b32 v30, 0", "s_nop 1",
                                                f"{DGEMM16} v[0:7], v[8:9], v[10:11], v[0:7]"],
                                               ["ds_write_b32 v30, v2"], 18, DGEMM16, "ds_write_b32"),
    "DGEMM 4x4x4 result read by LDS store": (["v_mov_b32 v30, 0", "s_nop 1", f"{DGEMM4} v[0:1], v[8:9], v[10:11], v[0:1]"],
                                             ["ds_write_b32 v30, v0"], 9, DGEMM4, "ds_write_b32"),
    "DGEMM 16x16x4 result read as SrcA": ([f"{DGEMM16} v[0:7], v[8:9], v[10:11], v[0:7]"],
                                          [f"{DGEMM16} v[12:19], v[0:1], v[10:11], v[12:19]"], 19, DGEMM16, DGEMM16),
    "DGEMM 16x16x4 result overlapped as DGEMM SrcC": ([f"{DGEMM16} v[0:7], v[8:9], v[10:11], v[0:7]"],
                                                      [f"{DGEMM16} v[4:11], v[12:13], v[14:15], v[4:11]"], 17,
                                                      DGEMM16, DGEMM16),
    "DGEMM 4x4x4 on the same SrcC range": ([f"{DGEMM4} v[0:1], v[8:9], v[10:11], v[0:1]"],
                                           [f"{DGEMM4} v[0:1], v[12:13], v[14:15], v[0:1]"], 4, DGEMM4, DGEMM4),
    "DGEMM 16x16x4 result overwritten by VALU": ([f"{DGEMM16} v[0:7], v[8:9], v[10:11], v[0:7]"],
                                                 ["v_mov_b32 v3, 0"], 11, DGEMM16, "v_mov_b32"),
    "DGEMM before v_fma_f64": ([f"{DGEMM4} v[0:1], v[8:9], v[10:11], v[0:1]"],
                               ["v_fma_f64 v[20:21], v[22:23], v[24:25], v[26:27]"], 2, DGEMM4, "v_fma_f64"),
}


def _snippet(rule: str, waits: int) -> list[str]:
    producer, consumer, *_ = RULES[rule]
    return producer + nops(waits) + consumer + ["s_endpgm"]


@pytest.fixture(scope="module")
def code(tc):
    keys = [(r, w) for r, (_, _, need, *_) in RULES.items() for w in (need - 1, need)]
    return dict(zip(keys, assemble_many(tc.mc, [_snippet(r, w) for r, w in keys])))


def _state():
    st = new_state(lds_bytes=256)
    st.v[:256] = 0x3F803F80  # bf16 pairs of 1.0: finite MFMA inputs
    return st


@pytest.mark.parametrize("rule", list(RULES))
def test_one_wait_state_short_fails_naming_both(code, rule):
    _, _, need, producer, consumer = RULES[rule]
    with pytest.raises(EmuError) as e:
        run(code[rule, need - 1], _state())
    msg = str(e.value)
    pat = (rf"wait-state hazard \(.*\): {consumer}\S* at pc 0x[0-9a-f]+, \S+: {need - 1} wait states after "
           rf"{producer}\S* at pc 0x[0-9a-f]+, {need} required")
    assert re.search(pat, msg), msg
    run(code[rule, need - 1], _state(), strict=False)  # only strict mode checks


@pytest.mark.parametrize("rule", list(RULES))
def test_required_wait_states_pass(code, rule):
    run(code[rule, RULES[rule][2]], _state())


def test_accumulation_chain_needs_no_wait(tc):
    chain = assemble_many(tc.mc, [[f"{MFMA16} v[0:3], v[4:7], v[8:11], v[0:3]",
                                   f"{MFMA16} v[0:3], v[12:15], v[8:11], v[0:3]", "s_endpgm"]])[0]
    run(chain, _state())


def test_dot_accumulator_chain_needs_no_wait(tc):
    """The same dot op may take the previous one's result as its accumulator (SrcC) at once."""
    chain = assemble_many(tc.mc, [["v_dot2_i32_i16 v1, v2, v3, v4", "v_dot2_i32_i16 v1, v2, v3, v1", "s_endpgm"]])[0]
    run(chain, _state())


def test_full_dword_sdwa_result_needs_no_wait(tc):
    """Only a result placed in part of the register (dst_sel other than DWORD) is forwarded late."""
    code = assemble_many(tc.mc, [["v_mov_b32_sdwa v1, v0 dst_sel:DWORD dst_unused:UNUSED_PRESERVE src0_sel:WORD_1",
                                  "v_add_u32 v2, v1, v1", "s_endpgm"]])[0]
    run(code, _state())


def test_independent_instructions_count_as_wait_states(tc):
    """Seven VALU ops and an s_nop 0 between an MFMA and its reader are its 8 wait states."""
    lines = [f"{MFMA16} v[0:3], v[4:7], v[8:11], v[0:3]"] + [f"v_mov_b32 v{40 + i}, 0" for i in range(7)]
    short, enough = assemble_many(tc.mc, [lines + ["v_add_f32 v12, v0, v1", "s_endpgm"],
                                          lines + ["s_nop 0", "v_add_f32 v12, v0, v1", "s_endpgm"]])
    with pytest.raises(EmuError, match="7 wait states"):
        run(short, _state())
    run(enough, _state())


# ---------------------------------------------------------------- rules that need memory

def _mem_state(m, n=1024):
    st = _state()
    base = m.memory.alloc(n)
    st.s[20], st.s[21] = base & 0xFFFFFFFF, base >> 32
    st.s[8:12] = [base & 0xFFFFFFFF, base >> 32, n, 0x00027000]  # a raw buffer resource over it
    st.v[0] = np.arange(64) * 4  # per-lane byte offsets
    st.v[2], st.v[3] = st.s[20] + st.v[0], st.s[21]
    return st


MEM_RULES = {
    # VALU writes an SGPR that a VMEM instruction then reads (its saddr): 5
    "VALU SGPR write read by VMEM": (["v_readfirstlane_b32 s20, v40", "v_readfirstlane_b32 s21, v41"],
                                     ["global_load_dword v1, v0, s[20:21]"], 5),
    # a store of more than 8 bytes, then a VALU overwriting its data: 2
    "wide store data overwritten": (["global_store_dwordx4 v[2:3], v[4:7], off"], ["v_mov_b32 v5, 0"], 2),
    # SALU writes M0, then an LDS DMA: 1
    "SALU M0 write before LDS DMA": (["s_mov_b32 m0, 0"], ["buffer_load_dword v0, s[8:11], 0 offen lds"], 1),
}


@pytest.mark.parametrize("rule", list(MEM_RULES))
def test_memory_rules(tc, rule):
    from hkrt.emu.machine import Machine
    producer, consumer, need = MEM_RULES[rule]
    tail = ["s_waitcnt vmcnt(0)", "s_endpgm"]
    short, enough = assemble_many(tc.mc, [producer + nops(need - 1) + consumer + tail,
                                          producer + nops(need) + consumer + tail])
    m = Machine(1 << 20)
    st = _mem_state(m)
    st.v[40], st.v[41] = st.s[20], st.s[21]
    with pytest.raises(EmuError, match=rf"{need - 1} wait states after .*{need} required"):
        run(short, st, machine=m)
    run(enough, st, machine=m)


# ---------------------------------------------------------------- cross-wave LDS races

RACES = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ __launch_bounds__(128) void k(const float* in, float* out) {
  __shared__ float s[128];
  int t = threadIdx.x;
#if CASE == 0  /* both waves write the same dwords: ordered only with a barrier between */
  if (t < 64) s[t] = in[t];
#if FIXED
  __syncthreads();
#endif
  if (t >= 64) s[t - 64] = in[t];
  __syncthreads();
  out[t] = s[t % 64];
#else  /* a barrier the writes had not retired before: the wait must come first (all in asm, so the compiler
          adds no wait of its own; the launch gives 512 bytes of dynamic LDS) */
  float v = in[t], r;
  asm volatile("ds_write_b32 %0, %1" :: "v"((unsigned)(t * 4)), "v"(v) : "memory");
#if FIXED
  asm volatile("s_waitcnt lgkmcnt(0)" ::: "memory");
#endif
  asm volatile("s_barrier\n\tds_read_b32 %0, %1\n\ts_waitcnt lgkmcnt(0)"
               : "=v"(r) : "v"((unsigned)(((t + 64) % 128) * 4)) : "memory");
  out[t] = r;
#endif
}
"""


@pytest.mark.parametrize("case", [0, 1])
@pytest.mark.parametrize("fixed", [0, 1])
def test_lds_races(compile_hip, case, fixed):
    co = compile_hip(RACES, name=f"race{case}{fixed}", extra=[f"-DCASE={case}", f"-DFIXED={fixed}"])
    x = np.random.default_rng().standard_normal(128).astype(np.float32)
    expect = np.concatenate([x[64:], x[64:]]) if case == 0 else np.roll(x, -64)
    for strict in (False, True):
        dev = EmuMachine(strict=strict)
        din, dout = dev.put(x), dev.put(np.full(128, np.nan, np.float32))
        mod = dev.load(co)
        launch = lambda: dev.m.launch(mod, "k", (1, 1, 1), (128, 1, 1), 512 * case,  # noqa: E731
                                      np.array([din, dout], np.uint64).tobytes())
        if strict and not fixed:
            what = "writes" if case == 0 else "reads"
            with pytest.raises(HazardError, match=rf"LDS race: ds_\w+ at pc 0x[0-9a-f]+ \(wave \d\) {what} LDS byte "
                                                  rf"0x[0-9a-f]+, written by ds_write_b32 at pc 0x[0-9a-f]+ \(wave \d\)"):
                launch()
            continue
        launch()
        if fixed:
            np.testing.assert_array_equal(dev.get(dout, (128,), np.float32), expect)


# Write-after-read: wave 0 reads an element of wave 1, which then overwrites it; only a barrier between (after
# wave 0's read retired) orders the read first. All in asm over 512 bytes of dynamic LDS, so the compiler adds
# no wait of its own.
WAR_RACE = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ __launch_bounds__(128) void k(const float* in, float* out) {
  int t = threadIdx.x;
  float v = in[t], r = 0.f, r2;
  asm volatile("ds_write_b32 %0, %1\n\ts_waitcnt lgkmcnt(0)\n\ts_barrier" :: "v"((unsigned)(t * 4)), "v"(v) : "memory");
  if (t < 64)
    asm volatile("ds_read_b32 %0, %1\n\ts_waitcnt lgkmcnt(0)" : "=v"(r) : "v"((unsigned)((t + 64) * 4)) : "memory");
#if FIXED
  asm volatile("s_barrier" ::: "memory");
#endif
  if (t >= 64) asm volatile("ds_write_b32 %0, %1" :: "v"((unsigned)(t * 4)), "v"(-v) : "memory");
  asm volatile("s_waitcnt lgkmcnt(0)\n\ts_barrier\n\tds_read_b32 %0, %1\n\ts_waitcnt lgkmcnt(0)"
               : "=v"(r2) : "v"((unsigned)(t * 4)) : "memory");
  out[t] = t < 64 ? r : r2;
}
"""

# LDS atomics: a ds_add_u32 is a read and a write, so it races with another wave's plain write it is not ordered
# after (CASE 0); atomics of different waves need no order among themselves (CASE 1).
ATOMIC_RACE = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ __launch_bounds__(128) void k(const float* in, unsigned* out) {
  int t = threadIdx.x;
  unsigned r;
#if CASE == 0
  if (t == 0) asm volatile("ds_write_b32 %0, %1\n\ts_waitcnt lgkmcnt(0)" :: "v"(0u), "v"(5u) : "memory");
#if FIXED
  asm volatile("s_barrier" ::: "memory");
#endif
#endif
  asm volatile("ds_add_u32 %0, %1" :: "v"(0u), "v"(1u) : "memory");
  asm volatile("s_waitcnt lgkmcnt(0)\n\ts_barrier\n\tds_read_b32 %0, %1\n\ts_waitcnt lgkmcnt(0)"
               : "=v"(r) : "v"(0u) : "memory");
  out[t] = r;
}
"""


def _launch_lds(dev, co, inp, out):
    mod = dev.load(co)
    dev.m.launch(mod, "k", (1, 1, 1), (128, 1, 1), 512, np.array([inp, out], np.uint64).tobytes())


@pytest.mark.parametrize("fixed", [0, 1])
def test_lds_write_after_read_race(compile_hip, fixed):
    co = compile_hip(WAR_RACE, name=f"war{fixed}", extra=[f"-DFIXED={fixed}"])
    x = np.random.default_rng().standard_normal(128).astype(np.float32)
    for strict in (False, True):
        dev = EmuMachine(strict=strict)
        din, dout = dev.put(x), dev.put(np.full(128, np.nan, np.float32))
        if strict and not fixed:
            with pytest.raises(HazardError, match=r"LDS race: ds_write_b32 at pc 0x[0-9a-f]+ \(wave 1\) writes LDS byte "
                                                  r"0x1[0-9a-f]{2}, read by ds_read_b32 at pc 0x[0-9a-f]+ \(wave 0\) "
                                                  r"with no s_barrier after that read retired"):
                _launch_lds(dev, co, din, dout)
            continue
        _launch_lds(dev, co, din, dout)
        if fixed:
            np.testing.assert_array_equal(dev.get(dout, (128,), np.float32), np.concatenate([x[64:], -x[64:]]))


@pytest.mark.parametrize("case,fixed", [(0, 0), (0, 1), (1, 0)])
def test_lds_atomic_races(compile_hip, case, fixed):
    co = compile_hip(ATOMIC_RACE, name=f"atom{case}{fixed}", extra=[f"-DCASE={case}", f"-DFIXED={fixed}"])
    for strict in (False, True):
        dev = EmuMachine(strict=strict)
        din, dout = dev.put(np.zeros(128, np.float32)), dev.put(np.zeros(128, np.uint32))
        if strict and case == 0 and not fixed:
            with pytest.raises(HazardError, match=r"LDS race: ds_add_u32 at pc 0x[0-9a-f]+ \(wave 1\) atomically "
                                                  r"updates LDS byte 0x0, written by ds_write_b32 at pc 0x[0-9a-f]+ "
                                                  r"\(wave 0\)"):
                _launch_lds(dev, co, din, dout)
            continue
        _launch_lds(dev, co, din, dout)
        got = dev.get(dout, (128,), np.uint32)
        if case == 0 and fixed:
            np.testing.assert_array_equal(got, np.full(128, 5 + 128, np.uint32))  # every lane of both waves added 1
        elif case == 1:
            assert (got == got[0]).all(), got  # one final value, read after every add retired
