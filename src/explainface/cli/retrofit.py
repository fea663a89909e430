"""`explainface retrofit`: explainability added to a pretrained network by a short fine-tune
(`explainface.training.retrofit`)."""

from __future__ import annotations

import argparse

from explainface.argtypes import int_at_least


def add_retrofit_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "retrofit",
        help="make a pretrained network's target layer part-like while its embedding stays what it was",
        description="Fine-tune a pretrained face recogniser with ECLoss-fit's map terms (the recommended recipe) and "
        "an embedding-preservation term against a frozen copy of the original, on folders of face crops (no labels "
        "needed). Writes an ordinary checkpoint (OUT/checkpoints/last.safetensors) that verify, explain, why and "
        "report read, and OUT/retrofit.json (the embedding's cosine to the original's on the faces). Re-running the "
        "same command resumes.",
    )
    r.add_argument("--model", required=True, metavar="NAME_OR_FILE",
                   help="a weights file (insightface's backbone.pth; .pth/.pt/.safetensors: the network is read off "
                   "its tensors, or give model.name=...), an explainface checkpoint, or a registered network that "
                   "loads its own weights (dlib_resnet)")  # fmt: skip
    r.add_argument("--faces", required=True, nargs="+", metavar="DIR",
                   help="folders of face crops at the network's input (every image under them, recursively)")
    r.add_argument("--out", required=True, help="run folder: checkpoints, metrics.csv, curves, retrofit.json")
    r.add_argument("--steps", type=int_at_least(0), default=None, help="fine-tuning steps (default 1000)")
    r.add_argument("--seed", type=int_at_least(0), default=0, help="batch order and flips (default 0)")
    r.add_argument("--identity-loss", action="store_true",
                   help="keep an identity loss: --faces is then one folder of identity folders (root/<id>/<image>)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. optim.batch_size=32 regularizers.1.beta=20 run.device=cuda")
    r.set_defaults(func=_cmd_retrofit)


def _split_faces(items: list[str]) -> tuple[list[str], list[str]]:
    """`--faces` takes every word after it, overrides too (``--faces DIR optim.lr=0.01``): a ``key=value`` word that
    is not an existing path is an override."""
    from pathlib import Path

    faces = [f for f in items if "=" not in f or Path(f).exists()]
    return faces, [f for f in items if f not in faces]


def _cmd_retrofit(args: argparse.Namespace) -> int:
    from explainface.training.retrofit import retrofit

    faces, extra = _split_faces(args.faces)
    s = retrofit(args.model, faces, args.out, steps=args.steps, seed=args.seed, identity_loss=args.identity_loss,
                 overrides=[*extra, *args.overrides], progress=not args.quiet)  # fmt: skip
    kept = s["preserved"]
    print(f"retrofitted {s['steps']}/{s['total_steps']} steps; the embedding's cosine to the original's on "
          f"{kept['faces']} of the faces: mean {kept['mean']:.4f}, min {kept['min']:.4f}; checkpoint "
          f"{s['checkpoint']}; logs in {args.out}")  # fmt: skip
    return 0
