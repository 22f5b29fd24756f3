"""Running GEMM kernels and checking their results, for every kernel test.

Two ways in: through hkrt.gemm (check() against hkrt.reference.expected, with the allocator's cache
poisoned so that an element never written shows up as NaN), and directly on a private emulated Machine
(EmuMachine: put operands, launch a built variant by name, read the result back). Both compare with the
one reference and error bound in hkrt/reference.py.

Not to be confused with emu_harness.py, which runs hand-written assembly on one wave for ISA tests.
"""
from __future__ import annotations

import struct

import ml_dtypes
import numpy as np

from hkrt import manifest as mf
from hkrt.reference import describe_outside, expected
from hkrt.strategy import StreamKLayout, partial_elements, stream_k_grid, stream_k_owners

BF16 = np.dtype(ml_dtypes.bfloat16)
F32 = np.dtype(np.float32)
ACTS = (None, "relu", "gelu", "silu")
ACT_CODES = {0: None, 1: "relu", 2: "gelu", 3: "silu"}  # the fused kernels' `act` argument
ACT_NAMES = {code: name for name, code in mf.ACTIVATION_CODES.items()}  # as kernels/variants.toml names them


def fresh_rng() -> np.random.Generator:
    """A generator from fresh entropy, printed so that a failure can be replayed."""
    seq = np.random.SeedSequence()
    print(f"rng entropy: {seq.entropy}")
    return np.random.default_rng(seq)


def normal(rng, shape, dtype=np.float32, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def nan_array(shape, dtype) -> np.ndarray:
    return np.full(shape, np.nan, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------
# comparing with the reference

def assert_close(got, ref, tol, what="result"):
    msg = describe_outside(got, ref, tol, what)
    if msg is not None:
        raise AssertionError(msg)


def check(got, a, b, *, out_dtype=BF16, what="result", **kw):
    """got has out_dtype and lies within the error bound of the reference for a @ b (kw: expected()'s)."""
    got_dtype = got.dtype
    assert got_dtype == np.dtype(out_dtype), f"{what}: dtype {got_dtype}, expected {np.dtype(out_dtype)}"
    ref, tol = expected(a, b, out_dtype=out_dtype, **kw)
    assert_close(got, ref, tol, what)


# ---------------------------------------------------------------------------------------------------------
# through hkrt: poisoned memory for the next allocations

def poison_cache(*nbytes: int, device=None) -> None:
    """Leave NaN-filled blocks of these sizes in the allocator's (emptied) cache for the next allocations.

    A NaN bit pattern 0xFFFFFFFF reads as NaN in fp32 and (0xFFFF) in bf16.
    """
    import hkrt
    from hkrt.array import DeviceArray
    dev = hkrt.get_device(device)
    dev.allocator.empty_cache()
    blocks = []
    for n in nbytes:  # all allocated before any is freed, so that each is a block of its own
        words = max(1, -(-n // 4))
        blocks.append(DeviceArray((words,), F32, device=dev))
        blocks[-1].copy_from(np.full(words, 0xFFFFFFFF, np.uint32).view(np.float32))
    for blk in blocks:
        blk.free()


_poisoned = []   # (allocator, its own malloc) while a test poisons allocations


def poison_allocations(device=None) -> None:
    """Until the test ends, every block the device's allocator hands out is NaN-filled first (0xFF bytes:
    NaN in fp32 and bf16), on the stream it is allocated for: results, accumulators, workspace and host
    calls' staging alike, whatever sizes they take. The conftest's autouse fixture undoes it."""
    import hkrt
    from hkrt.memory import stream_handle
    dev = hkrt.get_device(device)
    alloc = dev.allocator
    if "malloc" in vars(alloc):
        return
    plain = alloc.malloc

    def malloc(nbytes, stream=None):
        blk = plain(nbytes, stream)
        dev.activate()
        dev.driver.memset(blk.ptr, 0xFF, blk.size, stream_handle(stream))
        return blk
    alloc.malloc = malloc
    _poisoned.append(alloc)


def stop_poisoning() -> None:
    while _poisoned:
        del _poisoned.pop().malloc


# ---------------------------------------------------------------------------------------------------------
# directly on a private emulated machine

def variants(strategy) -> list[str]:
    """The built variants of a kernel family, by name."""
    return sorted(n for n, e in mf.load()["kernels"].items() if e["launch"]["strategy"] == strategy)


def launch_info(variant) -> dict:
    return mf.load()["kernels"][variant]["launch"]


def out_dtype(variant):
    return F32 if launch_info(variant)["dtypes"]["c"] == "f32" else BF16


def bf16_operands(m, n, k):
    """Fresh random bf16 A (M x K) and B held as N x K, the fast kernels' layout."""
    rng = np.random.default_rng()
    return rng.standard_normal((m, k)).astype(BF16), rng.standard_normal((n, k)).astype(BF16)


class EmuMachine:
    """One emulated Machine of its own (no HIP, no hkrt runtime): memory in, a kernel launched, memory out."""

    def __init__(self, strict=True, seed=None, mfma="exact", model=None):  # strict=None: HKRT_EMU_STRICT decides
        from hkrt.emu.machine import Machine
        # with a timing model (unsampled) the workgroups run side by side on its CUs, not one after another
        self.m = Machine(1 << 30, strict=strict, seed=seed, mfma=mfma, model=model, sample=False if model else None)

    def put(self, x) -> int:
        x = np.ascontiguousarray(x)
        addr = self.m.memory.alloc(max(x.nbytes, 1))
        self.m.memory.view(addr, x.nbytes)[:] = x.tobytes()
        return addr

    def poisoned(self, shape, dtype) -> int:
        """A NaN-filled buffer: an element the kernel never writes stays NaN."""
        return self.put(nan_array(shape, dtype))

    def get(self, addr, shape, dtype) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(bytes(self.m.memory.view(addr, n)), dtype).reshape(shape)

    def load(self, path):
        return self.m.load(open(path, "rb").read())

    def launch(self, variant, grid, args_fmt, *args):
        """Launch a built variant with its manifest's block size and LDS; returns the launch's stats."""
        e = mf.load()["kernels"][variant]
        mod = self.load(mf.arch_dir() / e["code_object"])
        return self.m.launch(mod, e["symbol"], grid, (e["launch"]["threads"], 1, 1), e["launch"]["dynamic_lds"],
                             struct.pack(args_fmt, *args))


def run_variant(dev: EmuMachine, variant, a, b_nk, *, splits=3, c=None, bias=None, alpha=1.0, beta=0.0,
                act=0, counters=None, epoch=1, blocks=None, partials=None):
    """Launch any GEMM variant on A (M x K) and B (N x K, stored K x N for a kn variant) into a poisoned
    output; returns (result, launch stats). The small family splits K `splits` ways and sums the splits in
    the launch, counting arrivals in `counters` (64-bit words, default zeros) under `epoch`: checked to
    leave every word at (epoch, splits). A fused-epilogue variant (the small family too)
    takes c, bias, alpha, beta and act (null c and bias pointers read as zeros); the default is the identity
    epilogue.

    A batch in one launch: A (batch x M x K) with B 3-D (one per batch) or 2-D (shared: batch stride 0), c
    3-D or 2-D likewise; the matrices packed, so the batch strides are their sizes. A single product passes
    zero strides.

    A stream-K variant runs `blocks` blocks (default: hkrt.strategy's choice for 256 CUs) and is checked to
    leave every counter word of a tile cut between two blocks at (epoch, 2); `partials`, a list, receives its
    fp32 partial slots (batch x 2 * sharers x slot elements, NaN where no block stored one)."""
    la = launch_info(variant)
    batched = a.ndim == 3
    batch, m, k = a.shape if batched else (1, *a.shape)
    n = b_nk.shape[-2]
    s_a = m * k if batched else 0
    s_b = n * k if b_nk.ndim == 3 else 0
    s_c = m * n if batched else 0
    out_shape = (batch, m, n) if batched else (m, n)
    tiles_m, tiles_n = -(-m // la["tile"]["m"]), -(-n // la["tile"]["n"])
    da = dev.put(a)
    if la["strategy"] == "basic":  # grid (N tiles, M tiles, batch)
        kn = la["b_layout"] == "kn"
        stored, ldb = (np.ascontiguousarray(np.swapaxes(b_nk, -1, -2)), n) if kn else (b_nk, k)
        dc = dev.poisoned(out_shape, out_dtype(variant))
        stats = dev.launch(variant, (tiles_n, tiles_m, batch), "<QQQiiiiiiqqq", da, dev.put(stored), dc, m, n, k, k,
                           ldb, n, s_a, s_b, s_c)
        return dev.get(dc, out_shape, out_dtype(variant)), stats
    db = dev.put(b_nk)
    dcin = dev.put(c) if c is not None else 0
    s_cin = m * n if c is not None and c.ndim == 3 else 0
    dbias = dev.put(bias) if bias is not None else 0
    if la["epilogue"] == "split_k_fused":  # grid (tiles, batch, splits); partials packed, one counter per tile
        dc = dev.poisoned(out_shape, out_dtype(variant))
        dw = dev.poisoned((batch, splits, partial_elements(m, n)), F32)   # the kernels' own layout
        words = np.zeros(batch * tiles_m * tiles_n, np.uint64) if counters is None else counters
        dcount = dev.put(words)
        stats = dev.launch(variant, (tiles_m * tiles_n, batch, splits), "<QQQQQQiiiiixxxxqqqQQffixxxxq", da, db, dc, dw,
                           dcount, epoch, m, n, k, k, k, s_a, s_b, s_c, dcin, dbias, alpha, beta, act, s_cin)
        if splits > 1:
            left = dev.get(dcount, words.shape, np.uint64)
            want = np.uint64(epoch << 32 | splits)
            assert (left == want).all(), f"{variant}: counters {left[left != want][:4]}, not {int(want):#x}"
        return dev.get(dc, out_shape, out_dtype(variant)), stats
    dc = dev.poisoned(out_shape, out_dtype(variant))
    if la["epilogue"] in ("stream_k", "stream_k_fused"):  # grid (blocks, batch): whole rounds, then the rest shared
        fused = la["epilogue"] == "stream_k_fused"
        if fused:  # the arguments come before the stream-K ones; the kernel has one form compiled in
            form = la["form"]
            assert ACT_NAMES[act] == form["activation"] and (c is not None) == form["reads_c"], \
                f"{variant} computes {form}, not act {act} with{'' if c is not None else 'out'} Cin"
        else:
            assert c is None and bias is None and act == 0, f"{variant} has no fused epilogue"
        tiles, tiles_k = tiles_m * tiles_n, -(-k // la["tile"]["k"])
        sk = StreamKLayout.of(tiles, tiles_k, blocks or stream_k_grid(tiles, 256))
        blocks, shared, sharers = sk.grid, sk.shared, sk.sharers
        slot = 4 * la["tile"]["m"] * la["tile"]["n"]
        words = np.zeros(batch * tiles, np.uint64) if counters is None else counters
        # whole rounds alone meet nowhere: no partial slots and no counters, as the runtime passes them
        dw = dev.poisoned((batch, 2 * sharers, slot // 4), F32) if shared else 0
        dcount = dev.put(words) if shared else 0
        epilogue_args = (dcin, dbias, alpha, beta, act, n, s_cin) if fused else ()
        stats = dev.launch(variant, (blocks, batch, 1), "<QQQiiiiiiqqq" + ("QQffiiq" if fused else "") + "QQQii",
                           da, db, dc, m, n, k, k, k, n, s_a, s_b, s_c, *epilogue_args, dw, dcount, epoch, sharers,
                           sk.rounds)
        if not shared:
            return dev.get(dc, out_shape, out_dtype(variant)), stats
        cut = [tiles - shared + t for t, (first, last) in enumerate(stream_k_owners(shared, tiles_k, sharers))
               if first != last]
        left = dev.get(dcount, words.shape, np.uint64).reshape(batch, tiles)
        want = np.uint64(epoch << 32 | 2)
        got_cut = left[:, cut]
        assert (got_cut == want).all(), f"{variant}: cut tiles' counters {got_cut[got_cut != want][:4]}, not {int(want):#x}"
        if partials is not None:
            partials.append(dev.get(dw, (batch, 2 * sharers, slot // 4), F32))
        return dev.get(dc, out_shape, out_dtype(variant)), stats
    if la["epilogue"] == "alpha_beta_bias_act":  # grid (tiles, batch)
        stats = dev.launch(variant, (tiles_m * tiles_n, batch, 1), "<QQQiiiiiiqqqQQffiiq", da, db, dc, m, n, k,
                           k, k, n, s_a, s_b, s_c, dcin, dbias, alpha, beta, act, n, s_cin)
    else:
        assert c is None and bias is None and act == 0, f"{variant} has no fused epilogue"
        stats = dev.launch(variant, (tiles_m * tiles_n, batch, 1), "<QQQiiiiiiqqq", da, db, dc, m, n, k, k, k, n,
                           s_a, s_b, s_c)
    return dev.get(dc, out_shape, out_dtype(variant)), stats


def check_variant(got, variant, a, b_nk, *, what="result", **kw):
    """A direct launch's result against the reference (kw: expected()'s epilogue arguments)."""
    assert got.dtype == out_dtype(variant), f"{what}: dtype {got.dtype}, expected {out_dtype(variant)}"
    ref, tol = expected(a, b_nk, b_nk=True, out_dtype=out_dtype(variant), **kw)
    assert_close(got, ref, tol, what)
