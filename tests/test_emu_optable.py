"""The execution core's opcode table (hkrt/emu/optable.py -> optable.h): every mnemonic isa.py lists is routed
to a handler core.c defines, with the parameters isa.OPS declares, whatever the order of isa.py's tables."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from hkrt.emu import build_core, decode, isa, native, optable

CORE_C = Path(isa.__file__).with_name("core.c").read_text()
ROW = re.compile(r"^  \[OP_(\w+)\] = \{(.*)\},$")


def table_rows() -> list[tuple[str, dict[str, str]]]:
    """The generated header's rows as (opcode name, {field: value}), in the order they are written."""
    rows = []
    for line in optable.c_header().splitlines():
        m = ROW.match(line)
        if m:
            fields = dict(f.strip().lstrip(".").split(" = ") for f in m.group(2).split(","))
            rows.append((m.group(1), fields))
    return rows


def test_every_mnemonic_has_a_handler_core_c_defines():
    assert set(isa.OPS) == set(isa.MNEMONICS)
    defined = set(re.findall(r"^static int (\w+)\(ctx_t \*c, wave_t \*w, const insn_t \*in\) \{", CORE_C, re.M))
    missing = {name: op.handler for name, op in isa.OPS.items() if op.handler not in defined}
    assert not missing, f"handlers core.c does not define: {missing}"


def test_generated_table_agrees_with_isa():
    rows = table_rows()
    ids = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define OP_(\w+) (\d+)", decode.c_header())}
    assert len(rows) == len(isa.MNEMONICS) == ids["COUNT"]
    for name, fields in rows:
        mnemonic = isa.MNEMONICS[ids[name]]
        assert mnemonic.upper() == name
        op = isa.OPS[mnemonic]
        assert fields.pop("run") == op.handler, mnemonic
        assert fields.pop("type", "") == (f"CT_{op.type.upper()}" if op.type else ""), mnemonic
        cond = fields.pop("cond", "0")
        if op.handler == "sopp_branch":
            assert cond == f"BR_{isa.BRANCH_CONDITIONS[op.cond].upper()}", mnemonic
        else:
            assert int(cond) == op.cond, mnemonic
        assert fields.pop("dpp", "DPP_ANY") == optable.dpp_form(mnemonic)
        for field in ("cmpx", "shift", "m", "n", "k", "ab_regs", "cd_regs", "wide", "elem_a", "elem_b", "dwords",
                      "buffer", "scratch", "untimed", "fpmode", "fpround"):
            assert int(fields.pop(field, "0")) == int(getattr(op, field)), (mnemonic, field)
        assert not fields, f"{mnemonic}: fields the test does not know: {fields}"


def test_compare_parameters_follow_the_encoding():
    """A VOPC opcode is its group's base plus the condition code; the declared condition must be that offset,
    the type that of the group, and cmpx that of the group's second half."""
    groups = {}
    for base, ty in ((0x20, "f16"), (0x40, "f32"), (0x60, "f64")):
        groups[base], groups[base + 0x10] = (ty, False), (ty, True)
    for base, ty in ((0xA0, "i16"), (0xA8, "u16"), (0xC0, "i32"), (0xC8, "u32"), (0xE0, "i64"), (0xE8, "u64")):
        groups[base], groups[base + 0x10] = (ty, False), (ty, True)
    classes = {0x10: ("class_f32", False), 0x11: ("class_f32", True), 0x12: ("class_f64", False),
               0x13: ("class_f64", True), 0x14: ("class_f16", False), 0x15: ("class_f16", True)}
    checked = 0
    for opcode, name in isa.VOPC.items():
        op = isa.OPS[name]
        assert op.handler == "valu_compare"
        if op.type.startswith("class"):
            assert classes[opcode] == (op.type, op.cmpx), name
            continue
        base = opcode & ~(0xF if op.type.startswith("f") else 0x7)
        assert groups[base] == (op.type, op.cmpx), name
        assert opcode - base == op.cond, name
        checked += 1
    assert checked == 3 * 2 * 16 + 6 * 2 * 8


def test_scalar_parameters_follow_the_mnemonic():
    ints = ["f", "lt", "eq", "le", "gt", "ne", "ge", "t"]  # CMP_INT's numbering (the VOPC integer codes)
    for name, op in isa.OPS.items():
        m = re.fullmatch(r"s_cmpk?_(eq|lg|gt|ge|lt|le)_(i32|u32|u64)", name)
        if m:
            assert op.cond == ints.index("ne" if m.group(1) == "lg" else m.group(1)), name
            assert op.type == m.group(2), name
        m = re.fullmatch(r"s_lshl(\d)_add_u32", name)
        if m:
            assert op.shift == int(m.group(1)), name
        if op.handler == "sopp_branch":
            assert isa.BRANCH_CONDITIONS[op.cond] == name.removeprefix("s_cbranch_").replace("s_branch", "always")
    for _, (name, m, n, k, ab, cd) in isa.MAI.items():
        suffix = re.fullmatch(r"v_mfma_[fi]32_\d+x\d+x\d+_(\w+)", name).group(1)   # "bf16", "i8", "fp8_bf8", ...
        a, _, b = suffix.partition("_")
        ea, eb = isa.MFMA_ELEMENTS.index(a), isa.MFMA_ELEMENTS.index(b or a)
        assert isa.OPS[name] == isa.Op("valu_mfma", m=m, n=n, k=k, ab_regs=ab, cd_regs=cd, elem_a=ea, elem_b=eb)
    widths = {"f16": 16, "bf16": 16, "i8": 8, "f32": 32, "f64": 64}
    for _, (name, m, n, k, blocks, ab, cd) in isa.MAI_BLOCKS.items():
        el = name.rsplit("_", 1)[1]
        assert isa.OPS[name] == isa.Op("valu_mfma_blocks", m=m, n=n, k=k, ab_regs=ab, cd_regs=cd,
                                       elem_a=isa.MFMA_ELEMENTS.index(el), elem_b=isa.MFMA_ELEMENTS.index(el))
        assert 64 * (32 * ab // widths[el]) // (k * m) == blocks, name   # how the core counts the blocks
    for _, (name, m, n, k, ab, cd) in isa.SMFMAC.items():
        suffix = re.fullmatch(r"v_smfmac_[fi]32_\d+x\d+x\d+_(\w+)", name).group(1)
        a, _, b = suffix.partition("_")
        ea, eb = isa.MFMA_ELEMENTS.index(a), isa.MFMA_ELEMENTS.index(b or a)
        assert isa.OPS[name] == isa.Op("valu_smfmac", m=m, n=n, k=k, ab_regs=ab, cd_regs=cd, elem_a=ea, elem_b=eb)


def test_an_undeclared_mnemonic_is_an_error(monkeypatch):
    ops = dict(isa.OPS)
    del ops["v_add_f32"]
    monkeypatch.setattr(isa, "OPS", ops)
    with pytest.raises(ValueError, match="no handler for 'v_add_f32'"):
        optable.c_header()


def test_a_declaration_of_no_listed_mnemonic_is_an_error(monkeypatch):
    monkeypatch.setattr(isa, "OPS", {**isa.OPS, "v_made_up_b32": isa.Op("valu_bit")})
    with pytest.raises(ValueError, match="v_made_up_b32"):
        optable.c_header()


def test_a_mnemonic_declared_twice_is_an_error():
    with pytest.raises(ValueError, match="v_add_f32 is declared twice"):
        isa._declare("valu_int", "v_add_f32")


def test_the_core_is_rebuilt_when_the_table_changes(monkeypatch, tmp_path):
    """The generated dispatch table is one of the inputs that key the core's cache entry."""
    def key():
        include = tmp_path / f"include{len(list(tmp_path.iterdir()))}"
        include.mkdir()
        for name, text in build_core.generated_headers().items():
            (include / name).write_text(text)
        return native.key(build_core._inputs(include))
    before = key()
    assert key() == before
    monkeypatch.setattr(optable, "c_header", lambda: "/* another table */\n")
    assert key() != before
