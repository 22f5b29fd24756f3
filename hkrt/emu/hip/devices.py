"""The emulated devices: each a machine.Machine with its slice of the address space, its sticky fault and
its modelled clock; and which one is the calling thread's current device."""
from __future__ import annotations

import threading

from .. import machine as m
from . import codes as c
from . import props
from .codes import HipError
from .faults import Fault, check_faults
from .streams import Stream
from .threadstate import ThreadState

ADDRESS_SPACE = m.ADDRESS_SPACE  # [HEAP_BASE, HEAP_BASE + this) is split evenly between the devices
MAX_DEVICES = 64


class Device:
    def __init__(self, index: int, machine: m.Machine, base: int, limit: int):
        self.index, self.machine = index, machine
        self.base, self.limit = base, limit           # this device's slice of the address space
        self.lock = threading.RLock()                 # memory and launches of this device
        self.fault: Fault | None = None               # sticky until reset
        self.clock = 0.0                              # modelled device seconds (timing model on)
        self.props = props.properties(index, machine)
        self.null_stream = Stream(self, 0)

    def reset(self) -> None:
        """Free every allocation and clear the fault (the device's part of hipDeviceReset)."""
        with self.lock:
            for base, _ in self.machine.memory.blocks():
                self.machine.memory.free(base)
            self.fault, self.clock = None, 0.0


class Devices:
    """The devices, indexable as a list; hipSetDevice/hipGetDevice per thread."""

    def __init__(self, count: int, threads: ThreadState, **machine_options):
        if not 1 <= count <= MAX_DEVICES:
            raise ValueError(f"the emulator offers 1 to {MAX_DEVICES} devices, not {count}")
        span = ADDRESS_SPACE // count // m.ALIGN * m.ALIGN
        self._devices = []
        for i in range(count):
            base = m.HEAP_BASE + i * span
            # Each device allocates in its own slice so a pointer names its device (unified addressing).
            machine = m.Machine(address_base=base, address_limit=base + span, **machine_options)
            self._devices.append(Device(i, machine, base, base + span))
        self._threads = threads

    def __len__(self) -> int:
        return len(self._devices)

    def __getitem__(self, index: int) -> Device:
        return self._devices[index]

    def get(self, index: int) -> Device:
        if not 0 <= index < len(self._devices):
            raise HipError(c.INVALID_DEVICE, f"device {index} does not exist ({len(self._devices)} emulated)")
        return self._devices[index]

    def current(self) -> Device:
        return self._devices[self._threads.device]

    def select(self, index: int) -> None:
        self._threads.device = self.get(index).index

    def attribute(self, attr: int, index: int) -> int:
        value = props.attribute(self.get(index).props, attr)
        if value is None:
            raise HipError(c.INVALID_VALUE, f"device attribute {attr} is not supported")
        return value

    def synchronize(self) -> None:
        """hipDeviceSynchronize: work is done when its call returns, so only a fault can be reported."""
        check_faults(self.current())

    def owner(self, addr: int) -> Device | None:
        """The device whose address slice holds addr."""
        for d in self._devices:
            if d.base <= addr < d.limit:
                return d
        return None
