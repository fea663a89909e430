"""`explainface crop`: square face crops (or dlib's aligned chips, `--crop chip`) of identity folders, cached
(`explainface.faces.crop`)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from explainface.argtypes import int_at_least
from explainface.errors import InputError
from explainface.faces.align import CHIP_PADDING, CHIP_SIZE
from explainface.faces.crop import (
    CUT_MODES,
    DEFAULT_SIZE,
    IMAGE_FORMATS,
    REPORT_FILE,
    crop_folder,
)
from explainface.faces.detect import DEFAULT_DETECTOR, DETECTORS


def add_crop_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `crop` subcommand: `explainface crop SRC DST [--size] [--margin] [--detector] [--workers] ...`."""
    c = subparsers.add_parser(
        "crop",
        help="detect faces in identity folders and write square crops (no alignment) or aligned chips, cached",
        description="Mirror SRC/<identity>/<image> to DST/<identity>/<stem>.jpg: the main face, an axis-aligned "
        "square with a margin, resized; or with --crop chip (--align) dlib's aligned face chip (5-point landmarks, "
        f"similarity transform, padding {CHIP_PADDING}). Re-running only crops new or changed images.",
    )
    c.add_argument("src", help="identity folders: SRC/<identity>/<image>")
    c.add_argument("dst", help="output folder (crops, crop_meta.json, crop_index.csv, crop_report.json)")
    c.add_argument("--size", type=int_at_least(16), default=None,
                   help=f"crop side in pixels (default {DEFAULT_SIZE}; chips {CHIP_SIZE})")  # fmt: skip
    c.add_argument("--crop", choices=CUT_MODES, default="detect",
                   help="detect: square around the face box, no alignment (default); chip: dlib's aligned face chip "
                   "(dlib's 5-point landmarks; what --model dlib and dlib_resnet take)")  # fmt: skip
    c.add_argument("--align", action="store_const", dest="crop", const="chip", help="the same as --crop chip")
    c.add_argument(
        "--margin",
        type=float,
        default=None,
        help="fraction of the face box added around it in total (default: per detector; hog 0.4; not for chips)",
    )
    c.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="face detector (default hog)")
    c.add_argument("--workers", type=int_at_least(0), default=0, help="processes (default 0: in this process)")
    c.add_argument(
        "--on-missing",
        choices=("center", "skip"),
        default="center",
        help="no face found: centre crop (default) or skip the image",
    )
    c.add_argument("--format", choices=IMAGE_FORMATS, default="jpg", help="crop format (default jpg, quality 95)")
    c.add_argument("--landmarks", action="store_true",
                   help="also write dlib's 68 landmarks of each face crop as <stem>.pts beside it (cached), for "
                   "methods that place things on the face (yin)")  # fmt: skip
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=run_crop)
    return c


def run_crop(args: argparse.Namespace) -> int:
    """Run `crop_folder` from parsed arguments and print a short summary; 1 when no image could be read."""
    crop = getattr(args, "crop", "detect")
    if crop == "chip" and args.margin is not None:
        raise InputError(f"--margin is for square crops; a chip's padding is dlib's {CHIP_PADDING}")
    size = args.size if args.size is not None else (CHIP_SIZE if crop == "chip" else DEFAULT_SIZE)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"\d+ unreadable image", UserWarning)  # the summary names them
        r = crop_folder(
            args.src,
            args.dst,
            size=size,
            margin=args.margin,
            detector=args.detector,
            workers=args.workers,
            on_missing=args.on_missing,
            image_format=args.format,
            progress=not args.quiet,
            crop=crop,
        )
    s = r.settings
    how = f"margin {s['margin']}" if crop != "chip" else f"aligned chips, padding {s['chip_padding']}"
    print(f"crops:      {r.dst_root}  ({s['size']} px {s['image_format']}, {s['detector']}, {how})")
    missing = "centre-cropped" if s["on_missing"] == "center" else "skipped"
    print(
        f"images:     {r.total} = {r.cropped} cropped + {r.no_face} without a face ({missing}) + {r.unreadable} "
        f"unreadable + {r.cached} cached from an earlier run  [{r.seconds:.1f} s]"
    )
    label = "centre crops (no face found)" if s["on_missing"] == "center" else "skipped (no face found)"
    for what, names in ((label, r.no_face_files), ("unreadable", r.unreadable_files)):
        if names:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            print(f"{what}: {len(names)}: {shown}")
    print(f"report:     {Path(r.dst_root) / REPORT_FILE}")
    if args.landmarks:
        from explainface.faces.crop_landmarks import landmark_crops

        n = landmark_crops(r.dst_root, progress=not args.quiet)
        print(f"landmarks:  {n['written']} written + {n['cached']} cached, {n['no_face']} centre crops without, "
              f"{n['not_found']} not found, {n['failed']} failed" + (f": {', '.join(list(n['failed_files'])[:10])}"
                                                                    if n["failed"] else ""))  # fmt: skip
    return 1 if r.total and r.unreadable == r.total else 0
