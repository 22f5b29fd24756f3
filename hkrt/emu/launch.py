"""Run one kernel launch on the execution core: the loader's half of the emulator.

Builds what the hardware and the HIP runtime prepare before the first instruction
(docs/facts.md §5.3): the code object mapped into device memory, the kernarg segment,
the user SGPRs in their fixed order, the LDS size; then calls core.c's emu_run and
turns a failure into an EmulationError naming kernel, instruction, PC and address.
"""
from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass

from .. import codeobject, config
from . import decode, timing
from .chip import LDS_BYTES
from .errors import BarrierDeadlock, EmulationError, HazardError, LaunchLimit, MemoryFault, UnimplementedInstruction

# 64-bit apertures through which flat instructions reach LDS and the private segment (values are ours;
# hardware's are not fixed).
SHARED_APERTURE = 0x0001_0000_0000_0000
PRIVATE_APERTURE = 0x0002_0000_0000_0000
KERNARG_CHUNK = 256
_ERRORS = {1: MemoryFault, 2: HazardError, 3: UnimplementedInstruction, 4: BarrierDeadlock, 5: LaunchLimit}


@dataclass
class LaunchStats:
    wave_instructions: int
    workgroups: int
    seconds: float                       # host time the emulation took
    report: "timing.LaunchReport | None" = None  # the timing model's, when a model is on


MFMA_MODEL_CODES = {"exact": 0, "cdna3": 1}   # core.c's MFMA_EXACT, MFMA_CDNA3


def run_core(lib, L) -> int:
    """lib.emu_run(L). On the main thread it runs on a worker (the call releases the GIL) so that Ctrl-C
    reaches Python within a fraction of a second; the launch is then stopped and KeyboardInterrupt raised."""
    if threading.current_thread() is not threading.main_thread():
        return lib.emu_run(L)
    result = []
    worker = threading.Thread(target=lambda: result.append(lib.emu_run(L)), name="hkrt-emu-launch", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        L.stop = 1
        while worker.is_alive():  # the core checks every 4096 instructions and every workgroup
            worker.join(0.05)
        raise
    return result[0]

_core = None
_core_lock = threading.Lock()


def core():
    """The compiled execution core, loaded from the native build cache (built there on first use)."""
    global _core
    with _core_lock:
        if _core is None:
            from .build_core import load
            _core = load()
    return _core


def new_launch(ffi, prog: decode.Program, memory, image_base: int = 0):
    """An emu_launch for `prog` over the device allocations in `memory`, with the program, entry point and
    region table filled in; returns (launch, cdata that must stay alive while it runs)."""
    blocks = memory.blocks()
    regions = ffi.new("emu_region[]", max(len(blocks), 1))
    keep = [regions]
    for i, (base, buf) in enumerate(blocks):
        host = ffi.from_buffer(buf)
        keep.append(host)
        regions[i].base, regions[i].size, regions[i].host = base, len(buf), ffi.cast("uint8_t *", host)
    L = ffi.new("emu_launch *")
    L.prog = ffi.cast("const insn_t *", ffi.from_buffer(prog.insns))
    L.nprog = len(prog.insns)
    L.index = ffi.cast("const int32_t *", ffi.from_buffer(prog.index))
    L.code_base = prog.base
    L.image_base = image_base
    L.code_words = len(prog.index)
    L.entry = int(prog.index[0])
    L.regions = regions
    L.nregions = len(blocks)
    L.shared_base = SHARED_APERTURE
    L.private_base = PRIVATE_APERTURE
    L.mode = MODE_DEFAULT
    return L, keep


def program(module, kernel: codeobject.Kernel) -> decode.Program:
    prog = module.decoded.get(kernel.name)
    if prog is None:
        prog = decode.decode(module.code.read(kernel.entry, kernel.code_size), kernel.entry, kernel.name)
        module.decoded[kernel.name] = prog
    return prog


def map_image(machine, module) -> int:
    """Place the code object's loadable segments in device memory once (s_getpc-relative data lives there)."""
    if module.image_base is None:
        end = max(base + len(data) for base, data in module.code.segments)
        base = machine.memory.alloc(end)
        for vaddr, data in module.code.segments:
            machine.memory.view(base + vaddr, len(data))[:] = data
        module.image_base = base
    return module.image_base


def _dispatch_packet(grid, block, kernel: codeobject.Kernel, lds: int, kernarg_addr: int) -> bytes:
    """An AQL kernel dispatch packet, for kernels that ask for the dispatch pointer."""
    dims = 3 if grid[2] > 1 or block[2] > 1 else 2 if grid[1] > 1 or block[1] > 1 else 1
    return struct.pack("<HHHHHHIIIIIQQQ", 2 | (1 << 8), dims, block[0], block[1], block[2], 0,
                       grid[0] * block[0], grid[1] * block[1], grid[2] * block[2],
                       kernel.private_segment_fixed_size, lds, 0, kernarg_addr, 0)


# The floating-point mode bits the execution core implements besides the rounding and denormal fields, which
# it honours (compute_pgm_rsrc1, docs/facts.md §5.2, §13.4): IEEE mode (signalling NaNs quieted, IEEE min/max),
# DX10 clamp (a clamped NaN is 0) and fp16 overflow to infinity. A kernel asking for others is refused rather
# than run with the wrong NaN or clamp handling.
EMULATED_FLOAT_MODE = {"dx10_clamp": 1, "ieee": 1, "fp16_ovfl": 0}
MODE_DEFAULT = 0x3F0  # MODE with nearest-even rounding, denormals kept, DX10_CLAMP and IEEE set


def check_float_mode(kernel: codeobject.Kernel) -> None:
    mode = kernel.descriptor.float_mode
    wrong = {k: v for k, v in mode.items() if EMULATED_FLOAT_MODE.get(k, v) != v}
    if wrong:
        want = ", ".join(f"{k}={EMULATED_FLOAT_MODE[k]}" for k in wrong)
        raise EmulationError(f"the descriptor asks for floating-point mode {wrong}; the emulator implements only "
                             f"{want} for these (IEEE and DX10 clamp modes on, fp16 overflow to infinity)",
                             kernel=kernel.name)


def initial_mode(kernel: codeobject.Kernel) -> int:
    """The MODE register every wave starts with, from the descriptor's float fields (docs/facts.md §13.4)."""
    m = kernel.descriptor.float_mode
    return (m["fp32_round"] | m["fp16_64_round"] << 2 | m["fp32_denorm"] << 4 | m["fp16_64_denorm"] << 6 |
            m["dx10_clamp"] << 8 | m["ieee"] << 9)


def private_segment_bytes(kernel: codeobject.Kernel) -> int:
    """Scratch bytes per work-item: the descriptor's private_segment_fixed_size, rounded up to dwords as the
    packet processor does (docs/facts.md §9.5)."""
    if kernel.uses_dynamic_stack:
        raise EmulationError("the kernel uses a dynamically sized stack, whose size the emulator cannot know",
                             kernel=kernel.name)
    return -(-kernel.private_segment_fixed_size // 4) * 4


def _user_sgprs(machine, kernel, grid, block, lds, kernarg_addr, kernarg: bytes, temps: list[int]) -> list[int]:
    """User SGPR values in the order the hardware fills them (docs/facts.md §5.3)."""
    kd = kernel.descriptor
    en = kd.user_sgpr_enables
    out: list[int] = []

    def pair(addr: int) -> None:
        out.extend([addr & 0xFFFFFFFF, addr >> 32])

    for name in ("private_segment_buffer", "flat_scratch_init"):
        if en[name]:  # gfx950 has architected flat scratch: FLAT_SCRATCH comes set up (docs/facts.md §9.5)
            raise EmulationError(f"the descriptor enables the {name} user SGPRs, which gfx950 does not support "
                                 "(architected flat scratch: they must be 0)", kernel=kernel.name)
    if en["dispatch_ptr"]:
        pkt = _dispatch_packet(grid, block, kernel, lds, kernarg_addr)
        addr = machine.memory.alloc(len(pkt))
        temps.append(addr)
        machine.memory.view(addr, len(pkt))[:] = pkt
        pair(addr)
    if en["queue_ptr"]:
        addr = machine.memory.alloc(256)
        temps.append(addr)
        pair(addr)
    if en["kernarg_segment_ptr"]:
        pair(kernarg_addr)
    if en["dispatch_id"]:
        pair(0)
    n, off = kd.kernarg_preload_length, 4 * kd.kernarg_preload_offset
    if n:
        padded = kernarg + bytes(max(0, off + 4 * n - len(kernarg)))
        out.extend(struct.unpack_from(f"<{n}I", padded, off))
    if en["private_segment_size"]:
        out.append(private_segment_bytes(kernel))
    return out


def run_kernel(machine, module, kernel: codeobject.Kernel, grid, block, dynamic_lds: int,
               kernarg: bytes) -> LaunchStats:
    """Run one launch on `machine` (a machine.Machine: its memory, options and timing model)."""
    mod = core()
    ffi, lib = mod.ffi, mod.lib
    check_float_mode(kernel)
    lane_scratch = private_segment_bytes(kernel)
    if lane_scratch and machine.model is not None:
        raise EmulationError("the timing model does not model scratch (private segment) traffic",
                             kernel=kernel.name)
    lds = kernel.group_segment_fixed_size + dynamic_lds
    if lds > LDS_BYTES:
        raise EmulationError(f"the launch needs {lds} bytes of LDS, more than {LDS_BYTES}", kernel=kernel.name)
    prog = program(module, kernel)
    image_base = map_image(machine, module)
    temps: list[int] = []
    start = time.perf_counter()
    try:
        # HIP hands out kernarg segments in aligned chunks, and compiled code may fetch its arguments
        # with wide scalar loads that run past the last one; pad as the runtime does.
        karg = machine.memory.alloc(-(-max(len(kernarg), 1) // KERNARG_CHUNK) * KERNARG_CHUNK)
        temps.append(karg)
        machine.memory.view(karg, len(kernarg))[:] = kernarg
        sgprs = _user_sgprs(machine, kernel, grid, block, lds, karg, kernarg, temps)
        # one workgroup's waves run at a time: each gets 64 lanes' private segments (docs/facts.md §9.5)
        waves = -(-(block[0] * block[1] * block[2]) // 64)
        scratch = machine.memory.alloc(waves * 64 * lane_scratch) if lane_scratch else 0
        if scratch:
            temps.append(scratch)
        kd = kernel.descriptor
        if len(sgprs) != kd.user_sgpr_count:
            raise EmulationError(f"the descriptor asks for {kd.user_sgpr_count} user SGPRs but its enables fill "
                                 f"{len(sgprs)}", kernel=kernel.name)

        L, keep = new_launch(ffi, prog, machine.memory, image_base)  # noqa: F841 (keep holds the buffers)
        L.grid = list(grid)
        L.block = list(block)
        L.lds_bytes = (lds + 3) // 4 * 4
        L.scratch_base, L.scratch_lane_bytes = scratch, lane_scratch
        L.mode = initial_mode(kernel)
        L.user_sgpr_count = kd.user_sgpr_count
        L.wg_id_enable = sum(1 << d for d, on in enumerate(kd.enable_workgroup_id) if on)
        L.wg_info = int(kd.enable_workgroup_info)
        L.tid_dims = kd.workitem_id_dims
        for i, v in enumerate(sgprs):
            L.user_sgprs[i] = v
        L.strict = int(machine.strict)
        L.mfma_model = MFMA_MODEL_CODES[machine.mfma]
        L.seeded = int(machine.seed is not None)
        L.seed = (machine.seed or 0) & 0xFFFFFFFFFFFFFFFF
        L.max_insns = config.get("HKRT_EMU_MAX_INSTRUCTIONS") or (1 << 63)
        L.max_seconds = config.get("HKRT_EMU_MAX_SECONDS")
        model = machine.model
        if model is not None:
            slots = timing.workgroups_per_cu(kernel, block, dynamic_lds)
            P = timing.fill(ffi, model, slots, machine.sample)
            trace = timing.attach_trace(ffi, P, machine.trace_workgroups)
            L.model = P
        rc = run_core(lib, L)
        if rc:
            raise _error(L, ffi, prog, kernel)
        report = timing.report(P, model, kernel.name, grid, block, slots, trace) if model is not None else None
        return LaunchStats(wave_instructions=int(L.insn_count), workgroups=grid[0] * grid[1] * grid[2],
                           seconds=time.perf_counter() - start, report=report)
    finally:
        for addr in temps:
            machine.memory.free(addr)


def _error(L, ffi, prog: decode.Program, kernel) -> EmulationError:
    cls = _ERRORS.get(L.err, EmulationError)
    i = L.err_insn
    pc = int(prog.insns[i]["pc"]) if 0 <= i < len(prog.insns) else None
    text = prog.text[i] if 0 <= i < len(prog.insns) else None
    msg = ffi.string(L.err_msg).decode(errors="replace")
    where = f"; workgroup ({L.err_wg[0]}, {L.err_wg[1]}, {L.err_wg[2]}), wave {L.err_wave}"
    return cls(msg + where, kernel=kernel.name, pc=pc, instruction=text,
               address=int(L.err_addr) if L.err_addr else None)
