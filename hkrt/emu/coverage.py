"""How much of gfx950 the emulator covers, measured against LLVM's own instruction list.

The list (the inventory) comes from the toolchain, never from this repository: every opcode number of every
encoding format, with neutral operand fields, is written into one object file with llvm-mc and disassembled
with llvm-objdump --mcpu=gfx950; what decodes is an instruction. One entry is one (format, opcode) pair, so an
instruction's VOP3 (_e64), DPP and SDWA forms are entries of their own formats. The inventory is cached under
~/.cache/hkrt, keyed by the toolchain's version string and by this file's contents.

An entry is implemented when hkrt.emu.decode decodes the same bytes to the same mnemonic and size, and the
execution core runs it on one wave without reporting it unimplemented. Entries that no compute kernel can
run are excluded by hand (EXCLUDED, with the reason). docs/emulator-coverage.md has the method and figures.

    python -m hkrt.emu.coverage            # per-format table and the missing mnemonics
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import decode, isa, launch
from .machine import Machine

NOP = 0xBF800000         # s_nop 0: resynchronises the disassembler after each candidate
TAIL = 0x00003C00        # the word after each candidate: a literal that fits 16-bit operands too (f16 1.0)
ENDPGM = 0xBF810000
V0_X3 = 0x04020100       # VOP3 second word: src0 = src1 = src2 = v0
V0_X2 = 0x00020100       # src0 = src1 = v0, src2 field 0

# Hand-written: instruction groups LLVM assembles for gfx950 that no compute kernel can run. Patterns match
# the base mnemonic (no _e32/_e64/_dpp/_sdwa suffix).
EXCLUDED = [
    (r"^s_endpgm_ordered_ps_done$", "ends a pixel-shader wave's primitive-ordered (POPS) critical section; "
                                    "the ordering it signals exists only for pixel shaders"),
    (r"^v_interp_", "parameter interpolation: reads the vertex attributes the graphics pipeline puts in LDS "
                    "for a pixel shader (M0 holds their base); a compute dispatch has no such data"),
    (r"^(image_|exp\b)", "image and export instructions: texture sampling and render-target export are "
                         "graphics pipeline stages"),
]

# Formats whose instructions are graphics-only as a whole: enumerated only to show LLVM decodes none of them
# for gfx950 (CDNA has no texture units, exports or interpolators); any hit would be excluded by EXCLUDED.
GRAPHICS_FORMATS = {"MIMG", "EXP", "VINTRP"}


def _candidates() -> list[tuple[str, int, tuple[int, ...]]]:
    """(format, opcode, words) in the order they are tried: for each (format, opcode) the first variant LLVM
    accepts is kept (operand fields some opcodes refuse, e.g. a VGPR where only an SGPR is legal)."""
    out = []

    def add(fmt, ops, *variants):
        for op in ops:
            for v in variants:
                out.append((fmt, op, tuple(w(op) if callable(w) else w for w in v)))

    # scalar: every operand s0 (SOPK/SOPP immediates 0, then 1)
    add("SOP2", range(0x60), (lambda op: 0x80000000 | op << 23,))
    add("SOPK", range(0x1D), (lambda op: 0xB0000000 | op << 23,), (lambda op: 0xB0000001 | op << 23,))
    add("SOP1", range(256), (lambda op: 0xBE800000 | op << 8,))
    add("SOPC", range(128), (lambda op: 0xBF000000 | op << 16,))
    add("SOPP", range(128), (lambda op: 0xBF800000 | op << 16,), (lambda op: 0xBF800001 | op << 16,))
    add("SMEM", range(256), (lambda op: 0xC0020000 | op << 18, 0), (lambda op: 0xC0000000 | op << 18, 0))
    # vector ALU, 32-bit encodings: src0 v0, then s0; vsrc1 and vdst v0
    add("VOP1", range(256), (lambda op: 0x7E000100 | op << 9,), (lambda op: 0x7E000000 | op << 9,))
    add("VOP2", range(0x3E), (lambda op: 0x00000100 | op << 25,), (lambda op: op << 25,))
    add("VOPC", range(256), (lambda op: 0x7C000100 | op << 17,), (lambda op: 0x7C000000 | op << 17,))
    # DPP: identity quad_perm, all rows and banks; row_newbcast for the 64-bit ops that allow only it
    for fmt, base, shift, n in (("VOP1", 0x7E000000, 9, 256), ("VOP2", 0, 25, 0x3E), ("VOPC", 0x7C000000, 17, 256)):
        add(f"{fmt}.dpp", range(n), (lambda op, b=base, s=shift: b | 0xFA | op << s, 0xFF00E400),
            (lambda op, b=base, s=shift: b | 0xFA | op << s, 0xFF015000))
    # SDWA: every select DWORD (VOPC has no destination select; VOP1 no src1 select)
    for fmt, base, shift, n, sdwa in (("VOP1", 0x7E000000, 9, 256, 0x00060600), ("VOP2", 0, 25, 0x3E, 0x06060600),
                                      ("VOPC", 0x7C000000, 17, 256, 0x06060000)):
        add(f"{fmt}.sdwa", range(n), (lambda op, b=base, s=shift: b | 0xF9 | op << s, sdwa))
    # VOP3 encoding: VOPC, VOP2 and VOP1 as _e64 (opcodes below 0x1C0), then VOP3a/b. Sources v0 v0 v0; v0 v0 and
    # a zero src2 field (LLVM refuses a two-source op whose src2 field is not 0); v0 s0; all s0
    for fmt, ops in (("VOPC.e64", range(0x100)), ("VOP2.e64", range(0x100, 0x140)), ("VOP1.e64", range(0x140, 0x1C0)),
                     ("VOP3", range(0x1C0, 0x380))):
        add(fmt, ops, *[(lambda op: 0xD0000000 | op << 16, w1) for w1 in (V0_X3, V0_X2, 0x100, 0)])
    # VOP3P and the matrix ops in its opcode space: sources v0 with the default op_sel_hi (bits that make a matrix
    # op read A and B from AGPRs), then without it; three sources, then two, then one (unused fields 0); all s0
    add("VOP3P", range(128), *[(lambda op, h=h: 0xD3800000 | h << 14 | op << 16, w1 | h * 0x18000000)
                               for h in (1, 0) for w1 in (V0_X3, V0_X2, 0x100)], (lambda op: 0xD3800000 | op << 16, 0))
    # the scaled MFMAs: a v_mfma_ld_scale_b32 prefix and the matrix op (op_sel bit 0 set, as llvm-mc writes it),
    # which llvm-objdump reads as one 16-byte instruction
    add("VOP3PX2", range(128), (0xD3AC0000, 0x00020100, lambda op: 0xD3800800 | op << 16, V0_X3))
    # memory: address, data and destination v0, resource s[0:3], soffset 0; then the GDS bit (GWS ops)
    add("DS", range(256), (lambda op: 0xD8000000 | op << 17, 0), (lambda op: 0xD8010000 | op << 17, 0))
    add("MUBUF", range(128), (lambda op: 0xE0000000 | op << 18, 0x80000000))
    add("MUBUF.lds", range(128), (lambda op: 0xE0010000 | op << 18, 0x80000000))
    add("MTBUF", range(16), (lambda op: 0xE8200000 | op << 15, 0x80000000))  # dfmt 4 (32-bit), nfmt 0
    add("FLAT", range(128), (lambda op: 0xDC000000 | op << 18, 0))  # FLAT has no saddr: the field must be 0
    add("GLOBAL", range(128), (lambda op: 0xDC008000 | op << 18, 0x007F0000), (lambda op: 0xDC008000 | op << 18, 0))
    add("SCRATCH", range(128), (lambda op: 0xDC006000 | op << 18, 0x007F0000),  # vaddr (SVE), no saddr
        (lambda op: 0xDC004000 | op << 18, 0), (lambda op: 0xDC004000 | op << 18, 0x007F0000))
    add("MIMG", range(128), (lambda op: 0xF0000000 | op << 18, 0))
    add("EXP", range(1), (0xC400000F, 0))
    add("VINTRP", range(4), (lambda op: 0xD4000000 | op << 16,))
    return out


# where each format keeps its opcode: (word, shift, mask)
_OPCODE_FIELD = {"SOP2": (0, 23, 0x7F), "SOPK": (0, 23, 0x1F), "SOP1": (0, 8, 0xFF), "SOPC": (0, 16, 0x7F),
                 "SOPP": (0, 16, 0x7F), "SMEM": (0, 18, 0xFF), "VOP1": (0, 9, 0xFF), "VOP2": (0, 25, 0x3F),
                 "VOPC": (0, 17, 0xFF), "VOP3": (0, 16, 0x3FF), "VOP3P": (0, 16, 0x7F), "VOP3PX2": (2, 16, 0x7F),
                 "DS": (0, 17, 0xFF), "MUBUF": (0, 18, 0x7F), "MTBUF": (0, 15, 0xF), "FLAT": (0, 18, 0x7F),
                 "GLOBAL": (0, 18, 0x7F), "SCRATCH": (0, 18, 0x7F)}


def opcode_of(fmt: str, words) -> int:
    """The opcode number an encoding of format `fmt` (or of its .dpp/.sdwa/.e64/.lds form) holds."""
    base = fmt.split(".")[0]
    word, shift, mask = _OPCODE_FIELD["VOP3" if fmt.endswith(".e64") else base]
    return (words[word] >> shift) & mask


@dataclass(frozen=True)
class Entry:
    fmt: str
    op: int
    mnemonic: str      # as llvm-objdump prints it, e.g. v_add_f32_e64
    text: str          # the whole disassembly line
    words: tuple       # the encoding LLVM decoded (with any literal)

    @property
    def base(self) -> str:
        return re.sub(r"_(e32|e64|sdwa|dpp)$", "", self.mnemonic)


# "<text> // <offset>: <words>", then a branch's target as "<.text+0x10>"
_LINE = re.compile(r"^\s+(\S.*?)\s*//\s*([0-9A-Fa-f]+):((?:\s+[0-9A-Fa-f]{8})+)\s*(<[^>]*>)?\s*$")


def _disassemble(words: list[int], mc: str, objdump: str) -> dict[int, tuple[str, int]] | None:
    """byte offset -> (text, size in bytes) of every instruction llvm-objdump decodes in `words`;
    None if llvm-objdump crashes on them (it does on a few encodings)."""
    with tempfile.TemporaryDirectory(prefix="hkrt-cov-") as tmp:
        src, obj = os.path.join(tmp, "all.s"), os.path.join(tmp, "all.o")
        with open(src, "w") as fh:
            fh.write(".text\n")
            for i in range(0, len(words), 8):
                fh.write(".long " + ",".join(f"{w:#010x}" for w in words[i:i + 8]) + "\n")
        env = {**os.environ, "HKRT_MOUNT": tmp}
        res = subprocess.run([mc, "-arch=amdgcn", "-mcpu=gfx950", "-filetype=obj", "-o", obj, src],
                             capture_output=True, text=True, env=env, cwd=tmp)
        if res.returncode != 0:
            raise RuntimeError(f"llvm-mc failed:\n{res.stderr[-2000:]}")
        res = subprocess.run([objdump, "-d", "--mcpu=gfx950", obj], capture_output=True, text=True, env=env,
                             cwd=tmp)
        if res.returncode != 0:
            return None
    out = {}
    for line in res.stdout.splitlines():
        m = _LINE.match(line)
        if m and not m.group(1).startswith(".long"):
            out[int(m.group(2), 16)] = (m.group(1), 4 * len(m.group(3).split()))
    return out


def _decode_all(cands, mc: str, objdump: str, crashed: list) -> list[tuple[str, int] | None]:
    """LLVM's reading (text, size) of each candidate's first instruction, or None. Candidates llvm-objdump
    crashes on are found by halving the batch (a handful of extra runs) and appended to `crashed`."""
    words, starts = [], []
    for _, _, ws in cands:
        starts.append(4 * len(words))
        # TAIL is the literal of an op that takes one; an 8-byte misread of the rest swallows at most one nop
        words += [*ws, TAIL, NOP, NOP]
    decoded = _disassemble(words, mc, objdump)
    if decoded is not None:
        return [decoded.get(s) for s in starts]
    if len(cands) == 1:
        crashed.append(cands[0])
        return [None]
    half = len(cands) // 2
    return _decode_all(cands[:half], mc, objdump, crashed) + _decode_all(cands[half:], mc, objdump, crashed)


def _key(version: str) -> str:
    """The cache key: the toolchain's version and this file (its candidates and its reading of objdump)."""
    return hashlib.sha256(version.encode() + b"\0" + Path(__file__).read_bytes()).hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hkrt" / "isa-inventory"


@dataclass
class Inventory:
    entries: list[Entry]
    objdump_crashes: list[str]   # "FORMAT op N: words" of candidates llvm-objdump crashed on, no variant decoded


def inventory(mc: str, objdump: str, version: str, cache_dir: Path | None = None) -> Inventory:
    """Every (format, opcode) llvm-objdump decodes for gfx950, from one llvm-mc and one llvm-objdump run
    (or the cache of a previous run with the same toolchain version)."""
    cands = _candidates()
    path = (cache_dir or default_cache_dir()) / f"inventory-{_key(version)}.json"
    if path.exists():
        raw = json.loads(path.read_text())
        return Inventory([Entry(e["fmt"], e["op"], e["mnemonic"], e["text"], tuple(e["words"]))
                          for e in raw["entries"]], raw["objdump_crashes"])
    crashed: list = []
    entries, seen = [], set()
    for (fmt, op, ws), got in zip(cands, _decode_all(cands, mc, objdump, crashed)):
        if (fmt, op) in seen or got is None:
            continue
        text, size = got
        if "/*" in text:
            continue  # the disassembler's own objection, e.g. "DP ALU dpp only supports row_newbcast"
        mnemonic = text.split()[0]
        # a DPP/SDWA/LDS/scaled candidate counts only if LLVM read it as that form (not, say, its first word)
        if fmt.endswith(".dpp") and not mnemonic.endswith("_dpp") or fmt.endswith(".sdwa") and not \
                mnemonic.endswith("_sdwa") or fmt == "MUBUF.lds" and not text.endswith(" lds") or \
                fmt == "VOP3PX2" and size != 16:
            continue
        if size < 4 * len(ws):
            continue  # LLVM took only part of the candidate: that part belongs to another format
        seen.add((fmt, op))
        entries.append(Entry(fmt, op, mnemonic, text, (*ws, TAIL, NOP)[:size // 4]))
    crashes = [f"{fmt} op {op}: {' '.join(f'{w:08x}' for w in ws)}" for fmt, op, ws in crashed
               if (fmt, op) not in seen]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"toolchain": version, "objdump_crashes": crashes, "entries": [
        {"fmt": e.fmt, "op": e.op, "mnemonic": e.mnemonic, "text": e.text, "words": list(e.words)}
        for e in entries]}, indent=0))
    tmp.replace(path)
    for stale in path.parent.glob("inventory-*.json"):  # other toolchains' or older versions' lists
        if stale != path:
            stale.unlink(missing_ok=True)
    return Inventory(entries, crashes)


def exclusion(entry: Entry) -> str | None:
    """Why an entry is not a compute instruction, or None."""
    for pattern, reason in EXCLUDED:
        if re.search(pattern, entry.base):
            return reason
    return None


# ------------------------------------------------------------------------------------------------ the emulator

def _execute(words: tuple, machine: Machine) -> tuple[int, str]:
    """Run one instruction then s_endpgm on one wave with zeroed registers: (core error code, message)."""
    mod = launch.core()
    ffi, lib = mod.ffi, mod.lib
    prog = decode.decode(struct.pack(f"<{len(words) + 1}I", *words, ENDPGM), 0x1000, "coverage")
    L, keep = launch.new_launch(ffi, prog, machine.memory)  # noqa: F841 (keep holds the buffers L points to)
    L.grid, L.block, L.lds_bytes, L.max_insns = [1, 1, 1], [64, 1, 1], 1024, 16
    s = ffi.new("uint32_t[]", 128)
    s[126] = s[127] = 0xFFFFFFFF  # EXEC: all lanes
    v = ffi.new("uint32_t[]", 512 * 64)
    lds = ffi.new("uint8_t[]", 1024)
    rc = lib.emu_run_wave_state(L, s, v, ffi.new("int32_t *", 0), lds)
    return rc, ffi.string(L.err_msg).decode() if rc else ""


E_UNIMPL = 3  # core.c: the core has no implementation of this instruction (or of this form of it)


@dataclass
class Status:
    entry: Entry
    excluded: str | None = None
    decoded_as: str = "invalid"   # the emulator decoder's mnemonic
    implemented: bool = False
    problem: str = ""             # a decode mismatch with LLVM, or why the core refused


def assess(entries: list[Entry]) -> list[Status]:
    machine = Machine(1 << 20)
    out = []
    for e in entries:
        st = Status(e, exclusion(e))
        prog = decode.decode(struct.pack(f"<{len(e.words)}I", *e.words), 0, "coverage")
        rec = prog.insns[0]
        st.decoded_as = isa.MNEMONICS[int(rec["op"])]
        if st.decoded_as != "invalid":
            if st.decoded_as != e.base or int(rec["size"]) != 4 * len(e.words):
                st.problem = f"decodes as {st.decoded_as} ({int(rec['size'])} bytes), LLVM: {e.text}"
            else:
                rc, msg = _execute(e.words, machine)
                st.implemented = rc != E_UNIMPL
                st.problem = "" if st.implemented else f"core: {msg}"
        out.append(st)
    return out


def decode_mismatches(statuses: list[Status]) -> list[str]:
    return [f"{s.entry.fmt} op {s.entry.op}: {s.problem}" for s in statuses if s.problem.startswith("decodes as")]


def emulator_only(inv: Inventory) -> list[str]:
    """Forms LLVM decodes in none of the variants tried but the emulator's decoder accepts (e.g. a DPP or SDWA
    form the ISA does not have): harmless when the core then refuses them, listed so that none goes unseen."""
    known = {(e.fmt, e.op) for e in inv.entries}
    crashed = {c.split(":")[0] for c in inv.objdump_crashes}
    out, tried = [], set()
    for fmt, op, ws in _candidates():
        if (fmt, op) in known or (fmt, op) in tried or f"{fmt} op {op}" in crashed:
            continue
        tried.add((fmt, op))
        name = isa.MNEMONICS[int(decode.decode(struct.pack(f"<{len(ws)}I", *ws), 0, "x").insns[0]["op"])]
        if name != "invalid":
            out.append(f"{fmt} {name}")
    return out


def table_gaps(statuses: list[Status]) -> list[str]:
    """Instructions isa.py lists (so the core should run them) that the core refuses, DPP forms included; the
    refusals isa.py declares (isa.REFUSED, isa.PARTIAL) are not gaps."""
    return [f"{s.entry.fmt} op {s.entry.op} {s.entry.mnemonic}: {s.problem}" for s in statuses
            if s.problem.startswith("core:") and s.decoded_as not in isa.REFUSED | isa.PARTIAL]


FORMAT_ORDER = ["SOP2", "SOPK", "SOP1", "SOPC", "SOPP", "SMEM", "VOP1", "VOP2", "VOPC", "VOP1.dpp", "VOP2.dpp",
                "VOPC.dpp", "VOP1.sdwa", "VOP2.sdwa", "VOPC.sdwa", "VOP1.e64", "VOP2.e64", "VOPC.e64", "VOP3", "VOP3P",
                "VOP3PX2", "DS", "MUBUF",
                "MUBUF.lds", "MTBUF", "FLAT", "GLOBAL", "SCRATCH", "MIMG", "EXP", "VINTRP"]


@dataclass
class Report:
    rows: list[tuple[str, int, int, int, list[str]]]   # format, LLVM entries, compute, implemented, missing

    @property
    def total(self) -> int:
        return sum(r[2] for r in self.rows)

    @property
    def implemented(self) -> int:
        return sum(r[3] for r in self.rows)

    @property
    def percent(self) -> float:
        return 100.0 * self.implemented / self.total if self.total else 0.0

    def table(self, missing: bool = True) -> str:
        lines = [f"{'format':<10} {'LLVM':>5} {'compute':>7} {'implemented':>11} {'%':>6}"]
        for fmt, n, comp, impl, miss in self.rows:
            pct = f"{100.0 * impl / comp:.1f}" if comp else "-"
            lines.append(f"{fmt:<10} {n:>5} {comp:>7} {impl:>11} {pct:>6}")
        lines.append(f"{'total':<10} {sum(r[1] for r in self.rows):>5} {self.total:>7} {self.implemented:>11} "
                     f"{self.percent:>6.1f}")
        if missing:
            for fmt, _, _, _, miss in self.rows:
                if miss:
                    lines.append(f"\n{fmt} missing ({len(miss)}): " + " ".join(miss))
        return "\n".join(lines)


def report(statuses: list[Status]) -> Report:
    by_fmt = defaultdict(list)
    for s in statuses:
        by_fmt[s.entry.fmt].append(s)
    rows = []
    for fmt in FORMAT_ORDER + sorted(set(by_fmt) - set(FORMAT_ORDER)):
        ss = by_fmt.get(fmt, [])
        comp = [s for s in ss if not s.excluded]
        rows.append((fmt, len(ss), len(comp), sum(s.implemented for s in comp),
                     [s.entry.mnemonic for s in comp if not s.implemented]))
    return Report(rows)


def excluded_entries(statuses: list[Status]) -> dict[str, list[str]]:
    """reason -> mnemonics excluded for it."""
    out = defaultdict(list)
    for s in statuses:
        if s.excluded:
            out[s.excluded].append(s.entry.mnemonic)
    return dict(out)


def main() -> int:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # toolchain.py lives at the top of the tree
    import toolchain
    tc = toolchain.find(verbose=False)
    if tc is None or not tc.mc or not tc.objdump:
        print("no gfx950 toolchain with llvm-mc and llvm-objdump: run `make toolchain`", file=sys.stderr)
        return 1
    inv = inventory(tc.mc, tc.objdump, tc.version)
    statuses = assess(inv.entries)
    rep = report(statuses)
    print(f"gfx950 emulator coverage ({tc.version}): {rep.implemented}/{rep.total} compute instructions "
          f"= {rep.percent:.1f}%\n")
    print(rep.table())
    for reason, names in excluded_entries(statuses).items():
        print(f"\nexcluded ({len(names)}), {reason}: {' '.join(names)}")
    for title, items in (("decode mismatches with LLVM", decode_mismatches(statuses)),
                         ("listed in isa.py but refused by the core", table_gaps(statuses)),
                         ("accepted by the emulator's decoder, rejected by LLVM", emulator_only(inv)),
                         ("candidates llvm-objdump crashed on (not counted)", inv.objdump_crashes)):
        if items:
            print(f"\n{title} ({len(items)}):\n  " + "\n  ".join(items))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
