"""`explainface parts`: a contact sheet of part masks on real photos (`explainface.parts.sheet`)."""

from __future__ import annotations

import argparse

from explainface.argtypes import float_in, int_at_least, picture_path
from explainface.faces.detect import DETECTORS
from explainface.parts.sheet import (
    part_contact_sheet,
)


def add_parts_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `parts` subcommand: `explainface parts DIR --out sheet.png [--n] [--size] [--seed] [--split-lr] ...`."""
    p = subparsers.add_parser(
        "parts",
        help="contact sheet of part masks from landmarks on real photos (paper Figure 7)",
        description="Pick images from DIR (recursive), take landmarks from same-stem .pts files or dlib's "
        "68-point predictor, crop without alignment and draw crop + landmarks | part mask | overlay.",
    )
    p.add_argument("dir", help="folder of face images (with or without .pts landmark files)")
    p.add_argument("--out", type=picture_path, required=True, help="PNG to write")
    p.add_argument("--n", type=int_at_least(1), default=12, help="images to draw (default 12)")
    p.add_argument("--size", type=int_at_least(16), default=224, help="crop side in pixels (default 224)")
    p.add_argument("--seed", type=int, default=0, help="which images are picked (default 0)")
    p.add_argument("--split-lr", action="store_true", help="split hair, cheek, eyes and jaw left/right (11 parts)")
    p.add_argument("--detector", choices=DETECTORS, default="hog", help="face detector (default hog)")
    p.add_argument("--columns", type=int_at_least(1), default=3, help="images per row (default 3)")
    p.add_argument("--margin", type=float_in(0), default=None, help="crop margin (default: the detector's, hog 0.4)")
    p.set_defaults(func=run_parts)
    return p


def run_parts(args: argparse.Namespace) -> int:
    """Run `part_contact_sheet` from parsed arguments and print what it wrote (errors: the CLI's error path)."""
    r = part_contact_sheet(
        args.dir,
        args.out,
        n=args.n,
        size=args.size,
        seed=args.seed,
        split_lr=args.split_lr,
        detector=args.detector,
        columns=args.columns,
        margin=args.margin,
    )
    sources = ", ".join(f"{k} {v}" for k, v in sorted(r.landmark_sources.items()))
    status = ", ".join(f"{k} {v}" for k, v in sorted(r.crop_status.items()))
    print(f"sheet:      {r.path}  ({r.drawn} images of {r.candidates} found, {args.size} px crops)")
    print(f"landmarks:  {sources}")
    print(f"crops:      {status}")
    if r.failures:
        print(f"skipped:    {len(r.failures)}")
        for name, why in list(r.failures.items())[:10]:
            print(f"  {name}: {why}")
    return 0
