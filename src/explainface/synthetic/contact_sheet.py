"""A contact sheet of synthetic samples: face, landmarks and part map side by side, to check them by eye.

Each sample takes three `tile` x `tile` tiles: the image; the image with the 68 landmarks as dots coloured
by group (`LANDMARK_GROUPS`); the image blended 50% with the part map in `PART_COLORS` (background left
as is). `columns` samples per row; a legend of part and landmark-group colours below.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from explainface.argtypes import check_picture_path
from explainface.parts.labels import LANDMARK_GROUPS, PART_COLORS, PART_NAMES
from explainface.synthetic.generator import FaceSample, SyntheticFaces

#: Tiles per sample: image, landmarks, parts.
TILES_PER_SAMPLE = 3
#: Landmark-group colours (RGB, the tab10 palette), in LANDMARK_GROUPS order.
LANDMARK_COLORS: dict[str, tuple[int, int, int]] = dict(
    zip(
        LANDMARK_GROUPS,
        [
            (255, 127, 14),  # jaw
            (44, 160, 44),  # right_brow
            (148, 103, 189),  # left_brow
            (214, 39, 40),  # nose_bridge
            (255, 152, 150),  # nose_base
            (23, 190, 207),  # right_eye
            (31, 119, 180),  # left_eye
            (227, 119, 194),  # outer_lips
            (255, 255, 255),  # inner_lips
        ],
    )
)
LEGEND_LINE_HEIGHT = 18
LEGEND_ENTRY_WIDTH = 110
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def legend_height(width: int) -> int:
    """Height in pixels of the legend under a sheet `width` pixels wide (it wraps to as many lines as needed)."""
    entries = len(PART_NAMES) + len(LANDMARK_GROUPS)
    per_line = max(1, width // LEGEND_ENTRY_WIDTH)
    return math.ceil(entries / per_line) * LEGEND_LINE_HEIGHT


def contact_sheet(samples: Sequence[FaceSample], path: str | os.PathLike, tile: int = 160, columns: int = 4) -> Path:
    """Draw `samples` as (image | landmarks | parts) triplets, `columns` samples per row, and write a PNG.

    The sheet is `min(columns, n) * 3 * tile` wide and `ceil(n / columns) * tile + legend_height(width)` high.
    """
    if not samples:
        raise ValueError("no samples to draw")
    if tile < 8 or columns < 1:
        raise ValueError(f"need tile >= 8 and columns >= 1, got {tile} and {columns}")
    cols = min(columns, len(samples))
    rows = math.ceil(len(samples) / cols)
    width = cols * TILES_PER_SAMPLE * tile
    sheet = np.zeros((rows * tile + legend_height(width), width, 3), np.uint8)
    for n, s in enumerate(samples):
        r, c = divmod(n, cols)
        x0 = c * TILES_PER_SAMPLE * tile
        sheet[r * tile : (r + 1) * tile, x0 : x0 + TILES_PER_SAMPLE * tile] = np.concatenate(_triplet(s, tile), axis=1)
        cv2.line(sheet, (x0, r * tile), (x0, (r + 1) * tile - 1), (255, 255, 255), 1)  # sample separator
    _draw_legend(sheet[rows * tile :])
    path = check_picture_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def sample_grid(
    generator: SyntheticFaces, identities: int | Sequence[int], per_identity: int, size: int = 112
) -> list[FaceSample]:
    """Samples 0..per_identity-1 of each identity (`int` n means identities 0..n-1), identity-major order."""
    ids = range(identities) if isinstance(identities, int) else identities
    return [generator.sample(i, k, size) for i in ids for k in range(per_identity)]


def _triplet(s: FaceSample, tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = s.image.shape[0]
    interp = cv2.INTER_AREA if size > tile else cv2.INTER_LINEAR
    image = cv2.resize(np.ascontiguousarray(s.image), (tile, tile), interpolation=interp)

    dots = image.copy()
    scale = tile / size
    radius = max(1, round(tile / 80))
    for group, idx in LANDMARK_GROUPS.items():
        for x, y in s.landmarks[list(idx)]:
            # pixel centres: 0-based coordinate x maps to (x + 0.5) * scale - 0.5 in the tile; 4 bits subpixel
            centre = (int(round(((x + 0.5) * scale - 0.5) * 16)), int(round(((y + 0.5) * scale - 0.5) * 16)))
            cv2.circle(dots, centre, radius * 16, LANDMARK_COLORS[group], -1, cv2.LINE_AA, shift=4)

    labels = cv2.resize(np.ascontiguousarray(s.parts), (tile, tile), interpolation=cv2.INTER_NEAREST)
    palette = np.array([PART_COLORS[name] for name in PART_NAMES], np.uint8)
    coloured = palette[np.minimum(labels, len(PART_NAMES) - 1)]
    blended = image.copy()
    face = labels > 0
    blended[face] = ((image[face].astype(np.uint16) + coloured[face]) // 2).astype(np.uint8)

    cv2.putText(image, f"id {s.identity} #{s.index}", (3, 12), _FONT, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return image, dots, blended


def _draw_legend(area: np.ndarray) -> None:
    """Colour swatches with names: parts first, then landmark groups (`lm:` prefix)."""
    entries = [(name, PART_COLORS[name]) for name in PART_NAMES]
    entries += [(f"lm:{name}", LANDMARK_COLORS[name]) for name in LANDMARK_GROUPS]
    per_line = max(1, area.shape[1] // LEGEND_ENTRY_WIDTH)
    area[:] = 40
    for n, (name, colour) in enumerate(entries):
        line, pos = divmod(n, per_line)
        x, y = pos * LEGEND_ENTRY_WIDTH + 4, line * LEGEND_LINE_HEIGHT + 4
        cv2.rectangle(area, (x, y), (x + 10, y + 10), colour, -1)
        cv2.rectangle(area, (x, y), (x + 10, y + 10), (200, 200, 200), 1)
        cv2.putText(area, name, (x + 14, y + 9), _FONT, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
