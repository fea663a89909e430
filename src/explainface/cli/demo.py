"""`explainface demo`: the whole pipeline on the built-in synthetic faces (`explainface.experiments.demo`)."""

from __future__ import annotations

from explainface.argtypes import float_in
from explainface.experiments.demo import (
    DemoPlan,
    demo,
    train_config,
)


def add_demo_parser(subparsers) -> None:
    """The `demo` subcommand: `explainface demo [--out DIR] [--minutes M] [--seed S] [--quick]`."""
    d = subparsers.add_parser(
        "demo",
        help="train an ordinary and an ECLoss network on synthetic faces, evaluate both, write an HTML report",
        description="The whole pipeline on the built-in synthetic faces: export held-out faces, train an ordinary "
        "network and an ECLoss network with the same seed and time budget, verify both on held-out pairs, "
        "measure part explainability, location consistency and activation robustness, draw the pictures and "
        "write OUT/report.html and OUT/summary.json.",
    )
    d.add_argument("--out", default="explainface-demo", help="output folder (default ./explainface-demo)")
    d.add_argument(
        "--minutes", type=float_in(0, low_open=True), default=None, help="total time budget (default 8; --quick: 0.5)"
    )
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quick", action="store_true", help="a tiny network and few faces: a smoke test in about a minute")
    d.add_argument(
        "--method", default="recommended", metavar="SPEC",
        help="how the ECLoss network trains: an `explainface experiment` method (default: recommended, the project's "
        "recipe; ecloss: the paper's ECLoss; ecloss:normalize=max ...)",
    )  # fmt: skip
    d.add_argument(
        "--ecloss", action="append", default=[], metavar="KEY=VALUE",
        help="one more option of that method (repeatable), e.g. --method ecloss --ecloss normalize=max",
    )  # fmt: skip
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    if args.minutes is not None and args.minutes <= 0:
        args.parser.error("--minutes must be positive")
    plan = DemoPlan.quick(seed=args.seed) if args.quick else DemoPlan(seed=args.seed)
    if args.minutes is not None:
        plan.minutes = args.minutes
    plan.method, plan.ecloss_options = args.method, list(args.ecloss)
    train_config(plan, ecloss=True, max_steps=10)  # a bad method or option: one error line before any work
    s = demo(args.out, plan, progress=not args.quiet)
    p = s["plan"]
    print(f"\nboth networks: {p['model']} width {p['width']:g} at {p['input_size']} px, "
          f"{s['steps_per_network']} steps; measured on held-out synthetic faces")  # fmt: skip
    width = max(22, *(len(m["label"].split(":")[0]) + 2 for m in s["models"].values()))
    print(f"{'':<{width}}{'accuracy':>16}{'PE':>18}{'LS':>9}{'AR':>15}")
    for m in s["models"].values():
        print(
            f"{m['label'].split(':')[0]:<{width}}{100 * m['accuracy_mean']:>9.2f}% +- {100 * m['accuracy_std']:.2f}"
            f"{m['pe_mean']:>10.4f} +- {m['pe_se']:.4f}{m['ls']:>9.4f}{m['ar_mean']:>8.2f} +- {m['ar_std']:.2f}"
        )
    print(f"\nopen {s['report']} in a browser (took {s['seconds'] / 60:.1f} min)")
    return 0
