"""One emulated gfx950 device: its memory, its loaded code objects, and kernel launches.

This is the contract between the instruction-level emulator (decoder + execution core)
and the emulated HIP runtime (hkrt/emu/hip/): the HIP layer owns devices, streams,
events and error codes and calls only what is defined here.
"""
from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .. import codeobject, config
from . import timing
from .chip import ARCH
from .errors import EmulationError, MemoryFault  # noqa: F401  (re-exported for the HIP layer)
from .launch import LaunchStats, run_kernel

# Device addresses sit above x86-64's 47-bit user space, so no host pointer can alias one, and below
# 2^48, so that they fit a buffer descriptor's 48-bit base. Null and small integers never alias either.
HEAP_BASE = 0x8000_0000_0000
ALIGN = 256
# Unmapped bytes after each allocation: an overrun shorter than this faults instead of reaching the next
# allocation (addresses are plentiful: the devices share 2^47 bytes of address space).
GUARD = 1 << 20
ADDRESS_SPACE = 1 << 47  # [HEAP_BASE, HEAP_BASE + ADDRESS_SPACE) stays below 2^48
QUARANTINE = 1 << 36     # address space freed after a range before that range is reused (64 GiB)
POISON = 0x7FC17FC1  # a NaN as fp32 and as two bf16 halves: what the core also fills undelivered data with


def default_memory_bytes() -> int:
    return config.get("HKRT_EMU_MEMORY")


def _span(size: int) -> int:
    """The address space an allocation of `size` bytes holds: aligned, then its guard gap."""
    return (size + ALIGN - 1) // ALIGN * ALIGN + GUARD


class DeviceMemory:
    """Device allocations held in host memory at device-like addresses.

    Each allocation is followed by an unmapped guard gap. A freed range is quarantined (not reused) until
    `quarantine` bytes of address space freed after it, so a stale pointer to a recent allocation faults
    instead of silently reaching a newer one; then its addresses go back to be reused, so a long-running
    process never runs out of address space.
    """

    def __init__(self, capacity: int, base: int = HEAP_BASE, limit: int = HEAP_BASE + ADDRESS_SPACE,
                 poison: bool = False, quarantine: int | None = None):
        self.capacity = capacity
        self.poison = poison
        self.used = 0
        self._next = base
        self._limit = limit
        self._bases: list[int] = []            # sorted
        self._blocks: dict[int, bytearray] = {}
        self._quarantined: deque[tuple[int, int]] = deque()  # freed (base, span), oldest first
        self._quarantined_bytes = 0
        self._quarantine = quarantine if quarantine is not None else min(QUARANTINE, (limit - base) // 8)
        self._reusable: list[tuple[int, int]] = []  # (start, length) of free address ranges, sorted, merged
        self._lock = threading.Lock()

    def alloc(self, nbytes: int) -> int:
        if nbytes < 0:
            raise ValueError(f"negative allocation size {nbytes}")
        size = max(nbytes, 1)
        with self._lock:
            if self.used + size > self.capacity:
                raise MemoryError(f"out of device memory: {nbytes} bytes requested, "
                                  f"{self.capacity - self.used} of {self.capacity} free")
            span = _span(size)
            base = self._take_range(span)
            if base is None:
                base = self._next
                if base + span > self._limit:
                    raise MemoryError(f"out of device address space: {nbytes} bytes requested, "
                                      f"{self._limit - base} never used and {self._quarantined_bytes} freed "
                                      f"recently (quarantined)")
                self._next += span
            block = bytearray(size)
            if self.poison:
                whole = size // 4 * 4
                np.frombuffer(block, np.uint32, whole // 4)[:] = POISON
            self._blocks[base] = block
            bisect.insort(self._bases, base)
            self.used += size
            return base

    def free(self, addr: int) -> None:
        with self._lock:
            block = self._blocks.pop(addr, None)
            if block is None:
                raise ValueError(f"{addr:#x} is not the start of a live device allocation")
            self._bases.remove(addr)
            self.used -= len(block)
            span = _span(len(block))
            self._quarantined.append((addr, span))
            self._quarantined_bytes += span
            while self._quarantined_bytes > self._quarantine:
                old, old_span = self._quarantined.popleft()
                self._quarantined_bytes -= old_span
                self._give_range(old, old_span)

    def _take_range(self, span: int) -> int | None:
        """The start of `span` reusable bytes of address space (first fit), or None."""
        for i, (start, length) in enumerate(self._reusable):
            if length >= span:
                if length == span:
                    del self._reusable[i]
                else:
                    self._reusable[i] = (start + span, length - span)
                return start
        return None

    def _give_range(self, start: int, length: int) -> None:
        i = bisect.bisect_left(self._reusable, (start, 0))
        if i < len(self._reusable) and start + length == self._reusable[i][0]:  # merge with the next
            length += self._reusable.pop(i)[1]
        if i > 0 and self._reusable[i - 1][0] + self._reusable[i - 1][1] == start:  # and the previous
            start, prev = self._reusable.pop(i - 1)
            length += prev
            i -= 1
        self._reusable.insert(i, (start, length))

    def find(self, addr: int) -> tuple[int, int] | None:
        """(base, size) of the allocation holding addr, or None."""
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            base = self._bases[i]
            if addr < base + len(self._blocks[base]):
                return base, len(self._blocks[base])
        return None

    def view(self, addr: int, nbytes: int) -> memoryview:
        """A writable view of [addr, addr + nbytes), which must lie inside one allocation."""
        hit = self.find(addr)
        if hit is None or addr + nbytes > hit[0] + hit[1] or nbytes < 0:
            raise ValueError(f"device range {addr:#x}+{nbytes} is not inside one allocation")
        off = addr - hit[0]
        return memoryview(self._blocks[hit[0]])[off:off + nbytes]

    def blocks(self) -> list[tuple[int, bytearray]]:
        """Every live allocation, sorted by address (for the execution core)."""
        return [(b, self._blocks[b]) for b in self._bases]


@dataclass
class EmuModule:
    """A code object loaded on one device."""
    code: codeobject.CodeObject
    image: bytes = field(repr=False)
    decoded: dict = field(default_factory=dict, repr=False)  # kernel name -> decoded program (filled lazily)
    image_base: int | None = None  # device address of the mapped image, once a kernel has run

    @property
    def kernels(self) -> dict[str, codeobject.Kernel]:
        return self.code.kernels


def hidden_kernarg_values(grid, block, dynamic_lds: int) -> dict[str, tuple[int, int]]:
    """What HIP puts in each code-object-v5 hidden argument: value_kind -> (value, size check)."""
    gx, gy, gz = grid
    bx, by, bz = block
    dims = 3 if gz > 1 else 2 if gy > 1 else 1
    return {
        "hidden_block_count_x": gx, "hidden_block_count_y": gy, "hidden_block_count_z": gz,
        "hidden_group_size_x": bx, "hidden_group_size_y": by, "hidden_group_size_z": bz,
        "hidden_remainder_x": 0, "hidden_remainder_y": 0, "hidden_remainder_z": 0,
        "hidden_global_offset_x": 0, "hidden_global_offset_y": 0, "hidden_global_offset_z": 0,
        "hidden_grid_dims": dims, "hidden_dynamic_lds_size": dynamic_lds,
    }


def build_kernarg(kernel: codeobject.Kernel, explicit: bytes, grid, block, dynamic_lds: int) -> bytes:
    """The full kernarg segment: the caller's explicit-argument bytes plus the hidden arguments."""
    seg = bytearray(max(kernel.kernarg_segment_size, len(explicit)))
    seg[:len(explicit)] = explicit
    values = hidden_kernarg_values(grid, block, dynamic_lds)
    for a in kernel.args:
        if a.hidden and a.value_kind in values:
            seg[a.offset:a.offset + a.size] = values[a.value_kind].to_bytes(a.size, "little")
        # other hidden args (hostcall buffer, heap, queue pointers...) stay 0 = not provided
    return bytes(seg)


class Machine:
    """One emulated gfx950 device.

    strict: hazards (a register read while its load is outstanding, an LDS read of
        undelivered DMA data) raise HazardError instead of yielding poison.
    seed: None runs waves in a fixed order; an integer picks a random, reproducible
        interleaving of the waves of each workgroup.
    model, sample: time every launch on that timing model (HKRT_EMU_MODEL), on a representative subset of
        its workgroups (HKRT_EMU_SAMPLE).
    trace: with a model, record each instruction the first `trace` workgroups of a launch issue
        (HKRT_EMU_TRACE; in LaunchStats.report.trace).
    mfma: how MFMAs accumulate, "exact" or "cdna3" (HKRT_EMU_MFMA; docs/facts.md §1.8).
    """

    def __init__(self, memory_bytes: int | None = None, *, strict: bool | None = None, seed: int | None = None,
                 model: str | timing.ChipModel | None = None, sample: bool | None = None,
                 trace: int | None = None, mfma: str | None = None,
                 address_base: int = HEAP_BASE, address_limit: int = HEAP_BASE + ADDRESS_SPACE):
        if model is None:
            model = config.get("HKRT_EMU_MODEL")
        self.model = timing.get_model(model) if model else None
        self.sample = bool(config.get("HKRT_EMU_SAMPLE") if sample is None else sample)
        if trace is None:
            trace = config.get("HKRT_EMU_TRACE")
        self.trace_workgroups = trace  # the timing model records what the first N workgroups issue
        # Sampled launches leave the skipped workgroups' output untouched: poison fresh memory so that it
        # cannot be mistaken for a result.
        self.memory = DeviceMemory(memory_bytes or default_memory_bytes(), address_base, address_limit,
                                   poison=self.sample)
        if strict is None:
            strict = config.get("HKRT_EMU_STRICT")
        if seed is None:
            seed = config.get("HKRT_EMU_SEED")
        self.strict = strict
        self.seed = seed
        self.mfma = config.get("HKRT_EMU_MFMA") if mfma is None else mfma
        if self.mfma not in config.MFMA_MODELS:
            raise ValueError(f"mfma must be one of {', '.join(config.MFMA_MODELS)}, not {mfma!r}")
        self.stats_total = 0
        self.execute = True  # False: launches do their host-side work but run no kernel (hkrt.emu.skip_kernels)
        self._lock = threading.Lock()

    def load(self, image: bytes) -> EmuModule:
        """Parse a code object for this device; raises codeobject.WrongArchitectureError or CodeObjectError."""
        co = codeobject.parse(bytes(image), source="<hipModuleLoadData image>", expect_arch=ARCH)
        return EmuModule(code=co, image=bytes(image))

    def unload(self, module: EmuModule) -> None:
        """Release the device memory a module's image occupies."""
        if module.image_base is not None:
            self.memory.free(module.image_base)
            module.image_base = None

    def launch(self, module: EmuModule, kernel_name: str, grid, block, dynamic_lds: int,
               explicit_kernarg: bytes) -> LaunchStats:
        """Run a kernel to completion. Raises EmulationError (naming kernel, instruction, PC)."""
        kernel = module.code.kernel(kernel_name)
        kernarg = build_kernarg(kernel, explicit_kernarg, grid, block, dynamic_lds)
        if not self.execute:
            return LaunchStats(wave_instructions=0, workgroups=0, seconds=0.0)
        with self._lock:
            stats = run_kernel(self, module, kernel, tuple(grid), tuple(block), dynamic_lds, kernarg)
            self.stats_total += stats.wave_instructions
        return stats
