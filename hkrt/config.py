"""Every HKRT_* environment variable: read once, validated, documented here (the README's table is
`markdown()`; a test keeps the two in step).

The runtime and the emulator read their variables through `get`. The build tools (toolchain.py, build.py)
run before the package's dependencies exist, so they read theirs directly; they are declared here too.

`get(name)` gives a variable's parsed value (its default when unset or empty). A bad value is a
ConfigError (a ValueError) naming the variable, what it got and what it takes, raised where the value is
first used. `reload()` reads the environment again (for tests that change it).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable


class ConfigError(ValueError):
    """An HKRT_* variable holds a value it cannot take."""


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError("0 or 1")
    return text == "1"


def _count(low: int, high: int | None = None, what: str = "a whole number") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise ValueError(f"{what} from {low}" + (f" to {high}" if high is not None else " up"))
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError("a number of seconds, 0 or more (0: no limit)")
    return value


def _text(text: str) -> str:
    return text


def _model(text: str) -> str:
    from .emu import timing  # the known models live with the timing model
    if text.lower() not in timing.MODELS:
        raise ValueError(f"one of {', '.join(sorted(timing.MODELS))}")
    return text.lower()


MFMA_MODELS = ("exact", "cdna3")


def _mfma(text: str) -> str:
    if text.lower() not in MFMA_MODELS:
        raise ValueError(" or ".join(MFMA_MODELS))
    return text.lower()


def _device(text: str) -> str:
    from .devices import parse_spec
    try:
        parse_spec(text)
    except ValueError:
        raise ValueError("auto, gpu[:N] or emu[:N]") from None
    return text


@dataclass(frozen=True)
class Variable:
    name: str
    parse: Callable[[str], object]
    default: object
    doc: str
    used_by: str


VARIABLES = {v.name: v for v in [
    Variable("HKRT_DEVICE", _device, "auto", "`auto`, `gpu[:N]` or `emu[:N]`: which device hkrt uses", "hkrt"),
    Variable("HKRT_EMULATE", _flag, False, "`1`: run every hip-python call of the process on the emulator "
             "(as `hkrt.emu.activate()`)", "emulator"),
    Variable("HKRT_EMU_DEVICES", _count(1, 64, "a device count"), 1, "emulated devices", "emulator"),
    Variable("HKRT_EMU_MEMORY", _count(1, what="a byte count"), 16 << 30, "bytes of memory per emulated device "
             "(default 16 GiB)", "emulator"),
    Variable("HKRT_EMU_STRICT", _flag, False, "`1`: a register or LDS read before the hardware delivered it "
             "fails the launch", "emulator"),
    Variable("HKRT_EMU_SEED", _count(0, what="a seed"), None, "random wave interleaving (unset: in order)",
             "emulator"),
    Variable("HKRT_EMU_MFMA", _mfma, "exact", "how an MFMA accumulates: `exact` (its products summed exactly, "
             "one fp32 rounding) or `cdna3` (the chunked model measured on CDNA3: 8-deep K chunks, truncated, "
             "one rounding each; docs/facts.md §1.8)", "emulator"),
    Variable("HKRT_EMU_MAX_INSTRUCTIONS", _count(0, what="an instruction count"), 20_000_000_000,
             "wave-instructions a launch may run (0: no limit)", "emulator"),
    Variable("HKRT_EMU_MAX_SECONDS", _seconds, 900.0, "host seconds a launch may run (0: no limit)", "emulator"),
    Variable("HKRT_EMU_MODEL", _model, None, "`mi355x` or `mi350x`: time every launch on that GPU's model",
             "emulator"),
    Variable("HKRT_EMU_SAMPLE", _flag, False, "`1`, with a model: time a representative subset of each large "
             "launch's workgroups", "emulator"),
    Variable("HKRT_EMU_TRACE", _count(0, what="a number of workgroups"), 0,
             "record every instruction the first N workgroups of a timed launch issue", "emulator"),
    Variable("HKRT_CACHE_DIR", _text, None, "where the emulator's C core and emulated libamdhip64 are built on "
             "first use, under `native/` (default `$XDG_CACHE_HOME/hkrt`, else `~/.cache/hkrt`)", "emulator"),
    Variable("HKRT_TOOLCHAIN_DIR", _text, None, "where `make toolchain` puts hipcc (default "
             "`~/.cache/hkrt/toolchain`)", "build"),
    Variable("HKRT_DEBIAN_MIRROR", _text, None, "the Debian mirror the toolchain comes from (default: apt's)",
             "build"),
    Variable("HKRT_MOUNT", _text, None, "set by the build for the toolchain's wrappers: directories they "
             "bind-mount (not for users)", "build"),
    Variable("HKRT_HIPKITTENS_CACHE", _text, None, "where `bench/hipkittens_model.py` keeps HipKittens' code "
             "objects (default `~/.cache/hkrt/hipkittens`)", "bench"),
]}

_lock = threading.RLock()  # reentrant: parsing HKRT_EMU_MODEL imports hkrt.emu, which reads HKRT_EMULATE
_values: dict[str, object] = {}


def get(name: str):
    """The value of HKRT_<...> `name`, parsed; its default when unset or empty."""
    var = VARIABLES[name]
    with _lock:
        if name not in _values:
            text = os.environ.get(name, "").strip()
            if not text:
                _values[name] = var.default
            else:
                try:
                    _values[name] = var.parse(text)
                except ValueError as exc:
                    raise ConfigError(f"{name}={text!r} is not valid: it takes {exc}") from None
        return _values[name]


def check(scope: str | None = None) -> None:
    """Parse every variable (of one `used_by` scope), so that a bad one fails now, by name."""
    for var in VARIABLES.values():
        if scope is None or var.used_by == scope:
            get(var.name)


def reload() -> None:
    with _lock:
        _values.clear()


def markdown() -> str:
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for v in VARIABLES.values():
        default = "unset" if v.default is None else f"`{int(v.default) if isinstance(v.default, bool) else v.default}`"
        rows.append(f"| `{v.name}` | {default} | {v.doc} |")
    return "\n".join(rows)

