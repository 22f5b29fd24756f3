"""Hostile addresses cannot crash or corrupt the host process: each case runs in a child process, so a
crash fails its test (with the signal) instead of ending the test run."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.emu_harness import assemble_with_labels

ROOT = Path(__file__).resolve().parents[1]
TOP = (1 << 64) - 8  # 8 bytes below 2^64: `in[i - 1]` with in == nullptr, 16-byte accesses wrap

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
import numpy as np
from hkrt.emu.machine import Machine
from tests.emu_harness import EmuError, new_state, run
case = json.loads(sys.argv[2])
m = Machine(1 << 20)
buf = m.memory.alloc(4096)
st = new_state(case["lds"], seed=1)
st.s[2], st.s[3] = buf & 0xFFFFFFFF, buf >> 32
st.s[4], st.s[5] = case["s45"] & 0xFFFFFFFF, case["s45"] >> 32
st.v[1] = case["v1"]
st.v[2] = 0
before = st.lds.copy()
try:
    out = run(open(sys.argv[1], "rb").read(), st, machine=m, strict=False)
    print(json.dumps({{"v10": int(out.v[10][0]), "lds_same": bool((out.lds == before).all())}}))
except EmuError as e:
    print(json.dumps({{"error": str(e)}}))
"""


def in_child(tc, tmp_path, lines: list[str], v1: int = 0, s45: int = 0, lds: int = 65536) -> dict:
    code = tmp_path / "code.bin"
    code.write_bytes(assemble_with_labels(tc.mc, lines + ["s_endpgm"], tmp_path))
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD.format(root=str(ROOT))), str(code),
                          json.dumps({"v1": v1, "s45": s45, "lds": lds})], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, f"the child ended with {res.returncode} (a signal if negative): {res.stderr}"
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("read", ["ds_read_b32 v10, v1", "ds_read_b128 v[10:13], v1",
                                  "ds_read2_b32 v[10:11], v1 offset1:1"])
def test_lds_reads_at_addresses_that_wrap_32_bits_return_zero(tc, tmp_path, read):
    out = in_child(tc, tmp_path, [read, "s_waitcnt lgkmcnt(0)"], v1=0xFFFFFFF0)
    assert out == {"v10": 0, "lds_same": True}


@pytest.mark.parametrize("write", ["ds_write_b32 v1, v2", "ds_write_b128 v1, v[4:7]",
                                   "ds_write2_b32 v1, v2, v3 offset1:1"])
def test_lds_writes_at_addresses_that_wrap_32_bits_are_dropped(tc, tmp_path, write):
    out = in_child(tc, tmp_path, [write, "s_waitcnt lgkmcnt(0)", "v_mov_b32 v10, 0"], v1=0xFFFFFFF0)
    assert out == {"v10": 0, "lds_same": True}


@pytest.mark.parametrize("load", ["global_load_dwordx4 v[14:17], v2, s[4:5]", "s_load_dwordx4 s[20:23], s[4:5], 0x0"])
def test_accesses_just_below_2_to_the_64_are_memory_errors(tc, tmp_path, load):
    """After a valid access (the address check then tries the last region first), a 16-byte access that
    starts 8 bytes below 2^64 is outside every allocation: an error, not a host fault."""
    out = in_child(tc, tmp_path, ["global_load_dwordx4 v[10:13], v2, s[2:3]", "s_waitcnt vmcnt(0)", load,
                                  "s_waitcnt vmcnt(0) lgkmcnt(0)"], s45=TOP)
    assert "outside every device allocation" in out.get("error", ""), out
