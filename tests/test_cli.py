"""The command line (hkrt/__main__.py): info, demo and bench, their output and their failures.

Each runs `python -m hkrt` in a fresh interpreter (helpers.run_python).
"""
from __future__ import annotations

import csv
import io
import json
import os
import textwrap

import pytest

from hkrt import manifest as mf

from helpers import ROOT, TESTS, ok, run_python


def test_cli_info():
    out = ok(run_python(None, args=("-m", "hkrt", "info")))
    m = mf.load()
    assert "runtime:" in out and "emulator" in out and "gfx950" in out
    assert f"{len(m['kernels'])} built for {m['arch']}" in out
    for name in m["kernels"]:
        assert name in out


def test_cli_demo():
    res = run_python(None, args=("-m", "hkrt", "demo"))
    out = ok(res)
    assert "max |C - numpy(float64)|" in out and "within" in out
    assert " ms" in out and "GFLOP/s" in out
    res = run_python(None, args=("-m", "hkrt", "demo", "--shape", "33x65x17", "--seed", "3"))
    assert "A 33x17, B 17x65" in ok(res)


BENCH_FIELDS = ["m", "n", "k", "seconds", "tflops", "host_overhead_us", "device", "emulated"]


def _check_bench_row(row, shape):
    assert list(row) == BENCH_FIELDS
    m, n, k = (int(row[f]) for f in "mnk")
    assert (m, n, k) == shape
    seconds, tflops = float(row["seconds"]), float(row["tflops"])
    assert seconds > 0 and float(row["host_overhead_us"]) > 0
    assert tflops == pytest.approx(2 * m * n * k / seconds / 1e12, rel=1e-6)
    assert "emu" in row["device"] and "gfx950" in row["device"]


def test_cli_bench_json():
    res = run_python(None, args=("-m", "hkrt", "bench", "64x64x64", "--repeat", "1", "--format", "json"))
    rows = json.loads(ok(res))
    assert isinstance(rows, list) and len(rows) == 1
    _check_bench_row(rows[0], (64, 64, 64))
    res = run_python(None, args=("-m", "hkrt", "bench", "1x70x33", "65x3x1", "--repeat", "2", "--format", "json"))
    rows = json.loads(ok(res))
    assert [(r["m"], r["n"], r["k"]) for r in rows] == [(1, 70, 33), (65, 3, 1)]
    for r, shape in zip(rows, [(1, 70, 33), (65, 3, 1)]):
        _check_bench_row(r, shape)


def test_cli_bench_csv():
    res = run_python(None, args=("-m", "hkrt", "bench", "64x64x64", "--repeat", "1", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(ok(res))))
    assert len(rows) == 1
    _check_bench_row(rows[0], (64, 64, 64))


def test_cli_usage_errors():
    res = run_python(None, args=("-m", "hkrt", "bench", "64x64"))
    assert res.returncode == 2 and "MxNxK" in res.stderr
    res = run_python(None, args=("-m", "hkrt", "frobnicate"))
    assert res.returncode == 2 and "invalid choice" in res.stderr


def _one_line_error(res, *words):
    """The CLI failed with one line on stderr (besides the device notice) that names every word."""
    assert res.returncode not in (0, None), f"exit {res.returncode}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("hkrt: error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), res.stderr


def test_cli_host_out_of_memory():
    """A host MemoryError (numpy failing to allocate) is an error line, not a traceback."""
    res = run_python("""
        import sys
        import hkrt, hkrt.__main__
        def no_memory(*args, **kwargs):
            raise MemoryError("Unable to allocate 64.0 GiB for an array")
        hkrt.gemm = no_memory  # cmd_demo imports it from the package at call time
        sys.exit(hkrt.__main__.main(["demo"]))
    """)
    _one_line_error(res, "out of host memory", "Unable to allocate 64.0 GiB")


# PYTHONUNBUFFERED set: a write fails inside the command; unset (the usual default when stdout is not a
# terminal): the output sits in stdout's buffer until it is flushed, at interpreter exit unless main() does it
BUFFERING = pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@BUFFERING
def test_cli_output_on_a_full_disk(unbuffered):
    with open("/dev/full", "w") as full:
        res = run_python(None, args=("-m", "hkrt", "info"), env={"PYTHONUNBUFFERED": unbuffered}, stdout=full)
    _one_line_error(res, "standard output", "No space left on device")


@BUFFERING
def test_cli_broken_pipe_is_quiet(unbuffered):
    """`python -m hkrt bench | head -1`, with the reader gone before the table is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = run_python(None, args=("-m", "hkrt", "bench", "16x16x16", "--repeat", "1"),
                         env={"PYTHONUNBUFFERED": unbuffered}, stdout=write_end)
    finally:
        os.close(write_end)
    assert res.returncode == 141, res.stderr  # 128 + SIGPIPE, what the shell reports for a killed writer
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    assert "hkrt: error" not in res.stderr, res.stderr


def test_cli_plot_without_matplotlib(tmp_path):
    plot = tmp_path / "bench.png"
    res = run_python(f"""
        import sys
        sys.modules["matplotlib"] = None  # makes `import matplotlib` raise ImportError, installed or not
        import hkrt.__main__
        sys.exit(hkrt.__main__.main(["bench", "16x16x16", "--repeat", "1", "--plot", {str(plot)!r}]))
    """)
    _one_line_error(res, "matplotlib", str(plot))
    assert list(csv.DictReader(io.StringIO(res.stdout)))  # the table itself was written
    assert not plot.exists()


def test_cli_plot_to_a_missing_directory(tmp_path):
    """The plot's file cannot be opened: one error line naming it. matplotlib is optional (and absent in
    CI), so the child gets a stand-in whose savefig opens the file as the real one does."""
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("def use(backend):\n    pass\n")
    (fake / "pyplot.py").write_text(textwrap.dedent("""
        class _Any:
            def __getattr__(self, name):
                return lambda *args, **kwargs: None
        class Figure(_Any):
            def savefig(self, path):
                open(path, "wb").close()
        def subplots(*args, **kwargs):
            return Figure(), _Any()
    """))
    plot = tmp_path / "no such dir" / "bench.png"
    path = os.pathsep.join([str(ROOT), str(TESTS), str(fake.parent)])
    res = run_python(None, args=("-m", "hkrt", "bench", "16x16x16", "--repeat", "1", "--plot", str(plot)),
                     env={"PYTHONPATH": path})
    _one_line_error(res, "cannot write the plot", str(plot))
    assert list(csv.DictReader(io.StringIO(res.stdout)))
