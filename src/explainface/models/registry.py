"""A small registry of named network builders (timm style).

`create_model("vgg16_bn", width=0.25, input_size=112)` builds a network by name;
builders register themselves with `@register_model`.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch
from torch import nn

from explainface.models.capture import capture_features

_ModelFn = TypeVar("_ModelFn", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: _ModelFn) -> _ModelFn:
    """Register a builder under its function name; a second builder with the same name is an error.

    A builder returns a module with a `target_layer` attribute (a dotted module name). A builder of a
    pretrained network of one shape says so in a `fixed` attribute (e.g. ``{"width": 1.0, "input_size": 150}``):
    `describe_model` builds it at that shape whatever it is asked.
    """
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered networks, sorted."""
    return sorted(_MODELS)


def pretrained_models() -> list[str]:
    """Names of the registered networks that load their own pretrained weights (builders with a `fixed` shape)."""
    return sorted(n for n, fn in _MODELS.items() if hasattr(fn, "fixed"))


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered network `name`; keyword arguments go to its builder."""
    try:
        fn = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    return fn(**kwargs)


def describe_model(name: str, **kwargs: Any) -> dict[str, Any]:
    """Build `name` and report its parameter count, target layer and shapes.

    The shapes come from one forward pass of a single zero image in eval mode
    (BatchNorm1d cannot normalise a batch of one in train mode).
    """
    fixed = getattr(_MODELS.get(name), "fixed", None)
    if fixed is not None:  # a pretrained network: its own shape; its weights change no shape (and may be absent)
        kwargs = {**kwargs, **fixed, "weights": None}
    model = create_model(name, **kwargs)
    model.eval()
    in_chans = getattr(model, "in_chans", 3)
    size = getattr(model, "input_size", 224)
    x = torch.zeros(1, in_chans, size, size)
    with torch.no_grad():
        emb, feat = capture_features(model, x, model.target_layer)
    return {
        "name": name,
        "params": sum(p.numel() for p in model.parameters()),
        "target_layer": model.target_layer,
        "target_layers": list(getattr(model, "target_layers", [model.target_layer])),
        "target_shape": tuple(feat.shape[1:]),
        "embedding_dim": int(emb.shape[-1]),
    }
