"""Compare the faithfulness of two networks' part explanations on the same pairs (issue 14).

    python scripts/compare_faithfulness.py runs/faith/softmax/faithfulness.json runs/faith/recommended/faithfulness.json

Both files must come from `explainface why --pairs` with the same pairs, seed and limit (so the same pairs are
drawn). For each removal kind and each explanation order, the margin of its deletion score over the random
order, per network, and the paired difference (second - first) over pairs with a paired t-test; and the same for
the rank agreement of the two explanation methods. Prints a table, writes compare_faithfulness.json beside the
second file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from explainface.stats import paired_test


def _value(x) -> float:
    return np.nan if x is None else float(x)


def _margins(d: dict, mode: str, order: str) -> list[float]:
    """Per pair: the order's deletion score minus the random order's, under removal kind `mode`."""
    return [_value(r["scores"][mode].get(order)) - _value(r["scores"][mode].get("random")) for r in d["per_pair"]]


def compare(first: dict, second: dict) -> dict:
    pa = [(r["a"], r["b"]) for r in first["per_pair"]]
    pb = [(r["a"], r["b"]) for r in second["per_pair"]]
    if pa != pb:
        raise SystemExit("the two runs explained different pairs: use the same --pairs, --limit and seed")
    out: dict = {"pairs": len(pa), "margins": {}}
    for mode in first["modes"]:
        out["margins"][mode] = {}
        for order in first["orders"]:
            if order == "random":
                continue

            ma, mb = (_margins(d, mode, order) for d in (first, second))
            out["margins"][mode][order] = {"first": float(np.nanmean(ma)), "second": float(np.nanmean(mb)),
                                           "paired": paired_test(mb, ma)}  # fmt: skip
    ra = [_value(r["rank_agreement"]) for r in first["per_pair"]]
    rb = [_value(r["rank_agreement"]) for r in second["per_pair"]]
    out["rank_agreement"] = {"first": float(np.nanmean(ra)), "second": float(np.nanmean(rb)),
                             "paired": paired_test(rb, ra)}  # fmt: skip
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    first, second = (json.loads(Path(p).read_text()) for p in argv)
    res = compare(first, second)
    print(f"{res['pairs']} pairs; margin = deletion score of the order - that of a random order (higher = faithful)")
    print(f"{'removal':<10} {'order':<10} {'first':>8} {'second':>8} {'diff':>8} {'p':>8}")
    for mode, orders in res["margins"].items():
        for order, v in orders.items():
            p = v["paired"]
            print(f"{mode:<10} {order:<10} {v['first']:8.4f} {v['second']:8.4f} {p['diff']:8.4f} {p['p_value']:8.3g}")
    r = res["rank_agreement"]
    print(f"rank agreement (channels vs occlusion): {r['first']:.3f} -> {r['second']:.3f}, "
          f"diff {r['paired']['diff']:+.3f} (p {r['paired']['p_value']:.3g})")  # fmt: skip
    out = Path(argv[1]).parent / "compare_faithfulness.json"
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
