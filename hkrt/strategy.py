"""Which kernels run a GEMM: one readable table, first matching rule wins.

A rule names a kernel family (the manifest's `strategy` field). The fast families take B as N x K
and need K % 8 == 0, row strides that are multiples of 8, 16-byte aligned operands and buffers under
2 GiB; when an operand misses that, or a family has no built variant, `basic` runs instead and the
plan says why. `strategy=` overrides the table with a family name or an exact variant name.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import registry
from .errors import KernelNotFoundError

CUS = 256
FALLBACK = "basic"
MAX_SPLITS = 16


def _tiles(x: int, t: int) -> int:
    return -(-x // t)


# (family, when, predicate over (m, n, k, epilogue)). Small and skinny shapes come first so that no big
# kernel is forced onto a shape it would waste; their epilogue runs in the kernel that sums split-K.
RULES = [
    ("small", "M <= 128, or fewer 256x256 tiles than CUs", lambda m, n, k, ep: m <= 128 or
     _tiles(m, 256) * _tiles(n, 256) < CUS),
    ("producer_consumer", "a fused epilogue (bias, activation, alpha, beta) is requested",
     lambda m, n, k, ep: ep),
    ("interleave", "min(M, N) >= 4096 and K >= 4096", lambda m, n, k, ep: min(m, n) >= 4096 and k >= 4096),
    ("pingpong", "everything else", lambda m, n, k, ep: True),
]
NON_GEMM = {"epilogue", "repack"}


@dataclass(frozen=True)
class Plan:
    gemm: str                 # variant that computes the product
    family: str               # its family
    b_layout: str             # the layout it needs B in ("kn" or "nk")
    fused: bool               # the GEMM applies alpha/beta/bias/activation itself
    epilogue: str | None      # separate epilogue variant (sums split-K partials too), or None
    splits: int               # split-K factor (small family), else 1
    reason: str               # why, in words


def _variants(arch: str) -> dict[str, dict]:
    return registry.manifest(arch)["kernels"]


def families(arch: str) -> list[str]:
    return sorted({e["launch"]["strategy"] for e in _variants(arch).values()} - NON_GEMM)


def _candidates(arch: str, family: str, b_layout: str | None) -> list[tuple[str, dict]]:
    return [(name, e["launch"]) for name, e in sorted(_variants(arch).items())
            if e["launch"]["strategy"] == family and (b_layout is None or e["launch"]["b_layout"] == b_layout)]


def split_count(m: int, n: int, k: int, tile_m: int, tile_n: int) -> int:
    """Enough K splits to give every CU a block, keeping at least two K tiles per split."""
    tiles = _tiles(m, tile_m) * _tiles(n, tile_n)
    return max(1, min(MAX_SPLITS, CUS // max(tiles, 1), _tiles(k, 64) // 2))


def plan(arch: str, m: int, n: int, k: int, *, b_layout: str, out: str, epilogue: bool, fast_ok: bool,
         why_not_fast: str = "", strategy: str | None = None) -> Plan:
    """Kernels for an M x N x K product. b_layout: how B is held now ("kn" or "nk"; the runtime can
    transpose to nk); out: "bf16" or "f32"; fast_ok: the operands meet the fast kernels' requirements."""
    kernels = _variants(arch)
    if strategy in kernels:  # an exact variant name
        la = kernels[strategy]["launch"]
        if la["strategy"] in NON_GEMM:
            raise ValueError(f"{strategy} is not a GEMM kernel")
        if la["strategy"] != FALLBACK and not fast_ok:
            raise ValueError(f"variant {strategy} cannot take these operands: {why_not_fast}")
        return _finish(arch, strategy, la["strategy"], la, m, n, k, out, epilogue, "requested by name")
    if strategy is not None:
        if strategy not in {f for f, _, _ in RULES} | {FALLBACK} and strategy not in families(arch):
            raise ValueError(f"unknown strategy {strategy!r}: use one of "
                             f"{', '.join(sorted({f for f, _, _ in RULES} | {FALLBACK}))} or a variant name "
                             f"(python -m hkrt info lists them)")
        if strategy not in families(arch):
            raise KernelNotFoundError(f"no kernel of strategy {strategy!r} is built for {arch} (built: "
                                      f"{', '.join(families(arch))}; or name a variant: "
                                      f"{', '.join(sorted(k for k, e in kernels.items() if e['launch']['strategy'] not in NON_GEMM))})")
        family, reason = strategy, "requested"
    else:
        family, reason = next((f, why) for f, why, pred in RULES if pred(m, n, k, epilogue))
    if family != FALLBACK and not fast_ok:
        if strategy is not None:
            raise ValueError(f"strategy {strategy!r} cannot take these operands: {why_not_fast}")
        family, reason = FALLBACK, f"{reason}, but {why_not_fast}: {FALLBACK} runs"
    for fam in (family, FALLBACK):
        layouts = [b_layout, "nk"] if fam == FALLBACK else ["nk"]
        choice = _pick(arch, fam, layouts, out, epilogue)
        if choice:
            name, la = choice
            why = reason if fam == family else f"{reason}; no {family} kernel is built, so {fam} runs"
            return _finish(arch, name, fam, la, m, n, k, out, epilogue, why)
    raise KernelNotFoundError(f"no GEMM kernel for output {out} is built for {arch}")


def _pick(arch: str, family: str, layouts: list[str], out: str, epilogue: bool):
    """Best variant of a family: one writing `out` directly (fused if an epilogue is wanted), else one
    writing fp32 for the epilogue kernel to finish."""
    for layout in layouts:
        cands = _candidates(arch, family, layout)
        def find(pred):
            return next(((n, la) for n, la in cands if pred(la)), None)
        writes = lambda la, dt: la["dtypes"]["c"] == dt  # noqa: E731
        fused = lambda la: la["epilogue"] == "alpha_beta_bias_act"  # noqa: E731
        choice = (find(lambda la: fused(la) and writes(la, out))
                  or (None if epilogue else find(lambda la: la["epilogue"] == "none" and writes(la, out)))
                  or find(lambda la: not fused(la) and writes(la, "f32"))
                  or find(lambda la: fused(la) and writes(la, "f32")))
        if choice:
            return choice
    return None


def _finish(arch: str, name: str, family: str, la: dict, m: int, n: int, k: int, out: str, epilogue: bool,
            reason: str) -> Plan:
    fused = la["epilogue"] == "alpha_beta_bias_act"
    partials = la["epilogue"] == "split_k_partials"
    splits = split_count(m, n, k, la["tile"]["m"], la["tile"]["n"]) if partials else 1
    direct = (fused or (la["epilogue"] == "none" and not epilogue)) and la["dtypes"]["c"] == out
    ep = None
    if not direct:
        if la["dtypes"]["c"] != "f32":
            raise ValueError(f"variant {name} writes {la['dtypes']['c']}; this request needs an fp32 result "
                             f"for the epilogue kernel")
        ep = f"gemm_epilogue_{out}"
        registry.spec(arch, ep)
    return Plan(gemm=name, family=family, b_layout=la["b_layout"], fused=fused and direct, epilogue=ep,
                splits=splits, reason=reason)
