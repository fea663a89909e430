"""`TargetMapNet`: what every backbone shares -- a network split at its target layer."""

from __future__ import annotations

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
