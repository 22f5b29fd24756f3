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

API = HERE / "core_api.h"  # the C declarations, shared with core.c


def cdef() -> str:
    """core_api.h without its leading comment, for cffi."""
    text = API.read_text()
    return text[text.index("*/") + 2:]


def _fingerprint() -> str:
    from . import decode, optable
    h = hashlib.sha256()
    for part in ((HERE / "core.c").read_bytes(), (HERE / "timing_model.c").read_bytes(),
                 decode.c_header().encode(), optable.c_header().encode(), API.read_bytes(),
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

    from . import decode, optable
    stamp = HERE / "_core.stamp"
    fp = _fingerprint()
    existing = _built()
    if not force and existing and stamp.exists() and stamp.read_text() == fp:
        return existing
    with tempfile.TemporaryDirectory(prefix="hkrt-core-") as tmp:
        (Path(tmp) / "ops.h").write_text(decode.c_header())
        (Path(tmp) / optable.HEADER).write_text(optable.c_header())
        ffi = cffi.FFI()
        ffi.cdef(cdef())
        ffi.set_source("hkrt.emu._core", (HERE / "core.c").read_text(), include_dirs=[tmp, str(HERE)],
                       extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"])
        out = Path(ffi.compile(tmpdir=tmp, verbose=verbose))
        dest = HERE / out.name
        shutil.copy2(out, dest.with_suffix(".tmp"))
        dest.with_suffix(".tmp").replace(dest)
    stamp.write_text(fp)
    return dest


if __name__ == "__main__":
    print(build(force="--force" in sys.argv, verbose="-v" in sys.argv))
