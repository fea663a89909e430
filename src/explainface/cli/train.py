"""`explainface train`: train (or resume) a network from a YAML config (`explainface.training`)."""

from __future__ import annotations

import argparse
import os


def _cmd_train(args: argparse.Namespace) -> int:
    from explainface.training import Trainer, load_config

    cfg = load_config(args.config, args.overrides)
    summary = Trainer(cfg, args.out, progress=not args.quiet).train()
    if summary["world_size"] == 1 or int(os.environ.get("RANK", "0")) == 0:
        val = summary["val"]
        acc = f", verification {100 * val['accuracy']:.2f}%" if val else ""
        print(
            f"trained {summary['steps']}/{summary['total_steps']} steps ({summary['epochs']:.2f} epochs) at "
            f"{summary['images_per_s']:.0f} images/s{acc}; checkpoint {summary['checkpoint']}; logs in {args.out}"
        )
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
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
