"""Host cost of an hkrt call: hkrt's own Python path, with the runtime underneath taken out.

    .venv/bin/python bench/host_cost.py [--size 4096] [--numpy-size 64] [--calls 2000] [--rounds 20] [--emulated]

The calls run on hkrt's null driver (hkrt/driver/null.py): no HIP at all, so neither ROCm's runtime nor
the emulator's own Python HIP layer is in the figure; what is left is validation, planning, the
allocator, argument packing and the launch calls into the driver. Each figure is the best (and the median) of
`--rounds` short rounds, in microseconds per call; the cases take turns within each round (these machines are
noisy: the best round is the one least disturbed, and taking turns spreads the disturbance over all cases).

"numpy in and out" is given beyond its own data work: the bf16 conversion and transposes of A and B and
the result's conversion back, which any library has to do, are timed alone and subtracted.

For scale (issue 12's targets, measured on an H100 elsewhere): a raw prepacked cuLaunchKernel from
Python 6.1 us, CuPy's RawKernel 8.7 us, torch.matmul 15 to 17 us.
--emulated adds the same calls through hip-python to the emulated libamdhip64 (kernels skipped): the
whole HIP path as a program here sees it, the emulated runtime's Python included.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hkrt  # noqa: E402
from hkrt.devices import Device  # noqa: E402
from hkrt.driver.null import NullDriver  # noqa: E402


def rounds_us(fs: list, calls: list[int], rounds: int) -> list[tuple[float, float]]:
    """(best, median) microseconds per call of each f over `rounds` rounds of its `calls` calls. The cases
    take turns within every round, so a disturbed stretch of time hits them all alike."""
    for f in fs:
        f()
    times = [[] for _ in fs]
    for _ in range(rounds):
        for f, n, t in zip(fs, calls, times):
            start = time.perf_counter()
            for _ in range(n):
                f()
            t.append((time.perf_counter() - start) / n * 1e6)
    return [(min(t), statistics.median(t)) for t in times]


def cases(dev, n: int, numpy_n: int):
    rng = np.random.default_rng()
    b_host = rng.standard_normal((n, n), dtype=np.float32)
    w = hkrt.Weight(b_host, device=dev)
    a = hkrt.asarray(rng.standard_normal((n, n), dtype=np.float32).astype(hkrt.bfloat16), device=dev)
    b = hkrt.asarray(b_host.astype(hkrt.bfloat16), device=dev)
    out = hkrt.empty((n, n), device=dev)
    bias = hkrt.asarray(np.zeros(n, np.float32), device=dev)
    p = hkrt.plan((n, n), w)
    p_bias = hkrt.plan((n, n), w, bias=bias, activation="gelu")
    a_small = rng.standard_normal((numpy_n, numpy_n), dtype=np.float32)
    b_small = rng.standard_normal((numpy_n, numpy_n), dtype=np.float32)
    result = np.empty((numpy_n, numpy_n), hkrt.bfloat16)

    def data_work():  # what a numpy call must do to its data anyway
        a_small.astype(hkrt.bfloat16)
        np.ascontiguousarray(b_small.T.astype(hkrt.bfloat16))
        np.array(result)
    return [
        ("prepared call, out given: p(a, out=o)", lambda: p(a, out=out), 3),
        ("prepared call: p(a)", lambda: p(a), 3),
        ("prepared call, bias + gelu", lambda: p_bias(a, out=out), 3),
        ("gemm(device a, Weight)", lambda: hkrt.gemm(a, w), 10),
        ("gemm(device a, Weight, out=o)", lambda: hkrt.gemm(a, w, out=out), 10),
        ("gemm(device a, device b)", lambda: hkrt.gemm(a, b), 10),
        ("gemm(device a, Weight, bias, gelu)", lambda: hkrt.gemm(a, w, bias=bias, activation="gelu"), 10),
        (f"gemm(numpy a, numpy b) -> numpy, {numpy_n}^3", lambda: hkrt.gemm(a_small, b_small, device=dev), None),
        ("  of which the data work alone", data_work, None),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096, help="M = N = K")
    ap.add_argument("--numpy-size", type=int, default=64, help="M = N = K of the numpy-in, numpy-out call")
    ap.add_argument("--calls", type=int, default=2000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--emulated", action="store_true")
    args = ap.parse_args()
    n = args.size
    driver = NullDriver()
    null_dev = Device(index=0, kind="null", info=driver.device_info(0), driver=driver)
    def calls(target, scale=1):  # the numpy rows move megabytes per call: fewer of them
        return max(args.calls // scale, 20) if target else max(args.calls // (10 * scale), 20)
    table = cases(null_dev, n, args.numpy_size)
    figures = rounds_us([f for _, f, _ in table], [calls(target) for _, _, target in table], args.rounds)
    rows = [(name, best, median, target) for (name, _, target), (best, median) in zip(table, figures)]
    numpy_call = next(r[1:3] for r in rows if r[0].startswith("gemm(numpy"))
    data_work = next(r[1:3] for r in rows if r[0].startswith("  of which"))
    emulated = {}
    if args.emulated:
        from hkrt import emu
        dev = hkrt.get_device("emu")
        with emu.skip_kernels():
            table = cases(dev, n, args.numpy_size)
            figures = rounds_us([f for _, f, _ in table], [calls(target, 20) for _, _, target in table], args.rounds)
            emulated = {name: best for (name, _, _), (best, _) in zip(table, figures)}
    print(f"hkrt host cost per call, {n}x{n}x{n}, best and median of {args.rounds} rounds (us); null driver: no "
          f"HIP underneath")
    print(f"{'call':42s} {'best':>7s} {'median':>7s} {'target':>7s}" + (f" {'emulated HIP':>13s}" if emulated else ""))
    for name, best, median, target in rows:
        t = f"{target:>7d}" if target else f"{'':>7s}"
        extra = f" {emulated[name]:13.1f}" if emulated else ""
        print(f"{name:42s} {best:7.1f} {median:7.1f} {t}{extra}")
    print(f"{'numpy in and out, beyond the data work':42s} {numpy_call[0] - data_work[0]:7.1f} "
          f"{numpy_call[1] - data_work[1]:7.1f} {20:>7d}")


if __name__ == "__main__":
    main()
