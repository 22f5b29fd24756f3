"""The emulator's coverage of gfx950, measured against LLVM's own instruction list (hkrt/emu/coverage.py).

Prints the figure and the per-format table whatever pytest's capture mode, fails if the figure drops below
today's, and fails if the decoder tables disagree with LLVM about an instruction they list.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emu_harness import assemble_listing  # noqa: E402

from hkrt.emu import coverage, isa  # noqa: E402

# Today's measured coverage, rounded down: raise it as instructions are implemented, never lower it.
COVERAGE_FLOOR = 98.3


@pytest.fixture(scope="module")
def inventory(tc):
    return coverage.inventory(tc.mc, tc.objdump, tc.version)


@pytest.fixture(scope="module")
def statuses(inventory):
    return coverage.assess(inventory.entries)


def test_coverage_figure(statuses, capsys, record_property):
    rep = coverage.report(statuses)
    record_property("gfx950_coverage_percent", round(rep.percent, 2))
    with capsys.disabled():  # shown with or without -s
        print(f"\ngfx950 emulator coverage: {rep.implemented}/{rep.total} compute instructions = {rep.percent:.1f}%")
        print(rep.table(missing=False))
    assert rep.percent >= COVERAGE_FLOOR, f"coverage fell to {rep.percent:.1f}% (floor {COVERAGE_FLOOR}%)"


def test_inventory_is_llvms_gfx950_list(inventory, tc):
    """Anchors at known opcodes, nothing from the graphics formats, and llvm-mc assembles every entry's text
    back to an instruction of the same format, opcode and size (fields the text does not show may differ)."""
    by_key = {(e.fmt, e.op): e.mnemonic for e in inventory.entries}
    assert by_key[("SOPP", 1)] == "s_endpgm" and by_key[("VOP2", 1)] == "v_add_f32_e32"
    assert by_key[("VOP3P", 53)] == "v_mfma_f32_16x16x32_bf16" and by_key[("VOP1.sdwa", 1)] == "v_mov_b32_sdwa"
    assert not [e for e in inventory.entries if e.fmt in coverage.GRAPHICS_FORMATS]
    assert not inventory.objdump_crashes, inventory.objdump_crashes
    # the only instructions LLVM prints without the _e64 suffix that would tell their encoding
    unsuffixed_e64 = {"v_nop", "v_clrexcp"}
    bad = []
    for e, (_, enc) in zip(inventory.entries, assemble_listing(tc.mc, [e.text for e in inventory.entries])):
        words = struct.unpack(f"<{len(enc) // 4}I", enc)
        if e.fmt.endswith(".e64") and e.mnemonic in unsuffixed_e64:
            continue
        if len(words) != len(e.words) or coverage.opcode_of(e.fmt, words) != e.op:
            bad.append(f"{e.fmt} op {e.op}: {e.text} -> {enc.hex()}")
    assert not bad, "\n".join(bad[:40])


def test_tables_decode_like_llvm(statuses):
    """Every encoding both LLVM and the emulator decode gets the same mnemonic and size from both."""
    bad = coverage.decode_mismatches(statuses)
    assert not bad, f"{len(bad)} instructions decode differently from LLVM:\n" + "\n".join(bad[:40])


def test_every_table_entry_is_an_llvm_instruction_the_core_runs(statuses):
    """isa.py lists what the core implements: each of its mnemonics is some LLVM instruction the core runs,
    and no listed instruction is refused by the core, in any of its forms LLVM has (DPP included)."""
    implemented = {s.decoded_as for s in statuses if s.implemented}
    runs = set(isa.MNEMONICS) - {"invalid"} - isa.REFUSED - isa.PARTIAL
    assert runs <= implemented, sorted(runs - implemented)
    assert not isa.REFUSED & implemented, "a refused instruction counts as implemented"
    gaps = coverage.table_gaps(statuses)
    assert not gaps, "\n".join(gaps)


def test_exclusions_name_real_instructions(statuses):
    """Each hand-written exclusion that matches gfx950 carries its reason, and only graphics-only groups are
    excluded (a handful, not a way to raise the figure)."""
    excluded = coverage.excluded_entries(statuses)
    assert sum(len(v) for v in excluded.values()) <= 8, excluded
    for reason in excluded:
        assert len(reason) > 40
