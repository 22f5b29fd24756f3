"""hkrt.gemm against HipKittens' published kernels, side by side in one run on one timing model.

    .venv/bin/python bench/vs_hipkittens.py --hipkittens /path/to/HipKittens [--sizes 4096 8192 16384]
        [--model mi355x] [--no-sample] [--markdown]

Every figure is a prediction of the emulator's timing model (nothing here ran on an AMD GPU). For each
square size, HipKittens' kernel for it is built from the user's checkout (outside this repository, as
bench/hipkittens_model.py does) and launched through hip-python; then hkrt.gemm runs the same product
(device arrays, the B operand a prepared Weight, bf16 out). Both are timed on the same model in the same
process: the ratio is hkrt's predicted TFLOP/s over HipKittens'. The limit column is the main kernel's
busiest resource and its largest stall, from the model's report.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hipkittens_model as hkm  # noqa: E402
import toolchain  # noqa: E402
from hkrt import config  # noqa: E402


def limit(report) -> str:
    """What holds a kernel back, per its report: the busiest pipe, then the largest stall cause."""
    busy = {"matrix": report.matrix_busy, "LDS": report.lds_busy, "vmem": report.vmem_busy}
    pipe = max(busy, key=busy.get)
    stalls = dataclasses.asdict(report.stalls)
    cause = max(stalls, key=stalls.get)
    return f"{pipe} {busy[pipe]:.0%} busy; most stalls: {cause}"


def hkrt_run(size: int, rng: np.random.Generator):
    import hkrt
    from hkrt.emu import collect_reports
    a = hkrt.asarray(rng.standard_normal((size, size), np.float32).astype(hkrt.bfloat16))
    w = hkrt.Weight(rng.standard_normal((size, size), np.float32))
    with collect_reports() as reports:
        hkrt.gemm(a, w).numpy()
    main = max(reports, key=lambda r: r.seconds)
    return sum(r.seconds for r in reports), main, len(reports)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hipkittens", type=Path, required=True, help="HipKittens checkout")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--model", default="mi355x")
    ap.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True,
                    help="time a representative sample of each large launch's workgroups (default on)")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args()
    hk = args.hipkittens.expanduser().resolve()
    if not (hk / "include" / "kittens.cuh").is_file():
        ap.error(f"{hk} is not a HipKittens checkout (no include/kittens.cuh)")
    tc = toolchain.find(verbose=False)
    if tc is None:
        raise SystemExit("no gfx950 hipcc found: run `make toolchain`")
    cache = Path(config.get("HKRT_HIPKITTENS_CACHE") or Path.home() / ".cache" / "hkrt" / "hipkittens")
    built = [hkm.build(hk, n, cache, tc, toolchain.compiler_version(tc.hipcc)) for n in args.sizes]
    model = hkm.model_with(args.model, [])
    hkm.activate(model, args.sample)
    hip = hkm.Hip()
    rng = np.random.default_rng(0)
    rows = []
    for b in built:
        flops = 2 * b.size ** 3
        hk_ms, _, _ = hkm.run(hip, b, b.size, rng, None, False)
        hk_report = hkm.emu.last_report()
        ours_s, ours_report, launches = hkrt_run(b.size, rng)
        row = dict(size=b.size, hkrt_ms=ours_s * 1e3, hkrt_tflops=flops / ours_s / 1e12, hk_ms=hk_ms,
                   hk_tflops=flops / (hk_ms * 1e-3) / 1e12, kernel=ours_report.kernel, launches=launches,
                   hkrt_limit=limit(ours_report), hk_limit=limit(hk_report))
        row["ratio"] = row["hkrt_tflops"] / row["hk_tflops"]
        rows.append(row)
        print(f"[{b.size}] hkrt {row['hkrt_ms']:.4f} ms, HipKittens {hk_ms:.4f} ms: {row['ratio']:.3f}x",
              file=sys.stderr, flush=True)
    head = ("size", "hkrt TFLOP/s", "HipKittens TFLOP/s", "ratio", "hkrt limit", "HipKittens limit")
    lines = [(f"{r['size']}³", f"{r['hkrt_tflops']:.0f} ({r['hkrt_ms']:.4f} ms)",
              f"{r['hk_tflops']:.0f} ({r['hk_ms']:.4f} ms)", f"{r['ratio']:.3f}", r["hkrt_limit"], r["hk_limit"])
             for r in rows]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        for line in (head, *lines):
            print("  ".join(f"{x:<22}" for x in line))
    print(f"predicted on the {model.name} model ({model.clock_hz / 1e9:.3f} GHz effective clock), "
          f"{'sampled' if args.sample else 'every workgroup'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
