"""The native build cache: an entry is built when missing, never reused once anything it read changed,
rebuilt when it lost its product, built once when two processes want it at the same time, and a missing
compiler or a failed build is a clear error that leaves nothing half-made behind."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hkrt import config
from hkrt.emu import build_core, native
from hkrt.emu.hip import build as hip_build

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty HKRT_CACHE_DIR; its native/ directory."""
    monkeypatch.setenv("HKRT_CACHE_DIR", str(tmp_path / "cache"))
    config.reload()
    yield tmp_path / "cache" / "native"
    monkeypatch.delenv("HKRT_CACHE_DIR")
    config.reload()


class Maker:
    """A stand-in build: writes `product` holding the text it is given, and counts its runs."""

    def __init__(self, text: str = "built"):
        self.runs, self.text = 0, text

    def __call__(self, out: Path) -> None:
        self.runs += 1
        assert list(out.iterdir()) == [], "a build starts in an empty staging directory"
        (out / "thing.so").write_text(f"{self.text} {self.runs}")


def ensure(inputs, make, **kw):
    return native.ensure("thing", inputs, "thing.so", make, what="test thing", **kw)


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.startswith("."))


def test_built_when_missing_then_reused(cache):
    make = Maker()
    path = ensure([b"source v1"], make)
    assert path.parent.parent == cache and path.read_text() == "built 1"
    assert ensure([b"source v1"], make) == path and make.runs == 1
    assert leftovers(cache) == []


def test_any_changed_input_gives_a_new_entry(cache):
    make = Maker()
    first = ensure([b"core.c", b"ops.h v1"], make)
    second = ensure([b"core.c", b"ops.h v2"], make)
    assert second != first and make.runs == 2 and first.read_text() == "built 1" and second.read_text() == "built 2"
    # inputs are length-framed: moving a byte from one input to the next is a different build
    assert native.key([b"ab", b"c"]) != native.key([b"a", b"bc"])


def test_the_compiler_and_its_flags_are_part_of_the_key(cache, monkeypatch):
    base = native.key([b"x"])
    monkeypatch.setenv("CC", "gcc -m64")
    assert native.key([b"x"]) != base


def test_an_entry_that_lost_its_product_is_rebuilt_and_force_rebuilds(cache):
    make = Maker()
    path = ensure([b"src"], make)
    path.unlink()
    assert ensure([b"src"], make) == path and path.read_text() == "built 2"
    assert ensure([b"src"], make, force=True) == path and path.read_text() == "built 3"
    assert leftovers(cache) == []


def test_a_failed_build_is_a_clear_error_and_leaves_nothing(cache):
    def broken(out: Path) -> None:
        (out / "half.o").write_text("partial")
        raise OSError("gcc: internal compiler error")
    with pytest.raises(native.NativeBuildError, match="building the emulator's test thing failed: .*internal"):
        ensure([b"src"], broken)
    with pytest.raises(native.NativeBuildError, match="made no thing.so"):
        ensure([b"src"], lambda out: None)
    assert not native.entry("thing", [b"src"]).exists() and leftovers(cache) == []
    assert ensure([b"src"], Maker()).read_text() == "built 1"


def test_staging_left_by_a_killed_build_is_cleared(cache):
    ensure([b"a"], Maker())
    (cache / ".thing-killed").mkdir()
    (cache / ".thing-killed" / "half.o").write_text("x")
    ensure([b"b"], Maker())
    assert leftovers(cache) == []


def test_no_c_compiler_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setenv("CC", "hkrt-no-such-cc")
    with pytest.raises(native.NativeBuildError, match="needs a C compiler, but 'hkrt-no-such-cc' was not found"):
        ensure([b"src"], Maker())
    assert not native.entry("thing", [b"src"]).exists()


def test_an_unwritable_cache_names_the_variable(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HKRT_CACHE_DIR", str(blocker))
    config.reload()
    try:
        with pytest.raises(native.NativeBuildError, match="cannot create the native build cache .*HKRT_CACHE_DIR"):
            ensure([b"src"], Maker())
    finally:
        monkeypatch.delenv("HKRT_CACHE_DIR")
        config.reload()


def test_where_the_cache_is(monkeypatch, tmp_path):
    def resolved(**env):
        for name in ("HKRT_CACHE_DIR", "XDG_CACHE_HOME"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        config.reload()
        return native.cache_dir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        assert resolved() == tmp_path / "home" / ".cache" / "hkrt" / "native"
        assert resolved(XDG_CACHE_HOME=str(tmp_path / "xdg")) == tmp_path / "xdg" / "hkrt" / "native"
        assert resolved(XDG_CACHE_HOME="relative/xdg") == tmp_path / "home" / ".cache" / "hkrt" / "native"
        assert resolved(HKRT_CACHE_DIR=str(tmp_path / "c"), XDG_CACHE_HOME=str(tmp_path / "xdg")) == \
            tmp_path / "c" / "native"
    finally:
        config.reload()


RACER = """
    import sys, time
    from pathlib import Path
    from hkrt.emu import native
    log = Path(sys.argv[1])
    def make(out):
        with open(log, "a") as fh:
            fh.write("build\\n")
        time.sleep(1.0)  # long enough that the other process arrives while this one builds
        (out / "thing.so").write_text("done")
    print(native.ensure("thing", [b"raced"], "thing.so", make, what="test thing"))
"""


def test_two_processes_at_first_use_build_once(cache, tmp_path):
    log = tmp_path / "builds.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(RACER), str(log)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [r.communicate(timeout=120) for r in racers]
    assert [r.returncode for r in racers] == [0, 0], results
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1 and Path(paths.pop()).read_text() == "done"
    assert log.read_text() == "build\n"


def test_the_core_key_covers_the_generated_headers(tmp_path):
    """What the generator writes feeds the key: a changed table or an added header is a different build."""
    include = tmp_path / "include"
    include.mkdir()
    (include / "ops.h").write_text("#define A 1\n")
    base = native.key(build_core._inputs(include))
    (include / "ops.h").write_text("#define A 2\n")
    changed = native.key(build_core._inputs(include))
    (include / "table.h").write_text("")
    added = native.key(build_core._inputs(include))
    assert len({base, changed, added}) == 3


def test_the_real_builds_live_in_the_cache_not_the_package():
    core, library = build_core.build(), hip_build.build()
    assert core.parent.parent == library.parent.parent == native.cache_dir()
    assert not core.is_relative_to(ROOT / "hkrt") and not library.is_relative_to(ROOT / "hkrt")
    assert build_core.load().lib.emu_run is not None
