"""The kernel registry: reads the manifest `make kernels` writes, loads code objects lazily (once per
device, under a lock) and launches them with arguments packed from the code object's own metadata."""
from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field

from . import codeobject
from . import manifest as mf
from .devices import Device
from .errors import KernelNotFoundError, LaunchConfigError

MAX_GRID = (2**31 - 1, 65535, 65535)

_lock = threading.Lock()
_manifests: dict[str, dict] = {}
_loaded: dict[tuple[int, str], "LoadedKernel"] = {}


def manifest(arch: str) -> dict:
    with _lock:
        if arch not in _manifests:
            try:
                _manifests[arch] = mf.load(arch)
            except mf.ManifestMissingError as exc:
                raise KernelNotFoundError(str(exc)) from None
        return _manifests[arch]


def spec(arch: str, name: str) -> dict:
    try:
        kernels = manifest(arch)["kernels"]
    except KernelNotFoundError as exc:
        raise KernelNotFoundError(f"kernel {name}: {exc}") from None
    if name not in kernels:
        raise KernelNotFoundError(f"no kernel {name!r} is built for {arch} (built: {', '.join(sorted(kernels))}); "
                                  f"add it to kernels/variants.toml and run `make kernels`")
    return kernels[name]


def pack_args(entry: dict, values: list, name: str = "?") -> bytes:
    """The explicit part of the kernarg segment, placed by the metadata's offsets and sizes."""
    explicit = [a for a in entry["args"] if not a["kind"].startswith("hidden_")]
    if len(values) != len(explicit):
        raise TypeError(f"kernel {name} takes {len(explicit)} arguments, got {len(values)}")
    buf = bytearray(entry["kernarg_size"])
    for arg, value in zip(explicit, values):
        off, size, kind = arg["offset"], arg["size"], arg["kind"]
        if kind == "global_buffer":
            raw = int(value).to_bytes(8, "little")
        elif isinstance(value, float):
            raw = struct.pack({4: "<f", 8: "<d"}[size], value)
        else:
            v = int(value)
            raw = v.to_bytes(size, "little", signed=v < 0)
        buf[off:off + size] = raw[:size]
    return bytes(buf)


@dataclass(eq=False)
class LoadedKernel:
    name: str
    entry: dict
    device: Device
    module: object = field(repr=False)
    function: object = field(repr=False)
    _lds_attr: int = 0

    def launch(self, grid, args: list, *, stream=None, dynamic_lds: int | None = None, block=None) -> None:
        launch = self.entry["launch"]
        block = tuple(block or (launch["threads"], 1, 1))
        dynamic_lds = launch["dynamic_lds"] if dynamic_lds is None else dynamic_lds
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        threads = block[0] * block[1] * block[2]
        if not 0 < threads <= min(self.entry["max_workgroup_size"], self.device.info.max_threads_per_block):
            raise LaunchConfigError(f"kernel {self.name}: {threads} threads per block, but at most "
                                    f"{self.entry['max_workgroup_size']} fit")
        if any(not 1 <= g <= m for g, m in zip(grid, MAX_GRID)):
            raise LaunchConfigError(f"kernel {self.name}: grid {grid} outside 1..{MAX_GRID}")
        lds = self.entry["static_lds"] + dynamic_lds
        if lds > self.device.info.max_lds_per_block:
            raise LaunchConfigError(f"kernel {self.name}: needs {lds} bytes of LDS, the device has "
                                    f"{self.device.info.max_lds_per_block} per block")
        kernarg = pack_args(self.entry, args, self.name)
        self.device.activate()
        if dynamic_lds > self._lds_attr:
            self.device.driver.set_max_dynamic_lds(self.function, dynamic_lds)
            self._lds_attr = dynamic_lds
        handle = stream.handle if stream is not None else None
        self.device.driver.launch(self.function, grid, block, dynamic_lds, handle, kernarg)


def forget(device: Device) -> None:
    """Drop the kernels loaded on a device that is being reset (its modules go with the reset)."""
    with _lock:
        for key in [key for key in _loaded if key[0] == device.index]:
            del _loaded[key]


def kernel(device: Device, name: str) -> LoadedKernel:
    """The kernel `name` loaded on `device` (loaded on first use)."""
    key = (device.index, name)
    k = _loaded.get(key)
    if k is not None:
        return k
    entry = spec(device.arch, name)
    with _lock:
        k = _loaded.get(key)
        if k is None:
            path = mf.arch_dir(device.arch) / entry["code_object"]
            try:
                image = path.read_bytes()
            except FileNotFoundError:
                raise KernelNotFoundError(f"code object {path} for kernel {name} ({device.arch}) is missing; "
                                          f"run `make kernels`") from None
            # Check before HIP sees it: HIP's own refusal names neither the kernel nor the architectures.
            try:
                built_for = codeobject.parse(image, source=str(path), expect_arch=None).arch
            except codeobject.CodeObjectError as exc:
                raise KernelNotFoundError(f"kernel {name}: {exc}; run `make kernels` to rebuild it") from None
            if built_for != device.arch:
                raise KernelNotFoundError(f"kernel {name}: {path} is built for {built_for}, but {device} is "
                                          f"{device.arch}; run `make kernels` to build it for {device.arch}")
            device.activate()
            module = device.driver.module_load(image)
            function = device.driver.module_function(module, entry["symbol"])
            k = _loaded[key] = LoadedKernel(name, entry, device, module, function)
    return k
