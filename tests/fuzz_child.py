"""The child process of tests/test_emu_fuzz.py: runs hostile cases on the emulator and prints, before each,
the case number, so that the parent can name the case that crashed a child (and start a new one after it).

    python tests/fuzz_child.py KIND SEED FIRST COUNT

KIND: "image" (a code object with 1 to 3 flipped bits, loaded and launched through hip-python), "stream"
(random instruction words run on one wave), "geometry" (hostile grid, block and LDS sizes for a real
kernel). Every case must end in success, a Python exception or a HIP error, with the process under 2 GiB;
the last line is a JSON count of the outcomes.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HKRT_EMU_MAX_INSTRUCTIONS", "200000")  # runaway kernels end quickly
os.environ.setdefault("HKRT_EMU_MAX_SECONDS", "20")

import numpy as np  # noqa: E402

import hkrt.emu  # noqa: E402

hkrt.emu.activate()
from hip import hip  # noqa: E402

from hkrt import manifest as mf  # noqa: E402

KERNEL = "gemm_basic_nk_bf16"
MAX_RSS_KIB = 2 << 20  # a case that makes the process grow past 2 GiB is a defect too (a huge claimed size)


def ok(r):
    r = r if isinstance(r, tuple) else (r,)
    if r[0] != hip.hipError_t.hipSuccess:
        raise RuntimeError(f"HIP error {r[0]}")
    return r[1] if len(r) == 2 else r[1:]


class Launcher:
    def __init__(self):
        self.entry = mf.load()["kernels"][KERNEL]
        self.image = (mf.arch_dir() / self.entry["code_object"]).read_bytes()
        self.buf = ok(hip.hipMalloc(1 << 20))
        ok(hip.hipMemset(self.buf, 0, 1 << 20))
        ptr = int(self.buf)
        # A, B, C in the buffer; M = N = K = 64 and strides 64
        self.args = bytearray(self.entry["kernarg_size"])
        for i, off in enumerate((0, 8, 16)):
            self.args[off:off + 8] = (ptr + i * (1 << 18)).to_bytes(8, "little")
        for a in self.entry["args"][3:]:
            if a["size"] == 4:
                self.args[a["offset"]:a["offset"] + 4] = (64).to_bytes(4, "little")

    def launch(self, function, grid=(1, 1, 1), block=(256, 1, 1), lds=0):
        args = (ctypes.c_char * len(self.args)).from_buffer(self.args)
        size = ctypes.c_size_t(len(self.args))
        extra = (ctypes.c_void_p * 5)(1, ctypes.addressof(args), 2, ctypes.addressof(size), 3)
        ok(hip.hipModuleLaunchKernel(function, *grid, *block, lds, None, None, extra))
        ok(hip.hipDeviceSynchronize())


def image_case(rng, run: Launcher) -> str:
    data = bytearray(run.image)
    for _ in range(int(rng.integers(1, 4))):
        pos = int(rng.integers(0, len(data)))
        data[pos] ^= 1 << int(rng.integers(0, 8))
    try:
        module = ok(hip.hipModuleLoadData(bytes(data)))
    except RuntimeError:
        return "load refused"
    try:
        function = ok(hip.hipModuleGetFunction(module, run.entry["symbol"].encode()))
        run.launch(function)
        return "ran"
    except RuntimeError:
        hip.hipGetLastError()
        return "launch refused or faulted"
    finally:
        hip.hipModuleUnload(module)


def _corpus() -> list[bytes]:
    """The encodings of every instruction of hkrt's own kernels, to be mixed and mutated."""
    from hkrt import codeobject
    from hkrt.emu import decode
    seen = {}
    for entry in mf.load()["kernels"].values():
        co = codeobject.parse((mf.arch_dir() / entry["code_object"]).read_bytes(), expect_arch="gfx950")
        for k in co.kernels.values():
            code = co.read(k.entry, k.code_size)
            for r in decode.decode(code, 0, k.name).insns:
                ins = code[int(r["pc"]):int(r["pc"]) + int(r["size"])]
                seen[ins] = None
    return list(seen)


def stream_case(rng, corpus: list[bytes]) -> str:
    """A few dozen of the kernel's instructions in random order, some with a flipped bit, run on one wave
    whose registers hold addresses near 0, 2^31, 2^32 and 2^64."""
    from tests.emu_harness import EmuError, new_state, run
    insns = [bytearray(corpus[int(i)]) for i in rng.integers(0, len(corpus), int(rng.integers(1, 48)))]
    for ins in insns:
        if rng.random() < 0.3:
            ins[int(rng.integers(0, len(ins)))] ^= 1 << int(rng.integers(0, 8))
    code = b"".join(insns) + bytes.fromhex("000081bf")  # s_endpgm
    st = new_state(65536, seed=int(rng.integers(1 << 62)))
    edges = np.array([0, 4, 0xFFFFFFF0, 0xFFFFFFFC, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF], np.uint32)
    pick = rng.random(102) < 0.5  # half the registers hold such values (SGPRs below VCC, all VGPRs)
    st.s[:102][pick] = edges[rng.integers(0, len(edges), int(pick.sum()))]
    pick = rng.random(512) < 0.5
    st.v[pick] = edges[rng.integers(0, len(edges), (int(pick.sum()), 1))]
    try:
        run(code, st, strict=bool(rng.integers(0, 2)))
        return "ran"
    except EmuError:
        return "emulation error"
    except Exception as e:  # the decoder refuses words it cannot decode
        return f"refused: {type(e).__name__}"


def geometry_case(rng, run: Launcher, function) -> str:
    big = [0, 1, 7, 1024, 1025, 65535, 65536, 1 << 31, (1 << 32) - 1]
    grid = tuple(int(rng.choice(big)) if rng.random() < 0.3 else 1 for _ in range(3))
    block = tuple(int(rng.choice(big)) if rng.random() < 0.3 else b for b in (256, 1, 1))
    lds = int(rng.choice([0, 160000, 160001, 1 << 20, (1 << 32) - 1])) if rng.random() < 0.3 else 0
    try:
        run.launch(function, grid, block, lds)
        return "ran"
    except RuntimeError:
        hip.hipGetLastError()
        return "refused or faulted"


def main() -> None:
    kind, seed, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    run = Launcher()
    corpus = _corpus() if kind == "stream" else None
    function = None
    if kind == "geometry":
        module = ok(hip.hipModuleLoadData(run.image))
        function = ok(hip.hipModuleGetFunction(module, run.entry["symbol"].encode()))
    outcomes = Counter()
    for i in range(first, first + count):
        print(f"case {i}", flush=True)
        rng = np.random.default_rng([seed, i])
        if kind == "image":
            outcomes[image_case(rng, run)] += 1
        elif kind == "stream":
            outcomes[stream_case(rng, corpus)] += 1
        else:
            outcomes[geometry_case(rng, run, function)] += 1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if rss > MAX_RSS_KIB:
            print(f"case {i} made the process grow to {rss >> 10} MiB", file=sys.stderr, flush=True)
            sys.exit(3)
    print(json.dumps(dict(outcomes)), flush=True)


if __name__ == "__main__":
    main()
