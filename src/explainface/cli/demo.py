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
    print(demo_table(s["models"]))
    print(f"\nopen {s['report']} in a browser (took {s['seconds'] / 60:.1f} min)")
    return 0


#: The metrics the demo prints (their formats: `metric_table.METRICS`).
PRINTED = ("accuracy_mean", "pe_mean", "ls", "ar_mean")


def demo_table(models: dict) -> str:
    """The demo's networks side by side in plain text, each metric in its unit with its spread."""
    from explainface.metric_table import METRICS

    metrics = [METRICS[k] for k in PRINTED]
    rows = [["", *(m.label.split(" (")[0] for m in metrics)]]
    for e in models.values():
        cells = [m.with_spread(e.get(m.key), e.get(m.spread) if m.spread else None) for m in metrics]
        rows.append([e["label"].split(":")[0], *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)  # fmt: skip

