"""Streams and events. Work runs inside the call that submits it, so a stream never holds pending work and
an event is complete once recorded; its time is the device's modelled clock with a timing model on, else
host wall time."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import codes as c
from .codes import HipError
from .faults import check_faults
from .handles import Handles

if TYPE_CHECKING:
    from .devices import Device, Devices


class Stream:
    def __init__(self, device: Device, flags: int):
        self.device, self.flags = device, flags


class Event:
    def __init__(self, device: Device, flags: int):
        self.device, self.flags = device, flags
        self.time: float | None = None                # device clock or perf_counter() at the latest record


class Streams:
    def __init__(self, devices: Devices, handles: Handles):
        self._devices, self._handles = devices, handles

    def get(self, h: int) -> Stream:
        """The stream behind a handle; 0 and hipStreamPerThread are the current device's null stream."""
        if h in (0, c.STREAM_PER_THREAD):
            return self._devices.current().null_stream
        return self._handles.get(h, Stream)

    def create(self, flags: int) -> int:
        if flags not in (0, c.STREAM_NON_BLOCKING):
            raise HipError(c.INVALID_VALUE, f"stream flags {flags:#x}")
        return self._handles.new(Stream(self._devices.current(), flags))

    def destroy(self, h: int) -> None:
        self._handles.drop(h, Stream)

    def synchronize(self, h: int) -> None:
        check_faults(self.get(h).device)

    def wait_event(self, h: int, e: int, flags: int) -> None:
        self.get(h)
        self._handles.get(e, Event)
        if flags not in (0, 1):  # hipEventWaitDefault, hipEventWaitExternal
            raise HipError(c.INVALID_VALUE, f"wait flags {flags:#x}")


class Events:
    def __init__(self, devices: Devices, handles: Handles, streams: Streams):
        self._devices, self._handles, self._streams = devices, handles, streams

    def create(self, flags: int) -> int:
        if flags & ~c.EVENT_FLAGS & 0xFFFFFFFF:
            raise HipError(c.INVALID_VALUE, f"event flags {flags:#x}")
        if flags & c.EVENT_INTERPROCESS and not flags & c.EVENT_DISABLE_TIMING:
            raise HipError(c.INVALID_VALUE, "an interprocess event must disable timing")
        return self._handles.new(Event(self._devices.current(), flags))

    def get(self, h: int) -> Event:
        return self._handles.get(h, Event)

    def destroy(self, h: int) -> None:
        self._handles.drop(h, Event)

    def record(self, e: int, s: int) -> None:
        ev, st = self.get(e), self._streams.get(s)
        if ev.device is not st.device:
            raise HipError(c.INVALID_HANDLE, "event and stream belong to different devices")
        check_faults(st.device)
        ev.time = st.device.clock if st.device.machine.model else time.perf_counter()

    def synchronize(self, e: int) -> None:
        check_faults(self.get(e).device)

    def elapsed_ms(self, start: int, stop: int) -> float:
        a, b = self.get(start), self.get(stop)
        if a.time is None or b.time is None:
            raise HipError(c.INVALID_HANDLE, "event not recorded")
        if (a.flags | b.flags) & c.EVENT_DISABLE_TIMING or a.device is not b.device:
            raise HipError(c.INVALID_HANDLE, "events without timing or of different devices")
        return (b.time - a.time) * 1000.0
