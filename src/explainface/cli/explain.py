"""`explainface explain`: explainability metrics of a model on faces (`evaluate.explainability_pipeline`)."""

from __future__ import annotations

from explainface.argtypes import float_in, int_at_least
from explainface.evaluate.explainability_pipeline import (
    explain,
    summary_line,
)
from explainface.faces.detect import DETECTORS


def add_explain_parser(subparsers) -> None:
    """The `explain` subcommand: `explainface explain --model CKPT --faces DIR|synthetic --out DIR [...]`."""
    e = subparsers.add_parser(
        "explain",
        help="explainability metrics: part explainability, location consistency, activation robustness",
        description="Measure how part-like the target layer's channels are (paper Tables 2, 4, 5): faces with part "
        "labels (a folder with .pts landmarks or .parts.png label maps, dlib landmarks otherwise; or 'synthetic') "
        "are cropped as for verify (or cut as dlib's aligned chips, --crop chip, the landmarks carried into "
        "them), the target-layer maps compared with the parts. Writes explainability.json, "
        "channel_dictionary.json and channel_dictionary.md.",
    )
    e.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    e.add_argument(
        "--faces",
        "--data",
        dest="data",
        metavar="FACES",
        required=True,
        help='face folder (e.g. HELEN with .pts files) or "synthetic"',
    )
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument(
        "--n-faces",
        "--images",
        dest="images",
        metavar="N",
        type=int_at_least(1),
        default=100,
        help="N: faces per draw (default 100, as the paper)",
    )
    e.add_argument("--runs", type=int_at_least(1), default=5, help="R: independent draws (default 5)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--layer", default=None, help="target layer (default: the checkpoint's, e.g. features.relu5_3)")
    e.add_argument("--rho", type=float_in(0, 1), default=0.1, help="peak prominence threshold, relative to the map max")
    e.add_argument("--limit", type=int_at_least(1), default=None, help="use at most this many faces (default: all)")
    e.add_argument("--crop", default="auto", choices=("auto", "detect", "none", "chip"),
                   help="detect: square crops as verify's (no alignment); chip: dlib's aligned face chips, the "
                   "landmarks carried into them; none: only resize; auto (default): none for a crop cache or "
                   "synthetic export, else detect")  # fmt: skip
    e.add_argument("--detector", default="hog", choices=DETECTORS)
    e.add_argument("--landmarks", default="auto", choices=("auto", "file"), help="auto: dlib where no file")
    e.add_argument("--batch", type=int_at_least(1), default=64)
    e.add_argument("--device", default="cpu")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_explain)


def _cmd_explain(args) -> int:
    result = explain(
        args.model, args.data, args.out, n_faces=args.images, runs=args.runs, seed=args.seed, layer=args.layer,
        rho=args.rho, limit=args.limit, crop=args.crop, detector=args.detector, landmarks=args.landmarks,
        batch=args.batch, device=args.device, progress=not args.quiet,
    )  # fmt: skip
    print(summary_line(result))
    if result["skipped"]:
        print(f"skipped {result['skipped']} image(s): see skipped_files in explainability.json")
    print(f"wrote {args.out}/explainability.json, channel_dictionary.json and channel_dictionary.md")
    return 0
