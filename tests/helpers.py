"""Helpers the runtime's tests share: running code in a fresh interpreter and reading what it printed.

What needs a fresh process (the backend is chosen once per process; the emulator reads HKRT_EMU_MEMORY and
HKRT_EMU_DEVICES when it starts) runs in a subprocess of sys.executable.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


TESTS = Path(__file__).resolve().parent


MiB = 1 << 20


def run_python(code: str, env: dict | None = None, args=("-c",), timeout: float = 120, stdout=subprocess.PIPE):
    """Run code (or `python -m ...` with args) in a fresh interpreter at the repository root.

    The HKRT_* variables of this process are dropped first so that each test states its own; the
    emulator runs strict there too unless a test says otherwise. stdout is captured unless a file is given.
    """
    e = {k: v for k, v in os.environ.items() if not k.startswith("HKRT_")}
    e["HKRT_EMU_STRICT"] = "1"
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    e.update(env or {})
    cmd = [sys.executable, *args] + ([textwrap.dedent(code)] if code is not None else [])
    return subprocess.run(cmd, cwd=ROOT, env=e, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout)


def ok(res) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res.stdout


def last_json(res):
    return json.loads(ok(res).strip().splitlines()[-1])
