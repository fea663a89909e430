"""The input every network here takes: uint8 RGB images normalised to [-1, 1] (docs/method.md §4.3)."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> float32 [3, H, W] normalised with mean 0.5, std 0.5 (docs/method.md §4.3)."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
