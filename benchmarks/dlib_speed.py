"""dlib's face ResNet: our PyTorch port against dlib's own descriptor on the same chips, and the retrofit's step.

    python benchmarks/dlib_speed.py [--n 64] [--repeats 3] [--steps 6] [--out results.json]

1. Inference, images per second on the same 150 px chips (synthetic faces: the speed does not depend on the
   picture): dlib's ``compute_face_descriptor`` one chip at a time and as one batch (its list form), against
   ``create_model("dlib_resnet")`` with batch 1 and batch 32 (float32, torch's threads), and the largest
   |difference| of the embeddings (the parity).
2. The retrofit's training step (batch 32, forward + backward + SGD step): the preservation term alone (the
   frozen original's forward included) against the preservation term plus the recommended recipe's map terms
   (ECLoss-fit), the explainability terms' cost.

Best of `--repeats` runs each. Run it alone: the two cores are shared by everything else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _results import best_seconds, machine, write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from explainface.inputs import to_tensor
from explainface.models import create_model
from explainface.synthetic import SyntheticFaces

ROOT = Path(__file__).resolve().parents[1]


def inference(n: int, repeats: int) -> dict:
    import dlib

    from explainface.faces.detect import face_recognition_model_path

    chips = [SyntheticFaces(seed=0).sample(i, 0, size=150).image for i in range(n)]
    fr = dlib.face_recognition_model_v1(str(face_recognition_model_path("dlib_face_recognition_resnet_model_v1.dat")))
    model = create_model("dlib_resnet").eval()
    x = torch.stack([to_tensor(c) for c in chips])
    rows = {}
    rows["dlib, one chip at a time"] = best_seconds(lambda: [fr.compute_face_descriptor(c) for c in chips], repeats)
    rows["dlib, one batch"] = best_seconds(lambda: fr.compute_face_descriptor(chips), repeats)

    def ours(batch: int) -> None:
        with torch.inference_mode():
            for i in range(0, n, batch):
                model(x[i : i + batch])

    rows["ours, batch 1"] = best_seconds(lambda: ours(1), repeats)
    rows["ours, batch 32"] = best_seconds(lambda: ours(32), repeats)
    ref = np.array([np.array(d) for d in fr.compute_face_descriptor(chips)])
    with torch.inference_mode():
        diff = float(np.abs(model(x).numpy() - ref).max())
    return {"images": n, "images_per_second": {k: n / v for k, v in rows.items()}, "max_abs_difference": diff}


def _train_steps(names: list[str], x: torch.Tensor, steps: int) -> None:
    """`steps` retrofit steps of a fresh pretrained network with the regularisers `names`."""
    from explainface.losses import create_regularizer
    from explainface.losses.base import StepContext
    from explainface.models.capture import capture_features

    model = create_model("dlib_resnet").train()
    regs = [create_regularizer(name) for name in names]
    for reg in regs:
        reg.setup(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    labels = torch.zeros(len(x), dtype=torch.long)
    for step in range(steps):
        emb, maps = capture_features(model, x, model.target_layer)
        ctx = StepContext(images=x, labels=labels, maps=maps, embedding=emb, model=model, step=step)
        loss = sum(reg.loss(ctx) for reg in regs)
        opt.zero_grad()
        loss.backward()
        opt.step()


def retrofit_steps(steps: int, repeats: int) -> dict:
    """Seconds per training step of the retrofit with the preservation term alone and with the map terms (the
    network's set-up and the frozen copy are outside the timing: one untimed step first)."""
    faces = SyntheticFaces(seed=0)
    x = torch.stack([to_tensor(faces.sample(i, 0, size=150).image) for i in range(32)])
    out = {}
    for label, names in (("preserve only", ["preserve"]), ("preserve + ECLoss-fit", ["preserve", "ecloss_fit"])):
        _train_steps(names, x, 1)  # warm-up
        t0 = best_seconds(lambda names=names: _train_steps(names, x, 1), repeats)
        t1 = best_seconds(lambda names=names: _train_steps(names, x, 1 + steps), repeats)
        out[label] = (t1 - t0) / steps  # the set-up cancels
    return {"batch": 32, "seconds_per_step": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="chips to embed")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="training steps per timed run")
    ap.add_argument("--skip-retrofit", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dlib_speed.json"))
    args = ap.parse_args()
    result = {"machine": machine(), "inference": inference(args.n, args.repeats)}
    print(f"| {args.n} chips of 150 px | images/s |\n|---|---:|")
    for k, v in result["inference"]["images_per_second"].items():
        print(f"| {k} | {v:.1f} |")
    print(f"max |ours - dlib| = {result['inference']['max_abs_difference']:.2e}")
    if not args.skip_retrofit:
        result["retrofit"] = retrofit_steps(args.steps, args.repeats)
        print("\n| retrofit step, batch 32 | s/step |\n|---|---:|")
        for k, v in result["retrofit"]["seconds_per_step"].items():
            print(f"| {k} | {v:.2f} |")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
