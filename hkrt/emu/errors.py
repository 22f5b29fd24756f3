"""Errors the emulator raises. Each names the kernel, the instruction and its PC where it has them."""


class EmulationError(RuntimeError):
    """A kernel did something the emulated hardware cannot do or that would corrupt memory."""

    def __init__(self, message: str, *, kernel: str | None = None, pc: int | None = None,
                 instruction: str | None = None, address: int | None = None):
        where = []
        if kernel:
            where.append(f"kernel {kernel}")
        if pc is not None:
            where.append(f"pc {pc:#x}")
        if instruction:
            where.append(f"`{instruction}`")
        super().__init__(f"{message}" + (f" ({', '.join(where)})" if where else ""))
        self.kernel, self.pc, self.instruction, self.address = kernel, pc, instruction, address


class MemoryFault(EmulationError):
    """An access outside every device allocation (or a misaligned one)."""


class HazardError(EmulationError):
    """Strict mode: data read before the hardware would have delivered it."""


class UnimplementedInstruction(EmulationError):
    """An encoding the emulator does not implement."""


class BarrierDeadlock(EmulationError):
    """Waves of a workgroup can no longer make progress."""


class LaunchLimit(EmulationError):
    """The launch used up its instruction or time budget (HKRT_EMU_MAX_INSTRUCTIONS, HKRT_EMU_MAX_SECONDS)."""
