"""hkrt.gemm: C = act(alpha * A @ B + beta * C0 + bias) on the device, from numpy or device arrays.

Inputs in float32 or float16 are rounded to bfloat16 (round-to-nearest-even, ml_dtypes) before the
product; products accumulate in fp32; the result is bf16 by default or fp32 on request. Numpy in,
numpy out (synchronously); device arrays in, a device array out (asynchronously, on `stream`).
"""
from __future__ import annotations

import numpy as np

from . import prepared
from .array import DeviceArray, Stream
from .request import GemmRequest
from .weight import Weight  # noqa: F401  (also reachable here, beside the gemm that takes it)


def gemm(a, b, *, bias=None, activation=None, alpha=1.0, beta=0.0, c=None, out_dtype=None, out=None,
         stream: Stream | None = None, strategy: str | None = None, device=None):
    """act(alpha * a @ b + beta * c + bias).

    a: M x K, or batch x M x K. b: K x N (batch x K x N, or shared 2-D), or a Weight. Operands and out may
    be numpy arrays, hkrt DeviceArrays, or other libraries' device arrays (DLPack or the CUDA array
    interface, on ROCm), which are used where they lie.
    bias: length N. activation: None, "relu", "gelu" (tanh form) or "silu". c: M x N (per batch
    if batched), needed when beta != 0. out_dtype: bfloat16 (default) or float32. out: an array
    of the result's shape and dtype to write into. stream: for device arrays, an hkrt.Stream or a foreign
    hipStream_t (an int or hip-python stream object; see hkrt.Stream.from_handle). strategy:
    a kernel family or variant name that overrides the strategy table.
    """
    given_out = out
    key = prepared.signature(a, b, bias, activation, alpha, beta, c, out_dtype, out, strategy, device) \
        if stream is None or type(stream) is Stream else None
    exe = prepared.lookup(key) if key is not None else None
    if exe is None:  # first call of its kind: validated, planned, compiled (and remembered if it can be)
        req = GemmRequest.make(a, b, bias=bias, activation=activation, alpha=alpha, beta=beta, c=c,
                               out_dtype=out_dtype, out=out, stream=stream, strategy=strategy, device=device)
        exe = prepared.compile_call(req, key)
        a, b, bias, c, out, stream = req.a, req.b, req.epilogue.bias, req.epilogue.c, req.out, req.stream
    elif stream is not None and stream.device is not exe.device:
        raise ValueError(f"stream belongs to {stream.device}, but the GEMM runs on {exe.device}")
    result = exe(a, b, bias, c, out, stream)
    foreign_out = given_out is not None and not isinstance(given_out, (DeviceArray, np.ndarray))
    return given_out if foreign_out and not exe.host_call else result  # a foreign out comes back as itself
