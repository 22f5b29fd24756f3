"""Emulator speed: wave-instructions per second and the time of bf16 GEMMs on the CPU.

    .venv/bin/python bench/emu_speed.py [--sizes 512 1024] [--variant gemm_basic_kn_bf16]

Runs the built kernel on one emulated device (default mode, one host thread) and prints one line
per size. Figures depend on the machine and its load: compare runs made side by side.
"""
import argparse
import struct
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hkrt import manifest as mf  # noqa: E402
from hkrt.emu.machine import Machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--variant", default="gemm_basic_kn_bf16")
    ap.add_argument("--strict", action="store_true", help="run in strict hazard mode")
    args = ap.parse_args()
    entry = mf.load()["kernels"][args.variant]
    machine = Machine(strict=args.strict)
    module = machine.load((mf.arch_dir() / entry["code_object"]).read_bytes())
    tile, threads = entry["launch"]["tile"], entry["launch"]["threads"]
    rng = np.random.default_rng()
    print(f"kernel {args.variant}, {'strict' if args.strict else 'default'} mode")
    print(f"{'size':>6} {'seconds':>9} {'wave-insns':>12} {'insns/s':>12} {'max |err|':>10}")
    for n in args.sizes:
        a = rng.standard_normal((n, n)).astype(ml_dtypes.bfloat16)
        b = rng.standard_normal((n, n)).astype(ml_dtypes.bfloat16)
        mem = machine.memory
        da, db, dc = mem.alloc(a.nbytes), mem.alloc(b.nbytes), mem.alloc(n * n * 2)
        mem.view(da, a.nbytes)[:] = a.tobytes()
        mem.view(db, b.nbytes)[:] = (b if entry["launch"]["b_layout"] == "kn" else b.T.copy()).tobytes()
        kernarg = struct.pack("<QQQiiiiii", da, db, dc, n, n, n, n, n, n)
        grid = (-(-n // tile["n"]), -(-n // tile["m"]), 1)
        start = time.perf_counter()
        stats = machine.launch(module, entry["symbol"], grid, (threads, 1, 1), entry["launch"]["dynamic_lds"], kernarg)
        secs = time.perf_counter() - start
        c = np.frombuffer(bytes(mem.view(dc, n * n * 2)), ml_dtypes.bfloat16).reshape(n, n).astype(np.float64)
        err = np.abs(c - a.astype(np.float64) @ b.astype(np.float64)).max()
        print(f"{n:>6} {secs:>9.2f} {stats.wave_instructions:>12,} {stats.wave_instructions / secs:>12,.0f} {err:>10.3g}")
        for addr in (da, db, dc):
            mem.free(addr)


if __name__ == "__main__":
    main()
