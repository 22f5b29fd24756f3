"""Compiled GEMMs kept for reuse: the cost of a call is then the launches, not the Python around them.

- hkrt.gemm remembers the Executable of each call signature (operand kinds, shapes, strides, alignment,
  dtypes, devices; epilogue; output): a later call with the same signature skips validation, planning and
  packing, and only binds its pointers. What the signature cannot vouch for is checked on every call.
- hkrt.plan(a_shape, b, ...) returns a PreparedGemm: B, bias and C bound once, its workspace held per
  stream, and a call that takes only A (a device array of that shape): the least work a launch can take.
"""
from __future__ import annotations

import threading

import numpy as np

from .array import DeviceArray, Stream, as_stream, bfloat16
from .devices import get_device
from .execute import A, OUT, Executable, FAST_ALIGN, bind_inputs, compile_executable
from .registry import ADDRESS
from .memory import stream_key
from .request import GemmRequest
from . import strategy as strategies
from .weight import Weight

MAX_CACHED = 256
pack = ADDRESS.pack_into

_cache: dict[tuple, Executable] = {}
_lock = threading.Lock()


def _operand_key(x):
    """What a program depends on of one operand; None for what only the full path takes (foreign arrays,
    nested lists, ...), which makes the call uncacheable."""
    if x is None:
        return ()
    t = type(x)
    if t is DeviceArray:
        return (x.layout_key, x._ptr % FAST_ALIGN == 0, x.read_only)
    if t is Weight:  # the program reads its operand's layout; its pointer is bound per call
        return x.layout_key
    if t is np.ndarray:
        flags = x.flags
        return (x.shape, x.dtype, flags.c_contiguous, flags.writeable)
    return None


def signature(a, b, bias, activation, alpha, beta, c, out_dtype, out, strategy, device):
    """The cache key of a gemm call, or None if the call cannot be cached."""
    parts = (_operand_key(a), _operand_key(b), _operand_key(bias), _operand_key(c), _operand_key(out))
    if None in parts:
        return None
    return (parts, activation, type(alpha), alpha, type(beta), beta, out_dtype, strategy, device)


def lookup(key) -> Executable | None:
    try:
        exe = _cache.get(key)
    except TypeError:  # an unhashable argument, which gemm will refuse anyway
        return None
    if exe is not None and exe.generation != exe.device.generation:
        return None  # compiled before a reset: its kernels are gone
    return exe


def compile_call(req: GemmRequest, key) -> Executable:
    exe = compile_executable(req, None if req.empty else strategies.plan(req))
    if key is not None:
        with _lock:
            if len(_cache) >= MAX_CACHED:
                _cache.pop(next(iter(_cache)))  # the oldest: calls of a few shapes in a loop stay cached
            try:
                _cache[key] = exe
            except TypeError:  # not hashable after all: the call stays uncached
                pass
    return exe


def forget(device) -> None:
    """Drop what was compiled for a device being reset."""
    with _lock:
        for key in [k for k, exe in _cache.items() if exe.device is device]:
            del _cache[key]


def clear() -> None:
    with _lock:
        _cache.clear()


class PreparedGemm:
    """act(alpha * a @ b + beta * c + bias) for every A of one shape, compiled once.

    Made by hkrt.plan. Call it with a bf16 device array of the planned shape (contiguous, 16-byte aligned,
    on the planned device): p(a) returns a new device array, p(a, out=o) writes o. b, bias and c are bound
    at planning (numpy ones are copied up then, as a Weight is: later changes to them do not reach it).
    """

    def __init__(self, a_shape, b, *, bias=None, activation=None, alpha=1.0, beta=0.0, c=None, out_dtype=None,
                 stream=None, strategy=None, device=None):
        if isinstance(a_shape, (DeviceArray, np.ndarray)):
            a_shape = a_shape.shape
        if not isinstance(a_shape, tuple) or not all(isinstance(s, (int, np.integer)) for s in a_shape):
            raise TypeError(f"a_shape must be a tuple of ints (or an array whose shape serves), not {a_shape!r}")
        dev = get_device(device if device is not None else
                         b.device if isinstance(b, (DeviceArray, Weight)) else None)
        template = DeviceArray(a_shape, bfloat16, device=dev)   # the A every call will look like
        if not isinstance(b, (DeviceArray, Weight)):
            b = Weight(b, device=dev)
        req = GemmRequest.make(template, b, bias=bias, activation=activation, alpha=alpha, beta=beta, c=c,
                               out_dtype=out_dtype, stream=stream, strategy=strategy, device=dev)
        self.device, self.shape, self.out_dtype = dev, template.shape, req.out_dtype
        self.result_shape = req.result_shape
        self.stream = req.stream
        self.plan = None if req.empty else strategies.plan(req)
        self._exe = compile_executable(req, self.plan)
        ep = req.epilogue
        # bound now: B where it lies, host bias and C uploaded once (kept here)
        self._slots, self._kept = bind_inputs(dev, None, req.b, ep.bias, ep.c, ep.reads_c, req.stream) \
            if self._exe.program is not None else ({}, [])
        self._slots.pop(A, None)
        program = self._exe.program
        # B, bias and C are written into the launches' arguments now; a call patches A, out (and workspace)
        self._launches = program.specialize(self._slots) if program is not None else []
        self._held = (req.b, ep.bias, ep.c)
        self._spans = [x.span() for x in (getattr(req.b, "data", req.b), ep.bias, ep.c if ep.reads_c else None)
                       if isinstance(x, DeviceArray)]   # the bound inputs' bytes, fixed from now on
        self._a_key, self._a_bytes = template.layout_key, template.nbytes
        self._out_key = (req.result_shape, self._exe.result_strides, req.out_dtype, dev)
        self._workspace: dict[int, list] = {}
        self._generation = dev.generation
        self._run = self._launcher()
        template.free()

    def __repr__(self) -> str:
        return (f"PreparedGemm(a={self.shape}, result={self.result_shape} {self.out_dtype}, device={self.device}, "
                f"kernels={self.plan.gemm if self.plan else None})")

    def __call__(self, a: DeviceArray, *, out: DeviceArray | None = None, stream=None) -> DeviceArray:
        if type(a) is not DeviceArray or a.layout_key != self._a_key:
            raise ValueError(self._mismatch(a))
        ptr = a.ptr
        if ptr % FAST_ALIGN:
            raise ValueError(f"a's address {ptr:#x} is not {FAST_ALIGN}-byte aligned, as planned; "
                             f"use hkrt.gemm for unaligned operands")
        dev = self.device
        if self._generation != dev.generation:
            raise ValueError(f"this plan was made before {dev} was reset; plan again")
        if stream is None:
            stream = self.stream
        else:
            if type(stream) is not Stream:
                stream = as_stream(stream, dev)
            if stream is not None and stream.device is not dev:
                raise ValueError(f"stream belongs to {stream.device}, but the plan runs on {dev}")
        exe = self._exe
        if out is None:  # new memory: it overlaps nothing
            out = DeviceArray._allocate(exe.result_shape, exe.out_dtype, exe.result_strides, exe.result_bytes, dev,
                                        stream)
            out_ptr = out._ptr
        else:
            if type(out) is not DeviceArray or out.layout_key != self._out_key or out.read_only:
                raise ValueError(f"out must be a writeable contiguous {self.out_dtype} device array of shape "
                                 f"{self.result_shape} on {dev}, got {out!r}")
            out_ptr = out.ptr
            out_end = out_ptr + exe.result_bytes
            overlaps = ptr < out_end and out_ptr < ptr + self._a_bytes
            for start, end in self._spans:
                overlaps = overlaps or (start < out_end and out_ptr < end)
            if overlaps:  # out shares memory with an input: computed beside, then copied
                return exe(a, *self._held, out, stream)
        self._run(ptr, out_ptr, stream)
        return out

    def _launcher(self):
        """The launches of one call as a function of A's and out's addresses and the stream. Most plans are
        one launch that needs only those two addresses written into its arguments: that case runs alone."""
        program = self._exe.program
        if program is None:
            return lambda a_ptr, out_ptr, stream: None
        activate = self.device.activate
        acquire, release = program._lock.acquire, program._lock.release  # cheaper than `with` in the hot path
        if len(self._launches) == 1 and not (program.workspace or program.counters):
            prepared, patches = self._launches[0]
            if sorted(slot for _, slot, _ in patches) == [A, OUT]:
                args = prepared.args
                (a_at, a_add), = ((o, add) for o, slot, add in patches if slot == A)
                (out_at, out_add), = ((o, add) for o, slot, add in patches if slot == OUT)

                def run_one(a_ptr, out_ptr, stream):
                    handle = None if stream is None else stream.handle
                    activate()
                    acquire()  # the launch's argument buffer: one call at a time fills it
                    try:
                        pack(args, a_at, a_ptr + a_add)
                        pack(args, out_at, out_ptr + out_add)
                        prepared(handle)
                    finally:
                        release()
                return run_one

        launches, workspace, allocator = self._launches, self._workspace, self.device.allocator

        def run(a_ptr, out_ptr, stream):  # (holds no reference to the plan: its __del__ frees the workspace)
            values = workspace_slots(workspace, allocator, program, stream) if program.workspace else {}
            values[A], values[OUT] = a_ptr, out_ptr
            handle = None if stream is None else stream.handle
            activate()
            acquire()
            try:
                if program.counters:
                    program.bind_counters(values, stream)
                for prepared, patches in launches:
                    args = prepared.args
                    for offset, slot, addend in patches:
                        pack(args, offset, values[slot] + addend)
                    prepared(handle)
            finally:
                release()
        return run

    def _mismatch(self, a) -> str:
        if not isinstance(a, DeviceArray):
            return f"a must be an hkrt DeviceArray (use hkrt.asarray), not {type(a).__name__}"
        return (f"a is {a.shape} {a.dtype} (strides {a.strides}) on {a.device}; this plan takes "
                f"{self.shape} bfloat16 (strides {self._a_key[1]}) on {self.device}")

    def __del__(self):
        for blocks in getattr(self, "_workspace", {}).values():
            for blk in blocks:
                blk.free()


def workspace_slots(workspace: dict, allocator, program, stream) -> dict[str, int]:
    """A plan's scratch on `stream` (kept in `workspace` by stream), allocated at its first use there: stream
    order makes it safe to reuse for every later call on that stream."""
    key = stream_key(stream)
    blocks = workspace.get(key)
    if blocks is None:
        blocks = workspace[key] = [allocator.malloc(n, stream) for n in program.workspace]
    return {f"w{i}": blk.ptr for i, blk in enumerate(blocks)}


def plan(a_shape, b, **kwargs) -> PreparedGemm:
    """A GEMM compiled once for every A of `a_shape` (see PreparedGemm); kwargs as hkrt.gemm's."""
    return PreparedGemm(a_shape, b, **kwargs)

