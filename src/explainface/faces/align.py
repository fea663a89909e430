"""Aligned face chips, as dlib cuts them: landmarks -> a similarity transform -> a `size` x `size` chip.

dlib's face-recognition ResNet (and the networks ported from it) take dlib's *face chips*: the 5-point (or
68-point) shape of a face is fitted, by a least-squares similarity transform (rotation, uniform scale,
translation), to a fixed template of where those points sit in the chip, and the chip is resampled through that
transform (`dlib.get_face_chip_details` / `dlib.extract_image_chip`). This module is our own implementation of
the same definition, so that chips (and the landmarks carried into them) need no dlib:

* the template: the points' places in a unit square face (dlib's published 5-point template, and its mean face
  for the 68-point shape, of which points 27-54 and 60-64 are used: nose, eyes, upper and outer lips; not the
  jaw, brows or lower lip), pushed into the chip by `padding`: `u -> (padding + u) / (1 + 2 padding) * size`;
* the fit: the least-squares similarity chip -> image (closed form of Umeyama's estimate), giving an angle, a
  scale `k` and the image point of the chip centre `(size/2, size/2)`; the chip's *rect* is the square of side
  `size * k` (dlib's rectangle convention: right - left = side - 1) centred there, turned by the angle;
* the chip: pixel (0, 0) sits on the rect's top-left corner and pixel (size - 1, size - 1) on its bottom-right,
  sampled bilinearly (dlib's rule: a pixel whose 2 x 2 neighbourhood leaves the image is black; values are
  truncated to integers, not rounded). Where the rect is more than about twice the chip's side, the image is
  first halved (a 5-tap [1 4 6 4 1] Gaussian, integer arithmetic) as often as dlib does, and sampled there with
  dlib's halving map `p -> p / 2 - (1.25, 0.75)`, so large faces give the same pixels too.

`chip_transform` is the chip <- image affine of the nominal geometry (dlib's `get_mapping_to_chip`); it carries
landmarks into the chip (`transform_points`). docs/decisions.md ("Aligned chips") has the measured parity with
dlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25

#: dlib's 5-point face template (x, y) in a unit face square, in the order of its 5-point shape predictor:
#: the image-right eye's outer and inner corner, the image-left eye's outer and inner corner, the nose base.
TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
#: dlib's mean face for iBUG points 17-67 (x then y), in the same unit square.
_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004, 0.490127,
    0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825,
    0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149, 0.340985,
    0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721, 0.490127, 0.423532, 0.338094, 0.290379,
    0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127, 0.42689,
)  # fmt: skip
_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454,
    0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758,
    0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099, 0.780233,
    0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805,
    0.784792, 0.778746, 0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
)  # fmt: skip
#: The iBUG points the 68-point fit uses: nose (27-35), eyes (36-47), the outer lips' upper half and corners
#: (48-54), the inner lips' upper half (60-64); not the jaw, the brows or the lower lip (they move with expression).
INDICES_68 = np.array([*range(27, 55), *range(60, 65)])
TEMPLATE_68 = np.stack([np.array(_MEAN_FACE_X), np.array(_MEAN_FACE_Y)], axis=1)[INDICES_68 - 17]


@dataclass(frozen=True)
class ChipDetails:
    """Where a chip lies in its image (dlib's `chip_details`): the rect's edges (float pixels; its side is
    `right - left + 1`), turned by `angle` (radians, about the rect's centre), sampled to `size` x `size`."""

    left: float
    top: float
    right: float
    bottom: float
    angle: float
    size: int

    @property
    def width(self) -> float:
        return self.right - self.left + 1

    @property
    def height(self) -> float:
        return self.bottom - self.top + 1

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.left + self.right) / 2, (self.top + self.bottom) / 2])


def chip_template(n_points: int, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """`(indices, template)`: which of the `n_points` (5 or 68) input points the fit uses, and where each sits in
    the `size`-px chip with `padding` (float64 [n, 2])."""
    _check_size_padding(size, padding)
    if n_points == 5:
        indices, unit = np.arange(5), TEMPLATE_5
    elif n_points == 68:
        indices, unit = INDICES_68, TEMPLATE_68
    else:
        raise ValueError(f"a face chip needs 5 or 68 landmarks (dlib's shapes), got {n_points}")
    return indices, (padding + unit) / (2 * padding + 1) * size


def _check_size_padding(size: int, padding: float) -> None:
    if not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"chip size must be a whole number >= 2, got {size!r}")
    if not math.isfinite(padding) or padding < 0:
        raise ValueError(f"chip padding must be a finite number >= 0, got {padding!r}")


def check_points(points: np.ndarray) -> np.ndarray:
    """`points` as float64 [5 or 68, 2], finite; ValueError otherwise."""
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] not in (5, 68):
        raise ValueError(f"a face chip needs landmarks of shape [5, 2] or [68, 2], got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks must be finite")
    return pts


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares similarity `dst ~ M @ src + t` (M = scale * rotation, no reflection): `(M [2, 2], t [2])`.

    Closed form: with both point sets centred, `M = [[a, -b], [b, a]]`, `a = sum(s . d) / sum(|s|^2)`,
    `b = sum(s x d) / sum(|s|^2)` (Umeyama's estimate in 2-D)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    norm = float((s * s).sum())
    if norm == 0:
        m = np.eye(2)
    else:
        a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / norm
        b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
        m = np.array([[a, -b], [b, a]])
    return m, md - m @ ms


def face_chip_details(points: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> ChipDetails:
    """The chip of a face with 5 or 68 landmarks (0-based pixel (x, y)): dlib's `get_face_chip_details`."""
    pts = check_points(points)
    indices, template = chip_template(len(pts), size, padding)
    m, t = similarity_fit(template, pts[indices])
    angle = math.atan2(m[1, 0], m[0, 0])
    scale = math.hypot(m[0, 0], m[1, 0])
    cx, cy = m @ np.array([size / 2.0, size / 2.0]) + t
    half = (size * scale - 1) / 2  # dlib's rectangles: right - left = side - 1
    return ChipDetails(cx - half, cy - half, cx + half, cy + half, angle, int(size))


def _corners(left: float, top: float, right: float, bottom: float, angle: float) -> np.ndarray:
    """The rect's top-left, top-right, bottom-left, bottom-right corners turned by `angle` about its centre."""
    c = np.array([(left + right) / 2, (top + bottom) / 2])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]], np.float64)
    return (corners - c) @ rot.T + c


def _chip_to_rect(corners: np.ndarray, size: int) -> np.ndarray:
    """The 2 x 3 affine chip pixel -> point, taking (0, 0), (size-1, 0), (0, size-1) to the first three corners."""
    tl, tr, bl = corners[0], corners[1], corners[2]
    return np.column_stack([(tr - tl) / (size - 1), (bl - tl) / (size - 1), tl])


def chip_transform(details: ChipDetails) -> np.ndarray:
    """The 2 x 3 affine chip <- image (float64) of `details`: `chip_xy = A @ image_xy + b` as `[A | b]`."""
    forward = _chip_to_rect(_corners(details.left, details.top, details.right, details.bottom, details.angle),
                            details.size)  # fmt: skip
    return invert_affine(forward)


def invert_affine(transform: np.ndarray) -> np.ndarray:
    """The inverse of a 2 x 3 affine `[A | b]`."""
    t = np.asarray(transform, np.float64)
    inv = np.linalg.inv(t[:, :2])
    return np.column_stack([inv, -inv @ t[:, 2]])


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Points [..., 2] (x, y) through a 2 x 3 affine: e.g. all 68 landmarks of an image into its chip (float64)."""
    t = np.asarray(transform, np.float64)
    return np.asarray(points, np.float64) @ t[:, :2].T + t[:, 2]


def face_chip_transform(points: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The 2 x 3 affine chip <- image of the chip of a face with 5 or 68 landmarks."""
    return chip_transform(face_chip_details(points, size, padding))


def align_chip(
    image: np.ndarray, points: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """`(chip, transform)`: the `size` x `size` aligned chip of the face with 5 or 68 landmarks `points` in
    `image` (uint8 [H, W, 3] or [H, W]), as `dlib.get_face_chip(image, shape, size, padding)` cuts it, and the
    2 x 3 affine chip <- image (`transform_points` carries any landmarks into the chip)."""
    details = face_chip_details(points, size, padding)
    return extract_chip(image, details), chip_transform(details)


# --- extraction ---------------------------------------------------------------------------------------------------


def _area(rect: tuple[float, float, float, float]) -> float:
    left, top, right, bottom = rect
    return 0.0 if left > right or top > bottom else (right - left + 1) * (bottom - top + 1)


def _halve(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A rect on the next pyramid level, by dlib's map `p -> p / 2 - (1.25, 0.75)`."""
    left, top, right, bottom = rect
    return left / 2 - 1.25, top / 2 - 0.75, right / 2 - 1.25, bottom / 2 - 0.75


def _lround(x: float) -> int:
    """Round half away from zero (C's `lround`)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def extract_chip(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """The chip `details` describes, cut from `image` (uint8 [H, W, 3] or [H, W]) as dlib's `extract_image_chip`
    does with bilinear interpolation (module docstring): uint8 [size, size(, 3)], black outside the image."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected a uint8 [H, W, 3] or [H, W] image, got {img.dtype} {img.shape}")
    n, rect, angle = details.size, (details.left, details.top, details.right, details.bottom), details.angle
    if angle == 0 and details.width == n and details.height == n:  # no turn, no scale: a plain copy
        return _copy_rect(img, *(_lround(v) for v in rect), n)
    depth, grow, down = 0, 2.0, _halve(rect)
    while _area(down) > n * n:  # how many halvings keep the chip's rect larger than the chip
        down, depth, grow = _halve(down), depth + 1, grow * 2 + 2
    h, w = img.shape[:2]
    turned = _corners(*rect, angle)
    lo, hi = turned.min(0) - grow, turned.max(0) + grow
    x0, y0 = _lround(max(lo[0], 0.0)), _lround(max(lo[1], 0.0))
    x1, y1 = _lround(min(hi[0], w - 1.0)), _lround(min(hi[1], h - 1.0))
    out_shape = (n, n, *img.shape[2:])
    if x0 > x1 or y0 > y1:  # the chip misses the image
        return np.zeros(out_shape, np.uint8)
    source = img[y0 : y1 + 1, x0 : x1 + 1]
    local = (rect[0] - x0, rect[1] - y0, rect[2] - x0, rect[3] - y0)
    while _area(_halve(local)) > n * n:
        source, local = _pyramid_down(source), _halve(local)
    if source.shape[0] == 0 or source.shape[1] == 0:
        return np.zeros(out_shape, np.uint8)
    forward = _chip_to_rect(_corners(*local, angle), n)
    v, u = np.mgrid[0:n, 0:n].astype(np.float64)
    xs = forward[0, 0] * u + forward[0, 1] * v + forward[0, 2]
    ys = forward[1, 0] * u + forward[1, 1] * v + forward[1, 2]
    return _bilinear(source, xs, ys).reshape(out_shape)


def _copy_rect(img: np.ndarray, left: int, top: int, right: int, bottom: int, n: int) -> np.ndarray:
    """The whole pixels `[left, right] x [top, bottom]` (an n x n square), black where they leave the image."""
    out = np.zeros((n, n, *img.shape[2:]), np.uint8)
    h, w = img.shape[:2]
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(right, w - 1), min(bottom, h - 1)
    if sx0 <= sx1 and sy0 <= sy1:
        out[sy0 - top : sy1 - top + 1, sx0 - left : sx1 - left + 1] = img[sy0 : sy1 + 1, sx0 : sx1 + 1]
    return out


def _bilinear(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples at (xs, ys), truncated to uint8; 0 where a neighbour of the 2 x 2 cell leaves the image."""
    h, w = img.shape[:2]
    left, top = np.floor(xs), np.floor(ys)
    inside = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    li = np.where(inside, left, 0).astype(np.intp).ravel()
    ti = np.where(inside, top, 0).astype(np.intp).ravel()
    fx, fy = (xs - left).ravel(), (ys - top).ravel()
    src = img.reshape(h, w, -1).astype(np.float64)
    if not inside.any():
        return np.zeros((xs.size, src.shape[2]), np.uint8)
    ri, bi = np.minimum(li + 1, w - 1), np.minimum(ti + 1, h - 1)
    fx, fy = fx[:, None], fy[:, None]
    value = (1 - fy) * ((1 - fx) * src[ti, li] + fx * src[ti, ri]) + fy * ((1 - fx) * src[bi, li] + fx * src[bi, ri])
    out = value.astype(np.uint8)  # truncation, as dlib assigns a double to an unsigned char
    out[~inside.ravel()] = 0
    return out


def _pyramid_down(img: np.ndarray) -> np.ndarray:
    """One level down dlib's pyramid: the [1 4 6 4 1]^2 / 256 filter (integer, truncated) at every second pixel,
    output pixel (x, y) centred on input (2x + 2, 2y + 2); `(H - 3) // 2` x `(W - 3) // 2`, empty at 8 px or less."""
    h, w = img.shape[:2]
    if h <= 8 or w <= 8:
        return np.zeros((0, 0, *img.shape[2:]), np.uint8)
    src = img.astype(np.int32)
    ow, oh = (w - 3) // 2, (h - 3) // 2
    taps = (1, 4, 6, 4, 1)
    rows = sum(k * src[:, j : j + 2 * ow : 2] for j, k in enumerate(taps))
    cols = sum(k * rows[j : j + 2 * oh : 2] for j, k in enumerate(taps))
    return (cols // 256).astype(np.uint8)
