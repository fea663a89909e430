"""Part masks (docs/method.md §6, paper Figure 7): landmark geometry and priority, left/right split, parsing maps,
the crop, dlib landmarks on real faces, and the `parts` contact-sheet command."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from explainface import cli
from explainface.faces import detect
from explainface.faces.crop import crop_square
from explainface.faces.landmarks import crop_landmarks, predict_landmarks68
from explainface.parts import masks as pm
from explainface.parts.labels import PART_INDEX, PART_NAMES
from explainface.parts.masks import (
    SPLIT_PART_INDEX,
    SPLIT_PART_NAMES,
    crop_label_map,
    face_parts_for_crop,
    merge_left_right,
    paint_parts,
    parsing_to_parts,
    part_label_map,
    part_masks,
)
from explainface.parts.sheet import find_images, part_contact_sheet
from explainface.readers.landmarks import read_pts, write_pts
from explainface.synthetic import SyntheticFaces
from explainface.synthetic.export import export_synthetic
from realdata import real_data

SIZE = 224
NON_HAIR = [PART_INDEX[n] - 1 for n in ("forehead", "cheek", "eyes", "nose", "mouth", "jaw")]


@pytest.fixture(scope="module")
def face():
    return SyntheticFaces(seed=0).sample(identity=0, index=0, size=SIZE)


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-part IoU of two [K, H, W] mask stacks (NaN where both are empty)."""
    inter, union = (a & b).sum((-2, -1)), (a | b).sum((-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def _rotate(points: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - centre) @ rot.T + centre


# --- priority and geometry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "winner, loser",
    [
        ("eyes", "cheek"),
        ("nose", "cheek"),
        ("mouth", "jaw"),
        ("eyes", "forehead"),
        ("jaw", "cheek"),
        ("forehead", "cheek"),  # PAINT_ORDER: cheek is the face's base layer, "the rest of the face"
        ("forehead", "hair"),
        ("cheek", "hair"),
        ("eyes", "hair"),
    ],
)
def test_paint_parts_gives_a_contested_pixel_to_the_higher_priority_part(winner, loser):
    shared = np.zeros((3, 3), bool)
    shared[1, 1] = True
    masks = {winner: shared.copy(), loser: shared.copy()}
    masks[loser][0, 0] = True  # the loser keeps what nobody contests
    labels = paint_parts(masks)
    assert labels[1, 1] == PART_INDEX[winner]
    assert labels[0, 0] == PART_INDEX[loser]


def test_eye_region_overrides_the_face_around_it_in_the_landmark_map(face):
    labels = part_label_map(face.landmarks, SIZE, SIZE)
    for eye in (range(36, 42), range(42, 48)):
        for x, y in face.landmarks[list(eye)]:
            assert labels[int(round(y)), int(round(x))] == PART_INDEX["eyes"]
    for x, y in face.landmarks[17:27]:  # the brows are part of the periocular region, not the forehead
        assert labels[int(round(y)), int(round(x))] == PART_INDEX["eyes"]


def test_every_part_is_present_and_stacked_from_hair_to_jaw_along_the_face(face):
    lm = face.landmarks.astype(np.float64)
    labels = part_label_map(lm, SIZE, SIZE)
    eyes_mid = (lm[36:42].mean(0) + lm[42:48].mean(0)) / 2
    down = lm[48:60].mean(0) - eyes_mid
    down /= np.linalg.norm(down)
    depth = {name: float((_centroid(labels == PART_INDEX[name]) - eyes_mid) @ down) for name in PART_NAMES[1:]}
    assert all((labels == PART_INDEX[n]).sum() > 20 for n in PART_NAMES[1:])
    assert depth["hair"] < depth["forehead"] < depth["eyes"] < depth["nose"] < depth["mouth"] < depth["jaw"]
    assert depth["forehead"] < depth["cheek"] < depth["jaw"]
    # the eyes part covers both eyes: its two halves' centroids are at the two eye centres
    eyes = labels == PART_INDEX["eyes"]
    n_parts, comp = cv2.connectedComponents(eyes.astype(np.uint8))
    assert n_parts == 3  # background + two periocular regions
    centres = sorted((_centroid(comp == k) for k in (1, 2)), key=lambda c: c[0])
    iod = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    for c, eye in zip(centres, (lm[36:42], lm[42:48])):
        assert np.linalg.norm(c - eye.mean(0)) < 0.25 * iod


def test_forehead_cheek_and_jaw_pixels_obey_the_face_frame_lines(face):
    """Slow float64 reference of the line rules: every pixel's distance along the face's down axis, per pixel."""
    lm = face.landmarks.astype(np.float64)
    labels = part_label_map(lm, SIZE, SIZE)
    re, le = lm[36:42].mean(0), lm[42:48].mean(0)
    u = (le - re) / np.linalg.norm(le - re)
    v = np.array([-u[1], u[0]])
    o = (re + le) / 2
    scale = max(np.linalg.norm(le - re), 0.5 * np.linalg.norm(lm[8] - o))
    t_of = [float((p - o) @ v) for p in lm]
    brow_top = min(t_of[17:27]) - pm.BROW_THICKNESS * scale
    chin = max(t_of[0:17])
    forehead_top = brow_top - pm.FOREHEAD_FRACTION * (chin - brow_top)
    jaw_top = max(t_of[48:60]) + pm.JAW_GAP * scale
    for y in range(SIZE):
        for x in range(SIZE):
            t = (x - o[0]) * v[0] + (y - o[1]) * v[1]
            name = PART_NAMES[labels[y, x]]
            if name == "forehead":
                assert forehead_top - 1e-3 <= t < brow_top + 1e-3, (x, y)
            elif name == "jaw":
                assert t > jaw_top - 1e-3, (x, y)
            elif name == "cheek":
                assert forehead_top - 1e-3 <= t <= jaw_top + 1e-3, (x, y)


def test_landmark_map_agrees_with_the_synthetic_generators_own_part_map():
    """Measured over 60 samples at 224 px: mean IoU over the six non-hair parts 0.89 (worst image 0.84); hair only
    0.17, because the generator labels its drawn hair styles and the landmarks cannot know them."""
    g = SyntheticFaces(seed=0)
    for identity, index in ((0, 0), (1, 1), (2, 2), (3, 0)):
        s = g.sample(identity=identity, index=index, size=SIZE)
        iou = _iou(part_masks(part_label_map(s.landmarks, SIZE, SIZE)), part_masks(s.parts))
        assert np.nanmean(iou[NON_HAIR]) > 0.8, (identity, index, iou)
        assert iou[PART_INDEX["mouth"] - 1] > 0.95  # both draw the outer-lip polygon


def test_the_map_does_not_depend_on_the_resolution(face):
    small = part_label_map(face.landmarks, SIZE, SIZE)
    big = part_label_map(face.landmarks * 2 + 0.5, 2 * SIZE, 2 * SIZE)  # the same face, pixel centres mapped
    back = cv2.resize(big, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    assert np.nanmean(_iou(part_masks(small), part_masks(back))) > 0.9


def test_eyes_region_rotates_with_landmarks_rotated_by_20_degrees(face):
    lm = face.landmarks.astype(np.float64)
    centre = np.array([SIZE / 2 - 0.5, SIZE / 2 - 0.5])
    upright = part_label_map(lm, SIZE, SIZE)
    rotated = part_label_map(_rotate(lm, 20, centre), SIZE, SIZE)
    # the upright map turned by the same 20 degrees (nearest neighbour), the reference for the rotated one
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), -20, 1.0)
    expected = cv2.warpAffine(upright, m, (SIZE, SIZE), flags=cv2.INTER_NEAREST)
    iou = _iou(part_masks(rotated), part_masks(expected))
    for name in ("eyes", "nose", "mouth", "forehead", "jaw"):
        assert iou[PART_INDEX[name] - 1] > 0.85, (name, iou)
    eyes_centre = _rotate(_centroid(upright == PART_INDEX["eyes"])[None], 20, centre)[0]
    assert np.linalg.norm(_centroid(rotated == PART_INDEX["eyes"]) - eyes_centre) < 1.5


def test_part_masks_are_one_hot_per_part_in_part_names_order():
    labels = np.array([[0, 1, 2, 3], [4, 5, 6, 7]], np.uint8)
    masks = part_masks(labels)
    assert masks.shape == (7, 2, 4) and masks.dtype == bool
    for k in range(7):
        assert masks[k].sum() == 1 and masks[k][labels == k + 1].all()
    batch = part_masks(np.stack([labels, np.zeros_like(labels)]))
    assert batch.shape == (2, 7, 2, 4) and not batch[1].any()


def test_landmarks_of_the_wrong_shape_are_a_clear_error():
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        part_label_map(np.zeros((5, 2)), 10, 10)


# --- left / right -------------------------------------------------------------------------------------------------


def test_split_lr_puts_the_subjects_right_on_the_image_left_of_an_upright_face(face):
    split = part_label_map(face.landmarks, SIZE, SIZE, split_lr=True)
    assert split.max() < len(SPLIT_PART_NAMES)
    for part in ("eyes", "cheek", "jaw", "hair"):
        right = _centroid(split == SPLIT_PART_INDEX[f"right_{part}"])
        left = _centroid(split == SPLIT_PART_INDEX[f"left_{part}"])
        assert right[0] < left[0], part
    right_eye = face.landmarks[36:42].mean(0).round().astype(int)
    assert split[right_eye[1], right_eye[0]] == SPLIT_PART_INDEX["right_eyes"]


def test_split_lr_merges_back_to_the_seven_part_map(face):
    split = part_label_map(face.landmarks, SIZE, SIZE, split_lr=True)
    assert np.array_equal(merge_left_right(split), part_label_map(face.landmarks, SIZE, SIZE))


def test_split_lr_follows_the_landmarks_when_the_face_is_upside_down(face):
    lm = _rotate(face.landmarks.astype(np.float64), 180, np.array([SIZE / 2 - 0.5, SIZE / 2 - 0.5]))
    split = part_label_map(lm, SIZE, SIZE, split_lr=True)
    right = _centroid(split == SPLIT_PART_INDEX["right_eyes"])
    left = _centroid(split == SPLIT_PART_INDEX["left_eyes"])
    assert right[0] > left[0]  # turned over, the subject's right eye is on the image right


# --- parsing maps -------------------------------------------------------------------------------------------------


def _lapa_face() -> np.ndarray:
    """A 20 x 20 LaPa map: skin, one right eye under its brow (same columns), nose, lips, hair on top."""
    m = np.zeros((20, 20), np.uint8)
    m[4:18, 2:18] = 1  # skin
    m[0:3, :] = 10  # hair
    m[5:7, 3:9] = 3  # right eyebrow
    m[9:11, 3:9] = 5  # right eye
    m[10:13, 11:13] = 6  # nose
    m[14, 8:13] = 7  # upper lip
    m[15, 8:13] = 8  # inner mouth
    m[16, 8:13] = 9  # lower lip
    return m


def test_lapa_classes_map_to_parts_with_the_eye_and_brow_hull_as_eyes():
    parts = parsing_to_parts(_lapa_face(), "lapa")  # one eye only: no second eye to scale a dilation by
    expected = np.zeros((20, 20), np.uint8)
    expected[4:18, 2:18] = PART_INDEX["cheek"]  # skin without landmarks
    expected[0:3, :] = PART_INDEX["hair"]
    expected[5:11, 3:9] = PART_INDEX["eyes"]  # brow, eye and the skin between them
    expected[10:13, 11:13] = PART_INDEX["nose"]
    expected[14:17, 8:13] = PART_INDEX["mouth"]
    assert np.array_equal(parts, expected)


def test_lapa_two_eyes_are_dilated_by_the_inter_eye_distance():
    m = np.zeros((40, 60), np.uint8)
    m[10:30, 5:55] = 1
    m[20, 15] = 5  # right eye, one pixel
    m[20, 45] = 4  # left eye, 30 px away
    parts = parsing_to_parts(m, "lapa")
    radius = round(pm.EYE_DILATION * 30)
    assert parts[20, 15 + radius] == PART_INDEX["eyes"] and parts[20, 15 + radius + 1] == PART_INDEX["cheek"]


@pytest.mark.parametrize(
    "scheme, value, part",
    [
        ("celebamask", 2, "nose"),
        ("celebamask", 3, "eyes"),  # glasses
        ("celebamask", 10, "mouth"),
        ("celebamask", 12, "mouth"),
        ("celebamask", 13, "hair"),
        ("celebamask", 14, "hair"),  # hat: the head top
        ("celebamask", 8, "background"),  # ear
        ("celebamask", 17, "background"),  # neck
        ("celebamask", 18, "background"),  # cloth
        ("celebamask", 1, "cheek"),
        ("celebamask-bisenet", 10, "nose"),
        ("celebamask-bisenet", 17, "hair"),
        ("celebamask-bisenet", 2, "eyes"),  # l_brow
        ("celebamask-bisenet", 16, "background"),  # cloth
        ("lapa", 8, "mouth"),  # inner mouth
    ],
)
def test_parsing_classes_map_to_the_expected_part(scheme, value, part):
    m = np.zeros((9, 9), np.uint8)
    m[3:6, 3:6] = value
    assert parsing_to_parts(m, scheme)[4, 4] == PART_INDEX[part]


def test_parsing_skin_is_split_by_the_landmark_lines(face):
    skin = np.ones((SIZE, SIZE), np.uint8)  # LaPa: skin everywhere
    parts = parsing_to_parts(skin, "lapa", landmarks=face.landmarks)
    landmark_map = part_label_map(face.landmarks, SIZE, SIZE)
    for name in ("forehead", "jaw"):
        ours = parts == PART_INDEX[name]
        assert ours[landmark_map == PART_INDEX[name]].all(), name
    assert set(np.unique(parts)) == {PART_INDEX[n] for n in ("hair", "forehead", "cheek", "jaw")}
    assert set(np.unique(parsing_to_parts(skin, "lapa"))) == {PART_INDEX["cheek"]}


def test_parsing_labels_outside_the_scheme_are_a_clear_error():
    with pytest.raises(ValueError, match="lapa"):
        parsing_to_parts(np.full((4, 4), 11, np.uint8), "lapa")
    with pytest.raises(ValueError, match="unknown parsing scheme"):
        parsing_to_parts(np.zeros((4, 4), np.uint8), "helen")


# --- through the crop ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "square, size",
    [
        ((20.0, 30.0, 100.0), 224),  # growing (INTER_LINEAR)
        ((10.0, 5.0, 170.0), 64),  # shrinking by a non-integer factor (INTER_AREA)
        ((-25.0, -10.0, 150.0), 112),  # partly outside the image (black padding)
    ],
)
def test_crop_landmarks_land_on_the_same_content_that_crop_square_moves(square, size):
    img = np.zeros((200, 180), np.float32)
    for x, y in ((57, 61), (90, 120), (40, 100)):
        img[y - 2 : y + 3, x - 2 : x + 3] = 255  # a 5 x 5 block centred on the pixel (x, y)
        crop = crop_square(img, *square, size)
        x_crop, y_crop = crop_landmarks(np.array([[x, y]], np.float32), square, size)[0]
        # intensity centroid of the block in the crop, in a window around the mapped point
        r = int(4 * size / square[2]) + 3
        y0, x0 = max(0, int(y_crop) - r), max(0, int(x_crop) - r)
        win = crop[y0 : int(y_crop) + r + 1, x0 : int(x_crop) + r + 1].astype(np.float64)
        ys, xs = np.mgrid[y0 : y0 + win.shape[0], x0 : x0 + win.shape[1]]
        centroid = ((xs * win).sum() / win.sum(), (ys * win).sum() / win.sum())
        assert centroid == pytest.approx((x_crop, y_crop), abs=0.05)
        img[:] = 0


def _crop_label_map_reference(labels: np.ndarray, square, size: int) -> np.ndarray:
    """Slow reference: each crop pixel takes the source pixel under its centre, 0 outside the image."""
    x0, y0, side = (int(round(v)) for v in square)
    out = np.zeros((size, size), labels.dtype)
    for i in range(size):
        for j in range(size):
            sx = x0 + (j + 0.5) * side / size  # crop pixel centre in source pixel-edge coordinates
            sy = y0 + (i + 0.5) * side / size
            c, r = math.floor(sx), math.floor(sy)
            if 0 <= r < labels.shape[0] and 0 <= c < labels.shape[1]:
                out[i, j] = labels[r, c]
    return out


@pytest.mark.parametrize("square, size", [((20.4, 30.0, 100.0), 64), ((-30.0, 12.0, 90.0), 112), ((5, 5, 60), 60)])
def test_crop_label_map_matches_the_nearest_neighbour_reference(square, size):
    labels = np.random.default_rng(0).integers(0, 8, (80, 70)).astype(np.uint8)
    assert np.array_equal(crop_label_map(labels, square, size), _crop_label_map_reference(labels, square, size))


def test_crop_label_map_agrees_with_crop_square_away_from_label_edges():
    labels = np.zeros((120, 100), np.uint8)
    labels[20:60, 10:50] = 3
    labels[50:110, 40:90] = 6
    square, size = (-15.0, 8.0, 130.0), 96
    nearest = crop_label_map(labels, square, size)
    resampled = crop_square(labels, *square, size)  # INTER_AREA: blends only across edges
    edge = cv2.dilate((cv2.Laplacian(nearest.astype(np.float32), cv2.CV_32F) != 0).astype(np.uint8), np.ones((3, 3)))
    assert np.array_equal(nearest[edge == 0], resampled[edge == 0])
    assert (nearest[:, : round(15 * size / 130) - 1] == 0).all()  # left of the image: padding


def test_face_parts_for_crop_draws_the_map_at_the_crop_from_the_moved_landmarks(face):
    class Fixed:
        def detect(self, image_rgb):
            return [detect.Box(40.0, 50.0, 180.0, 200.0, 1.0)]

    crop, pts, labels, info = face_parts_for_crop(face.image, face.landmarks, Fixed(), size=112, margin=0.2)
    assert crop.shape == (112, 112, 3) and labels.shape == (112, 112) and info.status == "face"
    assert np.allclose(pts, crop_landmarks(face.landmarks, info.square, 112))
    assert np.array_equal(labels, part_label_map(pts, 112, 112))
    # the same parts as the full-resolution map cropped, up to edge pixels
    cropped = crop_label_map(part_label_map(face.landmarks, SIZE, SIZE), info.square, 112)
    assert np.nanmean(_iou(part_masks(labels), part_masks(cropped))[NON_HAIR]) > 0.85


# --- dlib landmarks -----------------------------------------------------------------------------------------------


def test_predict_landmarks68_agrees_with_helen_annotations():
    """Measured on 56 HELEN test images (hog): mean error 0.038 of the inter-ocular distance, 90th percentile 0.048."""
    if not detect.dlib_available():
        pytest.skip("dlib is not installed")
    helen = real_data("helen", "testset")
    from explainface.readers.images import load_image_rgb

    for stem in sorted(p.with_suffix("") for p in helen.glob("*.pts"))[:3]:
        image, truth = load_image_rgb(stem.with_suffix(".jpg")), read_pts(stem.with_suffix(".pts"))
        pred = predict_landmarks68(image)
        assert pred is not None and pred.shape == (68, 2)
        iod = np.linalg.norm(truth[36:42].mean(0) - truth[42:48].mean(0))
        assert np.linalg.norm(pred - truth, axis=1).mean() < 0.08 * iod, stem.name


def test_predict_landmarks68_returns_none_without_a_face():
    if not detect.dlib_available():
        pytest.skip("dlib is not installed")
    assert predict_landmarks68(np.full((120, 120, 3), 128, np.uint8)) is None


# --- the contact sheet --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    export_synthetic(out, 2, 2, size=112, heldout_identities=0, progress=False)
    return out / "train"


def test_find_images_skips_the_exports_part_label_maps(tiny_export):
    found = find_images(tiny_export)
    assert len(found) == 4 and all(p.suffix == ".jpg" for p in found)


def test_parts_command_writes_a_png_sheet(tiny_export, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    detector = "hog" if detect.dlib_available() else "haar"
    assert (
        cli.main(["parts", str(tiny_export), "--out", str(out), "--n", "3", "--size", "64", "--detector", detector])
        == 0
    )
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[1] == 3 * 3 * 64 and sheet.shape[0] > 64
    assert "pts 3" in capsys.readouterr().out


def test_part_contact_sheet_skips_and_names_bad_files(tiny_export, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for p in find_images(tiny_export)[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
        (folder / p.with_suffix(".pts").name).write_bytes(p.with_suffix(".pts").read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    good = find_images(tiny_export)[2]
    (folder / "few_points.jpg").write_bytes(good.read_bytes())
    write_pts(folder / "few_points.pts", np.zeros((5, 2)))
    report = part_contact_sheet(folder, tmp_path / "s.png", n=10, size=48, detector="haar")
    assert report.drawn == 2 and report.landmark_sources == {"pts": 2}
    assert set(report.failures) == {"broken.jpg", "few_points.jpg"}
    assert "68 points" in report.failures["few_points.jpg"]
