"""gfx950 opcode tables: (encoding format, opcode number) -> mnemonic.

Opcode numbers follow the CDNA3/CDNA4 ISA encodings and were checked against the
toolchain's assembler (tests/test_emu_decode.py re-checks every one with llvm-mc).
Only instructions the execution core implements are listed, and those it refuses by
name with a reason (REFUSED, PARTIAL); anything else decodes as unknown and raises
UnimplementedInstruction if executed. An instruction goes in its
encoding's table and in OPS, which names the core.c function that runs it and its
parameters (optable.py generates the core's dispatch table from OPS; the opcode ids
are the order of MNEMONICS, which decides nothing else).
"""
import re
from dataclasses import dataclass, replace

SOP2 = {
    0: "s_add_u32", 1: "s_sub_u32", 2: "s_add_i32", 3: "s_sub_i32", 4: "s_addc_u32", 5: "s_subb_u32",
    6: "s_min_i32", 7: "s_min_u32", 8: "s_max_i32", 9: "s_max_u32", 10: "s_cselect_b32", 11: "s_cselect_b64",
    12: "s_and_b32", 13: "s_and_b64", 14: "s_or_b32", 15: "s_or_b64", 16: "s_xor_b32", 17: "s_xor_b64",
    18: "s_andn2_b32", 19: "s_andn2_b64", 20: "s_orn2_b32", 21: "s_orn2_b64", 22: "s_nand_b32",
    24: "s_nor_b32", 26: "s_xnor_b32", 28: "s_lshl_b32", 29: "s_lshl_b64", 30: "s_lshr_b32",
    31: "s_lshr_b64", 32: "s_ashr_i32", 33: "s_ashr_i64", 34: "s_bfm_b32", 36: "s_mul_i32",
    37: "s_bfe_u32", 38: "s_bfe_i32", 42: "s_absdiff_i32", 44: "s_mul_hi_u32", 45: "s_mul_hi_i32",
    46: "s_lshl1_add_u32", 47: "s_lshl2_add_u32", 48: "s_lshl3_add_u32", 49: "s_lshl4_add_u32",
    50: "s_pack_ll_b32_b16", 51: "s_pack_lh_b32_b16", 52: "s_pack_hh_b32_b16",
    23: "s_nand_b64", 25: "s_nor_b64", 27: "s_xnor_b64", 35: "s_bfm_b64", 39: "s_bfe_u64", 40: "s_bfe_i64",
    41: "s_cbranch_g_fork", 43: "s_rfe_restore_b64",
}

SOPK = {
    0: "s_movk_i32", 1: "s_cmovk_i32", 2: "s_cmpk_eq_i32", 3: "s_cmpk_lg_i32", 4: "s_cmpk_gt_i32",
    5: "s_cmpk_ge_i32", 6: "s_cmpk_lt_i32", 7: "s_cmpk_le_i32", 8: "s_cmpk_eq_u32", 9: "s_cmpk_lg_u32",
    10: "s_cmpk_gt_u32", 11: "s_cmpk_ge_u32", 12: "s_cmpk_lt_u32", 13: "s_cmpk_le_u32", 14: "s_addk_i32",
    15: "s_mulk_i32", 16: "s_cbranch_i_fork", 17: "s_getreg_b32", 18: "s_setreg_b32", 20: "s_setreg_imm32_b32",
    21: "s_call_b64",
}

SOP1 = {
    0: "s_mov_b32", 1: "s_mov_b64", 2: "s_cmov_b32", 3: "s_cmov_b64", 4: "s_not_b32", 5: "s_not_b64",
    8: "s_brev_b32", 12: "s_bcnt1_i32_b32", 13: "s_bcnt1_i32_b64", 16: "s_ff1_i32_b32", 17: "s_ff1_i32_b64",
    18: "s_flbit_i32_b32", 22: "s_sext_i32_i8", 23: "s_sext_i32_i16", 28: "s_getpc_b64",
    32: "s_and_saveexec_b64", 33: "s_or_saveexec_b64", 34: "s_xor_saveexec_b64", 35: "s_andn2_saveexec_b64",
    36: "s_orn2_saveexec_b64", 37: "s_nand_saveexec_b64", 38: "s_nor_saveexec_b64", 39: "s_xnor_saveexec_b64",
    48: "s_abs_i32", 51: "s_andn1_saveexec_b64", 52: "s_orn1_saveexec_b64",
    6: "s_wqm_b32", 7: "s_wqm_b64", 9: "s_brev_b64", 10: "s_bcnt0_i32_b32", 11: "s_bcnt0_i32_b64",
    14: "s_ff0_i32_b32", 15: "s_ff0_i32_b64", 19: "s_flbit_i32_b64", 20: "s_flbit_i32", 21: "s_flbit_i32_i64",
    24: "s_bitset0_b32", 25: "s_bitset0_b64", 26: "s_bitset1_b32", 27: "s_bitset1_b64", 29: "s_setpc_b64",
    30: "s_swappc_b64", 31: "s_rfe_b64", 40: "s_quadmask_b32", 41: "s_quadmask_b64", 42: "s_movrels_b32",
    43: "s_movrels_b64", 44: "s_movreld_b32", 45: "s_movreld_b64", 46: "s_cbranch_join", 50: "s_set_gpr_idx_idx",
    53: "s_andn1_wrexec_b64", 54: "s_andn2_wrexec_b64", 55: "s_bitreplicate_b64_b32",
}

SOPC = {
    0: "s_cmp_eq_i32", 1: "s_cmp_lg_i32", 2: "s_cmp_gt_i32", 3: "s_cmp_ge_i32", 4: "s_cmp_lt_i32",
    5: "s_cmp_le_i32", 6: "s_cmp_eq_u32", 7: "s_cmp_lg_u32", 8: "s_cmp_gt_u32", 9: "s_cmp_ge_u32",
    10: "s_cmp_lt_u32", 11: "s_cmp_le_u32", 12: "s_bitcmp0_b32", 13: "s_bitcmp1_b32", 18: "s_cmp_eq_u64",
    19: "s_cmp_lg_u64", 14: "s_bitcmp0_b64", 15: "s_bitcmp1_b64", 16: "s_setvskip", 17: "s_set_gpr_idx_on",
}

SOPP = {
    0: "s_nop", 1: "s_endpgm", 2: "s_branch", 4: "s_cbranch_scc0", 5: "s_cbranch_scc1", 6: "s_cbranch_vccz",
    7: "s_cbranch_vccnz", 8: "s_cbranch_execz", 9: "s_cbranch_execnz", 10: "s_barrier", 12: "s_waitcnt",
    14: "s_sleep", 15: "s_setprio", 3: "s_wakeup", 11: "s_setkill", 13: "s_sethalt", 16: "s_sendmsg",
    17: "s_sendmsghalt", 18: "s_trap", 19: "s_icache_inv", 20: "s_incperflevel", 21: "s_decperflevel",
    22: "s_ttracedata", 23: "s_cbranch_cdbgsys", 24: "s_cbranch_cdbguser", 25: "s_cbranch_cdbgsys_or_user",
    26: "s_cbranch_cdbgsys_and_user", 27: "s_endpgm_saved", 28: "s_set_gpr_idx_off", 29: "s_set_gpr_idx_mode",
}

_SMEM_ATOMICS = ["swap", "cmpswap", "add", "sub", "smin", "umin", "smax", "umax", "and", "or", "xor", "inc", "dec"]
SMEM = {
    0: "s_load_dword", 1: "s_load_dwordx2", 2: "s_load_dwordx4", 3: "s_load_dwordx8", 4: "s_load_dwordx16",
    5: "s_scratch_load_dword", 6: "s_scratch_load_dwordx2", 7: "s_scratch_load_dwordx4",
    8: "s_buffer_load_dword", 9: "s_buffer_load_dwordx2", 10: "s_buffer_load_dwordx4", 11: "s_buffer_load_dwordx8",
    12: "s_buffer_load_dwordx16", 16: "s_store_dword", 17: "s_store_dwordx2", 18: "s_store_dwordx4",
    21: "s_scratch_store_dword", 22: "s_scratch_store_dwordx2", 23: "s_scratch_store_dwordx4",
    24: "s_buffer_store_dword", 25: "s_buffer_store_dwordx2", 26: "s_buffer_store_dwordx4",
    32: "s_dcache_inv", 33: "s_dcache_wb", 34: "s_dcache_inv_vol", 35: "s_dcache_wb_vol", 36: "s_memtime",
    37: "s_memrealtime", 38: "s_atc_probe", 39: "s_atc_probe_buffer", 40: "s_dcache_discard", 41: "s_dcache_discard_x2",
    # scalar atomics (docs/facts.md §13.3): buffer forms at 64, their x2 at 96; address forms at 128 and 160
    **{64 + i: f"s_buffer_atomic_{a}" for i, a in enumerate(_SMEM_ATOMICS)},
    **{96 + i: f"s_buffer_atomic_{a}_x2" for i, a in enumerate(_SMEM_ATOMICS)},
    **{128 + i: f"s_atomic_{a}" for i, a in enumerate(_SMEM_ATOMICS)},
    **{160 + i: f"s_atomic_{a}_x2" for i, a in enumerate(_SMEM_ATOMICS)},
}

VOP1 = {
    89: "v_permlane16_swap_b32", 90: "v_permlane32_swap_b32",
    12: "v_cvt_rpi_i32_f32", 13: "v_cvt_flr_i32_f32", 17: "v_cvt_f32_ubyte0", 18: "v_cvt_f32_ubyte1",
    19: "v_cvt_f32_ubyte2", 20: "v_cvt_f32_ubyte3", 47: "v_ffbh_i32", 51: "v_frexp_exp_i32_f32",
    52: "v_frexp_mant_f32",
    0: "v_nop", 1: "v_mov_b32", 2: "v_readfirstlane_b32", 5: "v_cvt_f32_i32", 6: "v_cvt_f32_u32",
    7: "v_cvt_u32_f32", 8: "v_cvt_i32_f32", 10: "v_cvt_f16_f32", 11: "v_cvt_f32_f16", 27: "v_fract_f32",
    28: "v_trunc_f32", 29: "v_ceil_f32", 30: "v_rndne_f32", 31: "v_floor_f32", 32: "v_exp_f32",
    33: "v_log_f32", 34: "v_rcp_f32", 35: "v_rcp_iflag_f32", 36: "v_rsq_f32", 39: "v_sqrt_f32",
    43: "v_not_b32", 44: "v_bfrev_b32", 45: "v_ffbh_u32", 46: "v_ffbl_b32", 56: "v_mov_b64", 82: "v_accvgpr_mov_b32",
    91: "v_cvt_f32_bf16",
    # 64-bit floating point (docs/facts.md §6.5)
    3: "v_cvt_i32_f64", 4: "v_cvt_f64_i32", 15: "v_cvt_f32_f64", 16: "v_cvt_f64_f32", 21: "v_cvt_u32_f64",
    22: "v_cvt_f64_u32", 23: "v_trunc_f64", 24: "v_ceil_f64", 25: "v_rndne_f64", 26: "v_floor_f64",
    37: "v_rcp_f64", 38: "v_rsq_f64", 40: "v_sqrt_f64", 48: "v_frexp_exp_i32_f64", 49: "v_frexp_mant_f64",
    50: "v_fract_f64",
    # 16-bit results (docs/facts.md §6.5)
    57: "v_cvt_f16_u16", 58: "v_cvt_f16_i16", 59: "v_cvt_u16_f16", 60: "v_cvt_i16_f16", 61: "v_rcp_f16",
    62: "v_sqrt_f16", 63: "v_rsq_f16", 64: "v_log_f16", 65: "v_exp_f16", 66: "v_frexp_mant_f16",
    67: "v_frexp_exp_i16_f16", 68: "v_floor_f16", 69: "v_ceil_f16", 70: "v_trunc_f16", 71: "v_rndne_f16",
    72: "v_fract_f16", 73: "v_sin_f16", 74: "v_cos_f16", 77: "v_cvt_norm_i16_f16", 78: "v_cvt_norm_u16_f16",
    79: "v_sat_pk_u8_i16",
    # the 8-bit float conversions (docs/facts.md §1.15)
    84: "v_cvt_f32_fp8", 85: "v_cvt_f32_bf8", 86: "v_cvt_pk_f32_fp8", 87: "v_cvt_pk_f32_bf8",
    # docs/facts.md §6.11
    14: "v_cvt_off_f32_i4", 41: "v_sin_f32", 42: "v_cos_f32", 75: "v_exp_legacy_f32", 76: "v_log_legacy_f32",
    81: "v_swap_b32", 88: "v_prng_b32",
}

VOP2 = {
    0: "v_cndmask_b32", 1: "v_add_f32", 2: "v_sub_f32", 3: "v_subrev_f32", 5: "v_mul_f32",
    6: "v_mul_i32_i24", 7: "v_mul_hi_i32_i24", 8: "v_mul_u32_u24", 9: "v_mul_hi_u32_u24", 10: "v_min_f32",
    11: "v_max_f32", 12: "v_min_i32", 13: "v_max_i32", 14: "v_min_u32", 15: "v_max_u32",
    16: "v_lshrrev_b32", 17: "v_ashrrev_i32", 18: "v_lshlrev_b32", 19: "v_and_b32", 20: "v_or_b32",
    21: "v_xor_b32", 25: "v_add_co_u32", 26: "v_sub_co_u32", 27: "v_subrev_co_u32", 28: "v_addc_co_u32",
    29: "v_subb_co_u32", 30: "v_subbrev_co_u32", 52: "v_add_u32", 53: "v_sub_u32", 54: "v_subrev_u32",
    59: "v_fmac_f32", 61: "v_xnor_b32", 4: "v_fmac_f64",
    31: "v_add_f16", 32: "v_sub_f16", 33: "v_subrev_f16", 34: "v_mul_f16", 35: "v_mac_f16", 36: "v_madmk_f16",
    37: "v_madak_f16", 38: "v_add_u16", 39: "v_sub_u16", 40: "v_subrev_u16", 41: "v_mul_lo_u16",
    42: "v_lshlrev_b16", 43: "v_lshrrev_b16", 44: "v_ashrrev_i16", 45: "v_max_f16", 46: "v_min_f16",
    47: "v_max_u16", 48: "v_max_i16", 49: "v_min_u16", 50: "v_min_i16", 51: "v_ldexp_f16",
    # docs/facts.md §6.11
    22: "v_dot2c_f32_bf16", 23: "v_fmamk_f32", 24: "v_fmaak_f32", 55: "v_dot2c_f32_f16", 56: "v_dot2c_i32_i16",
    57: "v_dot4c_i32_i8", 58: "v_dot8c_i32_i4", 60: "v_pk_fmac_f16",
}
# VOP2 ops whose 32-bit literal K follows the instruction whatever src0 is, and the source it stands for
# (v_madmk: D = S0 * K + S1, v_madak: D = S0 * S1 + K).
VOP2_LITERAL_K = {"v_madmk_f16": 1, "v_madak_f16": 2, "v_fmamk_f32": 1, "v_fmaak_f32": 2}
# VOP2 ops that accumulate into their destination (src2 = vdst)
VOP2_ACCUMULATE = {"v_fmac_f32", "v_fmac_f64", "v_mac_f16", "v_dot2c_f32_bf16", "v_dot2c_f32_f16", "v_dot2c_i32_i16",
                   "v_dot4c_i32_i8", "v_dot8c_i32_i4", "v_pk_fmac_f16"}

# VOPC compares: opcode = base + index of the condition; the same numbers serve VOP3 (op < 256).
_CMP_FLOAT = ["f", "lt", "eq", "le", "gt", "lg", "ge", "o", "u", "nge", "nlg", "ngt", "nle", "neq", "nlt", "tru"]
_CMP_INT = ["f", "lt", "eq", "le", "gt", "ne", "ge", "t"]
VOPC = {0x10: "v_cmp_class_f32", 0x11: "v_cmpx_class_f32", 0x12: "v_cmp_class_f64", 0x13: "v_cmpx_class_f64",
        0x14: "v_cmp_class_f16", 0x15: "v_cmpx_class_f16"}
for _base, _ty in ((0x20, "f16"), (0x40, "f32"), (0x60, "f64")):
    for _i, _c in enumerate(_CMP_FLOAT):
        VOPC[_base + _i] = f"v_cmp_{_c}_{_ty}"
        VOPC[_base + 0x10 + _i] = f"v_cmpx_{_c}_{_ty}"
for _base, _ty in ((0xA0, "i16"), (0xA8, "u16"), (0xC0, "i32"), (0xC8, "u32"), (0xE0, "i64"), (0xE8, "u64")):
    for _i, _c in enumerate(_CMP_INT):
        VOPC[_base + _i] = f"v_cmp_{_c}_{_ty}"
        VOPC[_base + 0x10 + _i] = f"v_cmpx_{_c}_{_ty}"

# VOP3-only opcodes (VOP3 also encodes VOPC at op, VOP2 at 0x100 + op and VOP1 at 0x140 + op).
VOP3 = {
    450: "v_mad_i32_i24", 451: "v_mad_u32_u24", 456: "v_bfe_u32", 457: "v_bfe_i32", 458: "v_bfi_b32",
    459: "v_fma_f32", 462: "v_alignbit_b32", 463: "v_alignbyte_b32", 464: "v_min3_f32", 465: "v_min3_i32",
    466: "v_min3_u32", 467: "v_max3_f32", 468: "v_max3_i32", 469: "v_max3_u32", 470: "v_med3_f32",
    471: "v_med3_i32", 472: "v_med3_u32", 488: "v_mad_u64_u32", 489: "v_mad_i64_i32", 493: "v_perm_b32",
    509: "v_lshl_add_u32", 510: "v_add_lshl_u32", 511: "v_add3_u32", 512: "v_lshl_or_b32",
    461: "v_lerp_u8", 473: "v_sad_u8", 474: "v_sad_hi_u8", 475: "v_sad_u16", 476: "v_sad_u32", 499: "v_xad_u32",
    659: "v_bfm_b32", 668: "v_add_i32", 669: "v_sub_i32",
    513: "v_and_or_b32", 514: "v_or3_b32", 520: "v_lshl_add_u64", 564: "v_bitop3_b32",
    616: "v_cvt_pk_bf16_f32", 645: "v_mul_lo_u32", 646: "v_mul_hi_u32", 647: "v_mul_hi_i32",
    648: "v_ldexp_f32", 649: "v_readlane_b32", 650: "v_writelane_b32", 651: "v_bcnt_u32_b32",
    652: "v_mbcnt_lo_u32_b32", 653: "v_mbcnt_hi_u32_b32", 655: "v_lshlrev_b64", 656: "v_lshrrev_b64",
    657: "v_ashrrev_i64", 662: "v_cvt_pkrtz_f16_f32", 672: "v_pack_b32_f16",
    460: "v_fma_f64", 478: "v_div_fixup_f32", 479: "v_div_fixup_f64", 480: "v_div_scale_f32",
    481: "v_div_scale_f64", 482: "v_div_fmas_f32", 483: "v_div_fmas_f64", 640: "v_add_f64", 641: "v_mul_f64",
    642: "v_min_f64", 643: "v_max_f64", 644: "v_ldexp_f64",
    490: "v_mad_legacy_f16", 491: "v_mad_legacy_u16", 492: "v_mad_legacy_i16", 494: "v_fma_legacy_f16",
    495: "v_div_fixup_legacy_f16", 497: "v_mad_u32_u16", 498: "v_mad_i32_i16", 500: "v_min3_f16",
    501: "v_min3_i16", 502: "v_min3_u16", 503: "v_max3_f16", 504: "v_max3_i16", 505: "v_max3_u16",
    506: "v_med3_f16", 507: "v_med3_i16", 508: "v_med3_u16", 515: "v_mad_f16", 516: "v_mad_u16",
    517: "v_mad_i16", 518: "v_fma_f16", 519: "v_div_fixup_f16", 665: "v_cvt_pknorm_i16_f16",
    666: "v_cvt_pknorm_u16_f16", 670: "v_add_i16", 671: "v_sub_i16",
    # the low-precision conversions (docs/facts.md §1.15)
    615: "v_cvt_pk_f16_f32", 674: "v_cvt_pk_fp8_f32", 675: "v_cvt_pk_bf8_f32", 676: "v_cvt_sr_fp8_f32",
    677: "v_cvt_sr_bf8_f32", 678: "v_cvt_sr_f16_f32", 679: "v_cvt_sr_bf16_f32",
    **{565 + i: f"v_cvt_scalef32_{n}" for i, n in enumerate((
        "pk_fp8_f32", "pk_bf8_f32", "sr_fp8_f32", "sr_bf8_f32", "pk_f32_fp8", "pk_f32_bf8", "f32_fp8", "f32_bf8",
        "pk_fp4_f32", "sr_pk_fp4_f32", "pk_f32_fp4", "pk_fp8_f16", "pk_bf8_f16", "sr_fp8_f16", "sr_bf8_f16",
        "pk_fp8_bf16", "pk_bf8_bf16", "sr_fp8_bf16", "sr_bf8_bf16", "pk_f16_fp8", "pk_f16_bf8", "f16_fp8",
        "f16_bf8", "pk_fp4_f16", "pk_fp4_bf16", "sr_pk_fp4_f16", "sr_pk_fp4_bf16", "pk_f16_fp4", "pk_bf16_fp4",
        "2xpk16_fp6_f32", "2xpk16_bf6_f32", "sr_pk32_fp6_f32", "sr_pk32_bf6_f32", "pk32_f32_fp6", "pk32_f32_bf6",
        "pk32_fp6_f16", "pk32_fp6_bf16", "pk32_bf6_f16", "pk32_bf6_bf16", "sr_pk32_fp6_f16", "sr_pk32_fp6_bf16",
        "sr_pk32_bf6_f16", "sr_pk32_bf6_bf16", "pk32_f16_fp6", "pk32_bf16_fp6", "pk32_f16_bf6", "pk32_bf16_bf6"))},
    617: "v_cvt_scalef32_pk_bf16_fp8", 618: "v_cvt_scalef32_pk_bf16_bf8",
    # docs/facts.md §6.11
    452: "v_cubeid_f32", 453: "v_cubesc_f32", 454: "v_cubetc_f32", 455: "v_cubema_f32", 477: "v_cvt_pk_u8_f32",
    484: "v_msad_u8", 485: "v_qsad_pk_u16_u8", 486: "v_mqsad_pk_u16_u8", 487: "v_mqsad_u32_u8",
    496: "v_cvt_pkaccum_u8_f32", 563: "v_bitop3_b16", 613: "v_ashr_pk_i8_i32", 614: "v_ashr_pk_u8_i32",
    658: "v_trig_preop_f64", 660: "v_cvt_pknorm_i16_f32", 661: "v_cvt_pknorm_u16_f32", 663: "v_cvt_pk_u16_u32",
    664: "v_cvt_pk_i16_i32", 673: "v_mul_legacy_f32", 680: "v_minimum3_f32", 681: "v_maximum3_f32",
}
# VOP3 opcodes whose bits [14:8] hold an SGPR destination (carry / condition out): the VOP3B form.
VOP3B = {"v_add_co_u32", "v_sub_co_u32", "v_subrev_co_u32", "v_addc_co_u32", "v_subb_co_u32",
         "v_subbrev_co_u32", "v_mad_u64_u32", "v_mad_i64_i32", "v_div_scale_f32", "v_div_scale_f64"}

# VOP3-only opcodes with two sources (their src2 field is unused).
VOP3_TWO_SOURCES = {"v_bfm_b32", "v_add_i32", "v_sub_i32", "v_mul_lo_u32", "v_mul_hi_u32", "v_mul_hi_i32", "v_ldexp_f32", "v_readlane_b32",
                    "v_writelane_b32", "v_bcnt_u32_b32", "v_mbcnt_lo_u32_b32", "v_mbcnt_hi_u32_b32",
                    "v_lshlrev_b64", "v_lshrrev_b64", "v_ashrrev_i64", "v_cvt_pkrtz_f16_f32", "v_pack_b32_f16",
                    "v_cvt_pk_bf16_f32", "v_add_f64", "v_mul_f64", "v_min_f64", "v_max_f64", "v_ldexp_f64",
                    "v_cvt_pknorm_i16_f16", "v_cvt_pknorm_u16_f16", "v_add_i16", "v_sub_i16",
                    "v_cvt_pkaccum_u8_f32", "v_trig_preop_f64", "v_cvt_pknorm_i16_f32", "v_cvt_pknorm_u16_f32",
                    "v_cvt_pk_u16_u32", "v_cvt_pk_i16_i32", "v_mul_legacy_f32"}

VOP3P = {
    0: "v_pk_mad_i16", 1: "v_pk_mul_lo_u16", 2: "v_pk_add_i16", 3: "v_pk_sub_i16", 4: "v_pk_lshlrev_b16",
    5: "v_pk_lshrrev_b16", 6: "v_pk_ashrrev_i16", 7: "v_pk_max_i16", 8: "v_pk_min_i16", 9: "v_pk_mad_u16",
    10: "v_pk_add_u16", 11: "v_pk_sub_u16", 12: "v_pk_max_u16", 13: "v_pk_min_u16", 14: "v_pk_fma_f16",
    15: "v_pk_add_f16", 16: "v_pk_mul_f16", 17: "v_pk_min_f16", 18: "v_pk_max_f16",
    38: "v_dot2_i32_i16", 39: "v_dot2_u32_u16", 40: "v_dot4_i32_i8", 41: "v_dot4_u32_u8", 42: "v_dot8_i32_i4",
    43: "v_dot8_u32_u4",
    48: "v_pk_fma_f32", 49: "v_pk_mul_f32", 50: "v_pk_add_f32", 51: "v_pk_mov_b32",
    # docs/facts.md §6.11
    26: "v_dot2_f32_bf16", 27: "v_pk_minimum3_f16", 28: "v_pk_maximum3_f16", 32: "v_fma_mix_f32",
    33: "v_fma_mixlo_f16", 34: "v_fma_mixhi_f16", 35: "v_dot2_f32_f16",
    88: "v_accvgpr_read_b32", 89: "v_accvgpr_write_b32",
    44: "v_mfma_ld_scale_b32",  # alone: refused; before an f8f6f4 MFMA: the first half of a VOP3PX2 op
}
# VOP3P ops that read a third source (the others' src2 field is unused)
VOP3P_THREE_SOURCES = {"v_pk_fma_f32", "v_pk_mad_i16", "v_pk_mad_u16", "v_pk_fma_f16", "v_dot2_i32_i16",
                       "v_dot2_u32_u16", "v_dot4_i32_i8", "v_dot4_u32_u8", "v_dot8_i32_i4", "v_dot8_u32_u4",
                       "v_dot2_f32_bf16", "v_dot2_f32_f16", "v_pk_minimum3_f16", "v_pk_maximum3_f16",
                       "v_fma_mix_f32", "v_fma_mixlo_f16", "v_fma_mixhi_f16"}
# Matrix ops (VOP3P-MAI encoding): mnemonic -> (M, N, K, A/B registers per lane, C/D registers per lane).
MAI = {
    53: ("v_mfma_f32_16x16x32_bf16", 16, 16, 32, 4, 4),
    55: ("v_mfma_f32_32x32x16_bf16", 32, 32, 16, 4, 16),
    97: ("v_mfma_f32_16x16x16_bf16", 16, 16, 16, 2, 4),
    96: ("v_mfma_f32_32x32x8_bf16", 32, 32, 8, 2, 16),
    84: ("v_mfma_f32_16x16x32_f16", 16, 16, 32, 4, 4),
    85: ("v_mfma_f32_32x32x16_f16", 32, 32, 16, 4, 16),
    77: ("v_mfma_f32_16x16x16_f16", 16, 16, 16, 2, 4),
    76: ("v_mfma_f32_32x32x8_f16", 32, 32, 8, 2, 16),
    54: ("v_mfma_i32_16x16x64_i8", 16, 16, 64, 4, 4),
    56: ("v_mfma_i32_32x32x32_i8", 32, 32, 32, 4, 16),
    87: ("v_mfma_i32_16x16x32_i8", 16, 16, 32, 2, 4),
    86: ("v_mfma_i32_32x32x16_i8", 32, 32, 16, 2, 16),
    **{op: (f"v_mfma_f32_{shape}_{a}_{b}", m, m, k, 2, cd)
       for base, (shape, m, k, cd) in ((112, ("16x16x32", 16, 32, 4)), (116, ("32x32x16", 32, 16, 16)))
       for op, (a, b) in zip(range(base, base + 4), (("bf8", "bf8"), ("bf8", "fp8"), ("fp8", "bf8"), ("fp8", "fp8")))},
}
# The older matrix layouts (docs/facts.md §1.13): f32 and f64 elements and shapes of several independent blocks;
# mnemonic -> (M, N, K, blocks, A/B registers per lane, C/D registers per lane).
MAI_BLOCKS = {
    **{op: (f"v_mfma_f32_{shape}_f32", m, m, k, nb, 1, cd) for op, (shape, m, k, nb, cd) in (
        (64, ("32x32x1_2b", 32, 1, 2, 32)), (65, ("16x16x1_4b", 16, 1, 4, 16)), (66, ("4x4x1_16b", 4, 1, 16, 4)),
        (68, ("32x32x2", 32, 2, 1, 16)), (69, ("16x16x4", 16, 4, 1, 4)))},
    **{op: (f"v_mfma_{out}_{shape}_{el}", m, m, 4, nb, regs, cd)
       for el, out, regs, base in (("f16", "f32", 2, 72), ("i8", "i32", 1, 80), ("bf16", "f32", 2, 93))
       for op, (shape, m, nb, cd) in zip(range(base, base + 3), (("32x32x4_2b", 32, 2, 32), ("16x16x4_4b", 16, 4, 16),
                                                                 ("4x4x4_16b", 4, 16, 4)))},
    110: ("v_mfma_f64_16x16x4_f64", 16, 16, 4, 1, 2, 8),
    111: ("v_mfma_f64_4x4x4_4b_f64", 4, 4, 4, 4, 2, 2),
}
# Sparse matrix ops (docs/facts.md §1.14): A is 4:2 compressed (half of B's registers), SRC2 is the VGPR of
# compression indices and the accumulator is VDST; mnemonic -> (M, N, K, B registers per lane, C/D registers).
SMFMAC = {
    98: ("v_smfmac_f32_16x16x32_f16", 16, 16, 32, 4, 4), 100: ("v_smfmac_f32_32x32x16_f16", 32, 32, 16, 4, 16),
    102: ("v_smfmac_f32_16x16x32_bf16", 16, 16, 32, 4, 4), 104: ("v_smfmac_f32_32x32x16_bf16", 32, 32, 16, 4, 16),
    106: ("v_smfmac_i32_16x16x64_i8", 16, 16, 64, 4, 4), 108: ("v_smfmac_i32_32x32x32_i8", 32, 32, 32, 4, 16),
    90: ("v_smfmac_f32_16x16x64_f16", 16, 16, 64, 8, 4), 91: ("v_smfmac_f32_32x32x32_f16", 32, 32, 32, 8, 16),
    57: ("v_smfmac_f32_16x16x64_bf16", 16, 16, 64, 8, 4), 70: ("v_smfmac_f32_32x32x32_bf16", 32, 32, 32, 8, 16),
    58: ("v_smfmac_i32_16x16x128_i8", 16, 16, 128, 8, 4), 71: ("v_smfmac_i32_32x32x64_i8", 32, 32, 64, 8, 16),
    **{op: (f"v_smfmac_f32_{shape}_{a}_{b}", m, m, k, regs, cd)
       for ops, shape, m, k, regs, cd in (((120, 121, 122, 123), "16x16x64", 16, 64, 4, 4),
                                          ((124, 125, 126, 127), "32x32x32", 32, 32, 4, 16),
                                          ((59, 60, 61, 67), "16x16x128", 16, 128, 8, 4),
                                          ((75, 78, 79, 83), "32x32x64", 32, 64, 8, 16))
       for op, (a, b) in zip(ops, (("bf8", "bf8"), ("bf8", "fp8"), ("fp8", "bf8"), ("fp8", "fp8")))},
}
# The f8f6f4 MFMAs (VOP3P-MAI, docs/facts.md §1.15): A's and B's formats come from CBSZ and BLGP, and with
# them A's and B's register counts (the 8 here is the largest, for fp8/bf8). Same tuple layout as MAI.
MAI_F8F6F4 = {45: ("v_mfma_f32_16x16x128_f8f6f4", 16, 16, 128, 8, 4),
              46: ("v_mfma_f32_32x32x64_f8f6f4", 32, 32, 64, 8, 16)}
# Their scaled forms (VOP3PX2: a v_mfma_ld_scale_b32 word pair, then the MFMA's), by the MFMA's opcode.
VOP3PX2 = {op: (name.replace("v_mfma_", "v_mfma_scale_"), *rest) for op, (name, *rest) in MAI_F8F6F4.items()}
# every VOP3P-MAI opcode: its mnemonic and registers per lane of its widest A/B operand and of C/D
MATRIX_OPS = {**{op: (v[0], v[4], v[5]) for op, v in MAI.items()},
              **{op: (v[0], v[5], v[6]) for op, v in MAI_BLOCKS.items()},
              **{op: (v[0], v[4], v[5]) for op, v in SMFMAC.items()},
              **{op: (v[0], v[4], v[5]) for op, v in MAI_F8F6F4.items()}}
# The element types of an MFMA's A and B (default bf16): each lane's register holds 32 / width of them, element
# `it` of the lane at bits width * (it % per) of register it / per (docs/facts.md §1.12); an f64 element takes
# registers 2 it and 2 it + 1. The core's codes:
MFMA_ELEMENTS = ("bf16", "f16", "i8", "fp8", "bf8", "f32", "f64")


def mfma_elements(name: str) -> tuple[str, str]:
    """(A type, B type) of an MFMA mnemonic."""
    parts = name.split("_")
    if parts[-2] in ("fp8", "bf8"):
        return parts[-2], parts[-1]
    return parts[-1], parts[-1]

DS = {
    13: "ds_write_b32", 14: "ds_write2_b32", 15: "ds_write2st64_b32", 30: "ds_write_b8", 31: "ds_write_b16",
    54: "ds_read_b32", 55: "ds_read2_b32", 56: "ds_read2st64_b32", 57: "ds_read_i8", 58: "ds_read_u8",
    59: "ds_read_i16", 60: "ds_read_u16", 77: "ds_write_b64", 78: "ds_write2_b64", 79: "ds_write2st64_b64",
    84: "ds_write_b8_d16_hi", 85: "ds_write_b16_d16_hi", 86: "ds_read_u8_d16", 87: "ds_read_u8_d16_hi",
    88: "ds_read_i8_d16", 89: "ds_read_i8_d16_hi", 90: "ds_read_u16_d16", 91: "ds_read_u16_d16_hi",
    118: "ds_read_b64", 119: "ds_read2_b64",
    120: "ds_read2st64_b64", 222: "ds_write_b96", 223: "ds_write_b128", 227: "ds_read_b64_tr_b16",
    # atomics (docs/facts.md §9): 32-bit, their _rtn_ forms at +32, 64-bit at +64, 64-bit _rtn_ at +96
    0: "ds_add_u32", 1: "ds_sub_u32", 2: "ds_rsub_u32", 3: "ds_inc_u32", 4: "ds_dec_u32", 5: "ds_min_i32",
    6: "ds_max_i32", 7: "ds_min_u32", 8: "ds_max_u32", 9: "ds_and_b32", 10: "ds_or_b32", 11: "ds_xor_b32",
    12: "ds_mskor_b32", 16: "ds_cmpst_b32", 17: "ds_cmpst_f32", 18: "ds_min_f32", 19: "ds_max_f32",
    20: "ds_nop", 21: "ds_add_f32", 23: "ds_pk_add_f16", 24: "ds_pk_add_bf16",
    32: "ds_add_rtn_u32", 33: "ds_sub_rtn_u32", 34: "ds_rsub_rtn_u32", 35: "ds_inc_rtn_u32",
    36: "ds_dec_rtn_u32", 37: "ds_min_rtn_i32", 38: "ds_max_rtn_i32", 39: "ds_min_rtn_u32",
    40: "ds_max_rtn_u32", 41: "ds_and_rtn_b32", 42: "ds_or_rtn_b32", 43: "ds_xor_rtn_b32",
    44: "ds_mskor_rtn_b32", 45: "ds_wrxchg_rtn_b32", 46: "ds_wrxchg2_rtn_b32", 47: "ds_wrxchg2st64_rtn_b32",
    48: "ds_cmpst_rtn_b32", 49: "ds_cmpst_rtn_f32", 50: "ds_min_rtn_f32", 51: "ds_max_rtn_f32",
    53: "ds_add_rtn_f32",
    64: "ds_add_u64", 65: "ds_sub_u64", 66: "ds_rsub_u64", 67: "ds_inc_u64", 68: "ds_dec_u64", 69: "ds_min_i64",
    70: "ds_max_i64", 71: "ds_min_u64", 72: "ds_max_u64", 73: "ds_and_b64", 74: "ds_or_b64", 75: "ds_xor_b64",
    76: "ds_mskor_b64", 80: "ds_cmpst_b64", 81: "ds_cmpst_f64", 82: "ds_min_f64", 83: "ds_max_f64",
    92: "ds_add_f64",
    96: "ds_add_rtn_u64", 97: "ds_sub_rtn_u64", 98: "ds_rsub_rtn_u64", 99: "ds_inc_rtn_u64",
    100: "ds_dec_rtn_u64", 101: "ds_min_rtn_i64", 102: "ds_max_rtn_i64", 103: "ds_min_rtn_u64",
    104: "ds_max_rtn_u64", 105: "ds_and_rtn_b64", 106: "ds_or_rtn_b64", 107: "ds_xor_rtn_b64",
    108: "ds_mskor_rtn_b64", 109: "ds_wrxchg_rtn_b64", 110: "ds_wrxchg2_rtn_b64", 111: "ds_wrxchg2st64_rtn_b64",
    112: "ds_cmpst_rtn_b64", 113: "ds_cmpst_rtn_f64", 114: "ds_min_rtn_f64", 115: "ds_max_rtn_f64",
    124: "ds_add_rtn_f64", 183: "ds_pk_add_rtn_f16", 184: "ds_pk_add_rtn_bf16",
    # lane exchange through the LDS unit, no LDS access (docs/facts.md §9.4)
    61: "ds_swizzle_b32", 62: "ds_permute_b32", 63: "ds_bpermute_b32",
    254: "ds_read_b96", 255: "ds_read_b128",
    # docs/facts.md §9.6: addressed by M0 and the lane id, the wrapping and conditional exchanges, the wave
    # counters, and the transposing reads of 4-, 6- and 8-bit elements (§1.11 has the 16-bit one)
    29: "ds_write_addtid_b32", 182: "ds_read_addtid_b32", 52: "ds_wrap_rtn_b32", 126: "ds_condxchg32_rtn_b64",
    189: "ds_consume", 190: "ds_append", 224: "ds_read_b64_tr_b4", 225: "ds_read_b96_tr_b6",
    226: "ds_read_b64_tr_b8",
}

# The atomics MUBUF, FLAT and GLOBAL share (same opcodes in all three; docs/facts.md §9): 32-bit, then x2.
_VMEM_ATOMICS = {
    64: "swap", 65: "cmpswap", 66: "add", 67: "sub", 68: "smin", 69: "umin", 70: "smax", 71: "umax", 72: "and",
    73: "or", 74: "xor", 75: "inc", 76: "dec", 77: "add_f32", 78: "pk_add_f16", 79: "add_f64", 80: "min_f64",
    81: "max_f64", 82: "pk_add_bf16",
    96: "swap_x2", 97: "cmpswap_x2", 98: "add_x2", 99: "sub_x2", 100: "smin_x2", 101: "umin_x2", 102: "smax_x2",
    103: "umax_x2", 104: "and_x2", 105: "or_x2", 106: "xor_x2", 107: "inc_x2", 108: "dec_x2",
}

_XYZW = ("x", "xy", "xyz", "xyzw")
MUBUF = {
    16: "buffer_load_ubyte", 17: "buffer_load_sbyte", 18: "buffer_load_ushort", 19: "buffer_load_sshort",
    20: "buffer_load_dword", 21: "buffer_load_dwordx2", 22: "buffer_load_dwordx3", 23: "buffer_load_dwordx4",
    24: "buffer_store_byte", 26: "buffer_store_short", 27: "buffer_store_short_d16_hi",
    28: "buffer_store_dword", 29: "buffer_store_dwordx2", 30: "buffer_store_dwordx3", 31: "buffer_store_dwordx4",
    25: "buffer_store_byte_d16_hi", 32: "buffer_load_ubyte_d16", 33: "buffer_load_ubyte_d16_hi",
    34: "buffer_load_sbyte_d16", 35: "buffer_load_sbyte_d16_hi",
    **{op: f"buffer_atomic_{name}" for op, name in _VMEM_ATOMICS.items()},
    36: "buffer_load_short_d16", 37: "buffer_load_short_d16_hi",
    # formatted access (docs/facts.md §3.6): the V#'s DATA_FORMAT/NUM_FORMAT/DST_SEL give the layout
    **{i: f"buffer_{d}_format_{x}" for i, (d, x) in enumerate((d, x) for d in ("load", "store") for x in _XYZW)},
    **{8 + i: f"buffer_{d}_format_d16_{x}" for i, (d, x) in enumerate((d, x) for d in ("load", "store") for x in _XYZW)},
    38: "buffer_load_format_d16_hi_x", 39: "buffer_store_format_d16_hi_x",
    40: "buffer_wbl2", 41: "buffer_inv",  # cache write-back / invalidate (docs/facts.md §9.1)
}
# typed buffer access: the same formatted ops with DFMT/NFMT in the instruction (docs/facts.md §3.6)
MTBUF = {i: "t" + MUBUF[i] for i in range(16)}

# FLAT/GLOBAL share opcodes; the segment field picks the address space (0 flat, 2 global).
FLAT = {
    16: "load_ubyte", 17: "load_sbyte", 18: "load_ushort", 19: "load_sshort", 20: "load_dword",
    21: "load_dwordx2", 22: "load_dwordx3", 23: "load_dwordx4", 24: "store_byte", 25: "store_byte_d16_hi",
    26: "store_short", 27: "store_short_d16_hi", 28: "store_dword", 29: "store_dwordx2", 30: "store_dwordx3",
    31: "store_dwordx4", 32: "load_ubyte_d16", 33: "load_ubyte_d16_hi", 34: "load_sbyte_d16",
    35: "load_sbyte_d16_hi", 36: "load_short_d16", 37: "load_short_d16_hi", 38: "load_lds_ubyte",
    39: "load_lds_sbyte", 40: "load_lds_ushort", 41: "load_lds_sshort", 42: "load_lds_dword",
    125: "load_lds_dwordx4", 126: "load_lds_dwordx3",
    **{op: f"atomic_{name}" for op, name in _VMEM_ATOMICS.items()},
}

SEG_FLAT, SEG_SCRATCH, SEG_GLOBAL = 0, 1, 2


def segment_has(seg: int, base: str) -> bool:
    """Whether FLAT opcode `base` (a FLAT value) exists in the segment: the LDS-DMA loads only for GLOBAL and
    SCRATCH (SCRATCH up to dword), atomics not for SCRATCH (docs/facts.md §9.5)."""
    if seg == SEG_FLAT:
        return "lds" not in base
    if seg == SEG_SCRATCH:
        return not base.startswith("atomic_") and base not in ("load_lds_dwordx3", "load_lds_dwordx4")
    return True


# ---- how the execution core runs each mnemonic (hkrt/emu/optable.py turns this into core.c's opcode table)
@dataclass(frozen=True)
class Op:
    """The C function of core.c that runs a mnemonic, and the parameters it reads from the opcode table."""
    handler: str
    cond: int = 0       # compares: the condition's ISA code (its offset in _CMP_FLOAT or _CMP_INT); branches:
                        # its index in BRANCH_CONDITIONS; s_bitcmp0/1: the bit value that sets SCC;
                        # refused: the reason's number in core.c's refused()
    type: str = ""      # compares: operand type, one of COMPARE_TYPES
    cmpx: bool = False  # v_cmpx_*: the result is written to EXEC as well
    shift: int = 0      # s_lshlN_add_u32: N
    m: int = 0          # MFMA: block shape M x N x K and registers per lane of A/B (SMFMAC: of B) and of C/D
    n: int = 0
    k: int = 0
    ab_regs: int = 0
    cd_regs: int = 0
    wide: int = 0       # 64-bit operands: bit i source i, bit 3 the destination (WIDE_* below)
    elem_a: int = 0     # MFMA: A's and B's element type, as an index of MFMA_ELEMENTS
    elem_b: int = 0
    dwords: int = 0     # scalar memory: dwords moved (atomics: 1 or 2, the memory operand's width)
    buffer: bool = False  # scalar memory: SBASE holds a buffer descriptor, not an address
    scratch: bool = False  # scalar memory: the address is in the wave's private segment
    untimed: bool = False  # no effect to model and no cost the timing model knows: timing class "untimed"
    fpmode: int = 0     # which of MODE's float fields the op honours (FP_* below; 0: none)
    fpround: bool = False  # it honours the rounding field too, not only the denormal one


WIDE_S0, WIDE_S1, WIDE_S2, WIDE_D = 1, 2, 4, 8
# MODE's float fields an op honours (docs/facts.md §13.4): the fp32 ones (FP_ROUND[1:0], FP_DENORM[1:0]) through
# the host's SSE mode, the fp16/fp64 ones (FP_ROUND[3:2], FP_DENORM[3:2]) through the SSE mode (fp64) or the
# core's fp16 rounding helpers (fp16)
FP_32, FP_64, FP_16 = 1, 2, 3
COMPARE_TYPES = ("f16", "f32", "f64", "i16", "u16", "i32", "u32", "i64", "u64", "class_f16", "class_f32", "class_f64")
BRANCH_CONDITIONS = ("always", "scc0", "scc1", "vccz", "vccnz", "execz", "execnz", "cdbgsys", "cdbguser",
                     "cdbgsys_or_user", "cdbgsys_and_user")
OPS: dict[str, Op] = {}


def _declare(handler: str, names: str, **params) -> None:
    for name in names.split():
        if name in OPS:
            raise ValueError(f"{name} is declared twice in isa.OPS")
        OPS[name] = Op(handler, **params)


_declare("invalid_op", "invalid")
# program control (SOPP)
_declare("sopp_nop", "s_nop s_sleep")  # their only effect is on timing (timing_model.c)
# no effect in the emulator and no cost the timing model knows (docs/facts.md §13.2): s_wakeup wakes waves from
# an s_sleep, which never blocks here; cache and performance hints; thread-trace data with no trace running
_declare("sopp_nop", "s_wakeup s_icache_inv s_incperflevel s_decperflevel s_ttracedata", untimed=True)
_declare("sopp_setprio", "s_setprio")
_declare("sopp_endpgm", "s_endpgm s_endpgm_saved")
_declare("sopp_sethalt", "s_sethalt")
_declare("sopp_trap", "s_trap")
_declare("gpr_idx", "s_set_gpr_idx_on s_set_gpr_idx_off s_set_gpr_idx_mode s_set_gpr_idx_idx")
# refused, each with its reason (core.c refused()): no compute kernel the toolchain builds needs them
for _name, _why in (("s_cbranch_g_fork", 1), ("s_cbranch_i_fork", 1), ("s_cbranch_join", 1),
                    ("s_rfe_b64", 2), ("s_rfe_restore_b64", 2), ("s_setkill", 3), ("s_sendmsg", 4),
                    ("s_sendmsghalt", 4), ("s_setvskip", 5), ("v_exp_legacy_f32", 6), ("v_log_legacy_f32", 6)):
    _declare("refused", _name, cond=_why)
_declare("sopp_barrier", "s_barrier")
_declare("sopp_waitcnt", "s_waitcnt")
for _i, _c in enumerate(BRANCH_CONDITIONS):
    _declare("sopp_branch", "s_branch" if _c == "always" else f"s_cbranch_{_c}", cond=_i)
# scalar ALU
_declare("salu_move", "s_mov_b32 s_mov_b64 s_cmov_b32 s_cmov_b64 s_movk_i32 s_cmovk_i32 s_cselect_b32 "
                      "s_cselect_b64 s_getpc_b64")
_declare("salu_movrel", "s_movrels_b32 s_movrels_b64 s_movreld_b32 s_movreld_b64")
_declare("salu_jump", "s_setpc_b64 s_swappc_b64 s_call_b64")
_declare("salu_hwreg", "s_getreg_b32 s_setreg_b32 s_setreg_imm32_b32")
_declare("salu_arith", "s_add_u32 s_sub_u32 s_add_i32 s_sub_i32 s_addc_u32 s_subb_u32 s_min_i32 s_min_u32 "
                       "s_max_i32 s_max_u32 s_mul_i32 s_mul_hi_u32 s_mul_hi_i32 s_absdiff_i32")
for _n in range(1, 5):
    _declare("salu_arith", f"s_lshl{_n}_add_u32", shift=_n)
_declare("salu_arith_imm", "s_addk_i32 s_mulk_i32")
_declare("salu_bit", "s_and_b32 s_or_b32 s_xor_b32 s_andn2_b32 s_orn2_b32 s_nand_b32 s_nor_b32 s_xnor_b32 "
                     "s_lshl_b32 s_lshr_b32 s_ashr_i32 s_bfm_b32 s_bfe_u32 s_bfe_i32 s_pack_ll_b32_b16 "
                     "s_pack_lh_b32_b16 s_pack_hh_b32_b16")
_declare("salu_bit64", "s_and_b64 s_or_b64 s_xor_b64 s_andn2_b64 s_orn2_b64 s_nand_b64 s_nor_b64 s_xnor_b64 "
                       "s_lshl_b64 s_lshr_b64 s_ashr_i64 s_bfm_b64 s_bfe_u64 s_bfe_i64")
_declare("salu_unary", "s_not_b32 s_not_b64 s_brev_b32 s_bcnt1_i32_b32 s_bcnt1_i32_b64 s_ff1_i32_b32 "
                       "s_ff1_i32_b64 s_flbit_i32_b32 s_sext_i32_i8 s_sext_i32_i16 s_abs_i32 s_wqm_b32 s_wqm_b64 "
                       "s_brev_b64 s_bcnt0_i32_b32 s_bcnt0_i32_b64 s_ff0_i32_b32 s_ff0_i32_b64 s_flbit_i32_b64 "
                       "s_flbit_i32 s_flbit_i32_i64 s_bitset0_b32 s_bitset0_b64 s_bitset1_b32 s_bitset1_b64 "
                       "s_quadmask_b32 s_quadmask_b64 s_bitreplicate_b64_b32")
_declare("salu_saveexec", " ".join(f"s_{o}_saveexec_b64" for o in
                                   ("and", "or", "xor", "andn2", "orn2", "nand", "nor", "xnor", "andn1", "orn1")))
_declare("salu_saveexec", "s_andn1_wrexec_b64 s_andn2_wrexec_b64")
for _c in ("eq", "lg", "gt", "ge", "lt", "le"):  # lg is the integer compares' ne
    _cond = _CMP_INT.index("ne" if _c == "lg" else _c)
    for _ty in ("i32", "u32"):
        _declare("salu_compare", f"s_cmp_{_c}_{_ty}", cond=_cond, type=_ty)
        _declare("salu_compare_imm", f"s_cmpk_{_c}_{_ty}", cond=_cond, type=_ty)
    if _c in ("eq", "lg"):
        _declare("salu_compare", f"s_cmp_{_c}_u64", cond=_cond, type="u64")
_declare("salu_bitcmp", "s_bitcmp0_b32", cond=0)
_declare("salu_bitcmp", "s_bitcmp1_b32", cond=1)
_declare("salu_bitcmp", "s_bitcmp0_b64", cond=0, type="u64")
_declare("salu_bitcmp", "s_bitcmp1_b64", cond=1, type="u64")
# scalar memory (docs/facts.md §13.3)
for _n in (1, 2, 4, 8, 16):
    _x = "" if _n == 1 else f"x{_n}"
    _declare("smem_load", f"s_load_dword{_x}", dwords=_n)
    _declare("smem_load", f"s_buffer_load_dword{_x}", dwords=_n, buffer=True)
    if _n <= 4:
        _declare("smem_store", f"s_store_dword{_x}", dwords=_n)
        _declare("smem_store", f"s_buffer_store_dword{_x}", dwords=_n, buffer=True)
for _a in _SMEM_ATOMICS:
    _declare("smem_atomic", f"s_atomic_{_a}", dwords=1)
    _declare("smem_atomic", f"s_buffer_atomic_{_a}", dwords=1, buffer=True)
    _declare("smem_atomic", f"s_atomic_{_a}_x2", dwords=2)
    _declare("smem_atomic", f"s_buffer_atomic_{_a}_x2", dwords=2, buffer=True)
_declare("smem_time", "s_memtime s_memrealtime")
# cache maintenance and address-translation probes: no data moves in a machine without caches
_declare("smem_nop", "s_dcache_inv s_dcache_wb s_dcache_inv_vol s_dcache_wb_vol s_atc_probe s_atc_probe_buffer "
                     "s_dcache_discard s_dcache_discard_x2", untimed=True)
for _n in (1, 2, 4):  # the wave's private segment (docs/facts.md §9.7)
    _x = "" if _n == 1 else f"x{_n}"
    _declare("smem_load", f"s_scratch_load_dword{_x}", dwords=_n, scratch=True)
    _declare("smem_store", f"s_scratch_store_dword{_x}", dwords=_n, scratch=True)
# vector ALU
_declare("valu_nop", "v_nop")
_declare("valu_move", "v_mov_b32 v_accvgpr_mov_b32 v_accvgpr_read_b32 v_accvgpr_write_b32")
_declare("valu_move64", "v_mov_b64")
_declare("valu_cross_lane", "v_readfirstlane_b32 v_readlane_b32 v_writelane_b32")
_declare("valu_cndmask", "v_cndmask_b32")
_declare("valu_f32", "v_add_f32 v_sub_f32 v_subrev_f32 v_mul_f32 v_min_f32 v_max_f32 v_fma_f32 v_fmac_f32 "
                     "v_min3_f32 v_max3_f32 v_med3_f32 v_ldexp_f32 v_exp_f32 v_log_f32 v_rcp_f32 v_rcp_iflag_f32 "
                     "v_rsq_f32 v_sqrt_f32 v_fract_f32 v_trunc_f32 v_ceil_f32 v_rndne_f32 v_floor_f32 "
                     "v_fmamk_f32 v_fmaak_f32 v_mul_legacy_f32 v_minimum3_f32 v_maximum3_f32 v_cubeid_f32 "
                     "v_cubesc_f32 v_cubetc_f32 v_cubema_f32 v_sin_f32 v_cos_f32 v_cvt_off_f32_i4")
_declare("valu_convert", "v_cvt_rpi_i32_f32 v_cvt_flr_i32_f32 v_cvt_f32_ubyte0 v_cvt_f32_ubyte1 v_cvt_f32_ubyte2 "
                         "v_cvt_f32_ubyte3 v_frexp_exp_i32_f32 v_frexp_mant_f32 "
                         "v_cvt_f32_i32 v_cvt_f32_u32 v_cvt_u32_f32 v_cvt_i32_f32 v_cvt_f16_f32 "
                         "v_cvt_f32_bf16 v_cvt_pk_bf16_f32 v_cvt_pkrtz_f16_f32 v_pack_b32_f16 v_cvt_pk_u8_f32 "
                         "v_cvt_pkaccum_u8_f32 v_cvt_pknorm_i16_f32 v_cvt_pknorm_u16_f32 v_cvt_pk_u16_u32 "
                         "v_cvt_pk_i16_i32")
# ops with a 16-bit result or 16-bit sources (docs/facts.md §6.5)
_declare("valu_16", "v_add_f16 v_sub_f16 v_subrev_f16 v_mul_f16 v_mac_f16 v_madmk_f16 v_madak_f16 v_max_f16 "
                    "v_min_f16 v_ldexp_f16 v_cvt_f16_u16 v_cvt_f16_i16 v_rcp_f16 v_sqrt_f16 v_rsq_f16 v_log_f16 "
                    "v_exp_f16 v_frexp_mant_f16 v_floor_f16 v_ceil_f16 v_trunc_f16 v_rndne_f16 v_fract_f16 "
                    "v_sin_f16 v_cos_f16 v_mad_f16 v_fma_f16 v_div_fixup_f16 v_mad_legacy_f16 v_fma_legacy_f16 "
                    "v_div_fixup_legacy_f16 v_min3_f16 v_max3_f16 v_med3_f16 "
                    "v_cvt_u16_f16 v_cvt_i16_f16 v_cvt_norm_i16_f16 v_cvt_norm_u16_f16 v_frexp_exp_i16_f16 "
                    "v_sat_pk_u8_i16 v_add_u16 v_sub_u16 v_subrev_u16 v_mul_lo_u16 v_lshlrev_b16 v_lshrrev_b16 "
                    "v_ashrrev_i16 v_max_u16 v_max_i16 v_min_u16 v_min_i16 v_mad_u16 v_mad_i16 v_mad_legacy_u16 "
                    "v_mad_legacy_i16 v_min3_i16 v_min3_u16 v_max3_i16 v_max3_u16 v_med3_i16 v_med3_u16 "
                    "v_add_i16 v_sub_i16 v_mad_u32_u16 v_mad_i32_i16 v_cvt_pknorm_i16_f16 v_cvt_pknorm_u16_f16 v_cvt_f32_f16")
# 64-bit floating point (docs/facts.md §6.5): which operands are register pairs
_D, _S0, _S01, _S012 = WIDE_D, WIDE_S0, WIDE_S0 | WIDE_S1, WIDE_S0 | WIDE_S1 | WIDE_S2
_declare("valu_f64", "v_trunc_f64 v_ceil_f64 v_rndne_f64 v_floor_f64 v_rcp_f64 v_rsq_f64 v_sqrt_f64 "
                     "v_frexp_mant_f64 v_fract_f64 v_ldexp_f64 v_trig_preop_f64", wide=_D | _S0)
_declare("valu_f64", "v_add_f64 v_mul_f64 v_min_f64 v_max_f64", wide=_D | _S01)
_declare("valu_f64", "v_fma_f64 v_fmac_f64 v_div_fmas_f64 v_div_fixup_f64 v_div_scale_f64", wide=_D | _S012)
_declare("valu_f64", "v_cvt_i32_f64 v_cvt_u32_f64 v_cvt_f32_f64 v_frexp_exp_i32_f64", wide=_S0)
_declare("valu_f64", "v_cvt_f64_i32 v_cvt_f64_u32 v_cvt_f64_f32", wide=_D)
_declare("valu_f64", "v_div_scale_f32 v_div_fmas_f32 v_div_fixup_f32")  # the same division steps in fp32
_declare("valu_int", "v_add_u32 v_sub_u32 v_subrev_u32 v_mul_i32_i24 v_mul_hi_i32_i24 v_mul_u32_u24 "
                     "v_mul_hi_u32_u24 v_mad_i32_i24 v_mad_u32_u24 v_mul_lo_u32 v_mul_hi_u32 v_mul_hi_i32 "
                     "v_min_i32 v_max_i32 v_min_u32 v_max_u32 v_min3_i32 v_max3_i32 v_min3_u32 v_max3_u32 "
                     "v_med3_i32 v_med3_u32 v_lshl_add_u32 v_add_lshl_u32 v_add3_u32 v_xad_u32 v_sad_u32 "
                     "v_sad_u16 v_sad_u8 v_sad_hi_u8 v_lerp_u8 v_bfm_b32 v_add_i32 v_sub_i32 v_msad_u8 "
                     "v_ashr_pk_i8_i32 v_ashr_pk_u8_i32 v_prng_b32")
_declare("valu_qsad", "v_qsad_pk_u16_u8 v_mqsad_pk_u16_u8 v_mqsad_u32_u8")
_declare("valu_bit", "v_lshrrev_b32 v_ashrrev_i32 v_lshlrev_b32 v_and_b32 v_or_b32 v_xor_b32 v_xnor_b32 "
                     "v_not_b32 v_bfrev_b32 v_ffbh_u32 v_ffbh_i32 v_ffbl_b32 v_bfe_u32 v_bfe_i32 v_bfi_b32 v_alignbit_b32 "
                     "v_alignbyte_b32 v_lshl_or_b32 v_and_or_b32 v_or3_b32 v_perm_b32 v_bitop3_b32 "
                     "v_bcnt_u32_b32 v_bitop3_b16")
_declare("valu_carry", "v_add_co_u32 v_sub_co_u32 v_subrev_co_u32 v_addc_co_u32 v_subb_co_u32 v_subbrev_co_u32")
_declare("valu_mbcnt", "v_mbcnt_lo_u32_b32 v_mbcnt_hi_u32_b32")
_declare("valu_shift64", "v_lshlrev_b64 v_lshrrev_b64 v_ashrrev_i64 v_lshl_add_u64")
_declare("valu_mad64", "v_mad_u64_u32 v_mad_i64_i32")
_declare("valu_packed_f32", "v_pk_fma_f32 v_pk_mul_f32 v_pk_add_f32 v_pk_mov_b32")
_declare("valu_permlane_swap", "v_permlane16_swap_b32 v_permlane32_swap_b32")
_declare("valu_packed16", " ".join(v for k, v in VOP3P.items() if k < 19))
_declare("valu_packed16", "v_pk_fmac_f16 v_pk_minimum3_f16 v_pk_maximum3_f16")
_declare("valu_dot_int", "v_dot2_i32_i16 v_dot2_u32_u16 v_dot4_i32_i8 v_dot4_u32_u8 v_dot8_i32_i4 v_dot8_u32_u4 "
                         "v_dot2c_i32_i16 v_dot4c_i32_i8 v_dot8c_i32_i4")
_declare("valu_dot_float", "v_dot2_f32_bf16 v_dot2_f32_f16 v_dot2c_f32_bf16 v_dot2c_f32_f16")
_declare("valu_fma_mix", "v_fma_mix_f32 v_fma_mixlo_f16 v_fma_mixhi_f16")
_declare("valu_swap", "v_swap_b32")
for _ty in ("f16", "f32", "f64"):
    for _i, _c in enumerate(_CMP_FLOAT):
        _declare("valu_compare", f"v_cmp_{_c}_{_ty}", cond=_i, type=_ty)
        _declare("valu_compare", f"v_cmpx_{_c}_{_ty}", cond=_i, type=_ty, cmpx=True)
for _ty in ("i16", "u16", "i32", "u32", "i64", "u64"):
    for _i, _c in enumerate(_CMP_INT):
        _declare("valu_compare", f"v_cmp_{_c}_{_ty}", cond=_i, type=_ty)
        _declare("valu_compare", f"v_cmpx_{_c}_{_ty}", cond=_i, type=_ty, cmpx=True)
for _ty in ("f16", "f32", "f64"):
    _declare("valu_compare", f"v_cmp_class_{_ty}", type=f"class_{_ty}")
    _declare("valu_compare", f"v_cmpx_class_{_ty}", type=f"class_{_ty}", cmpx=True)
for _name, _m, _n, _k, _ab, _cd in MAI.values():
    _ea, _eb = (MFMA_ELEMENTS.index(t) for t in mfma_elements(_name))
    _declare("valu_mfma", _name, m=_m, n=_n, k=_k, ab_regs=_ab, cd_regs=_cd, elem_a=_ea, elem_b=_eb)
for _name, _m, _n, _k, _nb, _ab, _cd in MAI_BLOCKS.values():
    _ea, _eb = (MFMA_ELEMENTS.index(t) for t in mfma_elements(_name))
    _declare("valu_mfma_blocks", _name, m=_m, n=_n, k=_k, ab_regs=_ab, cd_regs=_cd, elem_a=_ea, elem_b=_eb)
for _name, _m, _n, _k, _ab, _cd in SMFMAC.values():
    _ea, _eb = (MFMA_ELEMENTS.index(t) for t in mfma_elements(_name))
    _declare("valu_smfmac", _name, m=_m, n=_n, k=_k, ab_regs=_ab, cd_regs=_cd, elem_a=_ea, elem_b=_eb)  # ab: B's
for _name, _m, _n, _k, _ab, _cd in (*MAI_F8F6F4.values(), *VOP3PX2.values()):
    _declare("valu_mfma_f8f6f4", _name, m=_m, n=_n, k=_k, ab_regs=_ab, cd_regs=_cd)
_declare("mfma_ld_scale_alone", "v_mfma_ld_scale_b32")
# the 8-bit, 6-bit and 4-bit float conversions (docs/facts.md §1.15); core.c's lowp_convert_of() has each one's
# formats and operand layout
_declare("valu_lowp_convert", " ".join(n for n in (*VOP1.values(), *VOP3.values())
                                       if re.fullmatch(r"v_cvt_((pk_)?f32_(fp8|bf8)|pk_(fp8|bf8)_f32|sr_\w+_f32|"
                                                       r"pk_f16_f32|scalef32_\w+)", n)))
# their VOP3 forms with two sources: all but the scaled ones that take two values or a random word as well
VOP3_TWO_SOURCES |= {n for n, op in OPS.items() if op.handler == "valu_lowp_convert" and n in VOP3.values()
                     and not (n.startswith("v_cvt_scalef32_") and ("_sr_" in n or "2xpk16" in n or
                                                                   n.endswith(("pk_fp8_f32", "pk_bf8_f32", "pk_fp4_f32"))))}
# memory
_declare("ds", " ".join(DS.values()))
_declare("buffer_op", " ".join(n for n in MUBUF.values() if "format" not in n and n not in ("buffer_wbl2", "buffer_inv")))
_declare("buffer_format", " ".join(n for n in (*MUBUF.values(), *MTBUF.values()) if "format" in n))
# cache write-back and invalidate: nothing to do in a machine without caches (docs/facts.md §9.1)
_declare("buffer_cache", "buffer_wbl2 buffer_inv")  # timed as data-less memory ops (docs/perf-model.md)
_declare("flat_op", " ".join(f"global_{n}" for n in FLAT.values()))
_declare("flat_op", " ".join(f"flat_{n}" for n in FLAT.values() if segment_has(SEG_FLAT, n)))
_declare("flat_op", " ".join(f"scratch_{n}" for n in FLAT.values() if segment_has(SEG_SCRATCH, n)))

# The ops that honour MODE's float fields (docs/facts.md §13.4): the IEEE arithmetic (add, sub, mul, fma, mad)
# rounds by FP_ROUND and flushes by FP_DENORM; the square root, reciprocals, exp and log flush only (they are
# approximations, not correctly rounded). Everything else ignores MODE: moves, conversions, min/max/med3 (they
# return an operand), rounding to integers, frexp/ldexp, compares and class, the division steps, and the MFMAs
# (which never flush, CDNA4 ISA §7.4).
_ROUNDED = {FP_32: "v_add_f32 v_sub_f32 v_subrev_f32 v_mul_f32 v_fma_f32 v_fmac_f32 v_pk_fma_f32 v_pk_mul_f32 "
                   "v_pk_add_f32",
            FP_64: "v_add_f64 v_mul_f64 v_fma_f64 v_fmac_f64",
            FP_16: "v_add_f16 v_sub_f16 v_subrev_f16 v_mul_f16 v_mac_f16 v_madmk_f16 v_madak_f16 v_mad_f16 v_fma_f16 "
                   "v_mad_legacy_f16 v_fma_legacy_f16 v_pk_fma_f16 v_pk_add_f16 v_pk_mul_f16"}
_FLUSHED = {FP_32: "v_sqrt_f32 v_rcp_f32 v_rcp_iflag_f32 v_rsq_f32 v_exp_f32 v_log_f32",
            FP_64: "v_sqrt_f64 v_rcp_f64 v_rsq_f64",
            FP_16: "v_sqrt_f16 v_rcp_f16 v_rsq_f16 v_exp_f16 v_log_f16"}
for _fp, _names in _ROUNDED.items():
    for _name in _names.split():
        OPS[_name] = replace(OPS[_name], fpmode=_fp, fpround=True)
for _fp, _names in _FLUSHED.items():
    for _name in _names.split():
        OPS[_name] = replace(OPS[_name], fpmode=_fp)

# Which DPP form an op has, for the core's refusal of the others (docs/facts.md §6.4): VOP1/VOP2 ops have one
# except these; gfx950 has none for VOPC compares; 64-bit operands take only row_newbcast.
NO_DPP_FORM = {"v_nop", "v_readfirstlane_b32", "v_accvgpr_mov_b32", "v_madmk_f16", "v_madak_f16",
               "v_permlane16_swap_b32", "v_permlane32_swap_b32", "v_fmamk_f32", "v_fmaak_f32", "v_swap_b32"}
DPP_ROW_NEWBCAST_ONLY = {"v_mov_b64"} | {n for n, o in OPS.items() if o.wide}
DPP_ROW_NEWBCAST_ONLY |= {"v_cvt_pk_f32_fp8", "v_cvt_pk_f32_bf8"}  # a 64-bit result: llvm-mc treats them alike


def all_mnemonics() -> list[str]:
    """Every mnemonic the decoder can produce, in a stable order (the core's opcode ids)."""
    names = ["invalid"]
    for table in (SOP2, SOPK, SOP1, SOPC, SOPP, SMEM, VOP1, VOP2, VOPC, VOP3, VOP3P):
        names += table.values()
    names += [m[0] for m in MATRIX_OPS.values()]
    names += [m[0] for m in VOP3PX2.values()]
    names += DS.values()
    names += MUBUF.values()
    names += MTBUF.values()
    names += [f"global_{n}" for n in FLAT.values()]
    names += [f"flat_{n}" for n in FLAT.values() if segment_has(SEG_FLAT, n)]
    names += [f"scratch_{n}" for n in FLAT.values() if segment_has(SEG_SCRATCH, n)]
    seen, out = set(), []
    for n in names:
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out


MNEMONICS = all_mnemonics()
OPCODE_ID = {n: i for i, n in enumerate(MNEMONICS)}


# ---- timing classes (the timing model's view of each opcode; see hkrt/emu/timing.py and docs/perf-model.md)
# The issue classes of the CDNA sequencer: at most one instruction of each class issues per cycle.
# "untimed": the model has no figure for it and refuses to time a launch that issues it.
TIMING_CLASSES = ("salu", "smem", "branch", "internal", "valu", "trans", "valu64", "mfma", "lds", "vmem",
                  "untimed")
_TRANS = {"v_exp_f32", "v_log_f32", "v_rcp_f32", "v_rcp_iflag_f32", "v_rsq_f32", "v_sqrt_f32", "v_sin_f32", "v_cos_f32"}
_VALU64 = {"v_mov_b64", "v_lshlrev_b64", "v_lshrrev_b64", "v_ashrrev_i64", "v_mad_u64_u32", "v_mad_i64_i32",
           "v_lshl_add_u64", "v_mul_lo_u32", "v_mul_hi_u32", "v_mul_hi_i32"}
BRANCHES = ("s_branch", "s_cbranch_scc0", "s_cbranch_scc1", "s_cbranch_vccz", "s_cbranch_vccnz",
            "s_cbranch_execz", "s_cbranch_execnz", "s_cbranch_cdbgsys", "s_cbranch_cdbguser",
            "s_cbranch_cdbgsys_or_user", "s_cbranch_cdbgsys_and_user", "s_setpc_b64", "s_swappc_b64",
            "s_call_b64")
# MFMA cycles on the matrix pipe, 4 per pass (LLVM SISchedule.td, gfx950 model; CDNA4 ISA MFMA table):
# the gfx950 double-rate bf16 shapes take as many passes as the CDNA3 shapes of half their K.
MFMA_CYCLES = {"v_mfma_f32_16x16x32_bf16": 16, "v_mfma_f32_32x32x16_bf16": 32,
               "v_mfma_f32_16x16x16_bf16": 16, "v_mfma_f32_32x32x8_bf16": 32}
# The older layouts and SMFMAC, from the same gfx950 model (SIDPGFX950FullSpeedModel's InstRW lines): 4x4 f32/f16/
# bf16/i8 2 passes, their 16x16 8 and 32x32 16; f64 4x4x4 4 passes, 16x16x4 16; SMFMAC 16x16 4, 32x32 8.
MFMA_CYCLES |= {v[0]: 4 * {4: 2, 16: 8, 32: 16}[v[1]] for v in MAI_BLOCKS.values() if "f64" not in v[0]}
MFMA_CYCLES |= {"v_mfma_f64_4x4x4_4b_f64": 16, "v_mfma_f64_16x16x4_f64": 64}
MFMA_CYCLES |= {v[0]: 4 * {16: 4, 32: 8}[v[1]] for v in SMFMAC.values()}
# The f8f6f4 MFMAs and their scaled forms (CDNA4 ISA §7.1.5 table and Table 28): 32 / 64 cycles when A or B is
# fp8/bf8, half that when both are fp6/bf6/fp4; the table holds the first, core.c's mfma_cycles() halves it.
MFMA_CYCLES.update({name: 32 if m == 16 else 64 for name, m, *_ in (*MAI_F8F6F4.values(), *VOP3PX2.values())})


# ---- hazard classes (strict mode's wait-state rules, hkrt/emu/hazards.c, docs/facts.md §11.3): which row of the
# ISA's "manually inserted wait states" tables an opcode falls into, by its class rather than by name, so that
# an op declared later lands in its row. Bits of the core's OP_HZ table:
HAZARD_CLASSES = ("dgemm", "dot", "permlane_swap", "fma64", "div_fmas", "fp8_dst_sel", "fp4_dst_sel")
_FP8_DST_SEL = re.compile(r"v_cvt_(scalef32_)?(pk_|sr_)(fp8|bf8)_")  # write a byte (pair) op_sel picks
_FP4_DST_SEL = re.compile(r"v_cvt_scalef32_sr_pk_fp4_")                # SR fp4 conversions: every op_sel


def hazard_classes(name: str) -> tuple[str, ...]:
    """The hazard classes of a mnemonic (a subset of HAZARD_CLASSES)."""
    out = []
    if name.startswith("v_mfma_f64_"):  # double-precision matrix ops: the ISA's DGEMM rows, not the XDL ones
        out.append("dgemm")
    if name.startswith("v_dot"):
        out.append("dot")
    if name.startswith("v_permlane") and name.endswith("_swap_b32"):
        out.append("permlane_swap")
    if name in ("v_fma_f64", "v_fmac_f64"):
        out.append("fma64")
    if name.startswith("v_div_fmas_"):
        out.append("div_fmas")
    if _FP8_DST_SEL.match(name):
        out.append("fp8_dst_sel")
    if _FP4_DST_SEL.match(name):
        out.append("fp4_dst_sel")
    return tuple(out)


# Listed only so that the core can refuse them by name, with the reason (docs/facts.md §13.2, §13.3).
REFUSED = {n for n, op in OPS.items() if op.handler == "refused"}
# Run for some operands only, the others refused by name: hardware registers other than MODE, STATUS, TRAPSTS,
# HW_ID and XCC_ID (docs/facts.md §13.4).
PARTIAL = {"s_getreg_b32", "s_setreg_b32", "s_setreg_imm32_b32"}
# instructions without an effect the emulator models whose cost the timing model was not given
UNTIMED_NOPS = {n for n, op in OPS.items() if op.untimed}
_MAI_NAMES = {m[0] for m in (*MATRIX_OPS.values(), *VOP3PX2.values())}
_SMEM_NAMES = set(SMEM.values())


def timing_class(name: str) -> tuple[str, int]:
    """(issue class, matrix-pipe cycles or 0) of a mnemonic."""
    if name in UNTIMED_NOPS:
        return "untimed", 0
    if name in MFMA_CYCLES:
        return "mfma", MFMA_CYCLES[name]
    if name in _MAI_NAMES:  # a matrix op whose pass count the model was not given
        return "untimed", 0
    if name in _SMEM_NAMES:
        return "smem", 0
    if name.startswith("ds_"):
        return "lds", 0
    if name.startswith(("buffer_", "tbuffer_", "global_", "flat_", "scratch_")):
        return "vmem", 0
    if name in BRANCHES:
        return "branch", 0
    if name in SOPP.values():
        return "internal", 0
    if name.startswith("s_"):
        return "salu", 0
    if name in _TRANS:
        return "trans", 0
    if name in _VALU64 or name.endswith(("_i64", "_u64", "_f64")):
        return "valu64", 0
    return "valu", 0
