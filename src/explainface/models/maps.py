"""Target-layer maps at the input's resolution: the one upsampling every metric and picture uses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def size2(size: int | tuple[int, int]) -> tuple[int, int]:
    """`size` as (height, width)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def upsample_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of `[..., h, w]` maps to the input size (align_corners=False, as image resizing), float32."""
    lead = maps.shape[:-2]
    x = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    up = F.interpolate(x, size=size2(size), mode="bilinear", align_corners=False)
    return up.reshape(*lead, *up.shape[-2:])
