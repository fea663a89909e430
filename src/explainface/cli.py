"""The `explainface` command: a thin argparse layer over the library.

Each subcommand lives in a `_cmd_<name>` function that parses nothing itself
and calls public library functions, so a notebook user can do the same.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from explainface import __version__
from explainface.argtypes import float_in, int_at_least, picture_path


def _cmd_models(args: argparse.Namespace) -> int:
    from explainface.models import describe_model, list_models

    rows = [describe_model(name, width=args.width, input_size=args.input_size) for name in list_models()]
    header = f"{'name':<10} {'params':>10} {'target layer':<22} {'target map':<14} {'embedding':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(str(s) for s in r["target_shape"])
        print(f"{r['name']:<10} {r['params']:>10,} {r['target_layer']:<22} {shape:<14} {r['embedding_dim']:>9}")
    return 0


def _cmd_templates(args: argparse.Namespace) -> int:
    from explainface.losses.templates import build_templates, template_counts

    k = args.k
    t = build_templates(args.height, args.width or args.height, k=k, tau=args.tau)
    n_neg, n_one, n_two = template_counts(args.height, args.width or args.height, k=k)
    print(f"{t.shape[0]} templates of {t.shape[1]}x{t.shape[2]}: {n_neg} negative, {n_one} one-peak, {n_two} two-peak")
    if args.out:
        from explainface.losses.templates import save_template_grid

        print(f"wrote {save_template_grid(t, args.out, limit=args.show)}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    """Export synthetic faces (`export_synthetic`) and/or draw a contact sheet of 4 identities x 3 samples."""
    if args.out is None and args.sheet is None:
        args.parser.error("synth needs --out, --sheet or both")
    if args.out is not None:
        from explainface.data.synthetic.export import export_synthetic

        r = export_synthetic(
            args.out,
            args.identities,
            args.per_identity,
            size=args.size,
            heldout_identities=args.heldout,
            seed=args.seed,
            difficulty=args.difficulty,
            image_format=args.format,
            pairs_per_fold=args.pairs_per_fold,
            workers=args.workers,
            progress=not args.quiet,
        )
        for split in ("train", "heldout"):
            if r[f"{split}_identities"]:
                n, per = r[f"{split}_identities"], r["per_identity"]
                print(f"{split + ':':<8} {r[f'{split}_dir']}  {n} identities x {per} = {n * per} images")
        if r["pairs_path"]:
            print(
                f"pairs:   {r['pairs_path']}  {r['pair_folds']} folds x "
                f"({r['pairs_per_fold']} same + {r['pairs_per_fold']} different)"
            )
        print(f"meta:    {r['meta_path']}  ({r['size']}x{r['size']} {r['image_format']}, {r['seconds']:.1f} s)")
    if args.sheet is not None:
        from explainface.data.synthetic import SyntheticFaces
        from explainface.data.synthetic.contact_sheet import contact_sheet, sample_grid

        n_ids, n_per = 4, 3
        samples = sample_grid(SyntheticFaces(args.seed, args.difficulty), n_ids, n_per, args.size)
        path = contact_sheet(samples, args.sheet, tile=args.tile, columns=n_per)
        print(f"sheet:   {path}  ({n_ids} identities x {n_per} samples: image | landmarks | parts)")
    return 0


def _template_count(value: str) -> int | str:
    """`--k`: "full" or a number of templates >= 1."""
    return value if value == "full" else int_at_least(1)(value)


def _difficulty(value: str) -> str | float:
    """`easy`/`medium`/`hard` or a number (the generator checks the range)."""
    try:
        return float(value)
    except ValueError:
        return value


def _cmd_train(args: argparse.Namespace) -> int:
    from explainface.train import Trainer, load_config

    cfg = load_config(args.config, args.overrides)
    summary = Trainer(cfg, args.out, progress=not args.quiet).train()
    if summary["world_size"] == 1 or int(__import__("os").environ.get("RANK", "0")) == 0:
        val = summary["val"]
        acc = f", verification {100 * val['accuracy']:.2f}%" if val else ""
        print(
            f"trained {summary['steps']}/{summary['total_steps']} steps ({summary['epochs']:.2f} epochs) at "
            f"{summary['images_per_s']:.0f} images/s{acc}; checkpoint {summary['checkpoint']}; logs in {args.out}"
        )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from explainface.evaluate.verify import summary_line, verify

    result = verify(
        args.model, args.pairs, args.out, root=args.root, crops_dir=args.crops, detector=args.detector,
        workers=args.workers, batch=args.batch, device=args.device, progress=not args.quiet, precision=args.precision,
        dlib_jitters=args.dlib_jitters, crop=args.crop, protocol=args.protocol, score=args.score,
    )  # fmt: skip
    print(summary_line(result))
    print(f"wrote {args.out}/verification.json and {args.out}/roc.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="explainface",
        description="Explainable face recognition with the Explainable Channel Loss (ECLoss).",
    )
    p.add_argument("--version", action="version", version=f"explainface {__version__}")
    p.add_argument("--traceback", action="store_true",
                   help="show the traceback of input errors too (bug reports; or EXPLAINFACE_TRACEBACK=1)")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="<command>")
    from explainface.demo import add_demo_parser

    add_demo_parser(sub)  # the main job first in --help

    m = sub.add_parser("models", help="list the registered networks and their target layers")
    m.add_argument("--width", type=float_in(0, low_open=True), default=0.25,
                   help="channel width multiplier (default 0.25)")
    m.add_argument("--input-size", type=int, default=112, choices=(112, 224))
    m.set_defaults(func=_cmd_models)

    t = sub.add_parser("templates", help="count (and optionally draw) the activation templates of a map size")
    t.add_argument("--height", type=int_at_least(1), default=14)
    t.add_argument("--width", type=int_at_least(1), default=None, help="default: same as --height")
    t.add_argument("--k", type=_template_count, default="400", help='number of templates or "full" (default 400)')
    t.add_argument("--tau", type=float_in(0, low_open=True), default=0.001)
    t.add_argument("--out", type=picture_path, default=None, help="PNG file to draw the first templates into")
    t.add_argument("--show", type=int_at_least(1), default=48, help="how many templates to draw (evenly spaced)")
    t.set_defaults(func=_cmd_templates)

    s = sub.add_parser(
        "synth",
        help="export synthetic faces (images, .pts landmarks, part maps, pairs.txt) and/or draw a contact sheet",
    )
    s.add_argument("--out", default=None, help="export folder (new, empty, or an earlier export)")
    s.add_argument("--identities", type=int_at_least(0), default=100, help="train identities (default 100)")
    s.add_argument("--per-identity", type=int_at_least(1), default=20, help="images per identity (default 20)")
    s.add_argument("--size", type=int_at_least(16), default=112, help="image side in pixels (default 112)")
    s.add_argument("--heldout", type=int_at_least(0), default=None,
                   help="held-out identities (default max(20, identities/5))")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--difficulty", type=_difficulty, default="medium", help="easy, medium, hard or a number")
    s.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format (default jpg, quality 95)")
    s.add_argument("--pairs-per-fold", type=int_at_least(0), default=300, help="same (and different) pairs per fold")
    s.add_argument("--workers", type=int_at_least(0), default=0,
                   help="generator processes (default 0: in this process)")
    s.add_argument("--sheet", type=picture_path, default=None, help="PNG contact sheet of 4 identities x 3 samples")
    s.add_argument("--tile", type=int_at_least(16), default=160, help="contact-sheet tile size in pixels (default 160)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth, parser=s)
    from explainface.data.crop import add_crop_parser

    add_crop_parser(sub)
    from explainface.data.part_sheet import add_parts_parser

    add_parts_parser(sub)

    ve = sub.add_parser(
        "verify",
        help="face verification: 10-fold accuracy, AUC, EER, TAR@FAR and ROC on a pair set",
        description="Verify a model on pairs (LFW pairs.txt, insightface .bin, CSV path_a,path_b,same, or the "
        "CFP-FF/CFP-FP protocols of a CFP release folder). "
        "Images are cropped without alignment at the model's input size (cached). --model dlib runs dlib's "
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
    ve.add_argument("--crops", default=None, help="crop cache folder (default: OUT/crops<size>)")
    ve.add_argument("--detector", default="hog", choices=("hog", "cnn", "haar", "auto"))
    ve.add_argument(
        "--crop", default="auto", choices=("auto", "detect", "none"),
        help="detect: crop faces; none: images are model-input crops, only resized; auto (default): none for a "
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

    tr = sub.add_parser(
        "train",
        help="train (or resume) a network from a YAML config",
        description="Train a face-recognition network, optionally with ECLoss. Re-running with the same --out "
        "resumes from its last checkpoint. Under `torchrun --nproc_per_node=N` it uses DistributedDataParallel.",
    )
    tr.add_argument("--config", required=True, help="YAML config (see configs/); may name a `base:`")
    tr.add_argument("--out", required=True, help="run directory: checkpoints, metrics.csv, TensorBoard, curves.png")
    tr.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=0.01")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)
    from explainface.evaluate.explain import add_explain_parser

    add_explain_parser(sub)
    from explainface.explain.visualize import add_visualize_parser

    add_visualize_parser(sub)
    from explainface.explain.why_pipeline import add_why_parser

    add_why_parser(sub)
    from explainface.report.build import add_report_parser

    add_report_parser(sub)
    from explainface.experiment.run import add_experiment_parser

    add_experiment_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``explainface <command> ...``: a user error ends in one ``explainface <command>: error: ...`` line and exit
    status 1, Ctrl-C in 130; bugs keep their traceback (`explainface.errors`)."""
    from explainface.errors import run_command

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return run_command(args.command, lambda: args.func(args), traceback=args.traceback)


if __name__ == "__main__":
    sys.exit(main())
