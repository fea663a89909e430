"""Pair heads: modules that score a PAIR of faces from their target-layer maps (xCos), registered by name.

A pair head is trained by a regulariser (which returns it from ``pair_heads()``), saved in the checkpoint with
its constructor options, and rebuilt at inference by `create_pair_head(name, **options)` so that a scorer
(``explainface verify --score xcos``) can use it. Its interface::

    features(maps [B, C, H, W]) -> per-face features [B, D, h, w] (a grid: its last axis is the image's x)
    score(fa [N, D, h, w], fb [N, D, h, w]) -> [N] pair scores, higher = more likely the same identity
    explain(fa, fb) -> {"cosine": [N, h, w], "attention": [N, h, w]}  (what the score is made of)
    options() -> JSON-able constructor options

Features of a mirrored face are mirrored back along x (`torch.flip(f, dims=[-1])`) and summed with the
original's, like the flip-sum of the embedding protocol.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

_PAIR_HEADS: dict[str, type[nn.Module]] = {}


def register_pair_head(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make pair head `cls` available as `name`."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        old = _PAIR_HEADS.get(name)
        if old is not None and old is not cls:
            raise ValueError(f"a pair head named {name!r} is already registered ({old.__module__}.{old.__name__})")
        for method in ("features", "score", "explain", "options"):
            if not callable(getattr(cls, method, None)):
                raise TypeError(f"pair head {name!r} ({cls.__name__}) has no method {method}()")
        _PAIR_HEADS[name] = cls
        return cls

    return add


def list_pair_heads() -> list[str]:
    _load_builtin()
    return sorted(_PAIR_HEADS)


def create_pair_head(name: str, **options: Any) -> nn.Module:
    """An instance of the registered pair head `name`; unknown options are a ValueError listing the valid ones."""
    _load_builtin()
    try:
        cls = _PAIR_HEADS[name]
    except KeyError:
        known = ", ".join(sorted(_PAIR_HEADS)) or "none"
        raise ValueError(f"unknown pair head {name!r}; registered: {known}") from None
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"pair head {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(params)}")
    return cls(**options)


def _load_builtin() -> None:
    import explainface.models.xcos  # noqa: F401  (registers "xcos")
