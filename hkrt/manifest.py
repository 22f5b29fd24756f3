"""The kernel manifest that `make kernels` writes inside the package, and its typed records.

`load` gives the JSON as written (for the build and for tools); `read` gives it parsed once into
KernelSpec records, which is what the runtime works with: no string-keyed dicts past this module.
"""
from __future__ import annotations

import json
from functools import cached_property
from dataclasses import dataclass
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parent / "_kernels"
MANIFEST_NAME = "manifest.json"
TARGET_ARCH = "gfx950"      # what `make kernels` builds for; at run time the device's own figures apply
MAX_LDS_BYTES = 160 * 1024  # per workgroup on gfx950: the build refuses kernels that need more
NON_GEMM = ("epilogue", "repack")  # strategies of the helper kernels


def arch_dir(arch: str = TARGET_ARCH, root: Path | None = None) -> Path:
    return (root or KERNELS_DIR) / arch


def manifest_path(arch: str = TARGET_ARCH, root: Path | None = None) -> Path:
    return arch_dir(arch, root) / MANIFEST_NAME


class ManifestMissingError(FileNotFoundError):
    pass


def load(arch: str = TARGET_ARCH, root: Path | None = None) -> dict:
    """The manifest for an architecture as written; a clear error if it was never built."""
    path = manifest_path(arch, root)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestMissingError(f"no kernels are built for {arch} ({path} is missing); "
                                   f"run `make kernels` in the hkrt source tree") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestMissingError(f"{path} is corrupt ({exc}); run `make kernels` to rebuild it") from None


@dataclass(frozen=True)
class Arg:
    """One kernel argument as the code object's metadata places it in the kernarg segment."""
    offset: int
    size: int
    kind: str            # metadata value kind: "global_buffer", "by_value", "hidden_..."

    @property
    def hidden(self) -> bool:
        return self.kind.startswith("hidden_")


@dataclass(frozen=True)
class Tile:
    m: int
    n: int
    k: int


@dataclass(frozen=True)
class EpilogueForm:
    """The one epilogue a kernel has compiled in: its activation code (0 none, 1 relu, 2 gelu, 3 silu, as the
    kernels number them) and whether it reads Cin (beta * Cin)."""
    act: int
    reads_c: bool


ACTIVATION_CODES = {"none": 0, "relu": 1, "gelu": 2, "silu": 3}


@dataclass(frozen=True)
class LaunchSpec:
    """How the runtime launches a variant and what it computes (the variant table's columns)."""
    threads: int
    dynamic_lds: int
    tile: Tile
    strategy: str        # the kernel family the strategy table picks by
    epilogue: str        # "none", "alpha_beta_bias_act" (fused), "split_k_fused" (split K, finished fused),
    #                      "stream_k" (blocks share out the tiles' K iterations, no epilogue) or
    #                      "stream_k_fused" (the same, fused)
    out: str             # what it writes to C: "bf16" or "f32"
    b_layout: str        # how it reads B: "kn" or "nk"
    form: EpilogueForm | None = None  # a fused kernel's one epilogue; None: it takes any at run time

    @property
    def fused(self) -> bool:
        return self.epilogue in ("alpha_beta_bias_act", "split_k_fused", "stream_k_fused")

    @property
    def splits_k(self) -> bool:
        """It splits K over grid.z (its blocks sum the splits themselves)."""
        return self.epilogue == "split_k_fused"

    @property
    def stream_k(self) -> bool:
        """Its grid is any number of blocks sharing out the tiles' K iterations (kernels/gemm_pingpong.hip)."""
        return self.epilogue in ("stream_k", "stream_k_fused")

    @property
    def is_gemm(self) -> bool:
        return self.strategy not in NON_GEMM


@dataclass(frozen=True)
class KernelSpec:
    """A built variant: its code object, its metadata as the build read it, and its launch."""
    name: str
    code_object: str     # file name inside the architecture's directory
    symbol: str
    args: tuple[Arg, ...]
    kernarg_size: int
    static_lds: int
    max_workgroup_size: int
    sha256: str          # of the code object, to know it is the one described
    launch: LaunchSpec
    arch_vgpr: int = 0
    agpr: int = 0
    sgpr: int = 0

    @cached_property  # read on every launch
    def explicit_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if not a.hidden)


@dataclass(frozen=True)
class Manifest:
    arch: str
    compiler: str
    toolchain: str
    path: Path
    kernels: dict[str, KernelSpec]

    @property
    def directory(self) -> Path:
        return self.path.parent

    def gemm_kernels(self) -> dict[str, KernelSpec]:
        return {n: k for n, k in self.kernels.items() if k.launch.is_gemm}

    def families(self) -> list[str]:
        return sorted({k.launch.strategy for k in self.gemm_kernels().values()})


def _kernel(name: str, e: dict) -> KernelSpec:
    la = e["launch"]
    return KernelSpec(
        name=name, code_object=e["code_object"], symbol=e["symbol"],
        args=tuple(Arg(int(a["offset"]), int(a["size"]), str(a["kind"])) for a in e["args"]),
        kernarg_size=int(e["kernarg_size"]), static_lds=int(e["static_lds"]),
        max_workgroup_size=int(e["max_workgroup_size"]), sha256=str(e["co_sha256"]),
        arch_vgpr=int(e.get("arch_vgpr", 0)), agpr=int(e.get("agpr", 0)), sgpr=int(e.get("sgpr", 0)),
        launch=LaunchSpec(threads=int(la["threads"]), dynamic_lds=int(la["dynamic_lds"]),
                          tile=Tile(**{d: int(la["tile"][d]) for d in "mnk"}), strategy=str(la["strategy"]),
                          epilogue=str(la["epilogue"]), out=str(la["dtypes"]["c"]), b_layout=str(la["b_layout"]),
                          form=_form(la.get("form"))))


def _form(raw: dict | None) -> EpilogueForm | None:
    return None if raw is None else EpilogueForm(ACTIVATION_CODES[raw["activation"]], bool(raw["reads_c"]))


def read(arch: str = TARGET_ARCH, root: Path | None = None) -> Manifest:
    """The manifest parsed into records; a missing or malformed one is a ManifestMissingError naming it."""
    raw = load(arch, root)
    path = manifest_path(arch, root)
    try:
        return Manifest(arch=str(raw["arch"]), compiler=str(raw.get("compiler", "?")),
                        toolchain=str(raw.get("toolchain", "?")), path=path,
                        kernels={str(n): _kernel(str(n), e) for n, e in raw["kernels"].items()})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestMissingError(f"{path} is malformed ({type(exc).__name__}: {exc}); run `make kernels` "
                                   f"to rebuild it") from None
