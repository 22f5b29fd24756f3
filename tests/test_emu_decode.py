"""The emulator's decoder against the toolchain: llvm-mc encodes, hkrt.emu.decode decodes, fields must agree.

(a) every mnemonic of isa.MNEMONICS, in every encoding form it has (e32/e64/SDWA, literal and inline constants,
    AGPR operands, buffer lds/offen/idxen, global saddr and negative offsets): mnemonic, size and operand fields
    are compared with what the assembly text says;
(b) every kernel we build decodes to the same instruction stream (address and mnemonic) as llvm-objdump;
(c) unknown encodings become "invalid" records, and executing one is an error that names the encoding;
(d) DPP forms (every DPP_CTRL kind, masks, bound_ctrl, neg/abs) decode as llvm-objdump reads them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emu_harness import EmuError, assemble_listing, assemble_many, new_state, run  # noqa: E402

from hkrt import codeobject  # noqa: E402
from hkrt.emu import decode, isa  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KERNEL_DIR = ROOT / "hkrt" / "_kernels" / "gfx950"
NONE = decode.NONE

# ------------------------------------------------------------------------------------------------ test lines


def _width(name: str) -> int:
    """Registers per lane that the data operand of a memory op spans (both of a cmpswap's operands)."""
    if "_tr_b" in name:
        return 3 if "b96" in name else 2
    if "_format_" in name:  # components, two to a register for d16
        n = len(name.rsplit("_", 1)[1])
        return 1 if "d16_hi" in name else (n + 1) // 2 if "d16" in name else n
    if "atomic_cmpswap" in name:
        return 4 if name.endswith("_x2") else 2
    if "atomic_" in name and name.endswith("_f64"):
        return 2
    if "2st64" in name or "read2" in name or "write2" in name:
        return 4 if name.endswith("b64") else 2  # read2 returns both elements; write2 data is per element
    for tag, n in (("x16", 16), ("x8", 8), ("x4", 4), ("x3", 3), ("x2", 2), ("b128", 4), ("b96", 3), ("b64", 2)):
        if name.endswith(tag) or f"{tag}_" in name:
            return n
    return 1


def _regs(kind: str, first: int, n: int) -> str:
    return f"{kind}{first}" if n == 1 else f"{kind}[{first}:{first + n - 1}]"


# scalar ops whose operands the name-based patterns below do not fit
_SCALAR_LINES = {
    "s_bfm_b64": ["s_bfm_b64 s[4:5], s7, s9", "s_bfm_b64 s[10:11], 0x12345678, 63"],
    "s_bfe_u64": ["s_bfe_u64 s[4:5], s[6:7], s9", "s_bfe_u64 s[10:11], exec, 0x12345678"],
    "s_bfe_i64": ["s_bfe_i64 s[4:5], s[6:7], s9", "s_bfe_i64 s[98:99], -1, 63"],
    "s_cbranch_g_fork": ["s_cbranch_g_fork s[4:5], s[6:7]"],
    "s_rfe_restore_b64": ["s_rfe_restore_b64 s[4:5], s9"],
    "s_getreg_b32": ["s_getreg_b32 s9, hwreg(HW_REG_MODE)", "s_getreg_b32 s100, hwreg(HW_REG_HW_ID, 3, 7)"],
    "s_setreg_b32": ["s_setreg_b32 hwreg(HW_REG_MODE, 4, 2), s9"],
    "s_setreg_imm32_b32": ["s_setreg_imm32_b32 hwreg(HW_REG_MODE, 0, 4), 0x12345678"],
    "s_setpc_b64": ["s_setpc_b64 s[4:5]"], "s_rfe_b64": ["s_rfe_b64 s[4:5]"], "s_cbranch_join": ["s_cbranch_join s5"],
    "s_set_gpr_idx_idx": ["s_set_gpr_idx_idx s5", "s_set_gpr_idx_idx 7"],
    "s_bcnt0_i32_b64": ["s_bcnt0_i32_b64 s5, s[6:7]"], "s_ff0_i32_b64": ["s_ff0_i32_b64 s5, s[6:7]"],
    "s_flbit_i32_b64": ["s_flbit_i32_b64 s5, s[6:7]"], "s_flbit_i32_i64": ["s_flbit_i32_i64 s5, s[6:7]"],
    "s_bitset0_b64": ["s_bitset0_b64 s[4:5], s7"], "s_bitset1_b64": ["s_bitset1_b64 s[4:5], 63"],
    "s_bitreplicate_b64_b32": ["s_bitreplicate_b64_b32 s[4:5], s7", "s_bitreplicate_b64_b32 s[4:5], 0x1234567"],
    "s_bitcmp0_b64": ["s_bitcmp0_b64 s[4:5], s7"], "s_bitcmp1_b64": ["s_bitcmp1_b64 s[4:5], 63"],
    "s_set_gpr_idx_on": ["s_set_gpr_idx_on s5, gpr_idx(SRC0,DST)"],
    "s_cbranch_i_fork": ["s_cbranch_i_fork s[4:5], 0x7fff"], "s_call_b64": ["s_call_b64 s[4:5], 0x8001"],
    "s_movrels_b32": ["s_movrels_b32 s5, s7"], "s_movrels_b64": ["s_movrels_b64 s[4:5], s[6:7]"],
    "s_movreld_b32": ["s_movreld_b32 s5, s7", "s_movreld_b32 s0, -7"],
    "s_movreld_b64": ["s_movreld_b64 s[4:5], s[6:7]", "s_movreld_b64 s[98:99], 0xfffff"],
}
# operand text the generic reading in expected_fields does not parse: (register operands as fields)
# (field, operand index; split() also cuts at the commas inside hwreg(...))
_OPAQUE = {"s_getreg_b32": (("dst", 0),), "s_setreg_b32": (("src0", -1),), "s_setreg_imm32_b32": (("literal", -1),),
           "s_sendmsg": (), "s_sendmsghalt": (), "s_set_gpr_idx_on": (("src0", 0),), "s_set_gpr_idx_mode": ()}
_SOURCE_ONLY = {"s_setpc_b64", "s_rfe_b64", "s_cbranch_join", "s_set_gpr_idx_idx", "s_cbranch_g_fork",
                "s_rfe_restore_b64"}


def scalar_lines() -> list[str]:
    out = []
    for m in [*isa.SOP2.values(), *isa.SOPK.values(), *isa.SOP1.values(), *isa.SOPC.values()]:
        out += _SCALAR_LINES.get(m, [])
    for m in isa.SOP2.values():
        if m in _SCALAR_LINES:
            continue
        if m in ("s_lshl_b64", "s_lshr_b64", "s_ashr_i64"):
            out += [f"{m} s[4:5], s[6:7], s9", f"{m} s[98:99], -1, 63"]
        elif m.endswith(("_b64", "_i64")):
            out += [f"{m} s[4:5], s[6:7], s[8:9]", f"{m} s[10:11], exec, 0x12345678"]
        else:
            out += [f"{m} s5, s7, s9", f"{m} s101, 0x89abcdef, -16"]
    out += ["s_or_b64 exec, exec, vcc", "s_add_u32 m0, 64, vcc_hi", "s_and_b32 vcc_lo, 0.5, -4.0"]
    for m in isa.SOPK.values():
        if m not in _SCALAR_LINES:
            out += [f"{m} s9, 0x7fff", f"{m} s100, 0x8001"]
    for m in isa.SOP1.values():
        if m in _SCALAR_LINES:
            continue
        if m == "s_getpc_b64":
            out.append(f"{m} s[20:21]")
        elif m in ("s_bcnt1_i32_b64", "s_ff1_i32_b64"):
            out.append(f"{m} s5, s[6:7]")
        elif m.endswith("_b64"):
            out += [f"{m} s[4:5], s[6:7]", f"{m} s[100:101], 0xfffff"]
        else:
            out += [f"{m} s5, s7", f"{m} s0, -7"]
    out += ["s_mov_b64 s[4:5], src_shared_base", "s_mov_b32 s2, src_shared_base", "s_mov_b32 m0, 0x1000"]
    for m in isa.SOPC.values():
        if m in _SCALAR_LINES:
            continue
        if m.endswith("_u64"):
            out.append(f"{m} s[4:5], s[6:7]")
        else:
            out += [f"{m} s5, s7", f"{m} 0xabcd1234, s101"]
    out += ["s_nop 0", "s_nop 15", "s_endpgm", "s_barrier", "s_sleep 3", "s_setprio 2", "s_branch 5",
            "s_branch -1", "s_cbranch_scc0 -32768", "s_cbranch_scc1 32767", "s_cbranch_vccz 7", "s_cbranch_vccnz -9",
            "s_cbranch_execz 0", "s_cbranch_execnz 12",
            "s_waitcnt vmcnt(0)", "s_waitcnt lgkmcnt(0)", "s_waitcnt vmcnt(17) lgkmcnt(3)", "s_waitcnt vmcnt(63)",
            "s_waitcnt expcnt(2)", "s_waitcnt 0", "s_wakeup", "s_setkill 1", "s_sethalt 3",
            "s_sendmsg sendmsg(MSG_INTERRUPT)", "s_sendmsghalt sendmsg(MSG_INTERRUPT)", "s_trap 2", "s_icache_inv",
            "s_incperflevel 5", "s_decperflevel 5", "s_ttracedata", "s_cbranch_cdbgsys 3", "s_cbranch_cdbguser -3",
            "s_cbranch_cdbgsys_or_user 0", "s_cbranch_cdbgsys_and_user 9", "s_endpgm_saved", "s_set_gpr_idx_off",
            "s_set_gpr_idx_mode gpr_idx(SRC1)"]
    for i, m in enumerate(isa.SMEM.values()):
        if m in ("s_memtime", "s_memrealtime"):
            out += [f"{m} s[16:17]", f"{m} s[100:101]"]
            continue
        if m.startswith(("s_dcache_inv", "s_dcache_wb")):
            out.append(m)
            continue
        n = _smem_dwords(m)
        base = "s[8:11]" if "buffer" in m else "s[2:3]"
        data = _regs("s", 16, n) if "probe" not in m else "7"
        if m.startswith("s_dcache_discard"):
            out += [f"{m} s[2:3], 0x{4 * i + 4:x}", f"{m} s[98:99], s7"]
            continue
        out += [f"{m} {data}, {base}, 0x{4 * i + 4:x}", f"{m} {_regs('s', 32, n) if 'probe' not in m else '3'}, "
                f"{base}, s7", f"{m} {_regs('s', 48, n) if 'probe' not in m else '0'}, {base}, 0xffffc"]
    return out


def _smem_dwords(m: str) -> int:
    """SDATA registers of an SMEM op: the dword count (cmpswap: data and compare value)."""
    n = 2 if m.endswith("_x2") else 1
    for tag, k in (("x16", 16), ("x8", 8), ("x4", 4), ("x2", 2)):
        if m.endswith(tag):
            n = k
    return 2 * n if "cmpswap" in m else n


# VOP1/VOP2/VOPC ops that have no _e64 form in llvm-mc, or whose e32 form needs special operands.
_NO_E64 = {"v_nop", "v_readfirstlane_b32", "v_accvgpr_mov_b32"}
_CARRY_OUT = {"v_add_co_u32", "v_sub_co_u32", "v_subrev_co_u32", "v_addc_co_u32", "v_subb_co_u32", "v_subbrev_co_u32"}
_CARRY_IN = {"v_addc_co_u32", "v_subb_co_u32", "v_subbrev_co_u32", "v_cndmask_b32"}


def _r(m: str, i: int, n: int) -> str:
    """Register operand i of m (3: the destination) as v<n>, or the pair v[n:n+1] when isa.OPS says it is wide."""
    wide = isa.OPS[m].wide >> i & 1
    return f"v[{n}:{n + 1}]" if wide else f"v{n}"


# the low-precision conversions and MFMAs (docs/facts.md §1.15): multi-register operands, op_sel byte/word selects
_LOWP_LINES = {
    "v_cvt_f32_fp8": ["v_cvt_f32_fp8 v5, v7", "v_cvt_f32_fp8 v255, s101", "v_cvt_f32_fp8_e64 v5, v7",
                      "v_cvt_f32_fp8_sdwa v5, v7 src0_sel:BYTE_3"],
    "v_cvt_f32_bf8": ["v_cvt_f32_bf8 v5, 0x12", "v_cvt_f32_bf8_sdwa v5, s7 src0_sel:BYTE_1"],
    "v_cvt_pk_f32_fp8": ["v_cvt_pk_f32_fp8 v[4:5], v7", "v_cvt_pk_f32_fp8_e64 v[254:255], s7",
                         "v_cvt_pk_f32_fp8_sdwa v[4:5], v7 src0_sel:WORD_1"],
    "v_cvt_pk_f32_bf8": ["v_cvt_pk_f32_bf8 v[4:5], 64", "v_cvt_pk_f32_bf8_sdwa v[8:9], v7 src0_sel:WORD_0"],
    "v_cvt_scalef32_sr_pk_fp4_f32": ["v_cvt_scalef32_sr_pk_fp4_f32 v5, v[6:7], v9, v11 op_sel:[0,0,1,1]"],
    "v_cvt_scalef32_2xpk16_fp6_f32": ["v_cvt_scalef32_2xpk16_fp6_f32 v[0:5], v[6:21], v[22:37], v38"],
    "v_cvt_scalef32_2xpk16_bf6_f32": ["v_cvt_scalef32_2xpk16_bf6_f32 v[10:15], v[16:31], v[32:47], 1.0"],
    **{f"v_cvt_scalef32_sr_pk32_{t}_f32": [f"v_cvt_scalef32_sr_pk32_{t}_f32 v[0:5], v[6:37], v38, s39"]
       for t in ("fp6", "bf6")},
    **{f"v_cvt_scalef32_pk32_f32_{t}": [f"v_cvt_scalef32_pk32_f32_{t} v[0:31], v[32:37], v38"] for t in ("fp6", "bf6")},
    **{f"v_cvt_scalef32_pk32_{t}_{h}": [f"v_cvt_scalef32_pk32_{t}_{h} v[0:5], v[6:21], s22"]
       for t in ("fp6", "bf6") for h in ("f16", "bf16")},
    **{f"v_cvt_scalef32_sr_pk32_{t}_{h}": [f"v_cvt_scalef32_sr_pk32_{t}_{h} v[0:5], v[6:21], v22, v23"]
       for t in ("fp6", "bf6") for h in ("f16", "bf16")},
    **{f"v_cvt_scalef32_pk32_{h}_{t}": [f"v_cvt_scalef32_pk32_{h}_{t} v[0:15], v[16:21], v22"]
       for t in ("fp6", "bf6") for h in ("f16", "bf16")},
    **{f"v_cvt_scalef32_pk_f32_{t}": [f"v_cvt_scalef32_pk_f32_{t} v[4:5], v7, v9 op_sel:[1,0,0]",
                                      f"v_cvt_scalef32_pk_f32_{t} v[4:5], s7, 1.0"] for t in ("fp8", "bf8", "fp4")},
    "v_mfma_ld_scale_b32": ["v_mfma_ld_scale_b32 v1, v2", "v_mfma_ld_scale_b32 s0, 64 op_sel:[1,1] op_sel_hi:[0,0]"],
    **{name: [f"{name} v[0:{ncd - 1}], v[4:11], v[12:19], v[0:{ncd - 1}]",
              f"{name} a[0:{ncd - 1}], v[4:9], a[12:15], 0 cbsz:2 blgp:4",
              f"{name} v[32:{31 + ncd}], a[4:7], v[12:17], 1.0 cbsz:4 blgp:3"]
       for name, m, n, k, nab, ncd in isa.MAI_F8F6F4.values()},
    **{name: [f"{name} v[0:{ncd - 1}], v[4:11], v[12:19], v[0:{ncd - 1}], v20, v21",
              f"{name} a[0:{ncd - 1}], v[4:7], v[12:15], 0, s20, 1.0 op_sel:[1,0,0] op_sel_hi:[0,1,0] cbsz:4 blgp:4"]
       for name, m, n, k, nab, ncd in isa.VOP3PX2.values()},
}


def vector_alu_lines() -> list[str]:
    out = []
    for m in isa.VOP1.values():
        if m in _LOWP_LINES:
            out += _LOWP_LINES[m]
        elif isa.OPS[m].wide:
            out += [f"{m} {_r(m, 3, 4)}, {_r(m, 0, 6)}", f"{m}_e64 {_r(m, 3, 8)}, {_r(m, 0, 2)}",
                    f"{m} {_r(m, 3, 4)}, 1.0", f"{m} {_r(m, 3, 4)}, -4"]
        elif m == "v_nop":
            out += ["v_nop", "v_nop_e64"]
        elif m == "v_readfirstlane_b32":
            out += ["v_readfirstlane_b32 s5, v7", "v_readfirstlane_b32 vcc_lo, v255"]
        elif m == "v_accvgpr_mov_b32":
            out += ["v_accvgpr_mov_b32 a5, a7", "v_accvgpr_mov_b32 a255, a0"]
        elif m.startswith("v_permlane"):   # VGPRs only, both written
            out += [f"{m} v5, v7", f"{m} v255, v0", f"{m}_e64 v200, v17"]
        elif m == "v_swap_b32":  # VGPRs only, both written, no _e64 form
            out += [f"{m} v5, v7", f"{m} v255, v0"]
        elif m == "v_mov_b64":
            out += ["v_mov_b64 v[4:5], v[6:7]", "v_mov_b64 v[254:255], s[100:101]", "v_mov_b64 v[4:5], 1.0",
                    "v_mov_b64 v[4:5], -4", "v_mov_b64 v[4:5], 0x12345678", "v_mov_b64_e64 v[8:9], v[2:3]"]
        else:
            lit = "0x1234" if "16" in m else "0x3fc00000"  # 16-bit sources take 16-bit literals
            out += [f"{m} v5, v7", f"{m} v255, s101", f"{m} v6, {lit}", f"{m} v8, -16",
                    f"{m}_e64 v5, s7", f"{m}_e64 v200, v17"]
    out += ["v_fract_f32_e64 v5, -|v7| clamp div:2", "v_rcp_f32_e64 v5, |s7| mul:4", "v_sqrt_f32_e64 v5, -v7 mul:2"]
    for m in isa.VOP2.values():
        if isa.OPS[m].wide:
            out += [f"{m} {_r(m, 3, 4)}, {_r(m, 0, 6)}, {_r(m, 1, 8)}", f"{m}_e64 {_r(m, 3, 4)}, {_r(m, 0, 6)}, 2.0"]
        elif m in isa.VOP2_LITERAL_K:
            k_first = isa.VOP2_LITERAL_K[m] == 1  # madmk/fmamk: K is the middle operand
            out += [f"{m} v5, v7, {'0x4200, v9' if k_first else 'v9, 0x4200'}",
                    f"{m} v5, 1.0, {'0x1234, v9' if k_first else 'v9, 0x1234'}"]
        elif m in _CARRY_OUT:
            cin = ", vcc" if m in _CARRY_IN else ""
            cin64 = ", s[12:13]" if m in _CARRY_IN else ""
            # one constant-bus read per instruction: a literal or SGPR source only without a carry-in SGPR
            out += [f"{m} v5, vcc, v7, v9{cin}", f"{m} v5, vcc, {'5' if cin else '0x1234'}, v9{cin}",
                    f"{m}_e64 v5, s[10:11], {'v7' if cin else 's7'}, v9{cin64}", f"{m}_e64 v6, vcc, v7, 1{cin64}"]
        elif m == "v_cndmask_b32":
            out += ["v_cndmask_b32 v5, v7, v9, vcc", "v_cndmask_b32 v5, -7, v9, vcc",
                    "v_cndmask_b32_e64 v5, v7, v9, s[10:11]", "v_cndmask_b32_e64 v5, -v7, |v9|, vcc"]
        else:
            lit = "0x1234" if "16" in m else "0x12345678"  # 16-bit sources take 16-bit literals
            out += [f"{m} v5, v7, v9", f"{m} v250, s7, v255", f"{m} v6, {lit}, v9", f"{m} v6, 64, v9",
                    f"{m} v6, -4.0, v9", f"{m}_e64 v5, v7, s9", f"{m}_e64 v5, 2.0, v9"]
    out += ["v_add_f32_e64 v5, -|v7|, s9 clamp mul:2", "v_mul_f32_e64 v5, v7, -v9 div:2",
            "v_max_f32_e64 v5, |v7|, |v9| clamp"]
    for m in isa.VOPC.values():
        if m.endswith(("_i64", "_u64", "_f64")) and "class" not in m:
            out += [f"{m} vcc, v[6:7], v[8:9]", f"{m} vcc, s[6:7], v[8:9]", f"{m}_e64 s[10:11], v[6:7], s[8:9]"]
        elif m.endswith("class_f64"):
            out += [f"{m} vcc, v[6:7], v9", f"{m} vcc, s[6:7], v9", f"{m}_e64 s[10:11], -v[6:7], s9"]
        elif m.endswith("16"):  # 16-bit operands: 16-bit literals
            out += [f"{m} vcc, v7, v9", f"{m} vcc, 0x3001, v9", f"{m} vcc, s101, v9",
                    f"{m}_e64 s[10:11], v7, s9", f"{m}_e64 vcc, -1, v9"]
        else:
            out += [f"{m} vcc, v7, v9", f"{m} vcc, 0x3f000001, v9", f"{m} vcc, s101, v9",
                    f"{m}_e64 s[10:11], v7, s9", f"{m}_e64 vcc, -1, v9"]
    out += ["v_cmp_lt_f32_e64 s[4:5], -|v7|, |v9|"]
    # SDWA forms (VOP1/VOP2/VOPC): operand selects and destination selects
    out += [
        "v_mov_b32_sdwa v5, v7 dst_sel:WORD_1 dst_unused:UNUSED_PRESERVE src0_sel:BYTE_2",
        "v_add_u32_sdwa v5, v7, v9 dst_sel:BYTE_0 dst_unused:UNUSED_SEXT src0_sel:WORD_1 src1_sel:BYTE_3",
        "v_add_f32_sdwa v5, -v7, |v9| dst_sel:DWORD dst_unused:UNUSED_PAD src0_sel:WORD_0 src1_sel:DWORD",
        "v_and_b32_sdwa v5, sext(v7), v9 dst_sel:WORD_0 dst_unused:UNUSED_PAD src0_sel:BYTE_1 src1_sel:WORD_1",
        "v_cvt_f32_u32_sdwa v5, v7 dst_sel:DWORD dst_unused:UNUSED_PAD src0_sel:BYTE_0",
        "v_cmp_eq_u32_sdwa vcc, v7, v9 src0_sel:WORD_0 src1_sel:DWORD",
        "v_cmp_gt_i32_sdwa s[10:11], sext(v7), v9 src0_sel:BYTE_1 src1_sel:WORD_1",
    ]
    out += dpp_lines()
    for m in isa.VOP3.values():
        if m in _LOWP_LINES:
            out += _LOWP_LINES[m]
        elif m in ("v_div_scale_f32", "v_div_scale_f64"):
            out += [f"{m} {_r(m, 3, 4)}, vcc, {_r(m, 0, 6)}, {_r(m, 1, 8)}, {_r(m, 2, 6)}",
                    f"{m} {_r(m, 3, 4)}, s[10:11], {_r(m, 0, 6)}, {_r(m, 1, 8)}, {_r(m, 2, 8)}"]
        elif isa.OPS[m].wide:
            srcs = [_r(m, i, 6 + 2 * i) for i in range(2 if m in isa.VOP3_TWO_SOURCES else 3)]
            mods = [f"-|{srcs[0]}|", *srcs[1:]]
            out += [f"{m} {_r(m, 3, 4)}, {', '.join(srcs)}", f"{m} {_r(m, 3, 4)}, {', '.join(mods)}"]
        elif m == "v_div_fmas_f32":  # VCC is a third constant-bus read: no SGPR operand
            out += [f"{m} v5, v7, v9, v11", f"{m} v5, -v7, 0.5, |v11|"]
        elif m in isa.VOP3B:  # v_mad_u64_u32 / v_mad_i64_i32
            out += [f"{m} v[4:5], s[10:11], v7, v9, v[12:13]", f"{m} v[200:201], vcc, v7, 5, s[12:13]"]
        elif m == "v_readlane_b32":
            out += ["v_readlane_b32 s5, v7, s9", "v_readlane_b32 s101, v255, 63"]
        elif m in ("v_qsad_pk_u16_u8", "v_mqsad_pk_u16_u8"):  # 64-bit S0, S2 and D
            out += [f"{m} v[4:5], v[6:7], v9, v[10:11]", f"{m} v[200:201], s[6:7], 5, v[10:11]"]
        elif m == "v_mqsad_u32_u8":  # 64-bit S0, 128-bit S2 and D
            out += [f"{m} v[0:3], v[4:5], v9, v[12:15]", f"{m} v[200:203], s[6:7], 7, v[12:15]"]
        elif m == "v_writelane_b32":
            out += ["v_writelane_b32 v5, s7, 9", "v_writelane_b32 v255, 17, s9", "v_writelane_b32 v4, s7, m0"]
        elif m in ("v_lshlrev_b64", "v_lshrrev_b64", "v_ashrrev_i64"):
            out += [f"{m} v[4:5], v7, v[8:9]", f"{m} v[4:5], 33, s[8:9]"]
        elif m == "v_lshl_add_u64":
            out += [f"{m} v[4:5], v[6:7], 2, v[8:9]", f"{m} v[4:5], s[6:7], v9, 0"]
        elif m == "v_bitop3_b32":
            out += [f"{m} v5, v7, v9, v11 bitop3:0x6c", f"{m} v5, s7, v9, 3 bitop3:0xff", f"{m} v5, v7, v9, v11"]
        elif m in isa.VOP3_TWO_SOURCES:
            out += [f"{m} v5, v7, v9", f"{m} v255, s7, -5"]
        else:
            out += [f"{m} v5, v7, v9, v11", f"{m} v250, s7, 64, v11", f"{m} v5, v7, 0.5, s101"]
    out += ["v_fma_f32 v5, -|v7|, v9, |v11| clamp mul:4", "v_med3_f32 v5, v7, -v9, -|s11| div:2",
            "v_pack_b32_f16 v5, v7, v9 op_sel:[1,0,0]", "v_cvt_pk_bf16_f32 v5, -v7, |v9|"]
    return out


def vop3p_lines() -> list[str]:
    out = []
    for m in isa.VOP3P.values():
        if m in _LOWP_LINES:
            out += _LOWP_LINES[m]
        elif m == "v_pk_fma_f32":
            out += [f"{m} v[4:5], v[6:7], v[8:9], v[10:11]", f"{m} v[4:5], s[6:7], v[8:9], v[10:11] op_sel:[1,0,0]"]
        elif m == "v_pk_mov_b32":
            out += [f"{m} v[4:5], v[6:7], v[8:9] op_sel:[1,0]", f"{m} v[4:5], s[6:7], v[8:9] op_sel:[0,1]"]
        elif m == "v_accvgpr_read_b32":
            out += [f"{m} v5, a7", f"{m} v255, a255"]
        elif m == "v_accvgpr_write_b32":
            out += [f"{m} a5, v7", f"{m} a255, -16", f"{m} a0, 64"]
        elif m.startswith("v_dot"):
            out += [f"{m} v5, v7, v9, v11", f"{m} v250, s7, v9, v11 clamp"]
        elif m.startswith("v_fma_mix"):
            out += [f"{m} v5, v7, v9, v11", f"{m} v250, s7, -v9, v11 op_sel:[1,0,0] op_sel_hi:[1,1,0] clamp"]
        elif m.startswith("v_pk_") and m.endswith(("16", "_b16")):   # packed 16-bit: one register per operand
            neg = " neg_lo:[1,0] neg_hi:[0,1]" if m.endswith("f16") else ""
            if m in isa.VOP3P_THREE_SOURCES:
                out += [f"{m} v5, v7, v9, v11", f"{m} v250, s7, v9, v11 op_sel:[1,0,1] op_sel_hi:[0,1,0]"]
            else:
                out += [f"{m} v5, v7, v9", f"{m} v255, s7, v9 op_sel:[1,0] op_sel_hi:[0,1]{neg}"]
        else:
            out += [f"{m} v[4:5], v[6:7], v[8:9]", f"{m} v[4:5], v[6:7], v[8:9] op_sel_hi:[0,1] neg_lo:[1,0]"]
    for mn, m, n, k, nab, ncd in isa.MAI.values():
        ab = _regs("v", 0, nab), _regs("v", 4, nab)
        out += [f"{mn} {_regs('a', 0, ncd)}, {ab[0]}, {ab[1]}, {_regs('a', 0, ncd)}",
                f"{mn} {_regs('v', 16, ncd)}, {_regs('a', 8, nab)}, {_regs('v', 6, nab)}, 0",
                f"{mn} {_regs('v', 32, ncd)}, {_regs('v', 10, nab)}, {_regs('a', 12, nab)}, {_regs('v', 32, ncd)}",
                f"{mn} {_regs('a', 64, ncd)}, {_regs('a', 2, nab)}, {_regs('a', 6, nab)}, {_regs('a', 80, ncd)} "
                f"cbsz:1 abid:1 blgp:3",
                f"{mn} {_regs('a', 64, ncd)}, {ab[0]}, {ab[1]}, 1.0 blgp:7",
                f"{mn} {_regs('v', 64, ncd)}, {ab[0]}, {ab[1]}, {_regs('v', 64, ncd)} cbsz:4 abid:15 blgp:5"]
    for mn, m, n, k, nb, nab, ncd in isa.MAI_BLOCKS.values():
        ab = _regs("v", 0, nab), _regs("v", 4, nab)
        mods = " neg:[1,0,1]" if "f64" in mn else " cbsz:1 abid:1 blgp:6"
        out += [f"{mn} {_regs('a', 0, ncd)}, {ab[0]}, {ab[1]}, {_regs('a', 0, ncd)}{mods}",
                f"{mn} {_regs('v', 32, ncd)}, {_regs('a', 8, nab)}, {_regs('v', 6, nab)}, 1.0"]
    for mn, m, n, k, nb, ncd in isa.SMFMAC.values():
        a, b = _regs("v", 0, nb // 2), _regs("a", 8, nb)
        out += [f"{mn} {_regs('a', 0, ncd)}, {a}, {b}, v20 cbsz:1 abid:2",
                f"{mn} {_regs('v', 32, ncd)}, {_regs('a', 4, nb // 2)}, {_regs('v', 8, nb)}, v21 abid:1"]
    for mn, *_ in (*isa.MAI_F8F6F4.values(), *isa.VOP3PX2.values()):
        out += _LOWP_LINES[mn]
    return out


def _ds_operands(m: str) -> int:
    """How many data operands an LDS atomic takes (cmpst and mskor: two)."""
    return 2 if m.startswith(("ds_cmpst", "ds_mskor")) else 1


def memory_lines() -> list[str]:
    out = []
    for m in isa.DS.values():
        n = _width(m)
        wide = 2 if m.endswith("64") else 1
        if m == "ds_nop":
            out += ["ds_nop"]
        elif m in ("ds_append", "ds_consume", "ds_read_addtid_b32"):  # no address: M0 and the offset
            out += [f"{m} v4 offset:65532", f"{m} v200", f"{m} a8 offset:16"]
        elif m == "ds_write_addtid_b32":
            out += [f"{m} v4 offset:65532", f"{m} a200"]
        elif m == "ds_wrap_rtn_b32":
            out += [f"{m} v4, v9, v10, v12 offset:65528", f"{m} v4, v255, v10, v12"]
        elif m == "ds_swizzle_b32":
            out += ["ds_swizzle_b32 v4, v9 offset:swizzle(QUAD_PERM,1,2,3,0)", "ds_swizzle_b32 v200, v255"]
        elif m in ("ds_permute_b32", "ds_bpermute_b32"):
            out += [f"{m} v4, v9, v5 offset:65532", f"{m} v200, v255, v3"]
        elif m.startswith("ds_wrxchg2"):
            out += [f"{m} {_regs('v', 4, 2 * wide)}, v9, {_regs('v', 10, wide)}, {_regs('v', 12, wide)} "
                    "offset0:1 offset1:200"]
        elif not m.startswith(("ds_read", "ds_write")):  # the atomics
            data = ", ".join(_regs("v", 10 + 2 * k, wide) for k in range(_ds_operands(m)))
            dst = f"{_regs('v', 4, wide)}, " if "_rtn_" in m else ""
            out += [f"{m} {dst}v9, {data} offset:65528", f"{m} {dst}v255, {data}"]
        elif m.startswith("ds_read2"):
            out += [f"{m} {_regs('v', 4, n)}, v9 offset0:3 offset1:255", f"{m} {_regs('a', 4, n)}, v255"]
        elif m.startswith("ds_write2"):
            out += [f"{m} v9, {_regs('v', 4, n // 2 if 'b64' not in m else 2)}, "
                    f"{_regs('v', 10, n // 2 if 'b64' not in m else 2)} offset0:1 offset1:200"]
        elif m.startswith("ds_read"):
            out += [f"{m} {_regs('v', 4, n)}, v9 offset:65528", f"{m} {_regs('v', 200, n)}, v255",
                    f"{m} {_regs('a', 8, n)}, v3 offset:16"]
        else:
            out += [f"{m} v9, {_regs('v', 4, n)} offset:65528", f"{m} v255, {_regs('a', 200, n)}"]
    for m in isa.MTBUF.values():
        n = _width(m)
        out += [f"{m} {_regs('v', 4, n)}, v9, s[8:11], s13 format:[BUF_DATA_FORMAT_32,BUF_NUM_FORMAT_FLOAT] offen "
                "offset:4095", f"{m} {_regs('v', 4, n)}, v9, s[96:99], 0 format:[BUF_DATA_FORMAT_8_8_8_8] idxen sc0 nt",
                f"{m} {_regs('a', 4, n)}, v[8:9], s[8:11], -1 format:[BUF_DATA_FORMAT_2_10_10_10,"
                "BUF_NUM_FORMAT_SSCALED] idxen offen sc1"]
    out += ["buffer_wbl2", "buffer_wbl2 sc0 sc1", "buffer_inv", "buffer_inv sc1"]
    for m in isa.MUBUF.values():
        if m in ("buffer_wbl2", "buffer_inv"):
            continue
        n = _width(m)
        out += [f"{m} {_regs('v', 4, n)}, v9, s[8:11], s13 offen offset:4095",
                f"{m} {_regs('v', 4, n)}, v9, s[96:99], 0 idxen offset:12",
                f"{m} {_regs('v', 4, n)}, off, s[8:11], s101",
                f"{m} {_regs('a', 4, n)}, v[8:9], s[8:11], -1 idxen offen"]
        if "_atomic_" in m:
            out += [f"{m} {_regs('v', 4, n)}, v9, s[8:11], s13 offen offset:4095 sc0"]
        if m.startswith("buffer_load") and "d16" not in m and "x2" not in m and ("format" not in m or m.endswith("_x")):
            out += [f"{m} v9, s[8:11], 0 offen lds", f"{m} off, s[8:11], s13 offset:64 lds"]
    for m in isa.FLAT.values():
        n = _width(m)
        g = f"global_{m}"
        if isa.segment_has(isa.SEG_SCRATCH, m):
            sc = f"scratch_{m}"
            if "lds" in m:
                out += [f"{sc} v9, off", f"{sc} off, s10 offset:8", f"{sc} v9, s10 offset:-16"]
            elif m.startswith("load"):
                out += [f"{sc} {_regs('v', 4, n)}, v9, off offset:-64", f"{sc} {_regs('v', 4, n)}, off, s10 offset:4095",
                        f"{sc} {_regs('a', 4, n)}, v9, s10", f"{sc} {_regs('v', 4, n)}, off, off offset:16"]
            else:
                out += [f"{sc} v9, {_regs('v', 4, n)}, off offset:-1", f"{sc} off, {_regs('v', 4, n)}, s10 offset:2048",
                        f"{sc} v9, {_regs('a', 4, n)}, s10", f"{sc} off, {_regs('v', 4, n)}, off"]
        if m.startswith("atomic_"):
            r = _regs("v", 2, 2 if m.endswith(("_x2", "_f64")) else 1)
            out += [f"{g} v[6:7], {_regs('v', 4, n)}, off offset:-64", f"{g} v9, {_regs('v', 4, n)}, s[10:11] offset:4095",
                    f"{g} {r}, v[6:7], {_regs('v', 4, n)}, off offset:-16 sc0",
                    f"{g} {r.replace('v', 'a')}, v9, {_regs('a', 4, n)}, s[10:11] sc0",
                    f"flat_{m} v[6:7], {_regs('v', 4, n)} offset:4095", f"flat_{m} {r}, v[6:7], {_regs('v', 4, n)} sc0"]
            continue
        if "lds" in m:
            out += [f"{g} v[6:7], off offset:-16", f"{g} v6, s[10:11] offset:4095", f"{g} v6, s[10:11]"]
            continue
        if m.startswith("load"):
            out += [f"{g} {_regs('v', 4, n)}, v[6:7], off offset:-64",
                    f"{g} {_regs('v', 4, n)}, v9, s[10:11] offset:-4096",
                    f"{g} {_regs('a', 4, n)}, v[6:7], off offset:4095",
                    f"flat_{m} {_regs('v', 4, n)}, v[6:7] offset:16", f"flat_{m} {_regs('a', 4, n)}, v[254:255]"]
        else:
            out += [f"{g} v[6:7], {_regs('v', 4, n)}, off offset:-1",
                    f"{g} v9, {_regs('v', 4, n)}, s[10:11] offset:2048",
                    f"{g} v[6:7], {_regs('a', 4, n)}, off",
                    f"flat_{m} v[6:7], {_regs('v', 4, n)} offset:4095", f"flat_{m} v[6:7], {_regs('a', 4, n)}"]
    return out


# DPP controls by syntax (docs/facts.md §6.4; values from LLVM's DppCtrl enumeration)
DPP_CONTROLS = ["quad_perm:[1,0,3,2]", "quad_perm:[3,3,0,2]", "row_shl:1", "row_shl:15", "row_shr:4", "row_ror:9",
                "wave_shl:1", "wave_rol:1", "wave_shr:1", "wave_ror:1", "row_mirror", "row_half_mirror",
                "row_bcast:15", "row_bcast:31", "row_newbcast:0", "row_newbcast:11"]


def dpp_control(text: str) -> int:
    """DPP_CTRL of the control a line's text names."""
    m = re.search(r"quad_perm:\[(\d)[,;](\d)[,;](\d)[,;](\d)\]", text)
    if m:
        return sum(int(x) << 2 * i for i, x in enumerate(m.groups()))
    for name, base in (("row_shl", 0x100), ("row_shr", 0x110), ("row_ror", 0x120), ("row_newbcast", 0x150)):
        m = re.search(rf"\b{name}:(\d+)", text)
        if m:
            return base + int(m.group(1))
    fixed = {"wave_shl:1": 0x130, "wave_rol:1": 0x134, "wave_shr:1": 0x138, "wave_ror:1": 0x13C,
             "row_half_mirror": 0x141, "row_mirror": 0x140, "row_bcast:15": 0x142, "row_bcast:31": 0x143}
    return next(v for k, v in fixed.items() if re.search(rf"\b{k}\b", text))


def dpp_lines() -> list[str]:
    """Every VOP1/VOP2 mnemonic in DPP form, and every DPP control with masks, bound_ctrl and modifiers."""
    out = []
    for i, m in enumerate(m for m in list(isa.VOP1.values()) + list(isa.VOP2.values()) if m not in isa.NO_DPP_FORM):
        ctrl = DPP_CONTROLS[i % len(DPP_CONTROLS)]
        masks = f"row_mask:{(i * 7) % 15 + 1:#x} bank_mask:{(i * 5) % 15 + 1:#x}" + (" bound_ctrl:0" if i % 2 else "")
        if m == "v_mov_b64":
            out.append(f"v_mov_b64_dpp v[4:5], v[6:7] row_newbcast:{i % 16} {masks}")
        elif isa.OPS[m].wide:
            srcs = ", ".join(_r(m, k, 6 + 2 * k) for k in range(2 if m in isa.VOP2.values() else 1))
            out.append(f"{m}_dpp {_r(m, 3, 4)}, {srcs} row_newbcast:{i % 16} {masks}")
        elif m in isa.VOP1.values():
            pk = m in isa.DPP_ROW_NEWBCAST_ONLY  # v_cvt_pk_f32_fp8/bf8: a 64-bit result
            out.append(f"{m}_dpp {'v[4:5]' if pk else 'v5'}, v7 {f'row_newbcast:{i % 16}' if pk else ctrl} {masks}")
        elif m in _CARRY_OUT:
            cin = ", vcc" if m in ("v_addc_co_u32", "v_subb_co_u32", "v_subbrev_co_u32") else ""
            out.append(f"{m}_dpp v5, vcc, v7, v9{cin} {ctrl} {masks}")
        elif m == "v_cndmask_b32":
            out.append(f"{m}_dpp v5, -v7, |v9|, vcc {ctrl} {masks}")
        else:
            out.append(f"{m}_dpp v5, v7, v9 {ctrl} {masks}")
    for i, ctrl in enumerate(DPP_CONTROLS):
        out.append(f"v_add_f32_dpp v5, {['v7', '-v7', '|v7|', '-|v7|'][i % 4]}, {['-|v9|', 'v9', '-v9', '|v9|'][i % 4]}"
                   f" {ctrl} row_mask:{i % 15 + 1:#x} bank_mask:{15 - i % 15:#x}" + (" bound_ctrl:1" if i % 3 else ""))
        out.append(f"v_mov_b32_dpp v250, v255 {ctrl}")
    return out


def all_lines() -> list[str]:
    return scalar_lines() + vector_alu_lines() + vop3p_lines() + memory_lines()


# ------------------------------------------------------------------------------------------------ text -> fields

_SPECIAL = {"vcc": 106, "vcc_lo": 106, "vcc_hi": 107, "m0": 124, "exec": 126, "exec_lo": 126, "exec_hi": 127,
            "src_shared_base": 235, "src_shared_limit": 236, "src_private_base": 237, "src_private_limit": 238,
            "scc": 253, "off": NONE}
_FLOATS = {0.5: 240, -0.5: 241, 1.0: 242, -1.0: 243, 2.0: 244, -2.0: 245, 4.0: 246, -4.0: 247}
_REG = re.compile(r"^([vsa])(?:\[(\d+):\d+\]|(\d+))$")


def operand(tok: str) -> tuple[int, int | None, int, int]:
    """(operand code, literal value or None, abs, neg) of one assembly operand."""
    ab = neg = 0
    tok = tok.strip()
    if tok.startswith("sext(") and tok.endswith(")"):
        tok = tok[5:-1]
    if tok.startswith("-") and not re.match(r"^-[\d.]", tok):
        neg, tok = 1, tok[1:]
    if tok.startswith("|") and tok.endswith("|"):
        ab, tok = 1, tok[1:-1]
    m = _REG.match(tok)
    if m:
        n = int(m.group(2) or m.group(3))
        return {"v": decode.VGPR, "a": decode.AGPR, "s": 0}[m.group(1)] + n, None, ab, neg
    if tok in _SPECIAL:
        return _SPECIAL[tok], None, ab, neg
    if re.match(r"^-?\d+\.\d+$", tok):
        return _FLOATS[float(tok)], None, ab, neg
    v = int(tok, 0)
    if -16 <= v <= 64:
        return (128 + v if v >= 0 else 192 - v), None, ab, neg
    return decode.LITERAL, v & 0xFFFFFFFF, ab, neg


def split(text: str) -> tuple[str, list[str], dict[str, str], set[str]]:
    """Mnemonic, operands, key:value modifiers and bare flag words of one llvm-mc output line."""
    parts = text.split(None, 1)
    mn, rest = parts[0], parts[1] if len(parts) > 1 else ""
    rest = re.sub(r"\[([^\]]*)\]", lambda m: "[" + m.group(1).replace(",", ";") + "]", rest)  # protect lists
    fields = [f.strip() for f in rest.split(",") if f.strip()]
    ops, mods, words = [], {}, set()
    for i, f in enumerate(fields):
        toks = f.split()
        if i < len(fields) - 1 or not toks:
            ops.append(f)
            continue
        # the last field carries the trailing modifiers: "v9 offen offset:12 lds"
        first_mod = next((j for j, t in enumerate(toks) if ":" in t and not t.startswith(("s[", "v[", "a["))
                          or t in ("offen", "idxen", "lds", "clamp", "glc", "sc0", "sc1", "nt", "row_mirror",
                                   "row_half_mirror")), len(toks))
        if first_mod > 0:
            ops.append(" ".join(toks[:first_mod]))
        for t in toks[first_mod:]:
            if ":" in t:
                k, v = t.split(":", 1)
                mods[k] = v.replace(";", ",")
            else:
                words.add(t)
    return mn, ops, mods, words


def base_mnemonic(mn: str) -> str:
    return re.sub(r"_(e32|e64|sdwa|dpp)$", "", mn)


def _waitcnt_imm(text: str) -> int:
    """SIMM16 of an s_waitcnt from its counters (docs/facts.md §4): unspecified counters are 'no wait'."""
    vm, exp, lgkm = 63, 7, 15
    raw = re.match(r"^s_waitcnt\s+(\d+)$", text)
    if raw:
        return int(raw.group(1))
    for name, val in re.findall(r"(vmcnt|expcnt|lgkmcnt)\((\d+)\)", text):
        vm, exp, lgkm = (int(val), exp, lgkm) if name == "vmcnt" else (vm, int(val), lgkm) if name == "expcnt" \
            else (vm, exp, int(val))
    return (vm & 15) | (exp << 4) | (lgkm << 8) | ((vm >> 4) << 14)


def expected_fields(text: str) -> dict:
    """What the decoded record must hold, derived from the assembly text alone."""
    quad = re.search(r" offset:swizzle\(QUAD_PERM,(\d),(\d),(\d),(\d)\)", text)  # ds_swizzle_b32's offset
    if quad:
        text = text.replace(quad.group(0), f" offset:{0x8000 | sum(int(x) << 2 * i for i, x in enumerate(quad.groups()))}")
    mn, ops, mods, words = split(text)
    name = base_mnemonic(mn)
    exp: dict = {}
    if name in _OPAQUE:  # hwreg(), sendmsg(), gpr_idx(): only the register or literal operands are checked
        for key, i in _OPAQUE[name]:
            exp[key] = int(ops[i], 0) & 0xFFFFFFFF if key == "literal" else operand(ops[i])[0]
        return exp
    codes = [operand(o) for o in ops] if not name.startswith(("s_waitcnt",)) else []
    lits = [lit for _, lit, _, _ in codes if lit is not None]
    if lits:
        exp["literal"] = lits[0]
    c = [x[0] for x in codes]

    def put(*keys):
        for k, v in zip(keys, c):
            if k:
                exp[k] = v

    if name in _SOURCE_ONLY:
        put("src0", "src1")
    elif name in isa.SOP2.values():
        put("dst", "src0", "src1")
    elif name in isa.SOPK.values():
        exp["dst"] = exp["src0"] = c[0]
        exp["imm"] = int(ops[1], 0) & 0xFFFF
        exp.pop("literal", None)
    elif name in isa.SOP1.values():
        put("dst", "src0")
    elif name in isa.SOPC.values():
        put("src0", "src1")
    elif name in isa.SOPP.values():
        exp.pop("literal", None)
        imm = _waitcnt_imm(text) if name == "s_waitcnt" else int(ops[0], 0) if ops else 0
        exp["imm"] = imm - 0x10000 if imm >= 0x8000 else imm  # SIMM16 is kept sign-extended
    elif name in isa.SMEM.values():
        if name.startswith("s_dcache_discard"):  # no SDATA: SBASE and the offset
            exp["src0"] = c[0]
            if ops[1].startswith("s"):
                exp["src1"] = c[1]
            else:
                exp["imm"] = int(ops[1], 0)
            exp.pop("literal", None)
            return exp
        if len(ops) < 3:  # s_memtime, cache maintenance: at most a destination
            if ops:
                exp["dst"] = c[0]
            exp.pop("literal", None)
            return exp
        if "probe" in name:
            exp["dst"], exp["src0"] = int(ops[0], 0), c[1]
        else:
            exp["dst"], exp["src0"] = c[0], c[1]
        if ops[2].startswith("s"):
            exp["src1"] = c[2]
        else:
            exp["imm"] = int(ops[2], 0)
            exp.pop("literal", None)
    elif name in isa.VOP1.values():
        if name != "v_nop":
            put("dst", "src0")
    elif name in isa.VOP2.values():
        if name in _CARRY_OUT:
            put("dst", "sdst", "src0", "src1", "src2")
        else:
            put("dst", "src0", "src1", "src2")
        if name in isa.VOP2_ACCUMULATE:
            exp["src2"] = exp["dst"]
    elif name in isa.VOPC.values():
        put("dst", "src0", "src1")
    elif name in isa.VOP3.values():
        if name in isa.VOP3B:
            put("dst", "sdst", "src0", "src1", "src2")
        else:
            put("dst", "src0", "src1", "src2")
            exp.setdefault("src2", NONE)
        if name == "v_bitop3_b32":
            exp["bitop3"] = int(mods.get("bitop3", "0"), 0)
    elif name == "v_mfma_ld_scale_b32":  # two sources, no destination
        put("src0", "src1")
        exp["dst"] = exp["src2"] = NONE
    elif name in isa.VOP3P.values():
        put("dst", "src0", "src1", "src2")
        if name.startswith("v_pk_") and name not in isa.VOP3P_THREE_SOURCES and name != "v_pk_mov_b32":
            exp["src2"] = NONE
    elif name in [m[0] for m in (*isa.MATRIX_OPS.values(), *isa.VOP3PX2.values())]:
        put("dst", "src0", "src1", "src2")
        blgp = int(mods.get("blgp", 0))
        if "neg" in mods:  # an f64 MFMA's neg:[a,b,c] is written into the BLGP field, A in its low bit
            blgp = sum(int(x) << i for i, x in enumerate(mods["neg"].strip("[]").split(",")))
        # a scaled form sets ABID bit 0 (docs/facts.md §1.15) and holds its scale operands' codes in imm2
        scaled = name in [m[0] for m in isa.VOP3PX2.values()]
        exp["imm"] = int(mods.get("cbsz", 0)) | (int(mods.get("abid", 0)) | scaled) << 4 | blgp << 8
        if scaled:
            exp["imm2"] = c[4] | c[5] << 16
    elif name in ("ds_append", "ds_consume", "ds_read_addtid_b32"):
        put("dst")
        exp["imm"] = int(mods.get("offset", 0))
    elif name == "ds_write_addtid_b32":
        exp["src1"] = c[0]
        exp["imm"] = int(mods.get("offset", 0))
    elif name.startswith("ds_"):
        if name.startswith(("ds_read", "ds_swizzle")):
            put("dst", "src0")
        elif "_rtn_" in name or "permute" in name:
            put("dst", "src0", "src1", "src2")
        else:
            put("src0", "src1", "src2")
        if name.startswith(("ds_read2", "ds_write2", "ds_wrxchg2")):
            exp["imm"], exp["imm2"] = int(mods.get("offset0", 0)), int(mods.get("offset1", 0))
        else:
            exp["imm"] = int(mods.get("offset", 0))
    elif name in ("buffer_wbl2", "buffer_inv"):
        pass
    elif name.startswith(("buffer_", "tbuffer_")):
        if name.startswith("tbuffer_"):  # DFMT | NFMT << 4 in imm2 (docs/facts.md §3.6)
            fm = re.search(r"format:\[([^\]]*)\]", text)
            names = fm.group(1).split(",") if fm else []
            dfmt = {"INVALID": 0, "8": 1, "16": 2, "8_8": 3, "32": 4, "16_16": 5, "10_11_11": 6, "11_11_10": 7,
                    "10_10_10_2": 8, "2_10_10_10": 9, "8_8_8_8": 10, "32_32": 11, "16_16_16_16": 12, "32_32_32": 13,
                    "32_32_32_32": 14}
            nfmt = {"UNORM": 0, "SNORM": 1, "USCALED": 2, "SSCALED": 3, "UINT": 4, "SINT": 5, "FLOAT": 7}
            d = next((dfmt[x.strip()[len("BUF_DATA_FORMAT_"):]] for x in names if "DATA_FORMAT" in x), 1)
            n = next((nfmt[x.strip()[len("BUF_NUM_FORMAT_"):]] for x in names if "NUM_FORMAT" in x), 0)
            exp["imm2"] = d | n << 4
        if "lds" in words:
            put("src0", "src1", "src2")
        else:
            put("dst", "src0", "src1", "src2")
        if exp.get("src0") == NONE:
            del exp["src0"]  # "off": no address VGPR, the field is don't-care
        exp["imm"] = int(mods.get("offset", 0))
        exp["flags"] = {f: int(f.lower() in words) for f in ("OFFEN", "IDXEN", "LDS")}
    elif name.startswith(("global_", "flat_", "scratch_")):
        if "_atomic_" in name:
            put(*(("dst",) if "sc0" in words else ()), "src0", "src1", "src2")
        elif "_lds_" in name:
            put("src0", "src2")
        elif "_load_" in name:
            put("dst", "src0", "src2")
        else:
            put("src0", "src1", "src2")
        if name.startswith("flat_"):
            exp["src2"] = NONE
        exp.setdefault("src2", NONE)
        exp["imm"] = int(mods.get("offset", 0))
        exp["imm2"] = {"global": isa.SEG_GLOBAL, "flat": isa.SEG_FLAT, "scratch": isa.SEG_SCRATCH}[name.split("_")[0]]
    else:
        raise AssertionError(f"no field rules for {name}")

    # VOP3 source modifiers and output modifiers (the VOP3B form has an SGPR destination in the abs bits)
    vop3 = mn.endswith("_e64") or name in isa.VOP3.values()
    if vop3 and name not in isa.VOP3B and name not in _CARRY_OUT and name != "v_bitop3_b32":
        srcs = codes[1:]
        exp["abs"] = sum(ab << i for i, (_, _, ab, _) in enumerate(srcs))
        exp["neg"] = sum(ng << i for i, (_, _, _, ng) in enumerate(srcs))
        omod = [f"{k}:{v}" for k, v in mods.items() if k in ("mul", "div")]
        exp["omod"] = {"mul:2": 1, "mul:4": 2, "div:2": 3}[omod[0]] if omod else 0
        exp["clamp"] = int("clamp" in words)
    if mn.endswith("_dpp"):
        srcs = [x for x in codes[1:] if x[0] != 106]  # the source operands (not vcc)
        exp["abs"] = sum(ab << i for i, (_, _, ab, _) in enumerate(srcs))
        exp["neg"] = sum(ng << i for i, (_, _, _, ng) in enumerate(srcs))
        exp["dpp"] = {"dpp_ctrl": dpp_control(text), "row_mask": int(mods.get("row_mask", "0xf"), 0),
                      "bank_mask": int(mods.get("bank_mask", "0xf"), 0), "bound_ctrl": int("bound_ctrl" in mods)}
    if mn.endswith("_sdwa"):
        sel = {"BYTE_0": 0, "BYTE_1": 1, "BYTE_2": 2, "BYTE_3": 3, "WORD_0": 4, "WORD_1": 5, "DWORD": 6}
        exp["sdwa"] = {"SRC0_SEL": sel[mods.get("src0_sel", "DWORD")],
                       "SRC0_SEXT": int(ops[1].startswith("sext("))}
        if "src1_sel" in mods:
            exp["sdwa"]["SRC1_SEL"] = sel[mods["src1_sel"]]
        if name not in isa.VOPC.values():
            exp["sdwa"]["DST_SEL"] = sel[mods.get("dst_sel", "DWORD")]
            exp["sdwa"]["DST_UNUSED"] = {"UNUSED_PAD": 0, "UNUSED_SEXT": 1, "UNUSED_PRESERVE": 2}[
                mods.get("dst_unused", "UNUSED_PAD")]
    return exp


def record_fields(rec) -> dict:
    f = int(rec["flags"])
    out = {k: int(rec[k]) for k in ("dst", "sdst", "literal", "imm", "imm2")}
    for i in range(3):
        out[f"src{i}"] = int(rec["src"][i])
    out["abs"] = (f >> decode.FLAGS["ABS"]) & 7
    out["neg"] = (f >> decode.FLAGS["NEG"]) & 7
    out["omod"] = (f >> decode.FLAGS["OMOD"]) & 3
    out["clamp"] = (f >> decode.FLAGS["CLAMP"]) & 1
    out["flags"] = {k: (f >> decode.FLAGS[k]) & 1 for k in ("OFFEN", "IDXEN", "LDS")}
    out["bitop3"] = out["neg"] | out["abs"] << 3 | out["omod"] << 6  # bitop3 reuses the modifier bits
    out["dpp"] = decode.dpp_fields(out["imm"])
    f2 = int(rec["flags2"])
    widths = {"DST_SEL": 3, "DST_UNUSED": 2, "SRC0_SEL": 3, "SRC0_SEXT": 1, "SRC1_SEL": 3}
    out["sdwa"] = {k: (f2 >> decode.SDWA_FIELDS[k]) & ((1 << w) - 1) for k, w in widths.items()}
    return out


# the record's src[] array is exposed as src0..src3 columns in INSN_DTYPE
def _rec_view(prog, i):
    r = prog.insns[i]
    return {"dst": r["dst"], "sdst": r["sdst"], "literal": r["literal"], "imm": r["imm"], "imm2": r["imm2"],
            "flags": r["flags"], "flags2": r["flags2"], "src": [r["src0"], r["src1"], r["src2"], r["src3"]]}


# ------------------------------------------------------------------------------------------------ tests (a)

@pytest.fixture(scope="module")
def listing(tc):
    lines = all_lines()
    return list(zip(lines, assemble_listing(tc.mc, lines)))


def test_every_line_decodes_to_its_text(listing):
    problems = []
    for src, (text, enc) in listing:
        prog = decode.decode(enc, 0, "t")
        if len(prog.insns) != 1:
            problems.append(f"{text}: decoded into {len(prog.insns)} records ({prog.text})")
            continue
        mn = split(text)[0]
        name = isa.MNEMONICS[int(prog.insns[0]["op"])]
        if name != base_mnemonic(mn):
            problems.append(f"{text}: decoded as {name}")
            continue
        if int(prog.insns[0]["size"]) != len(enc):
            problems.append(f"{text}: size {int(prog.insns[0]['size'])}, encoding has {len(enc)} bytes")
        got = record_fields(_rec_view(prog, 0))
        for key, want in expected_fields(text).items():
            have = got[key]
            if isinstance(want, dict):
                have = {k: have[k] for k in want}
            if have != want:
                problems.append(f"{text}: {key} = {have}, expected {want}   [{enc.hex()}]")
    assert not problems, f"{len(problems)} decode mismatches:\n" + "\n".join(problems[:60])


def test_every_mnemonic_is_covered(listing):
    covered = {base_mnemonic(split(text)[0]) for _, (text, _) in listing}
    assert covered == set(isa.MNEMONICS) - {"invalid"}, (
        f"missing: {sorted(set(isa.MNEMONICS) - covered - {'invalid'})}, extra: {sorted(covered - set(isa.MNEMONICS))}")


def test_forms_are_exercised(listing):
    """The line set really contains the encoding variants the brief lists (guards against a thinned table)."""
    texts = [text for _, (text, _) in listing]
    sizes = {len(enc) for _, (_, enc) in listing}
    assert sizes == {4, 8, 16}
    for needle in ("_e64", "_sdwa", "_dpp", "bound_ctrl", "row_newbcast", "_e32", " lds", " offen", " idxen", "offset:-", "cbsz:1", "blgp:7", ", a[",
                   "s[10:11] offset", "0x12345678", "src_shared_base"):
        assert any(needle in t for t in texts), needle


def test_program_index_and_text():
    """decode() keeps a byte-offset index, one text line per record, and a literal extends the instruction."""
    code = bytes.fromhex("ff060202" "0000c03f" "000081bf")  # v_add_f32 v1, 0x3fc00000, v3 ; s_endpgm
    prog = decode.decode(code, 0x100, "k")
    assert [isa.MNEMONICS[o] for o in prog.insns["op"]] == ["v_add_f32", "s_endpgm"]
    assert list(prog.insns["pc"]) == [0x100, 0x108] and list(prog.index) == [0, -1, 1]
    assert prog.insns[0]["literal"] == 0x3FC00000 and prog.insns[0]["size"] == 8
    assert prog.at(0x108).startswith("s_endpgm") and "0x3fc00000" in prog.text[0]


# ------------------------------------------------------------------------------------------------ tests (b)

def _code_objects() -> list[Path]:
    objs = sorted(KERNEL_DIR.glob("*.co"))
    if not objs:
        subprocess.run([sys.executable, str(ROOT / "build.py")], cwd=ROOT, check=True)
        objs = sorted(KERNEL_DIR.glob("*.co"))
    return objs


_OBJDUMP_LINE = re.compile(r"^\s+([a-z_0-9]+)\b.*//\s*([0-9A-Fa-f]+):")


def test_kernels_decode_like_objdump(tc):
    objs = _code_objects()
    assert objs, "no code objects built"
    for path in objs:
        res = subprocess.run([tc.objdump, "-d", "--mcpu=gfx950", str(path)], capture_output=True, text=True,
                             env=dict(os.environ, HKRT_MOUNT=str(path.parent)))
        assert res.returncode == 0, res.stderr
        oracle = {}
        for line in res.stdout.splitlines():
            m = _OBJDUMP_LINE.match(line)
            if m:
                oracle[int(m.group(2), 16)] = base_mnemonic(m.group(1))
        co = codeobject.parse(path)
        assert co.kernels
        for k in co.kernels.values():
            prog = decode.decode(co.read(k.entry, k.code_size), k.entry, k.name)
            ours = [(int(r["pc"]), isa.MNEMONICS[int(r["op"])]) for r in prog.insns]
            theirs = sorted((a, m) for a, m in oracle.items() if k.entry <= a < k.entry + k.code_size)
            assert len(ours) > 10
            by_pc = dict(theirs)
            bad = [(hex(a), m, by_pc.get(a)) for a, m in ours if by_pc.get(a) != m]
            assert not bad, f"{path.name}:{k.name}: first mismatches (pc, ours, objdump): {bad[:10]}"
            assert ours == theirs, f"{path.name}:{k.name}: instruction boundaries differ"


# ------------------------------------------------------------------------------------------------ tests (c)

UNKNOWN = ["v_screen_partition_4se_b32 v1, v2", "ds_gws_init v2 gds"]


def test_unknown_encodings_decode_as_invalid(tc):
    for text, enc in assemble_listing(tc.mc, UNKNOWN):
        prog = decode.decode(enc, 0, "t")
        assert isa.MNEMONICS[int(prog.insns[0]["op"])] == "invalid", text
        assert prog.text[0].startswith("<unknown encoding"), prog.text[0]
        assert f"{int.from_bytes(enc[:4], 'little'):#010x}" in prog.text[0]
    # a record never runs past the end of the code: a truncated 64-bit instruction is invalid too
    prog = decode.decode(bytes.fromhex("0000b5d3"), 0, "t")
    assert len(prog.insns) == 1 and prog.insns[0]["op"] == 0


def test_executing_an_unknown_encoding_raises(tc):
    code, = assemble_many(tc.mc, [["v_mov_b32 v1, v2", "v_screen_partition_4se_b32 v1, v2", "s_endpgm"]])
    with pytest.raises(EmuError, match=r"unknown or unimplemented instruction encoding.*<unknown encoding 0x7e026f02"):
        run(code, new_state())


# ------------------------------------------------------------------------------------------------ tests (d)

def test_dpp_decodes_like_objdump(tc, tmp_path):
    """The DPP lines assembled into an object: llvm-objdump's reading of each (mnemonic, size, DPP_CTRL, masks,
    bound_ctrl, neg/abs, as its text shows them) is the emulator decoder's."""
    from emu_harness import assemble_with_labels
    lines = dpp_lines()
    text = assemble_with_labels(tc.mc, lines, tmp_path)
    obj = tmp_path / "snippet.o"
    res = subprocess.run([tc.objdump, "-d", "--mcpu=gfx950", str(obj)], capture_output=True, text=True,
                         env=dict(os.environ, HKRT_MOUNT=str(tmp_path)))
    assert res.returncode == 0, res.stderr
    theirs = [m.group(1).strip() for m in (re.match(r"^\s+(v_\S+_dpp\s.*?)\s*//", ln) for ln in res.stdout.splitlines())
              if m]
    assert len(theirs) == len(lines), (len(theirs), len(lines))
    prog = decode.decode(text, 0, "dpp")
    assert len(prog.insns) == len(lines) and all(int(r["size"]) == 8 for r in prog.insns)
    problems = []
    for i, objdump_text in enumerate(theirs):
        if isa.MNEMONICS[int(prog.insns[i]["op"])] != base_mnemonic(split(objdump_text)[0]):
            problems.append(f"{objdump_text}: decoded as {prog.text[i]}")
            continue
        got = record_fields(_rec_view(prog, i))
        for key, want in expected_fields(objdump_text).items():
            if key in ("dpp", "abs", "neg", "src0", "src1", "dst") and got[key] != want:
                problems.append(f"{objdump_text}: {key} = {got[key]}, objdump says {want}")
    assert not problems, "\n".join(problems[:40])
    # the gfx9 quirk (docs/facts.md §6.4): bound_ctrl:0 and bound_ctrl:1 set the same bit, objdump prints :1
    assert "bound_ctrl:0" not in res.stdout and "bound_ctrl:1" in res.stdout


def test_smem_sgpr_offset_with_soe_comes_from_soffset(tc):
    """IMM = 0 with SOE = 1: the offset SGPR is the SOFFSET field (bits 63:57), not the OFFSET field; llvm-mc
    -disassemble reads these words as `s_load_dword s1, s[2:3], s7` although OFFSET holds 5."""
    words = bytes([0x41, 0x40, 0x00, 0xC0, 0x05, 0x00, 0x00, 0x0E])
    res = subprocess.run([tc.mc, "-arch=amdgcn", "-mcpu=gfx950", "-disassemble"],
                         input=",".join(f"{b:#04x}" for b in words) + "\n", capture_output=True, text=True)
    assert "s_load_dword s1, s[2:3], s7" in res.stdout, res.stdout + res.stderr
    rec = decode.decode(words, 0, "t").insns[0]
    assert (isa.MNEMONICS[int(rec["op"])], int(rec["dst"]), int(rec["src0"]), int(rec["src1"])) == \
        ("s_load_dword", 1, 2, 7)
