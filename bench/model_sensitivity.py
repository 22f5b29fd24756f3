"""How much each assumed parameter of the timing model moves its predictions of HipKittens' GEMMs.

    .venv/bin/python bench/model_sensitivity.py --hipkittens /path/to/HipKittens [--sizes 4096 8192]
        [--factors 0.5 2] [--params wg_launch_cycles l1_latency ...]

The parameters marked A (assumed: no document gives them) in docs/perf-model.md, and the two documented
figures that documents disagree on (the address path, 64 B/clk in AMD's TensileLite model and 128 in its
gfx950 profiler; the MALL bandwidth, an MI300X figure), each run scaled by every factor with the others at
their values, through bench/hipkittens_model.py --set (one process per run, sampling on, --check on). It
prints the predicted time of each size, its change against the unchanged model, and whether the product
was still right (HipKittens' kernels are correct on hardware only by timing). The clock is not refitted:
the change is what that assumption is worth at the fitted clock.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hkrt.emu import timing  # noqa: E402

ASSUMED = ["wg_launch_cycles", "l1_latency", "mall_latency", "hbm_latency", "mfma_writeback",
           "lds_dma_bytes_per_cycle", "ta_bytes_per_cycle", "mall_bytes_per_second"]


def predict(hk: str, sizes: list[int], model: str, settings: list[str]) -> dict[int, tuple[float, bool]]:
    """size -> (predicted ms, product right) for one run of the validation benchmark."""
    cmd = [sys.executable, str(Path(__file__).with_name("hipkittens_model.py")), "--hipkittens", hk,
           "--model", model, "--sample", "--check", "--json", "--sizes", *map(str, sizes)]
    for s in settings:
        cmd += ["--set", s]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode not in (0, 1) or not res.stdout.strip():
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    out = json.loads(res.stdout)
    return {r["size"]: (r["predicted_ms"], bool(r["check"] and r["check"]["ok"])) for r in out["results"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hipkittens", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--factors", type=float, nargs="+", default=[0.5, 2.0])
    ap.add_argument("--params", nargs="+", default=ASSUMED)
    ap.add_argument("--model", default="mi355x")
    args = ap.parse_args()
    model = timing.get_model(args.model)
    for p in args.params:
        if not isinstance(getattr(model, p, None), (int, float)):
            ap.error(f"{p!r} is not a numeric parameter of the {model.name} model")
    base = predict(args.hipkittens, args.sizes, args.model, [])
    head = "".join(f" {n:>8}³ ms  change  ok" for n in args.sizes)
    print(f"{'parameter':<26} {'value':>12}{head}")

    def row(name, value, got):
        cells = "".join(f" {got[n][0]:>11.4f} {100 * (got[n][0] / base[n][0] - 1):>+6.1f}% "
                        f"{'yes' if got[n][1] else 'NO':>3}" for n in args.sizes)
        print(f"{name:<26} {value:>12.4g}{cells}", flush=True)

    row("(as documented)", float("nan"), base)
    for p in args.params:
        for f in args.factors:
            value = getattr(model, p) * f
            value = round(value) if isinstance(getattr(model, p), int) else value
            row(p, value, predict(args.hipkittens, args.sizes, args.model, [f"{p}={value}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
