"""The synthetic face generator (docs/method.md §10): seeded identities, sampled nuisance, rendered samples.

An identity is a parameter vector drawn from ``default_rng([seed, 1, identity])``:
face shape (width, jaw, chin, skull), eye size/spacing/tilt, brows, nose,
mouth, colours (skin, hair, iris, lips), hair style, beard, glasses, a mole.
A sample adds nuisance drawn from ``default_rng([seed, 2, identity, index])``, so
any (identity, index) is reproducible on its own, in any worker, in any order:
translation, scale, in-plane rotation, a left-right turn (3-D yaw),
expression (smile, open mouth, blink), gaze, lighting gradient and brightness,
colour cast, clothes, background clutter, occluders, blur and noise.

`difficulty` scales the nuisance: "easy" (0.75), "medium" (1.5, the default),
"hard" (2.0), or any float in [0, 3]. Identity parameters do not depend on it.
The default was set by measurement (benchmarks/synth_baseline.py: vgg13_bn,
width 0.25, softmax, 4 minutes on the 2-core CPU, 200 x 20 training faces,
3,000 held-out pairs): level 1.0 gave 93.2% verification accuracy, level 1.5
gave 87.8%; the default is 1.5 so that later comparisons have room below 95%.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from explainface.synthetic import render
from explainface.synthetic.face_model import (
    Expression,
    Pose,
    Shape,
    face_outline,
    landmarks_3d,
    part_polygons,
    project,
)

GENERATOR_VERSION = "1"
#: Held-out identities (verification pairs) are numbered from here; train identities below it.
HELDOUT_FIRST_IDENTITY = 1_000_000
DIFFICULTIES: dict[str, float] = {"easy": 0.75, "medium": 1.5, "hard": 2.0}

_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 128], [198, 134, 94], [141, 85, 54], [96, 62, 42]])
_HAIR = np.array([[25, 20, 18], [70, 45, 30], [120, 80, 45], [200, 160, 90], [150, 60, 30], [160, 160, 160]])
_IRIS = np.array([[60, 40, 25], [100, 70, 40], [70, 110, 150], [90, 120, 80], [40, 30, 20]])
HAIR_STYLES = ("short", "long", "fringe", "bald", "side_part")


@dataclass(frozen=True)
class Look:
    """Identity-dependent appearance (colours 0-255 RGB, geometry in face units)."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    lips: tuple[float, float, float]
    hair_style: str
    hair_volume: float
    hairline: float
    beard: int  # 0 none, 1 moustache, 2 full beard
    glasses: bool
    mole: tuple[float, float] | None
    ear_size: float


@dataclass(frozen=True)
class Identity:
    """One synthetic person: geometry and appearance."""

    shape: Shape
    look: Look


@dataclass
class FaceSample:
    """One rendered sample: RGB image, its 68 landmarks and its part-label map."""

    image: np.ndarray  # uint8 [S, S, 3] RGB
    landmarks: np.ndarray  # float32 [68, 2] (x, y) pixel coordinates, 0-based, iBUG order
    parts: np.ndarray  # uint8 [S, S], values index explainface.parts.labels.PART_NAMES
    identity: int
    index: int


def _n(rng: np.random.Generator, sd: float) -> float:
    return float(np.clip(rng.normal(0.0, sd), -2.5 * sd, 2.5 * sd))


def _pick_color(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> tuple[float, float, float]:
    a, b = palette[rng.integers(len(palette))], palette[rng.integers(len(palette))]
    c = a + (b - a) * rng.random() * 0.5 + rng.normal(0.0, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0, 255))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one identity's geometry and appearance."""
    m = Shape()
    shape = Shape(
        face_w=m.face_w * (1 + _n(rng, 0.08)),
        jaw_top=m.jaw_top + _n(rng, 0.05),
        chin=m.chin * (1 + _n(rng, 0.07)),
        jaw_square=float(np.clip(m.jaw_square + _n(rng, 0.45), 1.5, 3.2)),
        head_top=m.head_top * (1 + _n(rng, 0.06)),
        eye_y=m.eye_y + _n(rng, 0.05),
        eye_dx=m.eye_dx * (1 + _n(rng, 0.09)),
        eye_w=m.eye_w * (1 + _n(rng, 0.13)),
        eye_h=m.eye_h * (1 + _n(rng, 0.18)),
        eye_tilt=_n(rng, 0.12),
        brow_gap=m.brow_gap * (1 + _n(rng, 0.18)),
        brow_len=m.brow_len * (1 + _n(rng, 0.12)),
        brow_arch=m.brow_arch * (1 + _n(rng, 0.5)),
        brow_thick=m.brow_thick * (1 + _n(rng, 0.3)),
        nose_bottom=m.nose_bottom + _n(rng, 0.06),
        nose_w=m.nose_w * (1 + _n(rng, 0.17)),
        mouth_y=m.mouth_y + _n(rng, 0.05),
        mouth_w=m.mouth_w * (1 + _n(rng, 0.13)),
        lip_upper=m.lip_upper * (1 + _n(rng, 0.25)),
        lip_lower=m.lip_lower * (1 + _n(rng, 0.25)),
    )
    skin = _pick_color(rng, _SKIN, 8.0)
    # lips: skin with less green and blue (always redder than the skin), a little individual variation
    lips = tuple(float(v) for v in np.clip(np.array(skin) * ([0.85, 0.55, 0.58] + rng.normal(0, 0.04, 3)), 0, 255))
    style = HAIR_STYLES[int(rng.choice(len(HAIR_STYLES), p=[0.3, 0.25, 0.2, 0.08, 0.17]))]
    beard = int(rng.choice(3, p=[0.75, 0.12, 0.13]))
    mole = None
    if rng.random() < 0.35:
        side = rng.choice([-1.0, 1.0])
        mole = (float(side * rng.uniform(0.25, 0.7)), float(rng.uniform(0.1, 0.9)))
    look = Look(
        skin=skin,
        hair=_pick_color(rng, _HAIR, 10.0),
        iris=_pick_color(rng, _IRIS, 10.0),
        lips=lips,
        hair_style=style,
        hair_volume=0.12 * (1 + _n(rng, 0.4)),
        hairline=-0.98 + _n(rng, 0.08),
        beard=beard,
        glasses=bool(rng.random() < 0.12),
        mole=mole,
        ear_size=0.2 * (1 + _n(rng, 0.15)),
    )
    return Identity(shape, look)


def _hair_polygons(shape: Shape, look: Look) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(back, front) hair polygons [n, 3] in face units; None where the style has none."""
    if look.hair_style == "bald":
        return None, None
    w = shape.face_w * 0.97 + look.hair_volume
    top = shape.jaw_top - shape.head_top + look.hair_volume
    theta = np.linspace(-0.12, np.pi + 0.12, 21)
    arc_x, arc_y = w * np.cos(theta), shape.jaw_top - top * np.sin(theta)
    bottom = shape.chin + 0.35 if look.hair_style == "long" else shape.jaw_top + 0.25
    xs = np.concatenate([[w], arc_x, [-w]])
    ys = np.concatenate([[bottom], arc_y, [bottom]])
    back = np.stack([xs, ys, np.zeros_like(xs)], axis=1)
    # front: from the hairline (left to right) back over the skull arc
    hx = np.linspace(-shape.face_w * 0.97, shape.face_w * 0.97, 11)
    u = hx / shape.face_w
    if look.hair_style == "fringe":
        hy = shape.eye_y - shape.brow_gap - 0.18 + 0.03 * np.cos(9 * u)
    elif look.hair_style == "side_part":
        hy = look.hairline + 0.18 * u - 0.1 * u * u
    else:
        hy = look.hairline - 0.18 * u * u
    # never below the skull outline's height at the temples
    hy = np.minimum(hy, shape.jaw_top - 0.05)
    arc_t = np.linspace(0.0, np.pi, 15)
    fx = np.concatenate([hx, w * np.cos(arc_t)])
    fy = np.concatenate([hy, shape.jaw_top - top * np.sin(arc_t)])
    front = np.stack([fx, fy, 0.5 * np.ones_like(fx)], axis=1)
    return back, front


class SyntheticFaces:
    """Procedural faces: ``SyntheticFaces(seed).sample(identity, index, size)`` -> `FaceSample`.

    Deterministic per (seed, identity, index); identities are cached (cheap to rebuild).
    """

    def __init__(self, seed: int = 0, difficulty: str | float = "medium", occlusion: float | None = None) -> None:
        if isinstance(difficulty, str):
            if difficulty not in DIFFICULTIES:
                raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)} or a number, got {difficulty!r}")
            level = DIFFICULTIES[difficulty]
        else:
            level = float(difficulty)
            if not 0.0 <= level <= 3.0:
                raise ValueError(f"difficulty must be in [0, 3], got {difficulty}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if occlusion is not None and not 0.0 <= float(occlusion) <= 1.0:
            raise ValueError(f"occlusion must be a probability in [0, 1], got {occlusion}")
        self.seed = int(seed)
        self.difficulty = difficulty
        self.occlusion = None if occlusion is None else float(occlusion)
        self.level = level
        self._identities: dict[int, Identity] = {}

    def identity(self, identity: int) -> Identity:
        """The parameters of identity `identity` (>= 0), independent of difficulty."""
        if identity < 0:
            raise ValueError(f"identity must be >= 0, got {identity}")
        found = self._identities.get(identity)
        if found is None:
            if len(self._identities) > 100_000:
                self._identities.clear()
            found = sample_identity(np.random.default_rng([self.seed, 1, identity]))
            self._identities[identity] = found
        return found

    def sample(self, identity: int, index: int, size: int = 112) -> FaceSample:
        """Render sample `index` of `identity` at `size` x `size` pixels."""
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        person = self.identity(identity)
        rng = np.random.default_rng([self.seed, 2, identity, index])
        return _render_sample(person, rng, self.level, size, identity, index, self.occlusion)


def _render_sample(person: Identity, rng: np.random.Generator, d: float, size: int, identity: int, index: int,
                   occlusion: float | None = None):  # fmt: skip
    shape, look = person.shape, person.look
    k = size / 112.0  # pixel-size scale for strokes and blur
    expr = _sample_expression(rng, d)
    pose = _sample_pose(rng, d, size)
    lm3 = landmarks_3d(shape, expr)
    lm = project(lm3, pose)

    def proj(points) -> np.ndarray:
        return project(np.asarray(points, dtype=np.float64), pose)

    img = render.background(rng, size, clutter=5.0 * d)
    cast = np.exp(rng.normal(0.0, 0.05 * d, 3))
    clothes = tuple(int(v) for v in rng.integers(0, 256, 3))
    skin = look.skin
    dark_skin = tuple(0.78 * c for c in skin)
    hair_color = look.hair

    back, front = _hair_polygons(shape, look)
    _draw_head(img, lm3, shape, look, pose, proj, back, front, clothes, dark_skin)
    brow_color = tuple(0.8 * c for c in hair_color)
    _draw_brows(img, lm3, shape, proj, brow_color)

    gaze = rng.normal(0.0, 0.25, 2) * [shape.eye_w, shape.eye_h]
    for start in (36, 42):
        eye = lm[start : start + 6]
        _draw_eye(img, eye, lm3[start : start + 6], shape, look, pose, gaze, proj, k)

    _draw_nose(img, lm, skin, dark_skin, pose, k)
    _draw_mouth(img, lm, look, expr, pose, k)
    _draw_beard(img, lm3, look, proj, brow_color)
    _draw_mole(img, shape, look, pose, proj)
    _draw_glasses(img, lm, shape, look, pose, k)

    if rng.random() < (0.2 * d if occlusion is None else occlusion):  # the same draw either way
        _draw_occluder(img, rng, lm, pose, skin)

    img_f = render.apply_lighting(
        img, rng, strength=rng.uniform(0.0, 0.45 * d), brightness=float(np.exp(rng.normal(0.0, 0.12 * d)))
    )
    img_f *= cast.astype(np.float32)
    image = render.finish(img_f, rng, noise=float(rng.uniform(0.0, 6.0 * d)), blur=float(rng.uniform(0, 0.9 * d) * k))

    parts = _part_labels(lm3, shape, back, front, proj, size)
    return FaceSample(image=image, landmarks=lm.astype(np.float32), parts=parts, identity=identity, index=index)


def _sample_expression(rng: np.random.Generator, d: float) -> Expression:
    """Draw a sample's expression (smile, open mouth, blink), scaled by the difficulty level `d`."""
    return Expression(
        smile=float(rng.random() * min(1.0, 0.9 * d)) if rng.random() < 0.5 else 0.0,
        open_mouth=float(rng.random() * min(1.0, d)) if rng.random() < 0.3 * d else 0.0,
        blink=1.0 if rng.random() < 0.07 * d else float(rng.random() * 0.3 * d),
    )


def _sample_pose(rng: np.random.Generator, d: float, size: int) -> Pose:
    """Draw a sample's pose (roll, yaw, scale, centre) for a `size` x `size` image at difficulty level `d`."""
    return Pose(
        roll=float(np.clip(rng.normal(0.0, 0.12 * d), -0.5, 0.5)),
        yaw=float(np.clip(rng.uniform(-0.45, 0.45) * d, -0.75, 0.75)),
        scale=size * 0.225 * float(np.exp(np.clip(rng.normal(0.0, 0.08 * d), -0.3, 0.3))),
        # pixel centres at integers (iBUG/OpenCV): continuous u in [0, 1] maps to size * u - 0.5
        cx=size * (0.5 + float(np.clip(rng.normal(0.0, 0.045 * d), -0.15, 0.15))) - 0.5,
        cy=size * (0.5 + float(np.clip(rng.normal(0.0, 0.045 * d), -0.15, 0.15))) - 0.5,
    )


def _draw_head(img: np.ndarray, lm3: np.ndarray, shape: Shape, look: Look, pose: Pose, proj: Callable, back, front,
               clothes: tuple[int, ...], dark_skin: tuple[float, ...]) -> None:  # fmt: skip
    """Clothes, back hair, neck, ears, the face itself and front hair, back to front."""
    render.fill(img, [proj([[-2.6, 2.5, 0], [2.6, 2.5, 0], [2.8, 4.5, 0], [-2.8, 4.5, 0]])], clothes)
    if back is not None:
        render.fill(img, [proj(back)], look.hair)
    render.fill(img, [proj([[-0.5, 0.7, 0.2], [0.5, 0.7, 0.2], [0.58, 2.7, 0.2], [-0.58, 2.7, 0.2]])], dark_skin)
    for side in (-1.0, 1.0):
        ear = proj([[side * shape.face_w * 0.98, shape.eye_y + 0.15, 0.0]])[0]
        r = look.ear_size * pose.scale
        render.ellipse(img, ear, (0.55 * r, r), np.degrees(pose.roll), dark_skin)
    outline = proj(face_outline(lm3, shape))
    render.fill(img, [outline], look.skin)
    if front is not None:
        render.fill(img, [proj(front)], look.hair)


def _draw_brows(img: np.ndarray, lm3: np.ndarray, shape: Shape, proj: Callable, brow_color: tuple[float, ...]) -> None:
    """Both eyebrows as bands of the identity's brow thickness along landmarks 17-21 and 22-26."""
    for brow in (lm3[17:22], lm3[22:27]):
        top = brow - [0.0, shape.brow_thick / 2, 0.0]
        bot = brow + [0.0, shape.brow_thick / 2, 0.0]
        render.fill(img, [proj(np.concatenate([top, bot[::-1]]))], brow_color)


def _draw_nose(img: np.ndarray, lm: np.ndarray, skin: tuple[float, ...], dark_skin: tuple[float, ...], pose: Pose,
               k: float) -> None:  # fmt: skip
    """The nose: bridge sides, nostrils and the base line."""
    nostril = tuple(0.45 * c for c in skin)
    render.line(img, lm[[27, 31]], dark_skin, 1.0 * k)
    render.line(img, lm[[27, 35]], dark_skin, 1.0 * k)
    for i in (32, 34):
        render.ellipse(img, lm[i] - [0, 0.01 * pose.scale], (0.05 * pose.scale, 0.025 * pose.scale), 0, nostril)
    render.line(img, lm[31:36], dark_skin, 1.0 * k)


def _draw_mouth(img: np.ndarray, lm: np.ndarray, look: Look, expr: Expression, pose: Pose, k: float) -> None:
    """The lips, the inside of an open mouth with teeth, and the line between the lips."""
    render.fill(img, [lm[48:60]], look.lips)
    if expr.open_mouth > 0.12:
        render.fill(img, [lm[60:68]], (60, 20, 25))
        teeth = lm[[60, 61, 62, 63, 64]].copy()
        render.fill(img, [np.concatenate([teeth, teeth[::-1] + [0, 0.05 * pose.scale]])], (235, 230, 220))
    render.line(img, lm[60:65], tuple(0.6 * c for c in look.lips), 1.0 * k)


def _draw_beard(img: np.ndarray, lm3: np.ndarray, look: Look, proj: Callable, brow_color: tuple[float, ...]) -> None:
    """The identity's moustache, and for a full beard the chin too; nothing when it has none."""
    if look.beard:
        mst = np.concatenate([lm3[31:36] + [0, 0.05, 0], lm3[[53, 52, 51, 50, 49]] + [0, -0.01, 0]])
        render.fill(img, [proj(mst)], brow_color)
        if look.beard == 2:
            chin = np.concatenate([lm3[3:14], lm3[[54, 55, 56, 57, 58, 59, 48]] + [0, 0.02, 0]])
            render.fill(img, [proj(chin)], brow_color)


def _draw_mole(img: np.ndarray, shape: Shape, look: Look, pose: Pose, proj: Callable) -> None:
    """The identity's mole on the face surface, if it has one."""
    if look.mole is not None:
        mx, my = look.mole
        mz = 0.55 * (1 - (mx / shape.face_w) ** 2)
        render.ellipse(img, proj([[mx, my, mz]])[0], (0.035 * pose.scale,) * 2, 0, (60, 40, 30))


def _draw_glasses(img: np.ndarray, lm: np.ndarray, shape: Shape, look: Look, pose: Pose, k: float) -> None:
    """The identity's glasses, if it wears them: a ring round each eye and the bridge between them."""
    if look.glasses:
        for start in (36, 42):
            c = lm[start : start + 6].mean(0)
            axes = (shape.eye_w * 1.45 * pose.scale, shape.eye_h * 3.0 * pose.scale)
            render.ellipse(img, c, axes, np.degrees(pose.roll), (30, 30, 30), max(1, int(round(1.2 * k))))
        render.line(img, lm[[39, 42]], (30, 30, 30), 1.2 * k)


def _part_labels(lm3: np.ndarray, shape: Shape, back, front, proj: Callable, size: int) -> np.ndarray:
    """The part-label map [size, size] of the face parts plus the drawn hair."""
    polys = {name: [proj(p) for p in ps if len(p) >= 3] for name, ps in part_polygons(lm3, shape).items()}
    polys["hair"] += [proj(p) for p in (back, front) if p is not None]
    return render.label_map(size, polys)


def _draw_eye(img, eye, eye3, shape: Shape, look: Look, pose: Pose, gaze, proj, k: float) -> None:
    """Sclera, iris and pupil clipped to the eye polygon, then the upper lid line."""
    x0, y0 = np.floor(eye.min(0)).astype(int) - 1
    x1, y1 = np.ceil(eye.max(0)).astype(int) + 2
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    roi = img[y0:y1, x0:x1]
    mask = np.zeros(roi.shape[:2], np.uint8)
    local = eye - [x0, y0]
    render.fill(mask, [local], 255)
    drawn = roi.copy()
    render.fill(drawn, [local], (238, 236, 230))
    centre = proj(eye3.mean(0, keepdims=True) + [gaze[0], gaze[1], 0.0])[0] - [x0, y0]
    r = shape.eye_h * 1.15 * pose.scale
    render.ellipse(drawn, centre, (r, r), 0, look.iris)
    render.ellipse(drawn, centre, (0.45 * r, 0.45 * r), 0, (15, 10, 10))
    a = mask.astype(np.float32)[:, :, None] / 255.0
    roi[:] = (drawn * a + roi * (1 - a)).astype(np.uint8)
    render.line(img, eye[0:4], (40, 25, 20), 1.3 * k)


def _draw_occluder(img, rng: np.random.Generator, lm: np.ndarray, pose: Pose, skin) -> None:
    """One occluder over the face: a random block, sunglasses, a scarf or a hand."""
    kind = int(rng.integers(4))
    s = pose.scale
    if kind == 0:
        c = lm[rng.integers(68)] + rng.normal(0, 0.2 * s, 2)
        half = rng.uniform(0.2, 0.5, 2) * s
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        render.fill(img, [np.array([c - half, c + [half[0], -half[1]], c + half, c + [-half[0], half[1]]])], color)
    elif kind == 1:
        for start in (36, 42):
            c = lm[start : start + 6].mean(0)
            render.ellipse(img, c, (0.3 * s, 0.2 * s), np.degrees(pose.roll), (20, 20, 25))
        render.line(img, lm[[39, 42]], (20, 20, 25), 0.06 * s)
    elif kind == 2:
        top = lm[[2, 30, 14]]
        poly = np.concatenate([top, [[img.shape[1] + s, img.shape[0] + s], [-s, img.shape[0] + s]]])
        render.fill(img, [poly], tuple(int(v) for v in rng.integers(0, 256, 3)))
    else:
        side = lm[3] if rng.random() < 0.5 else lm[13]
        render.ellipse(img, side, (0.35 * s, 0.5 * s), float(rng.uniform(0, 180)), tuple(0.9 * c for c in skin))


__all__ = [
    "DIFFICULTIES",
    "FaceSample",
    "GENERATOR_VERSION",
    "HELDOUT_FIRST_IDENTITY",
    "Identity",
    "Look",
    "SyntheticFaces",
    "sample_identity",
]
