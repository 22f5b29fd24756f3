"""Build the emulated libamdhip64.so: `python -m hkrt.emu.hip.build [--force]`.

cffi's embedding mode turns the declarations in hip_types.h and hip_exports.h into a shared library
whose exported C functions run Python (capi.py) in the calling process's interpreter. Its soname is
libamdhip64.so, so once it is loaded, hip-python's dlopen("libamdhip64.so") gets it instead of
searching for ROCm's. It lives in the native build cache (hkrt/emu/native.py), keyed by its sources,
the compiler and the Python; built on first use, and again only when one of those changes.
"""
from __future__ import annotations

import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from .. import native

HERE = Path(__file__).resolve().parent
SONAME = "libamdhip64.so"
TYPES = HERE / "hip_types.h"
EXPORTS = HERE / "hip_exports.h"
MODULE = "_hkrt_emu_hip"
PY = "hkrt_py_"  # each exported function calls the Python function of this prefix and its name
# Ctrl-C during a call: KeyboardInterrupt cannot cross the C frames back to the caller, so the Python side
# asks for SIGINT to be raised again once the call has returned; the caller's interpreter then raises it.
SUPPORT = """
#include <signal.h>
static volatile sig_atomic_t hkrt_interrupt_pending;
void hkrt_request_interrupt(void) { hkrt_interrupt_pending = 1; }
static void hkrt_deliver_interrupt(void) {
  if (hkrt_interrupt_pending) {
    hkrt_interrupt_pending = 0;
    raise(SIGINT);
  }
}
"""

# Runs in the host process at the first HIP call. If the Python side cannot start, every entry
# point still answers (hipErrorNotInitialized / NULL) instead of cffi's default of 0 = hipSuccess.
INIT_CODE = """\
from {module} import ffi, lib
try:
    from hkrt.emu.hip import capi
    capi.bind(ffi, lib)
except Exception:
    import sys, traceback
    traceback.print_exc()
    sys.stderr.write("hkrt: the emulated libamdhip64 failed to start; HIP calls return hipErrorNotInitialized\\n")
    for _name in {codes!r}:
        ffi.def_extern(name=_name)(lambda *args: 3)
    for _name in {strings!r}:
        ffi.def_extern(name=_name)(lambda *args: ffi.NULL)
"""


def _declarations(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))


def _exports() -> list[tuple[str, str, str]]:
    """(return type, name, parameter list) of each function hip_exports.h declares."""
    return [(m[1].strip(), m[2], m[3].strip())
            for m in re.finditer(r"^(.*?)(\w+)\((.*)\);\s*$", _declarations(EXPORTS), re.M)]


def exported_functions() -> dict[str, str]:
    """Exported function name -> its C return type."""
    return {name: ret for ret, name, _ in _exports()}


def _exports_in_c() -> tuple[str, str]:
    """(declarations of the Python-implemented functions, the C source of the exported functions that call
    them and then deliver a pending interrupt)."""
    api, src = [], [SUPPORT]
    for ret, name, params in _exports():
        args = [] if params in ("", "void") else [re.findall(r"\w+", p)[-1] for p in params.split(",")]
        api.append(f"{ret} {PY}{name}({params});")
        call = f"{PY}{name}({', '.join(args)})"
        src.append(f"__attribute__((visibility(\"default\"))) {ret} {name}({params}) {{ {ret} r = {call}; "
                   f"hkrt_deliver_interrupt(); return r; }}")
    return "\n".join(api), "\n".join(src)


def _inputs() -> list[bytes]:
    """Everything the build reads: this file (the generated C, flags) and the headers here, by name and
    content; and cffi's version (it writes the embedding code)."""
    import cffi
    return [f"{p.name}\0".encode() + p.read_bytes() for p in [Path(__file__), *sorted(HERE.glob("*.h"))]] + \
        [cffi.__version__.encode()]


def path() -> Path:
    """Where the library of the current sources is (or will be once built)."""
    return native.entry("hip", _inputs()) / SONAME


def up_to_date() -> bool:
    return path().is_file()


def _compile(tmp: str) -> Path:
    import cffi

    exports = exported_functions()
    ffi = cffi.FFI()
    types = _declarations(TYPES)
    ffi.cdef(types + "\nvoid hkrt_request_interrupt(void);")
    api, exported = _exports_in_c()
    ffi.embedding_api(api)
    link = [f"-Wl,-soname,{SONAME}"]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        # find this interpreter's libpython even when loaded by LD_PRELOAD before the interpreter
        link.append(f"-Wl,-rpath,{sysconfig.get_config_var('LIBDIR')}")
    ffi.set_source(MODULE, types + "\n" + api + "\n" + exported, extra_link_args=link)
    ffi.embedding_init_code(INIT_CODE.format(
        module=MODULE,
        codes=sorted(PY + n for n, ret in exports.items() if ret == "hipError_t"),
        strings=sorted(PY + n for n, ret in exports.items() if ret != "hipError_t")))
    return Path(ffi.compile(tmpdir=tmp, target=SONAME))


def build(force: bool = False) -> Path:
    """The library's path in the native build cache, building it first if it is missing."""
    def compile_into(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="hkrt-emu-hip-") as tmp:
            shutil.copy(_compile(tmp), out / SONAME)
    return native.ensure("hip", _inputs(), SONAME, compile_into, what="HIP library", force=force)


if __name__ == "__main__":
    print(build(force="--force" in sys.argv[1:]))
