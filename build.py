#!/usr/bin/env python3
"""The AOT build: compile every kernel variant in kernels/variants.toml for gfx950.

Each variant becomes a plain ELF code object hkrt/_kernels/gfx950/<name>.co, and
hkrt/_kernels/gfx950/manifest.json records what the runtime needs without opening
ELF files. Incremental: a variant whose source, headers, flags and compiler are
unchanged is not recompiled. Fails, naming the kernel, on a compile error, a
register spill, scratch use, or a launch that the kernel's metadata cannot take.

    python3 build.py [--force] [--jobs N] [--out DIR] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import toolchain  # noqa: E402
from hkrt import codeobject  # noqa: E402
from hkrt import manifest as mf  # noqa: E402

ARCH = "gfx950"
KERNELS = ROOT / "kernels"
INCLUDE = KERNELS / "include"
TABLE = KERNELS / "variants.toml"
BASE_FLAGS = ["-O3", "-std=c++20", f"--offload-arch={ARCH}", "--cuda-device-only", "--no-gpu-bundle-output",
              "-Wall", "-Werror"]
REQUIRED = {"name", "source", "defines", "threads", "dynamic_lds", "tile", "strategy", "epilogue", "dtypes",
            "b_layout"}


class BuildError(RuntimeError):
    pass


def read_table(path: Path = TABLE) -> list[dict]:
    variants = tomllib.loads(path.read_text()).get("variant", [])
    names = set()
    for v in variants:
        missing = REQUIRED - v.keys()
        if missing:
            raise BuildError(f"{path}: variant {v.get('name', '?')} lacks {sorted(missing)}")
        form = v.get("form")
        if form is not None and (set(form) != {"activation", "reads_c"} or
                                 form["activation"] not in mf.ACTIVATION_CODES or
                                 not isinstance(form["reads_c"], bool)):
            raise BuildError(f"{path}: variant {v['name']}: form must be {{ activation = none|relu|gelu|silu, "
                             f"reads_c = true|false }}, not {form}")
        if v["name"] in names:
            raise BuildError(f"{path}: variant name {v['name']} appears twice")
        names.add(v["name"])
    return variants


def flags_for(v: dict) -> list[str]:
    return BASE_FLAGS + [f"-I{INCLUDE}"] + [f"-D{k}={val}" for k, val in sorted(v["defines"].items())]


def source_hash(v: dict) -> str:
    """Hash of the variant's source and every header it could include."""
    h = hashlib.sha256()
    for p in [KERNELS / v["source"], *sorted(INCLUDE.rglob("*"))]:
        if p.is_file():
            h.update(str(p.relative_to(KERNELS)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def build_key(v: dict, src_hash: str, compiler: str) -> str:
    return hashlib.sha256(json.dumps([src_hash, flags_for(v), compiler], sort_keys=True).encode()).hexdigest()


def compile_variant(tc: toolchain.Toolchain, v: dict, out: Path) -> float:
    tmp = out.with_suffix(".co.tmp")
    cmd = [tc.hipcc, *flags_for(v), "-c", str(KERNELS / v["source"]), "-o", str(tmp)]
    env = dict(os.environ, HKRT_MOUNT=f"{ROOT}:{out.parent}")
    start = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise BuildError(f"kernel {v['name']}: compile failed\n$ {' '.join(cmd)}\n{res.stderr}")
    tmp.replace(out)
    return time.time() - start


def describe(v: dict, co_path: Path, src_hash: str, key: str, compiler: str) -> dict:
    """The manifest entry: the table's launch parameters plus the code object's metadata."""
    co = codeobject.parse(co_path, expect_arch=ARCH)
    if len(co.kernels) != 1:
        raise BuildError(f"kernel {v['name']}: expected one kernel in {co_path.name}, found {list(co.kernels)}")
    k = next(iter(co.kernels.values()))
    name = v["name"]
    if k.spills:
        raise BuildError(f"kernel {name}: spills registers ({k.vgpr_spill_count} VGPR, {k.sgpr_spill_count} SGPR)")
    if k.private_segment_fixed_size or k.uses_dynamic_stack:
        raise BuildError(f"kernel {name}: uses scratch ({k.private_segment_fixed_size} bytes per lane"
                         f"{', dynamic stack' if k.uses_dynamic_stack else ''})")
    if v["threads"] > k.max_flat_workgroup_size or v["threads"] % k.wavefront_size:
        raise BuildError(f"kernel {name}: launches {v['threads']} threads but its max workgroup size is "
                         f"{k.max_flat_workgroup_size} (wave {k.wavefront_size})")
    lds = k.group_segment_fixed_size + v["dynamic_lds"]
    if lds > mf.MAX_LDS_BYTES:
        raise BuildError(f"kernel {name}: needs {lds} bytes of LDS, more than gfx950's {mf.MAX_LDS_BYTES}")
    return {
        "code_object": co_path.name,
        "symbol": k.name,
        "descriptor_symbol": k.symbol,
        "args": [{"name": a.name, "offset": a.offset, "size": a.size, "kind": a.value_kind,
                  "address_space": a.address_space} for a in k.args],
        "kernarg_size": k.kernarg_segment_size,
        "kernarg_align": k.kernarg_segment_align,
        "static_lds": k.group_segment_fixed_size,
        # On gfx90a+ the metadata's vgpr_count is the unified total (arch VGPRs aligned to 4, then AGPRs).
        "vgpr_unified": k.vgpr_count,
        "arch_vgpr": k.descriptor.accum_offset if k.agpr_count else k.vgpr_count,
        "agpr": k.agpr_count, "sgpr": k.sgpr_count,
        "vgpr_spill": k.vgpr_spill_count, "sgpr_spill": k.sgpr_spill_count,
        "scratch_bytes": k.private_segment_fixed_size,
        "max_workgroup_size": k.max_flat_workgroup_size,
        "wavefront_size": k.wavefront_size,
        "launch": {key_: v[key_] for key_ in ("threads", "dynamic_lds", "tile", "strategy", "epilogue", "dtypes",
                                             "b_layout", "form") if key_ in v},
        "source": v["source"],
        "defines": v["defines"],
        "source_hash": src_hash,
        "build_key": key,
        "compiler": compiler,
        "co_sha256": hashlib.sha256(co_path.read_bytes()).hexdigest(),
    }


def build(force: bool = False, jobs: int | None = None, out_root: Path | None = None,
          only: list[str] | None = None) -> dict:
    start = time.time()
    variants = read_table()
    if only:
        unknown = set(only) - {v["name"] for v in variants}
        if unknown:
            raise BuildError(f"unknown variant(s) {sorted(unknown)}; the table has {[v['name'] for v in variants]}")
        variants = [v for v in variants if v["name"] in only]
    try:
        tc = toolchain.ensure()
    except toolchain.ToolchainError as exc:
        raise BuildError(str(exc)) from None
    out_dir = mf.arch_dir(ARCH, out_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    mpath = mf.manifest_path(ARCH, out_root)
    old = json.loads(mpath.read_text()).get("kernels", {}) if mpath.exists() else {}
    if only:  # a partial build keeps the other entries
        entries = {n: e for n, e in old.items() if (out_dir / e["code_object"]).exists()}
    else:
        entries = {}

    todo, fresh_variants, keys = [], [], {}
    for v in variants:
        src = source_hash(v)
        key = build_key(v, src, tc.version)
        keys[v["name"]] = (src, key)
        co_path = out_dir / f"{v['name']}.co"
        prev = old.get(v["name"])
        fresh = (not force and prev and prev.get("build_key") == key and co_path.exists()
                 and hashlib.sha256(co_path.read_bytes()).hexdigest() == prev.get("co_sha256"))
        (fresh_variants if fresh else todo).append(v)

    errors = []
    # Up-to-date objects are still re-described, so table edits and checks always apply.
    for v in fresh_variants:
        try:
            entries[v["name"]] = describe(v, out_dir / f"{v['name']}.co", *keys[v["name"]], tc.version)
        except (BuildError, codeobject.CodeObjectError) as exc:
            errors.append(str(exc))
    with cf.ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        futures = {pool.submit(compile_variant, tc, v, out_dir / f"{v['name']}.co"): v for v in todo}
        for fut in cf.as_completed(futures):
            v = futures[fut]
            try:
                secs = fut.result()
                src, key = keys[v["name"]]
                entries[v["name"]] = describe(v, out_dir / f"{v['name']}.co", src, key, tc.version)
                print(f"[build] {v['name']}: compiled in {secs:.1f} s", file=sys.stderr)
            except (BuildError, codeobject.CodeObjectError) as exc:
                (out_dir / f"{v['name']}.co").unlink(missing_ok=True)
                errors.append(str(exc))
    # Drop code objects that no longer have a table entry.
    if not only:
        for stale in out_dir.glob("*.co"):
            if stale.stem not in entries:
                stale.unlink()
    manifest = {"arch": ARCH, "compiler": tc.version, "toolchain": tc.origin,
                "kernels": dict(sorted(entries.items()))}
    tmp = mpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(mpath)
    if errors:
        raise BuildError("\n".join(errors))
    print(f"[build] {len(entries)} kernels ({len(todo)} compiled, {len(entries) - len(todo)} up to date) "
          f"in {time.time() - start:.1f} s -> {out_dir}", file=sys.stderr)
    return manifest


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="recompile everything")
    ap.add_argument("--jobs", type=int, default=None, help="parallel compiles (default: CPU count)")
    ap.add_argument("--out", type=Path, default=None, help="output root (default: hkrt/_kernels)")
    ap.add_argument("--only", nargs="+", default=None, help="build only these variants")
    args = ap.parse_args(argv[1:])
    try:
        build(force=args.force, jobs=args.jobs, out_root=args.out, only=args.only)
    except BuildError as exc:
        print(f"[build] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
