"""Emulator speed: wave-instructions per second and the time of bf16 GEMMs emulated on the CPU.

    .venv/bin/python bench/emu_speed.py [--sizes 512 1024] [--strategy basic pingpong ...]

Each GEMM runs through hkrt.gemm (device-resident operands, B prepared as a Weight, bf16 out) with
the kernel family forced by strategy=, on one emulated device in one host thread. Times are the
whole call (kernel emulation dominates); instruction counts come from the emulated device. Figures
depend on the machine and its load: compare runs made side by side.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hkrt  # noqa: E402
from hkrt.emu.hip import runtime as emulated  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--strategy", nargs="+", default=["basic", "pingpong"])
    args = ap.parse_args()
    dev = hkrt.get_device("emu")
    machine = emulated.get().devices[dev.index].machine
    rng = np.random.default_rng()
    print(f"{'strategy':>10} {'size':>6} {'seconds':>9} {'wave-insns':>12} {'insns/s':>12} {'max rel err':>12}")
    for n in args.sizes:
        a = rng.standard_normal((n, n), np.float32).astype(hkrt.bfloat16)
        b = rng.standard_normal((n, n), np.float32).astype(hkrt.bfloat16)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        da, w = hkrt.asarray(a), hkrt.Weight(b)
        for strategy in args.strategy:
            before = machine.stats_total
            start = time.perf_counter()
            c = hkrt.gemm(da, w, strategy=strategy).numpy()
            secs = time.perf_counter() - start
            insns = machine.stats_total - before
            err = np.abs(c.astype(np.float64) - ref).max() / np.abs(ref).max()
            print(f"{strategy:>10} {n:>6} {secs:>9.2f} {insns:>12,} {insns / secs:>12,.0f} {err:>12.2g}", flush=True)


if __name__ == "__main__":
    main()
