"""`eval_mode(*modules)`: run a block with modules in eval mode and put each back in the mode it had."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics, no dropout) inside the block; each module's mode restored after,
    also when the block raises."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, was in zip(modules, modes):
            m.train(was)
