"""The call shape shared by every target-layer regulariser (ECLoss, later the diversity losses).

A regulariser is an ``nn.Module`` that takes the target layer's maps
``[B, C, H, W]`` (after ReLU) and returns a scalar loss to be *added*, with a
weight beta, to the identity loss (paper eq. 1).
"""

from __future__ import annotations

import torch
from torch import nn


class MapRegularizer(nn.Module):
    """Base class: validates the maps and calls `compute`; subclasses override only `compute`."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if not isinstance(maps, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a tensor of target-layer maps, got {type(maps).__name__}")
        if maps.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects target-layer maps of shape [B, C, H, W], got shape {tuple(maps.shape)}"
            )
        if not maps.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects floating-point maps, got {maps.dtype}")
        if maps.numel() == 0:
            raise ValueError(f"{type(self).__name__} got empty maps of shape {tuple(maps.shape)}")
        return self.compute(maps)

    def compute(self, maps: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
