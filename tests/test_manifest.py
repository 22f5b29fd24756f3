"""hkrt.manifest: the JSON `make kernels` writes, parsed once into typed records."""
from __future__ import annotations

import json

import pytest

from hkrt import manifest as mf


def test_records_carry_what_the_json_says():
    raw = mf.load()
    parsed = mf.read()
    assert parsed.arch == raw["arch"] == mf.TARGET_ARCH and set(parsed.kernels) == set(raw["kernels"])
    for name, e in raw["kernels"].items():
        k = parsed.kernels[name]
        assert (k.name, k.code_object, k.symbol, k.kernarg_size, k.static_lds, k.sha256) == \
            (name, e["code_object"], e["symbol"], e["kernarg_size"], e["static_lds"], e["co_sha256"])
        assert [(a.offset, a.size, a.kind) for a in k.args] == [(a["offset"], a["size"], a["kind"]) for a in e["args"]]
        la = e["launch"]
        assert (k.launch.threads, k.launch.strategy, k.launch.out, k.launch.b_layout, k.launch.epilogue) == \
            (la["threads"], la["strategy"], la["dtypes"]["c"], la["b_layout"], la["epilogue"])
        assert (k.launch.tile.m, k.launch.tile.n, k.launch.tile.k) == (la["tile"]["m"], la["tile"]["n"], la["tile"]["k"])
        assert k.launch.is_gemm == (la["strategy"] not in ("epilogue", "repack"))
    assert set(parsed.families()) == {e["launch"]["strategy"] for e in raw["kernels"].values()} - {"epilogue", "repack"}


@pytest.mark.parametrize("damage", ["no kernels", "no launch", "tile not a number", "kernels a list"])
def test_a_malformed_manifest_is_named(tmp_path, damage):
    raw = mf.load()
    name = next(iter(raw["kernels"]))
    if damage == "no kernels":
        del raw["kernels"]
    elif damage == "no launch":
        del raw["kernels"][name]["launch"]
    elif damage == "tile not a number":
        raw["kernels"][name]["launch"]["tile"]["m"] = "big"
    else:
        raw["kernels"] = list(raw["kernels"])
    path = mf.manifest_path(root=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(raw))
    with pytest.raises(mf.ManifestMissingError, match=rf"{path}.*malformed.*make kernels"):
        mf.read(root=tmp_path)
