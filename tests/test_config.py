"""hkrt.config: every HKRT_* variable read in one place, a bad value refused by name where it is first used.

Bad values are set in fresh interpreters (the emulator starts once per process)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hkrt import config

ROOT = Path(__file__).resolve().parents[1]

GEMM = """
    import numpy as np, hkrt
    try:
        hkrt.gemm(np.ones((8, 8), np.float32), np.ones((8, 8), np.float32))
        print("ran")
    except Exception as e:
        print(type(e).__name__, e)
"""
RAW_HIP = """
    import hkrt.emu.hip.build as b, ctypes
    ctypes.CDLL(str(b.build()), mode=ctypes.RTLD_GLOBAL)   # as LD_PRELOAD would: no hkrt.emu.activate()
    from hip import hip
    print(hip.hipInit(0)[0].name)
"""


def python(code: str, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("HKRT_")}
    e.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e,
                          timeout=120)


BAD = [("HKRT_EMU_DEVICES", "two"), ("HKRT_EMU_DEVICES", "0"), ("HKRT_EMU_MEMORY", "lots"),
       ("HKRT_EMU_STRICT", "yes"), ("HKRT_EMU_SEED", "-1"), ("HKRT_EMU_MAX_INSTRUCTIONS", "1e9x"),
       ("HKRT_EMU_MAX_SECONDS", "-5"), ("HKRT_EMU_MODEL", "h100"), ("HKRT_EMU_SAMPLE", "2"),
       ("HKRT_EMU_TRACE", "all"), ("HKRT_DEVICE", "tpu")]


@pytest.mark.parametrize("name,value", BAD)
def test_a_bad_value_is_one_error_naming_the_variable(name, value):
    """Several of these once surfaced as `hipInit failed: hipErrorNotInitialized`, the cause hidden."""
    out = python(GEMM, **{"HKRT_DEVICE": "emu", name: value})
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr
    assert line.startswith(("ConfigError", "ValueError")) and f"{name}={value!r}" in line, out.stdout + out.stderr
    assert "hipErrorNotInitialized" not in line


def test_a_program_without_hkrt_learns_why_the_emulator_did_not_start():
    out = python(RAW_HIP, HKRT_EMU_DEVICES="two")
    assert out.stdout.strip() == "hipErrorNotInitialized", out.stdout + out.stderr
    assert "HKRT_EMU_DEVICES='two' is not valid" in out.stderr


def test_good_values_parse_and_defaults_apply(monkeypatch):
    for name, text, want in [("HKRT_EMU_DEVICES", "3", 3), ("HKRT_EMU_MEMORY", "0x100000", 1 << 20),
                             ("HKRT_EMU_MAX_SECONDS", "2.5", 2.5), ("HKRT_EMU_MODEL", "MI355X", "mi355x"),
                             ("HKRT_EMU_STRICT", "0", False), ("HKRT_EMU_SEED", "", None)]:
        monkeypatch.setenv(name, text)
        config.reload()
        assert config.get(name) == want, name
    monkeypatch.undo()
    config.reload()


def test_reading_the_model_first_does_not_hang():
    """Parsing HKRT_EMU_MODEL imports hkrt.emu, whose import reads HKRT_EMULATE: with the emulator not yet
    imported this once deadlocked on config's own lock."""
    out = python("from hkrt import config; print(config.get('HKRT_EMU_MODEL'))", HKRT_EMU_MODEL="mi355x")
    assert out.stdout.strip() == "mi355x", out.stdout + out.stderr


def test_every_variable_the_code_reads_is_declared_and_in_the_readme():
    """One home: a variable read anywhere in the package, the benchmarks or the build tools is declared in
    hkrt.config, and the README's table lists every declared one."""
    read = set()
    for path in [*ROOT.glob("hkrt/**/*.py"), *ROOT.glob("bench/*.py"), ROOT / "toolchain.py", ROOT / "build.py"]:
        read |= set(re.findall(r"\bHKRT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert read - set(config.VARIABLES) == set()
    readme = (ROOT / "README.md").read_text()
    assert [n for n in config.VARIABLES if f"| `{n}` |" not in readme] == []
