"""The per-user cache the emulator's native parts (the C core, the emulated libamdhip64) are built into.

Each build lives in `<HKRT_CACHE_DIR>/native/<name>-<key>/`, where the key hashes every byte the build
reads together with the C compiler and the Python ABI; a change to any of them gives a new key, so a
stale build is never used and nothing is ever written into the installed package. A missing build is
made on first use: in a staging directory beside the entries, moved into place with one rename, under a
lock, so two processes starting at once build it once and neither sees a half-written entry.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .. import config


class NativeBuildError(RuntimeError):
    """A native part of the emulator cannot be built on this machine."""


def cache_dir() -> Path:
    """Where the native builds live: HKRT_CACHE_DIR, else $XDG_CACHE_HOME/hkrt, else ~/.cache/hkrt."""
    root = config.get("HKRT_CACHE_DIR")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        root = Path(xdg) / "hkrt" if os.path.isabs(xdg) else Path.home() / ".cache" / "hkrt"
    return Path(root).expanduser() / "native"


def compiler_command() -> list[str]:
    """The C compiler cffi builds with: $CC, else the one this Python was built with."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


@functools.lru_cache(maxsize=None)
def _compiler_identity(command: tuple[str, ...]) -> bytes:
    path = shutil.which(command[0])
    if path is None:
        return b"no compiler"
    run = subprocess.run([*command, "--version"], capture_output=True, timeout=60)
    return "\0".join([*command, os.path.realpath(path)]).encode() + b"\0" + run.stdout


def _python_abi() -> bytes:
    """What a build for this interpreter depends on: version and build, extension suffix, libpython's home."""
    return "\0".join([sys.version, sysconfig.get_config_var("EXT_SUFFIX") or "",
                      sysconfig.get_config_var("LIBDIR") or ""]).encode()


def key(inputs: Iterable[bytes]) -> str:
    """The cache key of a build reading `inputs`, with this compiler and Python."""
    h = hashlib.sha256()
    for part in (*inputs, _compiler_identity(tuple(compiler_command())), _python_abi()):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:20]


def entry(name: str, inputs: Iterable[bytes]) -> Path:
    """The directory that holds (or will hold) build `name` of these inputs."""
    return cache_dir() / f"{name}-{key(inputs)}"


def _check_toolchain(what: str) -> None:
    command = compiler_command()
    if shutil.which(command[0]) is None:
        raise NativeBuildError(
            f"hkrt builds the emulator's {what} on first use and needs a C compiler, but {command[0]!r} was not "
            f"found on PATH (install gcc, e.g. `apt-get install gcc`, or set CC to a C compiler)")
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not header.exists():
        raise NativeBuildError(
            f"hkrt builds the emulator's {what} on first use and needs Python's C headers, but {header} is "
            f"missing (install them, e.g. `apt-get install python3-dev`)")


def ensure(name: str, inputs: list[bytes], product: str, make: Callable[[Path], None], *, what: str,
           force: bool = False) -> Path:
    """The path of `product` in the cache entry of (name, inputs); when it is missing (or `force`),
    `make(directory)` first builds it into an empty staging directory, which then becomes the entry."""
    final = entry(name, inputs)
    if not force and (final / product).is_file():
        return final / product
    root = final.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NativeBuildError(f"cannot create the native build cache {root} ({exc.strerror}); set "
                               f"HKRT_CACHE_DIR to a writable directory") from None
    with open(root / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and (final / product).is_file():  # another process built it while we waited
            return final / product
        _remove_leftovers(root)
        _check_toolchain(what)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            try:
                make(staging)
            except Exception as exc:
                raise NativeBuildError(f"building the emulator's {what} failed: {exc}") from exc
            if not (staging / product).is_file():
                raise NativeBuildError(f"building the emulator's {what} made no {product}")
            if final.exists():  # forced, or an entry that lost its product: set it aside
                os.rename(final, Path(tempfile.mkdtemp(prefix=".old-", dir=root)) / final.name)
            staging.chmod(0o755)  # mkdtemp made it private; the entry is readable like any installed library
            os.rename(staging, final)
        finally:
            _remove_leftovers(root)
    return final / product


def _remove_leftovers(root: Path) -> None:
    """Staging and replaced directories: with the lock held no other build is under way, so any is garbage
    (of this build, or of one that was killed)."""
    for path in root.glob(".*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
