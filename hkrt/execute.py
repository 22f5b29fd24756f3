"""Run a strategy Plan on the device: repack operands the chosen kernel cannot take as they are, launch
the GEMM with its family's arguments and grid, then the epilogue kernel when the GEMM does not finish
the result itself (split-K sums, alpha/beta/bias/activation, output type).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry
from .array import DeviceArray, bfloat16

FAST_ALIGN = 16            # bytes: operand rows and batches for the direct-to-LDS loads
MAX_BUFFER = 2**31 - 256   # bytes: buffer descriptors hold 32-bit sizes; the kernels keep to signed range
FLOAT32 = np.dtype(np.float32)


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
                and self.rows * self.ld * 2 <= MAX_BUFFER)


def padded_k(k: int) -> int:
    return -(-k // 8) * 8


def fits_fast(m: int, n: int, k: int, out_itemsize: int, batch: int | None) -> tuple[bool, str]:
    """Whether the fast kernels' 32-bit buffer sizes hold this problem (per matrix of the batch)."""
    k8 = padded_k(k)
    for what, size in (("A", m * k8 * 2), ("B", n * k8 * 2), ("C", m * n * max(out_itemsize, 4))):
        if size > MAX_BUFFER:
            return False, f"{what} is {size} bytes, over the fast kernels' 2 GiB buffer limit"
    return True, ""


def repack(dev, op: Operand, batches: int, *, transpose: bool, cols_to: int, stream) -> Operand:
    """A contiguous copy of `op` (transposed if asked), each matrix zero-padded to `cols_to` columns."""
    rows_out = op.cols if transpose else op.rows
    src_cols = op.rows if transpose else op.cols
    assert cols_to >= src_cols
    copies = max(batches, 1) if op.batch_stride else 1  # one matrix shared by every batch stays one
    out = DeviceArray((copies, rows_out, cols_to), bfloat16, device=dev, stream=stream)
    k = registry.kernel(dev, "repack_bf16")
    step = rows_out * cols_to * 2
    for i in range(copies):
        k.launch((-(-cols_to // 64), -(-rows_out // 64)),
                 [op.ptr(i), out.ptr + i * step, op.rows, op.cols, op.ld, rows_out, cols_to, cols_to,
                  int(transpose)], stream=stream)
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


def run(dev, plan, A: Operand, B: Operand, result: DeviceArray, c_d: DeviceArray | None,
        bias_d: DeviceArray | None, m: int, n: int, k: int, batch: int | None, alpha: float, beta: float,
        act: int, stream) -> None:
    batches = batch or 1
    A, B, kk = prepare(dev, plan, A, B, k, batches, stream)
    g = registry.kernel(dev, plan.gemm)
    la = g.entry["launch"]
    tile = la["tile"]
    out_item = result.dtype.itemsize
    # The fp32 the epilogue kernel reads: split-K partials, or the whole product.
    acc = (DeviceArray((plan.splits, m, n), FLOAT32, device=dev, stream=stream) if plan.epilogue else None)
    ep = registry.kernel(dev, plan.epilogue) if plan.epilogue else None
    for i in range(batches):
        out_ptr = result.ptr + i * m * n * out_item
        target = acc.ptr if acc is not None else out_ptr
        args = [A.ptr(i), B.ptr(i), target, m, n, kk, A.ld, B.ld]
        if plan.family == "basic":
            g.launch((-(-n // tile["n"]), -(-m // tile["m"])), args + [n], stream=stream)
        elif plan.family == "small":
            g.launch((-(-m // tile["m"]) * -(-n // tile["n"]), 1, plan.splits), args, stream=stream)
        else:
            tiles = -(-m // tile["m"]) * -(-n // tile["n"])
            extra = []
            if la["epilogue"] == "alpha_beta_bias_act":  # fused, or run as identity when the epilogue kernel finishes
                c_ptr = c_d.ptr + i * m * n * 4 if (c_d is not None and plan.fused) else 0
                b_ptr = bias_d.ptr if (bias_d is not None and plan.fused) else 0
                extra = ([c_ptr, b_ptr, alpha, beta, act, n] if plan.fused else [0, 0, 1.0, 0.0, 0, n])
            g.launch((tiles, 1, 1), args + [n] + extra, stream=stream)
        if ep is not None:
            c_ptr = c_d.ptr + i * m * n * 4 if c_d is not None else 0
            ep.launch((-(-n // 256), min(m, 65535)),
                      [acc.ptr, c_ptr, bias_d.ptr if bias_d is not None else 0, out_ptr, m, n, n, n, n,
                       alpha, beta, act, plan.splits, m * n], stream=stream)
    if acc is not None:  # stream order keeps the block busy until the epilogue has read it
        acc.free()
