"""Run hand-written gfx950 assembly on one emulated wave, for instruction-level tests.

The toolchain's llvm-mc assembles; the emulator's own decoder and core execute. Expected
values in the tests are computed independently with numpy.
"""
from __future__ import annotations

import os
import re
import subprocess
import zlib
from dataclasses import dataclass

import numpy as np

from hkrt.emu import decode, launch
from hkrt.emu.machine import Machine

_ENC = re.compile(r";\s*encoding:\s*\[([^\]]*)\]")


def assemble_many(mc: str, snippets: list[list[str]]) -> list[bytes]:
    """Assemble several snippets in one llvm-mc run; returns the machine code of each."""
    marker = "s_sethalt 0x7"  # a separator that no snippet uses
    text = []
    for lines in snippets:
        text += lines + [marker]
    res = subprocess.run([mc, "-arch=amdgcn", "-mcpu=gfx950", "-show-encoding"], input="\n".join(text) + "\n",
                         capture_output=True, text=True, env={**os.environ})
    if res.returncode != 0:
        raise AssertionError(f"llvm-mc failed:\n{res.stderr}")
    out, cur = [], bytearray()
    for line in res.stdout.splitlines():
        m = _ENC.search(line)
        if not m:
            continue
        if "s_sethalt 7" in line:
            out.append(bytes(cur))
            cur = bytearray()
            continue
        cur += bytes(int(b, 16) for b in m.group(1).split(","))
    assert len(out) == len(snippets), "snippet count mismatch"
    return out


def assemble_listing(mc: str, lines: list[str]) -> list[tuple[str, bytes]]:
    """Assemble one instruction per line in one llvm-mc run; returns (llvm's canonical text, encoding) per line."""
    res = subprocess.run([mc, "-arch=amdgcn", "-mcpu=gfx950", "-show-encoding"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, env={**os.environ})
    if res.returncode != 0:
        raise AssertionError(f"llvm-mc failed:\n{res.stderr}")
    out = []
    for line in res.stdout.splitlines():
        m = _ENC.search(line)
        if m:
            out.append((line[:m.start()].strip(), bytes(int(b, 16) for b in m.group(1).split(","))))
    assert len(out) == len(lines), "one instruction per line expected"
    return out


@dataclass
class WaveState:
    s: np.ndarray        # uint32[128]: SGPRs by operand code (VCC at 106/107, M0 at 124, EXEC at 126/127)
    v: np.ndarray        # uint32[512, 64]: v0..v255 then a0..a255
    scc: int
    lds: np.ndarray      # uint8[lds_bytes]

    @property
    def exec(self) -> int:
        return int(self.s[126]) | int(self.s[127]) << 32

    @property
    def vcc(self) -> int:
        return int(self.s[106]) | int(self.s[107]) << 32


def new_state(lds_bytes: int = 0, exec_mask: int = (1 << 64) - 1, seed=None) -> WaveState:
    rng = np.random.default_rng(seed)
    st = WaveState(s=rng.integers(0, 2**32, 128, dtype=np.uint32), v=rng.integers(0, 2**32, (512, 64), dtype=np.uint32),
                   scc=0, lds=np.zeros(lds_bytes, np.uint8))
    st.s[102:128] = 0
    st.s[126], st.s[127] = exec_mask & 0xFFFFFFFF, exec_mask >> 32
    return st


class EmuError(Exception):
    pass


def run(code: bytes, state: WaveState, machine: Machine | None = None, strict: bool = True,
        scratch_lane_bytes: int = 0, mfma: str = "exact") -> WaveState:
    """Execute `code` (must end in s_endpgm) on one wave from `state`; returns the final state (a copy).
    scratch_lane_bytes: the private segment per lane, at FLAT_SCRATCH (s[102:103]) in `machine`.
    mfma: the MFMA accumulation model ("exact" or "cdna3", as HKRT_EMU_MFMA)."""
    mod = launch.core()
    ffi, lib = mod.ffi, mod.lib
    prog = decode.decode(code, 0x1000, "snippet")
    machine = machine or Machine(1 << 20)
    out = WaveState(s=state.s.copy(), v=np.ascontiguousarray(state.v.copy()), scc=state.scc, lds=state.lds.copy())
    L, keep = launch.new_launch(ffi, prog, machine.memory)  # noqa: F841
    L.grid = [1, 1, 1]
    L.block = [64, 1, 1]
    L.lds_bytes = len(out.lds)
    L.strict = int(strict)
    L.mfma_model = launch.MFMA_MODEL_CODES[mfma]
    L.max_insns = 1_000_000
    L.scratch_lane_bytes = scratch_lane_bytes
    s = ffi.cast("uint32_t *", ffi.from_buffer(out.s))
    v = ffi.cast("uint32_t *", ffi.from_buffer(out.v))
    scc = ffi.new("int32_t *", state.scc)
    lds = ffi.cast("uint8_t *", ffi.from_buffer(out.lds)) if len(out.lds) else ffi.NULL
    rc = lib.emu_run_wave_state(L, s, v, scc, lds)
    out.scc = scc[0]
    if rc:
        i = L.err_insn
        raise EmuError(f"{ffi.string(L.err_msg).decode()} at `{prog.text[i] if 0 <= i < len(prog.text) else '?'}`"
                       f" [code {rc}]")
    return out


def assemble_with_labels(mc: str, lines: list[str], workdir) -> bytes:
    """Assemble a snippet that may branch to labels (llvm-mc resolves them only when it writes an object);
    returns the .text bytes."""
    from elftools.elf.elffile import ELFFile
    out = os.path.join(str(workdir), "snippet.o")
    res = subprocess.run([mc, "-arch=amdgcn", "-mcpu=gfx950", "-filetype=obj", "-o", out],
                         input="\n".join(lines) + "\n", capture_output=True, text=True,
                         env={**os.environ, "HKRT_MOUNT": str(workdir)})
    if res.returncode != 0:
        raise AssertionError(f"llvm-mc failed:\n{res.stderr}")
    with open(out, "rb") as fh:
        return ELFFile(fh).get_section_by_name(".text").data()


# ------------------------------------------------------------------------------------------- the test modules' snippets

SEED = int(os.environ.get("HKRT_TEST_SEED", np.random.SeedSequence().entropy % (1 << 63)))


def snippet_book():
    """A test module's snippets: (SNIPPETS, META, COVERED, snippet). snippet(key, lines, covers, meta) registers
    assembly (s_endpgm is appended) for the module's single llvm-mc batch (the conftest's `code` fixture), the
    random constants baked into it (META) and the mnemonics it is the semantics test of (COVERED, which
    test_every_mnemonic_has_a_semantics_test counts)."""
    snippets: dict[str, list[str]] = {}
    meta_of: dict[str, object] = {}
    covered: set[str] = set()

    def snippet(key: str, lines: list[str], covers=(), meta=None) -> str:
        assert key not in snippets, key
        snippets[key] = list(lines) + ["s_endpgm"]
        meta_of[key] = meta
        covered.update(covers)
        return key
    return snippets, meta_of, covered, snippet


def assembled(tc, snippets: dict[str, list[str]]) -> dict[str, bytes]:
    """A module's snippets, assembled in one llvm-mc run (the conftest's `code` fixture)."""
    keys = list(snippets)
    return dict(zip(keys, assemble_many(tc.mc, [snippets[k] for k in keys])))


def seeded_rng(request) -> np.random.Generator:
    """This test's random stream: fresh each run, replayed by HKRT_TEST_SEED (printed on failure)."""
    seed = (SEED, zlib.crc32(request.node.nodeid.encode()))
    print(f"random inputs: HKRT_TEST_SEED={SEED} (test stream {seed[1]})")
    return np.random.default_rng(seed)
