"""Build the emulator's execution core (core.c) into the extension module hkrt.emu._core with cffi.

    python -m hkrt.emu.build_core [--force]

The module lives in the native build cache (native.py), keyed by everything the compile reads; it is
built on first use, and again only when one of those inputs, the compiler or the Python changes.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from . import native

HERE = Path(__file__).resolve().parent
MODULE = "hkrt.emu._core"
PRODUCT = "_core" + importlib.machinery.EXTENSION_SUFFIXES[0]

API = HERE / "core_api.h"  # the C declarations, shared with core.c


def cdef() -> str:
    """core_api.h without its leading comment, for cffi."""
    text = API.read_text()
    return text[text.index("*/") + 2:]


def _inputs(include: Path) -> list[bytes]:
    """Every file the compile can read besides system headers (the C sources and headers here and the
    generated ones in `include`, by name and content), this file (the flags), and cffi's version (it
    writes the wrapper)."""
    import cffi
    files = sorted([*HERE.glob("*.[ch]"), *include.iterdir()], key=lambda p: (p.parent != HERE, p.name))
    return [f"{p.name}\0".encode() + p.read_bytes() for p in files] + [Path(__file__).read_bytes(),
                                                                      cffi.__version__.encode()]


def generated_headers() -> dict[str, str]:
    """The headers generated from the opcode tables (the decoder's op ids and the dispatch table) and the 2/pi
    bits of v_trig_preop_f64."""
    from . import decode, optable, two_over_pi
    return {"ops.h": decode.c_header(), optable.HEADER: optable.c_header(), two_over_pi.HEADER: two_over_pi.c_header()}


def build(force: bool = False, verbose: bool = False) -> Path:
    """The compiled core's path in the native build cache, building it first if it is missing."""
    import cffi

    with tempfile.TemporaryDirectory(prefix="hkrt-core-") as tmp:
        include = Path(tmp) / "include"
        include.mkdir()
        for name, text in generated_headers().items():
            (include / name).write_text(text)

        def compile_into(out: Path) -> None:
            ffi = cffi.FFI()
            ffi.cdef(cdef())
            ffi.set_source(MODULE, (HERE / "core.c").read_text(), include_dirs=[str(include), str(HERE)],
                           extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"])
            shutil.copy2(ffi.compile(tmpdir=tmp, verbose=verbose), out / PRODUCT)
        return native.ensure("core", _inputs(include), PRODUCT, compile_into, what="execution core", force=force)


def load():
    """The core as an imported module, built first if it is missing."""
    spec = importlib.util.spec_from_file_location(MODULE, build())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    print(build(force="--force" in sys.argv, verbose="-v" in sys.argv))
