"""The `explainface` command: a thin argparse layer over the library, one module per command.

Each command module has an `add_<name>_parser(sub)` and a runner that parses nothing itself and calls public
library functions, so a notebook user can do the same.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from explainface import __version__
from explainface.cli.crop import add_crop_parser
from explainface.cli.demo import add_demo_parser
from explainface.cli.experiment import add_experiment_parser
from explainface.cli.explain import add_explain_parser
from explainface.cli.models import add_models_parser, add_templates_parser
from explainface.cli.parts import add_parts_parser
from explainface.cli.report import add_report_parser
from explainface.cli.retrofit import add_retrofit_parser
from explainface.cli.synth import add_synth_parser
from explainface.cli.train import add_train_parser
from explainface.cli.verify import add_verify_parser
from explainface.cli.visualize import add_visualize_parser
from explainface.cli.why import add_why_parser

#: The commands in `--help` order: the main job first, then the pipeline's order.
COMMANDS = (
    add_demo_parser,
    add_models_parser,
    add_templates_parser,
    add_synth_parser,
    add_crop_parser,
    add_parts_parser,
    add_verify_parser,
    add_train_parser,
    add_retrofit_parser,
    add_explain_parser,
    add_visualize_parser,
    add_why_parser,
    add_report_parser,
    add_experiment_parser,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="explainface",
        description="Explainable face recognition with the Explainable Channel Loss (ECLoss).",
    )
    p.add_argument("--version", action="version", version=f"explainface {__version__}")
    p.add_argument("--traceback", action="store_true",
                   help="show the traceback of input errors too (bug reports; or EXPLAINFACE_TRACEBACK=1)")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="<command>")
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():  # a command-line mistake inside a command: args.parser.error (exit 2)
        command.set_defaults(parser=command)
    return p


def _is_override(word: str) -> bool:
    """A ``key=value`` word (``optim.lr=0.01``, ``regularizers=[]``), not an option."""
    key, sep, _ = word.partition("=")
    return bool(sep) and bool(key) and not word.startswith("-")


def main(argv: Sequence[str] | None = None) -> int:
    """``explainface <command> ...``: a user error ends in one ``explainface <command>: error: ...`` line and exit
    status 1, Ctrl-C in 130; bugs keep their traceback (`explainface.errors`)."""
    from explainface.errors import run_command

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list) and all(_is_override(e) for e in extra):
        args.overrides += extra  # key=value overrides given after an option (`--out o optim.lr=1`) are overrides
        extra = []
    if extra:  # said by the command's own parser: its usage line and `explainface <command>: error: ...`
        (getattr(args, "parser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return run_command(args.command, lambda: args.func(args), traceback=args.traceback)


if __name__ == "__main__":
    sys.exit(main())
