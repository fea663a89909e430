"""Yin et al.'s synthetic occlusion: a black window placed on the face through its 68 landmarks.

Yin et al. 2019 ("Towards Interpretable Face Recognition", ICCV; official TF1 code ``yubangji123/Interpret_FR``,
``training/ops.py: occludedFaces`` and ``test/eval/gen_syn_occl.py``) train a second, occluded branch: every face of
a batch gets a black ``w x h = 32 x 12`` px window whose place is drawn in a 110 x 110 *mean-face frame* and
carried onto each image through its landmarks. What their code does, and what we do:

* **Where.** The window's top-left corner is drawn uniformly from ``x in 10..68, y in 10..88`` (``range(10,
  110 - w - 9)``) and the two ends are then moved one pixel inwards (``10 -> 11``, ``68 -> 67``, ``88 -> 87``):
  ``x in 11..67``, ``y in 11..87``, the ends twice as likely. **One place per batch**: their
  ``random.sample`` runs once, before the loop over the batch's faces, so every face of a batch is occluded at
  the same place of the face; this is what makes the batch mean of FAD (`explainface.losses.yin`) mean "the
  elements this part of the face drives". We draw the same integers (`sample_window_centres`) with a
  ``torch.Generator`` (``per_image=True`` draws one place per face instead). A fixed place can be asked for
  with ``centre=(cx, cy)`` (mean-face frame).
* **How it reaches the image.** Theirs: each of the 4 corners goes through the piecewise-affine warp of a
  142-triangle mesh (``tVM.mat``) over their 76-point mean face (68 landmarks + 8 points on the frame's border,
  ``landmark68_7.mat``, shifted by +7 px) onto the image's landmarks, minus the random-crop offset; the
  quadrilateral is then filled with PIL. Ours: one least-squares **similarity transform** (scale, rotation,
  translation; no reflection) from our 68-point mean face `MEAN_FACE_110` onto the image's 68 landmarks
  (`similarity_transform`, `landmark_transforms`), so the window is a rectangle that follows the face's
  position, size and roll (not its expression or yaw, which their mesh also follows). The window therefore
  scales with the input size (112, 224, ...) by itself: only the landmarks change.
* **Rasterisation.** A pixel (centre at integer coordinates) is occluded when its centre lies in the closed
  transformed rectangle (`window_mask`); PIL's ``polygon(fill, outline)`` also fills the outline, so theirs
  covers ``(w + 1) x (h + 1)`` pixels at scale 1 where ours covers ``w x h`` up to boundary ties (33 x 13 with
  the corners on pixel centres, as at scale 1 in the 110 frame). Occluded pixels are set to ``fill = -1.0``,
  black under the mean 0.5 / std 0.5 normalisation (theirs: ``x / 127.5 - 1``, then ``-1``), in all channels.
* **The mean face.** Theirs is a specific face of their data; ours (`MEAN_FACE_110`) is derived from the
  project's synthetic faces and no real face: the average of the 68 landmarks of
  ``SyntheticFaces(0, "easy").sample(i, j, 110)`` for identities ``i < 200`` and samples ``j < 5`` (1,000
  faces), made exactly left-right symmetric (averaged with its mirror, ``x -> 109 - x`` and `IBUG_MIRROR`),
  then placed in the 110 frame by ``p -> 1.51 p + (55 - 1.51 * 54.5, -30.88)``. That placement (no rotation)
  is the least-squares scale + translation of our shape onto theirs (their ``landmark68_7 + 7``, 68 points:
  scale 1.511, face axis at x = 55.08, rms residual 4.6 px), with the face's axis put at x = 55.0, the middle
  of the window centres' range (27..83), so the draw is symmetric about the face (a mirrored face sees the
  mirrored distribution). Only those three numbers come from their file; the shape is ours. In that frame
  the inter-ocular distance (eye centres) is 30.7 px (theirs 34.7) and the window 32 x 12 px is about one
  inter-ocular distance wide, as theirs: drawn windows fall from the forehead to the chin.
* **Unknown landmarks.** Rows that are NaN are left out of the fit (weight 0); a face with fewer than 2 known
  points (e.g. RecordIO data: all NaN, ``landmarks=None``) or a degenerate fit is placed as the average face
  of the crop frame: `crop_mean_face` (the synthetic average before the placement above, in an S-pixel crop
  with pixel centres at integers, ``(p + 0.5) S / 110 - 0.5``), i.e. where the no-alignment crops and the
  synthetic faces put a face on average.

Everything is batched torch (float64 for the geometry, on the images' device); randomness only from the
``torch.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "CROP_SCALE",
    "CROP_SHIFT",
    "FRAME",
    "MEAN_FACE_110",
    "WINDOW",
    "apply_transform",
    "crop_mean_face",
    "landmark_transforms",
    "mean_face",
    "occlude",
    "occluder_windows",
    "sample_window_centres",
    "similarity_transform",
    "window_mask",
]

#: Yin et al.'s window (width, height) in pixels of the 110-pixel mean-face frame.
WINDOW: tuple[int, int] = (32, 12)
#: The side of the mean-face frame in which the window is drawn.
FRAME: int = 110

#: The 68 iBUG landmarks (x, y) of our mean face in the 110-pixel mean-face frame (see the module docstring for
#: its derivation: the synthetic faces' average, symmetric about x = 55, placed to match Yin et al.'s scale).
MEAN_FACE_110: np.ndarray = np.array(
    [
        # jaw 0-16
        (18.48, 49.61), (19.14, 61.10), (21.08, 70.64), (24.25, 79.19), (28.53, 86.59), (33.79, 92.63),
        (39.89, 97.11), (46.73, 99.87), (55.00, 100.79), (63.27, 99.87), (70.11, 97.11), (76.21, 92.63),
        (81.47, 86.59), (85.75, 79.19), (88.92, 70.64), (90.86, 61.10), (91.52, 49.61),
        # brows 17-26
        (32.84, 38.44), (35.93, 37.19), (39.02, 36.90), (42.12, 37.57), (45.21, 39.20), (64.79, 39.20),
        (67.88, 37.57), (70.98, 36.90), (74.07, 37.19), (77.16, 38.44),
        # nose 27-35
        (55.00, 46.03), (55.00, 52.46), (55.00, 58.89), (55.00, 65.32), (48.77, 66.63), (51.88, 67.94),
        (55.00, 68.69), (58.12, 67.94), (61.23, 66.63),
        # eyes 36-47
        (32.35, 46.76), (37.22, 44.07), (42.08, 44.08), (46.94, 46.81), (42.07, 49.31), (37.21, 49.30),
        (63.06, 46.81), (67.92, 44.08), (72.78, 44.07), (77.65, 46.76), (72.79, 49.30), (67.93, 49.31),
        # mouth 48-67
        (42.73, 80.76), (48.25, 79.79), (52.55, 79.26), (55.00, 79.68), (57.45, 79.26), (61.75, 79.79),
        (67.27, 80.76), (61.75, 84.21), (57.45, 84.76), (55.00, 84.90), (52.55, 84.76), (48.25, 84.21),
        (44.94, 80.88), (51.32, 80.98), (55.00, 81.16), (58.68, 80.98), (65.06, 80.88), (58.68, 82.36),
        (55.00, 82.18), (51.32, 82.36),
    ],
    dtype=np.float64,
)  # fmt: skip
MEAN_FACE_110.setflags(write=False)

#: ``MEAN_FACE_110 = CROP_SCALE * (average face of a 110-pixel crop) + CROP_SHIFT`` (see `crop_mean_face`).
CROP_SCALE: float = 1.51
CROP_SHIFT: tuple[float, float] = (55.0 - 1.51 * 54.5, -30.88)

#: Fewest known landmarks for a fit of the face's own; below that the face is placed as the crop's mean face.
_MIN_POINTS = 2
#: A fitted scale below this is degenerate (all known points in one place): the face falls back likewise.
_MIN_SCALE = 1e-6


def _f64(x, device=None) -> torch.Tensor:
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # torch warns on read-only arrays (MEAN_FACE_110)
    return torch.as_tensor(x, dtype=torch.float64, device=device)


def mean_face(frame: float = FRAME, device=None) -> torch.Tensor:
    """`MEAN_FACE_110` in a `frame`-pixel mean-face frame (scaled by frame / 110), [68, 2] float64."""
    return _f64(MEAN_FACE_110, device) * (float(frame) / FRAME)


def crop_mean_face(size: int, device=None) -> torch.Tensor:
    """The average face of a `size`-pixel crop, [68, 2] float64: the synthetic faces' (symmetric) average, i.e.
    `MEAN_FACE_110` before its placement, resized from 110 pixels with pixel centres at integers."""
    crop110 = (_f64(MEAN_FACE_110, device) - _f64(CROP_SHIFT, device)) / CROP_SCALE
    return (crop110 + 0.5) * (float(size) / FRAME) - 0.5


def similarity_transform(src, dst, weights=None) -> torch.Tensor:
    """Least-squares similarity (scale, rotation, translation; never a reflection) taking `src` onto `dst`.

    src, dst: [..., N, 2] point sets (broadcastable), weights: optional [..., N] (0 leaves a point out).
    Returns [..., 2, 3] float64 ``M`` with ``dst ~ src @ M[:, :2].T + M[:, 2]``. In complex numbers
    ``z = x + iy`` the model is ``dst = a src + t``; its least-squares ``a = sum w conj(s) d / sum w |s|^2``
    (s, d centred on their weighted means) is a proper rotation times a scale by construction.
    """
    s_pts, d_pts = _f64(src), _f64(dst)
    dev = s_pts.device if s_pts.device.type != "cpu" else d_pts.device
    s_pts, d_pts = s_pts.to(dev), d_pts.to(dev)
    s_pts, d_pts = torch.broadcast_tensors(s_pts, d_pts)
    w = torch.ones(s_pts.shape[:-1], dtype=torch.float64, device=dev) if weights is None else _f64(weights, dev)
    w = w.expand(s_pts.shape[:-1])
    wsum = w.sum(-1, keepdim=True)  # [..., 1]
    ms = (w[..., None] * s_pts).sum(-2) / wsum  # [..., 2]
    md = (w[..., None] * d_pts).sum(-2) / wsum
    s = s_pts - ms[..., None, :]
    d = d_pts - md[..., None, :]
    sx, sy, dx, dy = s[..., 0], s[..., 1], d[..., 0], d[..., 1]
    den = (w * (sx * sx + sy * sy)).sum(-1)
    ar = (w * (sx * dx + sy * dy)).sum(-1) / den
    ai = (w * (sx * dy - sy * dx)).sum(-1) / den
    tx = md[..., 0] - (ar * ms[..., 0] - ai * ms[..., 1])
    ty = md[..., 1] - (ai * ms[..., 0] + ar * ms[..., 1])
    row0 = torch.stack([ar, -ai, tx], -1)
    row1 = torch.stack([ai, ar, ty], -1)
    return torch.stack([row0, row1], -2)


def apply_transform(matrix: torch.Tensor, points) -> torch.Tensor:
    """Points [..., N, 2] through affine matrices [..., 2, 3] (float64)."""
    p = _f64(points, matrix.device)
    return p @ matrix[..., :2].transpose(-1, -2) + matrix[..., None, :, 2]


def landmark_transforms(landmarks: torch.Tensor, size: int, frame: float = FRAME) -> torch.Tensor:
    """[B, 2, 3] float64 similarity transforms from the `frame`-pixel mean-face frame onto each face of a
    `size`-pixel image, fitted to its 68 landmarks [B, 68, 2]; NaN rows are left out, and a face with fewer than
    2 known points (or a degenerate fit) gets the transform onto `crop_mean_face` (the module docstring)."""
    lm = _f64(landmarks)
    if lm.dim() != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must have shape [B, 68, 2], got {tuple(lm.shape)}")
    src = mean_face(frame, lm.device)
    fallback = crop_mean_face(size, lm.device)
    valid = torch.isfinite(lm).all(-1)  # [B, 68]
    dst = torch.where(valid[..., None], lm, fallback)  # NaN rows filled (weight 0) so no NaN enters the sums
    fit = similarity_transform(src, dst, valid.to(torch.float64))
    scale = fit[:, 0, :2].norm(dim=-1)
    ok = (valid.sum(1) >= _MIN_POINTS) & torch.isfinite(fit).all(-1).all(-1) & (scale > _MIN_SCALE)
    placed = similarity_transform(src, fallback)  # [2, 3]
    return torch.where(ok[:, None, None], torch.nan_to_num(fit), placed)


def sample_window_centres(
    n: int, generator: torch.Generator, window: Sequence[float] = WINDOW, frame: int = FRAME
) -> torch.Tensor:
    """[n, 2] float64 window centres in the mean-face frame, drawn as Yin et al. draw the top-left corner:
    ``x ~ U{10 .. frame-w-10}``, ``y ~ U{10 .. frame-h-10}``, then clamped to one pixel inside those ends (the
    ends become twice as likely); centre = corner + (w/2, h/2). 110 frame, 32 x 12: x in 27..83, y in 17..93."""
    w, h = (int(v) for v in window)
    lo, hi_x, hi_y = 11, int(frame) - w - 11, int(frame) - h - 11
    if hi_x < lo or hi_y < lo:
        raise ValueError(f"a {w} x {h} window does not fit a {frame}-pixel frame with Yin et al.'s margins")
    dev = generator.device
    x = torch.randint(10, int(frame) - w - 9, (n,), generator=generator, device=dev).clamp(lo, hi_x)
    y = torch.randint(10, int(frame) - h - 9, (n,), generator=generator, device=dev).clamp(lo, hi_y)
    return torch.stack([x.double() + w / 2, y.double() + h / 2], 1)


def occluder_windows(
    landmarks: torch.Tensor,
    size: int,
    generator: torch.Generator | None = None,
    window: Sequence[float] = WINDOW,
    frame: int = FRAME,
    centre=None,
    per_image: bool = False,
) -> torch.Tensor:
    """Corners [B, 4, 2] float64 (image pixels; top-left, bottom-left, bottom-right, top-right of the window in
    the mean-face frame, as Yin et al.) of each face's occluding window.

    The window (w, h pixels of the `frame`-pixel mean-face frame) is centred at `centre` ((cx, cy) or [B, 2], in
    that frame) or, when None, at a place drawn from `generator` (`sample_window_centres`): one for the whole
    batch as in Yin et al.'s code, or one per face with `per_image`. It reaches each image through
    `landmark_transforms` (landmarks [B, 68, 2] in the `size`-pixel input frame; NaN rows unknown).
    """
    lm = _f64(landmarks)
    b = lm.shape[0]
    w, h = float(window[0]), float(window[1])
    if centre is None:
        if generator is None:
            raise ValueError("occluder_windows needs a generator (or a fixed centre)")
        c = sample_window_centres(b if per_image else 1, generator, window, frame).to(lm.device)
    else:
        c = _f64(centre, lm.device).reshape(-1, 2)
    c = c.expand(b, 2)
    offsets = _f64([(-w / 2, -h / 2), (-w / 2, h / 2), (w / 2, h / 2), (w / 2, -h / 2)], lm.device)
    corners = c[:, None, :] + offsets  # [B, 4, 2] in the mean-face frame
    return apply_transform(landmark_transforms(lm, size, frame), corners)


def window_mask(corners: torch.Tensor, size) -> torch.Tensor:
    """Rasterise parallelograms (rotated rectangles) [B, 4, 2] (corners in `occluder_windows`' order) onto
    [B, H, W] bool: a pixel (centre at integer (x, y) = (column, row)) is inside when its centre is in the closed
    shape. `size` is S or (H, W)."""
    hgt, wid = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    c = _f64(corners)
    p0 = c[:, 0]  # [B, 2]
    u = c[:, 3] - p0  # along the width
    v = c[:, 1] - p0  # along the height
    det = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    safe = torch.where(det != 0, det, torch.ones_like(det))
    ys = torch.arange(hgt, dtype=torch.float64, device=c.device)
    xs = torch.arange(wid, dtype=torch.float64, device=c.device)
    dx = xs[None, None, :] - p0[:, 0, None, None]  # [B, 1, W]
    dy = ys[None, :, None] - p0[:, 1, None, None]  # [B, H, 1]
    # solve p - p0 = a u + b v
    a = (dx * v[:, 1, None, None] - dy * v[:, 0, None, None]) / safe[:, None, None]
    bb = (dy * u[:, 0, None, None] - dx * u[:, 1, None, None]) / safe[:, None, None]
    eps = 1e-9
    inside = (a >= -eps) & (a <= 1 + eps) & (bb >= -eps) & (bb <= 1 + eps)
    return inside & (det != 0)[:, None, None]


def occlude(
    images: torch.Tensor,
    landmarks: torch.Tensor | None,
    generator: torch.Generator | None = None,
    window: Sequence[float] = WINDOW,
    frame: int = FRAME,
    centre=None,
    per_image: bool = False,
    fill: float = -1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images with each face's window set to `fill` in every channel, the windows [B, H, W] bool).

    images: [B, C, H, W] (any memory format, kept); landmarks: [B, 68, 2] in the images' frame, NaN rows unknown,
    or None (every face placed as the crop's mean face). The rest as in `occluder_windows`; `fill` -1.0 is black
    under the mean 0.5 / std 0.5 normalisation.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape [B, C, H, W], got {tuple(images.shape)}")
    b, _, hgt, wid = images.shape
    if landmarks is None:
        landmarks = torch.full((b, 68, 2), float("nan"), dtype=torch.float64, device=images.device)
    corners = occluder_windows(landmarks.to(images.device), hgt, generator, window, frame, centre, per_image)
    masks = window_mask(corners, (hgt, wid))
    out = images.masked_fill(masks[:, None], fill)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out, masks
