"""Run a GemmRequest on the device by its Plan: operands up (or viewed where they lie), repacked where
the chosen kernel cannot take them as they are, the GEMM launched with its family's arguments and grid,
then the epilogue kernel when the GEMM does not finish the result itself (split-K sums,
alpha/beta/bias/activation, output type).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry
from .memory import stream_handle
from .array import DeviceArray, asarray, bfloat16
from .request import FAST_MAX_BUFFER, FLOAT32, GemmRequest, padded_k

FAST_ALIGN = 16            # bytes: operand rows and batches for the direct-to-LDS loads


@dataclass
class Operand:
    """A bf16 matrix (or a batch of them) on the device as a kernel reads it.

    layout "mk"/"nk": rows x K, K contiguous; "kn": K x N, N contiguous; "km": K x M (a transposed A). ld is the row stride in
    elements; batch_stride is in bytes (0: one matrix shared by every batch).
    """
    arr: DeviceArray
    layout: str
    rows: int
    cols: int
    ld: int
    batch_stride: int = 0
    base: int | None = None

    def ptr(self, i: int = 0) -> int:
        return (self.arr.ptr if self.base is None else self.base) + i * self.batch_stride

    def fast_ready(self, k_padded: int) -> bool:
        """Whether the fast kernels can read it as is: K-contiguous, K padded, aligned, small enough."""
        return (self.layout in ("mk", "nk") and self.cols == k_padded and self.ld % 8 == 0
                and self.ptr() % FAST_ALIGN == 0 and self.batch_stride % FAST_ALIGN == 0
                and self.rows * self.ld * 2 <= FAST_MAX_BUFFER)


def _device_view(x: DeviceArray, row_major: str, transposed: str) -> Operand:
    """A bf16 device operand as it lies: row-major (layout row_major, e.g. "mk"), or the transposed view of
    a row-major array (layout transposed, e.g. "km"); what a kernel cannot read is repacked later."""
    rows, cols = x.shape[-2:]
    item = x.dtype.itemsize
    batch_stride = x.strides[0] if x.ndim == 3 else 0
    if x.strides[-1] == item:
        return Operand(x, row_major, rows, cols, x.strides[-2] // item, batch_stride, base=x.ptr)
    if x.strides[-2] == item:
        return Operand(x, transposed, cols, rows, x.strides[-1] // item, batch_stride, base=x.ptr)
    name = "a" if row_major == "mk" else "b"
    raise ValueError(f"device array {name} needs unit stride along one of its last two dimensions")


def operand_a(req: GemmRequest) -> Operand:
    a = req.a
    if isinstance(a, DeviceArray):
        return _device_view(a, "mk", "km")
    d = asarray(np.ascontiguousarray(a.astype(bfloat16, copy=False)), device=req.device, stream=req.stream)
    return Operand(d, "mk", req.m, req.k, req.k, d.strides[0] if d.ndim == 3 else 0)


def operand_b(req: GemmRequest) -> Operand:
    b = req.b
    if isinstance(b, DeviceArray):
        return _device_view(b, "kn", "nk")
    if not isinstance(b, np.ndarray):  # a Weight: prepared already
        return b.operand
    # Numpy B goes up as N x K, the form every kernel family reads: the transpose rides on the bf16
    # conversion copy, which happens anyway.
    nk = np.ascontiguousarray(np.swapaxes(b, -1, -2).astype(bfloat16, copy=False))
    d = asarray(nk, device=req.device, stream=req.stream)
    return Operand(d, "nk", req.n, req.k, req.k, d.strides[0] if d.ndim == 3 else 0)


def repack(dev, op: Operand, batches: int, *, transpose: bool, cols_to: int, stream) -> Operand:
    """A contiguous copy of `op` (transposed if asked), each matrix zero-padded to `cols_to` columns."""
    rows_out = op.cols if transpose else op.rows
    src_cols = op.rows if transpose else op.cols
    assert cols_to >= src_cols
    copies = max(batches, 1) if op.batch_stride else 1  # one matrix shared by every batch stays one
    out = DeviceArray((copies, rows_out, cols_to), bfloat16, device=dev, stream=stream)
    k = registry.kernel(dev, "repack_bf16")
    step = rows_out * cols_to * 2
    tile = 64
    chunk = registry.MAX_GRID[1] * tile  # destination rows per launch: grid (columns, rows, batch) of tiles
    src_batch = op.batch_stride // 2 if copies > 1 else 0
    for b0 in range(0, copies, registry.MAX_GRID[2]):  # the whole batch per launch, up to the grid's z limit
        nb = min(registry.MAX_GRID[2], copies - b0)
        for r0 in range(0, rows_out, chunk):
            rows = min(chunk, rows_out - r0)
            # destination row r is source column r (transposed) or source row r
            src = op.ptr(b0) + (r0 * 2 if transpose else r0 * op.ld * 2)
            src_rows, src_cols_here = (op.rows, rows) if transpose else (rows, op.cols)
            k.launch((-(-cols_to // tile), -(-rows // tile), nb),
                     [src, out.ptr + b0 * step + r0 * cols_to * 2, src_rows, src_cols_here, op.ld, rows, cols_to,
                      cols_to, int(transpose), src_batch, step // 2], stream=stream)
    layout = {"kn": "nk", "nk": "kn", "km": "mk"}[op.layout] if transpose else op.layout
    return Operand(out, layout, rows_out, cols_to, cols_to, step if op.batch_stride else 0)


def prepare(dev, plan, A: Operand, B: Operand, k: int, batches: int, stream) -> tuple[Operand, Operand, int]:
    """Operands in the form the plan's kernel reads, and the K to pass it."""
    if A.layout == "km":  # every kernel reads A with K contiguous
        A = repack(dev, A, batches, transpose=True, cols_to=padded_k(k) if plan.family != "basic" else k,
                   stream=stream)
    if plan.family == "basic":
        if plan.b_layout != B.layout:  # basic takes either layout; convert only if a variant was forced
            B = repack(dev, B, batches, transpose=True, cols_to=B.rows, stream=stream)
        return A, B, k
    k8 = padded_k(k)
    if not A.fast_ready(k8):
        A = repack(dev, A, batches, transpose=False, cols_to=k8, stream=stream)
    if B.layout == "kn" or not B.fast_ready(k8):
        B = repack(dev, B, batches, transpose=B.layout == "kn", cols_to=k8, stream=stream)
    return A, B, k8


def run(req: GemmRequest, plan) -> DeviceArray:
    """The request's result on the device (its `out` if it gave a device one), ordered on its stream."""
    dev, stream, out = req.device, req.stream, req.out
    # out sharing memory with an input would be read after being partly written: compute beside, then copy
    aliased = isinstance(out, DeviceArray) and out.size > 0 and any(
        x.size and out.overlaps(x) for x in req.inputs())
    result = out if isinstance(out, DeviceArray) and not aliased else \
        DeviceArray(req.result_shape, req.out_dtype, device=dev, stream=stream)
    if not req.empty:
        _launch(req, plan, result)
    if aliased:
        dev.activate()
        dev.driver.memcpy_dtod(out.ptr, result.ptr, result.nbytes, stream_handle(stream))
        return out
    return result


def _launch(req: GemmRequest, plan, result: DeviceArray) -> None:
    """One launch of the GEMM (and of the epilogue kernel, if any) for the whole batch: the batch index is a
    grid dimension, and every kernel offsets its pointers by per-batch strides (in elements; 0 for a B shared
    by every batch)."""
    dev, stream, ep_req = req.device, req.stream, req.epilogue
    m, n, batches = req.m, req.n, req.batch or 1
    A, B, kk = prepare(dev, plan, operand_a(req), operand_b(req), req.k, batches, stream)
    bias = asarray(ep_req.bias, FLOAT32, device=dev, stream=stream) if ep_req.bias is not None else None
    c = asarray(ep_req.c, FLOAT32, device=dev, stream=stream) if ep_req.reads_c else None
    g = registry.kernel(dev, plan.gemm)
    la = g.spec.launch
    out_item = result.dtype.itemsize
    mn = m * n
    a_stride, b_stride = A.batch_stride // 2, B.batch_stride // 2   # bytes -> bf16 elements
    c_stride = mn if c is not None else 0
    # The batch sits in grid y for some kernels and z for others: chunks that fit both (65535 batches).
    per = min(batches, registry.MAX_GRID[1], registry.MAX_GRID[2])
    # The fp32 the epilogue kernel reads: each batch's split-K partials, or its whole product; one chunk's
    # worth, reused by the next chunk in stream order.
    acc = DeviceArray((per, plan.splits, m, n), FLOAT32, device=dev, stream=stream) if plan.epilogue else None
    acc_stride = plan.splits * mn
    ep = registry.kernel(dev, plan.epilogue) if plan.epilogue else None
    tiles = -(-m // la.tile.m) * -(-n // la.tile.n)
    for b0 in range(0, batches, per):
        nb = min(per, batches - b0)
        out_ptr = result.ptr + b0 * mn * out_item
        target, t_stride = (acc.ptr, acc_stride) if acc is not None else (out_ptr, mn)
        a_ptr, b_ptr = A.ptr(b0), B.ptr(b0)
        c_ptr = c.ptr + b0 * mn * 4 if c is not None else 0
        if plan.family == "basic":
            _launch_basic(g, (a_ptr, A.ld, a_stride), (b_ptr, B.ld, b_stride), (target, t_stride),
                          4 if acc is not None else out_item, m, n, kk, nb, stream)
        elif plan.family == "small":  # grid z is the split, so the batch is y
            g.launch((tiles, nb, plan.splits), [a_ptr, b_ptr, target, m, n, kk, A.ld, B.ld, a_stride, b_stride,
                                                acc_stride], stream=stream)
        else:
            args = [a_ptr, b_ptr, target, m, n, kk, A.ld, B.ld, n, a_stride, b_stride, t_stride]
            if la.fused:  # fused, or run as identity when the epilogue kernel finishes
                bias_ptr = bias.ptr if (bias is not None and plan.fused) else 0
                args += ([c_ptr, bias_ptr, ep_req.alpha, ep_req.beta, ep_req.act, n, c_stride] if plan.fused
                         else [0, 0, 1.0, 0.0, 0, n, 0])
            g.launch((tiles, nb, 1), args, stream=stream)
        if ep is not None:
            ep.launch((-(-n // 256), min(m, registry.MAX_GRID[1]), nb),  # it strides over the rows beyond
                      [acc.ptr, c_ptr, bias.ptr if bias is not None else 0, out_ptr, m, n, n, n, n,
                       ep_req.alpha, ep_req.beta, ep_req.act, plan.splits, mn, acc_stride, c_stride, mn],
                      stream=stream)
    if acc is not None:  # stream order keeps the block busy until the epilogue has read it
        acc.free()


def _launch_basic(g, a, b, c, c_item, m, n, k, batches, stream) -> None:
    """The fallback over any M: its grid is (N tiles, M tiles, batch), and a grid holds at most 65535 rows of
    workgroups, so taller products run as bands of rows. a, b: (pointer, row stride, batch stride); c:
    (pointer, batch stride), row stride N; strides in elements."""
    (a_ptr, lda, a_stride), (b_ptr, ldb, b_stride), (c_ptr, c_stride) = a, b, c
    tile = g.spec.launch.tile
    band = registry.MAX_GRID[1] * tile.m
    for r0 in range(0, m, band):
        rows = min(band, m - r0)
        g.launch((-(-n // tile.n), -(-rows // tile.m), batches),
                 [a_ptr + r0 * lda * 2, b_ptr, c_ptr + r0 * n * c_item, rows, n, k, lda, ldb, n,
                  a_stride, b_stride, c_stride], stream=stream)
