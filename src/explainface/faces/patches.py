"""Patch-LFW's planted patches: seeded square patches of a source image pasted into a face (pure numpy).

Huber et al., "Efficient Explainable Face Verification based on Similarity Score Argument Backpropagation"
(xSSAB, WACV 2024; code ``marcohuber/xSSAB``, ``patches/patch.py``) build Patch-LFW from the LFW pairs: image 1
of every pair gets 27 square patches of 16 x 16 px (at their 112 x 112 aligned faces) copied from another image
*at the same position*; image 2 is left as it is. For an impostor pair the patches come from image 2 of the pair,
so they mark where the two faces are made *similar*; for a genuine pair they come from an image of a third,
different identity, so they mark where the faces are made *dissimilar*. What their code does, and what we do:

* **Where.** Each patch's top-left corner is drawn uniformly and independently over the whole image (no grid, no
  face region, overlaps allowed), the column first, then the row: ``randint(0, side - 16)`` and
  ``randint(16, side)`` for the bottom edge, i.e. top and left in ``0..side - 17`` (numpy's upper bound is
  exclusive, so the last position ``side - 16`` is never drawn). Ours: the top-left corner uniform over **every**
  position where the patch fits, ``0..H - size`` and ``0..W - size`` (one row and column more than theirs),
  independently for the ``n`` patches, overlaps allowed. The optional ``region`` (e.g. a face mask; xSSAB has
  none) restricts the draw to the positions whose whole patch lies inside it; without it every position is
  admissible, and an all-True region gives the same patches as none.
* **Content.** A patch is the source's pixels at the same position, so overlapping patches commute: the planted
  image is ``where(mask, source, image)`` exactly, and unchanged outside the mask.
* **Seed.** Theirs: ``np.random.seed(3)`` once, then one global stream for all pairs in pair-file order (the
  genuine pairs' third-identity images are drawn from the same stream). Ours: ``np.random.default_rng(seed)``,
  one generator per call, never the global state; give each pair its own seed (e.g. ``[seed, pair_index]``) so a
  pair keeps its patches whatever else is drawn. A ``Generator`` may be passed instead and is advanced.
* **Scale.** Our networks take 112 px (the CPU configs) or 150 px (dlib's chips): the patch count stays 27 and the
  side scales with the image, ``size = round(16 * sqrt(H * W) / 112)`` (`scaled_patch_size`: 16 at 112, 21 at
  150, 32 at 224), so the patches cover about the same share of the face (27 x 16^2 / 112^2 = 55% of the pixels
  before overlaps; 53% at 150).
* **Files.** Theirs writes both images of a pair as JPEG after patching (a lossy re-encoding of both); the
  planting here returns arrays and leaves encoding to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "NUM_PATCHES",
    "PATCH_SIZE",
    "PATCH_SIZE_AT",
    "PatchPlanting",
    "admissible_positions",
    "plant_patches",
    "scaled_patch_size",
]

#: Patch-LFW's number of patches per modified image (xSSAB ``patches/patch.py``: ``NUM_PATCHES = 27``).
NUM_PATCHES: int = 27
#: Patch-LFW's patch side in pixels at `PATCH_SIZE_AT` (xSSAB ``patches/patch.py``: ``insert``, 16 x 16).
PATCH_SIZE: int = 16
#: The image side at which Patch-LFW's patches are `PATCH_SIZE` (their 112 x 112 aligned faces).
PATCH_SIZE_AT: int = 112


@dataclass(frozen=True)
class PatchPlanting:
    """The planted image (uint8 HxWx3), the bool HxW mask of its planted pixels, and the patches' boxes.

    ``boxes`` is an ``(n, 4)`` int64 array of ``(left, top, right, bottom)`` pixel edges, right/bottom exclusive
    (the order of `explainface.faces.detect.Box`), in drawing order; overlapping boxes are all listed.
    """

    image: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray

    @property
    def fraction(self) -> float:
        """The share of the image's pixels that were planted (overlaps counted once)."""
        return float(self.mask.mean())


def scaled_patch_size(height: int, width: int | None = None) -> int:
    """The patch side for an image of ``height x width``: ``round(16 * sqrt(H * W) / 112)``, at least 1.

    16 at 112 (Patch-LFW), 21 at 150 (dlib's chips), 32 at 224: the same share of the image per patch.
    """
    width = height if width is None else width
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    return max(1, round(PATCH_SIZE * float(np.sqrt(int(height) * int(width))) / PATCH_SIZE_AT))


def _positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _check_rgb(name: str, image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be H x W x 3, got shape {image.shape}")
    return image


def admissible_positions(height: int, width: int, size: int, region: np.ndarray | None = None) -> np.ndarray:
    """Bool ``(H - size + 1, W - size + 1)``: where a ``size``-square patch's top-left corner may go.

    Everywhere without a region; with one, where the whole patch lies inside it (a summed-area table).
    """
    if size > height or size > width:
        raise ValueError(f"a {size} x {size} patch does not fit in a {height} x {width} image")
    shape = (height - size + 1, width - size + 1)
    if region is None:
        return np.ones(shape, dtype=bool)
    table = np.zeros((height + 1, width + 1), dtype=np.int64)
    table[1:, 1:] = region.astype(np.int64).cumsum(0).cumsum(1)
    inside = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    return inside == size * size


def plant_patches(
    image: np.ndarray,
    source: np.ndarray,
    seed: int | np.random.Generator,
    n: int = NUM_PATCHES,
    size: int | None = None,
    region: np.ndarray | None = None,
) -> PatchPlanting:
    """Paste ``n`` seeded square patches of ``source`` into ``image`` at the same positions (Patch-LFW).

    ``image`` and ``source`` are uint8 H x W x 3 of the same size. ``size`` is the patch side, by default
    `scaled_patch_size` of the image (16 at 112 px, as Patch-LFW). Positions: top-left corners uniform and
    independent over every position where the patch fits (inside ``region``, a bool H x W, when given), overlaps
    allowed. ``seed``: anything `np.random.default_rng` takes (an int, a sequence of ints such as
    ``[seed, pair_index]``) or a ``Generator`` (advanced); the global numpy state is never used. Returns the new
    image (the inputs are not modified), the mask of planted pixels, and the ``(left, top, right, bottom)`` boxes.
    """
    image = _check_rgb("image", image)
    source = _check_rgb("source", source)
    if image.shape != source.shape:
        raise ValueError(f"image and source must have the same size, got {image.shape} and {source.shape}")
    height, width = image.shape[:2]
    n = _positive_int("n", n)
    size = scaled_patch_size(height, width) if size is None else _positive_int("size", size)
    if region is not None:
        if not isinstance(region, np.ndarray) or region.dtype != np.bool_:
            raise ValueError(f"region must be a bool numpy array, got {getattr(region, 'dtype', type(region))}")
        if region.shape != (height, width):
            raise ValueError(f"region must be H x W = {(height, width)}, got {region.shape}")
    if seed is None or isinstance(seed, (bool, np.bool_)):
        raise ValueError(f"seed must be an int, a sequence of ints or a numpy Generator, got {seed!r}")
    allowed = admissible_positions(height, width, size, region)
    flat = np.flatnonzero(allowed)
    if flat.size == 0:
        raise ValueError(f"no {size} x {size} patch fits inside the region ({int(region.sum())} pixels)")
    rng = np.random.default_rng(seed)
    picks = flat[rng.integers(0, flat.size, size=n)]
    tops, lefts = np.divmod(picks, allowed.shape[1])
    boxes = np.stack([lefts, tops, lefts + size, tops + size], axis=1).astype(np.int64)
    mask = np.zeros((height, width), dtype=bool)
    for left, top, right, bottom in boxes:
        mask[top:bottom, left:right] = True
    planted = np.where(mask[:, :, None], source, image)
    return PatchPlanting(image=planted, mask=mask, boxes=boxes)
