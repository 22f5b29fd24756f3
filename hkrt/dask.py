"""hkrt.dask: x @ y on dask arrays, every block product an hkrt.gemm on the device of the worker that runs it.

Needs the optional dependencies (`pip install hkrt[dask]`: dask[array] and distributed); `import hkrt` does
not. The product is built as dask's own matmul builds it: one task per (row block, K block, column block)
computes that partial product with hkrt.gemm in fp32, and a reduction over the K blocks sums the partials in
fp32; the result is cast to bf16 at the very end (unless float32 is asked for). A task runs on whatever
device its worker process uses by default (HKRT_DEVICE), so one worker per device, each pinned by its own
HKRT_DEVICE, puts every device to work: `device_workers` gives the worker specs for that on one host.

Numerically, against one hkrt.gemm over the whole K: the partials are exact fp32 accumulations as the kernels
make them, and each addition of two partials rounds once more in fp32, so a K split into n blocks adds n - 1
fp32 roundings (bounded by 2^-24 |A| @ |B| each), as split-K does (hkrt.reference.expected(splits=n) bounds
it); the bf16 rounding of the result still happens once. Partials in bf16 would instead round every block's
sum to 8 bits before adding: far larger errors.
"""
from __future__ import annotations

import math

import numpy as np

try:
    import dask.array as da
except ImportError as exc:  # raised on `import hkrt.dask` only
    raise ImportError(f"hkrt.dask needs dask: install it with `pip install hkrt[dask]` ({exc})") from exc

from .array import SUPPORTED
from .devices import parse_spec
from .gemm import gemm
from .request import FLOAT32, parse_out_dtype


def matmul(x, y, *, out_dtype=None, strategy: str | None = None):
    """x @ y as a dask array, each block product run by hkrt.gemm on its worker's device.

    x: M x K, or batch x M x K; y: K x N, or batch x K x N (with a batched x). Both are dask arrays of
    bfloat16, float16 or float32 (rounded to bf16 before the product, as hkrt.gemm does); their chunks along
    K need not agree (dask aligns them). The result is chunked as x's rows and y's columns (and x's batch),
    of dtype out_dtype: bfloat16 (default) or float32. strategy: as hkrt.gemm's, for every block product.
    Nothing is computed until the result is.
    """
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, da.Array):
            raise TypeError(f"{name} must be a dask array, not {type(v).__name__} (hkrt.gemm takes numpy arrays)")
        if np.dtype(v.dtype) not in SUPPORTED:
            raise TypeError(f"{name} has dtype {v.dtype}; hkrt.dask.matmul takes bfloat16, float16 or float32")
        if any(math.isnan(s) for s in v.shape):
            raise ValueError(f"{name} has unknown chunk sizes (shape {v.shape}); call {name}.compute_chunk_sizes() "
                             f"first")
        if v.ndim not in (2, 3):
            raise ValueError(f"{name} must be 2-D or 3-D (batched), got {v.ndim}-D shape {v.shape}")
    if x.shape[-1] != y.shape[-2]:
        raise ValueError(f"inner dimensions differ: x is {x.shape} and y is {y.shape}")
    if y.ndim == 3 and (x.ndim != 3 or x.shape[0] != y.shape[0]):
        raise ValueError(f"batched y {y.shape} needs a batched x with the same batch size, got x {x.shape}")
    out_dtype = parse_out_dtype(out_dtype)
    if strategy is not None and not isinstance(strategy, str):
        raise TypeError(f"strategy must be a kernel family or variant name (str), not {type(strategy).__name__}")
    batch = "b" if x.ndim == 3 else ""
    # k stays an output index (one partial per K block, the block's K shrunk to 1) instead of being
    # contracted: the sum over K blocks is a separate fp32 reduction, as dask.array.matmul does it.
    partials = da.blockwise(_partial_product, batch + "ikj", x, batch + "ik", y, ("b" if y.ndim == 3 else "") + "kj",
                            adjust_chunks={"k": 1}, dtype=FLOAT32, meta=np.empty((0,) * (len(batch) + 3), FLOAT32),
                            concatenate=False, token="hkrt-matmul-partial", strategy=strategy)
    total = partials.sum(axis=-2, dtype=FLOAT32)
    return total if out_dtype == FLOAT32 else total.astype(out_dtype)


def _partial_product(a: np.ndarray, b: np.ndarray, strategy: str | None) -> np.ndarray:
    """One block's product in fp32, on this worker's device, with the K block's axis (length 1) kept."""
    return gemm(a, b, out_dtype=FLOAT32, strategy=strategy)[..., None, :]


def device_workers(devices, *, env: dict | None = None, **nanny_options) -> dict:
    """Worker specs for a distributed.SpecCluster on this host: one worker process per device, named by its
    device spec, with one thread (a device runs one product at a time) and HKRT_DEVICE set to that device,
    so that every block product of the worker runs there. A worker restarted after a crash keeps its spec.

    devices: device specs ("gpu:0", "emu:1", ...), each once. env: more environment for every worker.
    nanny_options: passed to each distributed.Nanny (memory_limit, host, ...; nthreads to override 1).
    """
    try:
        from distributed import Nanny
    except ImportError as exc:
        raise ImportError(f"hkrt.dask.device_workers needs distributed: install it with "
                          f"`pip install hkrt[dask]` ({exc})") from exc
    if isinstance(devices, str) or not isinstance(devices, (list, tuple)):
        raise TypeError(f"devices must be a list or tuple of device specs ('gpu:0', ...), not "
                        f"{type(devices).__name__}")
    if not devices:
        raise ValueError("devices is empty: give at least one device spec")
    seen = {}
    for spec in devices:
        if not isinstance(spec, str):
            raise TypeError(f"each device must be a spec string like 'gpu:0' (it becomes the worker's "
                            f"HKRT_DEVICE), not {type(spec).__name__} {spec!r}")
        kind, index = parse_spec(spec)
        key = (kind, index or 0)
        if key in seen:
            raise ValueError(f"device {spec!r} is the same device as {seen[key]!r}; give each device once")
        seen[key] = spec
    if env is not None and not isinstance(env, dict):
        raise TypeError(f"env must be a dict of environment variables, not {type(env).__name__}")
    if env and "HKRT_DEVICE" in env:
        raise ValueError("env must not set HKRT_DEVICE: each worker's is its own device, from devices")
    options = {"nthreads": 1, **nanny_options}
    return {spec: {"cls": Nanny, "options": {**options, "env": {**(env or {}), "HKRT_DEVICE": spec}}}
            for spec in devices}
