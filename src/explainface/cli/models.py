"""`explainface models` and `explainface templates`: the registered networks, the activation templates."""

from __future__ import annotations

import argparse

from explainface.argtypes import float_in, int_at_least, picture_path


def _cmd_models(args: argparse.Namespace) -> int:
    from explainface.models import describe_model, list_models

    rows = [describe_model(name, width=args.width, input_size=args.input_size) for name in list_models()]
    header = f"{'name':<11} {'params':>10} {'target layer':<22} {'target map':<14} {'embedding':>9}  other targets"
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(str(s) for s in r["target_shape"])
        others = ", ".join(t for t in r["target_layers"] if t != r["target_layer"])
        row = f"{r['name']:<11} {r['params']:>10,} {r['target_layer']:<22} {shape:<14} {r['embedding_dim']:>9}"
        print(f"{row}  {others}")
    print("(a pretrained network is shown at its own shape: dlib_resnet takes 150 px aligned chips, --crop chip)")
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


def _template_count(value: str) -> int | str:
    """`--k`: "full" or a number of templates >= 1."""
    return value if value == "full" else int_at_least(1)(value)


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="list the registered networks and their target layers")
    m.add_argument(
        "--width", type=float_in(0, low_open=True), default=0.25, help="channel width multiplier (default 0.25)"
    )
    m.add_argument("--input-size", type=int, default=112, choices=(112, 224))
    m.set_defaults(func=_cmd_models)


def add_templates_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("templates", help="count (and optionally draw) the activation templates of a map size")
    t.add_argument("--height", type=int_at_least(1), default=14)
    t.add_argument("--width", type=int_at_least(1), default=None, help="default: same as --height")
    t.add_argument("--k", type=_template_count, default="400", help='number of templates or "full" (default 400)')
    t.add_argument("--tau", type=float_in(0, low_open=True), default=0.001)
    t.add_argument("--out", type=picture_path, default=None, help="PNG file to draw the first templates into")
    t.add_argument("--show", type=int_at_least(1), default=48, help="how many templates to draw (evenly spaced)")
    t.set_defaults(func=_cmd_templates)
