"""How hard is the synthetic set? A slim VGG + softmax trained a few minutes, verified on held-out identities.

    python benchmarks/synth_baseline.py [--minutes 4] [--difficulty medium] [--out benchmarks/results/...]

Renders `identities` x `per_identity` training faces and `heldout` x
`heldout_per_identity` faces of disjoint identities, trains the network with
softmax for a wall-clock budget (SGD, momentum 0.9, weight decay 5e-4, cosine
learning rate, random horizontal flips), then runs the 10-fold verification
protocol on LFW-style pairs of the held-out identities. Target for the default
difficulty (issue 3): 75-95% accuracy, so later comparisons have room.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from explainface.evaluate.verification import embed, kfold_accuracy
from explainface.models import create_head, create_model
from explainface.readers.lfw_pairs import make_pairs
from explainface.synthetic import SyntheticFaces, identity_numbers

ROOT = Path(__file__).resolve().parents[1]


def render(faces: SyntheticFaces, ids: list[int], per_identity: int, size: int, desc: str) -> torch.Tensor:
    out = torch.empty(len(ids) * per_identity, size, size, 3, dtype=torch.uint8)
    for n, (i, k) in enumerate(tqdm([(i, k) for i in ids for k in range(per_identity)], desc=desc, leave=False)):
        out[n] = torch.from_numpy(faces.sample(i, k, size).image)
    return out


def normalise(batch_u8: torch.Tensor) -> torch.Tensor:
    return batch_u8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--identities", type=int, default=200)
    ap.add_argument("--per-identity", type=int, default=20)
    ap.add_argument("--heldout", type=int, default=100)
    ap.add_argument("--heldout-per-identity", type=int, default=6)
    ap.add_argument("--difficulty", default="medium")
    ap.add_argument("--model", default="vgg13_bn")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    difficulty = args.difficulty if args.difficulty in ("easy", "medium", "hard") else float(args.difficulty)
    torch.manual_seed(args.seed)
    faces = SyntheticFaces(args.seed, difficulty)

    t0 = time.perf_counter()
    train = render(faces, identity_numbers("train", args.identities), args.per_identity, args.size, "train set")
    test_ids = identity_numbers("heldout", args.heldout)
    test = render(faces, test_ids, args.heldout_per_identity, args.size, "held-out set")
    render_s = time.perf_counter() - t0
    labels = torch.arange(args.identities).repeat_interleave(args.per_identity)

    model = create_model(args.model, width=args.width, input_size=args.size)
    head = create_head("softmax", model.embedding_dim, args.identities)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    budget = args.minutes * 60
    start = time.perf_counter()
    step, seen, correct, total = 0, 0, 0, 0
    bar = tqdm(total=int(budget), desc="training (s)", unit="s", leave=False)
    while (elapsed := time.perf_counter() - start) < budget:
        frac = elapsed / budget
        for g in opt.param_groups:  # warm-up 3%, cosine decay
            g["lr"] = args.lr * min(1.0, frac / 0.03) * 0.5 * (1 + math.cos(math.pi * frac))
        idx = torch.randint(0, len(train), (args.batch,))
        x = normalise(train[idx])
        flip = torch.rand(args.batch) < 0.5
        x[flip] = torch.flip(x[flip], dims=[3])
        y = labels[idx]
        logits = head(model(x), y)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += args.batch
        if frac > 0.8:
            correct += int((logits.argmax(1) == y).sum())
            total += args.batch
        bar.update(int(time.perf_counter() - start) - bar.n)
        bar.set_postfix(loss=f"{float(loss):.3f}", step=step)
    bar.close()
    train_s = time.perf_counter() - start

    batches = [normalise(test[i : i + 128]) for i in range(0, len(test), 128)]
    emb = embed(model, batches).numpy()
    names = {f"id{i:05d}": args.heldout_per_identity for i in test_ids}
    pairs = make_pairs(names, folds=10, per_fold=300, seed=args.seed)
    row = {name: n for n, name in enumerate(names)}

    def vec(name: str, k: int) -> np.ndarray:
        return emb[row[name] * args.heldout_per_identity + k - 1]

    scores = np.array([float(vec(p.name_a, p.index_a) @ vec(p.name_b, p.index_b)) for p in pairs])
    same = np.array([p.same for p in pairs])
    res = kfold_accuracy(scores, same, folds=np.array([p.fold for p in pairs]))
    out = {
        "args": vars(args),
        "render_s": render_s,
        "train_s": train_s,
        "steps": step,
        "train_images_per_s": seen / train_s,
        "train_accuracy_last_20pct": correct / max(1, total),
        "verification": {k: res[k] for k in ("accuracy_mean", "accuracy_std", "pairs")},
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"difficulty {args.difficulty}: verification {100 * res['accuracy_mean']:.2f}% +- "
        f"{100 * res['accuracy_std']:.2f} on {res['pairs']} held-out pairs | train acc (last 20%) "
        f"{100 * out['train_accuracy_last_20pct']:.1f}% | {step} steps, {out['train_images_per_s']:.0f} img/s, "
        f"{train_s / 60:.1f} min training, {render_s:.1f} s rendering"
    )
    path = Path(args.out or ROOT / "benchmarks" / "results" / f"synth_baseline_{args.difficulty}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
