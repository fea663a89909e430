"""The top-10% activation overlay (paper §3.3, Figure 6): where one channel fires most, as a heatmap on the face."""

from __future__ import annotations

import numpy as np
import torch

from explainface.evaluate.topk import TOP_FRACTION, top_masks
from explainface.models.maps import upsample_maps

#: Colour map of the overlay (Figure 6 style: blue at the mask's edge, red at the channel's peak).
OVERLAY_CMAP = "jet"


def _as_map(fmap: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(fmap) if not isinstance(fmap, torch.Tensor) else fmap).detach().cpu().float()
    if t.ndim != 2:
        raise ValueError(f"a feature map must be [h, w], got shape {tuple(t.shape)}")
    return t


def heat_colors(values: np.ndarray, cmap: str = OVERLAY_CMAP) -> np.ndarray:
    """Values in [0, 1] (any shape) -> RGB float colours in [0, 255] of the colour map (shape + (3,))."""
    from matplotlib import colormaps

    return colormaps[cmap](np.clip(values, 0.0, 1.0))[..., :3] * 255.0


def top_overlay(
    image: np.ndarray,
    fmap: torch.Tensor | np.ndarray,
    fraction: float = TOP_FRACTION,
    alpha: float = 0.5,
    cmap: str = OVERLAY_CMAP,
    return_mask: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One channel's top-`fraction` region (`top_masks`, docs/method.md §7.1) as a heatmap blended onto the face.

    The map is upsampled bilinearly to the image size; inside the mask the colour runs from the threshold (blue)
    to the map's maximum (red) and is blended with weight `alpha`; outside it the face is left exactly as it is
    (decision: no dimming, so the overlay shows the mask and nothing else), and a zero map changes nothing.
    Returns uint8 [H, W, 3], and the bool mask [H, W] with `return_mask=True`.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    size = image.shape[:2]
    m = _as_map(fmap)
    mask = top_masks(m, size, fraction).numpy()
    out = image.copy()
    if mask.any():
        up = upsample_maps(m, size).numpy()
        inside = up[mask]
        lo, hi = float(inside.min()), float(inside.max())
        level = (inside - lo) / (hi - lo) if hi > lo else np.ones_like(inside)
        blend = (1.0 - alpha) * image[mask].astype(np.float64) + alpha * heat_colors(level, cmap)
        out[mask] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return (out, mask) if return_mask else out


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = OVERLAY_CMAP) -> np.ndarray:
    """A whole-image heatmap (values in [0, 1], e.g. Grad-CAM) blended onto the face: uint8 [H, W, 3]."""
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heat {heat.shape} and image {image.shape[:2]} differ in size")
    blend = (1.0 - alpha) * image.astype(np.float64) + alpha * heat_colors(heat, cmap)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
