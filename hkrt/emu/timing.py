"""The timing model's configurations (MI355X, MI350X) and its report of one launch.

The model itself runs in the execution core (timing_model.c): it issues every wave's instructions cycle by
cycle on modelled compute units, so the emulator computes results in the modelled order and knows each
launch's duration. This module holds the parameters, each with where it comes from (docs/perf-model.md
has the full table and the calibration), and turns the core's counters into a LaunchReport.

    HKRT_EMU_MODEL=mi355x            every emulated launch gets a modelled duration
    HKRT_EMU_SAMPLE=1                large launches run a representative subset of their workgroups
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


# Occupancy (docs/facts.md §2; HipKittens' agent info on an MI355X: 8 waves per SIMD, 160 KiB of LDS).
LDS_PER_CU, LDS_GRANULE, SIMDS, MAX_WAVES_PER_SIMD = 160 * 1024, 1280, 4, 8


def occupancy(vgpr_alloc: int, lds: int, waves_per_group: int) -> tuple[int, int]:
    """(waves per SIMD, workgroups per CU)."""
    per_simd = min(MAX_WAVES_PER_SIMD, 512 // max(vgpr_alloc, 1))
    by_waves = (per_simd * SIMDS) // waves_per_group
    lds_alloc = -(-lds // LDS_GRANULE) * LDS_GRANULE
    by_lds = LDS_PER_CU // lds_alloc if lds_alloc else by_waves
    return per_simd, min(by_waves, by_lds)

# LDS phases, as measured on an MI355X by HipKittens (analysis/paper_experiments/phases): which lanes of a
# wave share a clock of the 64 LDS banks. ds_read_b128: four phases of 16 lanes in an irregular grouping;
# ds_read_b96: eight phases of 8; ds_read_b64: two phases of 32 lanes; ds_write_b64: four phases of 16 lanes.
_B128_PHASES = ((0, 1, 2, 3, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25, 26, 27),
                (4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 28, 29, 30, 31),
                tuple(range(32, 36)) + tuple(range(44, 48)) + tuple(range(52, 60)),
                tuple(range(36, 44)) + tuple(range(48, 52)) + tuple(range(60, 64)))


_B96_PHASES = ((0, 1, 2, 3, 20, 21, 22, 23), (4, 5, 6, 7, 16, 17, 18, 19), (8, 9, 10, 11, 28, 29, 30, 31),
               (12, 13, 14, 15, 24, 25, 26, 27), (32, 33, 34, 35, 52, 53, 54, 55), (36, 37, 38, 39, 48, 49, 50, 51),
               (40, 41, 42, 43, 60, 61, 62, 63), (44, 45, 46, 47, 56, 57, 58, 59))


def _phase_map(groups) -> tuple[int, ...]:
    out = [0] * 64
    for p, lanes in enumerate(groups):
        for lane in lanes:
            out[lane] = p
    return tuple(out)


@dataclass(frozen=True)
class ChipModel:
    """One GPU, in cycles of its effective clock. Sources: docs/perf-model.md (D = documented, F = fitted,
    A = assumed where no document gives a figure)."""
    name: str
    peak_clock_hz: float              # D: AMD's specification (MI355X 2400 MHz, MI350X 2200 MHz)
    clock_hz: float                   # F: effective engine clock under sustained MFMA load
    launch_seconds: float             # D: 4.04 us per empty kernel between hipEvents (TransferBench #297)
    xcds: int = 8                     # D: CDNA4 white paper
    cus_per_xcd: int = 32             # D: 256 CUs
    simds: int = 4                    # D: CDNA4 ISA, 4 SIMDs per CU
    valu_cycles: int = 4              # D: a wave64 VALU op occupies a 16-lane SIMD for 4 cycles
    trans_cycles: int = 16            # D: transcendentals at quarter rate
    valu64_cycles: int = 4            # D: SISchedule.td gfx950 override: Write64Bit 1 unit (full rate)
    valu_latency: int = 4             # D: SISchedule.td gfx950: VALU latency 1 unit (= 4 clocks)
    trans_latency: int = 16           # D: SISchedule.td: WriteTrans32 4 units
    salu_latency: int = 4             # D: SISchedule.td: WriteSALU 1 unit
    branch_cycles: int = 24           # D: TensileLite's cycle model (rocisa cycle.cpp): branch 6 units of 4
    smem_latency: int = 20            # D: SISchedule.td: WriteSMEM 5 units
    mfma_writeback: int = 8           # A: result to VALU beyond the pipe's cycles (ISA 7.6 wait states)
    barrier_latency: int = 8          # D: TensileLite's cycle model: s_barrier 2 units
    wg_launch_cycles: int = 400       # A: start of a workgroup in a freed slot
    lds_latency: int = 56             # D: TensileLite/Formocast gfx950 local read base 14 units
    l1_latency: int = 120             # A: vector L1 hit
    l2_latency: int = 320             # D: SISchedule.td: WriteVMEM 80 units
    mall_latency: int = 550           # A: Infinity Cache hit
    hbm_latency: int = 800            # A: HBM
    store_latency: int = 320          # A: a store's acknowledgement from L2, as an L2 read
    line_bytes: int = 128             # D: 128-byte cache lines (L2, MALL; TensileLite constants)
    l1_bytes: int = 32 * 1024         # D
    l1_ways: int = 8                  # A
    l2_bytes: int = 4 << 20           # D: 4 MiB per XCD
    l2_ways: int = 16                 # D
    mall_bytes: int = 256 << 20       # D: 256 MiB Infinity Cache
    mall_ways: int = 16               # A
    ta_bytes_per_cycle: float = 64.0  # D: Formocast (TensileLite): L1 64 B/clk/CU
    lds_dma_bytes_per_cycle: float = 128.0   # A: direct-to-LDS writes, as the CDNA3 LDS write width
    l2_bytes_per_cycle: float = 2048.0       # D: rocprofiler-compute gfx950: 128 B/clk per channel, 16 per XCD
    mall_bytes_per_second: float = 17.0e12   # D: AMD's MI300X Infinity Cache peak (no MI355X figure found)
    hbm_bytes_per_second: float = 8.0e12     # D: AMD's specification, HBM3E 8 TB/s
    lds_phase_b128: tuple = field(default=_phase_map(_B128_PHASES))
    lds_phase_b96: tuple = field(default=_phase_map(_B96_PHASES))
    lds_phase_b64: tuple = field(default=_phase_map((range(0, 32), range(32, 64))))
    lds_phase_w64: tuple = field(default=_phase_map([range(16 * p, 16 * p + 16) for p in range(4)]))

    @property
    def cus(self) -> int:
        return self.xcds * self.cus_per_xcd

    @property
    def bf16_flops_per_cycle(self) -> int:
        """Dense bf16 MFMA rate of the chip: 1024 FLOP per cycle per SIMD (16x16x32 in 16 cycles)."""
        return self.cus * self.simds * 1024


# The one fitted figure: the effective clock, from HipKittens' 8192^3 GEMM (docs/perf-model.md, calibration).
MI355X_CLOCK_HZ = 1.6700e9
MODELS = {
    "mi355x": ChipModel("mi355x", peak_clock_hz=2.4e9, clock_hz=MI355X_CLOCK_HZ, launch_seconds=4.04e-6),
    "mi350x": ChipModel("mi350x", peak_clock_hz=2.2e9, clock_hz=MI355X_CLOCK_HZ * 2.2 / 2.4, launch_seconds=4.04e-6),
}


def get_model(name: str | ChipModel) -> ChipModel:
    if isinstance(name, ChipModel):
        return name
    key = str(name).strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown timing model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[key]


@dataclass(frozen=True)
class Stalls:
    """Wave-cycles lost before an instruction could issue, by cause."""
    waitcnt: int
    barrier: int
    issue: int         # s_nop, branch cost, or another wave took the issue slot
    dependency: int    # a source register's ALU/MFMA result not ready
    unit: int          # the matrix pipe or VALU still busy


@dataclass(frozen=True)
class Traffic:
    """Bytes by the level that served them (l1: hits in the CU's L1; l2: requests reaching L2)."""
    l1: int
    l2: int
    mall: int
    hbm: int
    stored: int


# Why a wave could not issue (emu_trace_rec.reason; R_* in timing_model.c).
STALL_REASONS = ("", "waitcnt", "barrier", "issue", "dependency", "unit")
TRACE_RECORDS = 1 << 21  # at most this many instructions are kept per launch (80 MiB)
_TRACE_FIELDS = ("cycle", "done", "wg", "pc", "waited", "op", "cu", "wave", "simd", "reason")


def _trace_dtype(ffi) -> np.dtype:
    """emu_trace_rec as a numpy record, laid out as the C compiler laid it out."""
    rec = ffi.typeof("emu_trace_rec")
    kinds = {"int64_t": "<i8", "uint32_t": "<u4", "uint16_t": "<u2", "uint8_t": "u1"}
    fields = dict(rec.fields)
    return np.dtype({"names": list(_TRACE_FIELDS), "formats": [kinds[fields[n].type.cname] for n in _TRACE_FIELDS],
                     "offsets": [fields[n].offset for n in _TRACE_FIELDS], "itemsize": ffi.sizeof(rec)})


def attach_trace(ffi, P, workgroups: int, records: int = TRACE_RECORDS):
    """Have the launch record the instructions workgroups 0 .. workgroups-1 issue; returns the buffer."""
    if not workgroups:
        return None
    buf = np.zeros(records, _trace_dtype(ffi))
    P.trace = ffi.cast("emu_trace_rec *", ffi.from_buffer(buf))
    P.trace_cap = records
    P.trace_count = workgroups
    return buf


def format_trace(trace: np.ndarray, limit: int | None = None) -> list[str]:
    """A trace as text lines: issue and ready cycles, where, the instruction, and what it waited for."""
    from . import isa
    lines = [f"{'cycle':>10} {'ready':>10} {'cu':>4} {'wg':>6} {'wave':>4} {'simd':>4} {'pc':>7}  "
             f"{'instruction':<34} {'waited':>7} for"]
    for r in trace[:limit]:
        lines.append(f"{r['cycle']:>10} {r['done']:>10} {r['cu']:>4} {r['wg']:>6} {r['wave']:>4} {r['simd']:>4} "
                     f"{r['pc']:>#7x}  {isa.MNEMONICS[r['op']]:<34} {r['waited']:>7} "
                     f"{STALL_REASONS[r['reason']] if r['reason'] < len(STALL_REASONS) else '?'}")
    return lines


@dataclass(frozen=True)
class LaunchReport:
    kernel: str
    model: str
    seconds: float            # modelled device time of the launch, launch overhead included
    cycles: int               # cycles of the slowest CU
    clock_hz: float
    grid: tuple
    block: tuple
    workgroups: int
    workgroups_run: int       # < workgroups when sampled: the others computed nothing
    sampled: bool
    workgroups_per_cu: int
    matrix_busy: float        # fractions of the simulated CUs' time
    valu_busy: float
    lds_busy: float
    vmem_busy: float
    stalls: Stalls
    lds_conflict_cycles: int
    mfma_instructions: int
    traffic: Traffic
    round_cycles: int
    tail_cycles: int
    # With tracing on (HKRT_EMU_TRACE=N, Machine(trace=N)): each instruction the first N workgroups issued,
    # in issue order per CU (format_trace prints it); trace_dropped counts those past TRACE_RECORDS.
    trace: np.ndarray | None = field(default=None, compare=False, repr=False)
    trace_dropped: int = 0

    def summary(self) -> str:
        s = self.stalls
        t = self.traffic
        mb = 1 << 20
        note = (f"; sampled {self.workgroups_run} of {self.workgroups} workgroups" if self.sampled else "")
        return (f"{self.kernel}: {self.seconds * 1e3:.4f} ms on {self.model} ({self.cycles:,} cycles at "
                f"{self.clock_hz / 1e9:.2f} GHz, {self.workgroups_per_cu} wg/CU{note}); busy: matrix "
                f"{self.matrix_busy:.1%}, VALU {self.valu_busy:.1%}, LDS {self.lds_busy:.1%}, vector memory "
                f"{self.vmem_busy:.1%}; stalls (wave-cycles): waitcnt {s.waitcnt:,}, barrier {s.barrier:,}, "
                f"issue {s.issue:,}, dependency {s.dependency:,}, unit {s.unit:,}; LDS bank conflicts "
                f"{self.lds_conflict_cycles:,} cycles; traffic L1 {t.l1 / mb:.1f} MiB, L2 {t.l2 / mb:.1f} MiB, "
                f"MALL {t.mall / mb:.1f} MiB, HBM {t.hbm / mb:.1f} MiB, stored {t.stored / mb:.1f} MiB")


def workgroups_per_cu(kernel, block, dynamic_lds: int) -> int:
    """Workgroups resident per CU, from the code object's register and LDS use."""
    threads = block[0] * block[1] * block[2]
    waves = -(-threads // 64)
    lds = kernel.group_segment_fixed_size + dynamic_lds
    return max(1, occupancy(kernel.descriptor.vgpr_alloc, lds, waves)[1])


def fill(ffi, model: ChipModel, wg_slots: int, sample: bool):
    """The core's emu_model record for one launch."""
    P = ffi.new("emu_model *")
    hz = model.clock_hz
    fields = set(dir(P))
    for f in dataclasses.fields(model):  # the record's fields of the same name, as they are
        if f.name in fields:
            value = getattr(model, f.name)
            if isinstance(value, tuple):
                getattr(P, f.name)[0:len(value)] = value
            else:
                setattr(P, f.name, value)
    P.l1_lines = model.l1_bytes // model.line_bytes
    P.l2_lines = model.l2_bytes // model.line_bytes
    P.mall_lines = model.mall_bytes // model.line_bytes
    P.mall_bytes_per_cycle = model.mall_bytes_per_second / hz
    P.hbm_bytes_per_cycle = model.hbm_bytes_per_second / hz
    P.wg_slots = wg_slots
    P.sample = int(sample)
    return P


def report(P, model: ChipModel, kernel: str, grid, block, wg_slots: int, trace=None) -> LaunchReport:
    cycles = int(P.cycles)
    kept = min(int(P.trace_n), int(P.trace_cap))
    span = max(int(P.cu_cycles), 1)
    workgroups = grid[0] * grid[1] * grid[2]
    return LaunchReport(
        kernel=kernel, model=model.name, seconds=model.launch_seconds + cycles / model.clock_hz, cycles=cycles,
        clock_hz=model.clock_hz, grid=tuple(grid), block=tuple(block), workgroups=workgroups,
        workgroups_run=int(P.wg_run), sampled=int(P.wg_run) < workgroups, workgroups_per_cu=wg_slots,
        matrix_busy=int(P.xdl_busy) / (span * model.simds), valu_busy=int(P.valu_busy) / (span * model.simds),
        lds_busy=int(P.lds_busy) / span, vmem_busy=int(P.ta_busy) / span,
        stalls=Stalls(int(P.stall_waitcnt), int(P.stall_barrier), int(P.stall_issue), int(P.stall_dependency),
                      int(P.stall_unit)),
        lds_conflict_cycles=int(P.lds_conflict_cycles), mfma_instructions=int(P.mfma_ops),
        traffic=Traffic(int(P.bytes_l1), int(P.bytes_l2), int(P.bytes_mall), int(P.bytes_hbm),
                        int(P.bytes_stored)),
        round_cycles=int(P.round_cycles), tail_cycles=int(P.tail_cycles),
        trace=None if trace is None else trace[:kept].copy(), trace_dropped=int(P.trace_n) - kept)
