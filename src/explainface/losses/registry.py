"""Regularisers by name: ``create_regularizer("ecloss", normalize="max")``, like the model registry.

A new regulariser is a `Regularizer` subclass decorated with
``@register_regularizer("name")``; configs, the trainer and the experiment
then reach it by that name with no new branch anywhere. Parameters are checked
against the constructor's signature, so a typo (``normalise=max``) is an error
that lists the valid options, before any training starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from explainface.losses.base import Regularizer

_REGULARIZERS: dict[str, type[Regularizer]] = {}


def register_regularizer(name: str) -> Callable[[type[Regularizer]], type[Regularizer]]:
    """Class decorator: make `cls` available as `name` (a second, different class under one name is an error)."""

    def add(cls: type[Regularizer]) -> type[Regularizer]:
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise TypeError(f"register_regularizer({name!r}): {cls!r} is not a Regularizer subclass")
        old = _REGULARIZERS.get(name)
        if old is not None and old is not cls:
            raise ValueError(f"a regularizer named {name!r} is already registered ({old.__module__}.{old.__name__})")
        _REGULARIZERS[name] = cls
        return cls

    return add


def list_regularizers() -> list[str]:
    return sorted(_REGULARIZERS)


def regularizer_class(name: str) -> type[Regularizer]:
    try:
        return _REGULARIZERS[name]
    except KeyError:
        raise ValueError(f"unknown regularizer {name!r}; registered: {', '.join(list_regularizers())}") from None


def regularizer_params(name: str) -> dict[str, Any]:
    """The constructor options of regulariser `name` and their defaults (`inspect.Parameter.empty` if required)."""
    sig = inspect.signature(regularizer_class(name).__init__)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in list(sig.parameters.values())[1:] if p.kind in kinds}


def check_regularizer_params(name: str, params: dict[str, Any], where: str = "") -> None:
    """Raise a ValueError naming `where`, the regulariser and the valid options if `params` has an unknown key."""
    known = regularizer_params(name)
    unknown = sorted(set(params) - set(known))
    prefix = f"{where}: " if where else ""
    if unknown:
        raise ValueError(
            f"{prefix}regularizer {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(known)}"
        )
    missing = sorted(k for k, v in known.items() if v is inspect.Parameter.empty and k not in params)
    if missing:
        raise ValueError(f"{prefix}regularizer {name!r} needs option(s) {', '.join(missing)}")


def create_regularizer(name: str, **params: Any) -> Regularizer:
    """An instance of the registered regulariser `name` with `params` (checked: unknown keys are errors)."""
    check_regularizer_params(name, params)
    return regularizer_class(name)(**params)
