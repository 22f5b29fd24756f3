"""hkrt.Weight: a B operand prepared once on the device, in the form the fast kernels read."""
from __future__ import annotations

import numpy as np

from . import execute
from .array import DeviceArray, asarray, bfloat16
from .registry import Addr
from .devices import Device
from .request import FAST_MAX_BUFFER, host_operand, padded_k


LINE_ELEMENTS = 64  # bf16 elements in a 128-byte L2 line (docs/facts.md §8.4)


class Weight:
    """A B operand kept on the device in bf16: prepared once, reused by every gemm that gets it.

    `b` is K x N (as numpy holds a weight for x @ W), or N x K with nk=True (`layout` says which was
    given). It is stored the way the fast kernels read it, N x K with each row zero-padded to whole 128-byte
    lines (transposed on the host during the bf16 conversion, padded on the device), so calls repack nothing.
    The data is copied at construction; later changes to the numpy array do not reach the device copy.
    """

    def __init__(self, b, *, nk: bool = False, device=None):
        host = host_operand(b, "b")
        if host.ndim != 2:
            raise ValueError(f"a Weight is 2-D (K x N or N x K), got shape {host.shape}")
        self.layout = "nk" if nk else "kn"
        self.k, self.n = (host.shape[1], host.shape[0]) if nk else host.shape
        stored = np.ascontiguousarray((host if nk else host.T).astype(bfloat16))
        data = asarray(stored, device=device)
        op = execute.Operand(data.ptr, "nk", self.n, self.k, self.k, aligned=data.ptr % execute.FAST_ALIGN == 0)
        k8 = padded_k(self.k)
        # Rows padded to whole 128-byte lines: a row that starts mid-line makes every K step of the kernels
        # touch two lines per row instead of one (on the mi355x model 1000 x 5000 x 5000 ran at 0.090 ms with
        # 5000-element rows, 0.071 with 5056).
        pitch = -(-self.k // LINE_ELEMENTS) * LINE_ELEMENTS
        if self.n * pitch * 2 > FAST_MAX_BUFFER >= self.n * k8 * 2:  # the padding would cost the fast kernels
            pitch = k8
        if self.k and self.n and (not op.fast_ready(k8) or self.k != pitch):  # pad on the device, once
            padded = DeviceArray((self.n, pitch), bfloat16, device=data.device)
            prog = execute.Program(data.device)
            execute.repack(prog, execute.Operand(Addr("src"), "nk", self.n, self.k, self.k), 1, transpose=False,
                           cols_to=pitch, dest=Addr("dest"))
            data.device.activate()
            prog.run({"src": data.ptr, "dest": padded.ptr}, None)
            data, op = padded, execute.Operand(padded.ptr, "nk", self.n, k8, pitch)
        self.operand = op
        self.data = data
        # what a compiled call depends on of this operand (its pointer is bound per call)
        self.layout_key = ("weight", self.k, self.n, op.ld, op.aligned, data.device)

    @property
    def device(self) -> Device:
        return self.data.device

    @property
    def shape(self) -> tuple[int, int]:
        return (self.k, self.n)

    def __repr__(self) -> str:
        return f"Weight(K={self.k}, N={self.n}, given {self.layout}, device={self.device})"
