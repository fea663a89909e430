"""Choose the retrofit's preservation weight on faces that no evaluation uses: HELEN's *training* set.

    python scripts/retrofit_selection.py EXPERIMENT_DIR HELEN_TRAINSET [--faces 300] [--out selection.json]

For every run of a retrofit experiment (`explainface experiment --methods original,retrofit,retrofit:preserve=..`,
EXPERIMENT_DIR/runs/<method>/seed<k>/), on up to `--faces` chips of HELEN's training faces (never LFW, CFP or
HELEN's test set):

* how much of the original network's embedding the run kept: the cosine between the run's and the original's
  flip-summed embeddings of each face (mean and minimum; the accuracy cost's proxy, no identities needed);
* how part-like its target layer is there: PE, LS and AR (`explain`, 100 faces x 3 draws).

The rule (docs/decisions.md "The retrofit: the preservation weight"): the default weight is the one with the
highest LS among those whose mean cosine to the original is at least `--keep` (0.995), averaged over seeds.
Prints a table, writes JSON (results are cached per run: a re-run only measures new runs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from explainface.evaluate.explainability_pipeline import explain
from explainface.files import atomic_write_json
from explainface.inputs import to_tensor
from explainface.parts.samples import SampleCounts, face_samples
from explainface.training.checkpoint import load_model


@torch.no_grad()
def embeddings(model, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    out = []
    for x in images.split(batch):
        e = model(x) + model(torch.flip(x, dims=[-1]))
        out.append(torch.nn.functional.normalize(e.double(), dim=-1))
    return torch.cat(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("experiment")
    ap.add_argument("helen_trainset")
    ap.add_argument("--faces", type=int, default=300)
    ap.add_argument("--keep", type=float, default=0.995)
    ap.add_argument("--out", default=None, help="default EXPERIMENT/selection.json")
    args = ap.parse_args()
    exp = Path(args.experiment)
    out = Path(args.out) if args.out else exp / "selection.json"
    done = json.loads(out.read_text()) if out.is_file() else {}
    original = load_model(exp / "runs" / "original" / "seed0" / "checkpoints" / "last.safetensors")
    samples = list(face_samples(args.helen_trainset, original.input_size, "auto", "hog", "auto", args.faces, 0,
                                SampleCounts(), True, cut="chip"))  # fmt: skip
    x = torch.stack([to_tensor(s.image) for s in samples])
    reference = embeddings(original.model.eval(), x)
    for ckpt in sorted(exp.glob("runs/*/seed*/checkpoints/last.safetensors")):
        run = f"{ckpt.parents[2].name}/{ckpt.parents[1].name}"
        if run in done or (ckpt.parents[2].name == "original" and ckpt.parents[1].name != "seed0"):
            continue
        model = load_model(ckpt).model.eval()
        cos = (embeddings(model, x) * reference).sum(-1).numpy()
        e = explain(ckpt, args.helen_trainset, ckpt.parents[1] / "selection_explain", n_faces=100, runs=3,
                    limit=args.faces, progress=False)  # fmt: skip
        done[run] = {"faces": len(samples), "cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
                     "pe": e["pe_mean"], "ls": e["ls"], "ar": e["ar_mean"]}  # fmt: skip
        atomic_write_json(out, done)
        print(run, done[run])
    methods = sorted({r.split("/")[0] for r in done})
    print(f"\nHELEN training faces ({len(samples)} chips): mean over seeds")
    print("| method | cos to original (mean) | min | PE | LS | AR | seeds |\n|---|---:|---:|---:|---:|---:|---:|")
    best = None
    for m in methods:
        rows = [v for k, v in done.items() if k.split("/")[0] == m]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("cos_mean", "cos_min", "pe", "ls", "ar")}
        print(f"| {m} | {mean['cos_mean']:.4f} | {mean['cos_min']:.4f} | {mean['pe']:.4f} | {mean['ls']:.4f} | "
              f"{mean['ar']:.2f} | {len(rows)} |")  # fmt: skip
        if m != "original" and mean["cos_mean"] >= args.keep and (best is None or mean["ls"] > best[1]):
            best = (m, mean["ls"])
    print(f"\nthe rule (cos >= {args.keep}, then the highest LS): {best[0] if best else 'no run keeps enough'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
