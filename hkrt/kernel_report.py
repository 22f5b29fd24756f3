"""Static figures of the built kernels: registers, LDS, occupancy, and the main loop's composition.

    python -m hkrt.kernel_report [--markdown FILE]

The main loop is the backward branch whose body holds the most MFMAs (bodies found by decoding
the code object with the emulator's decoder). Occupancy follows docs/facts.md §2: waves per
SIMD = min(8, 512 // unified VGPR allocation), workgroups per CU limited by waves and by LDS.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from . import codeobject
from . import manifest as mf
from .emu import decode
from .emu.isa import BRANCHES
from .emu.timing import occupancy


@dataclass
class LoopStats:
    instructions: int
    mfma: int
    ds_read: int
    vmem: int
    valu_other: int
    salu: int

    @property
    def mfma_fraction(self) -> float:
        return self.mfma / self.instructions if self.instructions else 0.0


def main_loop(prog: decode.Program) -> LoopStats | None:
    names = [t.split()[0] for t in prog.text]
    best = None
    for i, (rec, name) in enumerate(zip(prog.insns, names)):
        if name not in BRANCHES or int(rec["imm"]) >= 0:
            continue
        target = int(rec["pc"]) + 4 + 4 * int(rec["imm"])
        body = [names[j] for j in range(len(names)) if target <= int(prog.insns[j]["pc"]) <= int(rec["pc"])]
        stats = LoopStats(
            instructions=len(body), mfma=sum(n.startswith("v_mfma") for n in body),
            ds_read=sum(n.startswith("ds_read") for n in body),
            vmem=sum(n.startswith(("buffer_", "global_", "flat_")) for n in body),
            valu_other=sum(n.startswith("v_") and not n.startswith("v_mfma") for n in body),
            salu=sum(n.startswith("s_") for n in body))
        if best is None or stats.mfma > best.mfma:
            best = stats
    return best


def rows() -> list[dict]:
    out = []
    for name, e in mf.load()["kernels"].items():
        co = codeobject.parse(mf.arch_dir() / e["code_object"])
        k = co.kernel(e["symbol"])
        prog = decode.decode(co.read(k.entry, k.code_size), k.entry, k.name)
        lds = e["static_lds"] + e["launch"]["dynamic_lds"]
        waves = e["launch"]["threads"] // 64
        per_simd, groups = occupancy(k.descriptor.vgpr_alloc, lds, waves)
        loop = main_loop(prog)
        out.append({"variant": name, "strategy": e["launch"]["strategy"], "vgpr": e["arch_vgpr"], "agpr": e["agpr"],
                    "unified": e["vgpr_unified"], "sgpr": e["sgpr"], "lds": lds, "waves_per_simd": per_simd,
                    "groups_per_cu": groups, "loop": loop, "spills": e["vgpr_spill"] + e["sgpr_spill"],
                    "scratch": e["scratch_bytes"]})
    return out


def markdown(table: list[dict]) -> str:
    lines = ["| variant | strategy | VGPR | AGPR | VGPR+AGPR | SGPR | LDS bytes | waves/SIMD | groups/CU | "
             "main-loop insns | MFMA | ds_read | vmem | other VALU | SALU | MFMA fraction |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lp = r["loop"]
        loop = (f"{lp.instructions} | {lp.mfma} | {lp.ds_read} | {lp.vmem} | {lp.valu_other} | {lp.salu} | "
                f"{100 * lp.mfma_fraction:.1f}%") if lp else "- | - | - | - | - | - | -"
        lines.append(f"| {r['variant']} | {r['strategy']} | {r['vgpr']} | {r['agpr']} | {r['unified']} | {r['sgpr']} | "
                     f"{r['lds']} | {r['waves_per_simd']} | {r['groups_per_cu']} | {loop} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", default=None, help="write the table into this Markdown file between markers")
    args = ap.parse_args(argv)
    table = markdown(rows())
    if args.markdown:
        begin, end = "<!-- kernel-report:begin -->", "<!-- kernel-report:end -->"
        with open(args.markdown) as fh:
            text = fh.read()
        if begin not in text or end not in text:
            print(f"{args.markdown} has no {begin} ... {end} markers", file=sys.stderr)
            return 1
        text = text[:text.index(begin) + len(begin)] + "\n" + table + text[text.index(end):]
        with open(args.markdown, "w") as fh:
            fh.write(text)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
