"""Face-part label maps from 68 landmarks or from face-parsing maps, and through the crop (docs/method.md §6, paper
Figure 7).

The paper only shows a picture, so the geometry is the project's (docs/method.md §6), drawn in a *face frame* built from
the landmarks: origin at the midpoint of the eye centres, `s` along the eye line (towards the subject's left
eye), `t` perpendicular to it, pointing to the chin. "Above" means smaller `t`, so in-plane rotation is handled,
and every margin is a multiple of `scale` (the inter-ocular distance, see `FaceFrame`), so the maps do not
depend on resolution. Parts, painted in `PAINT_ORDER` (priority eyes > nose > mouth > jaw > forehead > cheek > hair):

* eyes: each eye polygon with its brow (brow raised by `BROW_THICKNESS`), dilated by `EYE_DILATION`;
* nose: the convex hull of 27-35 with the bridge and the alae widened (`NOSE_*`);
* mouth: the outer-lip polygon 48-59;
* jaw: the face below the lowest outer-lip point (+ `JAW_GAP`), i.e. chin and jaw line inside the jaw contour;
* forehead: the face between the brows' top and `FOREHEAD_FRACTION` of the brow-to-chin distance above it;
* hair: the head above the forehead and a band `HAIR_BAND` wide around the skull, down to the ears (0 / 16);
* cheek: the rest of the face polygon = jaw contour 0-16 closed by a half-ellipse over the head whose top is
  `HEAD_ABOVE_FOREHEAD` of the brow-to-chin distance above the forehead's top.

`parsing_to_parts` maps LaPa and CelebAMask-HQ parsing labels to the same parts; `crop_landmarks` /
`crop_label_map` / `face_parts_for_crop` follow the project's no-alignment crop (`crop.crop_square`);
`predict_landmarks68` runs dlib's 68-point predictor for images without annotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from explainface.faces.crop import CropInfo, OnMissing, crop_face, integer_square
from explainface.faces.detect import FaceDetector, create_detector
from explainface.faces.landmarks import crop_landmarks
from explainface.parts.labels import PAINT_ORDER, PART_COLORS, PART_INDEX, PART_NAMES
from explainface.readers.landmarks import check_landmarks_in_image

# --- geometry constants, in units of FaceFrame.scale (inter-ocular distance) unless stated --------------------------

#: Height added above the brow landmarks (iBUG brow points run along the brow's upper edge).
BROW_THICKNESS = 0.06
#: Radius of the disc that dilates each eye-plus-brow polygon into the periocular region.
EYE_DILATION = 0.08
#: Nose: half-width added on each side of the bridge (27), how far the alae (31, 35) reach out and up from
#: the nostril points, and how far below the base (31-35) the hull goes.
NOSE_BRIDGE_HALF_WIDTH = 0.07
NOSE_ALA_OUT, NOSE_ALA_UP = 0.07, 0.12
NOSE_BASE_DOWN = 0.03
#: Gap between the lowest outer-lip point and the top of the jaw part.
JAW_GAP = 0.03
#: Forehead height as a fraction of the brow-to-chin distance (docs/method.md §6.3).
FOREHEAD_FRACTION = 0.5
#: Top of the skull above the forehead's top, as a fraction of the brow-to-chin distance.
HEAD_ABOVE_FOREHEAD = 0.2
#: Width of the hair band around the skull (hair volume), and the skull's width beyond the jaw's top points.
HAIR_BAND = 0.3
SKULL_WIDEN = 0.05
#: Exponent of the skull outline (a superellipse: 2 = ellipse, larger = squarer temples).
SKULL_EXPONENT = 2.5

# --- left/right split ---------------------------------------------------------------------------------------------

#: Parts that `split_lr` splits into the subject's right and left half (the paper's channels are often one-sided:
#: "the left eye", "the area to the right of the nose"); forehead, nose and mouth are single central structures.
SPLIT_PARTS: tuple[str, ...] = ("hair", "cheek", "eyes", "jaw")
#: The 11 parts (+ background) of `split_lr=True`, in `PART_NAMES` order with each split part as right, left.
#: Right/left are the subject's: the subject's right is the image's left in an upright, frontal photo.
SPLIT_PART_NAMES: tuple[str, ...] = (
    "background",
    "right_hair",
    "left_hair",
    "forehead",
    "right_cheek",
    "left_cheek",
    "right_eyes",
    "left_eyes",
    "nose",
    "mouth",
    "right_jaw",
    "left_jaw",
)
SPLIT_PART_INDEX: dict[str, int] = {name: i for i, name in enumerate(SPLIT_PART_NAMES)}
#: For each split label, its unsplit label (indexing PART_NAMES): merges an 11-part map back to 7 parts.
SPLIT_TO_PART: tuple[int, ...] = tuple(
    PART_INDEX[n.removeprefix("right_").removeprefix("left_")] for n in SPLIT_PART_NAMES
)
#: Colours of the split parts: the right half in the part's colour, the left half lighter.
SPLIT_PART_COLORS: dict[str, tuple[int, int, int]] = {
    name: (
        tuple(int(c + (255 - c) * 0.5) for c in PART_COLORS[PART_NAMES[SPLIT_TO_PART[i]]])
        if name.startswith("left_")
        else PART_COLORS[PART_NAMES[SPLIT_TO_PART[i]]]
    )
    for i, name in enumerate(SPLIT_PART_NAMES)
}

# --- parsing schemes ----------------------------------------------------------------------------------------------

#: LaPa's 11 classes (Liu et al. 2020), index = label value.
LAPA_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "left_eyebrow",
    "right_eyebrow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
#: CelebAMask-HQ's 19 classes in the order of the dataset's own `g_mask.py` (label = position), the order of
#: the released per-class annotation files.
CELEBAMASK_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
#: The same classes in the order of face-parsing.PyTorch (BiSeNet, zllrunning), which many pretrained parsers emit.
CELEBAMASK_BISENET_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
)
PARSING_SCHEMES: dict[str, tuple[str, ...]] = {
    "lapa": LAPA_CLASSES,
    "celebamask": CELEBAMASK_CLASSES,
    "celebamask-bisenet": CELEBAMASK_BISENET_CLASSES,
}
#: Parsing class -> part. "skin" is split by the landmarks (or is cheek without them); "right"/"left" eye and brow
#: classes form the periocular region of their side. Ears, earrings, neck, necklace and cloth lie outside the
#: landmark face polygon and are background; a hat covers the head top, which is the hair part's place.
_CLASS_TO_PART: dict[str, str] = {
    "background": "background",
    "skin": "skin",
    "nose": "nose",
    "eye_g": "eyes",
    "left_eye": "left_periocular",
    "right_eye": "right_periocular",
    "left_eyebrow": "left_periocular",
    "right_eyebrow": "right_periocular",
    "l_eye": "left_periocular",
    "r_eye": "right_periocular",
    "l_brow": "left_periocular",
    "r_brow": "right_periocular",
    "upper_lip": "mouth",
    "inner_mouth": "mouth",
    "lower_lip": "mouth",
    "mouth": "mouth",
    "u_lip": "mouth",
    "l_lip": "mouth",
    "hair": "hair",
    "hat": "hair",
    "l_ear": "background",
    "r_ear": "background",
    "ear_r": "background",
    "neck": "background",
    "neck_l": "background",
    "cloth": "background",
}

N_LANDMARKS = 68
_SHIFT = 4  # fixed-point bits for sub-pixel polygon filling


# --- the face frame -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceFrame:
    """A face's own axes from its 68 landmarks: `origin` (the midpoint of the eye centres), `right` (unit vector
    along the eye line towards the subject's left eye: the image's +x for an upright face), `down` (`right`
    turned +90 degrees: towards the chin) and `scale` (the inter-ocular distance, or half the eye-to-chin
    distance when that is larger: a turned face's eyes come close together while its height stays)."""

    origin: np.ndarray
    right: np.ndarray
    down: np.ndarray
    scale: float

    def to_face(self, points: np.ndarray) -> np.ndarray:
        """Pixel points [..., 2] -> face coordinates (s, t) [..., 2] (pixels, along `right` and `down`)."""
        d = np.asarray(points, np.float64) - self.origin
        return np.stack([d @ self.right, d @ self.down], axis=-1)

    def to_pixels(self, st: np.ndarray) -> np.ndarray:
        """Face coordinates (s, t) [..., 2] -> pixel points [..., 2]."""
        st = np.asarray(st, np.float64)
        return self.origin + st[..., :1] * self.right + st[..., 1:2] * self.down

    def grid(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Face coordinates (s, t) of every pixel centre, two float32 [H, W] arrays."""
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        ox, oy = (float(v) for v in self.origin)
        rx, ry = (float(v) for v in self.right)
        dx, dy = (float(v) for v in self.down)
        x -= ox
        y -= oy
        return x * rx + y * ry, x * dx + y * dy


def face_frame(landmarks: np.ndarray) -> FaceFrame:
    """The `FaceFrame` of 68 iBUG landmarks (0-based pixel (x, y))."""
    lm = check_landmarks68(landmarks)
    right_eye, left_eye = lm[36:42].mean(0), lm[42:48].mean(0)
    axis = left_eye - right_eye
    interocular = float(np.hypot(*axis))
    if interocular < 1e-6:
        raise ValueError("landmarks: the two eye centres coincide; cannot orient the face")
    u = axis / interocular
    v = np.array([-u[1], u[0]])
    origin = (right_eye + left_eye) / 2
    scale = max(interocular, 0.5 * float(np.hypot(*(lm[8] - origin))))
    return FaceFrame(origin, u, v, scale)


#: Landmarks further than this many image sides from the image are refused (their polygons would overflow the
#: fixed-point coordinates OpenCV fills with).
_FAR = 64


def check_landmarks68(landmarks: np.ndarray) -> np.ndarray:
    """`landmarks` as float64 [68, 2]; ValueError when the shape is wrong or a value is not finite."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (N_LANDMARKS, 2):
        raise ValueError(f"landmarks must have shape [68, 2] (iBUG 68 points), got {lm.shape}")
    if not np.isfinite(lm).all():
        raise ValueError("landmarks must be finite")
    return lm


# --- polygons -----------------------------------------------------------------------------------------------------


def _fill(mask: np.ndarray, polys: list[np.ndarray]) -> np.ndarray:
    """Fill pixel polygons (sub-pixel, no anti-aliasing: a pixel is in when its centre is) into a uint8 mask."""
    fixed = [np.round(np.asarray(p, np.float64) * (1 << _SHIFT)).astype(np.int32) for p in polys if len(p) >= 3]
    if fixed:
        cv2.fillPoly(mask, fixed, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def _polygon_mask(height: int, width: int, polys: list[np.ndarray]) -> np.ndarray:
    return _fill(np.zeros((height, width), np.uint8), polys).astype(bool)


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    r = int(round(radius))
    if r < 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


@dataclass(frozen=True)
class _Lines:
    """The face-frame levels (t, pixels) that separate hair | forehead | cheek | jaw."""

    brow_top: float
    forehead_top: float
    jaw_top: float
    head_top: float


def _lines(st: np.ndarray, scale: float) -> _Lines:
    brow_top = float(st[17:27, 1].min()) - BROW_THICKNESS * scale
    chin = float(st[0:17, 1].max())
    span = max(chin - brow_top, scale)  # brow-to-chin distance
    forehead_top = brow_top - FOREHEAD_FRACTION * span
    return _Lines(
        brow_top=brow_top,
        forehead_top=forehead_top,
        jaw_top=float(st[48:60, 1].max()) + JAW_GAP * scale,
        head_top=forehead_top - HEAD_ABOVE_FOREHEAD * span,
    )


def _skull_arc(st: np.ndarray, lines: _Lines, extra: float, n: int = 33) -> np.ndarray:
    """Face-frame points of the skull outline from landmark 16 over the head to landmark 0, pushed out by `extra`
    (a superellipse whose ends meet 16 and 0 and whose top is at `lines.head_top - extra`)."""
    a0, a16 = st[0], st[16]
    centre_s = (a0[0] + a16[0]) / 2
    half = abs(a16[0] - a0[0]) / 2 + SKULL_WIDEN * abs(a16[0] - a0[0]) + extra
    theta = np.linspace(0.0, np.pi, n)
    c, si = np.cos(theta), np.sin(theta)
    e = 2.0 / SKULL_EXPONENT
    s = centre_s + half * np.sign(c) * np.abs(c) ** e
    base_t = a16[1] + (a0[1] - a16[1]) * (1 - c) / 2  # from 16's level to 0's
    top = lines.head_top - extra
    t = base_t - (base_t - top) * np.abs(si) ** e
    return np.stack([s, t], axis=1)


def _face_geometry(lm: np.ndarray, frame: FaceFrame) -> tuple[np.ndarray, _Lines]:
    st = frame.to_face(lm)
    return st, _lines(st, frame.scale)


def _eye_polygons(lm: np.ndarray, frame: FaceFrame) -> list[np.ndarray]:
    """Each eye with its brow, the brow raised by BROW_THICKNESS (before the dilation), pixel polygons."""
    polys = []
    raise_by = frame.down * (-BROW_THICKNESS * frame.scale)
    for brow, eye in ((range(17, 22), (39, 40, 41, 36)), (range(22, 27), (45, 46, 47, 42))):
        top = lm[list(brow)] + raise_by
        polys.append(np.concatenate([top, lm[list(eye)]], axis=0))
    return polys


def _nose_polygon(lm: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """The convex hull of 27-35, widened at the bridge and at the alae, pixel polygon."""
    st = frame.to_face(lm)
    k = frame.scale
    extra = [
        st[27] + [-NOSE_BRIDGE_HALF_WIDTH * k, 0.0],
        st[27] + [NOSE_BRIDGE_HALF_WIDTH * k, 0.0],
        st[31] + [-NOSE_ALA_OUT * k, -NOSE_ALA_UP * k],
        st[35] + [NOSE_ALA_OUT * k, -NOSE_ALA_UP * k],
        st[31] + [-NOSE_ALA_OUT * k, 0.0],
        st[35] + [NOSE_ALA_OUT * k, 0.0],
    ]
    base = st[31:36] + [0.0, NOSE_BASE_DOWN * k]
    pts = np.concatenate([st[27:36], np.array(extra), base], axis=0)
    hull = cv2.convexHull(frame.to_pixels(pts).astype(np.float32))[:, 0]
    return hull.astype(np.float64)


def _region_masks(landmarks: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    """Boolean [H, W] masks of the 7 parts before priority (they overlap), plus "face" (the face polygon)."""
    lm = check_landmarks68(landmarks)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    if np.abs(lm).max() > _FAR * max(height, width):
        raise ValueError(f"landmarks lie far outside the {width} x {height} image (|coordinate| up to "
                         f"{np.abs(lm).max():.4g})")  # fmt: skip
    frame = face_frame(lm)
    st, lines = _face_geometry(lm, frame)
    _, t = frame.grid(height, width)

    outline = frame.to_pixels(np.concatenate([st[0:17], _skull_arc(st, lines, 0.0)[1:-1]], axis=0))
    face = _polygon_mask(height, width, [outline])
    band = HAIR_BAND * frame.scale
    head = frame.to_pixels(_skull_arc(st, lines, band))  # closed by the chord from 0's to 16's band end
    eyes = _dilate(_polygon_mask(height, width, _eye_polygons(lm, frame)), EYE_DILATION * frame.scale)
    return {
        "face": face,
        "hair": _polygon_mask(height, width, [head]) | (face & (t < lines.forehead_top)),
        "cheek": face & (t >= lines.forehead_top),
        "forehead": face & (t >= lines.forehead_top) & (t < lines.brow_top),
        "jaw": face & (t > lines.jaw_top),
        "mouth": _polygon_mask(height, width, [lm[48:60]]),
        "nose": _polygon_mask(height, width, [_nose_polygon(lm, frame)]),
        "eyes": eyes,
    }


def paint_parts(masks: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 label map (values index PART_NAMES) from possibly overlapping part masks, painted in PAINT_ORDER so
    that overlaps go to the higher-priority part (eyes, nose, mouth > jaw > cheek > forehead > hair). Cheek is
    the face's base layer ("the rest of the face"), so where a cheek mask overlaps the forehead, forehead wins."""
    shape = next(iter(masks.values())).shape
    out = np.zeros(shape, np.uint8)
    for name in PAINT_ORDER:
        if name in masks:
            out[masks[name]] = PART_INDEX[name]
    return out


def part_label_map(landmarks: np.ndarray, height: int, width: int, split_lr: bool = False) -> np.ndarray:
    """uint8 [H, W] part labels of a face from its 68 iBUG landmarks (0-based pixel (x, y)), docs/method.md §6.

    Values index `PART_NAMES` (0 = background), or `SPLIT_PART_NAMES` with `split_lr=True` (hair, cheek, eyes
    and jaw split at the face's midline, `split_left_right`). Geometry: see the module docstring.
    """
    labels = paint_parts(_region_masks(landmarks, height, width))
    return split_left_right(labels, landmarks) if split_lr else labels


def midline_side(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool [H, W]: True on the subject's right of the face's vertical midline.

    The midline runs through the mean of the nose bridge (27-30) and the chin (8), extended both ways; the
    subject's right is the side of the right eye (36-41), so the rule follows the landmarks, not the image axes.
    """
    lm = check_landmarks68(landmarks)
    top, bottom = lm[27:31].mean(0), lm[8]
    direction = bottom - top
    if np.hypot(*direction) < 1e-6:
        direction = face_frame(lm).down
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cross = direction[0] * (y - top[1]) - direction[1] * (x - top[0])
    eye = lm[36:42].mean(0) - top
    right_sign = np.sign(direction[0] * eye[1] - direction[1] * eye[0]) or -1.0
    return cross * right_sign > 0


def split_left_right(labels: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A 7-part label map (PART_NAMES) -> the 11-part map (SPLIT_PART_NAMES): hair, cheek, eyes and jaw split
    into the subject's right and left half at the face's midline (`midline_side`)."""
    labels = np.asarray(labels)
    right = midline_side(landmarks, *labels.shape)
    out = np.zeros(labels.shape, np.uint8)
    for name in PART_NAMES[1:]:
        here = labels == PART_INDEX[name]
        if name in SPLIT_PARTS:
            out[here & right] = SPLIT_PART_INDEX[f"right_{name}"]
            out[here & ~right] = SPLIT_PART_INDEX[f"left_{name}"]
        else:
            out[here] = SPLIT_PART_INDEX[name]
    return out


def merge_left_right(labels: np.ndarray) -> np.ndarray:
    """An 11-part map (SPLIT_PART_NAMES) back to the 7 parts (PART_NAMES)."""
    return np.asarray(SPLIT_TO_PART, np.uint8)[np.asarray(labels)]


def part_masks(label_map: np.ndarray, n_parts: int = len(PART_NAMES) - 1) -> np.ndarray:
    """bool [..., K, H, W] with mask k = (label == k + 1), K = `n_parts` (background excluded): part order
    `PART_NAMES[1:]` (or `SPLIT_PART_NAMES[1:]` with `n_parts=11`). Works on one map [H, W] or a batch."""
    labels = np.asarray(label_map)
    if labels.ndim < 2:
        raise ValueError(f"label_map must be [..., H, W], got shape {labels.shape}")
    ks = np.arange(1, n_parts + 1, dtype=np.int64).reshape(n_parts, 1, 1)
    return labels[..., None, :, :] == ks


# --- parsing maps -------------------------------------------------------------------------------------------------


def _periocular_scale(right: np.ndarray, left: np.ndarray) -> float | None:
    """Distance between the centroids of the two periocular class sets, or None when one side is missing."""
    if not right.any() or not left.any():
        return None
    ys, xs = np.nonzero(right)
    yl, xl = np.nonzero(left)
    return float(np.hypot(xs.mean() - xl.mean(), ys.mean() - yl.mean()))


def parsing_to_parts(labels: np.ndarray, scheme: str, landmarks: np.ndarray | None = None) -> np.ndarray:
    """uint8 part labels (PART_NAMES) from a face-parsing label map of `scheme` ("lapa", "celebamask" or
    "celebamask-bisenet"; see `PARSING_SCHEMES`).

    Eyes = each side's eye and brow classes, their convex hull filled and dilated like the landmark rule (the
    periocular region; glasses count as eyes); nose, mouth (lips and inner mouth) and hair (and hat) come from
    their classes. Skin is split with the landmarks' lines (`part_label_map`'s rule): above the forehead's top
    hair, then forehead down to the brows' top, jaw below the mouth, cheek between; without landmarks all skin
    is cheek. Ears, neck, cloth and accessories are background. Priority as `PAINT_ORDER`.
    """
    if scheme not in PARSING_SCHEMES:
        raise ValueError(f"unknown parsing scheme {scheme!r}; choose one of {tuple(PARSING_SCHEMES)}")
    classes = PARSING_SCHEMES[scheme]
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"parsing labels must be [H, W], got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(
            f"parsing labels of scheme {scheme!r} must lie in [0, {len(classes) - 1}], got "
            f"[{labels.min()}, {labels.max()}]"
        )
    h, w = labels.shape
    group = np.array([_CLASS_TO_PART[c] for c in classes])[labels]
    skin = group == "skin"
    masks = {
        "hair": group == "hair",
        "nose": group == "nose",
        "mouth": group == "mouth",
    }
    right, left = group == "right_periocular", group == "left_periocular"
    if landmarks is not None:
        lm = check_landmarks68(landmarks)
        frame = face_frame(lm)
        scale: float | None = frame.scale
        _, lines = _face_geometry(lm, frame)
        _, t = frame.grid(h, w)
        masks["hair"] = masks["hair"] | (skin & (t < lines.forehead_top))
        masks["cheek"] = skin & (t >= lines.forehead_top)
        masks["forehead"] = skin & (t >= lines.forehead_top) & (t < lines.brow_top)
        masks["jaw"] = skin & (t > lines.jaw_top)
    else:
        scale = _periocular_scale(right, left)
        masks["cheek"] = skin
    eyes = np.zeros((h, w), np.uint8)
    for side in (right, left):
        if side.any():
            ys, xs = np.nonzero(side)
            hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.float32))[:, 0]
            _fill(eyes, [hull.astype(np.float64)])
    eyes = eyes.astype(bool) | right | left
    if scale is not None:
        eyes = _dilate(eyes, EYE_DILATION * scale)
    masks["eyes"] = eyes | (group == "eyes")
    return paint_parts(masks)


# --- through the crop ---------------------------------------------------------------------------------------------


def crop_label_map(labels: np.ndarray, square: tuple[float, float, float], size: int) -> np.ndarray:
    """A source label map -> the `size` x `size` crop of `crop_square(.., *square, size)`, nearest neighbour (each
    crop pixel takes the source pixel under its centre), 0 where the square leaves the image."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    labels = np.asarray(labels)
    x0, y0, side = integer_square(*square)
    h, w = labels.shape[:2]
    offsets = np.floor((np.arange(size) + 0.5) * side / size).astype(np.int64)
    cols, rows = x0 + offsets, y0 + offsets
    col_ok, row_ok = (cols >= 0) & (cols < w), (rows >= 0) & (rows < h)
    out = labels[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]]
    out = out.copy()
    out[~(row_ok[:, None] & col_ok[None, :])] = 0
    return out


def face_parts_for_crop(
    image: np.ndarray,
    landmarks: np.ndarray,
    detector: str | FaceDetector = "hog",
    size: int = 224,
    margin: float | None = None,
    split_lr: bool = False,
    on_missing: OnMissing = "center",
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, CropInfo]:
    """The project's no-alignment crop of `image` (`crop.crop_face`) with its landmarks and part labels at the
    model's input size: `(crop_rgb, crop_landmarks, crop_labels, info)` (Nones when the face is skipped).

    The landmarks are moved into the crop and the label map is drawn there, at `size`, rather than drawn on the
    source and resampled: edges stay sharp, and the same map results whatever the source resolution.
    """
    det = create_detector(detector) if isinstance(detector, str) else detector
    lm = check_landmarks68(landmarks)
    crop, info = crop_face(image, det, size=size, margin=margin, on_missing=on_missing)
    if crop is None or info.square is None:
        return None, None, None, info
    pts = crop_landmarks(lm, info.square, size)
    check_landmarks_in_image(pts, size, size, "face crop")
    labels = part_label_map(pts, size, size, split_lr=split_lr)
    if not labels.any():
        raise ValueError(f"the landmarks draw no face part inside the {size}-px crop (wrong landmarks for this image?)")
    return crop, pts, labels, info
