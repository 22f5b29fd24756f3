"""hkrt.multi.gemm: one GEMM over several devices of this host, its leading dimension split among them.

The leading dimension of `a` (the batch of a batched product, the rows M of a 2-D one) is cut into one
contiguous part per device, near-equal in size; each part runs as an ordinary hkrt.gemm on its device, in a
host thread of its own, so the devices work at once (each thread makes its device current; HIP's current
device is per thread). Each device gets the operands of its part (a 2-D `b`, shared by every part, goes to
every device) and writes its rows of the one numpy result. Kernels are loaded once per device by the
registry, as for any gemm on that device.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .array import DeviceArray
from .devices import Device, devices as every_device, get_device
from .gemm import gemm as single_gemm
from .request import GemmRequest
from .weight import Weight


def gemm(a, b, *, devices: Sequence | None = None, bias=None, activation=None, alpha=1.0, beta=0.0, c=None,
         out_dtype=None, out=None, strategy: str | None = None) -> np.ndarray:
    """act(alpha * a @ b + beta * c + bias) as hkrt.gemm computes it, the leading dimension of `a` split
    across `devices` (Devices, or specs such as "gpu:1" or 1; default: every device of the backend).

    Numpy operands only: a and b (and c, bias, out) are numpy arrays, as hkrt.gemm takes them; the result is
    a numpy array (`out`, if given), complete when the call returns. Device arrays and Weights live on one
    device, so they are refused: use hkrt.gemm on that device instead. A device that gets no rows (more
    devices than rows) does nothing. If a part fails, the other parts still finish; the first failure (in
    device order) is then raised, noting its device. Ctrl-C raises KeyboardInterrupt here at once, but parts
    already running go on to their end (the emulator stops a launch early only on the main thread), and the
    process exits only after them: a part is never left running inside a device call while Python shuts down.
    """
    devs = _devices(devices)
    for name, x in (("a", a), ("b", b), ("c", c), ("bias", bias), ("out", out)):
        if isinstance(x, (DeviceArray, Weight)):
            raise TypeError(f"hkrt.multi.gemm takes numpy operands, but {name} is a {type(x).__name__} on "
                            f"{x.device}; use hkrt.gemm on that device")
    # Every argument checked once, before any device is touched (a part's own call checks its slice again).
    req = GemmRequest.make(a, b, bias=bias, activation=activation, alpha=alpha, beta=beta, c=c,
                           out_dtype=out_dtype, out=out, strategy=strategy, device=devs[0])
    result = out if out is not None else np.empty(req.result_shape, req.out_dtype)
    a, b, c = req.a, req.b, req.epilogue.c
    parts = [(d, lo, hi) for d, (lo, hi) in zip(devs, _split(a.shape[0], len(devs))) if hi > lo]

    def run(part):
        dev, lo, hi = part
        single_gemm(a[lo:hi], b[lo:hi] if b.ndim == 3 else b, bias=req.epilogue.bias, activation=activation,
                    alpha=alpha, beta=beta, c=None if c is None else c[lo:hi], out_dtype=req.out_dtype,
                    out=result[lo:hi], strategy=strategy, device=dev)

    with ThreadPoolExecutor(max_workers=max(len(parts), 1), thread_name_prefix="hkrt-multi") as pool:
        futures = [pool.submit(run, p) for p in parts]
    for (dev, _, _), f in zip(parts, futures):
        exc = f.exception()
        if exc is not None:
            exc.add_note(f"hkrt.multi.gemm: raised by the part on {dev}")
            raise exc
    return result


def _devices(devices) -> list[Device]:
    """The devices named, each once, or a TypeError/ValueError naming the problem."""
    if devices is None:
        return every_device()
    if isinstance(devices, (str, int, Device)) or not isinstance(devices, Sequence):
        raise TypeError(f"devices must be a list or tuple of devices (Device, 'gpu:1', 1, ...), "
                        f"not {type(devices).__name__}")
    if not devices:
        raise ValueError("devices is empty: give at least one device")
    resolved = []
    for spec in devices:
        if isinstance(spec, bool) or not isinstance(spec, (str, int, Device)):
            raise TypeError(f"each device must be a Device, a spec like 'gpu:1' or an index, not "
                            f"{type(spec).__name__} {spec!r}")
        dev = get_device(spec)
        if any(d is dev for d in resolved):
            raise ValueError(f"device {dev} is given more than once (as {spec!r}); give each device once")
        resolved.append(dev)
    return resolved


def _split(length: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous ranges covering range(length), their sizes differing by at most one."""
    base, extra = divmod(length, parts)
    bounds = [i * base + min(i, extra) for i in range(parts + 1)]
    return list(zip(bounds, bounds[1:]))
