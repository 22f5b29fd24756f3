"""Build the emulator's execution core (core.c) into the extension module hkrt.emu._core with cffi.

    python -m hkrt.emu.build_core [--force]

Idempotent: rebuilds only when core.c, the opcode tables or this file change.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CDEF = """
typedef struct {
  uint16_t op, size;
  uint32_t pc;
  int16_t dst, sdst, src[4];
  uint32_t literal;
  int32_t imm, imm2;
  uint32_t flags, flags2;
} insn_t;
typedef struct { uint64_t base, size; uint8_t *host; } emu_region;
typedef struct {
  const insn_t *prog;
  int32_t nprog;
  const int32_t *index;
  uint64_t code_base;
  uint64_t image_base;
  uint32_t code_words;
  int32_t entry;
  const emu_region *regions;
  int32_t nregions;
  uint32_t grid[3], block[3];
  uint32_t lds_bytes;
  uint32_t user_sgpr_count, wg_id_enable, wg_info, tid_dims;
  uint32_t user_sgprs[32];
  uint64_t shared_base;
  int32_t strict, seeded;
  uint64_t seed, max_insns;
  uint64_t insn_count;
  int32_t err, err_insn, err_wave;
  uint32_t err_wg[3];
  uint64_t err_addr;
  char err_msg[256];
} emu_launch;
int emu_run(emu_launch *L);
int emu_run_wave_state(emu_launch *L, uint32_t *s, uint32_t *v, int32_t *scc, uint8_t *lds);
"""


def _fingerprint() -> str:
    from . import decode
    h = hashlib.sha256()
    for part in ((HERE / "core.c").read_bytes(), decode.c_header().encode(), CDEF.encode(),
                 Path(__file__).read_bytes(), sys.version.encode()):
        h.update(part)
    return h.hexdigest()


def _built() -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = HERE / f"_core{suffix}"
        if p.exists():
            return p
    return None


def build(force: bool = False, verbose: bool = False) -> Path:
    import cffi

    from . import decode
    stamp = HERE / "_core.stamp"
    fp = _fingerprint()
    existing = _built()
    if not force and existing and stamp.exists() and stamp.read_text() == fp:
        return existing
    with tempfile.TemporaryDirectory(prefix="hkrt-core-") as tmp:
        (Path(tmp) / "ops.h").write_text(decode.c_header())
        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        ffi.set_source("hkrt.emu._core", (HERE / "core.c").read_text(), include_dirs=[tmp],
                       extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"])
        out = Path(ffi.compile(tmpdir=tmp, verbose=verbose))
        dest = HERE / out.name
        shutil.copy2(out, dest.with_suffix(".tmp"))
        dest.with_suffix(".tmp").replace(dest)
    stamp.write_text(fp)
    return dest


if __name__ == "__main__":
    print(build(force="--force" in sys.argv, verbose="-v" in sys.argv))
