"""hkrt.gemm: C = act(alpha * A @ B + beta * C0 + bias) on the device, from numpy or device arrays.

Inputs in float32 or float16 are rounded to bfloat16 (round-to-nearest-even, ml_dtypes) before the
product; products accumulate in fp32; the result is bf16 by default or fp32 on request. Numpy in,
numpy out (synchronously); device arrays in, a device array out (asynchronously, on `stream`).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import execute, strategy as strategies
from .array import SUPPORTED, DeviceArray, Stream, _handle, asarray, bfloat16
from .devices import Device, get_device

ACTIVATIONS = {None: 0, "none": 0, "relu": 1, "gelu": 2, "silu": 3}
OUT_DTYPES = {bfloat16: "bf16", np.dtype(np.float32): "f32"}
FLOAT32 = np.dtype(np.float32)


class Weight:
    """A B operand kept on the device in bf16: prepared once, reused by every gemm that gets it.

    `b` is K x N (as numpy holds a weight for x @ W), or N x K with nk=True (`layout` says which was
    given). It is stored the way the fast kernels read it, N x K with K zero-padded to a multiple of 8
    (transposed on the host during the bf16 conversion, padded on the device), so calls repack nothing.
    The data is copied at construction; later changes to the numpy array do not reach the device copy.
    """

    def __init__(self, b, *, nk: bool = False, device=None):
        host = _host_operand(b, "b")
        if host.ndim != 2:
            raise ValueError(f"a Weight is 2-D (K x N or N x K), got shape {host.shape}")
        self.layout = "nk" if nk else "kn"
        self.k, self.n = (host.shape[1], host.shape[0]) if nk else host.shape
        stored = np.ascontiguousarray((host if nk else host.T).astype(bfloat16))
        data = asarray(stored, device=device)
        op = execute.Operand(data, "nk", self.n, self.k, self.k)
        k8 = execute.padded_k(self.k)
        if self.k and self.n and not op.fast_ready(k8):
            op = execute.repack(data.device, op, 1, transpose=False, cols_to=k8, stream=None)
        self.operand = op
        self.data = op.arr

    @property
    def device(self) -> Device:
        return self.data.device

    @property
    def shape(self) -> tuple[int, int]:
        return (self.k, self.n)

    def __repr__(self) -> str:
        return f"Weight(K={self.k}, N={self.n}, given {self.layout}, device={self.device})"


def _host_operand(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name} is an object array; gemm takes bfloat16, float16 or float32 numbers")
    if arr.dtype not in SUPPORTED:
        raise TypeError(f"{name} has dtype {arr.dtype}; gemm takes bfloat16, float16 or float32")
    return arr


def _check_device_operand(x: DeviceArray, name: str) -> None:
    if x.dtype != bfloat16:
        raise TypeError(f"device array {name} has dtype {x.dtype}; device operands must be bfloat16 "
                        f"(convert on the host, or pass the numpy array)")


def _device_view(x: DeviceArray, name: str, row_major: str, transposed: str) -> execute.Operand:
    """A bf16 device operand as it lies: row-major (layout row_major, e.g. "mk"), or the transposed view of
    a row-major array (layout transposed, e.g. "km"); the executor repacks what a kernel cannot read."""
    _check_device_operand(x, name)
    rows, cols = x.shape[-2:]
    item = x.dtype.itemsize
    batch_stride = x.strides[0] if x.ndim == 3 else 0
    if x.strides[-1] == item:
        return execute.Operand(x, row_major, rows, cols, x.strides[-2] // item, batch_stride, base=x.ptr)
    if x.strides[-2] == item:
        return execute.Operand(x, transposed, cols, rows, x.strides[-1] // item, batch_stride, base=x.ptr)
    raise ValueError(f"device array {name} needs unit stride along one of its last two dimensions")


def _device_a(a, device, stream) -> execute.Operand:
    if isinstance(a, DeviceArray):
        return _device_view(a, "a", "mk", "km")
    m, k = a.shape[-2:]
    d = asarray(np.ascontiguousarray(a.astype(bfloat16, copy=False)), device=device, stream=stream)
    return execute.Operand(d, "mk", m, k, k, d.strides[0] if d.ndim == 3 else 0)


def _device_b(b, device, stream) -> execute.Operand:
    if isinstance(b, Weight):
        return b.operand
    if isinstance(b, DeviceArray):
        return _device_view(b, "b", "kn", "nk")
    k, n = b.shape[-2:]
    # Numpy B goes up as N x K, the form every kernel family reads: the transpose rides on the bf16
    # conversion copy, which happens anyway.
    nk = np.ascontiguousarray(np.swapaxes(b, -1, -2).astype(bfloat16, copy=False))
    d = asarray(nk, device=device, stream=stream)
    return execute.Operand(d, "nk", n, k, k, d.strides[0] if d.ndim == 3 else 0)


def _float_vector(x, name: str, length: int, device, stream) -> DeviceArray:
    if isinstance(x, DeviceArray):
        if x.dtype != FLOAT32 or x.shape != (length,) or not x.is_contiguous:
            raise ValueError(f"device {name} must be a contiguous float32 vector of length {length}")
        return x
    arr = _host_operand(x, name)
    if arr.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {arr.shape}")
    return asarray(arr.astype(np.float32), device=device, stream=stream)


def gemm(a, b, *, bias=None, activation=None, alpha=1.0, beta=0.0, c=None, out_dtype=None, out=None,
         stream: Stream | None = None, strategy: str | None = None, device=None):
    """act(alpha * a @ b + beta * c + bias).

    a: M x K, or batch x M x K. b: K x N (batch x K x N, or shared 2-D), or a Weight.
    bias: length N. activation: None, "relu", "gelu" (tanh form) or "silu". c: M x N (per batch
    if batched), needed when beta != 0. out_dtype: bfloat16 (default) or float32. out: an array
    of the result's shape and dtype to write into. stream: a Stream for device arrays. strategy:
    a kernel family or variant name that overrides the strategy table.
    """
    if stream is not None and not isinstance(stream, Stream):
        raise TypeError(f"stream must be an hkrt.Stream or None, not {type(stream).__name__}")
    if strategy is not None and not isinstance(strategy, str):
        raise TypeError(f"strategy must be a kernel family or variant name (str), not {type(strategy).__name__}")
    host_call = not isinstance(a, DeviceArray)
    # ---- validate everything before touching the device
    a_host = _host_operand(a, "a") if host_call else None
    a_shape = a.shape if not host_call else a_host.shape
    if len(a_shape) not in (2, 3):
        raise ValueError(f"a must be 2-D (M x K) or 3-D (batch x M x K), got {len(a_shape)}-D shape {a_shape}")
    if isinstance(b, Weight):
        b_shape = b.shape
    elif isinstance(b, DeviceArray):
        b_shape = b.shape
    else:
        b = _host_operand(b, "b")
        b_shape = b.shape
    if len(b_shape) not in (2, 3):
        raise ValueError(f"b must be 2-D (K x N) or 3-D (batch x K x N), got {len(b_shape)}-D shape {b_shape}")
    m, k = a_shape[-2:]
    k2, n = b_shape[-2:]
    if k != k2:
        raise ValueError(f"inner dimensions differ: a is {m} x {k} but b is {k2} x {n}")
    batch = a_shape[0] if len(a_shape) == 3 else None
    if len(b_shape) == 3:
        if batch is None or b_shape[0] != batch:
            raise ValueError(f"batched b {b_shape} needs a batched a with the same batch size, got a {a_shape}")
    result_shape = (m, n) if batch is None else (batch, m, n)
    if not (activation is None or isinstance(activation, str)) or activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; use one of None, 'relu', 'gelu', 'silu'")
    for name, v in (("alpha", alpha), ("beta", beta)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"{name} must be a real number, not {type(v).__name__}")
    alpha, beta = float(alpha), float(beta)
    for name, v in (("alpha", alpha), ("beta", beta)):
        if np.isfinite(v) and abs(v) > float(np.finfo(np.float32).max):  # the kernels take fp32 scalars
            raise ValueError(f"{name}={v!r} is outside float32's range (the kernels scale in fp32)")
    if beta != 0.0 and c is None:
        raise ValueError("beta is non-zero but no c was given")
    if c is not None and not isinstance(c, DeviceArray):
        c = _host_operand(c, "c")
    if c is not None and tuple(c.shape) != result_shape:
        raise ValueError(f"c must have the result's shape {result_shape}, got {tuple(c.shape)}")
    if isinstance(c, DeviceArray) and beta != 0.0 and (c.dtype != FLOAT32 or not c.is_contiguous):
        raise ValueError("device c must be a contiguous float32 array")
    if bias is not None:
        if not isinstance(bias, DeviceArray):
            bias = _host_operand(bias, "bias")
        if tuple(bias.shape) != (n,):
            raise ValueError(f"bias must have shape ({n},), got {tuple(bias.shape)}")
        if isinstance(bias, DeviceArray) and (bias.dtype != FLOAT32 or not bias.is_contiguous):
            raise ValueError(f"device bias must be a contiguous float32 vector of length {n}")
    if out is not None and not isinstance(out, (np.ndarray, DeviceArray)):
        raise TypeError(f"out must be a numpy array or a DeviceArray, not {type(out).__name__}")
    if out_dtype is None:
        out_dtype = out.dtype if out is not None and np.dtype(out.dtype) in OUT_DTYPES else bfloat16
    try:
        out_dtype = np.dtype(out_dtype)
    except TypeError:
        raise TypeError(f"out_dtype must be bfloat16 or float32, not {out_dtype!r}") from None
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be bfloat16 or float32, not {out_dtype}")
    if out is not None:
        if tuple(out.shape) != result_shape:
            raise ValueError(f"out must have shape {result_shape}, got {tuple(out.shape)}")
        if np.dtype(out.dtype) != out_dtype:
            raise ValueError(f"out has dtype {out.dtype} but the result is {out_dtype}")
        if isinstance(out, np.ndarray) and not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("out must be a writeable, C-contiguous numpy array")
        if isinstance(out, DeviceArray) and not out.is_contiguous:
            raise ValueError("out must be a contiguous device array")
        if isinstance(out, np.ndarray) and not host_call:
            raise ValueError("out must be a DeviceArray when a is one (the result stays on the device)")
    # ---- device side
    dev = get_device(device if device is not None else
                     (a.device if not host_call else b.device if isinstance(b, (Weight, DeviceArray)) else None))
    for name, x in (("a", a), ("b", b), ("out", out), ("c", c), ("bias", bias)):
        xd = getattr(x, "device", None)
        if isinstance(x, (DeviceArray, Weight)) and xd is not dev:
            raise ValueError(f"{name} lives on {xd}, but the GEMM runs on {dev}")
    if stream is not None and stream.device is not dev:  # HIP would fail mid-call, leaving work half done
        raise ValueError(f"stream belongs to {stream.device}, but the GEMM runs on {dev}")
    # out sharing memory with an input would be read after being partly written: compute beside, then copy
    inputs = (a, b.data if isinstance(b, Weight) else b, c, bias)
    aliased = isinstance(out, DeviceArray) and out.size > 0 and any(
        isinstance(x, DeviceArray) and x.size and out.overlaps(x) for x in inputs)
    result = out if isinstance(out, DeviceArray) and not aliased else \
        DeviceArray(result_shape, out_dtype, device=dev, stream=stream)
    if m and n and batch != 0:
        A = _device_a(a if not host_call else a_host, dev, stream)
        B = _device_b(b, dev, stream)
        fused_needed = bias is not None or ACTIVATIONS[activation] != 0 or alpha != 1.0 or beta != 0.0
        fast_ok, why = execute.fits_fast(m, n, k, out_dtype.itemsize, batch)
        plan = strategies.plan(dev.arch, m, n, k, b_layout=B.layout, out=OUT_DTYPES[out_dtype],
                               epilogue=fused_needed, fast_ok=fast_ok, why_not_fast=why, strategy=strategy)
        bias_d = _float_vector(bias, "bias", n, dev, stream) if bias is not None else None
        c_d = None
        if c is not None and beta != 0.0:
            c_d = c if isinstance(c, DeviceArray) else asarray(c.astype(np.float32), device=dev, stream=stream)
        execute.run(dev, plan, A, B, result, c_d, bias_d, m, n, k, batch, alpha, beta, ACTIVATIONS[activation],
                    stream)
    if aliased:
        dev.activate()
        dev.driver.memcpy_dtod(out.ptr, result.ptr, result.nbytes, _handle(stream))
        return out
    if not host_call:
        return result
    host = result.numpy()
    if isinstance(out, np.ndarray):
        out[...] = host
        return out
    return host
