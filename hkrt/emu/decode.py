"""Decode gfx950 machine code into fixed-size records the execution core runs.

Each instruction becomes one `INSN_DTYPE` record (the C struct `insn_t` in core.c has the
same layout). Operand codes keep the ISA's 9-bit source numbering for scalar operands
(SGPRs 0-101, VCC 106/107, M0 124, EXEC 126/127, inline constants 128-208 and 240-248,
src_shared_base 235, literal 255) and put VGPR n at 256+n and AGPR n at 512+n.
Encoding facts: docs/facts.md (§1.7, §3.4, §5.5, §6.2), checked with llvm-mc.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from . import isa

INSN_DTYPE = np.dtype([
    ("op", "<u2"), ("size", "<u2"), ("pc", "<u4"),
    ("dst", "<i2"), ("sdst", "<i2"), ("src0", "<i2"), ("src1", "<i2"), ("src2", "<i2"), ("src3", "<i2"),
    ("literal", "<u4"), ("imm", "<i4"), ("imm2", "<i4"), ("flags", "<u4"), ("flags2", "<u4"),
])
assert INSN_DTYPE.itemsize == 40

NONE = -1
VGPR, AGPR = 256, 512
LITERAL, VCC, M0, EXEC = 255, 106, 124, 126
SDWA_SRC, DPP_SRC = 0xF9, 0xFA

# flags bits (mirrored in core.c through the generated header)
FLAGS = {
    "ABS": 0, "NEG": 3, "CLAMP": 6, "OMOD": 7, "OPSEL": 9, "NEG_HI": 13, "OPSEL_HI": 16,
    "SDWA": 19, "DPP": 20, "VOP3": 21, "OFFEN": 22, "IDXEN": 23, "LDS": 24, "SC0": 25, "SC1": 26,
    "NT": 27, "GDS": 28, "SVE": 29,
}
# flags2 bits for SDWA
SDWA_FIELDS = {"DST_SEL": 0, "DST_UNUSED": 3, "SRC0_SEL": 5, "SRC0_SEXT": 8, "SRC0_NEG": 9, "SRC0_ABS": 10,
               "SRC1_SEL": 11, "SRC1_SEXT": 14, "SRC1_NEG": 15, "SRC1_ABS": 16, "CLAMP": 17, "OMOD": 18}

# Ops whose VGPR operands are AGPRs by definition (no ACC bit in their encoding).
_VOP2_AS_VOP3, _VOP1_AS_VOP3 = 0x100, 0x140


@dataclass
class Program:
    """A decoded kernel: records, their text, and a map from byte offset to record index."""
    name: str
    base: int                 # virtual address of the first instruction
    insns: np.ndarray         # INSN_DTYPE records
    text: list[str]           # one disassembly line per record
    index: np.ndarray         # int32, (byte offset from base) // 4 -> record index, -1 inside an instruction

    def at(self, pc: int) -> str:
        i = int(self.index[(pc - self.base) // 4]) if 0 <= pc - self.base < 4 * len(self.index) else -1
        return self.text[i] if i >= 0 else "<no instruction here>"


def _sext(v: int, bits: int) -> int:
    return v - (1 << bits) if v & (1 << (bits - 1)) else v


def operand_name(code: int) -> str:
    if code < 0:
        return "off"
    if code >= AGPR:
        return f"a{code - AGPR}"
    if code >= VGPR:
        return f"v{code - VGPR}"
    if code <= 101:
        return f"s{code}"
    special = {102: "flat_scratch_lo", 103: "flat_scratch_hi", 106: "vcc_lo", 107: "vcc_hi", 124: "m0",
               126: "exec_lo", 127: "exec_hi", 235: "src_shared_base", 236: "src_shared_limit",
               237: "src_private_base", 238: "src_private_limit", 251: "vccz", 252: "execz", 253: "scc",
               255: "lit", 240: "0.5", 241: "-0.5", 242: "1.0", 243: "-1.0", 244: "2.0", 245: "-2.0",
               246: "4.0", 247: "-4.0", 248: "0.15915494"}
    if code in special:
        return special[code]
    if 128 <= code <= 192:
        return str(code - 128)
    if 193 <= code <= 208:
        return str(192 - code)
    return f"?{code}"


class _Rec:
    """Builder for one record."""
    __slots__ = ("op", "size", "dst", "sdst", "src", "literal", "imm", "imm2", "flags", "flags2", "name")

    def __init__(self, name: str, size: int):
        self.name = name
        self.op = isa.OPCODE_ID.get(name, 0)
        self.size = size
        self.dst = self.sdst = NONE
        self.src = [NONE, NONE, NONE, NONE]
        self.literal = self.imm = self.imm2 = self.flags = self.flags2 = 0


def _literal(words, i, rec: _Rec, *codes):
    """Attach the trailing 32-bit literal if any source uses code 255."""
    if LITERAL in codes:
        if i + 1 >= len(words):
            raise ValueError("literal runs past the end of the code")
        rec.literal = words[i + 1]
        rec.size += 4


def decode_one(words: list[int], i: int) -> _Rec:
    """Decode the instruction starting at words[i]."""
    w0 = words[i]
    w1 = words[i + 1] if i + 1 < len(words) else 0
    top2 = w0 >> 30
    if top2 == 0b10:  # scalar ALU / program control
        if (w0 >> 23) == 0b101111101:
            r = _Rec(isa.SOP1.get((w0 >> 8) & 0xFF, "invalid"), 4)
            r.dst, r.src[0] = (w0 >> 16) & 0x7F, w0 & 0xFF
            _literal(words, i, r, r.src[0])
        elif (w0 >> 23) == 0b101111110:
            r = _Rec(isa.SOPC.get((w0 >> 16) & 0x7F, "invalid"), 4)
            r.src[0], r.src[1] = w0 & 0xFF, (w0 >> 8) & 0xFF
            _literal(words, i, r, r.src[0], r.src[1])
        elif (w0 >> 23) == 0b101111111:
            r = _Rec(isa.SOPP.get((w0 >> 16) & 0x7F, "invalid"), 4)
            r.imm = _sext(w0 & 0xFFFF, 16)
        elif (w0 >> 28) == 0b1011:
            r = _Rec(isa.SOPK.get((w0 >> 23) & 0x1F, "invalid"), 4)
            r.dst = (w0 >> 16) & 0x7F
            r.src[0] = r.dst
            r.imm = w0 & 0xFFFF
            if r.name == "s_setreg_imm32_b32":  # its data is a trailing literal; SDST is unused
                r.dst = r.src[0] = NONE
                _literal(words, i, r, LITERAL)
        else:
            r = _Rec(isa.SOP2.get((w0 >> 23) & 0x7F, "invalid"), 4)
            r.dst, r.src[0], r.src[1] = (w0 >> 16) & 0x7F, w0 & 0xFF, (w0 >> 8) & 0xFF
            _literal(words, i, r, r.src[0], r.src[1])
        return r
    if top2 == 0b00 or top2 == 0b01:  # VOP1 / VOP2 / VOPC (bit 31 clear)
        if (w0 >> 25) == 0b0111111:
            r = _Rec(isa.VOP1.get((w0 >> 9) & 0xFF, "invalid"), 4)
            r.dst = VGPR + ((w0 >> 17) & 0xFF)
            if r.name == "v_readfirstlane_b32":
                r.dst = (w0 >> 17) & 0xFF
            r.src[0] = w0 & 0x1FF
            if r.name == "v_accvgpr_mov_b32":
                r.dst += AGPR - VGPR
                r.src[0] += AGPR - VGPR
        elif (w0 >> 25) == 0b0111110:
            r = _Rec(isa.VOPC.get((w0 >> 17) & 0xFF, "invalid"), 4)
            r.dst = VCC
            r.src[0], r.src[1] = w0 & 0x1FF, VGPR + ((w0 >> 9) & 0xFF)
        else:
            r = _Rec(isa.VOP2.get((w0 >> 25) & 0x3F, "invalid"), 4)
            r.dst = VGPR + ((w0 >> 17) & 0xFF)
            r.src[0], r.src[1] = w0 & 0x1FF, VGPR + ((w0 >> 9) & 0xFF)
            if r.name in ("v_cndmask_b32", "v_addc_co_u32", "v_subb_co_u32", "v_subbrev_co_u32"):
                r.src[2] = VCC
            if r.name in ("v_add_co_u32", "v_sub_co_u32", "v_subrev_co_u32", "v_addc_co_u32",
                          "v_subb_co_u32", "v_subbrev_co_u32"):
                r.sdst = VCC
            if r.name in isa.VOP2_ACCUMULATE:
                r.src[2] = r.dst
            if r.name in isa.VOP2_LITERAL_K:  # the constant K always follows; it takes the place of a source
                k = isa.VOP2_LITERAL_K[r.name]
                r.src[k:k] = [LITERAL]
                r.src = r.src[:4]
                if i + 1 >= len(words):
                    raise ValueError("literal runs past the end of the code")
                r.literal, r.size = words[i + 1], 8
                return r
        if r.src[0] == SDWA_SRC:
            _sdwa(r, w1)
        elif r.src[0] == DPP_SRC:
            _dpp(r, w1)
        else:
            _literal(words, i, r, r.src[0])
        return r
    fmt6 = w0 >> 26
    if fmt6 == 0b110000:
        return _smem(w0, w1)
    if fmt6 == 0b110100:
        if (w0 >> 23) == 0b110100111:
            if (w0 >> 16) & 0x7F == _LD_SCALE and i + 3 < len(words) and words[i + 2] >> 23 == 0b110100111 \
                    and (words[i + 2] >> 16) & 0x7F in isa.VOP3PX2:
                return _vop3px2(w0, w1, words[i + 2], words[i + 3])
            return _vop3p(w0, w1)
        return _vop3(w0, w1)
    if fmt6 == 0b110110:
        return _ds(w0, w1)
    if fmt6 == 0b111000:
        return _mubuf(w0, w1)
    if fmt6 == 0b111010:
        return _mtbuf(w0, w1)
    if fmt6 == 0b110111:
        return _flat(w0, w1)
    r = _Rec("invalid", 4)
    return r


def _sdwa(r: _Rec, w1: int) -> None:
    r.size = 8
    r.flags |= 1 << FLAGS["SDWA"]
    src0 = w1 & 0xFF
    r.src[0] = src0 if (w1 >> 23) & 1 else VGPR + src0
    f = SDWA_FIELDS
    bits = {"SRC0_SEL": (w1 >> 16) & 7, "SRC0_SEXT": (w1 >> 19) & 1, "SRC0_NEG": (w1 >> 20) & 1,
            "SRC0_ABS": (w1 >> 21) & 1, "SRC1_SEL": (w1 >> 24) & 7, "SRC1_SEXT": (w1 >> 27) & 1,
            "SRC1_NEG": (w1 >> 28) & 1, "SRC1_ABS": (w1 >> 29) & 1}
    if r.name.startswith("v_cmp"):
        if (w1 >> 15) & 1:
            r.dst = (w1 >> 8) & 0x7F
        if (w1 >> 31) & 1:
            r.src[1] -= VGPR  # src1 is an SGPR
    else:
        bits.update({"DST_SEL": (w1 >> 8) & 7, "DST_UNUSED": (w1 >> 11) & 3, "CLAMP": (w1 >> 13) & 1,
                     "OMOD": (w1 >> 14) & 3})
        if (w1 >> 31) & 1:
            r.src[1] -= VGPR
    if "DST_SEL" not in bits:
        bits["DST_SEL"] = 6  # DWORD
    for k, v in bits.items():
        r.flags2 |= v << f[k]


def _dpp(r: _Rec, w1: int) -> None:
    """The DPP word (docs/facts.md §6.4). imm keeps bits 31:8 as they are (DPP_CTRL 8:0, BOUND_CTRL 11,
    BANK_MASK 19:16, ROW_MASK 23:20); the neg/abs bits go where VOP3 keeps them, so the core's source
    modifiers apply them to the fetched values."""
    r.size = 8
    r.flags |= 1 << FLAGS["DPP"]
    r.src[0] = VGPR + (w1 & 0xFF)
    r.imm = w1 >> 8
    r.flags |= (((w1 >> 20) & 1) | ((w1 >> 22) & 1) << 1) << FLAGS["NEG"]
    r.flags |= (((w1 >> 21) & 1) | ((w1 >> 23) & 1) << 1) << FLAGS["ABS"]


def dpp_fields(imm: int) -> dict:
    """The DPP word's fields from a record's imm (see _dpp)."""
    return {"dpp_ctrl": imm & 0x1FF, "bound_ctrl": (imm >> 11) & 1, "bank_mask": (imm >> 16) & 0xF,
            "row_mask": (imm >> 20) & 0xF}


def _smem(w0: int, w1: int) -> _Rec:
    r = _Rec(isa.SMEM.get((w0 >> 18) & 0xFF, "invalid"), 8)
    r.dst = (w0 >> 6) & 0x7F
    r.src[0] = 2 * (w0 & 0x3F)
    imm, soe = (w0 >> 17) & 1, (w0 >> 14) & 1
    if imm:
        r.imm = _sext(w1 & 0x1FFFFF, 21)
        r.src[1] = (w1 >> 25) & 0x7F if soe else NONE
    else:  # the offset SGPR: SOFFSET when SOE is set, else the OFFSET field's low bits
        r.src[1] = (w1 >> 25) & 0x7F if soe else w1 & 0x7F
    if (w0 >> 16) & 1:
        r.flags |= 1 << FLAGS["SC0"]
    return r


def _vop3(w0: int, w1: int) -> _Rec:
    op = (w0 >> 16) & 0x3FF
    if op < 0x100:
        name = isa.VOPC.get(op, "invalid")
    elif op < 0x140:
        name = isa.VOP2.get(op - _VOP2_AS_VOP3, "invalid")
    elif op < 0x1C0:
        name = isa.VOP1.get(op - _VOP1_AS_VOP3, "invalid")
    else:
        name = isa.VOP3.get(op, "invalid")
    r = _Rec(name, 8)
    r.flags |= 1 << FLAGS["VOP3"]
    vdst = w0 & 0xFF
    r.src[0], r.src[1], r.src[2] = w1 & 0x1FF, (w1 >> 9) & 0x1FF, (w1 >> 18) & 0x1FF
    if name in isa.VOP3B:
        r.sdst = (w0 >> 8) & 0x7F
    else:
        r.flags |= ((w0 >> 8) & 7) << FLAGS["ABS"]
        r.flags |= ((w0 >> 11) & 0xF) << FLAGS["OPSEL"]
    r.flags |= ((w0 >> 15) & 1) << FLAGS["CLAMP"]
    r.flags |= ((w1 >> 27) & 3) << FLAGS["OMOD"]
    r.flags |= ((w1 >> 29) & 7) << FLAGS["NEG"]
    if op < 0x100 or name in ("v_readlane_b32", "v_readfirstlane_b32"):
        r.dst = vdst  # SGPR destination
    else:
        r.dst = VGPR + vdst
    if name == "v_accvgpr_mov_b32":
        r.dst += AGPR - VGPR
        r.src[0] += AGPR - VGPR
    # Two-source VOP2/VOP1/VOPC forms leave unused fields; only ops with three sources read src2.
    if op < 0x1C0 and name not in ("v_cndmask_b32", "v_addc_co_u32", "v_subb_co_u32", "v_subbrev_co_u32") \
            and name not in isa.VOP2_ACCUMULATE:
        r.src[2] = NONE
    if name in isa.VOP2_ACCUMULATE:
        r.src[2] = r.dst
    if 0x140 <= op < 0x1C0:
        r.src[1] = NONE
    if name in isa.VOP3_TWO_SOURCES:
        r.src[2] = NONE
    return r


def _vop3p(w0: int, w1: int) -> _Rec:
    op = (w0 >> 16) & 0x7F
    srcs = [w1 & 0x1FF, (w1 >> 9) & 0x1FF, (w1 >> 18) & 0x1FF]
    if op in isa.MATRIX_OPS:
        r = _Rec(isa.MATRIX_OPS[op][0], 8)
        acc_cd = (w0 >> 15) & 1
        r.dst = (AGPR if acc_cd else VGPR) + (w0 & 0xFF)
        a_acc, b_acc = (w1 >> 27) & 1, (w1 >> 28) & 1
        r.src[0] = srcs[0] + (AGPR - VGPR if a_acc and srcs[0] >= VGPR else 0)
        r.src[1] = srcs[1] + (AGPR - VGPR if b_acc and srcs[1] >= VGPR else 0)
        # C shares D's register file; an SMFMAC's SRC2 (its compression indices) is always a VGPR
        sparse = op in isa.SMFMAC
        r.src[2] = srcs[2] + (AGPR - VGPR if acc_cd and not sparse and srcs[2] >= VGPR else 0)
        r.imm = ((w0 >> 8) & 7) | (((w0 >> 11) & 0xF) << 4) | (((w1 >> 29) & 7) << 8)  # cbsz | abid | blgp
        return r
    r = _Rec(isa.VOP3P.get(op, "invalid"), 8)
    r.dst = VGPR + (w0 & 0xFF)
    r.src[0], r.src[1], r.src[2] = srcs
    if r.name == "v_accvgpr_read_b32":
        r.src[0] += AGPR - VGPR if r.src[0] >= VGPR else 0
        r.src[1] = r.src[2] = NONE
    elif r.name == "v_accvgpr_write_b32":
        r.dst += AGPR - VGPR
        r.src[1] = r.src[2] = NONE
    elif r.name == "v_mfma_ld_scale_b32":  # two sources, no destination
        r.dst = r.src[2] = NONE
    elif r.name not in isa.VOP3P_THREE_SOURCES:
        r.src[2] = NONE
    r.flags |= ((w0 >> 8) & 7) << FLAGS["NEG_HI"]
    r.flags |= ((w0 >> 11) & 7) << FLAGS["OPSEL"]
    r.flags |= (((w1 >> 27) & 3) | (((w0 >> 14) & 1) << 2)) << FLAGS["OPSEL_HI"]
    r.flags |= ((w0 >> 15) & 1) << FLAGS["CLAMP"]
    r.flags |= ((w1 >> 29) & 7) << FLAGS["NEG"]
    return r


_LD_SCALE = next(op for op, n in isa.VOP3P.items() if n == "v_mfma_ld_scale_b32")


def _vop3px2(w0: int, w1: int, w2: int, w3: int) -> _Rec:
    """A scaled f8f6f4 MFMA (docs/facts.md §1.15): the v_mfma_ld_scale_b32 pair (w0, w1) holds the A and B scale
    operands and their byte selects in OP_SEL/OP_SEL_HI, the MFMA pair (w2, w3) the rest. The record is the
    MFMA's with imm2 = the scale operand codes (A in bits 15:0, B in 31:16) and the byte selects in flags."""
    r = _vop3p(w2, w3)
    r.name = isa.VOP3PX2[(w2 >> 16) & 0x7F][0]
    r.op, r.size = isa.OPCODE_ID[r.name], 16
    r.imm2 = (w1 & 0x1FF) | ((w1 >> 9) & 0x1FF) << 16
    r.flags |= ((w0 >> 11) & 3) << FLAGS["OPSEL"]
    r.flags |= ((w1 >> 27) & 3) << FLAGS["OPSEL_HI"]
    return r


def _ds(w0: int, w1: int) -> _Rec:
    r = _Rec(isa.DS.get((w0 >> 17) & 0xFF, "invalid"), 8)
    acc = AGPR - VGPR if (w0 >> 25) & 1 else 0
    r.imm, r.imm2 = w0 & 0xFF, (w0 >> 8) & 0xFF
    if not r.name.startswith(("ds_read2", "ds_write2", "ds_wrxchg2")):  # single-address ops: one 16-bit offset
        r.imm, r.imm2 = w0 & 0xFFFF, 0
    if (w0 >> 16) & 1:
        r.flags |= 1 << FLAGS["GDS"]
    r.src[0] = VGPR + (w1 & 0xFF)
    r.src[1] = VGPR + ((w1 >> 8) & 0xFF) + acc
    r.src[2] = VGPR + ((w1 >> 16) & 0xFF) + acc
    r.dst = VGPR + ((w1 >> 24) & 0xFF) + acc
    return r


def _buffer(name: str, w0: int, w1: int, flags0, flags1=()) -> _Rec:
    """The operands MUBUF and MTBUF share: the 12-bit offset, VADDR, VDATA (an AGPR with ACC), SRSRC, SOFFSET,
    and the flag bits named in `flags0` (word 0) and `flags1` (word 1)."""
    r = _Rec(name, 8)
    r.imm = w0 & 0xFFF
    for word, named in ((w0, flags0), (w1, flags1)):
        for flag, bit in named:
            r.flags |= ((word >> bit) & 1) << FLAGS[flag]
    r.src[0] = VGPR + (w1 & 0xFF)
    r.dst = VGPR + ((w1 >> 8) & 0xFF) + (AGPR - VGPR if (w1 >> 23) & 1 else 0)
    r.src[1] = 4 * ((w1 >> 16) & 0x1F)
    r.src[2] = (w1 >> 24) & 0xFF
    return r


def _mubuf(w0: int, w1: int) -> _Rec:
    return _buffer(isa.MUBUF.get((w0 >> 18) & 0x7F, "invalid"), w0, w1,
                   (("OFFEN", 12), ("IDXEN", 13), ("SC0", 14), ("SC1", 15), ("LDS", 16), ("NT", 17)))


def _mtbuf(w0: int, w1: int) -> _Rec:
    """MTBUF (docs/facts.md §3.6): MUBUF's operands with a 4-bit OP, DFMT and NFMT in word 0 (put in imm2 as
    DFMT | NFMT << 4) and SC1/NT in word 1."""
    r = _buffer(isa.MTBUF.get((w0 >> 15) & 0xF, "invalid"), w0, w1, (("OFFEN", 12), ("IDXEN", 13), ("SC0", 14)),
                (("SC1", 21), ("NT", 22)))
    r.imm2 = ((w0 >> 19) & 0xF) | ((w0 >> 23) & 7) << 4
    return r


def _flat(w0: int, w1: int) -> _Rec:
    """FLAT, GLOBAL and SCRATCH (docs/facts.md §6.2, §9.5). SCRATCH's bit 13 (SVE) says whether ADDR is used."""
    seg = (w0 >> 14) & 3
    base = isa.FLAT.get((w0 >> 18) & 0x7F)
    prefix = {isa.SEG_FLAT: "flat_", isa.SEG_SCRATCH: "scratch_", isa.SEG_GLOBAL: "global_"}.get(seg)
    name = prefix + base if base and prefix else "invalid"
    r = _Rec(name if name in isa.OPCODE_ID else "invalid", 8)
    acc = AGPR - VGPR if (w1 >> 23) & 1 else 0
    r.imm = w0 & 0xFFF if seg == isa.SEG_FLAT else _sext(w0 & 0x1FFF, 13)
    r.imm2 = seg
    for name_, bit in (("SC0", 16), ("NT", 17), ("SC1", 25)):
        r.flags |= ((w0 >> bit) & 1) << FLAGS[name_]
    sve = seg == isa.SEG_SCRATCH and (w0 >> 13) & 1
    r.flags |= sve << FLAGS["SVE"]
    r.src[0] = VGPR + (w1 & 0xFF) if seg != isa.SEG_SCRATCH or sve else NONE
    r.src[1] = VGPR + ((w1 >> 8) & 0xFF) + acc
    saddr = (w1 >> 16) & 0x7F
    r.src[2] = NONE if saddr == 0x7F or seg == isa.SEG_FLAT else saddr
    r.dst = VGPR + ((w1 >> 24) & 0xFF) + acc
    return r


def _text(r: _Rec) -> str:
    ops = []
    if r.dst != NONE:
        ops.append(operand_name(r.dst))
    for s in r.src:
        if s != NONE:
            ops.append(f"{r.literal:#x}" if s == LITERAL else operand_name(s))
    if r.size == 16:  # a scaled MFMA: its scale operands
        ops += [operand_name(r.imm2 & 0xFFFF), operand_name(r.imm2 >> 16)]
    extra = []
    if r.imm and r.name.split("_")[0] in ("ds", "buffer", "tbuffer", "global", "flat", "scratch", "s"):
        extra.append(f"imm:{r.imm:#x}" if r.imm >= 0 else f"imm:-{-r.imm:#x}")
    if r.flags >> FLAGS["DPP"] & 1:
        d = dpp_fields(r.imm)
        extra.append(f"dpp_ctrl:{d['dpp_ctrl']:#x} row_mask:{d['row_mask']:#x} bank_mask:{d['bank_mask']:#x}"
                     + (" bound_ctrl" if d["bound_ctrl"] else ""))
    return f"{r.name} {', '.join(ops)}{' ' + ' '.join(extra) if extra else ''}".strip()


def decode(code: bytes, base: int = 0, name: str = "?") -> Program:
    """Decode a whole kernel body (linear sweep; code has no embedded data)."""
    n = len(code) // 4
    words = list(struct.unpack_from(f"<{n}I", code))
    recs, texts = [], []
    index = np.full(n, -1, dtype=np.int32)
    i = 0
    while i < n:
        try:
            r = decode_one(words, i)
        except ValueError:
            r = _Rec("invalid", 4)
        if i + r.size // 4 > n:
            r = _Rec("invalid", 4)
        if r.op == 0:
            r.literal = words[i]  # keep the raw words for the error message (imm2 is a signed field)
            r.imm2 = _sext(words[i + 1], 32) if i + 1 < n else 0
        index[i] = len(recs)
        recs.append((r, base + 4 * i))
        texts.append(_text(r) if r.op else f"<unknown encoding {words[i]:#010x}"
                     f"{f' (next word {words[i + 1]:#010x})' if i + 1 < n else ''}>")
        i += r.size // 4
    arr = np.zeros(len(recs), dtype=INSN_DTYPE)
    for k, (r, pc) in enumerate(recs):
        arr[k] = (r.op, r.size, pc, r.dst, r.sdst, *r.src, r.literal, r.imm, r.imm2, r.flags, r.flags2)
    return Program(name=name, base=base, insns=arr, text=texts, index=index)


def c_header() -> str:
    """Opcode ids and flag bits for core.c, generated from the tables above (one source of truth)."""
    lines = ["/* generated by hkrt.emu.decode.c_header(); do not edit */", "#pragma once"]
    for i, n in enumerate(isa.MNEMONICS):
        lines.append(f"#define OP_{n.upper()} {i}")
    lines.append(f"#define OP_COUNT {len(isa.MNEMONICS)}")
    lines.append("static const char *const OP_NAME[OP_COUNT] = {" + ",".join(f'"{n}"' for n in isa.MNEMONICS) + "};")
    for k, v in FLAGS.items():
        lines.append(f"#define F_{k} {v}")
    for k, v in SDWA_FIELDS.items():
        lines.append(f"#define SDWA_{k} {v}")
    for i, cls in enumerate(isa.TIMING_CLASSES):
        lines.append(f"#define TC_{cls.upper()} {i}")
    timing = [isa.timing_class(n) for n in isa.MNEMONICS]
    lines.append("static const unsigned char OP_TCLASS[OP_COUNT] = {" + ",".join(
        str(isa.TIMING_CLASSES.index(cls)) for cls, _ in timing) + "};")
    lines.append("static const unsigned char OP_XDL_CYCLES[OP_COUNT] = {" + ",".join(
        str(cyc) for _, cyc in timing) + "};")
    for i, cls in enumerate(isa.HAZARD_CLASSES):
        lines.append(f"#define HZF_{cls.upper()} {1 << i}")
    lines.append("static const unsigned char OP_HZ[OP_COUNT] = {" + ",".join(
        str(sum(1 << isa.HAZARD_CLASSES.index(h) for h in isa.hazard_classes(n))) for n in isa.MNEMONICS) + "};")
    # registers per lane of an MFMA's (widest) A/B and C/D operands (isa.MATRIX_OPS, isa.VOP3PX2), 0 for other ops
    mai = {m[0]: m[1:] for m in isa.MATRIX_OPS.values()} | {m[0]: m[4:] for m in isa.VOP3PX2.values()}
    for name, k in (("OP_MFMA_AB_REGS", 0), ("OP_MFMA_CD_REGS", 1)):
        lines.append(f"static const unsigned char {name}[OP_COUNT] = {{" + ",".join(
            str(mai[n][k] if n in mai else 0) for n in isa.MNEMONICS) + "};")
    # SMFMAC: A has half of B's registers, SRC2 is one index VGPR and D is the accumulator
    sparse = {m[0] for m in isa.SMFMAC.values()}
    lines.append("static const unsigned char OP_MFMA_SPARSE[OP_COUNT] = {" + ",".join(
        str(int(n in sparse)) for n in isa.MNEMONICS) + "};")
    return "\n".join(lines) + "\n"
