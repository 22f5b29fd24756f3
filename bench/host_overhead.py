"""Host-side cost of an hkrt.gemm call, without the kernels' execution.

    .venv/bin/python bench/host_overhead.py [--size 256] [--calls 200]

On the emulator the kernels run inside the launch call, so the emulator's kernel execution is swapped
for a no-op: what remains is hkrt's Python path (validation, planning, argument packing, allocator)
plus hip-python and the emulated HIP runtime. Real HIP's launch path would replace the last part.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hkrt  # noqa: E402
from hkrt import emu, registry  # noqa: E402


def per_call_us(f, calls: int) -> float:
    f()
    start = time.perf_counter()
    for _ in range(calls):
        f()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    n = args.size
    rng = np.random.default_rng()
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    da, w = hkrt.asarray(a.astype(hkrt.bfloat16), device="emu"), hkrt.Weight(b)
    with_kernels = per_call_us(lambda: hkrt.gemm(da, w).numpy(), 5)

    launched = []
    real_kernel = registry.kernel

    def spy(device, name):
        launched.append(name)
        return real_kernel(device, name)
    registry.kernel = spy
    cases = [("numpy a and b in, numpy out", lambda: hkrt.gemm(a, b)),
             ("device a, Weight, device out", lambda: hkrt.gemm(da, w)),
             ("device a, Weight, bias + gelu", lambda: hkrt.gemm(da, w, bias=bias, activation="gelu"))]
    print(f"{n}x{n}x{n}, {args.calls} calls each; for scale, one call with the emulated kernels: "
          f"{with_kernels / 1e3:.1f} ms")
    with emu.skip_kernels():
        for name, f in cases:
            launched.clear()
            f()
            kernels = ", ".join(launched)
            print(f"  {name:32s} {per_call_us(f, args.calls):7.0f} us per call  (kernels: {kernels})")


if __name__ == "__main__":
    main()
