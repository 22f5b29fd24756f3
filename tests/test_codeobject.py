"""The code-object parser reads what we build and rejects what it cannot use, naming file and problem."""
import os
import sys

import pytest

from hkrt import codeobject
from hkrt import manifest as mf

SMALL = r"""
#include <hip/hip_runtime.h>
extern "C" __global__ void scale(float* x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}
"""


def built_objects(manifest):
    return [mf.arch_dir() / e["code_object"] for e in manifest["kernels"].values()]


def test_parser_reads_every_built_object(manifest):
    for path in built_objects(manifest):
        co = codeobject.parse(path)
        assert co.arch == "gfx950" and co.target.startswith("amdgcn-amd-amdhsa--gfx950")
        assert co.e_flags & codeobject.EF_AMDGPU_MACH == 0x4F
        for k in co.kernels.values():
            assert k.wavefront_size == 64
            assert k.descriptor.user_sgpr_enables["kernarg_segment_ptr"]
            assert k.descriptor.user_sgpr_count >= 2
            assert k.descriptor.enable_workgroup_id[0]
            assert co.read(k.entry, 4)


def test_descriptor_fields_of_a_known_kernel(compile_hip):
    """A kernel using blockDim gets hidden arguments and the fields the ABI documents (docs/facts.md §5.2-§5.4)."""
    co = codeobject.parse(compile_hip(SMALL))
    k = co.kernel("scale")
    explicit = [(a.offset, a.size, a.value_kind) for a in k.explicit_args]
    assert explicit == [(0, 8, "global_buffer"), (8, 4, "by_value"), (12, 4, "by_value")]
    kinds = {a.value_kind: a.offset for a in k.args if a.hidden}
    assert kinds["hidden_block_count_x"] == 16 and kinds["hidden_group_size_x"] == 28
    assert k.kernarg_segment_size == k.descriptor.kernarg_size == 16 + 256
    assert k.descriptor.workitem_id_dims == 1
    assert k.descriptor.float_mode["fp32_round"] == 0  # round to nearest even
    assert k.descriptor.private_segment_fixed_size == 0


def test_from_bytes_equals_from_path(manifest):
    path = built_objects(manifest)[0]
    a, b = codeobject.parse(path), codeobject.parse(path.read_bytes())
    assert a.kernels.keys() == b.kernels.keys()
    assert b.source == "<code object in memory>"


def test_not_elf(tmp_path):
    p = tmp_path / "junk.co"
    p.write_bytes(os.urandom(4096).replace(b"\x7fELF", b"xxxx"))
    with pytest.raises(codeobject.CodeObjectError, match=r"junk\.co: not an ELF file"):
        codeobject.parse(p)


@pytest.mark.parametrize("keep", [10, 63, 200, 0.5])
def test_truncated(tmp_path, manifest, keep):
    data = built_objects(manifest)[0].read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    p = tmp_path / "cut.co"
    p.write_bytes(data[:n])
    with pytest.raises(codeobject.CodeObjectError, match=r"cut\.co: truncated"):
        codeobject.parse(p)


@pytest.mark.parametrize("claim", [1 << 30, 1 << 34, -1])
def test_segments_claiming_huge_memory_are_refused(tmp_path, manifest, claim):
    """A flipped bit in a program header's p_memsz (or p_vaddr) once made the first launch of a 6 KB
    object allocate 16 GB of host memory; memsz below filesz is corrupt too."""
    import struct
    data = bytearray(built_objects(manifest)[0].read_bytes())
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        at = phoff + i * phentsize
        if struct.unpack_from("<I", data, at)[0] == 1:  # PT_LOAD
            filesz, = struct.unpack_from("<Q", data, at + 32)
            struct.pack_into("<Q", data, at + 40, filesz - 1 if claim < 0 else claim)  # p_memsz
            break
    p = tmp_path / "huge.co"
    p.write_bytes(bytes(data))
    with pytest.raises(codeobject.CodeObjectError, match=r"huge\.co: a loadable segment claims"):
        codeobject.parse(p)


def test_non_amdgpu_elf():
    host = os.path.realpath(sys.executable)
    with pytest.raises(codeobject.CodeObjectError, match="not an AMDGPU code object") as err:
        codeobject.parse(host)
    assert host in str(err.value)


def test_other_architecture(compile_hip):
    path = compile_hip(SMALL, arch="gfx942", name="scale942")
    with pytest.raises(codeobject.WrongArchitectureError, match=r"scale942\.co: code object is for gfx942, not gfx950"):
        codeobject.parse(path)
    assert codeobject.parse(path, expect_arch=None).arch == "gfx942"


def test_missing_file(tmp_path):
    with pytest.raises(codeobject.CodeObjectError, match="cannot read"):
        codeobject.parse(tmp_path / "nope.co")
