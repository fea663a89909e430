"""`explainface experiment`: methods x seeds on one budget, the paper tables (`explainface.experiments.run`)."""

from __future__ import annotations

import argparse

from explainface.argtypes import float_in, int_at_least
from explainface.experiments.methods import (
    split_methods,
)
from explainface.experiments.run import (
    ExperimentPlan,
    run_experiment,
)
from explainface.faces.detect import DETECTORS
from explainface.parts.samples import SYNTHETIC


def _named_paths(items: list[str], flag: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"{flag} {item!r}: expected NAME=PATH, e.g. {flag} lfw=/data/lfw/pairs.txt")
        if name in out:
            parser.error(f"{flag}: evaluation set {name!r} given twice")
        out[name] = path
    return out


def add_experiment_parser(subparsers) -> None:
    """The `experiment` subcommand."""
    e = subparsers.add_parser(
        "experiment",
        help="the paper's Tables 2-5: methods x seeds on one budget, mean +- se and paired tests; resumable",
        description="Train every method with every seed (same data, order, initialisation and steps), evaluate "
        "each run (verification; PE, LS, AR, share of maps with <= 2 peaks; channel dictionary) and write "
        "OUT/results.json, OUT/tables.md and OUT/experiment.html. Re-running the same command continues a killed "
        "experiment and redoes nothing that finished. Default data: the built-in synthetic faces.",
    )
    e.add_argument("--methods", default="softmax,ecloss",
                   help="comma-separated methods, each NAME[:key=value,...], e.g. "
                   "softmax,ecloss,ecloss:normalize=max,marginal=channels (default softmax,ecloss)")  # fmt: skip
    e.add_argument("--seeds", type=int_at_least(1), default=None, help="seeds 0..N-1 (default 3; --quick: 2)")
    e.add_argument(
        "--minutes",
        type=float_in(0, low_open=True),
        default=None,
        help="training minutes per run, calibrated once (default 8)",
    )
    e.add_argument("--steps", type=int_at_least(1), default=None, help="steps per run instead of --minutes")
    e.add_argument("--out", required=True, help="experiment folder (re-run with the same folder to continue)")
    e.add_argument("--data", default=SYNTHETIC,
                   help="training data: synthetic (default), identity folders (an `explainface crop` cache) or a "
                   "RecordIO folder")  # fmt: skip
    e.add_argument("--config", default=None, help="base YAML config (e.g. configs/paper/vgg16_softmax.yaml)")
    e.add_argument("--pairs", action="append", default=[], metavar="NAME=PATH",
                   help="a verification set (repeatable): pairs.txt/.bin/.csv or a CFP folder such as "
                   "cfp/Protocol/Split/FP")  # fmt: skip
    e.add_argument("--faces", action="append", default=[], metavar="NAME=DIR",
                   help="faces for PE/LS/AR (repeatable): a folder with .pts/.parts.png beside the images "
                   "(else dlib landmarks)")  # fmt: skip
    e.add_argument("--detector", choices=DETECTORS, default=None,
                   help="face detector that crops the evaluation sets' photos (default hog; hog+cnn: dlib's CNN "
                   "detector where HOG finds no face, as `verify --model dlib` does)")  # fmt: skip
    e.add_argument("--images", type=int_at_least(1), default=None, help="N images per PE/AR draw (default 100)")
    e.add_argument("--runs", type=int_at_least(1), default=None, help="R draws (default 5)")
    e.add_argument("--quick", action="store_true", help="a smoke test in about a minute (tiny network)")
    e.add_argument("--quiet", action="store_true")
    e.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run")
    e.set_defaults(func=_cmd_experiment)


def _cmd_experiment(args: argparse.Namespace) -> int:
    """Bad input (ValueError, FileNotFoundError) goes to the command line's one error path (`errors.run_command`);
    command-line mistakes are usage errors (exit 2)."""
    if args.minutes is not None and args.steps is not None:
        args.parser.error("give --minutes or --steps, not both")
    kw = dict(
        methods=split_methods(args.methods), seeds=args.seeds, minutes=args.minutes, steps=args.steps,
        data=args.data, config=args.config, overrides=list(args.overrides),
        pairs=_named_paths(args.pairs, "--pairs", args.parser), faces=_named_paths(args.faces, "--faces", args.parser),
        images=args.images, runs=args.runs, detector=args.detector,
    )  # fmt: skip
    if args.quick:
        plan = ExperimentPlan.quick_plan(**kw)
    else:
        plan = ExperimentPlan(**{k: v for k, v in kw.items() if v is not None})
    if args.minutes is not None:
        plan.steps = None
    results = run_experiment(plan, args.out, progress=not args.quiet)
    from explainface.experiments.tables import tables_markdown

    print()
    print(tables_markdown(results))
    return 0
