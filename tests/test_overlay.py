"""The top-10% overlay of paper §3.3 / Figure 6 and the whole-image heat overlay."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib import colormaps

from explainface.explanations.overlay import heat_overlay, top_overlay
from explainface.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces


def naive_bilinear(m: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling with align_corners=False (image resizing), one output pixel at a time, float64."""
    h, w = m.shape
    out = np.zeros((size, size))
    for y in range(size):
        sy = max((y + 0.5) * h / size - 0.5, 0.0)
        y0 = min(int(math.floor(sy)), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for x in range(size):
            sx = max((x + 0.5) * w / size - 0.5, 0.0)
            x0 = min(int(math.floor(sx)), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = (1 - fx) * m[y0, x0] + fx * m[y0, x1]
            bottom = (1 - fx) * m[y1, x0] + fx * m[y1, x1]
            out[y, x] = (1 - fy) * top + fy * bottom
    return out


def naive_top_overlay(image: np.ndarray, m: np.ndarray, fraction: float = 0.1, alpha: float = 0.5):
    """The overlay spelled out: sort the upsampled map, keep the top ceil(fraction * S^2) positive pixels, colour
    them with jet from the threshold (0) to the maximum (1), blend."""
    up = naive_bilinear(m.astype(np.float64), image.shape[0])
    k = math.ceil(fraction * up.size)
    t = np.sort(up.ravel())[::-1][k - 1]
    mask = (up >= t) & (up > 0)
    out = image.astype(np.float64).copy()
    if mask.any():
        lo, hi = up[mask].min(), up[mask].max()
        for y, x in zip(*np.nonzero(mask)):
            rgb = np.array(colormaps["jet"]((up[y, x] - lo) / (hi - lo))[:3]) * 255
            out[y, x] = (1 - alpha) * image[y, x] + alpha * rgb
    return np.rint(out).astype(np.uint8), mask


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return SyntheticFaces(0).sample(HELDOUT_FIRST_IDENTITY, 0, 112).image


def random_map(seed: int, h: int = 14, w: int = 14) -> torch.Tensor:
    return torch.rand(h, w, generator=torch.Generator().manual_seed(seed)) + 0.01


@pytest.mark.parametrize("size,map_size", [(112, 14), (56, 7), (100, 14)])
def test_overlay_has_the_input_size(size, map_size):
    image = np.full((size, size, 3), 90, np.uint8)
    out = top_overlay(image, random_map(0, map_size, map_size))
    assert out.shape == image.shape and out.dtype == np.uint8


def test_highlighted_area_is_ten_percent_of_the_image_for_a_nonzero_map():
    grey = np.full((112, 112, 3), 128, np.uint8)  # jet never blends to grey, so every highlighted pixel changes
    for seed in range(3):
        out, mask = top_overlay(grey, random_map(seed), return_mask=True)
        changed = (out != grey).any(axis=2)
        assert np.array_equal(changed, mask)
        assert abs(int(mask.sum()) - 0.1 * 112 * 112) <= 112  # within a pixel row


def test_a_zero_map_leaves_the_image_unchanged_and_highlights_nothing(face):
    out, mask = top_overlay(face, torch.zeros(14, 14), return_mask=True)
    assert np.array_equal(out, face)
    assert mask.sum() == 0


def test_the_face_keeps_its_colours_outside_the_mask(face):
    out, mask = top_overlay(face, random_map(1), return_mask=True)
    assert np.array_equal(out[~mask], face[~mask])
    assert not np.array_equal(out[mask], face[mask])


def test_the_mask_sits_where_the_channel_fires():
    m = torch.zeros(14, 14)
    m[3, 10] = 1.0  # row 3, column 10: upper right
    _, mask = top_overlay(np.zeros((112, 112, 3), np.uint8), m, return_mask=True)
    ys, xs = np.nonzero(mask)
    assert abs(ys.mean() - (3 + 0.5) * 8) < 2 and abs(xs.mean() - (10 + 0.5) * 8) < 2


def test_overlay_matches_the_slow_reference(face):
    m = random_map(2)
    out, mask = top_overlay(face, m, return_mask=True)
    ref, ref_mask = naive_top_overlay(face, m.double().numpy())
    assert (mask != ref_mask).sum() <= 2  # float32 vs float64 may swap a pixel at the threshold
    both = mask & ref_mask
    assert np.abs(out[both].astype(int) - ref[both].astype(int)).max() <= 1
    assert np.array_equal(out[~mask & ~ref_mask], face[~mask & ~ref_mask])


def test_the_peak_is_blended_with_the_top_colour_of_the_map():
    m = torch.zeros(14, 14)
    m[7, 7] = 1.0
    grey = np.full((112, 112, 3), 100, np.uint8)
    out = top_overlay(grey, m, alpha=0.5)
    peak = out[59, 59]  # the upsampled maximum lies at the cell centre (7.5 * 8 - 0.5)
    dark_red = np.array(colormaps["jet"](1.0)[:3]) * 255
    assert np.allclose(peak, 0.5 * 100 + 0.5 * dark_red, atol=1)


def test_overlay_rejects_a_non_image():
    with pytest.raises(ValueError, match="uint8"):
        top_overlay(np.zeros((112, 112), np.uint8), random_map(0))
    with pytest.raises(ValueError, match=r"\[h, w\]"):
        top_overlay(np.zeros((112, 112, 3), np.uint8), torch.rand(2, 14, 14))


def test_heat_overlay_leaves_the_face_visible_and_keeps_its_size(face):
    heat = np.zeros((112, 112), np.float32)
    heat[:, :56] = 1.0
    out = heat_overlay(face, heat, alpha=0.5)
    assert out.shape == face.shape
    blue, red = (np.array(colormaps["jet"](v)[:3]) * 255 for v in (0.0, 1.0))
    assert np.allclose(out[:, 56:], 0.5 * face[:, 56:] + 0.5 * blue, atol=1)
    assert np.allclose(out[:, :56], 0.5 * face[:, :56] + 0.5 * red, atol=1)


def test_heat_overlay_rejects_a_heat_of_another_size(face):
    with pytest.raises(ValueError, match="differ in size"):
        heat_overlay(face, np.zeros((56, 56)))
