"""`explainface why`: a verification decision explained by face parts (`explainface.explanations.why_pipeline`)."""

from __future__ import annotations

import argparse

from explainface.argtypes import int_at_least
from explainface.explanations.why_pipeline import (
    faithfulness_table,
    reference_set,
    why,
)
from explainface.faces.detect import DETECTORS


def add_why_parser(subparsers) -> None:
    w = subparsers.add_parser(
        "why",
        help="explain a verification decision by face parts (channel ablation and region occlusion)",
        description="Why does the model find two faces alike? Each face part's contribution to their cosine, by "
        "ablating the part's channels (from the channel dictionary) and by covering the part's region; writes "
        "why.json and why.png. With --pairs: the faithfulness of those explanations over many pairs.",
    )
    w.add_argument("images", nargs="*", help="two face images A B")
    w.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    w.add_argument("--out", required=True, help="output folder")
    w.add_argument("--dictionary", default=None, help="explain's channel_dictionary.json or explainability.json")
    w.add_argument("--faces", default="synthetic",
                   help="landmark-labelled faces for the channel dictionary (when none is given) and the reference "
                   "mean (default: the built-in synthetic faces)")  # fmt: skip
    w.add_argument("--threshold", type=float, default=None, help="decision threshold on the cosine")
    w.add_argument("--verification", default=None, help="a verify run's verification.json: its mean threshold")
    w.add_argument("--pairs", default=None, help="measure faithfulness over these pairs instead (verify's formats)")
    w.add_argument("--root", default=None, help="image folder of --pairs")
    w.add_argument("--limit", type=int_at_least(1), default=200, help="--pairs: pairs drawn (default 200)")
    w.add_argument("--protocol", default=None, choices=("part-swap", "patch", "both"),
                   help="--pairs: check the explanations against planted ground truth instead (part swap, "
                   "Patch-LFW; needs 68 landmarks per face)")  # fmt: skip
    w.add_argument(
        "--methods",
        default=None,
        help="--protocol: comma-separated attribution methods (default every one that can run)",
    )
    w.add_argument("--checked", default=None,
                   help="a ground-truth run's groundtruth.json: methods in the order of their hit rate, the rate "
                   "beside each (two images)")  # fmt: skip
    w.add_argument("--seed", type=int, default=0, help="--pairs: the seed that draws pairs and plantings")
    w.add_argument("--crop", default="auto", choices=("auto", "detect", "none", "chip"),
                   help="as explain's: detect (square, no alignment), chip (dlib's aligned face chips), none, "
                   "auto")  # fmt: skip
    w.add_argument("--detector", default="hog", choices=DETECTORS)
    w.add_argument("--device", default="cpu")
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(func=_cmd_why)


def _cmd_why(args: argparse.Namespace) -> int:
    if args.pairs is None:
        if len(args.images) != 2:
            args.parser.error("give two face images A B (or --pairs PAIRS for faithfulness)")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
        if methods and any(":" in m for m in methods):
            args.parser.error("method options (NAME:key=value) are for --protocol runs")
        res = why(args.model, args.images[0], args.images[1], args.out, dictionary=args.dictionary, faces=args.faces,
                  threshold=args.threshold, verification=args.verification, crop=args.crop, detector=args.detector,
                  device=args.device, methods=methods, checked=args.checked)  # fmt: skip
        print(res["summary"])
        print(f"wrote {args.out}/why.json and {args.out}/why.png")
        return 0
    if args.images:
        args.parser.error("give either two images or --pairs, not both")
    if args.protocol is not None:
        return _protocols(args)
    from explainface.explanations.faithfulness import faithfulness
    from explainface.training.checkpoint import load_model

    loaded = load_model(args.model, args.device)
    reference, channel_parts, _ = reference_set(loaded, args.faces, dictionary=args.dictionary,
                                                progress=not args.quiet)  # fmt: skip
    res = faithfulness(args.model, args.pairs, args.out, root=args.root, reference=reference,
                       channel_parts=channel_parts, limit=args.limit, crop=args.crop, detector=args.detector,
                       progress=not args.quiet)  # fmt: skip
    print(faithfulness_table(res))
    print(f"wrote {args.out}/faithfulness.json and {args.out}/deletion_curves.png")
    return 0


def _protocols(args: argparse.Namespace) -> int:
    from explainface.explanations.groundtruth import PROTOCOLS, ground_truth, groundtruth_table

    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    from explainface.specs import split_specs

    methods = split_specs(args.methods) if args.methods else None
    res = ground_truth(args.model, args.pairs, args.out, protocols=protocols, methods=methods, limit=args.limit,
                       seed=args.seed, dictionary=args.dictionary, faces=args.faces, threshold=args.threshold,
                       crop=args.crop, detector=args.detector, device=args.device,
                       progress=not args.quiet)  # fmt: skip
    print(groundtruth_table(res))
    print(f"wrote {args.out}/groundtruth.json and {args.out}/groundtruth.png")
    return 0
