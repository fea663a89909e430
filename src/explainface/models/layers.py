"""Network surgery by layer name: parameter-free layers replaced by the identity.

A port may add a parameter-free layer to a published network (ours adds a ReLU, ``act3``, after an iresnet's
``layer3``: its target layer). `replace_with_identity(model, ["act3"])` takes it out again, so the network computes
what its authors' did with the same weights (the config's ``model.identity_layers``; the retrofit's reference).
The module stays registered under its name (an ``nn.Identity``), so the target layer can still be hooked.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def replace_with_identity(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """`model` with each named layer replaced by ``nn.Identity`` (in place; returned). A name that is not a layer of
    the model, or a layer with parameters or buffers (replacing it would drop weights), is a ValueError naming it."""
    modules = dict(model.named_modules())
    for name in names:
        layer = modules.get(name) if name else None
        if layer is None:
            raise ValueError(f"identity layer {name!r} is not a layer of {type(model).__name__}")
        if next(layer.parameters(), None) is not None or next(layer.buffers(), None) is not None:
            raise ValueError(f"identity layer {name!r} ({type(layer).__name__}) has weights: only parameter-free "
                             "layers (activations) can be replaced by the identity")  # fmt: skip
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, nn.Identity())
    return model
