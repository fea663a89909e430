"""Part swaps (`explainface.parts.swap`): one face part of A replaced by a donor's, the planted reason of a pair
explanation's ground truth: where it changes A, that the warp puts the donor's part where A's is, the colour match,
the blend weight's region, bad inputs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from explainface.parts.labels import PART_INDEX, PART_NAMES
from explainface.parts.masks import face_frame, part_label_map
from explainface.parts.swap import (
    FEATHER,
    PART_LANDMARKS,
    SWAP_PARTS,
    SwapResult,
    blend_weight,
    fit_similarity,
    part_transform,
    planted_fraction,
    swap_part,
)
from explainface.synthetic import SyntheticFaces

SIZE = 128


@pytest.fixture(scope="module")
def faces():
    return SyntheticFaces(seed=0, difficulty="easy")


@pytest.fixture(scope="module")
def face_a(faces):
    return faces.sample(identity=0, index=0, size=SIZE)


@pytest.fixture(scope="module")
def face_b(faces):
    return faces.sample(identity=5, index=1, size=SIZE)


def _similarity(scale: float, degrees: float, shift: tuple[float, float], centre: float = SIZE / 2) -> np.ndarray:
    """[2, 3] similarity: scale and rotate about the image centre, then shift."""
    a = math.radians(degrees)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.array([centre, centre])
    return np.concatenate([rot, (c - rot @ c + np.asarray(shift))[:, None]], axis=1)


def _moved(image: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray, border=cv2.BORDER_REFLECT):
    """`image` warped by `matrix` (source -> destination pixels) and its landmarks moved with it."""
    h, w = image.shape[:2]
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    return out, np.asarray(landmarks, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def _label_mask(face, part: str) -> np.ndarray:
    return part_label_map(face.landmarks, *face.image.shape[:2]) == PART_INDEX[part]


# --- where the image changes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", SWAP_PARTS)
def test_outside_the_weight_the_image_is_a_bit_for_bit_and_inside_the_part_it_is_the_donors(face_a, face_b, part):
    r = swap_part(face_a.image, face_a.landmarks, face_b.image, face_b.landmarks, part)
    assert isinstance(r, SwapResult) and r.part == part
    assert r.image.shape == face_a.image.shape and r.image.dtype == np.uint8
    assert r.weight.shape == face_a.image.shape[:2] and r.weight.dtype == np.float32
    assert r.weight.min() >= 0.0 and r.weight.max() <= 1.0
    assert np.array_equal(r.landmarks, face_a.landmarks)
    outside = r.weight == 0
    assert np.array_equal(r.image[outside], face_a.image[outside])
    # the weight is 1 on all of the part's label and 0 beyond the feather's width from it
    label = _label_mask(face_a, part)
    assert (r.weight[label] == 1).all()
    dist = cv2.distanceTransform((~label).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    assert (r.weight[dist >= FEATHER * face_frame(face_a.landmarks).scale] == 0).all()
    assert (r.weight[(dist > 0) & (dist < 1)] > 0.5).all()  # ... falling outside the label, not on it
    # inside the part the pixels are mostly the donor's: most of the label's pixels changed
    changed = (r.image != face_a.image).any(-1)
    assert changed[label].mean() > 0.6


def test_the_blend_weight_ramps_smoothly_to_zero():
    mask = np.zeros((60, 60), bool)
    mask[20:40, 25:30] = True
    width = 6.0
    w = blend_weight(mask, width)
    assert (w[mask] == 1).all() and w[~mask].max() < 1
    # smoothstep of the distance: neighbours differ by at most its steepest slope (1.5 / width per pixel)
    steps = max(np.abs(np.diff(w, axis=0)).max(), np.abs(np.diff(w, axis=1)).max())
    assert 0.15 < steps <= 1.5 / width + 1e-6
    assert w[20:40, 25 - 6 : 25].min() == 0.0 and w[30, 24] > 0.9 and 0 < w[30, 21] < 0.5
    assert np.array_equal(blend_weight(mask, 0.0), mask.astype(np.float32))


def test_the_swapped_part_carries_the_donors_part_not_as(face_a, face_b):
    """Eyes from B at A's eye positions: closer to B's eyes moved onto A's (the part fit) than to A's own eyes."""
    r = swap_part(face_a.image, face_a.landmarks, face_b.image, face_b.landmarks, "eyes", color_match=False)
    m = cv2.invertAffineTransform(part_transform(face_a.landmarks, face_b.landmarks, "eyes"))
    b_on_a = cv2.warpAffine(face_b.image, cv2.invertAffineTransform(m), (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    core = r.weight > 0.99
    out = r.image[core].astype(float)
    assert np.abs(out - b_on_a[core]).mean() < 0.2 * np.abs(out - face_a.image[core]).mean()


# --- the warp -------------------------------------------------------------------------------------------------------


def test_fit_similarity_recovers_a_known_similarity_and_never_reflects():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (12, 2))
    m = _similarity(1.3, 25.0, (7.0, -4.0))
    assert np.allclose(fit_similarity(src, src @ m[:, :2].T + m[:, 2]), m, atol=1e-9)
    mirrored = src * [-1, 1]  # a reflection is not a similarity: the best fit has a positive determinant
    assert np.linalg.det(fit_similarity(src, mirrored)[:, :2]) >= 0


@pytest.mark.parametrize("part", SWAP_PARTS)
@pytest.mark.parametrize("move", [(0.9, 8.0, (4.0, -3.0)), (1.08, -6.0, (3.0, 2.0))], ids=["shrunk", "enlarged"])
def test_a_donor_that_is_a_moved_by_a_known_similarity_puts_as_part_back(face_a, part, move):
    m = _similarity(*move)
    donor, lm_donor = _moved(face_a.image, face_a.landmarks, m)
    r = swap_part(face_a.image, face_a.landmarks, donor, lm_donor, part, color_match=False)
    back = cv2.invertAffineTransform(m)
    assert np.allclose(r.matrix, back, atol=1e-6)
    # exactly the blend of the donor moved back (the same bilinear warp), up to rounding
    undone = cv2.warpAffine(donor, back, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    a = face_a.image.astype(np.float64)
    expected = np.rint(a + r.weight[..., None] * (undone - a))
    assert np.abs(r.image - expected).max() <= 1
    # ... which is A up to the two interpolations, far closer than the donor left where it is
    region = r.weight > 0.5
    error = np.abs(r.image[region].astype(float) - a[region]).mean()
    unmoved = np.abs(donor[region].astype(float) - a[region]).mean()
    assert error < 0.45 * unmoved


def test_a_much_larger_donor_is_area_averaged_not_aliased(face_a):
    """A noisy 3x-upscaled A as donor: the part is its area average (what a pixel of A would see), exactly."""
    rng = np.random.default_rng(0)
    n = 3 * SIZE
    big = cv2.resize(face_a.image, (n, n), interpolation=cv2.INTER_CUBIC) + rng.normal(0.0, 25.0, (n, n, 3))
    big = np.clip(big, 0, 255).astype(np.uint8)
    lm_big = (face_a.landmarks.astype(np.float64) + 0.5) * 3 - 0.5
    area = cv2.resize(big, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(float)
    for part in ("eyes", "cheek"):
        r = swap_part(face_a.image, face_a.landmarks, big, lm_big, part, color_match=False)
        core = r.weight > 0.999
        assert core.sum() > 50
        assert np.abs(r.image[core] - area[core]).max() <= 1


def test_a_donors_part_beyond_its_border_comes_in_reflected_not_black(face_a):
    donor, lm_donor = _moved(face_a.image, face_a.landmarks, _similarity(1.0, 0.0, (0.0, 60.0)), cv2.BORDER_CONSTANT)
    assert not (face_a.image == 0).all(-1).any()
    r = swap_part(face_a.image, face_a.landmarks, donor, lm_donor, "jaw", color_match=False)  # jaw below the donor
    assert not (r.image[r.weight > 0] == 0).all(-1).any()


@pytest.mark.parametrize("part", SWAP_PARTS)
def test_swapping_a_face_onto_itself_returns_it(face_a, part):
    for color_match in (True, False):
        r = swap_part(face_a.image, face_a.landmarks, face_a.image, face_a.landmarks, part, color_match=color_match)
        assert np.abs(r.image.astype(int) - face_a.image).max() <= 1
        assert np.allclose(r.matrix, np.eye(2, 3), atol=1e-9)


# --- colour -----------------------------------------------------------------------------------------------------------


def _weighted_mean(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    w = weight.astype(np.float64)[..., None]
    return (w * image).sum((0, 1)) / w.sum()


@pytest.mark.parametrize("part", SWAP_PARTS)
def test_a_flat_donor_paints_its_colour_or_as_mean_colour_when_matched(face_a, part):
    colour = np.array([10, 200, 60])
    flat = np.full((80, 90, 3), colour, np.uint8)  # any size: the donor's own frame
    plain = swap_part(face_a.image, face_a.landmarks, flat, face_a.landmarks * 0.6, part, color_match=False)
    full = _label_mask(face_a, part)  # where the weight is 1
    assert (plain.image[full] == colour).all()

    matched = swap_part(face_a.image, face_a.landmarks, flat, face_a.landmarks * 0.6, part)
    assert np.array_equal(matched.weight, plain.weight)
    a_mean = _weighted_mean(face_a.image, matched.weight)
    assert np.abs(_weighted_mean(matched.image, matched.weight) - a_mean).max() < 1.0
    assert np.abs(_weighted_mean(plain.image, plain.weight) - a_mean).max() > 20.0
    # still flat, in A's mean colour (weighted by weight^2, as the colour match weighs: see the module docstring)
    assert (np.abs(matched.image[full].astype(float) - _weighted_mean(face_a.image, matched.weight**2)) <= 1.0).all()


@pytest.mark.parametrize("part", SWAP_PARTS)
def test_colour_matching_undoes_a_per_channel_gain_and_offset(face_a, part):
    gain, offset = np.array([0.7, 1.1, 0.8]), np.array([30.0, -10.0, 20.0])
    tinted = np.clip(np.rint(face_a.image * gain + offset), 0, 255).astype(np.uint8)
    matched = swap_part(face_a.image, face_a.landmarks, tinted, face_a.landmarks, part)
    plain = swap_part(face_a.image, face_a.landmarks, tinted, face_a.landmarks, part, color_match=False)
    region = matched.weight > 0
    a = face_a.image[region].astype(float)
    assert np.abs(matched.image[region] - a).mean() < 0.5
    assert np.abs(plain.image[region] - a).mean() > 5.0


# --- the region -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("identity, index", [(0, 0), (7, 2)])
def test_every_part_plants_mostly_on_its_own_label(faces, identity, index):
    face = faces.sample(identity, index, SIZE)
    donor = faces.sample(identity + 100, index, SIZE)
    labels = part_label_map(face.landmarks, SIZE, SIZE)
    for part in SWAP_PARTS:
        r = swap_part(face.image, face.landmarks, donor.image, donor.landmarks, part)
        own = labels == PART_INDEX[part]
        assert own.any() and (r.weight > 0.5).any()
        assert r.weight[own].mean() > 0.9, part  # the part's pixels are (almost) all donor
        mass = np.bincount(labels.ravel(), weights=r.weight.ravel(), minlength=len(PART_NAMES))
        assert PART_NAMES[int(np.argmax(mass))] == part  # the planted part holds most of the weight
        assert mass[PART_INDEX[part]] / mass.sum() > 0.5, part


def test_planted_fraction_is_the_share_of_mostly_donor_pixels(face_a, face_b):
    fractions = {}
    for part in SWAP_PARTS:
        r = swap_part(face_a.image, face_a.landmarks, face_b.image, face_b.landmarks, part)
        fractions[part] = planted_fraction(r)
        assert fractions[part] == pytest.approx(np.count_nonzero(r.weight > 0.5) / r.weight.size)
    assert 0 < fractions["mouth"] < fractions["eyes"] < fractions["cheek"] < 0.5


def test_the_weight_does_not_depend_on_the_resolution(face_a):
    """The same face at twice the resolution: its weight, area-averaged back, is the weight at 1x (dilation and
    feathering scale with the face; what is left is the label map's own pixel rounding)."""
    big = cv2.resize(face_a.image, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_LINEAR)
    lm_big = (face_a.landmarks.astype(np.float64) + 0.5) * 2 - 0.5
    for part in SWAP_PARTS:
        w1 = swap_part(face_a.image, face_a.landmarks, face_a.image, face_a.landmarks, part).weight
        w2 = swap_part(big, lm_big, big, lm_big, part).weight
        w2 = cv2.resize(w2, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        assert w1.mean() == pytest.approx(w2.mean(), rel=0.15), part
        assert np.abs(w1 - w2)[(w1 > 0) | (w2 > 0)].mean() < 0.15, part


def test_part_landmarks_name_valid_points_for_every_part():
    assert set(PART_LANDMARKS) == set(SWAP_PARTS) == set(PART_NAMES[1:])
    for part, idx in PART_LANDMARKS.items():
        assert len(set(idx)) == len(idx) >= 3 and all(0 <= i < 68 for i in idx), part


# --- bad inputs -------------------------------------------------------------------------------------------------------


def _bad_cases(face):
    img, lm = face.image, face.landmarks
    nan_lm = lm.astype(np.float64).copy()
    nan_lm[30, 0] = np.nan
    return [
        (dict(part="ears"), "unknown part 'ears'"),
        (dict(part="background"), "unknown part"),
        (dict(landmarks_a=lm[:67]), r"landmarks_a: .*\[68, 2\]"),
        (dict(landmarks_donor=nan_lm), "landmarks_donor: .*finite"),
        (dict(landmarks_donor=np.zeros((68, 2))), "landmarks_donor: .*coincide"),
        (dict(landmarks_a=np.zeros((68, 2))), "landmarks_a: .*coincide"),
        (dict(landmarks_a=lm + 1000.0), "no pixel in image_a"),
        (dict(image_a=img.astype(np.float32)), "image_a must be uint8.*float32"),
        (dict(image_a=img[..., 0]), r"image_a must be uint8 HxWx3.*\(128, 128\)"),
        (dict(donor=np.dstack([img, img[..., :1]])), r"donor must be uint8 HxWx3.*\(128, 128, 4\)"),
        (dict(donor=img.tolist()), "donor must be a numpy array"),
        (dict(feather=-0.1), "feather must be"),
        (dict(feather=float("nan")), "feather must be"),
        (dict(feather="wide"), "feather must be"),
    ]


def test_bad_inputs_raise_value_errors_that_name_the_problem(face_a):
    base = dict(
        image_a=face_a.image,
        landmarks_a=face_a.landmarks,
        donor=face_a.image,
        landmarks_donor=face_a.landmarks,
        part="nose",
    )
    for change, message in _bad_cases(face_a):
        with pytest.raises(ValueError, match=message):
            swap_part(**{**base, **change})
