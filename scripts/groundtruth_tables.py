"""The ground-truth protocols' results of several networks as Markdown tables (docs/why.md).

    python scripts/groundtruth_tables.py NAME=runs/gt600/NAME/groundtruth.json ... [--versus A:B ...] [--out t.md]

One row per method: per network, the part-swap hit rate over all pairs and over the moved pairs (± s.e.), the
planted part's mean rank, the exact McNemar p of the first method (the channel method) against each other method
on the moved pairs, and Patch-LFW's match-rate areas. `--versus A:B` compares each method between networks A and B
(e.g. with part channels : without), paired over the same pairs (`groundtruth.compare_runs`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from explainface.explanations.groundtruth import compare_runs


def pct(s: dict | None) -> str:
    if not s or s.get("mean") is None:
        return "-"
    se = s.get("se")
    return f"{100 * s['mean']:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def p_str(p: float | None) -> str:
    return "-" if p is None else f"{p:.2g}"


def swap_table(runs: dict[str, dict]) -> list[str]:
    names = list(runs)
    lines = ["| method | " + " | ".join(f"{n}: all | {n}: moved | {n}: rank | {n}: p vs first" for n in names) + " |",
             "|---|" + "---:|" * (4 * len(names))]  # fmt: skip
    methods = list(dict.fromkeys(m for r in runs.values() for m in r["methods"]))
    for m in methods:
        cells = [m]
        for r in runs.values():
            sw = r["part-swap"]
            e = sw["methods"].get(m)
            if e is None:
                cells += ["", "", "", ""]
                continue
            first = r["methods"][0]
            p = sw.get(f"p_vs_{first}_moved", {}).get(m)
            rank = e["all"]["rank"]["mean"]
            cells += [pct(e["all"]["hit_rate"]), pct(e["moved"]["hit_rate"]),
                      "-" if rank is None else f"{rank:.2f}", p_str(p)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    moved = ", ".join(f"{n} {r['part-swap']['pairs_moved']} of {r['part-swap']['pairs']}" for n, r in runs.items())
    return [f"Plantings that moved the cosine by >= {next(iter(runs.values()))['part-swap']['moved']:g} towards "
            f"their reason: {moved}.", "", *lines]  # fmt: skip


def patch_table(runs: dict[str, dict]) -> list[str]:
    names = list(runs)
    lines = ["| method | " + " | ".join(f"{n}: impostor (lower better) | {n}: genuine (higher better)" for n in names)
             + " |", "|---|" + "---:|" * (2 * len(names))]  # fmt: skip
    methods = list(dict.fromkeys(m for r in runs.values() for m in r["patch"]["methods"]))
    for m in methods:
        cells = [m]
        for r in runs.values():
            e = r["patch"]["methods"].get(m, {})
            cells += [f"{e[k]['area']:.3f}" if k in e else "-" for k in ("impostor", "genuine")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def versus_table(a_name: str, b_name: str, a: dict, b: dict) -> list[str]:
    c = compare_runs(a, b)
    lines = [f"{a_name} vs {b_name}, paired over {c['pairs']} pairs ({c['pairs_moved_in_both']} moved in both):", "",
             f"| method | {a_name}: all | {b_name}: all | p | {a_name}: moved in both | {b_name} | p |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for m, e in c["methods"].items():
        al, mv = e["all"], e["moved"]
        lines.append(f"| {m} | {pct(al['hit_rate_a'])} | {pct(al['hit_rate_b'])} | {p_str(al['p'])} "
                     f"| {pct(mv['hit_rate_a'])} | {pct(mv['hit_rate_b'])} | {p_str(mv['p'])} |")  # fmt: skip
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="NAME=groundtruth.json")
    ap.add_argument("--versus", action="append", default=[], help="A:B, two NAMEs to compare paired over pairs")
    ap.add_argument("--out", help="also write the tables here")
    args = ap.parse_args()
    runs = {}
    for spec in args.runs:
        name, _, path = spec.partition("=")
        runs[name] = json.loads(Path(path).read_text())
    out = []
    for name, r in runs.items():
        out.append(f"- {name}: {r['model_label']}, {r['pairs']['used']} pairs, threshold {r['threshold']:.3f}, "
                   f"{r['seconds'] / 60:.0f} min")  # fmt: skip
    out += ["", "### Part swap: the planted part ranked first", "", *swap_table(runs)]
    out += ["", "### Patch-LFW: match-rate area over 0-95% restored", "", *patch_table(runs)]
    for v in args.versus:
        a, _, b = v.partition(":")
        out += ["", f"### {a} vs {b}", "", *versus_table(a, b, runs[a], runs[b])]
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
