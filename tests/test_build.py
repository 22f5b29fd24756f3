"""The AOT build: every table entry is built, and the manifest agrees with the table and the code objects."""
import hashlib
import os
import subprocess

import pytest

import build
from hkrt import codeobject
from hkrt import manifest as mf


def test_every_table_entry_has_a_code_object(manifest):
    table = {v["name"] for v in build.read_table()}
    assert table, "the variant table is empty"
    assert set(manifest["kernels"]) == table
    for name, entry in manifest["kernels"].items():
        path = mf.arch_dir() / entry["code_object"]
        assert path.is_file(), f"{name}: {path} missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["co_sha256"]


@pytest.mark.parametrize("variant", build.read_table(), ids=lambda v: v["name"])
def test_metadata_matches_the_table(manifest, variant):
    e = manifest["kernels"][variant["name"]]
    launch = e["launch"]
    for key in ("threads", "dynamic_lds", "tile", "strategy", "epilogue", "dtypes", "b_layout"):
        assert launch[key] == variant[key], key
    assert e["wavefront_size"] == 64
    assert launch["threads"] % 64 == 0
    assert launch["threads"] <= e["max_workgroup_size"]
    assert e["static_lds"] + launch["dynamic_lds"] <= 160 * 1024
    assert e["vgpr_spill"] == 0 and e["sgpr_spill"] == 0
    assert e["scratch_bytes"] == 0
    # .sgpr_count counts VCC, FLAT_SCRATCH and XNACK_MASK (6) on top of the 102 user SGPRs s0-s101
    assert 0 < e["arch_vgpr"] <= 256 and e["agpr"] <= 256 and e["vgpr_unified"] <= 512 and e["sgpr"] <= 102 + 6


def test_manifest_matches_the_code_objects(manifest):
    for name, e in manifest["kernels"].items():
        co = codeobject.parse(mf.arch_dir() / e["code_object"])
        k = co.kernel(e["symbol"])
        assert k.kernarg_segment_size == e["kernarg_size"]
        assert k.group_segment_fixed_size == e["static_lds"] == k.descriptor.group_segment_fixed_size
        assert k.descriptor.kernarg_size == e["kernarg_size"]
        assert [(a.offset, a.size, a.value_kind) for a in k.args] == \
            [(a["offset"], a["size"], a["kind"]) for a in e["args"]]
        # The unified register file holds the arch VGPRs, then the AGPRs from accum_offset on.
        assert k.descriptor.vgpr_alloc >= k.vgpr_count
        if k.agpr_count:
            assert k.descriptor.accum_offset + k.agpr_count <= k.vgpr_count


def test_entry_point_matches_the_disassembler(manifest, tc):
    """Our entry address (descriptor + offset) must be where llvm-objdump puts the kernel symbol."""
    for e in manifest["kernels"].values():
        path = mf.arch_dir() / e["code_object"]
        k = codeobject.parse(path).kernel(e["symbol"])
        out = subprocess.run([tc.objdump, "-d", "--mcpu=gfx950", str(path)], capture_output=True, text=True,
                             env={**os.environ, "HKRT_MOUNT": str(path.parent)}, check=True).stdout
        header = [ln for ln in out.splitlines() if ln.endswith(f"<{e['symbol']}>:")]
        assert header, out[:500]
        assert int(header[0].split()[0], 16) == k.entry


def test_incremental_build_recompiles_nothing(tmp_path):
    build.build(out_root=tmp_path)
    objs = sorted((tmp_path / "gfx950").glob("*.co"))
    stamps = {p.name: p.stat().st_mtime_ns for p in objs}
    assert len(objs) == len(build.read_table())
    build.build(out_root=tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "gfx950").glob("*.co")} == stamps


SPILLER = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ __launch_bounds__(1024) void spiller(float* out, const float* in, int n) {
  float v[512];
  for (int i = 0; i < 512; ++i) v[i] = in[(threadIdx.x * 7 + i * 131) % n];
  float s = 0;
  for (int r = 0; r < 8; ++r)
    for (int i = 0; i < 512; ++i) s += v[i] * v[(i * 17 + r) % 512];
  out[threadIdx.x] = s;
}
"""


def test_a_spilling_kernel_fails_the_build_naming_it(compile_hip):
    co = compile_hip(SPILLER, name="spiller")
    k = next(iter(codeobject.parse(co).kernels.values()))
    assert k.spills or k.private_segment_fixed_size, "the planted kernel did not spill; the test proves nothing"
    variant = {"name": "planted_spiller", "threads": 1024, "dynamic_lds": 0}
    with pytest.raises(build.BuildError, match="planted_spiller"):
        build.describe(variant, co, "x", "y", "z")


def test_bad_table_entries_are_named(tmp_path):
    bad = tmp_path / "v.toml"
    bad.write_text('[[variant]]\nname = "half"\nsource = "x.hip"\n')
    with pytest.raises(build.BuildError, match="half"):
        build.read_table(bad)


def test_debian_mirror_from_apt_sources(tmp_path):
    """The archive URI comes from apt's configuration, in one-line or deb822 form, snapshots included."""
    import toolchain
    one = tmp_path / "a.list"
    one.write_text("# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n")
    snap = tmp_path / "b.sources"
    snap.write_text("Types: deb\nURIs: http://snapshot.example/archive/debian/20250520T000000Z/\nSuites: bookworm\n")
    sec = tmp_path / "c.sources"
    sec.write_text("Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n")
    assert toolchain.debian_mirror([str(sec), str(one)]) == "http://mirror.example/debian"
    assert toolchain.debian_mirror([str(sec), str(snap)]) == "http://snapshot.example/archive/debian/20250520T000000Z/"
    with pytest.raises(toolchain.ToolchainError, match="HKRT_DEBIAN_MIRROR"):
        toolchain.debian_mirror([str(sec)])
