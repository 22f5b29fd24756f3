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


# each access's last byte lies past 2^32 - 1 (the read2/write2 cases: the second address's)
@pytest.mark.parametrize("read, v1", [("ds_read_b32 v10, v1", 0xFFFFFFFC), ("ds_read_b128 v[10:13], v1", 0xFFFFFFF8),
                                      ("ds_read2_b32 v[10:11], v1 offset1:1", 0xFFFFFFF8)])
def test_lds_reads_at_addresses_that_wrap_32_bits_return_zero(tc, tmp_path, read, v1):
    out = in_child(tc, tmp_path, [read, "s_waitcnt lgkmcnt(0)"], v1=v1)
    assert out == {"v10": 0, "lds_same": True}


@pytest.mark.parametrize("write, v1", [("ds_write_b32 v1, v2", 0xFFFFFFFC), ("ds_write_b128 v1, v[4:7]", 0xFFFFFFF8),
                                       ("ds_write2_b32 v1, v2, v3 offset1:1", 0xFFFFFFF8)])
def test_lds_writes_at_addresses_that_wrap_32_bits_are_dropped(tc, tmp_path, write, v1):
    out = in_child(tc, tmp_path, [write, "s_waitcnt lgkmcnt(0)", "v_mov_b32 v10, 0"], v1=v1)
    assert out == {"v10": 0, "lds_same": True}


@pytest.mark.parametrize("load", ["global_load_dwordx4 v[14:17], v2, s[4:5]", "s_load_dwordx4 s[20:23], s[4:5], 0x0"])
def test_accesses_just_below_2_to_the_64_are_memory_errors(tc, tmp_path, load):
    """After a valid access (the address check then tries the last region first), a 16-byte access that
    starts 8 bytes below 2^64 is outside every allocation: an error, not a host fault."""
    out = in_child(tc, tmp_path, ["global_load_dwordx4 v[10:13], v2, s[2:3]", "s_waitcnt vmcnt(0)", load,
                                  "s_waitcnt vmcnt(0) lgkmcnt(0)"], s45=TOP)
    assert "outside every device allocation" in out.get("error", ""), out


INTERRUPTED = """
import os, signal, threading, time
import numpy as np
import hkrt
a = np.ones((4096, 4096), np.float32)
hkrt.gemm(a[:64, :64], a[:64, :64])  # kernels loaded
t0 = time.monotonic()
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    hkrt.gemm(a, a, strategy="basic")  # minutes of emulation
    print("finished", time.monotonic() - t0)
except KeyboardInterrupt:
    print("interrupted", time.monotonic() - t0)
c = hkrt.gemm(a[:64, :64], a[:64, :64])
print("after", float(np.asarray(c, np.float32)[0, 0]))
"""


def _python(code: str, timeout=120, **env):
    import os
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HKRT_DEVICE": "emu", **env})


def test_ctrl_c_stops_a_running_emulated_kernel_within_a_second():
    """SIGINT one second into a GEMM that emulates for minutes: KeyboardInterrupt reaches the caller within
    a second (not when the kernel ends, not as 'Exception ignored from cffi callback'), and the device
    still works afterwards."""
    res = _python(INTERRUPTED)
    assert res.returncode == 0, res.stderr
    lines = dict(line.split() for line in res.stdout.splitlines())
    assert "interrupted" in lines and float(lines["interrupted"]) < 2.0, res.stdout
    assert float(lines["after"]) == 64.0
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr


def test_a_launch_past_its_time_budget_ends_with_an_error_naming_it():
    res = _python("""
        import time, numpy as np, hkrt
        a = np.ones((4096, 4096), np.float32)
        t0 = time.monotonic()
        try:
            hkrt.gemm(a, a, strategy="basic")
        except Exception as e:
            print(round(time.monotonic() - t0), type(e).__name__, e)
    """, HKRT_EMU_MAX_SECONDS="1")
    assert res.returncode == 0, res.stderr
    seconds, rest = res.stdout.split(maxsplit=1)
    assert int(seconds) <= 5 and "time budget of 1 s" in rest and "HKRT_EMU_MAX_SECONDS" in rest, res.stdout


def test_bad_budget_values_are_refused():
    res = _python("""
        import numpy as np, hkrt
        try:
            hkrt.gemm(np.ones((64, 64), np.float32), np.ones((64, 64), np.float32))
        except Exception as e:
            print(e)
    """, HKRT_EMU_MAX_SECONDS="forever")
    assert "HKRT_EMU_MAX_SECONDS='forever' is not valid: it takes a number of seconds" in res.stdout + res.stderr, res.stdout + res.stderr


def test_the_cli_exits_130_quietly_on_ctrl_c():
    import signal
    import time
    proc = subprocess.Popen([sys.executable, "-m", "hkrt", "--device", "emu", "bench", "4096x4096x4096"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
