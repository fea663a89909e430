"""A contact sheet of part masks on real photos, as the paper's Figure 7: crop + landmarks | part mask | overlay.

`part_contact_sheet` picks images from a folder (recursively), takes their landmarks from a same-stem `.pts`
file or else from dlib's 68-point predictor, crops each with the project's no-alignment crop
(`parts.masks.face_parts_for_crop`) and draws three tiles per image at the crop size. Bad images (unreadable,
malformed `.pts`, no face for the predictor) are skipped, counted and named; the sheet keeps drawing until it
has `n` images or the folder runs out. The `parts` command wraps it.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from explainface.argtypes import check_picture_path
from explainface.faces.crop import CROP_MAX_SIDE
from explainface.faces.detect import FaceDetector, create_detector
from explainface.faces.landmarks import predict_landmarks68
from explainface.parts.labels import LANDMARK_GROUPS, PART_COLORS, PART_NAMES
from explainface.parts.masks import SPLIT_PART_COLORS, SPLIT_PART_NAMES, face_parts_for_crop
from explainface.readers.images import find_images, load_image_rgb_reduced, points_to_reduced
from explainface.readers.landmarks import read_pts
from explainface.synthetic.contact_sheet import LANDMARK_COLORS

#: Suffix of the label maps that the synthetic export writes beside its images: not photos.
OVERLAY_ALPHA = 0.45
TILES_PER_IMAGE = 3
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LEGEND_LINE, _LEGEND_ENTRY = 18, 120


@dataclass
class PartSheetReport:
    """What `part_contact_sheet` drew: `drawn` images out of `candidates` found; where the landmarks came from
    (`pts` file or `dlib`); how each was cropped (`face` / `centre`, see `crop.CropInfo`); the files skipped, with
    the reason. Images after the n-th drawn one are not looked at."""

    path: str
    candidates: int
    drawn: int = 0
    landmark_sources: dict[str, int] = field(default_factory=dict)
    crop_status: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def image_landmarks(path: Path, image: np.ndarray, detector: FaceDetector, k: int = 1) -> tuple[np.ndarray, str]:
    """The image's 68 landmarks and their source: the same-stem `.pts` ("pts") or dlib's predictor ("dlib").
    `k`: the image was decoded reduced by k (`images.load_image_rgb_reduced`), the `.pts` is of the full image.
    ValueError naming the file when the `.pts` is malformed or not 68 points, or when dlib finds no face."""
    pts = path.with_suffix(".pts")
    if pts.is_file():
        lm = read_pts(pts)
        if lm.shape != (68, 2):
            raise ValueError(f"{pts}: expected 68 points, got {len(lm)}")
        return points_to_reduced(lm, k), "pts"
    lm = predict_landmarks68(image, detector=detector)
    if lm is None:
        raise ValueError(f"{path}: no face found for the landmark predictor")
    return lm, "dlib"


def part_contact_sheet(
    folder: str | os.PathLike,
    out_png: str | os.PathLike,
    n: int = 12,
    size: int = 224,
    seed: int = 0,
    split_lr: bool = False,
    detector: str | FaceDetector = "hog",
    columns: int = 3,
    margin: float | None = None,
) -> PartSheetReport:
    """Draw `n` images picked at random (`seed`) from `folder` as (crop + landmarks | part mask | overlay) triplets
    at the crop `size`, `columns` images per row, with a legend of the part colours; write a PNG. `margin` is the
    crop's (None: the detector's default, as the metrics use; larger shows more of the hair and forehead).

    The crop is the project's (detector box, margin, no alignment; a centre crop when no face is found), so the
    masks are those the metrics see at the model's input size.
    """
    if n < 1 or size < 16 or columns < 1:
        raise ValueError(f"need n >= 1, size >= 16 and columns >= 1, got {n}, {size} and {columns}")
    if margin is not None and not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a number >= 0 (a fraction of the face box), got {margin}")
    check_picture_path(out_png)
    det = create_detector(detector) if isinstance(detector, str) else detector
    images = find_images(folder)
    root = Path(folder)
    order = np.random.default_rng(seed).permutation(len(images))
    report = PartSheetReport(str(out_png), candidates=len(images))
    sources: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    triplets = []
    for i in order:
        if len(triplets) == n:
            break
        path = images[i]
        name = path.relative_to(root).as_posix()
        try:
            image, k = load_image_rgb_reduced(path, max(CROP_MAX_SIDE, 2 * size))  # a large photo: reduced
            lm, source = image_landmarks(path, image, det, k)
            crop, pts, labels, info = face_parts_for_crop(image, lm, det, size=size, margin=margin, split_lr=split_lr)
        except (OSError, ValueError) as e:
            report.failures[name] = str(e)
            continue
        sources[source] += 1
        statuses[info.status] += 1
        triplets.append(_triplet(crop, pts, labels, split_lr, f"{name} ({source}, {info.status})"))
    report.drawn = len(triplets)
    report.landmark_sources = dict(sources)
    report.crop_status = dict(statuses)
    if not triplets:
        why = "; ".join(f"{k} ({v})" for k, v in list(report.failures.items())[:3])
        more = f"; and {len(report.failures) - 3} more" if len(report.failures) > 3 else ""
        raise ValueError(f"{folder}: no image could be drawn ({len(images)} found, {len(report.failures)} failed"
                         + (f": {why}{more}" if why else "") + ")")  # fmt: skip
    _write_sheet(triplets, Path(out_png), size, columns, split_lr)
    return report


def colour_labels(labels: np.ndarray, split_lr: bool = False) -> np.ndarray:
    """RGB uint8 [H, W, 3] of a part label map (`PART_COLORS`, or `SPLIT_PART_COLORS` for 11 parts)."""
    names, colours = (SPLIT_PART_NAMES, SPLIT_PART_COLORS) if split_lr else (PART_NAMES, PART_COLORS)
    palette = np.array([colours[name] for name in names], np.uint8)
    return palette[np.minimum(labels, len(names) - 1)]


def _triplet(crop: np.ndarray, pts: np.ndarray, labels: np.ndarray, split_lr: bool, caption: str) -> np.ndarray:
    size = crop.shape[0]
    dots = crop.copy()
    radius = max(1, round(size / 110))
    for group, idx in LANDMARK_GROUPS.items():
        for x, y in pts[list(idx)]:
            centre = (int(round(x * 16)), int(round(y * 16)))  # crop pixel centres, 4 bits sub-pixel
            cv2.circle(dots, centre, radius * 16, LANDMARK_COLORS[group], -1, cv2.LINE_AA, shift=4)
    coloured = colour_labels(labels, split_lr)
    overlay = crop.copy()
    on = labels > 0
    overlay[on] = np.round(crop[on] * (1 - OVERLAY_ALPHA) + coloured[on] * OVERLAY_ALPHA).astype(np.uint8)
    text = caption if len(caption) <= 40 else "..." + caption[-37:]
    cv2.putText(dots, text, (3, 11), _FONT, 0.33, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(dots, text, (3, 11), _FONT, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([dots, coloured, overlay], axis=1)


def _write_sheet(triplets: list[np.ndarray], path: Path, size: int, columns: int, split_lr: bool) -> None:
    cols = min(columns, len(triplets))
    rows = math.ceil(len(triplets) / cols)
    width = cols * TILES_PER_IMAGE * size
    names, colours = (SPLIT_PART_NAMES, SPLIT_PART_COLORS) if split_lr else (PART_NAMES, PART_COLORS)
    per_line = max(1, width // _LEGEND_ENTRY)
    legend_h = math.ceil(len(names) / per_line) * _LEGEND_LINE
    sheet = np.full((rows * size + legend_h, width, 3), 40, np.uint8)
    for k, t in enumerate(triplets):
        r, c = divmod(k, cols)
        x0 = c * TILES_PER_IMAGE * size
        sheet[r * size : (r + 1) * size, x0 : x0 + TILES_PER_IMAGE * size] = t
        cv2.line(sheet, (x0, r * size), (x0, (r + 1) * size - 1), (255, 255, 255), 1)
    for k, name in enumerate(names):
        line, pos = divmod(k, per_line)
        x, y = pos * _LEGEND_ENTRY + 4, rows * size + line * _LEGEND_LINE + 4
        cv2.rectangle(sheet, (x, y), (x + 10, y + 10), colours[name], -1)
        cv2.rectangle(sheet, (x, y), (x + 10, y + 10), (200, 200, 200), 1)
        cv2.putText(sheet, name, (x + 14, y + 9), _FONT, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
