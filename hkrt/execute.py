"""Run a GemmRequest on the device by its Plan.

A request compiles into a Program: the launches it needs (repacks of operands the chosen kernel cannot
read as they lie, the GEMM with its family's arguments and grid, the epilogue kernel when the GEMM does
not finish the result itself: split-K sums, alpha/beta/bias/activation, output type), each checked and
packed once, with the operands' addresses left as named slots. Running a program binds the slots
(operands uploaded or viewed where they lie, workspace from the allocator) and launches. A program
depends only on the request's shapes, layouts, alignments and epilogue, so hkrt.gemm keeps the programs
it compiled (hkrt.prepared) and repeated calls skip straight to the launches.
"""
from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import registry
from .array import DeviceArray, bfloat16, contiguous_strides, upload_contiguous
from .memory import stream_handle, stream_key
from .registry import ADDRESS, Addr, BoundLaunch
from .request import FAST_MAX_BUFFER, FLOAT32, GemmRequest, padded_k
from .strategy import Band, partial_elements

FAST_ALIGN = 16            # bytes: operand rows and batches for the direct-to-LDS loads
EPILOGUE_ROWS = 8          # rows per thread of the epilogue kernel (kernels/epilogue.hip)
A, B, C, BIAS, OUT = "a", "b", "c", "bias", "out"   # the slots every program may bind
COUNTERS, EPOCH = "counters", "epoch"   # split-K arrival counters, and the run's number they count under


@dataclass
class Operand:
    """A bf16 matrix (or a batch of them) on the device as a kernel reads it.

    layout "mk"/"nk": rows x K, K contiguous; "kn": K x N, N contiguous; "km": K x M (a transposed A). ld is
    the row stride in elements; batch_stride is in bytes (0: one matrix shared by every batch). base is the
    address of matrix 0 (an Addr while compiling); aligned: base is a multiple of FAST_ALIGN.
    """
    base: int | Addr
    layout: str
    rows: int
    cols: int
    ld: int
    batch_stride: int = 0
    aligned: bool = True

    def ptr(self, i: int = 0) -> int | Addr:
        return self.base + i * self.batch_stride

    def fast_ready(self, k_padded: int, band_rows: int | None = None) -> bool:
        """Whether the fast kernels can read it as is, whole or in bands of `band_rows` rows: K-contiguous, K
        padded, aligned, each band within a buffer descriptor's reach."""
        rows = min(self.rows, band_rows or self.rows)
        return (self.layout in ("mk", "nk") and self.cols == k_padded and self.ld % 8 == 0 and self.aligned
                and self.batch_stride % FAST_ALIGN == 0 and rows * self.ld * 2 <= FAST_MAX_BUFFER)


def device_operand(x: DeviceArray, base, row_major: str, transposed: str, name: str) -> Operand:
    """A bf16 device operand as it lies: row-major (layout row_major, e.g. "mk"), or the transposed view of
    a row-major array (layout transposed, e.g. "km"); what a kernel cannot read is repacked."""
    rows, cols = x.shape[-2:]
    item = x.dtype.itemsize
    batch_stride = x.strides[0] if x.ndim == 3 else 0
    aligned = x.ptr % FAST_ALIGN == 0
    if x.strides[-1] == item:
        return Operand(base, row_major, rows, cols, x.strides[-2] // item, batch_stride, aligned)
    if x.strides[-2] == item:
        return Operand(base, transposed, cols, rows, x.strides[-1] // item, batch_stride, aligned)
    raise ValueError(f"device array {name} needs unit stride along one of its last two dimensions")


def operand_a(req: GemmRequest) -> Operand:
    if isinstance(req.a, DeviceArray):
        return device_operand(req.a, Addr(A), "mk", "km", "a")
    return Operand(Addr(A), "mk", req.m, req.k, req.k, req.m * req.k * 2 if req.batch is not None else 0)


def operand_b(req: GemmRequest) -> Operand:
    b = req.b
    if isinstance(b, DeviceArray):
        return device_operand(b, Addr(B), "kn", "nk", "b")
    if not isinstance(b, np.ndarray):  # a Weight: prepared already, N x K
        op = b.operand
        return Operand(Addr(B), op.layout, op.rows, op.cols, op.ld, 0, op.aligned)
    # numpy B goes up as N x K (see upload_b)
    return Operand(Addr(B), "nk", req.n, req.k, req.k, req.n * req.k * 2 if b.ndim == 3 else 0)


# -- compiling


@dataclass(eq=False)
class Program:
    """The launches of one request shape, with the operands' addresses as slots. workspace: bytes of each
    scratch slot ("w0", "w1", ...), taken from the allocator for each run. counters: bytes of the COUNTERS
    slot, the words split-K launches count arrivals in, kept per stream (counters_for); each run's launches
    count under a new EPOCH (kernels/include/hkrt/sync.hpp), so a run that ended part-way leaves nothing the
    next one would miscount."""
    device: object
    launches: list[BoundLaunch] = field(default_factory=list)
    workspace: list[int] = field(default_factory=list)
    counters: int = 0
    _counter_blocks: dict = field(default_factory=dict, repr=False)
    _shared_scratch: dict = field(default_factory=dict, repr=False)
    _epochs: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def scratch(self, nbytes: int, shared: str | None = None) -> Addr:
        """A workspace slot of `nbytes`; launches asking for the same `shared` kind get one slot, as large as
        the largest of them wants (they run one after another, each done with it before the next starts)."""
        if shared is not None and shared in self._shared_scratch:
            i = self._shared_scratch[shared]
            self.workspace[i] = max(self.workspace[i], nbytes)
            return Addr(f"w{i}")
        self.workspace.append(nbytes)
        if shared is not None:
            self._shared_scratch[shared] = len(self.workspace) - 1
        return Addr(f"w{len(self.workspace) - 1}")

    def counter_words(self, words: int) -> tuple[Addr, Addr]:
        """Room for `words` 64-bit counters of their own: their address and the epoch slot."""
        first = self.counters
        self.counters += 8 * words
        return Addr(COUNTERS) + first, Addr(EPOCH)

    def bind_counters(self, values: dict[str, int], stream) -> None:
        """A run's counters (this stream's, zeroed at their first use) and its epoch, 32 bits, never 0."""
        key = stream_key(stream)
        blk = self._counter_blocks.get(key)
        epoch = next(self._epochs) % 0xFFFFFFFF + 1
        fresh = blk is None or not blk.valid
        if fresh:
            blk = self._counter_blocks[key] = self.device.allocator.malloc(self.counters, stream)
        # the kernels take a word of a smaller epoch for no arrivals: when the epochs wrap, zero the words again
        if fresh or epoch == 1:
            self.device.activate()
            self.device.driver.memset(blk.ptr, 0, self.counters, stream_handle(stream))
        values[COUNTERS] = blk.ptr
        values[EPOCH] = epoch

    def launch(self, name: str, grid, args: list, dynamic_lds: int | None = None) -> None:
        self.launches.append(registry.kernel(self.device, name).bind(grid, args, dynamic_lds=dynamic_lds))

    def __del__(self):
        for blk in self.__dict__.get("_counter_blocks", {}).values():
            blk.free()

    def run(self, slots: dict[str, int], stream) -> None:
        """Launch everything on `stream` (a Stream or None), the workspace allocated for this run and
        given back after it in stream order."""
        if not self.workspace:
            self.launch_all(slots, stream)
            return
        blocks = [self.device.allocator.malloc(n, stream) for n in self.workspace]
        try:
            for i, blk in enumerate(blocks):
                slots[f"w{i}"] = blk.ptr
            self.launch_all(slots, stream)
        finally:
            for blk in blocks:  # stream order keeps each block busy until the launches above are done
                blk.free()

    def specialize(self, fixed: dict[str, int]) -> list[tuple[object, tuple]]:
        """Write the `fixed` slots into every launch's arguments for good, and return each launch's driver
        call with the patches left to make per run. For a program of one owner only (a PreparedGemm)."""
        out = []
        for launch in self.launches:
            args = launch.prepared.args
            for offset, slot, addend in launch.patches:
                if slot in fixed:
                    ADDRESS.pack_into(args, offset, fixed[slot] + addend)
            out.append((launch.prepared, tuple(p for p in launch.patches if p[1] not in fixed)))
        return out

    def launch_all(self, slots: dict[str, int], stream) -> None:
        """The launches alone, every slot but the counters (workspace included) bound by the caller."""
        handle = stream_handle(stream)
        lock = self._lock
        lock.acquire()  # the launches' argument buffers are shared: one run at a time fills them
        try:            # (not `with`: it costs twice as much on this hot path)
            if self.counters:
                self.bind_counters(slots, stream)
            for launch in self.launches:
                launch(slots, handle)
        finally:
            lock.release()


def repack(prog: Program, op: Operand, batches: int, *, transpose: bool, cols_to: int,
           dest: Addr | None = None) -> Operand:
    """Launches making a contiguous copy of `op` (transposed if asked), each matrix zero-padded to `cols_to`
    columns, into `dest` (default: a workspace slot)."""
    rows_out = op.cols if transpose else op.rows
    src_cols = op.rows if transpose else op.cols
    assert cols_to >= src_cols
    copies = max(batches, 1) if op.batch_stride else 1  # one matrix shared by every batch stays one
    step = rows_out * cols_to * 2
    out = dest if dest is not None else prog.scratch(copies * step)
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
            prog.launch("repack_bf16", (-(-cols_to // tile), -(-rows // tile), nb),
                        [src, out + b0 * step + r0 * cols_to * 2, src_rows, src_cols_here, op.ld, rows, cols_to,
                         cols_to, int(transpose), src_batch, step // 2])
    layout = {"kn": "nk", "nk": "kn", "km": "mk"}[op.layout] if transpose else op.layout
    return Operand(out, layout, rows_out, cols_to, cols_to, step if op.batch_stride else 0)


def prepare(prog: Program, plan, A_: Operand, B_: Operand, k: int, batches: int,
            band_rows: int) -> tuple[Operand, Operand, int]:
    """Operands in the form the plan's kernels read, and the K to pass them; A is read in bands of at most
    `band_rows` rows."""
    if A_.layout == "km":  # every kernel reads A with K contiguous
        A_ = repack(prog, A_, batches, transpose=True, cols_to=padded_k(k) if plan.family != "basic" else k)
    if plan.family == "basic":
        if plan.b_layout != B_.layout:  # basic takes either layout; convert only if a variant was forced
            B_ = repack(prog, B_, batches, transpose=True, cols_to=B_.rows)
        return A_, B_, k
    k8 = padded_k(k)
    if not A_.fast_ready(k8, band_rows):
        A_ = repack(prog, A_, batches, transpose=False, cols_to=k8)
    if B_.layout == "kn" or not B_.fast_ready(k8):
        B_ = repack(prog, B_, batches, transpose=B_.layout == "kn", cols_to=k8)
    return A_, B_, k8


def compile_request(req: GemmRequest, plan) -> Program:
    """The launches for the whole batch: the batch index is a grid dimension, and every kernel offsets its
    pointers by per-batch strides (in elements; 0 for a B shared by every batch). A product too tall for the
    fast kernels' buffers runs as bands of rows (plan.bands), one after another in stream order."""
    prog = Program(req.device)
    bands = plan.bands or (Band(0, req.m, plan),)
    A_, B_, kk = prepare(prog, plan, operand_a(req), operand_b(req), req.k, req.batch or 1,
                         max(band.rows for band in bands))
    for band in bands:
        _compile_band(prog, req, band, A_, B_, kk)
    return prog


def _compile_band(prog: Program, req: GemmRequest, band: Band, A_: Operand, B_: Operand, kk: int) -> None:
    """The launches for rows band.r0 .. band.r0 + band.rows of every matrix of the batch; their workspace is
    shared with the other bands (which run before or after in stream order), their counters are not (one
    run counts all its launches under one epoch)."""
    plan, r0, m = band.plan, band.r0, band.rows
    ep_req = req.epilogue
    n, batches = req.n, req.batch or 1
    bias = Addr(BIAS) if ep_req.bias is not None else None
    c = Addr(C) + r0 * n * 4 if ep_req.reads_c else None
    la = registry.spec(req.device.arch, plan.gemm).launch
    out_item = req.out_dtype.itemsize
    mn, full_mn = m * n, req.m * n   # the band's elements, and the batch stride of C and the result
    a_stride, b_stride = A_.batch_stride // 2, B_.batch_stride // 2   # bytes -> bf16 elements
    c_stride = full_mn if c is not None else 0
    # The batch sits in grid y for some kernels and z for others: chunks that fit both (65535 batches).
    per = min(batches, registry.MAX_GRID[1], registry.MAX_GRID[2])
    # The fp32 the epilogue kernel reads: each batch's split-K partials, or its whole product; one chunk's
    # worth, reused by the next chunk in stream order (the split-K kernels' partials in a layout of their own).
    part = partial_elements(m, n) if la.splits_k else mn
    acc = prog.scratch(per * plan.splits * part * 4, shared="acc") if plan.epilogue or plan.splits > 1 else None
    acc_stride = plan.splits * part
    tiles = -(-m // la.tile.m) * -(-n // la.tile.n)
    chunks = -(-batches // per)
    # each chunk's launch counts in words of its own: one run has one epoch
    # stream-K: two 256 x 256 fp32 tile slots per sharing block and batch (kernels/include/hkrt/stream_k.hpp)
    # and a counter per tile, where some tile is shared out (whole rounds alone meet nowhere)
    shares = plan.sharers > 0
    counters, epoch = prog.counter_words(chunks * per * tiles) if plan.splits > 1 or shares else (0, 0)
    slots = prog.scratch(per * 2 * plan.sharers * 4 * la.tile.m * la.tile.n, shared="stream_k") if shares else 0
    for b0 in range(0, batches, per):
        nb = min(per, batches - b0)
        out_ptr = Addr(OUT) + (b0 * full_mn + r0 * n) * out_item
        target, t_stride = (acc, acc_stride) if acc is not None else (out_ptr, full_mn)
        a_ptr, b_ptr = A_.ptr(b0) + r0 * A_.ld * 2, B_.ptr(b0)
        c_ptr = c + b0 * full_mn * 4 if c is not None else 0
        if plan.family == "basic":
            _basic(prog, plan.gemm, la.tile, (a_ptr, A_.ld, a_stride), (b_ptr, B_.ld, b_stride), (target, t_stride),
                   4 if acc is not None else out_item, m, n, kk, nb)
        elif la.splits_k:  # grid z is the split, so the batch is y; it sums the splits itself
            prog.launch(plan.gemm, (tiles, nb, plan.splits),
                        [a_ptr, b_ptr, out_ptr, acc if acc is not None else 0,
                         counters + b0 * tiles * 8 if plan.splits > 1 else 0, epoch, m, n, kk, A_.ld, B_.ld, a_stride,
                         b_stride, full_mn, c_ptr, bias if bias is not None else 0, ep_req.alpha, ep_req.beta,
                         ep_req.act, c_stride],
                        dynamic_lds=plan.dynamic_lds or None)
        else:
            args = [a_ptr, b_ptr, target, m, n, kk, A_.ld, B_.ld, n, a_stride, b_stride, t_stride]
            if la.fused:  # fused, or run as identity when the epilogue kernel finishes
                bias_ptr = bias if (bias is not None and plan.fused) else 0
                args += ([c_ptr, bias_ptr, ep_req.alpha, ep_req.beta, ep_req.act, n, c_stride] if plan.fused
                         else [0, 0, 1.0, 0.0, 0, n, 0])
            if la.stream_k:
                args += [slots, counters + b0 * tiles * 8, epoch, plan.sharers, plan.rounds]
            prog.launch(plan.gemm, (plan.blocks if la.stream_k else tiles, nb, 1), args)
        if plan.epilogue:
            prog.launch(plan.epilogue, (-(-n // 256), min(-(-m // EPILOGUE_ROWS), registry.MAX_GRID[1]), nb),
                        [acc, c_ptr, bias if bias is not None else 0, out_ptr, m, n, n, n, n,
                         ep_req.alpha, ep_req.beta, ep_req.act, plan.splits, mn, acc_stride, c_stride, full_mn])


def _basic(prog, name, tile, a, b, c, c_item, m, n, k, batches) -> None:
    """The fallback over any M: its grid is (N tiles, M tiles, batch), and a grid holds at most 65535 rows of
    workgroups, so taller products run as bands of rows. a, b: (pointer, row stride, batch stride); c:
    (pointer, batch stride), row stride N; strides in elements."""
    (a_ptr, lda, a_stride), (b_ptr, ldb, b_stride), (c_ptr, c_stride) = a, b, c
    band = registry.MAX_GRID[1] * tile.m
    for r0 in range(0, m, band):
        rows = min(band, m - r0)
        prog.launch(name, (-(-n // tile.n), -(-rows // tile.m), batches),
                    [a_ptr + r0 * lda * 2, b_ptr, c_ptr + r0 * n * c_item, rows, n, k, lda, ldb, n,
                     a_stride, b_stride, c_stride])


# -- binding and running


def host_operands(a, b, bias, c, reads_c: bool) -> list[tuple[str, np.ndarray]]:
    """The host operands of a call as the device takes them, by slot: bf16 A as it is and B as N x K (the
    transpose rides on the conversion copy, which happens anyway), fp32 bias and C; C-contiguous."""
    staged = []
    if isinstance(a, np.ndarray):
        staged.append((A, np.ascontiguousarray(a.astype(bfloat16, copy=False))))
    if isinstance(b, np.ndarray):
        staged.append((B, np.ascontiguousarray(np.swapaxes(b, -1, -2).astype(bfloat16, copy=False))))
    if isinstance(bias, np.ndarray):
        staged.append((BIAS, np.ascontiguousarray(bias.astype(FLOAT32, copy=False))))
    if reads_c and isinstance(c, np.ndarray):
        staged.append((C, np.ascontiguousarray(c.astype(FLOAT32, copy=False))))
    return staged


def device_slots(a, b, bias, c, reads_c: bool) -> dict[str, int]:
    """The slots of the operands already on the device, where they lie (a Weight's data is its operand;
    .ptr refuses memory a reset freed)."""
    slots = {}
    if type(a) is DeviceArray:
        slots[A] = a.ptr
    if type(b) is DeviceArray:
        slots[B] = b.ptr
    elif b is not None and not isinstance(b, np.ndarray):
        slots[B] = b.data.ptr
    if type(bias) is DeviceArray:
        slots[BIAS] = bias.ptr
    if reads_c and type(c) is DeviceArray:
        slots[C] = c.ptr
    return slots


def bind_inputs(device, a, b, bias, c, reads_c: bool, stream) -> tuple[dict[str, int], list]:
    """The slots' addresses for one call: device operands where they lie, host operands uploaded (see
    host_operands), queued on `stream` without waiting. Returns the slots and what was uploaded (host and
    device copies), which the caller keeps until the stream has passed the copies. a may be None (bound
    later: a prepared GEMM's A)."""
    slots = device_slots(a, b, bias, c, reads_c)
    keep = []
    for slot, host in host_operands(a, b, bias, c, reads_c):
        d = upload_contiguous(host, device, stream)
        keep.append((host, d))
        slots[slot] = d._ptr
    return slots, keep


@dataclass(eq=False)
class Executable:
    """A request compiled: called with operands of the request's kinds, shapes and layouts (the request it
    was compiled from, or any call with the same signature), it binds them and launches. It holds none of
    the request's arrays (a cached one must not keep them alive)."""
    device: object
    result_shape: tuple[int, ...]
    out_dtype: np.dtype
    reads_c: bool
    host_call: bool
    program: Program | None     # None: an empty product (nothing to launch)
    generation: int             # the device's resets when compiled: its kernels do not outlive the next

    def __post_init__(self):
        item = self.out_dtype.itemsize
        self.result_bytes = math.prod(self.result_shape) * item
        self.result_strides = contiguous_strides(self.result_shape, item)

    def __call__(self, a, b, bias, c, out, stream) -> DeviceArray | np.ndarray:
        """The result: on the device (`out` if it is a device array), ordered on `stream`; for a host call
        (numpy A), waited for and copied back (into `out` if it is a numpy array)."""
        if self.host_call and not isinstance(out, DeviceArray):
            return self._host_call(a, b, bias, c, out, stream)
        dev = self.device
        # out sharing memory with an input would be read after being partly written: compute beside, then copy
        aliased = out is not None and self._overlaps_inputs(out, a, b, bias, c)
        result = out if out is not None and not aliased else \
            DeviceArray._allocate(self.result_shape, self.out_dtype, self.result_strides, self.result_bytes, dev, stream)
        uploads = ()
        if self.program is not None:
            slots, uploads = bind_inputs(dev, a, b, bias, c, self.reads_c, stream)
            slots[OUT] = result.ptr
            dev.activate()
            self.program.run(slots, stream)
        if aliased:
            dev.activate()
            dev.driver.memcpy_dtod(out.ptr, result.ptr, result.nbytes, stream_handle(stream))
            result = out
        if self.host_call:  # a device out for numpy operands: written, and its copy returned
            return result.numpy()
        if uploads:  # host data went up for a device call: it must outlive the copies
            (stream.synchronize() if stream is not None else dev.synchronize())
        return result

    def _overlaps_inputs(self, out: DeviceArray, a, b, bias, c) -> bool:
        start = out.ptr
        end = start + out._extent
        if start == end:
            return False
        for x in (a, b if type(b) is DeviceArray else getattr(b, "data", None), bias, c if self.reads_c else None):
            if type(x) is DeviceArray and x._extent and x._ptr < end and start < x._ptr + x._extent:
                return True
        return False

    def _host_call(self, a, b, bias, c, out: np.ndarray | None, stream) -> np.ndarray:
        """Numpy in, numpy out: the result, every host operand and the program's workspace share one
        staging block (one allocation for the call), and the result comes back straight into `out` or a
        new array."""
        dev = self.device
        host = out if out is not None else np.empty(self.result_shape, self.out_dtype)
        program = self.program
        if program is None:
            return host
        staged = host_operands(a, b, bias, c, self.reads_c)
        offsets, total = [], _staging_size(self.result_bytes)
        for nbytes in [data.nbytes for _, data in staged] + program.workspace:
            offsets.append(total)
            total += _staging_size(nbytes)
        block = dev.allocator.malloc(total, stream)
        try:
            base = block.ptr
            handle = stream_handle(stream)
            slots = device_slots(a, b, bias, c, self.reads_c)
            slots[OUT] = base
            dev.activate()
            for (slot, data), offset in zip(staged, offsets):
                slots[slot] = base + offset
                dev.driver.memcpy_htod(base + offset, data, data.nbytes, handle)
            for i, offset in enumerate(offsets[len(staged):]):
                slots[f"w{i}"] = base + offset
            program.launch_all(slots, stream)
            dev.driver.memcpy_dtoh(host, base, self.result_bytes, handle)
            (stream.synchronize() if stream is not None else dev.synchronize())  # the copies read and write host memory
        finally:
            block.free()
        return host


def _staging_size(nbytes: int) -> int:
    """Bytes one operand takes in a staging block: whole 256-byte lines, so the next one stays aligned."""
    return -(-nbytes // 256) * 256


def compile_executable(req: GemmRequest, plan) -> Executable:
    return Executable(req.device, req.result_shape, req.out_dtype, req.epilogue.reads_c, req.host_call,
                      None if req.empty else compile_request(req, plan), req.device.generation)


def run(req: GemmRequest, plan) -> DeviceArray:
    """The request's result on the device (its `out` if it gave a device one), ordered on its stream."""
    ep = req.epilogue
    return compile_executable(req, plan)(req.a, req.b, ep.bias, ep.c, req.out, req.stream)
