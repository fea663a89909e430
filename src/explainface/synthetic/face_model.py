"""Geometry of a synthetic face: identity shape -> 68 iBUG landmarks and part polygons.

Canonical frame (face units): x to the image right, y down, origin near the
nose bridge; the face is about 2 units wide and 2.5 tall. Every point also has
a depth z (towards the camera) so that a left-right head turn (yaw) can be
applied as a 3-D rotation with orthographic projection. The subject's right
side is at negative x (iBUG: the first of each left/right pair).

Landmarks follow iBUG 68 semantics (0-based): jaw 0-16, brows 17-26, nose 27-35,
eyes 36-47, mouth 48-67. Part polygons follow the geometry of docs/method.md §6 and are built
in the same frame, so they move with the landmarks under any pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------
# identity shape parameters (means; identities draw deviations around them)


@dataclass(frozen=True)
class Shape:
    """Identity-dependent geometry in face units (see `generator.sample_identity`)."""

    face_w: float = 1.0  # half-width of the face at the jaw top
    jaw_top: float = -0.05  # y where the jaw contour starts (landmarks 0 and 16)
    chin: float = 1.3  # y of the chin (landmark 8)
    jaw_square: float = 2.2  # superellipse exponent of the jaw: 2 = round, 3 = square
    head_top: float = -1.55  # y of the top of the skull (eyes about half-way down the head)
    eye_y: float = -0.12
    eye_dx: float = 0.42  # half distance between eye centres
    eye_w: float = 0.2  # half-width of an eye
    eye_h: float = 0.085  # half-height of an eye
    eye_tilt: float = 0.0  # radians, outer corners up when positive
    brow_gap: float = 0.2  # brow height above the eye centre
    brow_len: float = 0.34
    brow_arch: float = 0.06
    brow_thick: float = 0.055
    nose_bottom: float = 0.45
    nose_w: float = 0.17
    mouth_y: float = 0.8
    mouth_w: float = 0.33  # half-width
    lip_upper: float = 0.055
    lip_lower: float = 0.075


@dataclass(frozen=True)
class Expression:
    """Per-sample expression: smile, mouth opening and eye closure, each in [0, 1]."""

    smile: float = 0.0
    open_mouth: float = 0.0
    blink: float = 0.0


@dataclass(frozen=True)
class Pose:
    """Per-sample pose: in-plane rotation and yaw (radians), scale (pixels per face unit), centre (pixels)."""

    roll: float
    yaw: float
    scale: float
    cx: float
    cy: float


def _surface_z(x: np.ndarray, face_w: float) -> np.ndarray:
    """Depth of the face surface: a cylinder-like bulge, 0 at the sides, 0.55 in the middle."""
    u = np.clip(x / (face_w * 1.05), -1.0, 1.0)
    return 0.55 * (1.0 - u * u)


def landmarks_3d(shape: Shape, expr: Expression) -> np.ndarray:
    """The 68 iBUG landmarks of an identity with an expression, canonical frame, [68, 3] (x, y, z)."""
    s = shape
    pts = np.zeros((68, 3))
    # jaw 0-16: superellipse from the subject's right temple (x<0) over the chin to the left
    phi = np.linspace(0.0, np.pi, 17)
    e = 2.0 / s.jaw_square
    c, si = np.cos(phi), np.sin(phi)
    pts[0:17, 0] = -s.face_w * np.sign(c) * np.abs(c) ** e
    pts[0:17, 1] = s.jaw_top + (s.chin - s.jaw_top) * np.abs(si) ** e
    # an open mouth drops the jaw with the lower lip, most at the chin
    gap = 0.2 * expr.open_mouth
    pts[0:17, 1] += gap * ((pts[0:17, 1] - s.jaw_top) / (s.chin - s.jaw_top)) ** 2

    # brows: right 17-21 outer -> inner, left 22-26 inner -> outer
    t = np.linspace(0.0, 1.0, 5)
    arch = s.brow_arch * (1.0 - ((t - 0.45) / 0.55) ** 2)
    brow_y = s.eye_y - s.brow_gap
    right_x = -s.eye_dx - s.brow_len * 0.55 + s.brow_len * t
    pts[17:22, 0] = right_x
    pts[17:22, 1] = brow_y - arch
    pts[22:27, 0] = -right_x[::-1]
    pts[22:27, 1] = (brow_y - arch)[::-1]

    # nose: bridge 27-30 top -> tip, base 31-35 right -> left
    tip_y = s.nose_bottom - 0.07
    pts[27:31, 0] = 0.0
    pts[27:31, 1] = np.linspace(s.eye_y - 0.02, tip_y, 4)
    pts[31:36, 0] = np.array([-1.0, -0.5, 0.0, 0.5, 1.0]) * s.nose_w
    pts[31:36, 1] = s.nose_bottom + np.array([-0.035, 0.0, 0.02, 0.0, -0.035])

    # eyes: right 36-41 (outer corner, upper x2, inner corner, lower x2), left 42-47 (inner first)
    ex = np.array([-1.0, -1 / 3, 1 / 3, 1.0, 1 / 3, -1 / 3]) * s.eye_w
    lid = 1.0 - 0.9 * expr.blink
    ey = np.array([0.0, -lid, -lid, 0.0, 0.8, 0.8]) * s.eye_h
    # both eyes list their points left to right along the top lid, then back along the bottom lid
    for start, cx, sign in ((36, -s.eye_dx, 1.0), (42, s.eye_dx, -1.0)):
        a = sign * s.eye_tilt  # rotation that lifts the outer corner of either eye
        ca, sa = np.cos(a), np.sin(a)
        pts[start : start + 6, 0] = cx + ca * ex - sa * ey
        pts[start : start + 6, 1] = s.eye_y + sa * ex + ca * ey

    # mouth: outer 48-59 (right corner, upper lip, left corner, lower lip), inner 60-67
    pts[48:60, :2], pts[60:68, :2] = _mouth_points(s, expr, gap)
    # depth: the face surface, eyes set back, nose forward
    pts[:, 2] = _landmark_depth(pts[:, 0], s.face_w)
    return pts


def _mouth_points(s: Shape, expr: Expression, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Mouth landmarks (x, y): outer 48-59 [12, 2] and inner 60-67 [8, 2], the lower lip dropped by `gap`."""
    mw, my = s.mouth_w * (1.0 + 0.12 * expr.smile), s.mouth_y
    lift = 0.09 * expr.smile  # corners up when smiling
    lu, ll = s.lip_upper, s.lip_lower
    outer = np.array(
        [
            [-mw, my - lift],
            [-mw * 0.55, my - lu * 0.75],
            [-mw * 0.2, my - lu],
            [0.0, my - lu * 0.8],
            [mw * 0.2, my - lu],
            [mw * 0.55, my - lu * 0.75],
            [mw, my - lift],
            [mw * 0.55, my + gap + ll * 0.8],
            [mw * 0.2, my + gap + ll],
            [0.0, my + gap + ll * 1.05],
            [-mw * 0.2, my + gap + ll],
            [-mw * 0.55, my + gap + ll * 0.8],
        ]
    )
    inner = np.array(
        [
            [-mw * 0.82, my - lift * 0.8],
            [-mw * 0.3, my - 0.01],
            [0.0, my - 0.005],
            [mw * 0.3, my - 0.01],
            [mw * 0.82, my - lift * 0.8],
            [mw * 0.3, my + gap + 0.01],
            [0.0, my + gap + 0.005],
            [-mw * 0.3, my + gap + 0.01],
        ]
    )
    return outer, inner


def _landmark_depth(x: np.ndarray, face_w: float) -> np.ndarray:
    """Depth z [68] of the landmarks with x coordinates `x`: the face surface, eyes set back, nose forward."""
    z = _surface_z(x, face_w)
    z[36:48] -= 0.07
    z[27:31] += np.array([0.08, 0.16, 0.24, 0.32])
    z[31:36] += np.array([0.1, 0.18, 0.24, 0.18, 0.1])
    z[48:68] += 0.04
    return z


def forehead_arc(shape: Shape, n: int = 15) -> np.ndarray:
    """Points of the skull outline from the left jaw top (landmark 16) over the head to the right, [n, 3]."""
    theta = np.linspace(0.0, np.pi, n + 2)[1:-1]
    w = shape.face_w * 0.97
    x = w * np.cos(theta)
    y = shape.jaw_top - (shape.jaw_top - shape.head_top) * np.sin(theta)
    return np.stack([x, y, _surface_z(x, shape.face_w) * 0.8], axis=1)


def face_outline(lm: np.ndarray, shape: Shape) -> np.ndarray:
    """Closed face polygon: jaw 0-16 then the skull arc back to 0, [17 + n, 3]."""
    return np.concatenate([lm[0:17], forehead_arc(shape)], axis=0)


def clip_half_plane(poly: np.ndarray, y: float, keep_below: bool) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon [n, 3] by the half-plane y >= y (below) or y <= y (above)."""
    if len(poly) == 0:
        return poly
    inside = poly[:, 1] >= y if keep_below else poly[:, 1] <= y
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ia, ib = inside[i], inside[(i + 1) % n]
        if ia:
            out.append(a)
        if ia != ib:
            t = (y - a[1]) / (b[1] - a[1])
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def _expand(poly: np.ndarray, margin: float) -> np.ndarray:
    """Push every vertex away from the polygon's centroid by `margin` (x, y only)."""
    c = poly[:, :2].mean(0)
    d = poly[:, :2] - c
    norm = np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    out = poly.copy()
    out[:, :2] = poly[:, :2] + d / norm * margin
    return out


def part_polygons(lm: np.ndarray, shape: Shape) -> dict[str, list[np.ndarray]]:
    """Polygons [n, 3] of the docs/method.md §6 parts; `hair` holds the skull top above the forehead band
    (add the drawn hair to it). `cheek` is the face below that band: the label painter draws
    it first, so it keeps only what no other face part claims ("the rest of the face")."""
    s = shape
    outline = face_outline(lm, s)
    brow_top = float(lm[17:27, 1].min()) - s.brow_thick
    lip_bottom = float(lm[48:60, 1].max())
    # forehead: above the brows up to half the brow-to-chin distance (docs/method.md §6.3)
    forehead_top = brow_top - 0.5 * (s.chin - brow_top)
    forehead = clip_half_plane(outline, brow_top, keep_below=False)
    forehead = clip_half_plane(forehead, forehead_top, keep_below=True)
    skull_top = clip_half_plane(outline, forehead_top, keep_below=False)
    face = clip_half_plane(outline, forehead_top, keep_below=True)
    jaw = clip_half_plane(outline, lip_bottom + 0.02, keep_below=True)
    # eyes: each eye with its brow, dilated (the periocular region)
    eyes = []
    for brow, eye in ((range(17, 22), (39, 40, 41, 36)), (range(22, 27), (45, 46, 47, 42))):
        top = lm[list(brow)].copy()
        top[:, 1] -= s.brow_thick * 0.6
        poly = np.concatenate([top, lm[list(eye)]], axis=0)
        eyes.append(_expand(poly, 0.05))
    # nose: hull of 27-35, slightly widened
    nose = np.concatenate(
        [
            lm[27:28] + [-0.06, 0.0, 0.0],
            lm[31:32] + [-0.05, -0.12, 0.0],
            lm[31:36] * [1.25, 1.0, 1.0] + [0.0, 0.025, 0.0],
            lm[35:36] + [0.05, -0.12, 0.0],
            lm[27:28] + [0.06, 0.0, 0.0],
        ]
    )
    return {
        "hair": [skull_top],
        "cheek": [face],
        "forehead": [forehead],
        "jaw": [jaw],
        "mouth": [lm[48:60]],
        "nose": [nose],
        "eyes": eyes,
    }


def project(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Canonical [n, 3] points -> image pixels [n, 2]: yaw about the vertical axis, then roll, scale, shift."""
    cy_, sy_ = np.cos(pose.yaw), np.sin(pose.yaw)
    x = points[:, 0] * cy_ + points[:, 2] * sy_
    y = points[:, 1]
    cr, sr = np.cos(pose.roll), np.sin(pose.roll)
    px = pose.cx + pose.scale * (cr * x - sr * y)
    py = pose.cy + pose.scale * (sr * x + cr * y)
    return np.stack([px, py], axis=1)
