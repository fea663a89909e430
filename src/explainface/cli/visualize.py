"""`explainface visualize`: pictures of what the channels look at (`explainface.explanations.visualize`)."""

from __future__ import annotations

import argparse

from explainface.argtypes import int_at_least
from explainface.explanations.visualize import (
    DEFAULT_CHANNELS,
    SYNTHETIC,
    visualize,
)
from explainface.faces.detect import DETECTORS


def parse_channels(text: str) -> list[int]:
    """'3,17,42' -> [3, 17, 42]; anything else is an argparse error."""
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"channels must be comma-separated integers, got {text!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"channels must be non-negative integers, got {text!r}")
    return out


def parse_pair(text: str) -> tuple[int, int]:
    """'0,3' -> (0, 3): indices into the faces."""
    chans = parse_channels(text)
    if len(chans) != 2:
        raise argparse.ArgumentTypeError(f"a pair is two face indices like 0,3, got {text!r}")
    return chans[0], chans[1]


def add_visualize_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `visualize` subcommand: `explainface visualize --model CKPT --images ...|synthetic --out DIR [...]`."""
    v = subparsers.add_parser(
        "visualize",
        help="pictures of what the channels look at: overlays, feature maps, Grad-CAM, channel dictionary",
        description="Write gallery.png (top-10% regions of chosen channels across people, paper Figure 6), "
        "feature_maps.png (the first face's feature maps, model vs --baseline, Figure 5), gradcam.png (Grad-CAM "
        "of the similarity of two faces, Figure 1) and, with --dictionary, channel_dictionary.png.",
    )
    v.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    v.add_argument(
        "--faces",
        "--images",
        dest="images",
        metavar="FACES",
        nargs="+",
        required=True,
        help='face images or folders, or "synthetic"',
    )
    v.add_argument("--out", required=True, help="output folder")
    v.add_argument("--channels", type=parse_channels, default=None,
                   help=f"gallery channels, e.g. 3,17,42 (default: the {DEFAULT_CHANNELS} most active)")  # fmt: skip
    v.add_argument("--baseline", default=None, help="a second checkpoint to compare (e.g. without ECLoss)")
    v.add_argument("--layer", default=None, help="layer to show (default: the checkpoint's target layer)")
    v.add_argument("--dictionary", default=None, help="explainability.json of `explainface explain`")
    v.add_argument("--pair", type=parse_pair, default=None, help="two face indices for Grad-CAM (default 0,1)")
    v.add_argument("--people", type=int_at_least(1), default=6, help="faces in the gallery (default 6)")
    v.add_argument(
        "--crop",
        default="auto",
        choices=("auto", "detect", "none", "chip"),
        help="auto: faces already square at the input size are used as they are, others detected; detect: square "
        "crops; chip: dlib's aligned face chips; none: only resize",
    )
    v.add_argument("--detector", default="hog", choices=DETECTORS)
    v.add_argument("--seed", type=int, default=0, help="synthetic faces' seed")
    v.add_argument(
        "--xcos-threshold",
        type=float,
        default=None,
        help="xCos checkpoints: centre the patch-cosine colours here (e.g. verify's threshold; default 0)",
    )
    v.add_argument("--device", default="cpu")
    v.set_defaults(func=_cmd_visualize)
    return v


def _cmd_visualize(args: argparse.Namespace) -> int:
    images = SYNTHETIC if args.images == [SYNTHETIC] else args.images
    written = visualize(
        args.model, images, args.out, channels=args.channels, baseline=args.baseline, pair=args.pair,
        layer=args.layer, n_people=args.people, dictionary=args.dictionary, crop=args.crop, detector=args.detector,
        seed=args.seed, device=args.device, xcos_threshold=args.xcos_threshold,
    )  # fmt: skip
    for name, path in written.items():
        print(f"{name + ':':<20} {path}")
    return 0
