"""Drawing a synthetic face with OpenCV: RGB image and part-label map from projected geometry.

Everything is drawn at the requested size with anti-aliased, sub-pixel polygons
(`cv2.fillPoly` with a fixed-point shift), so one sample costs about a
millisecond at 112 x 112. The label map is drawn with the same polygons,
without anti-aliasing, in the priority order of docs/method.md §6.4.
"""

from __future__ import annotations

import cv2
import numpy as np

from explainface.parts.labels import PAINT_ORDER, PART_INDEX

_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT


def _fix(poly: np.ndarray) -> np.ndarray:
    """Pixel coordinates [n, 2] -> int32 fixed-point for cv2 drawing with shift=_SHIFT."""
    return np.round(poly * _ONE).astype(np.int32)


def fill(img: np.ndarray, polys: list[np.ndarray], color, aa: bool = True) -> None:
    """Fill polygons (pixel coordinates) in place."""
    polys = [_fix(p) for p in polys if len(p) >= 3]
    if polys:
        cv2.fillPoly(img, polys, color, lineType=cv2.LINE_AA if aa else cv2.LINE_8, shift=_SHIFT)


def line(img: np.ndarray, pts: np.ndarray, color, thickness: float, closed: bool = False) -> None:
    """Anti-aliased polyline through pixel points."""
    cv2.polylines(img, [_fix(pts)], closed, color, max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)


def ellipse(img: np.ndarray, center, axes, angle_deg: float, color, thickness: int = -1) -> None:
    """Anti-aliased (filled by default) ellipse; centre and axes in pixels."""
    c = (int(round(center[0] * _ONE)), int(round(center[1] * _ONE)))
    a = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(img, c, a, angle_deg, 0, 360, color, thickness, cv2.LINE_AA, _SHIFT)


def label_map(size: int, parts: dict[str, list[np.ndarray]]) -> np.ndarray:
    """uint8 [size, size] part labels: polygons painted lowest priority first (docs/method.md §6.4)."""
    out = np.zeros((size, size), np.uint8)
    for name in PAINT_ORDER:
        if name in parts:
            fill(out, parts[name], int(PART_INDEX[name]), aa=False)
    return out


def background(rng: np.random.Generator, size: int, clutter: float) -> np.ndarray:
    """A colour gradient with random shapes (clutter ~ expected number of shapes)."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    if rng.random() < 0.5:
        ramp = ramp[:, None, None]
    else:
        ramp = ramp[None, :, None]
    img = (c0 + (c1 - c0) * ramp).astype(np.uint8)
    img = np.ascontiguousarray(np.broadcast_to(img, (size, size, 3)))
    for _ in range(rng.poisson(clutter)):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        p = rng.random(4) * size
        if kind == 0:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, -1)
        elif kind == 1:
            ellipse(img, p[:2], (p[2] * 0.25 + 1, p[3] * 0.25 + 1), float(rng.random() * 180), color)
        else:
            line(img, p.reshape(2, 2), color, 1 + rng.random() * size / 40)
    return img


def apply_lighting(img: np.ndarray, rng: np.random.Generator, strength: float, brightness: float) -> np.ndarray:
    """Multiply by a linear lighting gradient in a random direction and a global brightness."""
    size = img.shape[0]
    ang = rng.random() * 2 * np.pi
    g = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    field = brightness * (1.0 + strength * (np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None]))
    out = img.astype(np.float32) * field[:, :, None]
    return np.clip(out, 0, 255)


def finish(img_f: np.ndarray, rng: np.random.Generator, noise: float, blur: float) -> np.ndarray:
    """Gaussian blur (sigma in pixels) and additive Gaussian noise (0-255 scale) -> uint8."""
    if blur > 0.15:
        img_f = cv2.GaussianBlur(img_f, (0, 0), blur)
    if noise > 0:
        img_f = img_f + rng.standard_normal(img_f.shape, dtype=np.float32) * noise
    return np.clip(img_f + 0.5, 0, 255).astype(np.uint8)
