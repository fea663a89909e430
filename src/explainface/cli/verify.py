"""`explainface verify`: 10-fold accuracy, AUC, EER, TAR@FAR and ROC on pairs (`evaluate.verification_pipeline`)."""

from __future__ import annotations

import argparse

from explainface.argtypes import int_at_least
from explainface.faces.detect import DETECTORS


def _cmd_verify(args: argparse.Namespace) -> int:
    from explainface.evaluate.verification_pipeline import summary_line, verify

    result = verify(
        args.model, args.pairs, args.out, root=args.root, crops_dir=args.crops, detector=args.detector,
        workers=args.workers, batch=args.batch, device=args.device, progress=not args.quiet, precision=args.precision,
        dlib_jitters=args.dlib_jitters, crop=args.crop, protocol=args.protocol, score=args.score,
    )  # fmt: skip
    print(summary_line(result))
    print(f"wrote {args.out}/verification.json and {args.out}/roc.png")
    return 0


def add_verify_parser(sub: argparse._SubParsersAction) -> None:
    ve = sub.add_parser(
        "verify",
        help="face verification: 10-fold accuracy, AUC, EER, TAR@FAR and ROC on a pair set",
        description="Verify a model on pairs (LFW pairs.txt, insightface .bin, CSV path_a,path_b,same, or the "
        "CFP-FF/CFP-FP protocols of a CFP release folder). "
        "Images are cropped without alignment at the model's input size (cached), or cut as dlib's aligned face "
        "chips with --crop chip. --model dlib runs dlib's "
        "pretrained embedding as an external reference.",
    )
    ve.add_argument("--model", required=True, help='checkpoint (.safetensors) or "dlib"')
    ve.add_argument(
        "--pairs", required=True,
        help="pairs.txt, .bin or .csv; or a CFP release folder (its root, Protocol/, or Protocol/Split/FF|FP)",
    )  # fmt: skip
    ve.add_argument("--protocol", default=None, type=str.upper, choices=("FF", "FP"),
                    help="CFP: FF (frontal-frontal) or FP (frontal-profile)")  # fmt: skip
    ve.add_argument("--root", default=None, help="image folder (default: the pairs file's folder)")
    ve.add_argument("--out", required=True, help="writes verification.json and roc.png here")
    ve.add_argument("--crops", default=None,
                    help="crop cache folder (default: OUT/crops<size>; chips: OUT/chips<size>)")  # fmt: skip
    ve.add_argument("--detector", default="hog", choices=DETECTORS)
    ve.add_argument(
        "--crop", default="auto", choices=("auto", "detect", "none", "chip"),
        help="detect: crop faces (square, no alignment); chip: dlib's aligned face chips (5-point landmarks, "
        "padding 0.25); none: images are model-input crops, only resized; auto (default): none for a "
        "synthetic export or crop cache, else detect",
    )  # fmt: skip
    ve.add_argument("--workers", type=int_at_least(0), default=2)
    ve.add_argument("--batch", type=int_at_least(1), default=128)
    ve.add_argument("--device", default="cpu")
    ve.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="bf16: autocast, ~1.7x faster")
    ve.add_argument(
        "--score", default="auto", choices=("auto", "cosine", "xcos"),
        help="pair score: cosine of the embeddings, or xcos (a checkpoint trained with the xcos method); auto "
        "(default): the checkpoint's own (xcos when it has an xCos head)",
    )  # fmt: skip
    ve.add_argument(
        "--dlib-jitters", type=int, default=0,
        help="--model dlib: average each descriptor over N jittered chips (dlib's num_jitters; N times slower)",
    )  # fmt: skip
    ve.add_argument("--quiet", action="store_true")
    ve.set_defaults(func=_cmd_verify)
