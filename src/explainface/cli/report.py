"""`explainface report`: one self-contained HTML report of a model and a baseline (`explainface.report.build`)."""

from __future__ import annotations

import argparse

from explainface.report.build import (
    build_report,
)


def add_report_parser(subparsers) -> None:
    """The `report` subcommand: `explainface report --model CKPT [--baseline CKPT] --out DIR [...]`."""
    r = subparsers.add_parser(
        "report",
        help="one self-contained HTML report: verification, explainability, channel dictionary, galleries",
        description="Evaluate a checkpoint (and a baseline to compare with) and write OUT/report.html. Without "
        "--data/--pairs it uses held-out synthetic faces exported into OUT/faces.",
    )
    r.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    r.add_argument("--baseline", default=None, help="a second checkpoint to compare with (e.g. without ECLoss)")
    r.add_argument("--out", required=True, help="output folder (report.html and every result behind it)")
    r.add_argument("--pairs", default=None, help="pairs for verification (pairs.txt, .bin or .csv)")
    r.add_argument(
        "--faces",
        "--data",
        dest="data",
        metavar="FACES",
        default=None,
        help='faces with part labels for the metrics (folder or "synthetic")',
    )
    r.add_argument(
        "--n-faces",
        "--images",
        dest="images",
        metavar="N",
        type=int,
        default=100,
        help="N faces per metric draw (default 100)",
    )
    r.add_argument("--runs", type=int, default=5, help="R draws (default 5)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--checked", default=None,
                   help="a ground-truth run's groundtruth.json (`why --protocol`): the why examples show the methods "
                   "in the order of their hit rate on the planted parts")  # fmt: skip
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    path = build_report(args.model, args.out, baseline=args.baseline, pairs=args.pairs, faces=args.data,
                        n_faces=args.images, runs=args.runs, seed=args.seed, progress=not args.quiet,
                        checked=args.checked)  # fmt: skip
    print(f"wrote {path}")
    return 0
