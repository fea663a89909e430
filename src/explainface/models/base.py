"""`TargetMapNet`: what every backbone shares -- a network split at its target layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


class TargetMapNet(nn.Module):
    """A face network split at its target layer: subclasses define `forward_features` (images -> target maps)
    and `forward_head` (target maps -> embedding); the forward passes built from them live here."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, feat: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding, target map) from one pass, so training needs no hook."""
        feat = self.forward_features(x)
        return self.forward_head(feat), feat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@dataclass
class LoadedModel:
    """A model ready for inference: eval mode, its input size, target layer and a label for tables."""

    model: torch.nn.Module
    input_size: int
    layer: str
    label: str
    pair_heads: dict[str, torch.nn.Module] = field(default_factory=dict)  # trained pair scorers (xCos), by name
    source: str | None = None  # the checkpoint file, when loaded from one
