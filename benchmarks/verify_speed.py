"""Verification speed: the full LFW pair set end to end, and the protocol alone against a naive reference.

    python benchmarks/verify_speed.py [--pairs DATA/lfw/pairs.txt] [--out results.json]

1. vgg16_bn (width 0.25, input 112; random weights: speed does not depend on them) on every image of the pair
   set (LFW: 7,701 images, 6,000 pairs): the first run crops (no alignment) into a cache, the next runs read the
   cache; embedding with the flip sum in float32 and in bf16 autocast; then the protocol. Target (issue 5):
   at most 60 s once crops are cached.
2. The protocol alone (10-fold accuracy, ROC, AUC, EER, TAR@FAR) on 6,000 scored pairs, against a naive
   reference that tries every candidate threshold with a full pass over the training folds (O(n^2)).
   Target: well under 1 s.

DATA is the folder of the face data sets: $EXPLAINFACE_DATA, else ../shared/data beside the repository.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from explainface.evaluate.verification import verification_report
from explainface.evaluate.verification_pipeline import verify
from explainface.models import create_model
from explainface.training.checkpoint import save_checkpoint
from explainface.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def naive_kfold(scores: np.ndarray, same: np.ndarray, folds: int = 10) -> float:
    fold = np.arange(len(scores)) * folds // len(scores)
    accs = []
    for f in range(folds):
        tr, te = fold != f, fold == f
        u = np.unique(scores[tr])
        candidates = np.r_[u[0] - 1e-6, (u[1:] + u[:-1]) / 2, u[-1] + 1e-6]  # the protocol's candidates
        best_t, best_acc = 0.0, -1.0
        for t in candidates:
            acc = ((scores[tr] >= t) == same[tr]).mean()
            if acc > best_acc:
                best_t, best_acc = t, acc
        accs.append(((scores[te] >= best_t) == same[te]).mean())
    return float(np.mean(accs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = Path(os.environ.get("EXPLAINFACE_DATA", ROOT.parent / "shared" / "data"))
    ap.add_argument("--pairs", default=str(data / "lfw" / "pairs.txt"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--protocol-only", action="store_true", help="skip the end-to-end part")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "verify_speed.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="explainface_verify_"))
    result: dict = {"threads": torch.get_num_threads()}
    if Path(args.pairs).is_file() and not args.protocol_only:
        torch.manual_seed(0)
        model = create_model("vgg16_bn", width=0.25, input_size=112)
        cfg = load_config(None, ["model.name=vgg16_bn", "model.width=0.25", "model.input_size=112"])
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        ckpt = save_checkpoint(tmp / "random.safetensors", tensors, {"config": cfg.to_dict(), "step": 0})
        crops = tmp / "crops"
        runs = {}
        for label, precision in (("first run (crops)", "fp32"), ("cached fp32", "fp32"), ("cached bf16", "bf16")):
            r = verify(ckpt, args.pairs, tmp / "out", crops_dir=crops, workers=args.workers, progress=False,
                       precision=precision)  # fmt: skip
            runs[label] = {"images": r["images"], "pairs": r["pairs"], **r["seconds"]}
        result["pipeline"] = runs
        print("| run | images | crop s | embed s | protocol s | total s |")
        print("|---|---|---|---|---|---|")
        for label, r in runs.items():
            cols = f"{r['crop']:.1f} | {r['embed']:.1f} | {r['protocol']:.3f} | {r['total']:.1f}"
            print(f"| {label} | {r['images']} | {cols} |")
        result["target_60s_cached_fp32_met"] = runs["cached fp32"]["total"] <= 60
        result["target_60s_cached_bf16_met"] = runs["cached bf16"]["total"] <= 60
    elif not args.protocol_only:
        print(f"no pair set at {args.pairs}: skipping the pipeline part (set EXPLAINFACE_DATA or --pairs)")

    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 3000)
    rng.shuffle(same)
    scores = rng.normal(size=6000) + 1.5 * same
    t = time.perf_counter()
    rep = verification_report(scores, same)
    fast = time.perf_counter() - t
    t = time.perf_counter()
    naive = naive_kfold(scores, same)
    slow = time.perf_counter() - t
    assert abs(naive - rep["accuracy_mean"]) < 1e-12
    result["protocol"] = {"pairs": 6000, "fast_s": fast, "naive_s": slow, "speedup": slow / fast}
    print(f"\nprotocol on 6000 pairs: {fast * 1e3:.1f} ms (naive threshold sweep {slow:.2f} s, {slow / fast:.0f}x)")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
