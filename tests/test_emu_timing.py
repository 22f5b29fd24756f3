"""The timing model on micro-kernels whose cycle counts follow by hand from its documented rules
(hkrt/emu/timing_model.c, docs/perf-model.md), and its properties on real launches.

Each micro-kernel is hand-written assembly run as one launch on the execution core with the model on.
Differences between two lengths of the same kernel cancel the fixed costs (workgroup launch, end), so
the expected figures are the rule's cycles alone.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hkrt.emu import decode, isa, launch, timing
from hkrt.emu.machine import Machine
from tests.emu_harness import assemble_with_labels

MODEL = timing.get_model("mi355x")
MFMA = "v_mfma_f32_16x16x32_bf16"


@pytest.fixture
def tc(tc, tmp_path):
    """The toolchain, with an assembler for snippets with labels."""
    return _Asm(tc.mc, tmp_path)


@dataclasses.dataclass
class _Asm:
    mc: str
    tmp: object

    def code(self, lines):
        return assemble_with_labels(self.mc, lines + ["s_endpgm"], self.tmp)


def run(tc, lines: list[str], threads: int = 64, grid=(1, 1, 1), slots: int = 1, sample: bool = False,
        model: timing.ChipModel = MODEL, machine: Machine | None = None, lds: int = 0, user_sgprs=(),
        wg_id: bool = False, trace: list | None = None):
    """Run assembly (s_endpgm appended) as one timed launch; returns the core's emu_model results.
    wg_id: the workgroup id x follows the user SGPRs. trace: a list that receives the first workgroup's
    trace."""
    prog = decode.decode(tc.code(lines), 0, "timed")
    mod = launch.core()
    ffi, lib = mod.ffi, mod.lib
    machine = machine or Machine(1 << 24)
    L, keep = launch.new_launch(ffi, prog, machine.memory)  # noqa: F841
    L.grid = list(grid)
    L.block = [threads, 1, 1]
    L.lds_bytes = lds
    L.max_insns = 100_000_000
    L.wg_id_enable = int(wg_id)
    L.user_sgpr_count = len(user_sgprs)
    for i, v in enumerate(user_sgprs):
        L.user_sgprs[i] = v
    P = timing.fill(ffi, model, slots, sample)
    buf = timing.attach_trace(ffi, P, 1, 4096) if trace is not None else None
    L.model = P
    rc = lib.emu_run(L)
    assert rc == 0, ffi.string(L.err_msg).decode()
    if trace is not None:
        trace.append(buf[:P.trace_n])
    return P


def test_dependent_mfma_chain_runs_back_to_back(tc):
    """An accumulation chain issues one MFMA per 16 cycles: the pipe's 4 passes, no write-back wait."""
    def chain(n):
        return [f"{MFMA} v[0:3], v[4:7], v[8:11], v[0:3]"] * n
    a, b = run(tc, chain(8)), run(tc, chain(24))
    assert b.cycles - a.cycles == 16 * 16


def test_trace_shows_each_issue_and_when_its_result_is_ready(tc):
    """The same chain, traced: one MFMA every 16 cycles, each ready 16 cycles (the pipe) plus the
    write-back after it issued, and each after waiting on the one before."""
    got = []
    run(tc, [f"{MFMA} v[0:3], v[4:7], v[8:11], v[0:3]"] * 8, trace=got)
    (trace,) = got
    mfma = trace[trace["op"] == isa.MNEMONICS.index(MFMA)]
    assert len(trace) == 9 and len(mfma) == 8 and (trace["wg"] == 0).all()
    assert (np.diff(mfma["cycle"]) == 16).all()
    assert (mfma["done"] - mfma["cycle"] == 16 + MODEL.mfma_writeback).all()
    assert (mfma["waited"][1:] == 16).all()
    assert {timing.STALL_REASONS[r] for r in mfma["reason"][1:]} <= {"dependency", "unit"}
    lines = timing.format_trace(trace)
    assert len(lines) == 10 and MFMA in lines[1] and "s_endpgm" in lines[-1]


def test_independent_mfmas_share_the_pipe_of_their_simd(tc):
    body = [f"{MFMA} v[{16 * (i % 4)}:{16 * (i % 4) + 3}], v[64:67], v[68:71], 0" for i in range(32)]
    one = run(tc, body, threads=64)
    # waves 0 and 4 of 5 share SIMD 0: their 64 MFMAs queue on one pipe
    two_same = run(tc, body, threads=5 * 64)
    # waves 0 and 1 sit on SIMDs 0 and 1: their pipes run in parallel
    two_apart = run(tc, body, threads=2 * 64)
    assert abs(two_apart.cycles - one.cycles) <= 4
    assert two_same.cycles - one.cycles == pytest.approx(32 * 16, abs=8)
    assert two_same.xdl_busy == 5 * 32 * 16


def test_lds_reads_with_an_8_way_bank_conflict(tc):
    """ds_read_b32 at lane * 32 bytes: 64 lanes fall into 8 of the 64 banks, 8 dwords each, so every read
    holds the LDS for 8 cycles instead of 1; back to back, the LDS and not the issue rate bounds them."""
    def reads(n, stride):
        return [f"v_lshlrev_b32 v1, {stride.bit_length() - 1}, v0"] + \
               [f"ds_read_b32 v{2 + i % 8}, v1" for i in range(n)] + ["s_waitcnt lgkmcnt(0)"]
    a, b = run(tc, reads(8, 32), lds=4096), run(tc, reads(24, 32), lds=4096)
    assert b.lds_conflict_cycles == 24 * 7
    assert b.cycles - a.cycles == 16 * 8
    free_a, free_b = run(tc, reads(8, 4), lds=4096), run(tc, reads(24, 4), lds=4096)
    assert free_b.lds_conflict_cycles == 0
    assert free_b.cycles - free_a.cycles == 16 * 4  # one issue per SIMD round: the LDS waits on issue


def test_barrier_waits_for_the_slowest_wave(tc):
    """Wave 0 runs extra dependent transcendental ops before the barrier; the others wait for it."""
    def kernel(n):
        return ["v_readfirstlane_b32 s0, v0", "s_cmp_eq_u32 s0, 0", "s_cbranch_scc0 .Lwait"] + \
               ["v_exp_f32 v1, v1"] * n + [".Lwait:", "s_barrier"]
    a, b = run(tc, kernel(4), threads=4 * 64), run(tc, kernel(12), threads=4 * 64)
    assert b.cycles - a.cycles == 8 * MODEL.trans_latency
    assert b.stall_barrier > a.stall_barrier


def test_wait_on_a_load_from_hbm(tc):
    """A global load of 4 bytes per lane (two 128-byte lines) misses every cache: s_waitcnt waits for the
    HBM's latency plus the lines' transfer through the memory levels."""
    machine = Machine(1 << 24)
    addr = machine.memory.alloc(4096)
    pre = ["v_lshlrev_b32 v2, 2, v0", "v_mov_b32 v3, 0", f"s_mov_b32 s2, {addr & 0xFFFFFFFF}",
           f"s_mov_b32 s3, {addr >> 32}"]
    load = ["global_load_dword v1, v2, s[2:3]", "s_waitcnt vmcnt(0)"]
    base = run(tc, pre, machine=machine)
    loaded = run(tc, pre + load, machine=machine)
    extra = loaded.cycles - base.cycles
    assert MODEL.hbm_latency <= extra <= MODEL.hbm_latency + 40
    assert loaded.stall_waitcnt >= MODEL.hbm_latency - 8
    assert loaded.bytes_hbm == 256


def _late_reader(tc, others: str):
    """Every CU but the first moves 64 KiB of its own lines (`others`: "load", "store" or "none") at once;
    the first CU sleeps until that traffic is queued, then makes 20 dependent one-line loads from HBM.
    The launch ends with the reader, so its cycles are the reader's."""
    machine = Machine(1 << 25)
    buf = machine.memory.alloc(17 << 20)
    op = {"load": "global_load_dwordx4 v[4:7], v2, s[6:7]", "store": "global_store_dwordx4 v2, v[4:7], s[6:7]"}
    body = [f"s_mov_b32 s6, {buf & 0xFFFFFFFF}", f"s_mov_b32 s7, {buf >> 32}", "v_lshlrev_b32 v2, 4, v0",
            "s_lshl_b32 s4, s2, 16", "v_add_u32 v2, s4, v2", "s_cmp_eq_u32 s2, 0", "s_cbranch_scc1 .Lreader"]
    if others != "none":
        body += [op[others], "v_add_u32 v2, 1024, v2"] * 64 + ["s_waitcnt vmcnt(0)"]
    body += ["s_branch .Lend", ".Lreader:", "s_sleep 16", "v_lshlrev_b32 v3, 2, v0",
             f"v_add_u32 v3, {16 << 20}, v3"]
    body += ["global_load_dword v1, v3, s[6:7]", "s_waitcnt vmcnt(0)", "v_add_u32 v3, 256, v3"] * 20
    body += [".Lend:"]
    return run(tc, body, grid=(MODEL.cus, 1, 1), machine=machine, user_sgprs=(0, 0), wg_id=True)


def test_out_of_range_buffer_lanes_move_no_data(tc):
    """A buffer load whose upper 32 lanes lie past NUM_RECORDS reads zeros there without touching memory: only
    the in-range lanes' line comes from HBM (both lines were charged before)."""
    machine = Machine(1 << 24)
    addr = machine.memory.alloc(4096)
    pre = ["v_lshlrev_b32 v2, 2, v0", f"s_mov_b32 s4, {addr & 0xFFFFFFFF}", f"s_mov_b32 s5, {addr >> 32}",
           "s_mov_b32 s6, 128", "s_mov_b32 s7, 0x20000"]
    for records, lines in ((128, 1), (256, 2), (0, 0)):
        p = run(tc, pre[:3] + [f"s_mov_b32 s6, {records}", pre[4], "buffer_load_dword v1, v2, s[4:7], 0 offen",
                               "s_waitcnt vmcnt(0)"], machine=machine)
        assert p.bytes_hbm == 128 * lines, (records, p.bytes_hbm)


def test_cache_write_back_and_invalidate_wait_like_data_less_memory_ops(tc):
    """buffer_wbl2 is acknowledged as a store is, buffer_inv after an L1 round trip (the model's guesses,
    docs/perf-model.md); neither moves data."""
    base = run(tc, ["s_nop 0"])
    for op, latency in (("buffer_wbl2 sc1", MODEL.store_latency), ("buffer_inv sc1", MODEL.l1_latency)):
        p = run(tc, [op, "s_waitcnt vmcnt(0)"])
        assert latency <= p.cycles - base.cycles <= latency + 40, (op, p.cycles - base.cycles)
        assert p.bytes_hbm == 0 and p.bytes_stored == 0


def test_a_late_cu_is_not_queued_behind_the_others_backlog(tc):
    """255 CUs queue 16 MB of HBM reads (3,500 cycles of HBM time) just before the reader starts. The
    memory arbiters take the requesting CUs in turn, so each of the reader's loads waits for its share of
    the bandwidth, a few cycles, not for the whole backlog ahead of it."""
    alone, busy = _late_reader(tc, "none"), _late_reader(tc, "load")
    assert busy.bytes_hbm >= 255 << 16
    assert busy.cycles - alone.cycles <= 200


def test_stores_drain_to_hbm_behind_later_reads(tc):
    """The same with 16 MB of stores, which fit the L2s' dirty lines: they are written back in time the
    reads leave HBM idle, so they do not delay the reader's loads."""
    alone, stored = _late_reader(tc, "none"), _late_reader(tc, "store")
    assert stored.bytes_stored == 255 << 16
    assert stored.cycles - alone.cycles <= 200


def test_stores_beyond_the_write_buffer_take_hbm_time(tc):
    """64 MiB of stores overflow the 32 MiB of dirty lines the L2s hold: the overflow is written at the
    HBM's bandwidth before the kernel can end."""
    machine = Machine(1 << 27)
    buf = machine.memory.alloc(64 << 20)
    body = [f"s_mov_b32 s6, {buf & 0xFFFFFFFF}", f"s_mov_b32 s7, {buf >> 32}", "v_lshlrev_b32 v2, 4, v0",
            "s_lshl_b32 s4, s2, 18", "v_add_u32 v2, s4, v2"]
    body += ["global_store_dwordx4 v2, v[4:7], s[6:7]", "v_add_u32 v2, 1024, v2"] * 256 + ["s_waitcnt vmcnt(0)"]
    P = run(tc, body, grid=(MODEL.cus, 1, 1), machine=machine, user_sgprs=(0, 0), wg_id=True)
    hbm_per_cycle = MODEL.hbm_bytes_per_second / MODEL.clock_hz
    assert P.cycles >= (P.bytes_stored - MODEL.xcds * MODEL.l2_bytes) / hbm_per_cycle


def test_streaming_reads_from_every_cu_get_the_hbm_bandwidth_and_no_more(tc):
    """Every CU streams 256 KiB of its own lines (64 MiB, about 14,000 cycles of HBM time), with 16 to 32
    KiB in flight: 8 MiB chip-wide, ten times what the HBM moves in its latency, so it is never idle. However
    the arbiters share it among the CUs, together they get its bandwidth and no more (before the servers
    capped their total rate, they got 9.5% more)."""
    machine = Machine(1 << 27)
    buf = machine.memory.alloc(64 << 20)
    body = [f"s_mov_b32 s6, {buf & 0xFFFFFFFF}", f"s_mov_b32 s7, {buf >> 32}", "v_lshlrev_b32 v2, 4, v0",
            "s_lshl_b32 s4, s2, 18", "v_add_u32 v2, s4, v2"]
    for i in range(256):
        body += ["global_load_dwordx4 v[4:7], v2, s[6:7]", "v_add_u32 v2, 1024, v2"]
        if i % 16 == 15:
            body.append("s_waitcnt vmcnt(16)")
    body.append("s_waitcnt vmcnt(0)")
    P = run(tc, body, grid=(MODEL.cus, 1, 1), machine=machine, user_sgprs=(0, 0), wg_id=True)
    hbm_per_cycle = MODEL.hbm_bytes_per_second / MODEL.clock_hz
    assert P.bytes_hbm == 64 << 20
    rate = P.bytes_hbm / (P.cycles - MODEL.hbm_latency) / hbm_per_cycle
    assert 0.9 <= rate <= 1.0, rate


def test_setprio_lets_one_wave_s_mfmas_run_first(tc):
    """Waves 0 and 4 share SIMD 0 and each issue 16 MFMAs; wave 4 then runs a 16-op transcendental chain.
    If wave 4 raises its priority, its MFMAs go first and its chain overlaps wave 0's MFMAs (16 + 16 MFMA
    slots in all); by age alone, wave 0 goes first and wave 4's chain comes after both (16 + 16 + chain)."""
    def kernel(prio):
        mfmas = [f"{MFMA} v[{16 * (i % 4)}:{16 * (i % 4) + 3}], v[64:67], v[68:71], 0" for i in range(16)]
        return ["v_readfirstlane_b32 s0, v0", "s_cmp_eq_u32 s0, 256", "s_cbranch_scc1 .Lfour",
                "s_cmp_eq_u32 s0, 0", "s_cbranch_scc0 .Lend"] + mfmas + ["s_branch .Lend", ".Lfour:",
                f"s_setprio {prio}"] + mfmas + ["v_exp_f32 v100, v100"] * 16 + [".Lend:"]
    low, high = run(tc, kernel(0), threads=5 * 64), run(tc, kernel(3), threads=5 * 64)
    chain = 16 * MODEL.trans_latency
    # wave 0 reaches its MFMAs a few cycles before wave 4 has raised its priority: up to 3 of them go first
    assert chain - 3 * 16 <= low.cycles - high.cycles <= chain + 16


def test_sampling_predicts_within_two_percent_of_the_full_run(tc):
    """Launches of 4 rounds of workgroups on every CU, and of 4 rounds and a partial one: the sampled
    prediction (one XCD; the first, second and last rounds) stays within 2% of running every workgroup.
    (Kernels whose rounds are short bursts of memory traffic sample worse: up to 4% in the notes.)"""
    machine = Machine(1 << 26)
    buf = machine.memory.alloc(1 << 23)
    body = ["s_lshl_b32 s4, s2, 10", "v_lshlrev_b32 v2, 4, v0", "v_add_u32 v2, s4, v2",
            f"s_mov_b32 s6, {buf & 0xFFFFFFFF}", f"s_mov_b32 s7, {buf >> 32}",
            "global_load_dwordx4 v[4:7], v2, s[6:7]", "s_waitcnt vmcnt(0)"] + \
           [f"{MFMA} v[8:11], v[12:15], v[16:19], v[8:11]"] * 96 + ["global_store_dwordx4 v2, v[8:11], s[6:7]"]
    for groups in (4096, 4096 + 300):  # s2 = workgroup id x (wg_id_enable)
        full = run(tc, body, grid=(groups, 1, 1), slots=4, machine=machine, user_sgprs=(0, 0), wg_id=True)
        sampled = run(tc, body, grid=(groups, 1, 1), slots=4, machine=machine, user_sgprs=(0, 0), wg_id=True,
                      sample=True)
        assert sampled.wg_run < full.wg_run == groups
        assert sampled.cycles == pytest.approx(full.cycles, rel=0.02)


def test_same_launch_same_time_and_more_k_never_faster():
    import hkrt
    from hkrt.emu.hip import runtime as emulated
    machine = emulated.get().devices[hkrt.get_device("emu").index].machine
    old = machine.model
    machine.model = MODEL
    try:
        rng = np.random.default_rng()
        times = []
        for k in (64, 128, 256, 512):
            a = rng.standard_normal((256, k), np.float32)
            b = rng.standard_normal((k, 256), np.float32)
            hkrt.gemm(a, b, strategy="pingpong")
            first = hkrt.emu.last_report()
            hkrt.gemm(a, b, strategy="pingpong")
            assert hkrt.emu.last_report().cycles == first.cycles
            times.append(first.seconds)
        assert times == sorted(times) and times[0] < times[-1]
    finally:
        machine.model = old


def test_traced_launch_through_the_runtime():
    """A machine tracing one workgroup: a one-workgroup GEMM's report holds every instruction its waves
    issued; tracing off leaves no trace."""
    import hkrt
    from hkrt.emu.hip import runtime as emulated
    machine = emulated.get().devices[hkrt.get_device("emu").index].machine
    old = machine.model, machine.trace_workgroups
    machine.model, machine.trace_workgroups = MODEL, 1
    try:
        a = np.random.default_rng().standard_normal((256, 256), np.float32)
        before = machine.stats_total
        hkrt.gemm(a, a, strategy="pingpong")
        report = hkrt.emu.last_report()
        assert report.workgroups == 1 and report.trace_dropped == 0
        assert len(report.trace) == machine.stats_total - before
        assert (report.trace["wg"] == 0).all() and (np.diff(report.trace["cycle"]) >= 0).all()
        machine.trace_workgroups = 0
        hkrt.gemm(a, a, strategy="pingpong")
        assert hkrt.emu.last_report().trace is None
    finally:
        machine.model, machine.trace_workgroups = old


def test_bad_trace_settings_are_refused(monkeypatch):
    from hkrt import config
    monkeypatch.setenv("HKRT_EMU_TRACE", "all")
    config.reload()
    try:
        with pytest.raises(ValueError, match="HKRT_EMU_TRACE='all' is not valid: it takes a number of workgroups"):
            Machine(1 << 20)
    finally:
        monkeypatch.undo()
        config.reload()
    from hkrt.emu.hip import runtime as emulated
    with pytest.raises(ValueError, match="trace is a number of workgroups"):
        emulated.configure(trace=-1)


def test_every_opcode_has_a_timing_class_and_matrix_ops_without_cycles_are_refused():
    """A matrix op the model has no pass count for must not be timed as a VALU op: it is "untimed", which
    the model refuses (naming the instruction) rather than give a silent number."""
    for name in isa.MNEMONICS:
        cls, cycles = isa.timing_class(name)
        assert cls in isa.TIMING_CLASSES
        if name in {m[0] for m in isa.MAI.values()}:
            assert (cls, cycles > 0) == ("mfma", True) if name in isa.MFMA_CYCLES else cls == "untimed"
        if name in isa.SMEM.values():  # cache maintenance has no cost the model knows
            assert cls == ("untimed" if name in isa.UNTIMED_NOPS else "smem"), name
        if name in isa.UNTIMED_NOPS:
            assert cls == "untimed", name


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="mi350x, mi355x"):
        timing.get_model("mi300x")
    assert dataclasses.replace(MODEL, clock_hz=1e9).clock_hz == 1e9


def test_hip_events_read_modelled_time_through_plain_hip_python(manifest):
    """A hip-python program with HKRT_EMU_MODEL set: the elapsed time between two events around a launch is
    the launch's modelled duration (not the seconds its emulation took), and sleeping between events adds
    nothing."""
    from tests.test_emu_hip import run_python
    from hkrt import manifest as mf
    entry = manifest["kernels"]["repack_bf16"]
    out = run_python(f"""
        import ctypes, time
        import hkrt.emu
        from hip import hip
        def ok(r):
            r = r if isinstance(r, tuple) else (r,)
            assert r[0] == hip.hipError_t.hipSuccess, r
            return r[1] if len(r) == 2 else r[1:]
        data = open({str(mf.arch_dir() / entry["code_object"])!r}, "rb").read()
        mod = ok(hip.hipModuleLoadData(data))
        f = ok(hip.hipModuleGetFunction(mod, {entry["symbol"].encode()!r}))
        buf = ok(hip.hipMalloc(1 << 20))
        args = bytearray({entry["kernarg_size"]})
        start, stop = ok(hip.hipEventCreate()), ok(hip.hipEventCreate())
        ok(hip.hipEventRecord(start, None))
        time.sleep(0.2)
        ok(hip.hipEventRecord(stop, None))
        idle = ok(hip.hipEventElapsedTime(start, stop))
        ok(hip.hipEventRecord(start, None))
        buf_args = (ctypes.c_char * len(args)).from_buffer(args)
        size = ctypes.c_size_t(len(args))
        extra = (ctypes.c_void_p * 5)(1, ctypes.addressof(buf_args), 2, ctypes.addressof(size), 3)
        ok(hip.hipModuleLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, None, None, extra))
        ok(hip.hipEventRecord(stop, None))
        ok(hip.hipEventSynchronize(stop))
        busy = ok(hip.hipEventElapsedTime(start, stop))
        r = hkrt.emu.last_report()
        print(idle, busy, r.seconds * 1e3, r.model)
    """, HKRT_EMULATE="1", HKRT_EMU_MODEL="mi355x", HKRT_EMU_STRICT="0")
    idle, busy, modelled, name = out.split()
    assert float(idle) == 0.0 and name == "mi355x"
    assert float(busy) == pytest.approx(float(modelled), rel=1e-6) and 0.004 < float(busy) < 1.0


def test_cli_bench_predicts_and_names_unknown_models():
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "hkrt", "bench", "--model", "mi355x", "--format", "json",
                          "256x256x256", "--strategy", "pingpong"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    import json
    (row,) = json.loads(res.stdout)
    assert row["strategy"] == "pingpong" and 0 < row["tflops"] < row["peak_tflops"]
    assert 0 < row["matrix_busy"] <= 1 and row["kernel"] == "gemm_pingpong"
    bad = subprocess.run([sys.executable, "-m", "hkrt", "bench", "--model", "h100"], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "known models: mi350x, mi355x" in bad.stderr



def test_a_split_k_launch_held_to_two_blocks_per_cu_runs_two_and_computes_the_product():
    """The runtime caps gemm_small's residency with dynamic LDS (hkrt.strategy.resident_blocks): 1 x 128256 x 64
    (1002 blocks, 4 on most CUs) runs 2 per CU, where its LDS alone would allow 3, and the product is right."""
    import hkrt
    from hkrt.emu.hip import runtime as emulated
    from kernel_harness import check
    machine = emulated.get().devices[hkrt.get_device("emu").index].machine
    old = machine.model, machine.sample
    machine.model, machine.sample = MODEL, False  # every block, so the result is whole
    try:
        rng = np.random.default_rng()
        a, b = rng.standard_normal((1, 64), np.float32), rng.standard_normal((64, 128256), np.float32)
        got = hkrt.gemm(a, b)
        report = hkrt.emu.last_report()
        assert report.kernel == "gemm_small" and report.workgroups == 1002 and report.workgroups_per_cu == 2
    finally:
        machine.model, machine.sample = old
    check(got, a, b)
