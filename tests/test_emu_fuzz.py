"""Fuzzing the emulator through hip-python: thousands of hostile code objects, instruction streams and launch
geometries (tests/fuzz_child.py), run in child processes. A case may succeed or fail with a Python exception
or a HIP error; none may end its process by a signal, hang it or grow it past 2 GiB. A fresh seed each run, named on failure."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("fuzz_child.py")
CASES = {"image": 1500, "stream": 1500, "geometry": 500}


def fuzz(kind: str, seed: int, count: int) -> list[str]:
    """Runs the cases, starting a new child after each one that crashed; returns the crashes."""
    crashes, first = [], 0
    while first < count:
        cmd = [sys.executable, str(CHILD), kind, str(seed), str(first), str(count - first)]
        env = {**os.environ, "HKRT_EMULATE": "1", "HKRT_EMU_STRICT": "0"}
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
            out, why = res.stdout, f"exit {res.returncode}; {res.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired as e:  # a hang: the case it was in is the culprit
            out, why, res = (e.stdout or b"").decode(errors="replace"), "no end after 300 s", None
        done = [int(line.split()[1]) for line in out.splitlines() if line.startswith("case ")]
        if res is not None and res.returncode == 0 and done and done[-1] == count - 1:
            return crashes
        last = done[-1] if done else first
        crashes.append(f"{kind} case {last} (seed {seed}): {why}")
        first = last + 1
    return crashes


@pytest.mark.parametrize("kind", list(CASES))
def test_no_hostile_input_ends_the_process(kind):
    seed = random.SystemRandom().randrange(1 << 32)
    crashes = fuzz(kind, seed, CASES[kind])
    assert not crashes, "\n".join(crashes)
