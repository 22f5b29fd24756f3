"""Device arrays, streams and events (hkrt/array.py). Their use in a GEMM is in test_gemm.py, their
memory's life in the allocator in test_memory.py.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

import hkrt

from kernel_harness import BF16


def test_finalizer_failures_warn(monkeypatch):
    """Finalizers cannot raise; a failed stream destroy once passed silently."""
    from hkrt.errors import HipError
    dev = hkrt.get_device()
    s = hkrt.Stream()

    def broken(handle):
        raise HipError("hipStreamDestroy", 400, "hipErrorInvalidHandle")
    monkeypatch.setattr(dev.driver, "stream_destroy", broken)
    with pytest.warns(RuntimeWarning, match="destroying a stream.*hipErrorInvalidHandle"):
        del s
        gc.collect()


@pytest.mark.parametrize("value", [np.float32(3.0), np.array(-1.5, np.float32), np.array(2.5, np.float16),
                                   np.array(0.75, BF16)], ids=["scalar", "f32", "f16", "bf16"])
def test_zero_d_arrays_round_trip(value):
    """0-d arrays on the device behave as numpy's: shape (), size 1, and back as a 0-d numpy array."""
    d = hkrt.asarray(value)
    assert (d.shape, d.ndim, d.size, d.nbytes) == ((), 0, 1, value.dtype.itemsize)
    back = d.numpy()
    assert back.shape == () and back.dtype == value.dtype and back == value
    d.copy_from(np.array(4.0, value.dtype))
    assert d.numpy().shape == () and d.numpy() == 4.0
    assert hkrt.empty((), value.dtype).numpy().shape == ()
    with pytest.raises(IndexError, match="0-d"):
        d[0]


def test_indexing_a_vector_gives_a_zero_d_view():
    host = np.arange(5, dtype=np.float32)
    element = hkrt.asarray(host)[3]
    assert element.shape == () and element.numpy().shape == () and element.numpy() == host[3]
