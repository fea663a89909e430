"""The `explainface` command line (`explainface.cli.main`); one module per command."""

from explainface.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
