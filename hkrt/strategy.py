"""Which kernels run a GEMM: one readable table, first matching rule wins.

A rule names a kernel family (the manifest's `strategy` field). While a family has no built
variant, FALLBACK runs instead, and the plan says so. `strategy=` overrides the table with a
family name or an exact variant name.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import registry
from .errors import KernelNotFoundError

CUS = 256
FALLBACK = "basic"


def _tiles(x: int, t: int) -> int:
    return -(-x // t)


# (family, when, predicate over (m, n, k, fused))
RULES = [
    ("interleave", "min(M, N) >= 4096 and K >= 4096", lambda m, n, k, fused: min(m, n) >= 4096 and k >= 4096),
    ("producer_consumer", "a fused epilogue is requested", lambda m, n, k, fused: fused),
    ("small", "M <= 128, or fewer 256x256 tiles than CUs", lambda m, n, k, fused: m <= 128 or
     _tiles(m, 256) * _tiles(n, 256) < CUS),
    ("pingpong", "everything else", lambda m, n, k, fused: True),
]
EPILOGUE_FAMILY = "epilogue"


@dataclass(frozen=True)
class Plan:
    gemm: str                 # variant that computes the product
    epilogue: str | None      # separate epilogue variant, or None when the GEMM writes the result itself
    family: str               # the family the table chose
    reason: str               # why, in words


def _variants(arch: str) -> dict[str, dict]:
    return registry.manifest(arch)["kernels"]


def _pick(arch: str, family: str, b_layout: str, out: str, fused: bool) -> str | None:
    """A variant of `family` for this B layout writing `out` ("bf16" or "f32")."""
    for name, e in sorted(_variants(arch).items()):
        launch = e["launch"]
        if (launch["strategy"] == family and launch["b_layout"] == b_layout and launch["dtypes"]["c"] == out
                and (launch["epilogue"] != "none") == fused):
            return name
    return None


def plan(arch: str, m: int, n: int, k: int, *, b_layout: str, out: str, epilogue: bool,
         strategy: str | None = None) -> Plan:
    """Choose the kernels for an M x N x K product with B in `b_layout` and output dtype `out`."""
    kernels = _variants(arch)
    if strategy in kernels:  # an exact variant name
        e = kernels[strategy]["launch"]
        if e["b_layout"] != b_layout:
            raise ValueError(f"variant {strategy} takes B as {e['b_layout']}, but B is {b_layout}")
        return _finish(arch, strategy, strategy, "requested by name", out, epilogue)
    if strategy is not None:
        if not any(e["launch"]["strategy"] == strategy for e in kernels.values()):
            families = sorted({e["launch"]["strategy"] for e in kernels.values()} - {EPILOGUE_FAMILY})
            raise KernelNotFoundError(f"no kernel of strategy {strategy!r} is built for {arch} (built: "
                                      f"{', '.join(families)}; or name a variant: {', '.join(sorted(kernels))})")
        family, reason = strategy, "requested"
    else:
        family, reason = next((f, why) for f, why, pred in RULES if pred(m, n, k, epilogue))
    for fam in (family, FALLBACK):
        fused = epilogue and _pick(arch, fam, b_layout, out, True)
        if fused:
            return Plan(fused, None, family, reason)
        name = _pick(arch, fam, b_layout, out, False) if not epilogue else _pick(arch, fam, b_layout, "f32", False)
        if name:
            why = reason if fam == family else f"{reason}; no {family} kernel is built yet, so {fam} runs"
            return _finish(arch, name, family, why, out, epilogue)
    raise KernelNotFoundError(f"no GEMM kernel for B layout {b_layout} and output {out} is built for {arch}")


def _finish(arch: str, name: str, family: str, reason: str, out: str, epilogue: bool) -> Plan:
    e = _variants(arch)[name]["launch"]
    needs_epilogue = epilogue or e["dtypes"]["c"] != out
    if not needs_epilogue:
        return Plan(name, None, family, reason)
    if e["dtypes"]["c"] != "f32":
        raise ValueError(f"variant {name} writes {e['dtypes']['c']}; an epilogue needs an fp32 accumulator")
    ep = f"gemm_epilogue_{out}"
    registry.spec(arch, ep)
    return Plan(name, ep, family, reason)
