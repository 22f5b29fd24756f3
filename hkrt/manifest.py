"""The kernel manifest that `make kernels` writes inside the package."""
from __future__ import annotations

import json
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parent / "_kernels"
MANIFEST_NAME = "manifest.json"
MAX_LDS_BYTES = 160 * 1024  # per workgroup on gfx950


def arch_dir(arch: str = "gfx950", root: Path | None = None) -> Path:
    return (root or KERNELS_DIR) / arch


def manifest_path(arch: str = "gfx950", root: Path | None = None) -> Path:
    return arch_dir(arch, root) / MANIFEST_NAME


class ManifestMissingError(FileNotFoundError):
    pass


def load(arch: str = "gfx950", root: Path | None = None) -> dict:
    """The manifest for an architecture; a clear error if it was never built."""
    path = manifest_path(arch, root)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestMissingError(f"no kernels are built for {arch} ({path} is missing); "
                                   f"run `make kernels` in the hkrt source tree") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestMissingError(f"{path} is corrupt ({exc}); run `make kernels` to rebuild it") from None
