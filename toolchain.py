#!/usr/bin/env python3
"""Find a hipcc that compiles for gfx950, or provision a private one.

Search order: $HIPCC, $ROCM_PATH/bin/hipcc, /opt/rocm/bin/hipcc, hipcc on PATH,
then the private toolchain. A candidate is accepted only after a probe compile
of an MFMA kernel for gfx950 succeeds.

The private toolchain is a Debian unstable root filesystem (debootstrap
minbase) holding Debian's ROCm 7 `hipcc` (clang 21). It lives in a cache
directory outside the repository ($HKRT_TOOLCHAIN_DIR, default
~/.cache/hkrt/toolchain) and is entered through small wrapper scripts that run
each tool in a private mount namespace, chrooted into that root, with the
caller's directories bind-mounted at their own paths.

Standard library only: this runs before the Python dependencies exist.

    python3 toolchain.py [find|provision|ensure]
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ARCH = "gfx950"
SUITE = "unstable"
PACKAGES = ["hipcc"]
# Tools the build and the tests use, with the names Debian gives them.
LLVM_TOOLS = {"llvm-objdump": "llvm-objdump-21", "llvm-readelf": "llvm-readelf-21", "llvm-mc": "llvm-mc-21"}

PROBE_SOURCE = r"""
#include <hip/hip_runtime.h>
typedef __bf16 bf16x8 __attribute__((ext_vector_type(8)));
typedef float f32x4 __attribute__((ext_vector_type(4)));
extern "C" __global__ void probe(const bf16x8* a, const bf16x8* b, f32x4* c) {
  int t = threadIdx.x;
  c[t] = __builtin_amdgcn_mfma_f32_16x16x32_bf16(a[t], b[t], c[t], 0, 0, 0);
}
"""

# Runs one tool inside the private root. $HKRT_MOUNT (colon-separated) names
# extra directories to make visible; the current directory always is.
WRAPPER = r"""#!/bin/sh
# hkrt private toolchain wrapper: runs {tool} inside {root}
root='{root}'
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
[ "$(id -u)" = 0 ] || {{ echo "hkrt toolchain: running {tool} from the private toolchain needs root (mount namespace + chroot)" >&2; exit 126; }}
exec unshare --mount -- sh -ec '
root=$1; shift
mount --rbind /proc "$root/proc"
mount --rbind /dev "$root/dev"
old_ifs=$IFS; IFS=:
for d in $PWD $HKRT_MOUNT; do
  [ -n "$d" ] && [ -d "$d" ] || continue
  mkdir -p "$root$d"
  mount --bind "$d" "$root$d"
done
IFS=$old_ifs
exec chroot "$root" /usr/bin/env -C "$PWD" {tool} "$@"
' hkrt-toolchain "$root" "$@"
"""


class ToolchainError(RuntimeError):
    pass


@dataclass
class Toolchain:
    hipcc: str
    objdump: str | None
    readelf: str | None
    mc: str | None
    version: str
    origin: str  # "system" or "private"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def cache_dir() -> Path:
    env = os.environ.get("HKRT_TOOLCHAIN_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (base / "hkrt" / "toolchain").resolve()


def _log(msg: str) -> None:
    print(f"[toolchain] {msg}", file=sys.stderr, flush=True)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def compiler_version(hipcc: str) -> str:
    """The clang line of `hipcc --version` (e.g. 'Debian clang version 21.1.8 (14)')."""
    out = _run([hipcc, "--version"])
    lines = (out.stdout + out.stderr).splitlines()
    clang = [ln.strip() for ln in lines if "clang version" in ln]
    hip = [ln.strip() for ln in lines if ln.startswith("HIP version")]
    return "; ".join(clang[:1] + hip[:1]) or "unknown"


def probe(hipcc: str) -> str | None:
    """Compile an MFMA kernel for gfx950; return None on success, else the reason."""
    if not (os.path.isfile(hipcc) and os.access(hipcc, os.X_OK)):
        return "not an executable file"
    with tempfile.TemporaryDirectory(prefix="hkrt-probe-") as tmp:
        src, out = Path(tmp, "probe.hip"), Path(tmp, "probe.co")
        src.write_text(PROBE_SOURCE)
        env = dict(os.environ, HKRT_MOUNT=tmp)
        try:
            res = _run([hipcc, "-O3", f"--offload-arch={ARCH}", "--cuda-device-only",
                        "--no-gpu-bundle-output", "-c", str(src), "-o", str(out)],
                       env=env, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        if res.returncode != 0:
            return (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
        if not out.exists() or out.read_bytes()[:4] != b"\x7fELF":
            return "probe compile produced no ELF code object"
    return None


def _llvm_tool(hipcc: str, name: str) -> str | None:
    """An LLVM tool next to a system hipcc (ROCm keeps them in llvm/bin)."""
    base = Path(hipcc).resolve().parent
    for cand in [base.parent / "llvm" / "bin" / name, base / name]:
        if cand.is_file():
            return str(cand)
    return shutil.which(name) or shutil.which(LLVM_TOOLS.get(name, name))


def system_candidates() -> list[str]:
    cands = []
    if os.environ.get("HIPCC"):
        cands.append(os.environ["HIPCC"])
    if os.environ.get("ROCM_PATH"):
        cands.append(os.path.join(os.environ["ROCM_PATH"], "bin", "hipcc"))
    cands.append("/opt/rocm/bin/hipcc")
    on_path = shutil.which("hipcc")
    if on_path:
        cands.append(on_path)
    seen, unique = set(), []
    for c in cands:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def private_toolchain() -> Toolchain | None:
    d = cache_dir()
    if not (d / "complete").exists():
        return None
    b = d / "bin"
    _write_wrappers(d / "root", b)  # keeps wrappers current with this file
    return Toolchain(hipcc=str(b / "hipcc"), objdump=str(b / "llvm-objdump"),
                     readelf=str(b / "llvm-readelf"), mc=str(b / "llvm-mc"),
                     version=(d / "complete").read_text().strip(), origin="private")


def find(verbose: bool = True) -> Toolchain | None:
    for cand in system_candidates():
        why = probe(cand)
        if why is None:
            return Toolchain(hipcc=cand, objdump=_llvm_tool(cand, "llvm-objdump"),
                             readelf=_llvm_tool(cand, "llvm-readelf"), mc=_llvm_tool(cand, "llvm-mc"),
                             version=compiler_version(cand), origin="system")
        if verbose and os.path.exists(cand):
            _log(f"{cand}: rejected, cannot compile for {ARCH}: {why}")
    tc = private_toolchain()
    if tc is not None:
        why = probe(tc.hipcc)
        if why is None:
            return tc
        if verbose:
            _log(f"private toolchain at {cache_dir()} failed its probe ({why}); it will be re-provisioned")
    return None


# ---------------------------------------------------------------------------
# Provisioning

def debian_mirror(paths: list[str] | None = None) -> str:
    """The Debian archive URI from this machine's apt configuration (or the given source files)."""
    if os.environ.get("HKRT_DEBIAN_MIRROR"):
        return os.environ["HKRT_DEBIAN_MIRROR"]
    uris: list[str] = []
    if paths is None:
        paths = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if path.endswith(".sources"):
            for line in text.splitlines():
                if line.strip().lower().startswith("uris:"):
                    uris += line.split(":", 1)[1].split()
        elif path.endswith(".list"):
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] == ["deb"]:
                    words = [w for w in words[1:] if not w.startswith("[")]
                    if words:
                        uris.append(words[0])
    for uri in uris:  # the archive itself, or a snapshot of it (.../archive/debian/<timestamp>)
        if uri.startswith(("http://", "https://")) and re.search(r"/debian(/[0-9TZ]+)?/?$", uri):
            return uri
    raise ToolchainError("could not find a Debian mirror in /etc/apt/sources.list{,.d}; "
                         "set HKRT_DEBIAN_MIRROR to the archive URI")


def _check_call(cmd, what: str, log: Path) -> None:
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        res = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise ToolchainError(f"{what} failed (exit {res.returncode}); is the network or the mirror reachable?\n"
                             f"last lines of {log}:\n  " + "\n  ".join(tail))


def _write_wrappers(root: Path, bindir: Path) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    tools = {"hipcc": "hipcc", **LLVM_TOOLS}
    for name, inside in tools.items():
        p, text = bindir / name, WRAPPER.format(root=root, tool=inside)
        if not p.exists() or p.read_text() != text:
            tmp = p.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(p)


@contextlib.contextmanager
def _lock(d: Path):
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def provision() -> Toolchain:
    """Build the private toolchain (idempotent; an interrupted run starts over cleanly)."""
    d = cache_dir()
    with _lock(d):
        tc = private_toolchain()
        if tc is not None and probe(tc.hipcc) is None:
            return tc
        if os.geteuid() != 0:
            raise ToolchainError("no hipcc for gfx950 was found and provisioning the private one needs root "
                                 "(debootstrap, mount namespace, chroot). Run as root, or point HIPCC or "
                                 "ROCM_PATH at a ROCm 7 hipcc.")
        for tool in ("debootstrap", "unshare", "chroot"):
            if shutil.which(tool) is None:
                raise ToolchainError(f"provisioning needs '{tool}' (Debian package "
                                     f"{'debootstrap' if tool == 'debootstrap' else 'util-linux/coreutils'})")
        mirror = debian_mirror()
        start = time.time()
        (d / "complete").unlink(missing_ok=True)
        root, partial = d / "root", d / "root.partial"
        for stale in (root, partial):
            if stale.exists():
                shutil.rmtree(stale)
        log = d / "provision.log"
        log.write_text("")
        _log(f"provisioning Debian {SUITE} + {' '.join(PACKAGES)} into {d} (about a minute, 1.3 GB)")
        _check_call(["debootstrap", "--variant=minbase", SUITE, str(partial), mirror], "debootstrap", log)
        (partial / "etc/apt/apt.conf.d/99hkrt").write_text(
            'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\n')
        inner = ("export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
                 f"apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)} && apt-get clean")
        _check_call(["unshare", "--mount", "--", "sh", "-ec",
                     'mount --rbind /proc "$0/proc"; mount --rbind /dev "$0/dev"; exec chroot "$0" sh -c "$1"',
                     str(partial), inner], "apt-get install hipcc inside the root", log)
        partial.rename(root)
        _write_wrappers(root, d / "bin")
        tc = Toolchain(hipcc=str(d / "bin/hipcc"), objdump=str(d / "bin/llvm-objdump"),
                       readelf=str(d / "bin/llvm-readelf"), mc=str(d / "bin/llvm-mc"),
                       version=compiler_version(str(d / "bin/hipcc")), origin="private")
        why = probe(tc.hipcc)
        if why is not None:
            raise ToolchainError(f"the provisioned hipcc cannot compile for {ARCH}: {why} (log: {log})")
        (d / "complete").write_text(tc.version + "\n")
        _log(f"provisioned in {time.time() - start:.0f} s: {tc.version}")
        return tc


def ensure() -> Toolchain:
    return find() or provision()


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "ensure"
    try:
        if cmd == "find":
            tc = find()
            if tc is None:
                _log(f"no hipcc that compiles for {ARCH} was found (run `make toolchain` to provision one)")
                return 1
        elif cmd == "provision":
            tc = provision()
        elif cmd == "ensure":
            tc = ensure()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ToolchainError as exc:
        _log(f"error: {exc}")
        return 1
    print(tc.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
