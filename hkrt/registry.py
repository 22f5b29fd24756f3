"""The kernel registry: the manifest `make kernels` writes, read once; code objects loaded lazily (once per
device, under a lock) after checking they are the ones the manifest describes; launches with arguments
packed by the code object's own metadata."""
from __future__ import annotations

import hashlib
import struct
import threading
from dataclasses import dataclass, field

from . import codeobject
from . import manifest as mf
from .devices import Device
from .errors import KernelNotFoundError, LaunchConfigError
from .memory import stream_handle

MAX_GRID = (2**31 - 1, 65535, 65535)

_lock = threading.Lock()
_manifests: dict[str, mf.Manifest] = {}
_loaded: dict[tuple[Device, str], "LoadedKernel"] = {}   # per Device object: two drivers' devices may share an index


def manifest(arch: str) -> mf.Manifest:
    with _lock:
        if arch not in _manifests:
            try:
                _manifests[arch] = mf.read(arch)
            except mf.ManifestMissingError as exc:
                raise KernelNotFoundError(str(exc)) from None
        return _manifests[arch]


def spec(arch: str, name: str) -> mf.KernelSpec:
    try:
        kernels = manifest(arch).kernels
    except KernelNotFoundError as exc:
        raise KernelNotFoundError(f"kernel {name}: {exc}") from None
    if name not in kernels:
        raise KernelNotFoundError(f"no kernel {name!r} is built for {arch} (built: {', '.join(sorted(kernels))}); "
                                  f"add it to kernels/variants.toml and run `make kernels`")
    return kernels[name]


@dataclass(frozen=True)
class Addr:
    """A 64-bit argument known only when a prepared launch runs: the value bound to `slot` (a device
    address, or a per-run number such as the split-K epoch), plus `offset`. Arithmetic on it (base + i *
    stride) stays symbolic."""
    slot: str
    offset: int = 0

    def __add__(self, other: int) -> "Addr":
        return Addr(self.slot, self.offset + int(other))

    __radd__ = __add__


def pack_args(spec_: mf.KernelSpec, values: list) -> bytes:
    """The explicit part of the kernarg segment, placed by the metadata's offsets and sizes."""
    raw, patches = pack_template(spec_, values)
    if patches:
        raise TypeError(f"kernel {spec_.name}: symbolic addresses {[p[1] for p in patches]} need a prepared launch")
    return raw


def pack_template(spec_: mf.KernelSpec, values: list) -> tuple[bytes, tuple[tuple[int, str, int], ...]]:
    """The kernarg segment with every Addr left zero, and where each goes: (byte offset, slot, addend)."""
    explicit = spec_.explicit_args
    if len(values) != len(explicit):
        raise TypeError(f"kernel {spec_.name} takes {len(explicit)} arguments, got {len(values)}")
    buf = bytearray(spec_.kernarg_size)
    patches = []
    for arg, value in zip(explicit, values):
        if isinstance(value, Addr):
            if arg.size != 8:
                raise TypeError(f"kernel {spec_.name}: argument at offset {arg.offset} is not 64-bit, so no slot "
                                f"value can go there")
            patches.append((arg.offset, value.slot, value.offset))
            continue
        if arg.kind == "global_buffer":
            raw = int(value).to_bytes(8, "little")
        elif isinstance(value, float):
            raw = struct.pack({4: "<f", 8: "<d"}[arg.size], value)
        else:
            v = int(value)
            raw = v.to_bytes(arg.size, "little", signed=v < 0)
        buf[arg.offset:arg.offset + arg.size] = raw[:arg.size]
    return bytes(buf), tuple(patches)


def mismatches(spec_: mf.KernelSpec, image: bytes, kernel: codeobject.Kernel) -> list[str]:
    """How a parsed code object differs from what the manifest says of it (empty: it is the one)."""
    found = []
    if hashlib.sha256(image).hexdigest() != spec_.sha256:
        found.append("its contents are not the ones built")
    args = tuple((a.offset, a.size, a.value_kind) for a in kernel.args if not a.hidden)
    want = tuple((a.offset, a.size, a.kind) for a in spec_.explicit_args)
    if args != want:
        found.append(f"its arguments (offset, size, kind) are {args}, the manifest's {want}")
    for what, have, expect in (("kernarg size", kernel.kernarg_segment_size, spec_.kernarg_size),
                               ("static LDS", kernel.group_segment_fixed_size, spec_.static_lds),
                               ("max workgroup size", kernel.max_flat_workgroup_size, spec_.max_workgroup_size)):
        if have != expect:
            found.append(f"its {what} is {have}, the manifest's {expect}")
    return found


@dataclass(eq=False)
class LoadedKernel:
    spec: mf.KernelSpec
    device: Device
    module: object = field(repr=False)
    function: object = field(repr=False)
    _lds_attr: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def launch(self, grid, args: list, *, stream=None, dynamic_lds: int | None = None, block=None) -> None:
        self.bind(grid, args, dynamic_lds=dynamic_lds, block=block)({}, stream_handle(stream))

    def bind(self, grid, args: list, *, dynamic_lds: int | None = None, block=None) -> "BoundLaunch":
        """This kernel's launch with its geometry checked and its arguments packed once; pointer arguments
        given as Addr are filled in from the slots each run is given."""
        la = self.spec.launch
        block = tuple(block or (la.threads, 1, 1))
        dynamic_lds = la.dynamic_lds if dynamic_lds is None else dynamic_lds
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        threads = block[0] * block[1] * block[2]
        limit = min(self.spec.max_workgroup_size, self.device.info.max_threads_per_block)
        if not 0 < threads <= limit:
            raise LaunchConfigError(f"kernel {self.name}: {threads} threads per block, but at most {limit} fit")
        if any(not 1 <= g <= m for g, m in zip(grid, MAX_GRID)):
            raise LaunchConfigError(f"kernel {self.name}: grid {grid} outside 1..{MAX_GRID}")
        lds = self.spec.static_lds + dynamic_lds
        if lds > self.device.info.max_lds_per_block:
            raise LaunchConfigError(f"kernel {self.name}: needs {lds} bytes of LDS, the device has "
                                    f"{self.device.info.max_lds_per_block} per block")
        kernarg, patches = pack_template(self.spec, args)
        self.device.activate()
        if dynamic_lds > self._lds_attr:
            self.device.driver.set_max_dynamic_lds(self.function, dynamic_lds)
            self._lds_attr = dynamic_lds
        return BoundLaunch(self, grid, patches, self.device.driver.prepare_launch(self.function, grid, block,
                                                                                 dynamic_lds, kernarg))


@dataclass(eq=False)
class BoundLaunch:
    """A kernel launch ready to run again and again: only the slots' pointers change between runs."""
    kernel: LoadedKernel
    grid: tuple
    patches: tuple          # (kernarg byte offset, slot, addend)
    prepared: object = field(repr=False)   # the driver's PreparedLaunch

    def __call__(self, slots: dict[str, int], stream) -> None:
        args = self.prepared.args
        for offset, slot, addend in self.patches:
            ADDRESS.pack_into(args, offset, slots[slot] + addend)
        self.prepared(stream)


ADDRESS = struct.Struct("<Q")


def forget(device: Device) -> None:
    """Drop the kernels loaded on a device that is being reset (its modules go with the reset)."""
    with _lock:
        for key in [key for key in _loaded if key[0] is device]:
            del _loaded[key]


def kernel(device: Device, name: str) -> LoadedKernel:
    """The kernel `name` loaded on `device` (loaded on first use)."""
    key = (device, name)
    k = _loaded.get(key)
    if k is not None:
        return k
    s = spec(device.arch, name)
    path = manifest(device.arch).directory / s.code_object
    with _lock:
        k = _loaded.get(key)
        if k is None:
            try:
                image = path.read_bytes()
            except FileNotFoundError:
                raise KernelNotFoundError(f"code object {path} for kernel {name} ({device.arch}) is missing; "
                                          f"run `make kernels`") from None
            # Checked before HIP sees it: HIP's own refusal names neither the kernel nor the architectures,
            # and a code object swapped under the manifest would run with the wrong arguments or output.
            try:
                co = codeobject.parse(image, source=str(path), expect_arch=None)
            except codeobject.CodeObjectError as exc:
                raise KernelNotFoundError(f"kernel {name}: {exc}; run `make kernels` to rebuild it") from None
            if co.arch != device.arch:
                raise KernelNotFoundError(f"kernel {name}: {path} is built for {co.arch}, but {device} is "
                                          f"{device.arch}; run `make kernels` to build it for {device.arch}")
            if s.symbol not in co.kernels:
                raise KernelNotFoundError(f"kernel {name}: {path} has no kernel {s.symbol!r} (has "
                                          f"{', '.join(co.kernels)}); it does not match the manifest, run "
                                          f"`make kernels`")
            wrong = mismatches(s, image, co.kernels[s.symbol])
            if wrong:
                raise KernelNotFoundError(f"kernel {name}: {path} does not match the manifest: {'; '.join(wrong)}; "
                                          f"run `make kernels` to rebuild it")
            device.activate()
            module = device.driver.module_load(image)
            function = device.driver.module_function(module, s.symbol)
            k = _loaded[key] = LoadedKernel(s, device, module, function)
    return k
