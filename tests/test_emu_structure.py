"""How the emulator's Python modules depend on each other, and hkrt.emu.skip_kernels."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np

EMU = Path(__file__).resolve().parents[1] / "hkrt" / "emu"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions, as written (relative names keep their dots)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            out.add(base)
            out.update(f"{base}.{a.name}" if node.module else f"{base}{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_loader_does_not_import_the_device():
    """launch.py runs one launch for machine.py; it must not reach back into machine.py (an import cycle)."""
    assert not {m for m in imported_modules(EMU / "launch.py") if "machine" in m}
    assert ".launch" in imported_modules(EMU / "machine.py")


def test_importing_the_loader_alone_leaves_the_device_unloaded():
    code = "import sys, hkrt.emu.launch; print('hkrt.emu.machine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=EMU.parents[1])
    assert out.stdout.strip() == "False"


def test_skip_kernels_runs_the_host_side_only():
    import hkrt
    import hkrt.emu
    from hkrt.emu import launch
    from hkrt.emu.hip import runtime as emulated
    machine = emulated.get().devices[hkrt.get_device("emu").index].machine
    run_kernel = launch.run_kernel
    rng = np.random.default_rng(7)
    a = rng.standard_normal((128, 64), np.float32)
    b = rng.standard_normal((64, 128), np.float32)
    want = a.astype(np.float64) @ b
    before = machine.stats_total
    with hkrt.emu.skip_kernels():
        assert launch.run_kernel is run_kernel  # nothing patched
        skipped = np.asarray(hkrt.gemm(a, b, strategy="basic"), np.float64)
    assert machine.stats_total == before  # no wave instruction ran
    assert not np.allclose(skipped, want, rtol=2e-2, atol=2e-2)
    assert machine.execute
    done = np.asarray(hkrt.gemm(a, b, strategy="basic"), np.float64)
    assert machine.stats_total > before
    np.testing.assert_allclose(done, want, rtol=2e-2, atol=5e-2 * np.abs(want).max())
