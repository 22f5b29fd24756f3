"""Which kernels run a GEMM: one readable table, first matching rule wins.

A rule names a kernel family (the manifest's `strategy` field). The fast families take B as N x K
and need K % 8 == 0, row strides that are multiples of 8, 16-byte aligned operands and buffers under
2 GiB; when an operand misses that, or a family has no built variant, `basic` runs instead and the
plan says why. `strategy=` overrides the table with a family name or an exact variant name.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from . import registry
from .errors import KernelNotFoundError
from .manifest import ACTIVATION_CODES, EpilogueForm, LaunchSpec
from .request import FAST_MAX_BUFFER

FALLBACK = "basic"
MAX_SPLITS = 16
# Split-K blocks per CU. gemm_small's LDS fits three; on the mi355x model two are best (one launch, the last
# block summing the splits). Older figures (this needs kernels built otherwise to re-measure): 32x14336x4096
# 24.3 us against 35.2 with one and 27.8 with three, 16x4096x14336 24.8 against 32.5 and 31.8, 1x4096x4096
# 16.6 against 17.0 and 19.7; later 64x8192x28672 73.8 against 98.2, 76.3 and 79.7 with one, three and four.
SPLIT_BLOCKS_PER_CU = 2


def _tiles(x: int, t: int) -> int:
    return -(-x // t)


@dataclass(frozen=True)
class Shape:
    """What the rules see of a request: the product's sides, whether an epilogue is wanted, the
    device's compute units (a kernel needs about one tile per CU to fill the device) and the batch size (the
    whole batch is one launch, so its tiles fill the device together)."""
    m: int
    n: int
    k: int
    epilogue: bool
    cus: int
    batch: int = 1
    form: EpilogueForm | None = None  # the epilogue's form, where the rules need it (None: not known)

    def tiles(self, tile_m: int, tile_n: int) -> int:
        """Workgroups of one launch (before split-K) for the whole batch."""
        return self.batch * _tiles(self.m, tile_m) * _tiles(self.n, tile_n)


# (family, when, predicate), each with what the mi355x timing model predicts for it (`python -m hkrt bench
# --model mi355x --sample SHAPE --strategy FAMILY ...`). Small and skinny shapes come first so that no big
# kernel is forced onto a shape it would waste; the split-K kernels sum their splits and apply the epilogue
# in the same launch.
# Figures re-measured at the commit that last changed a rule; a figure said to be older is marked so.
# interleave is no rule: at 4096^3 it is predicted at 0.1401 ms against pingpong's 0.0865 ms (its prefetch,
# issued during the tile's MFMAs, is waited for at the tile's end, exposing the load latency).
# small (split-K, one launch) against the ping-pong kernels (256 CUs) keeps shapes of up to 64 tiles of
# 256x256, with or without an epilogue: 2048^3 0.0315 ms against pingpong_m128's 0.0394, 4096x1024x1024
# 0.0190 vs 0.0232, 16384x256x256 0.0096 vs 0.0110, 1024^3 0.0125 vs 0.0232, 1000x5000x5000 (80 tiles) 0.0688
# vs 0.0874; with bias + gelu 2048^3 0.0339 vs pingpong's 0.0556, 1024x4096x4096 0.0589 vs 0.0949. At 128
# tiles the ping-pong kernels win: 2048x4096x4096 0.1088 vs pingpong_m128's 0.0718 (stream-K: 0.0553), with
# bias + gelu 0.1133 vs pingpong's 0.0949 (small_m128: 0.0664).


SMALL_TILE = (64, 128)  # gemm_small's block tile, for its split count


# What a stream-K block pays beyond its share of K iterations, counted in them: re-entering the schedule for
# each of its pieces (the first K tile's loads at memory latency, about 5,000 cycles on the mi355x model, 2.4
# K tiles of 2,080) about twice, and a cut tile's 256 KiB partial stored or read once (4,000 cycles). Fitted
# on 2048x14336x4096 and 5000x5000x1000.
STREAM_K_OVERHEAD_K_TILES = 8
# What a data-parallel grid pays per round after its first that stream-K's whole rounds (a persistent grid,
# each block's next tile's first K slice loading while its last one is stored) do not: a new block's start.
# mi355x model, data-parallel against persistent over four whole rounds, so three starts: 4096x16384x1024
# 0.1068 against 0.1012 ms, 2048x32768x4096 0.3459 against 0.3403, 8192x8192x2048 0.1865 against 0.1808,
# 8192^3 0.6648 against 0.6591 (16384^3, 15 starts: 5.198 against 5.170): 1.87 us each, 1.5 K tiles.
BLOCK_START_K_TILES = 1.5
# How much sooner the busiest block must finish for a stream-K grid to give up a whole round and share it out:
# the estimate does not resolve less (mi355x model: 2048x128256x4096, 15 rounds and 168 tiles shared, 1011
# estimated, 1.3285 ms, against 14 rounds and 424 tiles, 1010, 1.3302 ms; 4096x128256x4096, 2024 against
# 2012: 2.6497 against 2.6395; 5000x7000x1000, 48 against 43: 0.0757 against 0.0752).
ROUND_GIVEN_UP_K_TILES = 4


def _stream_k_pays(s: Shape) -> bool:
    """Whether the busiest stream-K block, its whole rounds and then its share of the tiles left (with the
    pieces' overhead), finishes before the data-parallel rounds (each after the first with a block start)."""
    tiles, tiles_k = s.tiles(256, 256), _tiles(s.k, 64)
    sk = StreamKLayout.of(tiles, tiles_k, stream_k_grid(tiles, s.cus))
    rounds = _tiles(tiles, s.cus)
    return sk.busiest < rounds * tiles_k + (rounds - 1) * BLOCK_START_K_TILES


def _stream_k_fits(s: Shape) -> bool:
    """Whether the stream-K kernel's 32-bit range arithmetic holds the product."""
    tiles = s.tiles(256, 256)
    return StreamKLayout.of(tiles, _tiles(s.k, 64), stream_k_grid(tiles, s.cus)).fits


def _small(s: Shape) -> bool:
    if s.m <= 128:
        return True
    if 2 * s.tiles(256, 256) >= s.cus:
        return False
    # a batch with nothing to split reads a B per matrix, where small loses (64 x 256^3: 0.0128 ms against
    # pingpong_m128's 0.0114), unless it has an epilogue, which pingpong_m128 would run as a launch of its own
    # (64 x 256^3 with bias + gelu: 0.0146 against the fused pingpong's 0.0213 and small_m128's 0.0161)
    return s.batch == 1 or s.epilogue or split_count(s.m, s.n, s.k, *SMALL_TILE, s.cus, s.batch) > 1


RULES = [
    # 128-row split-K tiles read B once for M in 65..128, but with more than 8 splits their partials cost more
    # than that saves (mi355x model, M = 128: 14336x4096 28.3 us against small's 34.1, 28672x8192 73.1 against
    # 107.0, 8192x28672 80.6 against 97.1; but 4096x4096 24.6 against 17.0, 6144x4096 23.4 against 20.1,
    # 4096x14336 37.8 against 32.7, with 16, 10 and 16 splits).
    ("small_m128", "64 < M <= 128, and 128x128 tiles (of the whole batch) for at least a quarter of the CUs",
     lambda s: 64 < s.m <= 128 and 4 * s.tiles(128, 128) >= s.cus),
    ("small", "M <= 128, or 256x256 tiles (of the whole batch) for fewer than half the CUs and, for a batch, K "
              "split or an epilogue", _small),
    # One product, no epilogue, 256x256 tiles for at least half the CUs: stream-K, whole rounds of tiles as a
    # persistent grid, then the tiles left shared out over the CUs, wherever its busiest block is predicted
    # to finish first (_stream_k_pays). mi355x model, against the rule that would run otherwise: whole rounds
    # as in BLOCK_START_K_TILES (one round loses a little: 4096^3 0.0870 ms against pingpong's 0.0865);
    # 2048x14336x4096 (448 tiles) 0.1579 against pingpong's 0.1689, 2048x4096x4096 (128) 0.0553 against
    # small_m128's 0.0628, 2048x4096x14336 0.1534 against 0.2003, 2048x128256x4096 (4008 tiles, 15 rounds and
    # 168 tiles shared by 252 blocks) 1.2830 against 1.3231, 2048x30720x4096 0.3197 against 0.3338,
    # 7000x7000x1000 (784 tiles of 16 K tiles: two whole rounds, 272 tiles left for 256 blocks,
    # StreamKLayout.of) 0.0889 against 0.1021, 5000^3 (400) 0.1835 against 0.2078, 4096x6144x4096 (384) 0.1363
    # against 0.1689, 3000^3 (144) 0.0564 against small_m128's 0.0913 (older: 4096x128256x4096 2.6496 against
    # 2.7389). Where it is predicted not to pay it loses: 5000x5000x1000 (400 tiles of 16 K tiles) 0.0547
    # against pingpong's 0.0532, 6912x6912x1024 (729) 0.0827 against 0.0747; and below half the CUs, 2048^3 (64
    # tiles, 128 blocks) 0.0341 against small's 0.0315.
    ("stream_k", "one product, no epilogue, 256x256 tiles for at least half the CUs, and stream-K's busiest "
                 "block (whole rounds as a persistent grid, then its share of the tiles left) predicted to "
                 "finish before the data-parallel rounds", lambda s: not s.epilogue and s.batch == 1 and
     2 * s.tiles(256, 256) >= s.cus and _stream_k_pays(s) and _stream_k_fits(s)),
    # The same with an epilogue, where a stream-K kernel with that epilogue compiled in is built
    # (kernels/variants.toml: every form but a bf16 C with Cin). mi355x model, sampled, 2048x14336x4096:
    # bias + gelu 0.1756 ms against the data-parallel fused pingpong's 0.1865, fp32 alpha/beta/C 0.1781
    # against 0.1861 (the plain product: 0.1579).
    ("stream_k", "one product with an epilogue a fused stream-K kernel has, as the rule above",
     lambda s: s.epilogue and s.form is not None and s.batch == 1 and 2 * s.tiles(256, 256) >= s.cus and
     _stream_k_pays(s) and _stream_k_fits(s)),
    # Too few 256x256 tiles for the CUs, one product or a batch with an epilogue: 128x128 tiles two per CU,
    # unsplit (each wave row's memory phases hidden by the other block's MFMAs): 2048x4096x14336 0.2003 ms
    # against pingpong_m128's 0.2339, 3000^3 0.0913 against 0.1062 (both now run stream-K, 0.1534 and 0.0564);
    # with bias + gelu 2048x4096x4096 0.0664 against the fused pingpong's 0.0949, and for batches with bias +
    # gelu 8 x 1024^3 (128 tiles) 0.0299 against 0.0362, 32 x 512^3 0.0232 against 0.0268, 128 x 256^3 0.0189
    # against 0.0218. At 256 tiles they lose (2048x8192x4096 0.1207 against pingpong's 0.0865; 16 x 1024^3 with
    # bias + gelu 0.0546 against 0.0422), and a batch of small products without an epilogue stays on
    # pingpong_m128 (64 x 256^3 0.0114 against 0.0141).
    ("small_m128", "256x256 tiles (of one product, or of a batch with an epilogue) for fewer than the CUs",
     lambda s: (s.batch == 1 or s.epilogue) and s.tiles(256, 256) < s.cus),
    # 64 x 256^3 (64 tiles of 256x256): 0.0114 ms against small_m128's 0.0141. With 448 tiles (2048x14336x4096)
    # the 128-row tiles lose (0.2752 against 0.1689): their MFMA phases are too short to hide the other row's
    # loads.
    ("pingpong_m128", "a batch, no epilogue, and 256x256 tiles (of the whole batch) for fewer than the CUs",
     lambda s: not s.epilogue and s.tiles(256, 256) < s.cus),
    ("pingpong", "everything else (4096^3: 1589 TFLOP/s predicted)", lambda s: True),
]


@dataclass(frozen=True)
class Plan:
    gemm: str                 # variant that computes the product
    family: str               # its family
    b_layout: str             # the layout it needs B in ("kn" or "nk")
    fused: bool               # the GEMM applies alpha/beta/bias/activation itself
    epilogue: str | None      # separate epilogue variant (sums split-K partials too), or None
    splits: int               # split-K factor (small family), else 1
    reason: str               # why, in words
    blocks_per_cu: int = 0    # blocks a CU may hold at once (resident_blocks), 0: as many as fit
    blocks: int = 0           # a stream-K kernel's grid (stream_k_grid), else 0
    sharers: int = 0          # of them, the blocks sharing out the tiles left after whole rounds (stream_k_sharers)
    rounds: int = 0           # the whole rounds of tiles every block of a stream-K grid runs first
    dynamic_lds: int = 0      # LDS the launch asks for beyond the kernel's own, to hold it to blocks_per_cu
    bands: tuple["Band", ...] = ()  # a tall product's bands of rows, each with its plan; (): one, this plan


@dataclass(frozen=True)
class Band:
    """Rows r0 .. r0 + rows of the product (of every matrix of the batch), run by `plan`."""
    r0: int
    rows: int
    plan: Plan


def families(arch: str) -> list[str]:
    return registry.manifest(arch).families()


def _candidates(arch: str, family: str, b_layout: str) -> list[tuple[str, LaunchSpec]]:
    return [(name, k.launch) for name, k in sorted(registry.manifest(arch).gemm_kernels().items())
            if k.launch.strategy == family and k.launch.b_layout == b_layout]


def split_count(m: int, n: int, k: int, tile_m: int, tile_n: int, cus: int, batch: int = 1) -> int:
    """Enough K splits to give every CU SPLIT_BLOCKS_PER_CU blocks (the batch's tiles counted together),
    keeping at least two K tiles per split, and all of one product's fp32 partials within one buffer
    descriptor's reach."""
    tiles = batch * _tiles(m, tile_m) * _tiles(n, tile_n)
    return max(1, min(MAX_SPLITS, SPLIT_BLOCKS_PER_CU * cus // max(tiles, 1), _tiles(k, 64) // 2,
                      FAST_MAX_BUFFER // max(4 * partial_elements(m, n), 1)))


def partial_elements(m: int, n: int) -> int:
    """fp32 elements of one split-K partial of an m x n product: N x M4 (M rounded up to 4), column-major,
    so that a lane's four rows of an accumulator are 16 contiguous bytes (kernels/gemm_small.hip)."""
    return -(-m // 4) * 4 * n


def plan(req) -> Plan:
    """The kernels for a GemmRequest: a product too tall for the fast kernels' buffers runs as bands of rows,
    each by the plan for its height (mi355x model, 8192 x 128256 x 4096, whose bf16 C is 2.1 GB: two bands
    of 4096 rows on stream-K, 1624 TFLOP/s, against the basic kernel's 398 for the whole)."""
    rows, why = req.fast_rows()

    def choose_rows(m: int) -> Plan:
        return choose(req.device, m, req.n, req.k, b_layout=req.b_layout, out=req.out_name,
                      epilogue=req.epilogue.needed, fast_ok=rows > 0, why_not_fast=why, strategy=req.strategy,
                      batch=req.batch or 1, form=req.epilogue.form)
    if rows == 0 or rows >= req.m:
        return choose_rows(req.m)
    full = choose_rows(rows)
    last = req.m - (-(-req.m // rows) - 1) * rows
    last_plan = full if last == rows else choose_rows(last)
    bands = tuple(Band(r0, min(rows, req.m - r0), full if r0 + rows <= req.m else last_plan)
                  for r0 in range(0, req.m, rows))
    return replace(full, bands=bands, reason=f"{full.reason}; as {len(bands)} bands of up to {rows} rows (A or C "
                                             f"whole would pass the fast kernels' 2 GiB buffer limit)")


def choose(device, m: int, n: int, k: int, *, b_layout: str, out: str, epilogue: bool, fast_ok: bool,
           why_not_fast: str = "", strategy: str | None = None, batch: int = 1,
           form: EpilogueForm | None = None) -> Plan:
    """Kernels for an M x N x K product (batch of them, in one launch) on `device`. b_layout: how B is held
    now ("kn" or "nk"; the runtime can transpose to nk); out: "bf16" or "f32"; fast_ok: the operands meet the
    fast kernels' requirements; form: the epilogue's (kernels with one compiled in are picked only for it)."""
    arch = device.arch
    form = form if epilogue else None
    shape = Shape(m, n, k, epilogue, device.info.compute_units, max(batch, 1), form)
    kernels = registry.manifest(arch).kernels
    known = sorted({f for f, _, _ in RULES} | {FALLBACK})
    if strategy in kernels:  # an exact variant name
        la = kernels[strategy].launch
        if not la.is_gemm:
            raise ValueError(f"{strategy} is not a GEMM kernel")
        if la.strategy != FALLBACK and not fast_ok:
            raise ValueError(f"variant {strategy} cannot take these operands: {why_not_fast}")
        return _finish(arch, strategy, la, shape, out, "requested by name", device.info.lds_per_cu)
    if strategy is not None:
        if strategy not in known and strategy not in families(arch):
            raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(known)} or a variant name "
                             f"(python -m hkrt info lists them)")
        if strategy not in families(arch):
            raise KernelNotFoundError(f"no kernel of strategy {strategy!r} is built for {arch} (built: "
                                      f"{', '.join(families(arch))}; or name a variant: "
                                      f"{', '.join(sorted(registry.manifest(arch).gemm_kernels()))})")
        family, reason = strategy, "requested"
    else:
        # a rule for a family with no variant that applies this epilogue itself, where it must (fused
        # stream-K), passes to the next
        family, reason = next((f, why) for f, why, pred in RULES
                              if pred(shape) and not (f == "stream_k" and epilogue and
                                                      not _pick(arch, f, ["nk"], out, form, direct_only=True)))
    if family != FALLBACK and not fast_ok:
        if strategy is not None:
            raise ValueError(f"strategy {strategy!r} cannot take these operands: {why_not_fast}")
        family, reason = FALLBACK, f"{reason}, but {why_not_fast}: {FALLBACK} runs"
    for fam in (family, FALLBACK):
        layouts = [b_layout, "nk"] if fam == FALLBACK else ["nk"]
        choice = _pick(arch, fam, layouts, out, form, unknown_form=epilogue and form is None)
        if choice:
            name, la = choice
            why = reason if fam == family else f"{reason}; no {family} kernel is built, so {fam} runs"
            return _finish(arch, name, la, shape, out, why, device.info.lds_per_cu)
    raise KernelNotFoundError(f"no GEMM kernel for output {out} is built for {arch}")


def _pick(arch: str, family: str, layouts: list[str], out: str, form: EpilogueForm | None, *,
          unknown_form: bool = False, direct_only: bool = False):
    """Best variant of a family: one writing `out` directly (with no epilogue code when none is wanted: the
    fused pingpong is predicted 0.151 ms at 4096^3 against the plain one's 0.090), else one writing fp32 for
    the epilogue kernel to finish. form: the epilogue (None: none, or with unknown_form one not known, which
    only a kernel taking any epilogue at run time applies); a kernel with one form compiled in applies that
    form alone. direct_only: only a kernel that writes `out` with the epilogue applied."""
    epilogue = form is not None or unknown_form

    def applies(la: LaunchSpec) -> bool:
        return la.fused and (la.form is None or (la.form == form and not unknown_form))
    for layout in layouts:
        cands = _candidates(arch, family, layout)

        def find(pred):
            return next(((n, la) for n, la in cands if pred(la)), None)
        choice = ((None if epilogue else find(lambda la: not la.fused and la.out == out))
                  or find(lambda la: applies(la) and la.out == out))
        if direct_only:
            return choice if epilogue else None
        choice = (choice or find(lambda la: not la.fused and la.out == "f32")
                  or find(lambda la: la.fused and la.form is None and la.out == "f32"))
        if choice:
            return choice
    return None


def _describe(form: EpilogueForm) -> str:
    act = next(name for name, code in ACTIVATION_CODES.items() if code == form.act)
    return f"activation {act}, {'with' if form.reads_c else 'without'} beta * C"


def resident_blocks(blocks: int, cus: int, fits: int) -> int:
    """How many blocks of a launch of `blocks` a CU should hold at once, of the 2 .. `fits` its resources allow:
    the number whose last round on the busiest CU holds the most blocks (ties: the larger). A lone block in a
    last round cannot keep its CU's share of HBM busy (one block's loads in flight are about 75% of it on the
    mi355x model), and a block the CU could have held in an earlier round costs nothing.
    mi355x model, 1 x 128256 x 4096 (1002 blocks, 4 on most CUs): 3 + 1 per CU 0.1547 ms, 2 + 2 0.1412."""
    if fits <= 2:
        return fits
    per_cu = _tiles(blocks, cus)

    def last_round(held: int) -> int:
        return per_cu - held * (_tiles(per_cu, held) - 1)
    return max(range(2, fits + 1), key=lambda held: (last_round(held), held))


def stream_k_grid(tiles: int, cus: int) -> int:
    """A stream-K launch's blocks for `tiles` output tiles: as many as the CUs, or twice the tiles if that is
    fewer. The kernel runs whole rounds of tiles over all of them first, then shares out the tiles left
    (tiles % grid) over stream_k_sharers of them."""
    return max(1, min(cus, 2 * tiles))


def stream_k_sharers(shared: int, tiles_k: int, grid: int) -> int:
    """How many of a stream-K grid's blocks share out the K iterations of the `shared` tiles left after the
    whole rounds: the most (up to the grid, or twice the tiles) whose ranges cut no tile between more than
    two blocks (the kernel finishes only those: kernels/include/hkrt/stream_k.hpp); the other blocks stop
    after the whole rounds. 0 when no tile is left.
    Holding the whole grid to such a count, as this once did, idled CUs for every whole round: 2048 x 128256
    x 4096 (4008 tiles) ran on 236 blocks, 1.442 ms on the mi355x model against pingpong's 1.371."""
    if shared == 0:
        return 0
    for blocks in range(min(grid, 2 * shared), 0, -1):
        if _cut_at_most_twice(shared, tiles_k, blocks):
            return blocks
    return 1


@dataclass(frozen=True)
class StreamKLayout:
    """How a stream-K launch of `grid` blocks divides its tiles: `rounds` whole rounds over every block, then
    the `shared` tiles left, their K iterations (tiles_k each) over the first `sharers` blocks."""
    grid: int
    rounds: int
    shared: int
    sharers: int
    tiles_k: int

    @classmethod
    def of(cls, tiles: int, tiles_k: int, grid: int) -> "StreamKLayout":
        """As many whole rounds as the tiles fill, or one fewer (at least one), the round given up shared out
        with the tiles left, where that takes its busiest block at least ROUND_GIVEN_UP_K_TILES fewer K
        iterations. A last round of a few tiles shared over many blocks still leaves each block a whole round
        behind the shared work: 7000 x 7000 x 1000 (784 tiles of 16 K tiles on 256 blocks), three rounds and
        16 tiles over 32 blocks, 64 K iterations on the busiest block (overhead included) and 0.0998 ms on the
        mi355x model, against two rounds and 272 tiles over 256 blocks, 57 and 0.0960 ms."""
        full = cls.with_rounds(tiles, tiles_k, grid, tiles // grid)
        if full.rounds < 2:
            return full
        fewer = cls.with_rounds(tiles, tiles_k, grid, full.rounds - 1)
        return fewer if fewer.busiest <= full.busiest - ROUND_GIVEN_UP_K_TILES else full

    @classmethod
    def with_rounds(cls, tiles: int, tiles_k: int, grid: int, rounds: int) -> "StreamKLayout":
        shared = tiles - rounds * grid
        return cls(grid, rounds, shared, stream_k_sharers(shared, tiles_k, grid), tiles_k)

    @property
    def busiest(self) -> int:
        """K iterations of the busiest block, a fixed STREAM_K_OVERHEAD_K_TILES for its pieces if it shares."""
        share = _tiles(self.shared * self.tiles_k, self.sharers) + STREAM_K_OVERHEAD_K_TILES if self.shared else 0
        return self.rounds * self.tiles_k + share

    @property
    def fits(self) -> bool:
        """Whether the kernel's 32-bit range arithmetic (shared iterations x sharers) holds it."""
        return self.shared * self.tiles_k * self.sharers < 1 << 32


def stream_k_owners(shared: int, tiles_k: int, blocks: int) -> list[tuple[int, int]]:
    """The first and last block whose range holds part of each of `shared` tiles, their K iterations split
    evenly over `blocks` as the kernel splits them (StreamK in kernels/include/hkrt/stream_k.hpp)."""
    total = shared * tiles_k

    def block_of(it: int) -> int:
        return ((it + 1) * blocks - 1) // total
    return [(block_of(t * tiles_k), block_of((t + 1) * tiles_k - 1)) for t in range(shared)]


def _cut_at_most_twice(shared: int, tiles_k: int, blocks: int) -> bool:
    """Whether every shared-out tile goes to at most two blocks."""
    return all(last - first <= 1 for first, last in stream_k_owners(shared, tiles_k, blocks))


def _finish(arch: str, name: str, la: LaunchSpec, shape: Shape, out: str, reason: str, lds_per_cu: int) -> Plan:
    splits = split_count(shape.m, shape.n, shape.k, la.tile.m, la.tile.n, shape.cus, shape.batch) if la.splits_k else 1
    blocks_per_cu = dynamic_lds = 0
    if la.splits_k:  # the split-K kernels stream B: hold them to the residency that spreads it evenly
        static = registry.spec(arch, name).static_lds
        fits = lds_per_cu // max(static + la.dynamic_lds, 1)
        blocks_per_cu = resident_blocks(shape.tiles(la.tile.m, la.tile.n) * splits, shape.cus, fits)
        if blocks_per_cu < fits:
            dynamic_lds = lds_per_cu // blocks_per_cu - static
    if la.form is not None and la.form != shape.form:
        raise ValueError(f"variant {name} has one epilogue compiled in ({_describe(la.form)}); this request "
                         f"has {_describe(shape.form) if shape.form else 'none'}")
    direct = (la.fused or not shape.epilogue) and la.out == out
    ep = None
    if not direct:
        if la.out != "f32":
            raise ValueError(f"variant {name} writes {la.out}; this request needs an fp32 result "
                             f"for the epilogue kernel")
        ep = f"gemm_epilogue_{out}"
        registry.spec(arch, ep)
    blocks = sharers = rounds = 0
    if la.stream_k:
        tiles = _tiles(shape.m, la.tile.m) * _tiles(shape.n, la.tile.n)
        sk = StreamKLayout.of(tiles, _tiles(shape.k, la.tile.k), stream_k_grid(tiles, shape.cus))
        if not sk.fits:
            raise ValueError(f"variant {name}: {shape.m} x {shape.n} x {shape.k} has too many K iterations for "
                             f"stream-K over {sk.sharers} blocks")
        blocks, sharers, rounds = sk.grid, sk.sharers, sk.rounds
    return Plan(gemm=name, family=la.strategy, b_layout=la.b_layout, fused=la.fused and direct, epilogue=ep,
                splits=splits, reason=reason, blocks_per_cu=blocks_per_cu, dynamic_lds=dynamic_lds, blocks=blocks,
                sharers=sharers, rounds=rounds)
