"""Patch-LFW: seeded planted patches (explainface.faces.patches) and the restoration kernel
(explainface.explanations.insertion) against a slow, obvious float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explainface.explanations.insertion import (
    FRACTIONS,
    curve_area,
    decision_order_map,
    match_rates,
    pixel_ranks,
    random_order_map,
    restore_counts,
    restore_curve,
    restored_images,
    summarize_restoration,
)
from explainface.faces.patches import (
    NUM_PATCHES,
    admissible_positions,
    plant_patches,
    scaled_patch_size,
)


def _faces(side: int = 112, seed: int = 0, height: int | None = None):
    rng = np.random.default_rng(seed)
    shape = (height or side, side, 3)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)


# ---- planting ---------------------------------------------------------------------------------------------------


def test_plant_is_deterministic_and_leaves_global_state_alone():
    image, source = _faces()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = plant_patches(image, source, seed=7)
    assert np.array_equal(np.random.get_state()[1], before)  # global numpy RNG untouched
    np.random.seed(999)
    b = plant_patches(image, source, seed=7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and np.array_equal(a.boxes, b.boxes)
    c = plant_patches(image, source, seed=8)
    assert not np.array_equal(a.boxes, c.boxes)
    # a sequence seed and a Generator work too; the Generator is advanced
    d = plant_patches(image, source, seed=[7, 3])
    assert np.array_equal(d.boxes, plant_patches(image, source, seed=[7, 3]).boxes)
    gen = np.random.default_rng(7)
    e = plant_patches(image, source, seed=gen)
    assert np.array_equal(e.boxes, a.boxes)
    assert not np.array_equal(plant_patches(image, source, seed=gen).boxes, a.boxes)


@pytest.mark.parametrize("side", [112, 150, 37])
def test_plant_patches_are_where_the_mask_says(side):
    image, source = _faces(side, seed=side)
    image_copy, source_copy = image.copy(), source.copy()
    out = plant_patches(image, source, seed=1)
    size = scaled_patch_size(side)
    assert out.image.dtype == np.uint8 and out.image.shape == image.shape
    assert out.mask.dtype == np.bool_ and out.mask.shape == (side, side)
    assert out.boxes.shape == (NUM_PATCHES, 4) and out.boxes.dtype == np.int64
    left, top, right, bottom = out.boxes.T
    assert np.all(right - left == size) and np.all(bottom - top == size)
    assert left.min() >= 0 and top.min() >= 0 and right.max() <= side and bottom.max() <= side
    union = np.zeros((side, side), dtype=bool)
    for x0, y0, x1, y1 in out.boxes:
        union[y0:y1, x0:x1] = True
    assert np.array_equal(union, out.mask)
    # the source's pixels at the same position inside, the image's outside
    assert np.array_equal(out.image[out.mask], source[out.mask])
    assert np.array_equal(out.image[~out.mask], image[~out.mask])
    assert out.fraction == pytest.approx(out.mask.mean())
    assert np.array_equal(image, image_copy) and np.array_equal(source, source_copy)  # inputs not modified


def test_patch_size_scales_with_the_image():
    assert scaled_patch_size(112) == 16
    assert scaled_patch_size(150) == 21
    assert scaled_patch_size(224) == 32
    assert scaled_patch_size(112, 112) == 16
    assert scaled_patch_size(3) == 1
    image, source = _faces(150)
    assert np.all(plant_patches(image, source, seed=0).boxes[:, 2:] - plant_patches(image, source, seed=0).boxes[:, :2]
                  == 21)  # fmt: skip
    out = plant_patches(image, source, seed=0, n=5, size=10)
    assert out.boxes.shape == (5, 4) and np.all(out.boxes[:, 2] - out.boxes[:, 0] == 10)


def test_every_position_is_drawn_including_the_last():
    image, source = _faces(20, seed=3, height=24)
    out = plant_patches(image, source, seed=0, n=2000, size=16)
    # top-left corners uniform over 0..H-size and 0..W-size (xSSAB never draws the last one; we do)
    assert set(out.boxes[:, 1].tolist()) == set(range(24 - 16 + 1))
    assert set(out.boxes[:, 0].tolist()) == set(range(20 - 16 + 1))
    counts = np.bincount(out.boxes[:, 0], minlength=5)
    assert counts.min() > 2000 / 5 * 0.7  # roughly uniform


def test_region_restricts_positions():
    image, source = _faces(64, seed=4)
    region = np.zeros((64, 64), dtype=bool)
    region[10:50, 20:60] = True
    out = plant_patches(image, source, seed=2, n=50, size=8, region=region)
    assert not np.any(out.mask & ~region)
    left, top, right, bottom = out.boxes.T
    assert top.min() >= 10 and bottom.max() <= 50 and left.min() >= 20 and right.max() <= 60
    # an all-True region is the same as none
    everywhere = np.ones((64, 64), dtype=bool)
    a = plant_patches(image, source, seed=2, size=8, region=everywhere)
    b = plant_patches(image, source, seed=2, size=8)
    assert np.array_equal(a.boxes, b.boxes)
    # the summed-area table agrees with a loop
    holey = np.random.default_rng(0).random((12, 13)) > 0.2
    allowed = admissible_positions(12, 13, 3, holey)
    loop = np.array([[holey[y : y + 3, x : x + 3].all() for x in range(11)] for y in range(10)])
    assert np.array_equal(allowed, loop)


def test_planting_errors():
    image, source = _faces(32)
    with pytest.raises(ValueError, match="same size"):
        plant_patches(image, source[:30], seed=0)
    with pytest.raises(ValueError, match="uint8"):
        plant_patches(image.astype(np.float32), source, seed=0)
    with pytest.raises(ValueError, match="H x W x 3"):
        plant_patches(image[..., 0], source[..., 0], seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        plant_patches(image, source, seed=0, size=33)
    with pytest.raises(ValueError, match="n must be at least 1"):
        plant_patches(image, source, seed=0, n=0)
    with pytest.raises(ValueError, match="size must be an int"):
        plant_patches(image, source, seed=0, size=4.0)
    with pytest.raises(ValueError, match="seed"):
        plant_patches(image, source, seed=None)
    with pytest.raises(ValueError, match="region must be H x W"):
        plant_patches(image, source, seed=0, region=np.ones((31, 32), dtype=bool))
    with pytest.raises(ValueError, match="bool"):
        plant_patches(image, source, seed=0, region=np.ones((32, 32), dtype=np.uint8))
    tiny = np.zeros((32, 32), dtype=bool)
    tiny[:4, :4] = True
    with pytest.raises(ValueError, match="no 6 x 6 patch fits"):
        plant_patches(image, source, seed=0, size=6, region=tiny)


# ---- restoration kernel -----------------------------------------------------------------------------------------


def _toy_score(target: np.ndarray):
    """Negative mean squared difference to a fixed image, in float64: one score per image of a batch."""
    t = target.astype(np.float64)
    calls = []

    def score(batch):
        calls.append(len(batch))
        b = np.asarray(batch, dtype=np.float64)
        return -((b - t[None]) ** 2).reshape(len(b), -1).mean(axis=1)

    score.calls = calls
    return score


def _reference_curve(modified, original, order_map, fractions, target) -> np.ndarray:
    """Slow and obvious: per fraction, sort all pixels (value descending, then raster index), restore the first
    floor(f N) one pixel at a time in float64, score."""
    h, w = order_map.shape
    n = h * w
    values = [float(v) for v in order_map.reshape(-1)]
    out = []
    for f in fractions:
        k = math.floor(f * n + 1e-6)
        chosen = sorted(range(n), key=lambda i: (-values[i], i))[:k]
        img = modified.astype(np.float64).copy()
        for i in chosen:
            img[i // w, i % w] = original[i // w, i % w]
        diff = img - target.astype(np.float64)
        out.append(-float(np.mean(diff * diff)))
    return np.array(out)


@pytest.mark.parametrize("kind", ["float", "ties", "bool"])
def test_restore_curve_matches_the_reference(kind):
    rng = np.random.default_rng({"float": 0, "ties": 1, "bool": 2}[kind])
    h, w = 12, 10
    original = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    modified = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    order_map = {
        "float": rng.normal(size=(h, w)),
        "ties": rng.integers(0, 4, (h, w)).astype(np.float32),
        "bool": rng.random((h, w)) > 0.5,
    }[kind]
    fractions = np.concatenate([FRACTIONS, [1.0, 0.333, 0.01]])  # also unsorted and tiny fractions
    score = _toy_score(target)
    got = restore_curve(modified, original, order_map, score, fractions=fractions)
    want = _reference_curve(modified, original, np.asarray(order_map, dtype=np.float64), fractions, target)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert score.calls == [len(fractions)]  # one batched call per pair
    # chunks give the same numbers
    chunked = _toy_score(target)
    np.testing.assert_allclose(restore_curve(modified, original, order_map, chunked, fractions=fractions,
                                             batch_size=7), got, rtol=1e-12)  # fmt: skip
    assert chunked.calls == [7, 7, 7, 2]
    # the ends: nothing restored = the modified image, everything restored = the original
    assert got[0] == pytest.approx(score(modified[None])[0])
    assert got[len(FRACTIONS)] == pytest.approx(score(original[None])[0])


def test_restored_images_and_ranks():
    rng = np.random.default_rng(5)
    original = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    modified = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    order_map = rng.integers(0, 3, (6, 7)).astype(np.float64)
    ranks = pixel_ranks(order_map)
    assert sorted(ranks.reshape(-1).tolist()) == list(range(42))
    flat = order_map.reshape(-1)
    expected = sorted(range(42), key=lambda i: (-flat[i], i))
    assert [int(np.flatnonzero(ranks.reshape(-1) == r)[0]) for r in range(42)] == expected
    batch = restored_images(modified, original, order_map, [0.0, 0.5, 1.0])
    assert batch.shape == (3, 6, 7, 3) and batch.dtype == np.uint8
    assert np.array_equal(batch[0], modified) and np.array_equal(batch[2], original)
    assert np.array_equal(batch[1][ranks < 21], original[ranks < 21])
    assert np.array_equal(batch[1][ranks >= 21], modified[ranks >= 21])
    assert list(restore_counts([0.05, 0.15, 0.3, 0.95, 1.0], 100)) == [5, 15, 30, 95, 100]
    assert list(restore_counts(FRACTIONS, 12544)) == [int(round(f * 100)) * 12544 // 100 for f in FRACTIONS]
    # grey images work too
    grey = restored_images(modified[..., 0], original[..., 0], order_map, [0.5])
    assert grey.shape == (1, 6, 7) and np.array_equal(grey[0][ranks < 21], original[..., 0][ranks < 21])


def test_torch_tensors_give_the_same_curve():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    original = rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)
    modified = rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)
    order_map = rng.normal(size=(9, 8))
    want = restore_curve(modified, original, order_map, _toy_score(target))
    t = torch.from_numpy(target.astype(np.float64)).permute(2, 0, 1)

    def tscore(batch):
        assert batch.shape == (len(FRACTIONS), 3, 9, 8) and batch.dtype == torch.float64
        return -((batch - t[None]) ** 2).flatten(1).mean(1)

    def chw(x):
        return torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1).contiguous()

    got = restore_curve(chw(modified), chw(original), torch.from_numpy(order_map), tscore)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _uniform_error_pair(side: int = 40, seed: int = 0):
    """A face of zeros with patches of 200s planted: every planted pixel costs the same, so a curve depends only
    on how many planted pixels are restored."""
    image = np.zeros((side, side, 3), dtype=np.uint8)
    source = np.full((side, side, 3), 200, dtype=np.uint8)
    planted = plant_patches(image, source, seed=seed, n=6, size=8)
    return image, planted


def test_oracle_first_reversed_last_random_between():
    original, planted = _uniform_error_pair()
    modified, mask = planted.image, planted.mask
    n, m = mask.size, int(mask.sum())
    assert 0 < m < n
    fractions = np.unique(np.concatenate([FRACTIONS, [m / n, 1 - m / n, 1.0]]))
    score = _toy_score(original)  # the "other image" is the original: its score is the best, 0
    oracle = restore_curve(modified, original, mask, score, fractions=fractions)
    reverse = restore_curve(modified, original, ~mask, score, fractions=fractions)
    randoms = [restore_curve(modified, original, random_order_map(mask.shape, [s, 0]), score, fractions=fractions)
               for s in range(3)]  # fmt: skip
    per_pixel = 3 * 200.0**2 / (3 * n)  # score lost per unrestored planted pixel
    k = restore_counts(fractions, n)
    np.testing.assert_allclose(oracle, -per_pixel * np.maximum(m - k, 0), rtol=1e-12)  # the best possible
    np.testing.assert_allclose(reverse, -per_pixel * np.minimum(m, n - k), rtol=1e-12)  # the worst possible
    at_mask = np.flatnonzero(np.isclose(fractions, m / n))[0]
    assert oracle[at_mask] == 0.0 and np.all(oracle[at_mask:] == 0.0)  # reaches the original's score
    assert np.all(oracle[:at_mask] < 0)
    assert np.all(reverse[fractions <= 1 - m / n] == reverse[0])  # flat until only planted pixels are left
    inner = (fractions > 0) & (fractions < 1)
    for r in randoms:
        assert np.all(oracle >= r) and np.all(r >= reverse)
        assert np.all(oracle[inner] - reverse[inner] > 0)
        assert curve_area(fractions, reverse) < curve_area(fractions, r) < curve_area(fractions, oracle)


def test_oracle_on_random_faces_by_area():
    original, source = _faces(48, seed=9)
    planted = plant_patches(original, source, seed=3, n=10, size=7)
    score = _toy_score(original)
    n, m = planted.mask.size, int(planted.mask.sum())
    fractions = np.unique(np.concatenate([FRACTIONS, [m / n]]))
    curves = {
        "oracle": restore_curve(planted.image, original, planted.mask, score, fractions=fractions),
        "random": restore_curve(planted.image, original, random_order_map((48, 48), 0), score, fractions=fractions),
        "reverse": restore_curve(planted.image, original, ~planted.mask, score, fractions=fractions),
    }
    at_mask = np.flatnonzero(np.isclose(fractions, m / n))[0]
    assert curves["oracle"][at_mask] == 0.0
    assert np.all(curves["reverse"][fractions <= 1 - m / n] == curves["reverse"][0])
    areas = {name: curve_area(fractions, c) for name, c in curves.items()}
    assert areas["reverse"] < areas["random"] < areas["oracle"]


def test_random_order_map():
    a = random_order_map((5, 7), seed=3)
    assert a.shape == (5, 7) and a.dtype == np.float64
    assert sorted(a.reshape(-1).tolist()) == list(range(35))  # a permutation: no ties
    assert np.array_equal(a, random_order_map((5, 7), seed=3))
    assert not np.array_equal(a, random_order_map((5, 7), seed=4))
    assert not np.array_equal(random_order_map((5, 7), [3, 0]), random_order_map((5, 7), [3, 1]))


def test_decision_order_map():
    signed = np.array([[0.5, -1.0], [2.0, 0.0]])
    assert np.array_equal(decision_order_map(signed, score=0.4, threshold=0.3), signed)  # matched: most similar
    assert np.array_equal(decision_order_map(signed, score=0.3, threshold=0.3), signed)  # >= is a match
    assert np.array_equal(decision_order_map(signed, score=0.2, threshold=0.3), -signed)  # not: most dissimilar
    first = pixel_ranks(decision_order_map(signed, 0.0, 0.3))
    assert first[0, 1] == 0  # the most negative pixel is restored first for a non-match


def test_summary_match_rates_and_area():
    scores = np.array([
        [0.1, 0.2, 0.5, 0.6],
        [0.3, 0.3, 0.2, 0.9],
        [0.0, 0.4, 0.4, 0.4],
    ])  # fmt: skip
    fractions = [0.0, 0.25, 0.5, 1.0]
    rates = match_rates(scores, 0.3)
    np.testing.assert_array_equal(rates, [1 / 3, 2 / 3, 2 / 3, 1.0])
    summary = summarize_restoration(scores, 0.3, fractions)
    np.testing.assert_array_equal(summary.match_rate, rates)
    trapezoid = (0.25 * (1 / 3 + 2 / 3) / 2 + 0.25 * (2 / 3 + 2 / 3) / 2 + 0.5 * (2 / 3 + 1.0) / 2) / 1.0
    assert summary.area == pytest.approx(trapezoid)
    assert summary.n_pairs == 3 and summary.threshold == 0.3
    assert summary.to_dict()["match_rate"] == pytest.approx(list(rates))
    assert curve_area([0.2, 0.4, 0.6], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert curve_area([0.3], [0.7]) == 0.7
    default = summarize_restoration(np.zeros((2, len(FRACTIONS))), 0.0)
    assert default.area == 1.0 and len(default.fractions) == 20


def test_restoration_errors():
    a = np.zeros((4, 5, 3), dtype=np.uint8)
    m = np.zeros((4, 5))
    score = _toy_score(a)
    with pytest.raises(ValueError, match="shape"):
        restore_curve(a, a[:3], m, score)
    with pytest.raises(ValueError, match="dtype"):
        restore_curve(a, a.astype(np.float32), m, score)
    with pytest.raises(ValueError, match="order_map is"):
        restore_curve(a, a, m.T, score)
    with pytest.raises(ValueError, match="finite"):
        restore_curve(a, a, np.full((4, 5), np.nan), score)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        restore_curve(a, a, m, score, fractions=[0.5, 1.5])
    with pytest.raises(ValueError, match="empty"):
        restore_curve(a, a, m, score, fractions=[])
    with pytest.raises(ValueError, match="batch_size"):
        restore_curve(a, a, m, score, batch_size=0)
    with pytest.raises(ValueError, match="returned 1 scores"):
        restore_curve(a, a, m, lambda batch: [0.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        curve_area([0.5, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError, match="pairs"):
        summarize_restoration(np.zeros((2, 3)), 0.0)
    with pytest.raises(ValueError, match="finite"):
        match_rates(np.array([[np.nan]]), 0.0)
    with pytest.raises(ValueError, match="seed"):
        random_order_map((3, 3), None)
