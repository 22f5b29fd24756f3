"""hkrt.gemm's predicted speed per shape class, against the target each class has (the fastest-GEMMs issue).

    .venv/bin/python bench/gemm_classes.py [--classes epilogue prefill decode odd batch] [--quick]
        [--model mi355x] [--no-sample] [--markdown]

Every figure is a prediction of the emulator's timing model, measured in this one run: all launches of a
call (repacks, split-K sums, epilogues) are summed. Classes:
- epilogue: 8192^3 plain, with bias + gelu, with alpha/beta/C (target: at most 3% slower than plain);
- prefill: M in {2048, 4096, 8192} x LLM (N, K) (target: within 10% of hkrt's own 8192^3 TFLOP/s);
- decode: M in {1, ..., 128} x the same (N, K) (target: 85% of the HBM roofline: A, B and C bytes over the
  model's HBM bandwidth);
- odd: sides in {1000, 3000, 5000, 7000} (target: within 15% of the nearest multiple-of-256 shape);
- batch: 64 x 256^3, 16 x 1024^3, and a B shared across the batch (target: one launch; 80% of the TFLOP/s
  of the same FLOPs as one GEMM).
--quick takes a few shapes of each class (the full set needs hours of emulation on two cores).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass

import numpy as np

import hkrt
from hkrt import emu

LLM_NK = [(4096, 4096), (14336, 4096), (4096, 14336), (28672, 8192), (8192, 28672), (128256, 4096)]
ODD = (1000, 3000, 5000, 7000)


@dataclass
class Row:
    cls: str
    shape: str
    tflops: float
    ms: float
    launches: int
    target: str
    verdict: str
    note: str = ""


def timed(call) -> tuple[float, int, object]:
    """(modelled seconds, launches, main report) of everything `call` launches."""
    with emu.collect_reports() as reports:
        call()
    return sum(r.seconds for r in reports), len(reports), max(reports, key=lambda r: r.seconds)


def operands(rng, batch, m, n, k, shared_b=False):
    shape_a = (batch, m, k) if batch else (m, k)
    a = hkrt.asarray(rng.standard_normal(shape_a, np.float32).astype(hkrt.bfloat16))
    if batch and not shared_b:  # numpy: it goes up as N x K, the form the kernels read (a K x N device
        b = rng.standard_normal((batch, k, n), np.float32)  # array would be transposed by a launch of its own)
    else:
        b = hkrt.Weight(rng.standard_normal((k, n), np.float32))
    return a, b


def product(rng, m, n, k, batch=None, shared_b=False, **kw) -> tuple[float, int, object]:
    a, b = operands(rng, batch, m, n, k, shared_b)
    extra = {}
    if "beta" in kw:
        extra["c"] = hkrt.asarray(rng.standard_normal((m, n), np.float32))
    if "bias" in kw:
        kw["bias"] = hkrt.asarray(rng.standard_normal(n, np.float32))
    return timed(lambda: hkrt.gemm(a, b, **kw, **extra).numpy())


def tflops(flops: float, secs: float) -> float:
    return flops / secs / 1e12


def epilogue(rng, quick: bool) -> list[Row]:
    size = 4096 if quick else 8192
    flops = 2 * size ** 3
    plain, n0, _ = product(rng, size, size, size)
    rows = [Row("epilogue", f"{size}³ plain", tflops(flops, plain), plain * 1e3, n0, "reference", "")]
    for name, kw in (("bias + gelu", dict(bias=True, activation="gelu")),
                     ("alpha, beta, C", dict(alpha=0.5, beta=0.25))):
        secs, n, main = product(rng, size, size, size, **kw)
        slower = secs / plain - 1
        rows.append(Row("epilogue", f"{size}³ {name}", tflops(flops, secs), secs * 1e3, n, "<= 3% slower",
                        "met" if slower <= 0.03 else "missed", f"{slower:+.1%} vs plain ({main.kernel})"))
    return rows


def prefill(rng, quick: bool, reference: float | None) -> list[Row]:
    ms = (2048, 8192) if quick else (2048, 4096, 8192)
    nks = LLM_NK[:3] if quick else LLM_NK
    rows = []
    for m, (n, k) in itertools.product(ms, nks):
        secs, n_launch, main = product(rng, m, n, k)
        t = tflops(2 * m * n * k, secs)
        verdict = "" if reference is None else ("met" if t >= 0.9 * reference else "missed")
        rows.append(Row("prefill", f"{m}x{n}x{k}", t, secs * 1e3, n_launch, "within 10% of 8192³", verdict,
                        main.kernel))
    return rows


def decode(rng, quick: bool, model) -> list[Row]:
    ms = (1, 32, 128) if quick else (1, 8, 16, 32, 64, 128)
    nks = LLM_NK[:2] if quick else LLM_NK
    rows = []
    for m, (n, k) in itertools.product(ms, nks):
        secs, n_launch, main = product(rng, m, n, k)
        roof = 2 * (m * k + k * n + m * n) / model.hbm_bytes_per_second
        share = roof / secs
        rows.append(Row("decode", f"{m}x{n}x{k}", tflops(2 * m * n * k, secs), secs * 1e3, n_launch,
                        ">= 85% of HBM roofline", "met" if share >= 0.85 else "missed",
                        f"{share:.0%} of roofline ({main.kernel})"))
    return rows


def odd(rng, quick: bool) -> list[Row]:
    sides = (1000, 5000) if quick else ODD
    rows = []
    for m, n, k in itertools.product(sides, repeat=3):
        secs, n_launch, main = product(rng, m, n, k)
        t = tflops(2 * m * n * k, secs)
        near = tuple(max(256, round(x / 256) * 256) for x in (m, n, k))
        ref_secs, _, _ = product(rng, *near)
        ref = tflops(2 * near[0] * near[1] * near[2], ref_secs)
        rows.append(Row("odd", f"{m}x{n}x{k}", t, secs * 1e3, n_launch, "within 15% of nearest /256",
                        "met" if t >= 0.85 * ref else "missed", f"{t / ref:.0%} of {'x'.join(map(str, near))}"))
    return rows


def batch(rng, quick: bool) -> list[Row]:
    cases = [(64, 256, False), (16, 1024, False), (16, 1024, True)]
    rows = []
    for count, size, shared in cases[: 2 if quick else 3]:
        secs, n_launch, main = product(rng, size, size, size, batch=count, shared_b=shared)
        one_m = count * size  # the same FLOPs as one GEMM: the batch's rows stacked
        one, _, _ = product(rng, one_m, size, size)
        t, t1 = tflops(2 * count * size ** 3, secs), tflops(2 * one_m * size * size, one)
        ok = n_launch == 1 and t >= 0.8 * t1
        rows.append(Row("batch", f"{count} x {size}³{' shared B' if shared else ''}", t, secs * 1e3, n_launch,
                        "1 launch, >= 80% of one GEMM", "met" if ok else "missed",
                        f"{t / t1:.0%} of {one_m}x{size}x{size}; {n_launch} launches"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", nargs="+", default=["epilogue", "prefill", "decode", "odd", "batch"],
                    choices=["epilogue", "prefill", "decode", "odd", "batch"])
    ap.add_argument("--quick", action="store_true", help="a few shapes per class")
    ap.add_argument("--model", default="mi355x")
    ap.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    from hkrt.devices import backend
    backend("emu", model=args.model, sample=args.sample)
    model = hkrt.get_device("emu").driver.emulation.timing_model()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    rows: list[Row] = []
    reference = None
    if "prefill" in args.classes:  # the prefill target is relative to hkrt's own 8192^3
        secs, _, _ = product(rng, 8192, 8192, 8192)
        reference = tflops(2 * 8192 ** 3, secs)
        print(f"reference: 8192³ at {reference:.0f} TFLOP/s", file=sys.stderr, flush=True)
    for cls in args.classes:
        got = {"epilogue": lambda: epilogue(rng, args.quick), "prefill": lambda: prefill(rng, args.quick, reference),
               "decode": lambda: decode(rng, args.quick, model), "odd": lambda: odd(rng, args.quick),
               "batch": lambda: batch(rng, args.quick)}[cls]()
        for r in got:
            print(f"[{r.cls}] {r.shape}: {r.tflops:.1f} TFLOP/s ({r.ms:.4f} ms, {r.launches} launches) {r.verdict} "
                  f"{r.note}", file=sys.stderr, flush=True)
        rows += got
    head = ("class", "shape", "predicted TFLOP/s", "ms", "launches", "target", "verdict", "note")
    fmt = [(r.cls, r.shape, f"{r.tflops:.1f}", f"{r.ms:.4f}", str(r.launches), r.target, r.verdict, r.note)
           for r in rows]
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for line in fmt:
            print("| " + " | ".join(line) + " |")
    else:
        for line in (head, *fmt):
            print("  ".join(line))
    print(f"predicted on the {model.name} model, {'sampled' if args.sample else 'every workgroup'}; "
          f"{time.perf_counter() - start:.0f} s of emulation", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
