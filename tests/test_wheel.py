"""The wheel (`make wheel`): it holds the Python package, the gfx950 code objects with their manifest and
the C sources the emulator builds on first use, and nothing built for the host; installed into a fresh
virtual environment on a machine without hipcc, `python -m hkrt demo` runs, building the emulator's
native parts into the user's cache and writing nothing into site-packages.

The wheel is built from a copy of the tree (so a stale build/ cannot leak into it) with the command
`make wheel` runs. The fresh environment gets its dependencies from the package index, as a user's does.
"""
from __future__ import annotations

import email.parser
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import hkrt
from hkrt import manifest as mf

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hkrt"
# What the native builds read besides Python sources (build_core.py and hip/build.py glob these).
C_SOURCES = sorted([*PACKAGE.glob("emu/*.[ch]"), *PACKAGE.glob("emu/hip/*.h")])


def run(cmd, timeout, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    mf.load()  # no kernels built: fail here, naming `make kernels`
    src = tmp_path_factory.mktemp("source")
    shutil.copytree(PACKAGE, src / "hkrt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    start = time.perf_counter()
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dist), str(src)], timeout=600)
    print(f"wheel built in {time.perf_counter() - start:.1f} s")
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def package_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    assert {n.split("/")[1] for n in info} <= {"METADATA", "WHEEL", "RECORD", "top_level.txt"}, info
    return names - info


def test_the_wheel_holds_the_kernels_the_c_sources_and_the_package_and_nothing_built(wheel):
    names = package_files(wheel)
    manifest = mf.load()
    kernels = {f"hkrt/_kernels/{manifest['arch']}/{e['code_object']}" for e in manifest["kernels"].values()}
    manifest_file = f"hkrt/_kernels/{manifest['arch']}/{mf.MANIFEST_NAME}"
    c_sources = {p.relative_to(ROOT).as_posix() for p in C_SOURCES}
    python = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert {"hkrt/emu/core.c", "hkrt/emu/timing_model.c", "hkrt/emu/core_api.h"} <= c_sources
    expected = kernels | {manifest_file} | c_sources | python
    assert names == expected, f"missing {sorted(expected - names)}, unexpected {sorted(names - expected)}"
    with zipfile.ZipFile(wheel) as zf:
        for e in manifest["kernels"].values():
            data = zf.read(f"hkrt/_kernels/{manifest['arch']}/{e['code_object']}")
            assert hashlib.sha256(data).hexdigest() == e["co_sha256"], e["code_object"]
        for p in C_SOURCES:
            assert zf.read(p.relative_to(ROOT).as_posix()) == p.read_bytes(), p


def test_the_wheel_is_pure_and_takes_its_version_from_the_package(wheel):
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(info).decode())
        tags = email.parser.Parser().parsestr(zf.read(info.replace("METADATA", "WHEEL")).decode())
    assert meta["Version"] == hkrt.__version__
    assert wheel.name == f"hkrt-{hkrt.__version__}-py3-none-any.whl"
    assert tags["Root-Is-Purelib"] == "true" and tags.get_all("Tag") == ["py3-none-any"]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_installed_in_a_fresh_venv_without_hipcc_the_demo_runs(wheel, tmp_path):
    venv = tmp_path / "venv"
    start = time.perf_counter()
    run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    vpy = venv / "bin" / "python"
    outside = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("HKRT_")}
    run([str(vpy), "-m", "pip", "install", "-q", str(wheel)], timeout=900, env=outside)
    installed = time.perf_counter()
    site = Path(run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    timeout=60).stdout.strip())
    assert (site / "hkrt" / "__init__.py").is_file() and not (site / "hkrt" / "__init__.py").is_relative_to(ROOT)
    before = snapshot(site)

    # A user's machine: no hipcc on PATH, a home whose cache is empty, no HKRT_* or PYTHONPATH, and a
    # working directory outside the checkout.
    home, work = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    work.mkdir()
    path = f"{venv / 'bin'}:/usr/bin:/bin"
    assert shutil.which("hipcc", path=path) is None, "hipcc on the test's PATH: this would not prove anything"
    env = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"}
    demo = run([str(vpy), "-m", "hkrt", "demo"], timeout=600, cwd=work, env=env)
    done = time.perf_counter()
    print(f"venv + install {installed - start:.1f} s, first demo (builds the native parts) {done - installed:.1f} s")
    assert "within the error bound" in demo.stdout, demo.stdout + demo.stderr
    assert "running on the gfx950 emulator" in demo.stderr, demo.stderr

    native = home / ".cache" / "hkrt" / "native"
    built = sorted(p.parent.name.split("-")[0] for p in native.glob("*/*.so"))
    assert built == ["core", "hip"], sorted(native.rglob("*"))
    assert snapshot(site) == before, "the first use wrote into site-packages"
    assert not list((site / "hkrt").rglob("*.so"))
