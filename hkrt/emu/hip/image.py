"""Finding the gfx950 code object in what hipModuleLoadData is handed.

The image comes as a bare pointer, so its size is read from its own headers: an ELF ends at the
furthest of its header tables, segments and sections; a clang offload bundle at its furthest entry.
A bundle holds one code object per target; we take the one this device can run.
"""
from __future__ import annotations

import struct
from typing import Callable

from .codes import INVALID_IMAGE, NO_BINARY_FOR_GPU, HipError

ELF_MAGIC = b"\x7fELF"
BUNDLE_MAGIC = b"__CLANG_OFFLOAD_BUNDLE__"
COMPRESSED_BUNDLE_MAGIC = b"CCOB"
MAX_IMAGE = 1 << 31            # larger claimed sizes mean a corrupt header, not a real image
EM_AMDGPU = 224
DEVICE_PROCESSOR = "gfx950"
DEVICE_FEATURES = {"sramecc": "+", "xnack": "-"}

Reader = Callable[[int, int], bytes]   # (offset, size) -> bytes of the image


def _bad(problem: str) -> HipError:
    return HipError(INVALID_IMAGE, f"invalid code object image: {problem}")


def _check(end: int) -> int:
    if end > MAX_IMAGE:
        raise _bad(f"headers claim {end} bytes")
    return end


def elf_size(read: Reader) -> int:
    h = read(0, 64)
    if h[4] != 2 or h[5] != 1:
        raise _bad("not a 64-bit little-endian ELF")
    phoff, shoff = struct.unpack_from("<QQ", h, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", h, 0x36)
    if (phnum and phentsize < 56) or (shnum and shentsize < 64):
        raise _bad("malformed ELF header")
    end = _check(max(64, phoff + phnum * phentsize, shoff + shnum * shentsize))
    for i in range(phnum):
        offset, _, _, filesz = struct.unpack_from("<QQQQ", read(phoff + i * phentsize, 40), 8)
        end = max(end, _check(offset + filesz))
    for i in range(shnum):
        sh = read(shoff + i * shentsize, 40)
        sh_type, = struct.unpack_from("<I", sh, 4)
        offset, size = struct.unpack_from("<QQ", sh, 24)
        if sh_type != 8:  # SHT_NOBITS occupies no file space
            end = max(end, _check(offset + size))
    return end


def _bundle_entries(read: Reader):
    """(id, offset, size) of each entry, and the end of the entry table."""
    count, = struct.unpack("<Q", read(24, 8))
    if count > 4096:
        raise _bad(f"offload bundle claims {count} entries")
    pos, entries = 32, []
    for _ in range(count):
        offset, size, idlen = struct.unpack("<QQQ", read(pos, 24))
        if idlen > 4096:
            raise _bad("offload bundle entry id too long")
        entries.append((read(pos + 24, idlen).decode("ascii", "replace"), offset, size))
        pos += 24 + idlen
    return entries, pos


def bundle_size(read: Reader) -> int:
    entries, end = _bundle_entries(read)
    return max([end] + [_check(off + size) for _, off, size in entries])


def image_at(read: Reader) -> bytes:
    """The whole image behind a pointer, sized from its headers."""
    if read(0, 4) == ELF_MAGIC:
        return read(0, elf_size(read))
    if read(0, 4) == BUNDLE_MAGIC[:4] and read(0, 24) == BUNDLE_MAGIC:
        return read(0, bundle_size(read))
    return read(0, 4)  # select() names what it is not


def _runs_here(target: str) -> bool:
    """Whether a target id such as gfx950:sramecc+ runs on gfx950:sramecc+:xnack-."""
    processor, *features = target.split(":")
    return processor == DEVICE_PROCESSOR and all(DEVICE_FEATURES.get(f[:-1]) == f[-1:] for f in features)


def _target_of(entry_id: str) -> str | None:
    """"hipv4-amdgcn-amd-amdhsa--gfx950:xnack-" -> "gfx950:xnack-"; None for host or other entries."""
    kind, _, triple_target = entry_id.partition("-")
    prefix = "amdgcn-amd-amdhsa-"
    if kind not in ("hip", "hipv4") or not triple_target.startswith(prefix):
        return None
    return triple_target[len(prefix):].lstrip("-")


def _check_elf_features(data: bytes) -> None:
    """xnack / sramecc settings compiled into a v4+ code object must match the device's."""
    if len(data) < 64 or struct.unpack_from("<H", data, 0x12)[0] != EM_AMDGPU or data[8] < 2:
        return  # the parser judges anything that is not a v4+ AMDGPU object
    flags, = struct.unpack_from("<I", data, 0x30)
    if flags & 0x300 == 0x300:
        raise HipError(NO_BINARY_FOR_GPU, "code object needs xnack+, the device runs xnack-")
    if flags & 0xC00 == 0x800:
        raise HipError(NO_BINARY_FOR_GPU, "code object needs sramecc-, the device runs sramecc+")


def select(data: bytes) -> bytes:
    """The ELF code object to load from an image (ELF or offload bundle)."""
    if data.startswith(ELF_MAGIC):
        _check_elf_features(data)
        return data
    if data.startswith(BUNDLE_MAGIC):
        def read(off, n):
            if off + n > len(data):
                raise _bad("offload bundle is truncated")
            return data[off:off + n]
        entries, _ = _bundle_entries(read)
        targets = [(_target_of(i), off, size) for i, off, size in entries]
        usable = [(t, off, size) for t, off, size in targets if t is not None and _runs_here(t) and size]
        if not usable:
            found = ", ".join(t for t, _, _ in targets if t) or "none"
            raise HipError(NO_BINARY_FOR_GPU, f"offload bundle has no code object for "
                           f"{DEVICE_PROCESSOR} (targets: {found})")
        # the most specific match wins, as HIP prefers an exact target id over a generic one
        _, off, size = max(usable, key=lambda u: u[0].count(":"))
        return select(read(off, size))
    if data.startswith(COMPRESSED_BUNDLE_MAGIC):
        raise _bad("compressed offload bundles are not supported by the emulator")
    raise _bad("neither an ELF code object nor a clang offload bundle")
