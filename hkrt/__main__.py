"""python -m hkrt info | demo | bench  (add --help to any of them)."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time

import numpy as np


def cmd_info(args) -> int:
    from . import manifest as mf
    from .devices import backend, get_device, parse_spec
    kind, _ = parse_spec(args.device)
    _, driver = backend(kind)
    print(f"runtime:   {driver.runtime}")
    count = driver.device_count()
    for i in range(count):
        d = get_device(f"{'emu' if driver.emulation else 'gpu'}:{i}")
        info = d.info
        print(f"device {i}:  {info.name} [{info.arch}], {info.compute_units} CUs, "
              f"{info.total_memory / 2**30:.0f} GiB, {info.max_lds_per_block // 1024} KiB LDS per block")
    try:
        m = mf.load()
    except mf.ManifestMissingError as exc:
        print(f"kernels:   none ({exc})")
        return 0
    print(f"toolchain: {m['compiler']} ({m['toolchain']})")
    print(f"kernels:   {len(m['kernels'])} built for {m['arch']} in {mf.arch_dir()}")
    print(f"  {'variant':<24} {'strategy':<12} {'B':<4} {'out':<5} {'threads':>7} {'LDS':>7} {'VGPR':>5} "
          f"{'AGPR':>5} {'SGPR':>5}")
    for name, e in m["kernels"].items():
        la = e["launch"]
        print(f"  {name:<24} {la['strategy']:<12} {la['b_layout']:<4} {la['dtypes']['c']:<5} {la['threads']:>7} "
              f"{e['static_lds'] + la['dynamic_lds']:>7} {e['arch_vgpr']:>5} {e['agpr']:>5} {e['sgpr']:>5}")
    return 0


def cmd_demo(args) -> int:
    from . import gemm, get_device
    from .reference import expected, outside
    start = time.perf_counter()
    dev = get_device(args.device)
    m, n, k = args.shape
    rng = np.random.default_rng(args.seed)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    print(f"hkrt demo: C = A @ B with A {m}x{k}, B {k}x{n} (float32 rounded to bf16), bf16 out, on {dev}")
    t0 = time.perf_counter()
    c = gemm(a, b)
    t1 = time.perf_counter()
    ref, tol = expected(a, b)  # the bound the tests use: bf16 inputs, fp32 accumulation, bf16 out
    err = np.abs(c.astype(np.float64) - ref)
    rel = float(err.max() / max(np.abs(ref).max(), 1e-30))
    ok = not outside(c, ref, tol).any()
    print(f"max |C - numpy(float64)| = {err.max():.4g} (relative to max |C|: {rel:.3g}); "
          f"{'within' if ok else 'OUTSIDE'} the error bound of bf16 inputs with fp32 accumulation")
    print(f"gemm call: {(t1 - t0) * 1e3:.1f} ms ({2 * m * n * k / (t1 - t0) / 1e9:.2f} GFLOP/s, "
          f"{'emulated' if dev.kind == 'emu' else 'on the GPU'}); first result "
          f"{(t1 - start) * 1e3:.0f} ms after the demo started")
    return 0 if ok else 1


DEFAULT_BENCH = ["256x256x256", "512x512x512", "1x512x512", "128x1024x256"]
PREDICT_BENCH = ["1024x1024x1024", "2048x2048x2048", "1x4096x4096", "128x4096x4096"]


def _positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s!r} is not a positive integer")
    return v


def _parse_shape(s: str) -> tuple[int, int, int]:
    try:
        m, n, k = (int(x) for x in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {s!r} is not MxNxK") from None
    return m, n, k


def _host_overhead(dev, call, repeat: int) -> float:
    """Seconds of host work per call: the asynchronous call's own time on a GPU; on the emulator, which
    runs kernels inside the launch, the call with kernel execution skipped."""
    import contextlib
    emulation = dev.driver.emulation
    guard = emulation.skip_kernels() if emulation else contextlib.nullcontext()
    with guard:
        call()
        t0 = time.perf_counter()
        for _ in range(repeat):
            call()
        secs = (time.perf_counter() - t0) / repeat
    dev.synchronize()
    return secs


def _predicted(args, dev, shapes) -> list[dict]:
    """Predicted time per shape and kernel family on the emulator's timing model (every launch of the call:
    repacks, split-K and epilogue kernels included), with the model's limits and the main kernel's breakdown."""
    from . import Weight, asarray, gemm
    from .strategy import families
    model = dev.driver.emulation.timing_model()
    peak = model.bf16_flops_per_cycle * model.clock_hz  # at the model's effective clock
    rows = []
    fams = args.strategy or [None]
    for i, (m, n, k) in enumerate(shapes, 1):
        rng = np.random.default_rng(i)
        a = asarray(rng.standard_normal((m, k), dtype=np.float32).astype("bfloat16"), device=dev)
        w = Weight(rng.standard_normal((k, n), dtype=np.float32), device=dev)
        flops = 2 * m * n * k
        hbm_s = 2 * (m * k + k * n + m * n) / model.hbm_bytes_per_second
        for fam in fams:
            if fam is not None and fam not in families(dev.arch):
                raise ValueError(f"unknown --strategy {fam!r}; known: {', '.join(families(dev.arch))}")
            t0 = time.perf_counter()
            with dev.driver.emulation.collect_reports() as reps:
                gemm(a, w, strategy=fam).numpy()
            secs = sum(r.seconds for r in reps)
            main = max(reps, key=lambda r: r.seconds)
            row = {"m": m, "n": n, "k": k, "strategy": fam or "auto", "kernel": main.kernel,
                   "launches": len(reps), "seconds": secs, "tflops": flops / secs / 1e12,
                   "peak_tflops": peak / 1e12, "roofline_tflops": flops / max(flops / peak, hbm_s) / 1e12,
                   "model": model.name, "clock_ghz": model.clock_hz / 1e9, "sampled": any(r.sampled for r in reps),
                   "matrix_busy": main.matrix_busy, "lds_busy": main.lds_busy, "vmem_busy": main.vmem_busy,
                   **{f"stall_{cause}": v for cause, v in dataclasses.asdict(main.stalls).items()},
                   "lds_conflict_cycles": main.lds_conflict_cycles,
                   "l2_bytes": main.traffic.l2, "mall_bytes": main.traffic.mall, "hbm_bytes": main.traffic.hbm,
                   "emulation_seconds": time.perf_counter() - t0}
            rows.append(row)
            print(f"[{i}/{len(shapes)}] {m}x{n}x{k} {row['strategy']}: predicted {secs * 1e3:.4f} ms, "
                  f"{row['tflops']:.1f} TFLOP/s (peak {row['peak_tflops']:.0f}, roofline "
                  f"{row['roofline_tflops']:.0f}); {main.kernel}: matrix {main.matrix_busy:.0%}, LDS "
                  f"{main.lds_busy:.0%}, vmem {main.vmem_busy:.0%} busy ({row['emulation_seconds']:.1f} s to "
                  f"emulate)", file=sys.stderr)
    return rows


def cmd_bench(args) -> int:
    from . import Weight, asarray, gemm, get_device
    from .devices import backend, parse_spec
    if args.model:  # predictions come from the emulator's timing model: choose it, with the model on
        kind, _ = parse_spec(args.device)
        if kind == "gpu":
            raise ValueError(f"--model predicts on the emulator; --device {args.device} is a GPU")
        backend("emu", model=args.model, sample=args.sample)
    dev = get_device(args.device)
    if args.model and dev.driver.emulation is None:
        raise ValueError(f"--model predicts on the emulator; {dev} is not emulated")
    shapes = args.shapes or [_parse_shape(s) for s in (PREDICT_BENCH if args.model else DEFAULT_BENCH)]
    if args.model:
        print(f"hkrt bench: predicted on the {args.model} timing model", file=sys.stderr)
        rows = _predicted(args, dev, shapes)
        return _emit(args, rows, dev, "predicted TFLOP/s")
    rows = []
    print(f"hkrt bench on {dev} ({args.repeat} timed calls per shape after one warm-up)", file=sys.stderr)
    for i, (m, n, k) in enumerate(shapes, 1):
        rng = np.random.default_rng(i)
        a = asarray(rng.standard_normal((m, k), dtype=np.float32).astype("bfloat16"), device=dev)
        w = Weight(rng.standard_normal((k, n), dtype=np.float32), device=dev)
        gemm(a, w).numpy()
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            c = gemm(a, w)
        c.numpy()
        secs = (time.perf_counter() - t0) / args.repeat
        overhead = _host_overhead(dev, lambda: gemm(a, w), args.repeat)
        row = {"m": m, "n": n, "k": k, "seconds": secs, "tflops": 2 * m * n * k / secs / 1e12,
               "host_overhead_us": overhead * 1e6, "device": str(dev), "emulated": dev.kind == "emu"}
        rows.append(row)
        print(f"[{i}/{len(shapes)}] {m}x{n}x{k}: {secs * 1e3:.2f} ms, {row['tflops']:.4f} TFLOP/s, "
              f"host overhead {row['host_overhead_us']:.0f} us", file=sys.stderr)
    return _emit(args, rows, dev, "TFLOP/s")


def _emit(args, rows, dev, ylabel: str) -> int:
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print(f"hkrt: error: --plot needs matplotlib, which is not installed; {args.plot} not written",
                  file=sys.stderr)
            return 1
        labels = [f"{r['m']}x{r['n']}x{r['k']}" + (f" {r['strategy']}" if "strategy" in r else "") for r in rows]
        fig, ax = plt.subplots(figsize=(max(4, len(rows)), 3))
        ax.bar(labels, [r["tflops"] for r in rows])
        ax.set_ylabel(ylabel)
        ax.set_title(f"hkrt.gemm, {dev.kind}:{dev.index} ({dev.arch}{', emulated' if dev.kind == 'emu' else ''})")
        fig.autofmt_xdate()
        fig.tight_layout()
        try:
            fig.savefig(args.plot)
        except OSError as exc:  # handled here, not in main(): the table on stdout is fine and must stay
            print(f"hkrt: error: cannot write the plot to {args.plot}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hkrt", description="hkrt: bf16 GEMM on gfx950 from numpy")
    ap.add_argument("--device", default=None, help="auto (default, or $HKRT_DEVICE), gpu[:N] or emu[:N]")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="devices, HIP runtime, toolchain and built kernels")
    d = sub.add_parser("demo", help="one GEMM on the selected device, checked against numpy")
    d.add_argument("--shape", type=_parse_shape, default=(256, 256, 256), help="MxNxK (default 256x256x256)")
    d.add_argument("--seed", type=int, default=None)
    b = sub.add_parser("bench", help="TFLOP/s and host overhead per call over a set of shapes",
                       description="One row per shape: m, n, k; seconds per call (device arrays, B as a "
                       "Weight, bf16 out, after a warm-up); tflops; host_overhead_us (host work per call: "
                       "the asynchronous call on a GPU, the call with kernel execution skipped on the "
                       "emulator); device; emulated. Progress goes to stderr, the table to stdout.")
    b.add_argument("shapes", nargs="*", type=_parse_shape, help=f"MxNxK shapes (default: {' '.join(DEFAULT_BENCH)})")
    b.add_argument("--repeat", type=_positive, default=3, help="timed calls per shape (default 3)")
    b.add_argument("--format", choices=["csv", "json"], default="csv")
    b.add_argument("--plot", default=None, help="write a PNG bar chart here (needs matplotlib)")
    b.add_argument("--model", default=None, help="predict on the emulator's timing model (mi355x, mi350x): "
                   "predicted TFLOP/s per shape and family beside the peak and HBM roofline, with the breakdown")
    b.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True,
                   help="with --model: time a representative subset of each large launch (default on)")
    b.add_argument("--strategy", nargs="+", default=None, help="with --model: kernel families to compare")
    args = ap.parse_args(argv)
    from .errors import HkrtError
    try:
        status = {"info": cmd_info, "demo": cmd_demo, "bench": cmd_bench}[args.cmd](args)
        if sys.stdout is not None:
            sys.stdout.flush()  # so that a failing write is reported below, not as noise at interpreter exit
        return status
    except (HkrtError, ValueError, TypeError) as exc:  # a one-line error, not a traceback
        print(f"hkrt: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # host memory (device memory is a DeviceMemoryError, an HkrtError, above)
        print(f"hkrt: error: out of host memory{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, with the shell's code for SIGPIPE
        _discard_stdout()
        return 141
    except OSError as exc:  # e.g. stdout on a full disk; a write to stdout is the one that has no filename
        if exc.filename is None:
            _discard_stdout()
        print(f"hkrt: error: {exc.filename or 'cannot write standard output'}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: quietly, with the shell's code for SIGINT
        print(file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point standard output at the null device: what is left in its buffer would otherwise fail again when
    the interpreter flushes it at exit ('Exception ignored ...')."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
