"""Parse AMDGPU code objects: the ELF, the msgpack metadata note, the kernel descriptors.

Used by build.py (to write the manifest), the runtime (to check what it loads) and the
emulator (to load and run kernels). Format facts: docs/facts.md §5.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field

import msgpack
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

EM_AMDGPU = 224
ELFOSABI_AMDGPU_HSA = 64
NT_AMDGPU_METADATA = 32
EF_AMDGPU_MACH = 0x0FF
# Loaded segments (code, read-only data, device globals) end below this address: larger claims are corrupt
# headers. Real code objects are kilobytes to a few MiB; a kernel with more static device data is refused.
MAX_LOADED_BYTES = 256 << 20

# EF_AMDGPU_MACH values (LLVM's ELF.h) for the targets a user is likely to hand us.
MACH_NAMES = {
    0x2C: "gfx900", 0x2F: "gfx906", 0x30: "gfx908", 0x3F: "gfx90a", 0x40: "gfx940",
    0x4B: "gfx941", 0x4C: "gfx942", 0x4F: "gfx950", 0x36: "gfx1030", 0x41: "gfx1100",
    0x46: "gfx1101", 0x47: "gfx1102", 0x48: "gfx1200", 0x4E: "gfx1201",
}


class CodeObjectError(ValueError):
    """A file that is not a usable AMDGPU code object; the message names the file and the problem."""

    def __init__(self, source: str, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class WrongArchitectureError(CodeObjectError):
    def __init__(self, source: str, found: str, expected: str):
        super().__init__(source, f"code object is for {found}, not {expected}")
        self.found = found
        self.expected = expected


@dataclass(frozen=True)
class KernelDescriptor:
    """The 64-byte AMDHSA kernel descriptor."""
    group_segment_fixed_size: int
    private_segment_fixed_size: int
    kernarg_size: int
    kernel_code_entry_byte_offset: int
    compute_pgm_rsrc3: int
    compute_pgm_rsrc1: int
    compute_pgm_rsrc2: int
    kernel_code_properties: int
    kernarg_preload: int

    SIZE = 64

    @classmethod
    def unpack(cls, raw: bytes) -> "KernelDescriptor":
        g, p, ka, _r0, entry = struct.unpack_from("<IIIIq", raw, 0)
        rsrc3, rsrc1, rsrc2, props, preload = struct.unpack_from("<IIIHH", raw, 44)
        return cls(g, p, ka, entry, rsrc3, rsrc1, rsrc2, props, preload)

    # Fields the loader needs (docs/facts.md §5.2, §5.3).
    @property
    def user_sgpr_count(self) -> int:
        return (self.compute_pgm_rsrc2 >> 1) & 0x1F

    @property
    def enable_workgroup_id(self) -> tuple[bool, bool, bool]:
        r = self.compute_pgm_rsrc2
        return bool(r >> 7 & 1), bool(r >> 8 & 1), bool(r >> 9 & 1)

    @property
    def enable_workgroup_info(self) -> bool:
        return bool(self.compute_pgm_rsrc2 >> 10 & 1)

    @property
    def workitem_id_dims(self) -> int:
        """1, 2 or 3: how many of X, Y, Z the packed v0 carries."""
        return ((self.compute_pgm_rsrc2 >> 11) & 3) + 1

    @property
    def accum_offset(self) -> int:
        """First AccVGPR in the unified register file."""
        return 4 * ((self.compute_pgm_rsrc3 & 0x3F) + 1)

    @property
    def vgpr_alloc(self) -> int:
        """Registers allocated per lane in the unified file (granule 8)."""
        return 8 * ((self.compute_pgm_rsrc1 & 0x3F) + 1)

    @property
    def user_sgpr_enables(self) -> dict[str, bool]:
        bits = ["private_segment_buffer", "dispatch_ptr", "queue_ptr", "kernarg_segment_ptr",
                "dispatch_id", "flat_scratch_init", "private_segment_size"]
        return {name: bool(self.kernel_code_properties >> i & 1) for i, name in enumerate(bits)}

    @property
    def kernarg_preload_length(self) -> int:
        return self.kernarg_preload & 0x7F

    @property
    def kernarg_preload_offset(self) -> int:
        return self.kernarg_preload >> 7

    @property
    def float_mode(self) -> dict[str, int]:
        r = self.compute_pgm_rsrc1
        return {"fp32_round": r >> 12 & 3, "fp16_64_round": r >> 14 & 3, "fp32_denorm": r >> 16 & 3,
                "fp16_64_denorm": r >> 18 & 3, "dx10_clamp": r >> 21 & 1, "ieee": r >> 23 & 1,
                "fp16_ovfl": r >> 26 & 1}


@dataclass(frozen=True)
class KernelArg:
    offset: int
    size: int
    value_kind: str
    name: str | None = None
    address_space: str | None = None

    @property
    def hidden(self) -> bool:
        return self.value_kind.startswith("hidden_")


@dataclass
class Kernel:
    name: str
    symbol: str
    args: list[KernelArg]
    kernarg_segment_size: int
    kernarg_segment_align: int
    group_segment_fixed_size: int
    private_segment_fixed_size: int
    vgpr_count: int
    agpr_count: int
    sgpr_count: int
    vgpr_spill_count: int
    sgpr_spill_count: int
    max_flat_workgroup_size: int
    wavefront_size: int
    uses_dynamic_stack: bool
    descriptor: KernelDescriptor
    descriptor_address: int
    metadata: dict = field(repr=False, default_factory=dict)
    code_size: int = 0

    @property
    def entry(self) -> int:
        """Virtual address of the first instruction."""
        return self.descriptor_address + self.descriptor.kernel_code_entry_byte_offset

    @property
    def explicit_args(self) -> list[KernelArg]:
        return [a for a in self.args if not a.hidden]

    @property
    def spills(self) -> int:
        return self.vgpr_spill_count + self.sgpr_spill_count


@dataclass
class CodeObject:
    source: str
    target: str          # e.g. "amdgcn-amd-amdhsa--gfx950"
    arch: str            # e.g. "gfx950"
    e_flags: int
    abi_version: int
    metadata_version: tuple[int, ...]
    kernels: dict[str, Kernel]
    segments: list[tuple[int, bytes]]   # (virtual address, bytes) of each PT_LOAD, zero-filled to memsz

    def read(self, vaddr: int, size: int) -> bytes:
        """Bytes of the loaded image at a virtual address."""
        for base, data in self.segments:
            if base <= vaddr and vaddr + size <= base + len(data):
                return data[vaddr - base: vaddr - base + size]
        raise CodeObjectError(self.source, f"address {vaddr:#x}+{size} is outside every loadable segment")

    def segment_end(self, vaddr: int) -> int:
        for base, data in self.segments:
            if base <= vaddr < base + len(data):
                return base + len(data)
        raise CodeObjectError(self.source, f"address {vaddr:#x} is outside every loadable segment")

    def kernel(self, name: str) -> Kernel:
        try:
            return self.kernels[name]
        except KeyError:
            raise KeyError(f"{self.source}: no kernel named {name!r} (has: {', '.join(self.kernels)})") from None


def _arch_of_target(target: str) -> str:
    # "amdgcn-amd-amdhsa--gfx950:sramecc+:xnack-" -> "gfx950" (feature suffixes may end in '-')
    return target.rsplit("--", 1)[-1].split(":", 1)[0]


def _decode(obj):
    """msgpack maps may carry bytes keys/values depending on the producer; normalise to str."""
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, dict):
        return {_decode(k): _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def parse(data: bytes | bytearray | memoryview | str | os.PathLike, *, source: str | None = None,
          expect_arch: str | None = "gfx950") -> CodeObject:
    """Parse a code object from bytes or a path. Raises CodeObjectError (or WrongArchitectureError)."""
    if isinstance(data, (str, os.PathLike)):
        source = source or os.fspath(data)
        try:
            with open(data, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise CodeObjectError(source, f"cannot read: {exc.strerror}") from None
    source = source or "<code object in memory>"
    data = bytes(data)
    if len(data) < 4 or data[:4] != b"\x7fELF":
        raise CodeObjectError(source, "not an ELF file (bad magic)")
    if len(data) < 64:
        raise CodeObjectError(source, f"truncated: {len(data)} bytes is shorter than an ELF header")
    try:
        return _parse_elf(data, source, expect_arch)
    except CodeObjectError:
        raise
    # A corrupt header can make the ELF reader chase absurd sizes or offsets (MemoryError, OverflowError)
    except (ELFError, struct.error, msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException,
            ValueError, IndexError, KeyError, TypeError, AssertionError, AttributeError, MemoryError,
            OverflowError) as exc:
        raise CodeObjectError(source, f"truncated or corrupt code object ({type(exc).__name__}: {exc})") from None


def _parse_elf(data: bytes, source: str, expect_arch: str | None) -> CodeObject:
    elf = ELFFile(io.BytesIO(data))
    h = elf.header
    if elf.elfclass != 64 or h["e_machine"] not in ("EM_AMDGPU", EM_AMDGPU):
        raise CodeObjectError(source, f"not an AMDGPU code object (ELF machine {h['e_machine']}, class {elf.elfclass})")
    shend = h["e_shoff"] + h["e_shnum"] * h["e_shentsize"]
    phend = h["e_phoff"] + h["e_phnum"] * h["e_phentsize"]
    if shend > len(data) or phend > len(data):
        raise CodeObjectError(source, f"truncated: headers extend to byte {max(shend, phend)} of {len(data)}")
    e_flags = h["e_flags"]
    mach_arch = MACH_NAMES.get(e_flags & EF_AMDGPU_MACH, f"mach {e_flags & EF_AMDGPU_MACH:#x}")

    meta = None
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_NOTE":
            continue
        if sec["sh_offset"] + sec["sh_size"] > len(data):
            raise CodeObjectError(source, f"truncated: section {sec.name} runs past the end of the file")
        for note in sec.iter_notes():
            if note["n_name"] == "AMDGPU" and note["n_type"] in (NT_AMDGPU_METADATA, "NT_AMDGPU_METADATA"):
                desc = note["n_desc"]
                raw = desc if isinstance(desc, (bytes, bytearray)) else desc.encode("latin-1")
                meta = _decode(msgpack.unpackb(raw, raw=False, strict_map_key=False))
    if meta is None:
        raise CodeObjectError(source, "no AMDGPU metadata note (not a code object v3+?)")

    target = meta.get("amdhsa.target", "")
    arch = _arch_of_target(target) if target else mach_arch
    if expect_arch is not None and arch != expect_arch:
        raise WrongArchitectureError(source, arch, expect_arch)

    segments = []
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD":
            off, filesz, memsz, vaddr = seg["p_offset"], seg["p_filesz"], seg["p_memsz"], seg["p_vaddr"]
            if off + filesz > len(data):
                raise CodeObjectError(source, "truncated: a loadable segment runs past the end of the file")
            # a corrupt header must not cost gigabytes of host memory when the image is placed
            if memsz < filesz or vaddr + memsz > MAX_LOADED_BYTES:
                raise CodeObjectError(source, f"a loadable segment claims {memsz} bytes at {vaddr:#x} "
                                      f"({filesz} in the file); at most {MAX_LOADED_BYTES >> 20} MiB are loaded")
            segments.append((vaddr, data[off:off + filesz] + bytes(memsz - filesz)))

    symtab = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
    symbols = {s.name: s["st_value"] for s in symtab.iter_symbols()} if symtab else {}
    sizes = {s.name: s["st_size"] for s in symtab.iter_symbols()} if symtab else {}

    co = CodeObject(source=source, target=target, arch=arch, e_flags=e_flags, abi_version=h["e_ident"]["EI_ABIVERSION"],
                    metadata_version=tuple(meta.get("amdhsa.version", ())), kernels={}, segments=segments)
    for km in meta.get("amdhsa.kernels", []):
        sym = km[".symbol"]
        if sym not in symbols:
            raise CodeObjectError(source, f"kernel descriptor symbol {sym} is missing from the symbol table")
        kd_addr = symbols[sym]
        kd = KernelDescriptor.unpack(co.read(kd_addr, KernelDescriptor.SIZE))
        args = [KernelArg(offset=a[".offset"], size=a[".size"], value_kind=a[".value_kind"],
                          name=a.get(".name"), address_space=a.get(".address_space")) for a in km.get(".args", [])]
        k = Kernel(
            name=km[".name"], symbol=sym, args=args,
            kernarg_segment_size=km[".kernarg_segment_size"],
            kernarg_segment_align=km.get(".kernarg_segment_align", 8),
            group_segment_fixed_size=km[".group_segment_fixed_size"],
            private_segment_fixed_size=km[".private_segment_fixed_size"],
            vgpr_count=km.get(".vgpr_count", 0), agpr_count=km.get(".agpr_count", 0),
            sgpr_count=km.get(".sgpr_count", 0),
            vgpr_spill_count=km.get(".vgpr_spill_count", 0), sgpr_spill_count=km.get(".sgpr_spill_count", 0),
            max_flat_workgroup_size=km[".max_flat_workgroup_size"], wavefront_size=km.get(".wavefront_size", 64),
            uses_dynamic_stack=bool(km.get(".uses_dynamic_stack", False)),
            descriptor=kd, descriptor_address=kd_addr, metadata=km)
        # The function symbol's size bounds the code; without one, run to the end of its segment.
        k.code_size = sizes.get(k.name) or co.segment_end(k.entry) - k.entry
        co.read(k.entry, max(4, k.code_size))  # the code must lie inside the image
        co.kernels[k.name] = k
    if not co.kernels:
        raise CodeObjectError(source, "the metadata lists no kernels")
    return co
