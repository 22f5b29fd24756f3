"""Validate the emulator's timing model against HipKittens' published MI355X bf16 GEMM times.

    .venv/bin/python bench/hipkittens_model.py --hipkittens /path/to/HipKittens \
        [--sizes 4096 8192 16384] [--model mi355x] [--set PARAM=VALUE ...] [--sample | --no-sample]
        [--check] [--json]

HipKittens (HazyResearch/HipKittens) publishes square bf16 GEMM kernels, one source per size (1024 to
16384; below 4096 its times are dominated by launch overheads), under
analysis/bf16_gemm/mi350x/kernel_<N>.cpp and the times it measured on an MI355X in
mi355x_bf16_gemm.json there. This script compiles those sources from the user's checkout (device only,
gfx950, into a cache outside this repository: $HKRT_HIPKITTENS_CACHE or ~/.cache/hkrt/hipkittens/<hash>),
launches each code object through plain hip-python on the emulator, and prints published vs predicted
kernel time. With a timing model (`--model`), hipEventElapsedTime is modeled device time; without one
(`--model none`) it is host wall time and the error column is
meaningless. HipKittens' code stays in its checkout: nothing of it is copied here.

The kernels (as their sources and code objects show): C = A @ B^T, A M x K and B N x K row-major bf16,
C M x N row-major bf16 (fp32 accumulators stored by truncation); one argument, a 152-byte struct by value
holding three global layouts {u64 ptr, u64 batch, depth, rows, cols, 8 bytes of padding} at 0, 48, 96 and
a stream pointer at 144; grid (N/T)^2 x 1 x 1 (T = 256, 128 at N <= 2048), 512 threads, 160000 bytes of
dynamic LDS.

--set changes a parameter of the model (a field of hkrt.emu.timing.ChipModel) for this run, e.g.
`--set hbm_latency=1200`; bench/model_sensitivity.py uses it to show how much each assumption matters.

--check compares C with numpy (float64 from the bf16 inputs). C is filled with the bf16 pattern 0x7FC1
before the launch, so with sampling (only some workgroups run) only tiles a workgroup wrote are checked;
every entry of such a tile must be finite and within bf16 truncation error. --workgroups N launches only
the first N workgroups (a functional check; the kernel's tile order then follows the smaller grid and the
time is not comparable).
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from ml_dtypes import bfloat16

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import toolchain  # noqa: E402
from hkrt import codeobject, config  # noqa: E402
from hkrt import emu  # noqa: E402
from hkrt.emu import timing  # noqa: E402

ARCH = "gfx950"
KERNEL_DIR = "analysis/bf16_gemm/mi350x"
PUBLISHED = f"{KERNEL_DIR}/mi355x_bf16_gemm.json"
THREADS = 512
DYNAMIC_LDS = 160000           # HipKittens' MAX_SHARED_MEMORY, what its launcher asks for
POISON = 0x7FC1                # bf16 NaN pattern C is filled with before a launch
GL_BYTES = 48                  # one gl<bf16,-1,-1,-1,-1>: pointer, four size_t dims, padded empty member
GLOBALS_BYTES = 3 * GL_BYTES + 8
MAX_CHECK_TILES = 64           # at most this many written tiles are compared (float64 on the CPU)
# HipKittens' Makefile flags for CDNA4, device only. -Wno-invalid-constexpr: clang 21 rejects two constexpr
# helpers in its base_types.cuh (HIP's __half2 constructor is not constexpr); they are never used here.
FLAGS = ["-O3", "-std=c++20", f"--offload-arch={ARCH}", "--cuda-device-only", "--no-gpu-bundle-output",
         "-DKITTENS_CDNA4", "-DHIP_ENABLE_WARP_SYNC_BUILTINS", "-ffast-math", "-w", "-Wno-invalid-constexpr"]

# The kernels include "pyutils/pyutils.cuh" (pybind11 bindings, host only). This header, found first on
# the include path, replaces it for a device-only build: the binding block compiles to an unused function.
PYUTILS_STUB = """\
#pragma once
#include "kittens.cuh"
namespace kittens { namespace py {
struct module_stub { const char *doc_ = nullptr; const char *&doc() { return doc_; } };
template<auto f, typename... Args> static void bind_function(Args &&...) {}
template<auto f, typename... Args> static void bind_kernel(Args &&...) {}
} }
#define PYBIND11_MODULE(name, var) \\
    [[maybe_unused]] static void hkrt_unused_module_##name(::kittens::py::module_stub &var)
"""


@dataclass
class Built:
    size: int
    path: Path
    symbol: str
    kernarg_size: int
    vgprs: int
    sgprs: int
    command: list[str]


@dataclass
class CheckResult:
    tiles_written: int
    tiles_checked: int
    entries_checked: int
    nonfinite: int
    mismatches: int
    max_rel_error: float   # max |c - ref| / max |ref| over the checked entries
    tiles_expected: int = 0  # workgroups that ran, one tile each: a tile left all NaN counts as unwritten

    @property
    def ok(self) -> bool:
        return (self.entries_checked > 0 and self.nonfinite == 0 and self.mismatches == 0
                and self.tiles_written >= self.tiles_expected)


@dataclass
class Result:
    size: int
    tile: int
    grid: int
    workgroups: int
    published_ms: float | None
    predicted_ms: float | None        # None when the launch failed (see error)
    timing: str                       # "model" (modeled device time) or "wall" (host time)
    wall_s: float
    error: str | None = None
    report: str | None = None
    report_seconds: float | None = None
    sampled: bool | None = None
    workgroups_run: int | None = None
    report_data: dict | None = None   # the whole launch report, for --json
    check: CheckResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def tflops(self) -> float | None:
        return 2 * self.size ** 3 / (self.predicted_ms * 1e-3) / 1e12 if self.predicted_ms else None

    @property
    def error_pct(self) -> float | None:
        if self.published_ms is None or self.predicted_ms is None:
            return None
        return 100 * (self.predicted_ms - self.published_ms) / self.published_ms


def tile_for(size: int) -> int:
    return 128 if size <= 2048 else 256


# ---- building

def hip_include_dir(tc: toolchain.Toolchain) -> str:
    """HipKittens includes <hip_bf16.h> unqualified, as with -I$ROCM_PATH/include/hip."""
    if tc.origin == "private":
        return "/usr/include/hip"                   # inside the private toolchain's root
    return str(Path(tc.hipcc).resolve().parent.parent / "include" / "hip")


def source_digest(hk: Path, src: Path, flags: list[str], compiler: str) -> str:
    h = hashlib.sha256()
    for p in [src, *sorted((hk / "include").rglob("*"))]:
        if p.is_file():
            h.update(str(p.relative_to(hk)).encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(json.dumps([flags, compiler, PYUTILS_STUB]).encode())
    return h.hexdigest()[:16]


def build(hk: Path, size: int, cache_root: Path, tc: toolchain.Toolchain, compiler: str) -> Built:
    src = hk / KERNEL_DIR / f"kernel_{size}.cpp"
    if not src.is_file():
        raise SystemExit(f"{src}: no HipKittens kernel for size {size}")
    flags = FLAGS + [f"-I{hip_include_dir(tc)}"]
    out_dir = cache_root / source_digest(hk, src, flags, compiler)
    stub = out_dir / "stub"
    out = out_dir / f"kernel_{size}.co"
    cmd = [tc.hipcc, *flags, f"-I{stub}", f"-I{hk / 'include'}", "-c", str(src), "-o", str(out)]
    if not out.exists():
        (stub / "pyutils").mkdir(parents=True, exist_ok=True)
        (stub / "pyutils" / "pyutils.cuh").write_text(PYUTILS_STUB)
        tmp = out.with_suffix(".co.tmp")
        env = dict(os.environ, HKRT_MOUNT=f"{hk}:{out_dir}")  # the private hipcc sees only mounted dirs
        res = subprocess.run([*cmd[:-1], str(tmp)], cwd=out_dir, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"compiling {src} failed\n$ {' '.join(cmd)}\n{res.stderr}")
        tmp.replace(out)
    co = codeobject.parse(out, expect_arch=ARCH)
    if len(co.kernels) != 1:
        raise SystemExit(f"{out}: expected one kernel, found {list(co.kernels)}")
    k = next(iter(co.kernels.values()))
    args = [(a.offset, a.size) for a in k.explicit_args]
    if args != [(0, GLOBALS_BYTES)]:
        raise SystemExit(f"{k.name}: expected one {GLOBALS_BYTES}-byte argument at 0, found {args}")
    return Built(size, out, k.name, k.kernarg_segment_size, k.vgpr_count, k.sgpr_count, cmd)


def globals_struct(a: int, b: int, c: int, m: int, n: int, k: int) -> bytes:
    """The kernels' by-value globals: gl a (M x K), gl b (N x K), gl c (M x N), a null stream."""
    def gl(ptr: int, rows: int, cols: int) -> bytes:
        return struct.pack("<5Q8x", ptr, 1, 1, rows, cols)
    return gl(a, m, k) + gl(b, n, k) + gl(c, m, n) + struct.pack("<Q", 0)


# ---- running through plain hip-python

class LaunchError(RuntimeError):
    """The kernel faulted (the message has the emulator's account: kernel, PC, instruction)."""

    def __init__(self, message: str, wall_s: float):
        super().__init__(message)
        self.wall_s = wall_s


class Hip:
    """The few hip-python calls used, each status checked."""

    def __init__(self):
        from hip import hip  # after emu.activate()
        self.hip = hip
        self.call("hipInit", hip.hipInit(0))

    def call(self, name: str, result):
        err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        code = int(getattr(err, "value", err))
        if code != 0:
            self.hip.hipGetLastError()
            exc = emu.last_error() if emu.is_active() else None
            raise RuntimeError(f"{name}: {getattr(err, 'name', code)}" + (f"\n{exc}" if exc else ""))
        return rest[0] if len(rest) == 1 else (rest or None)

    def malloc(self, nbytes: int) -> int:
        return int(self.call("hipMalloc", self.hip.hipMalloc(nbytes)))

    def htod(self, dst: int, src: np.ndarray) -> None:
        kind = self.hip.hipMemcpyKind.hipMemcpyHostToDevice
        self.call("hipMemcpy", self.hip.hipMemcpy(dst, src, src.nbytes, kind))

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        kind = self.hip.hipMemcpyKind.hipMemcpyDeviceToHost
        self.call("hipMemcpy", self.hip.hipMemcpy(dst, src, dst.nbytes, kind))

    def launch_timed(self, function, grid: int, kernarg: bytes) -> float:
        """One launch between two events; returns hipEventElapsedTime in ms."""
        hip = self.hip
        buf = ctypes.create_string_buffer(kernarg, len(kernarg))
        size = ctypes.c_size_t(len(kernarg))
        extra = (ctypes.c_void_p * 5)(1, ctypes.addressof(buf), 2, ctypes.addressof(size), 3)  # HIP_LAUNCH_PARAM_*
        start = self.call("hipEventCreate", hip.hipEventCreate())
        stop = self.call("hipEventCreate", hip.hipEventCreate())
        try:
            self.call("hipEventRecord", hip.hipEventRecord(start, None))
            self.call("hipModuleLaunchKernel", hip.hipModuleLaunchKernel(
                function, grid, 1, 1, THREADS, 1, 1, DYNAMIC_LDS, None, None, extra))
            self.call("hipEventRecord", hip.hipEventRecord(stop, None))
            self.call("hipEventSynchronize", hip.hipEventSynchronize(stop))
            return float(self.call("hipEventElapsedTime", hip.hipEventElapsedTime(start, stop)))
        finally:
            self.call("hipEventDestroy", hip.hipEventDestroy(start))
            self.call("hipEventDestroy", hip.hipEventDestroy(stop))


def model_with(name: str, settings: list[str]) -> timing.ChipModel:
    """The named model with PARAM=VALUE settings applied; a bad name or value raises ValueError."""
    model = timing.get_model(name)
    names = {f.name for f in fields(model)}
    changes = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or key not in names or isinstance(getattr(model, key), (str, tuple)):
            raise ValueError(f"--set {item!r}: expected PARAM=VALUE with PARAM one of the model's numeric "
                             f"parameters: {', '.join(k for k, v in vars(model).items() if isinstance(v, (int, float)))}")
        kind = type(getattr(model, key))
        try:
            changes[key] = kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
        except ValueError:
            raise ValueError(f"--set {item!r}: {text!r} is not a {kind.__name__}") from None
    return replace(model, **changes)


def activate(model: timing.ChipModel | None, sample: bool) -> tuple[bool, list[str]]:
    """Put hip-python on the emulator, with the timing model unless `model` is None."""
    if model:
        emu.activate(model=model, sample=sample)
        return True, []
    emu.activate()
    return False, ["no timing model: times are host wall time"]


def run(hip: Hip, built: Built, size: int, rng: np.random.Generator, workgroups: int | None,
        check: bool) -> tuple[float, float, CheckResult | None]:
    m = n = k = size
    a = rng.standard_normal((m, k), np.float32).astype(bfloat16)
    b = rng.standard_normal((n, k), np.float32).astype(bfloat16)
    c = np.full((m, n), POISON, np.uint16)
    module = hip.call("hipModuleLoadData", hip.hip.hipModuleLoadData(built.path.read_bytes()))
    ptrs: list[int] = []
    try:
        function = hip.call("hipModuleGetFunction", hip.hip.hipModuleGetFunction(module, built.symbol.encode()))
        attr = hip.hip.hipFuncAttribute.hipFuncAttributeMaxDynamicSharedMemorySize
        hip.call("hipFuncSetAttribute", hip.hip.hipFuncSetAttribute(int(function), attr, DYNAMIC_LDS))
        ptrs = [hip.malloc(x.nbytes) for x in (a, b, c)]
        for p, x in zip(ptrs, (a, b, c)):
            hip.htod(p, x)
        grid = workgroups or (size // tile_for(size)) ** 2
        t0 = time.perf_counter()
        try:
            ms = hip.launch_timed(function, grid, globals_struct(*ptrs, m, n, k))
        except RuntimeError as exc:
            raise LaunchError(str(exc), time.perf_counter() - t0) from exc
        wall = time.perf_counter() - t0
        hip.dtoh(c, ptrs[2])
    finally:
        for p in ptrs:
            hip.call("hipFree", hip.hip.hipFree(p))
        hip.call("hipModuleUnload", hip.hip.hipModuleUnload(module))
    return ms, wall, compare(a, b, c, tile_for(size)) if check else None


def compare(a: np.ndarray, b: np.ndarray, c_bits: np.ndarray, t: int) -> CheckResult:
    """Check every tile some workgroup wrote (at most MAX_CHECK_TILES of them, evenly spread)."""
    m, n = c_bits.shape
    tiles = c_bits.reshape(m // t, t, n // t, t).swapaxes(1, 2)
    # a tile counts as written if any entry differs from the fill (NaN from poisoned operands can equal it)
    written = np.argwhere((tiles != POISON).any(axis=(2, 3)))
    pick = written[np.linspace(0, len(written) - 1, min(len(written), MAX_CHECK_TILES)).astype(int)] \
        if len(written) else written
    entries = nonfinite = bad = 0
    max_err = ref_max = 0.0
    k = a.shape[1]
    for ti, tj in pick:
        ref = a[ti * t:(ti + 1) * t].astype(np.float64) @ b[tj * t:(tj + 1) * t].astype(np.float64).T
        got = tiles[ti, tj].view(bfloat16).astype(np.float64)
        fin = np.isfinite(got)
        nonfinite += int((~fin).sum())
        err = np.abs(got - ref)[fin]
        # bf16 truncation (< 2^-7 relative) plus fp32 accumulation over K
        tol = 2.0 ** -7 * np.abs(ref[fin]) + 2.0 ** -12 * np.sqrt(k)
        bad += int((err > tol).sum())
        entries += int(fin.sum())
        max_err = max(max_err, float(err.max(initial=0.0)))
        ref_max = max(ref_max, float(np.abs(ref).max()))
    return CheckResult(len(written), len(pick), entries, nonfinite, bad, max_err / ref_max if ref_max else 0.0)


def report_fields(modeled: bool) -> dict:
    """The Result fields taken from the emulator's last launch report, when it has one."""
    rep = emu.last_report() if modeled else None
    if rep is None:
        return {}
    return {"report": rep.summary(), "report_seconds": rep.seconds, "sampled": rep.sampled,
            "workgroups_run": rep.workgroups_run, "report_data": asdict(rep)}


def published_ms(hk: Path) -> dict[int, float]:
    p = hk / PUBLISHED
    if not p.is_file():
        return {}
    return {int(n): float(v["avg_time"]) for n, v in json.loads(p.read_text()).items() if "avg_time" in v}


def print_table(results: list[Result], notes: list[str]) -> None:
    for line in notes:
        print(f"note: {line}")
    print(f"{'size':>6} {'tile':>4} {'WGs':>9} {'published ms':>12} {'predicted ms':>12} {'error %':>8} "
          f"{'TFLOP/s':>8} {'timing':>6} {'wall s':>8}  check")
    for r in results:
        pub = f"{r.published_ms:.4f}" if r.published_ms is not None else "-"
        err = f"{r.error_pct:+.1f}" if r.error_pct is not None and r.timing == "model" else "-"
        pred = f"{r.predicted_ms:.4f}" if r.predicted_ms is not None else "failed"
        tf = f"{r.tflops:.1f}" if r.tflops is not None else "-"
        ran = r.workgroups_run if r.workgroups_run is not None else r.workgroups
        wgs = f"{ran}/{r.grid}" if ran != r.grid else str(r.grid)
        chk = "-"
        if r.check:
            x = r.check
            chk = (f"{'ok' if x.ok else 'FAIL'}: {x.tiles_written} of {x.tiles_expected} tiles written, "
                   f"{x.tiles_checked} checked, "
                   f"{x.entries_checked} finite entries ({x.mismatches} off, max err {x.max_rel_error:.2g} "
                   f"of max|C|), {x.nonfinite} non-finite")
        print(f"{r.size:>6} {r.tile:>4} {wgs:>9} {pub:>12} {pred:>12} {err:>8} {tf:>8} "
              f"{r.timing:>6} {r.wall_s:>8.1f}  {chk}")
    for r in results:
        for line in ([r.report] if r.report else []) + r.notes + ([f"error: {r.error}"] if r.error else []):
            print(f"[{r.size}] {line}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hipkittens", type=Path, default=os.environ.get("HIPKITTENS"),
                    help="HipKittens checkout (default $HIPKITTENS)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--model", default="mi355x", help="timing model, or 'none' for host wall time")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                    help="change one of the model's parameters (repeatable)")
    ap.add_argument("--sample", action=argparse.BooleanOptionalAction, default=None,
                    help="run a sample of the workgroups (default: on when every size is > 2048)")
    ap.add_argument("--check", action="store_true", help="compare the written C tiles with numpy")
    ap.add_argument("--workgroups", type=int, default=None, help="launch only the first N workgroups")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    ap.add_argument("--cache", type=Path, default=Path(config.get("HKRT_HIPKITTENS_CACHE")
                                                       or Path.home() / ".cache" / "hkrt" / "hipkittens"))
    ap.add_argument("--json", action="store_true", help="print JSON records instead of the table")
    args = ap.parse_args()
    if args.hipkittens is None:
        ap.error("--hipkittens PATH (or $HIPKITTENS) is required")
    hk = args.hipkittens.expanduser().resolve()
    if not (hk / "include" / "kittens.cuh").is_file():
        ap.error(f"{hk} is not a HipKittens checkout (no include/kittens.cuh)")
    repo = Path(__file__).resolve().parents[1]
    cache = args.cache.expanduser().resolve()
    if cache.is_relative_to(repo):
        ap.error(f"--cache {cache} is inside the repository")

    tc = toolchain.find(verbose=False)
    if tc is None:
        raise SystemExit("no gfx950 hipcc found: run `make toolchain` (or set $HIPCC)")
    compiler = toolchain.compiler_version(tc.hipcc)
    built = [build(hk, n, cache, tc, compiler) for n in args.sizes]

    try:
        model = None if args.model in ("", "none") else model_with(args.model, args.set)
    except ValueError as exc:
        ap.error(str(exc))
    sample = args.sample if args.sample is not None else all(n > 2048 for n in args.sizes)
    modeled, notes = activate(model, sample)
    hip = Hip()
    published = published_ms(hk)
    rng = np.random.default_rng(args.seed)
    results: list[Result] = []
    for b in built:
        grid = (b.size // tile_for(b.size)) ** 2
        wgs = min(args.workgroups or grid, grid)
        timing = "model" if modeled else "wall"
        try:
            ms, wall, chk = run(hip, b, b.size, rng, wgs if wgs != grid else None, args.check)
        except LaunchError as exc:  # a kernel fault: report it, go on with the next size
            results.append(Result(b.size, tile_for(b.size), grid, wgs, published.get(b.size), None, timing,
                                  exc.wall_s, error=str(exc)))
            print(f"[{b.size}] {b.symbol}: {exc}", file=sys.stderr, flush=True)
            continue
        r = Result(b.size, tile_for(b.size), grid, wgs, published.get(b.size), ms, timing, wall,
                   check=chk, **report_fields(modeled))
        if chk is not None:
            r.check = replace(chk, tiles_expected=r.workgroups_run or wgs)
        secs = r.report_seconds
        if secs is not None and abs(secs * 1e3 - ms) > 1e-6 * max(ms, 1e-9):
            r.notes.append(f"report seconds {secs * 1e3:.4f} ms differ from hipEventElapsedTime {ms:.4f} ms")
        if wgs != grid:
            r.notes.append(f"only {wgs} of {grid} workgroups launched: the time is not comparable")
        results.append(r)
        if not args.json:
            print(f"[{b.size}] {b.symbol}: {ms:.4f} ms ({r.timing}), {wall:.1f} s wall",
                  file=sys.stderr, flush=True)

    if args.json:
        out = []
        for r in results:
            d = asdict(r)
            d.update(tflops=r.tflops, error_pct=r.error_pct,
                     check=(asdict(r.check) | {"ok": r.check.ok}) if r.check else None)
            out.append(d)
        print(json.dumps({"hipkittens": str(hk), "model": model.name if modeled else None, "set": args.set,
                          "sample": sample if modeled else None, "notes": notes,
                          "kernels": [{"size": b.size, "symbol": b.symbol, "code_object": str(b.path),
                                       "vgprs": b.vgprs, "sgprs": b.sgprs} for b in built],
                          "results": out}, indent=2, default=str))
    else:
        print_table(results, notes)
    return 0 if all(r.error is None and (r.check is None or r.check.ok) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
