"""A GEMM request, validated before anything touches the device: operands, epilogue, output, stream.

GemmRequest.make checks every argument of hkrt.gemm and names the one that is wrong; the strategy
table (strategy.plan) and the executor (execute.compile_request) take the request it returns.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import interop
from .array import SUPPORTED, DeviceArray, Stream, as_stream, bfloat16, is_stream_handle
from .devices import Device, get_device
from .manifest import ACTIVATION_CODES, EpilogueForm

ACTIVATIONS = {None: 0, **ACTIVATION_CODES}
OUT_DTYPES = {bfloat16: "bf16", np.dtype(np.float32): "f32"}
FLOAT32 = np.dtype(np.float32)
FAST_MAX_BUFFER = 2**31 - 256   # bytes: buffer descriptors hold 32-bit sizes; the kernels keep to signed range
BAND_ALIGN = 256                # rows: a band of a tall product starts on a tile row of every fast kernel


def host_operand(x, name: str) -> np.ndarray:
    """x as a numpy array gemm can take, or a TypeError naming it."""
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name} is an object array; gemm takes bfloat16, float16 or float32 numbers")
    if arr.dtype not in SUPPORTED:
        raise TypeError(f"{name} has dtype {arr.dtype}; gemm takes bfloat16, float16 or float32")
    return arr


def padded_k(k: int) -> int:
    """K as the fast kernels read it: rows padded to whole 16-byte (8-element) loads."""
    return -(-k // 8) * 8


@dataclass(frozen=True)
class Epilogue:
    """act(alpha * acc + beta * c + bias), applied to the fp32 product."""
    alpha: float = 1.0
    beta: float = 0.0
    activation: str | None = None
    bias: np.ndarray | DeviceArray | None = None    # length N
    c: np.ndarray | DeviceArray | None = None       # the result's shape; read only when beta != 0

    @property
    def act(self) -> int:
        """The kernels' activation code."""
        return ACTIVATIONS[self.activation]

    @property
    def needed(self) -> bool:
        """Whether anything beyond the plain product is asked for."""
        return self.bias is not None or self.act != 0 or self.alpha != 1.0 or self.beta != 0.0

    @property
    def reads_c(self) -> bool:
        return self.c is not None and self.beta != 0.0

    @property
    def form(self) -> EpilogueForm | None:
        """What a kernel must have compiled in to apply it (None: nothing to apply)."""
        return EpilogueForm(self.act, self.reads_c) if self.needed else None


@dataclass(frozen=True)
class GemmRequest:
    a: np.ndarray | DeviceArray
    b: object                      # np.ndarray, DeviceArray or gemm.Weight
    m: int
    n: int
    k: int
    batch: int | None              # None: one product; else the batch size (b may be shared, 2-D)
    epilogue: Epilogue
    out_dtype: np.dtype
    out: np.ndarray | DeviceArray | None
    stream: Stream | None
    strategy: str | None
    device: Device

    @property
    def host_call(self) -> bool:
        """Numpy in, numpy out (synchronously); else device arrays in, a device array out."""
        return not isinstance(self.a, DeviceArray)

    @property
    def result_shape(self) -> tuple[int, ...]:
        return (self.m, self.n) if self.batch is None else (self.batch, self.m, self.n)

    @property
    def out_name(self) -> str:
        return OUT_DTYPES[self.out_dtype]

    @property
    def empty(self) -> bool:
        return not (self.m and self.n and self.batch != 0)

    @property
    def b_layout(self) -> str:
        """How B reaches the kernels: numpy B and Weights go up as N x K; a device B lies as it is."""
        if isinstance(self.b, DeviceArray) and self.b.strides[-1] == self.b.dtype.itemsize:
            return "kn"
        return "nk"

    def fast_rows(self) -> tuple[int, str]:
        """Rows of A and C (of each matrix of the batch) one launch of the fast kernels may take: their
        buffer descriptors reach 2 GiB, so a taller product runs as bands of this many rows, a multiple of
        every kernel's tile height (all of M when it fits). 0 and the reason when no band fits."""
        k8 = padded_k(self.k)
        if self.n * k8 * 2 > FAST_MAX_BUFFER:
            return 0, f"B is {self.n * k8 * 2} bytes, over the fast kernels' 2 GiB buffer limit"
        # C's row counts fp32 wherever it is kept: the result, beta's C or the epilogue's accumulator
        row_bytes = max(k8 * 2, self.n * max(self.out_dtype.itemsize, 4))
        if self.m * row_bytes <= FAST_MAX_BUFFER:
            return self.m, ""
        rows = FAST_MAX_BUFFER // row_bytes // BAND_ALIGN * BAND_ALIGN
        if rows == 0:
            return 0, (f"a band of {BAND_ALIGN} rows of A or C is {BAND_ALIGN * row_bytes} bytes, over the fast "
                       f"kernels' 2 GiB buffer limit")
        bands = -(-self.m // rows)  # as few bands as fit, as even as whole tiles allow
        return -(-self.m // (bands * BAND_ALIGN)) * BAND_ALIGN, ""

    @classmethod
    def make(cls, a, b, *, bias=None, activation=None, alpha=1.0, beta=0.0, c=None, out_dtype=None, out=None,
             stream=None, strategy=None, device=None) -> "GemmRequest":
        """hkrt.gemm's arguments, checked; a TypeError or ValueError names the first wrong one."""
        from .weight import Weight
        if not (stream is None or isinstance(stream, Stream) or is_stream_handle(stream)):
            raise TypeError(f"stream must be an hkrt.Stream, a hipStream_t (int or hip-python stream) or None, "
                            f"not {type(stream).__name__}")
        # Other libraries' device arrays (DLPack, CUDA array interface) become views of their memory, with
        # their producers' work ordered before the stream
        a, b, c, bias, out = (interop.device_array(x, device=device, stream=stream, name=name)
                              if interop.is_device_object(x) else x
                              for name, x in (("a", a), ("b", b), ("c", c), ("bias", bias), ("out", out)))
        if isinstance(out, DeviceArray) and out.read_only:
            raise ValueError("out is read-only memory (its producer lent it read-only)")
        if strategy is not None and not isinstance(strategy, str):
            raise TypeError(f"strategy must be a kernel family or variant name (str), not {type(strategy).__name__}")
        if not isinstance(a, DeviceArray):
            a = host_operand(a, "a")
        if len(a.shape) not in (2, 3):
            raise ValueError(f"a must be 2-D (M x K) or 3-D (batch x M x K), got {len(a.shape)}-D shape {a.shape}")
        if not isinstance(b, (Weight, DeviceArray)):
            b = host_operand(b, "b")
        if len(b.shape) not in (2, 3):
            raise ValueError(f"b must be 2-D (K x N) or 3-D (batch x K x N), got {len(b.shape)}-D shape {b.shape}")
        for name, x in (("a", a), ("b", b)):
            if isinstance(x, DeviceArray) and x.dtype != bfloat16:
                raise TypeError(f"device array {name} has dtype {x.dtype}; device operands must be bfloat16 "
                                f"(convert on the host, or pass the numpy array)")
        m, k = a.shape[-2:]
        k2, n = b.shape[-2:]
        if k != k2:
            raise ValueError(f"inner dimensions differ: a is {m} x {k} but b is {k2} x {n}")
        batch = a.shape[0] if len(a.shape) == 3 else None
        if len(b.shape) == 3 and (batch is None or b.shape[0] != batch):
            raise ValueError(f"batched b {b.shape} needs a batched a with the same batch size, got a {a.shape}")
        result_shape = (m, n) if batch is None else (batch, m, n)
        epilogue = _epilogue(bias, activation, alpha, beta, c, n, result_shape)
        out_dtype = _out_dtype(out_dtype, out, result_shape, host_call=not isinstance(a, DeviceArray))
        dev = get_device(device if device is not None else
                         next((x.device for x in (a, b) if isinstance(x, (DeviceArray, Weight))), None))
        for name, x in (("a", a), ("b", b), ("out", out), ("c", epilogue.c), ("bias", epilogue.bias)):
            if isinstance(x, (DeviceArray, Weight)) and x.device is not dev:
                raise ValueError(f"{name} lives on {x.device}, but the GEMM runs on {dev}")
        stream = as_stream(stream, dev)
        if stream is not None and stream.device is not dev:  # HIP would fail mid-call, leaving work half done
            raise ValueError(f"stream belongs to {stream.device}, but the GEMM runs on {dev}")
        return cls(a, b, int(m), int(n), int(k), batch, epilogue, out_dtype, out, stream, strategy, dev)


def _epilogue(bias, activation, alpha, beta, c, n: int, result_shape) -> Epilogue:
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
    if c is not None:
        if not isinstance(c, DeviceArray):
            c = host_operand(c, "c")
        if tuple(c.shape) != result_shape:
            raise ValueError(f"c must have the result's shape {result_shape}, got {tuple(c.shape)}")
        if isinstance(c, DeviceArray) and beta != 0.0 and (c.dtype != FLOAT32 or not c.is_contiguous):
            raise ValueError("device c must be a contiguous float32 array")
    if bias is not None:
        if not isinstance(bias, DeviceArray):
            bias = host_operand(bias, "bias")
        if tuple(bias.shape) != (n,):
            raise ValueError(f"bias must have shape ({n},), got {tuple(bias.shape)}")
        if isinstance(bias, DeviceArray) and (bias.dtype != FLOAT32 or not bias.is_contiguous):
            raise ValueError(f"device bias must be a contiguous float32 vector of length {n}")
    return Epilogue(alpha, beta, activation, bias, c)


def parse_out_dtype(out_dtype) -> np.dtype:
    """`out_dtype=` as a dtype (None: bfloat16), or a TypeError: the result is bfloat16 or float32."""
    if out_dtype is None:
        return bfloat16
    try:
        dt = np.dtype(out_dtype)
    except TypeError:
        raise TypeError(f"out_dtype must be bfloat16 or float32, not {out_dtype!r}") from None
    if dt not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be bfloat16 or float32, not {dt}")
    return dt


def _out_dtype(out_dtype, out, result_shape, *, host_call: bool) -> np.dtype:
    if out is not None and not isinstance(out, (np.ndarray, DeviceArray)):
        raise TypeError(f"out must be a numpy array or a DeviceArray, not {type(out).__name__}")
    if out_dtype is None:
        out_dtype = out.dtype if out is not None and np.dtype(out.dtype) in OUT_DTYPES else bfloat16
    out_dtype = parse_out_dtype(out_dtype)
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
    return out_dtype
