import os
import sys
from pathlib import Path

import pytest

# Every kernel the tests run through HIP runs in the emulator's strict hazard mode: a register read
# before its load is retired, or LDS read before its direct-to-LDS data arrived, fails the test.
os.environ.setdefault("HKRT_EMU_STRICT", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # toolchain.py and build.py live at the top of the tree

import toolchain as _toolchain  # noqa: E402


@pytest.fixture(scope="session")
def tc():
    """The gfx950 toolchain. `make test` provisions it first, so its absence is a failure, not a skip."""
    found = _toolchain.find(verbose=False)
    assert found is not None, "no hipcc for gfx950: run `make toolchain` (make test does)"
    return found


@pytest.fixture(scope="session")
def manifest():
    from hkrt import manifest as mf
    return mf.load()


@pytest.fixture
def compile_hip(tc, tmp_path):
    """Compile a HIP source string to a code object; returns its path."""
    import os
    import subprocess

    def _compile(source: str, arch: str = "gfx950", name: str = "k", extra=()):
        src = tmp_path / f"{name}.hip"
        out = tmp_path / f"{name}.co"
        src.write_text(source)
        res = subprocess.run([tc.hipcc, "-O3", f"--offload-arch={arch}", "--cuda-device-only",
                              "--no-gpu-bundle-output", *extra, "-c", str(src), "-o", str(out)],
                             capture_output=True, text=True, env=dict(os.environ, HKRT_MOUNT=str(tmp_path)))
        assert res.returncode == 0, res.stderr
        return out

    return _compile


@pytest.fixture(scope="module")
def code(tc, request):
    """The emulator semantics tests' snippets (the module's SNIPPETS, tests/emu_harness.py's snippet_book),
    assembled in one llvm-mc run per module."""
    from emu_harness import assembled
    return assembled(tc, request.module.SNIPPETS)


@pytest.fixture
def rng(request):
    """This test's random stream: fresh each run, replayed by HKRT_TEST_SEED (printed on failure)."""
    from emu_harness import seeded_rng
    return seeded_rng(request)


@pytest.fixture(autouse=True)
def _allocations_unpoisoned():
    """A test's poison_allocations() (tests/kernel_harness.py) ends with the test."""
    yield
    from kernel_harness import stop_poisoning
    stop_poisoning()


@pytest.fixture
def launched(monkeypatch):
    """Names of the kernels the runtime looks up (one per launch site, when a call is compiled), in order.
    gemm's compiled calls are dropped first, so the test's first call of each kind is compiled."""
    from hkrt import prepared, registry
    prepared.clear()
    names = []
    real = registry.kernel

    def spy(device, name):
        names.append(name)
        return real(device, name)
    monkeypatch.setattr(registry, "kernel", spy)
    return names


@pytest.fixture
def driver_launches(monkeypatch):
    """(function, grid) of every launch the device driver runs, in order (launches are prepared once and
    run many times: the record is taken at each run)."""
    import hkrt
    driver = hkrt.get_device().driver
    seen, real = [], driver.prepare_launch

    class Recorded:
        def __init__(self, function, grid, prepared):
            self.function, self.grid, self.prepared = function, tuple(grid), prepared
            self.args = prepared.args

        def __call__(self, stream):
            seen.append((self.function, self.grid))
            return self.prepared(stream)

    def spy(function, grid, *args):
        return Recorded(function, grid, real(function, grid, *args))
    monkeypatch.setattr(driver, "prepare_launch", spy)
    return seen
