"""Capture the output of named modules of any `nn.Module` with forward hooks.

ECLoss (docs/method.md §2) works on the target layer of *any* network, so the layer is
reached by name, never by model surgery. Hooks live in a context manager
(pytorch-grad-cam style) and are removed on exit, also when the body raises.
"""

from __future__ import annotations

import difflib
from types import TracebackType
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def _first_tensor(output: Any, name: str) -> torch.Tensor:
    """The module output itself, or the first tensor of a tuple/list output."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise TypeError(f"module {name!r} returned {type(output).__name__} with no tensor to capture")


def layer_name(model: nn.Module, layer: str | None = None) -> str:
    """`layer`, or the model's `target_layer` when `layer` is None; ValueError when the model has none."""
    name = layer or getattr(model, "target_layer", None)
    if name is None:
        raise ValueError(f"{type(model).__name__} has no target_layer: pass layer= (e.g. 'features.relu5_3')")
    return name


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name` (dotted, as in `model.named_modules()`).

    An unknown name raises ValueError naming the model class and the closest names.
    """
    modules = dict(model.named_modules(remove_duplicate=False))
    if name in modules:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"{type(model).__name__} has no module named {name!r}{hint}")


class FeatureCapture:
    """Record the forward output of one or more named modules while the context is open.

    with FeatureCapture(model, "features.relu5_3") as cap:
        emb = model(x)
    maps = cap.output          # or cap.outputs[name] for a list of names

    Captured tensors stay in the autograd graph unless `detach=True`, so a loss on
    them trains the network. A later forward pass in the same context overwrites
    the earlier capture.
    """

    def __init__(self, model: nn.Module, layers: str | Sequence[str], detach: bool = False) -> None:
        self.model = model
        self.layers: list[str] = [layers] if isinstance(layers, str) else list(layers)
        if not self.layers:
            raise ValueError("FeatureCapture needs at least one layer name")
        # Resolve names now, so a typo fails before any forward pass is paid for.
        self.modules: dict[str, nn.Module] = {n: find_module(model, n) for n in self.layers}
        self.detach = detach
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            t = _first_tensor(output, name)
            self.outputs[name] = t.detach() if self.detach else t

        return hook

    def __enter__(self) -> FeatureCapture:
        self._remove()
        self.outputs = {}
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def output(self) -> torch.Tensor:
        """The captured tensor when exactly one layer is captured."""
        if len(self.layers) != 1:
            raise ValueError(f"{len(self.layers)} layers are captured; use .outputs[name]")
        name = self.layers[0]
        if name not in self.outputs:
            raise RuntimeError(f"nothing captured from {name!r}: run a forward pass inside the `with` block")
        return self.outputs[name]


def capture_features(model: nn.Module, x: torch.Tensor, layer: str, detach: bool = False) -> tuple[Any, torch.Tensor]:
    """Run `model(x)` once and return `(model output, output of module `layer`)`."""
    with FeatureCapture(model, layer, detach=detach) as cap:
        out = model(x)
    return out, cap.output


def target_maps(model: nn.Module, x: torch.Tensor, layer: str | None = None, detach: bool = False) -> torch.Tensor:
    """The maps [B, C, h, w] of batch `x` at `layer` (default: the model's target layer): the model's own
    `forward_features` when that is the layer (no head run), else a hook on the named module during a forward
    pass. The one way every pipeline reads a batch's target-layer maps."""
    name = layer_name(model, layer)
    if hasattr(model, "forward_features") and name == getattr(model, "target_layer", None):
        maps = model.forward_features(x)
    else:
        with FeatureCapture(model, name) as cap:
            model(x)
        maps = cap.output
    return maps.detach() if detach else maps


def embedding_and_maps(model: nn.Module, x: torch.Tensor, layer: str | None = None) -> tuple[torch.Tensor, ...]:
    """(embedding, target-layer maps) of batch `x` in one forward pass, both with their graphs (training): the
    model's `forward_with_features` when `layer` is its target layer, else a hook on the named module."""
    name = layer_name(model, layer)
    fwd = getattr(model, "forward_with_features", None)
    if fwd is not None and name == getattr(model, "target_layer", None):
        return fwd(x)
    with FeatureCapture(model, name) as cap:
        emb = model(x)
    return emb, cap.output
