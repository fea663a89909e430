"""Pair attributions: seconds per method for one pair (`why`), and per pair of the ground-truth protocols.

    python benchmarks/attribution_speed.py [--repeats 3] [--out results.json]

For the CPU default network (vgg16_bn, width 0.25, 112 px; untrained: the speed does not depend on the weights)
and dlib's ResNet (150 px chips), on synthetic faces with their landmarks:

1. every registered attribution method on one pair, best of `--repeats` (what `why` runs: the sum of
   `why.WHY_METHODS`), next to the pair's plain forward (face and mirror, both faces) as the unit;
2. one pair of each protocol (part swap, Patch-LFW) with the protocols' methods and options, and the minutes that
   600 pairs of both would take (the issue's target: 30).

Run it alone: the two cores are shared by everything else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _results import best_seconds, machine, write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from explainface.explanations.attributions import PairContext, attribute, attribution_names
from explainface.explanations.attributions.base import ReferenceMaps, pair_cosine
from explainface.explanations.groundtruth import (
    PROTOCOL_OPTIONS,
    Face,
    patch_pair,
    patch_record,
    swap_pair,
    swap_record,
)
from explainface.explanations.why import WHY_METHODS
from explainface.inputs import to_tensor
from explainface.models import create_model
from explainface.models.modes import for_inference
from explainface.synthetic import SyntheticFaces

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = {
    "vgg16_bn w0.25 @112 (CPU default)": lambda: create_model("vgg16_bn", width=0.25, input_size=112),
    "dlib_resnet @150": lambda: create_model("dlib_resnet"),
}


def faces(size: int, n: int = 4) -> list[Face]:
    gen = SyntheticFaces(seed=0)
    out = []
    for i in range(n):
        s = gen.sample(i, 0, size=size)
        out.append(Face(s.image, s.parts.astype(np.int64), s.landmarks.astype(np.float64), f"id{i}"))
    return out


def measure(name: str, make, repeats: int) -> dict:
    model = for_inference(make())  # as the pipelines run it (models.modes.for_inference)
    size = model.input_size if hasattr(model, "input_size") else 112
    size = 150 if "dlib" in name else size
    fs = faces(size)
    ref = ReferenceMaps.of(model, [torch.stack([to_tensor(f.image) for f in fs])])
    channels = ref.mean.shape[0]
    parts = {c: ("hair", "forehead", "cheek", "eyes", "nose", "mouth", "jaw")[c % 7] for c in range(channels)}
    ctx = PairContext(model, channel_parts=parts, reference=ref)
    images = torch.stack([to_tensor(fs[0].image), to_tensor(fs[1].image)])
    labels = torch.from_numpy(np.stack([fs[0].labels, fs[1].labels]))
    with torch.no_grad():
        unit = best_seconds(lambda: pair_cosine(model, images), repeats)
    per_method = {}
    for m in attribution_names():
        if ctx.available(m) is None:
            attribute(m, ctx, images, labels)  # warm-up
            per_method[m] = best_seconds(lambda m=m: attribute(m, ctx, images, labels), repeats)
    why_total = sum(v for k, v in per_method.items() if k in WHY_METHODS)
    pctx = PairContext(model, channel_parts=parts, reference=ref, options=dict(PROTOCOL_OPTIONS))
    methods = {m: (m, {}) for m in attribution_names() if pctx.available(m) is None}
    param = next(model.parameters())

    def protocols() -> None:
        swap = swap_pair(model, fs[0], fs[1], fs[1], False, "eyes", param)
        swap_record(pctx, methods, swap, 0)
        patch = patch_pair(model, fs[0], fs[1], fs[1], False, [0, 0], param)
        patch_record(pctx, methods, patch, 0, 0.3, 0)

    per_pair = best_seconds(protocols, max(1, repeats - 1))
    return {"input_size": size, "pair_forward_s": unit, "method_s": per_method, "why_all_methods_s": why_total,
            "protocols_per_pair_s": per_pair, "protocols_600_pairs_min": 600 * per_pair / 60}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated, of: " + ", ".join(NETWORKS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "attribution_speed.json"))
    args = ap.parse_args()
    result = {"machine": machine(), "networks": {}}
    for name in [n.strip() for n in args.networks.split(",") if n.strip()]:
        r = result["networks"][name] = measure(name, NETWORKS[name], args.repeats)
        print(f"\n{name}: one pair's plain forward {r['pair_forward_s']:.3f} s")
        print("| method | s per pair |\n|---|---:|")
        for m, v in r["method_s"].items():
            print(f"| {m} | {v:.3f} |")
        print(f"| why (every method of WHY_METHODS) | {r['why_all_methods_s']:.2f} |")
        print(f"| both protocols, one pair | {r['protocols_per_pair_s']:.2f} |")
        print(f"| both protocols, 600 pairs | {r['protocols_600_pairs_min']:.1f} min |")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
