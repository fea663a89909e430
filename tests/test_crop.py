"""Face detection and crops without alignment (docs/method.md §4.2): square arithmetic, padding, fallbacks, the cached
folder crop (bad files, resume, workers); real detectors on real faces when dlib / the data are present."""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from explainface.cli.crop import add_crop_parser, run_crop
from explainface.faces import detect
from explainface.faces.crop import (
    META_FILE,
    REPORT_FILE,
    centre_square,
    crop_face,
    crop_folder,
    crop_square,
    read_crop_index,
    read_crop_meta,
    square_box,
)
from explainface.faces.detect import Box, HaarDetector, create_detector, main_face
from explainface.readers.images import read_image_rgb
from explainface.synthetic import SyntheticFaces
from realdata import data_root

REPO = Path(__file__).resolve().parents[1]
# the folder tree below holds two bad files on purpose; crop_folder names them in a warning
pytestmark = pytest.mark.filterwarnings("ignore:2 unreadable image:UserWarning")


class FakeDetector:
    """A face in the middle half of any image with content; none in a flat image."""

    def detect(self, image_rgb: np.ndarray) -> list[Box]:
        h, w = image_rgb.shape[:2]
        if image_rgb.std() < 1:
            return []
        return [Box(w * 0.25, h * 0.3, w * 0.75, h * 0.8, 1.0), Box(0, 0, 10, 10, 2.0)]

    def __repr__(self) -> str:
        return "FakeDetector()"


# --- square and crop arithmetic ---------------------------------------------------------------------------------


def test_square_box_is_centred_on_the_box_with_side_max_wh_times_one_plus_margin():
    box = Box(10, 20, 50, 80, 1.0)  # w 40, h 60, centre (30, 50)
    x0, y0, side = square_box(box, 0.5)
    assert side == pytest.approx(90)
    assert (x0 + side / 2, y0 + side / 2) == pytest.approx((30, 50))
    assert square_box(box, 0.0) == pytest.approx((0, 20, 60))


def test_main_face_prefers_the_larger_box_over_the_better_score():
    small, big = Box(45, 45, 55, 55, 9.0), Box(35, 40, 65, 60, 0.1)  # both centred in a 100 x 100 image
    assert main_face([small, big], 100, 100) is big
    assert main_face([], 100, 100) is None


def test_main_face_prefers_the_centred_subject_over_a_larger_bystander():
    # LFW Dominique_de_Villepin_0007 (250 x 250), dlib HOG: the subject in the centre, a bystander cut by the edge
    subject, bystander = Box(86, 86, 176, 176), Box(-24, 116, 77, 217)
    assert bystander.area > subject.area
    assert main_face([bystander, subject], 250, 250) is subject
    # the rule is area - 2 * (squared centre offset): a face far larger than a small centred one still wins
    tiny, huge = Box(120, 120, 130, 130), Box(10, 10, 150, 150)
    assert main_face([tiny, huge], 250, 250) is huge


def test_crop_square_inside_the_image_cuts_exact_pixels():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    out = crop_square(image, 5, 4, 10, 10)
    np.testing.assert_array_equal(out, image[4:14, 5:15])


def test_crop_square_pads_with_black_where_the_square_leaves_the_image():
    image = np.full((10, 10, 3), 200, np.uint8)
    image[0, 0] = (1, 2, 3)
    out = crop_square(image, -3, -2, 8, 8)  # no resize: side == size
    assert out.shape == (8, 8, 3)
    assert (out[:2] == 0).all() and (out[:, :3] == 0).all()  # rows above / columns left of the image
    np.testing.assert_array_equal(out[2, 3], (1, 2, 3))  # image pixel (0, 0) lands at (2, 3)
    assert (out[3:, 4:] == 200).all()


def test_crop_square_entirely_outside_the_image_is_black():
    out = crop_square(np.full((10, 10, 3), 255, np.uint8), 50, 50, 8, 4)
    assert out.shape == (4, 4, 3) and not out.any()


@pytest.mark.parametrize("side, size", [(100, 32), (20, 112), (50, 50)])
def test_crop_square_resizes_to_size_shrinking_and_growing(side, size):
    image = np.random.default_rng(0).integers(0, 256, (120, 140, 3), dtype=np.uint8)
    assert crop_square(image, 10, 10, side, size).shape == (size, size, 3)
    assert crop_square(image[:, :, 0], 10, 10, side, size).shape == (size, size)  # greyscale too


def test_crop_square_shrinks_with_area_averaging():
    image = np.zeros((4, 4, 3), np.uint8)
    image[::2, ::2] = 255  # a checkerboard of single pixels: area averaging gives 63.75 everywhere
    out = crop_square(image, 0, 0, 4, 2)
    assert np.abs(out.astype(int) - 64).max() <= 1


# --- crop_face ----------------------------------------------------------------------------------------------------


def _face(identity: int = 0, k: int = 0, size: int = 128) -> np.ndarray:
    return SyntheticFaces(0).sample(identity, k, size).image


def test_crop_face_uses_the_largest_box_and_the_margin():
    image = _face()
    crop, info = crop_face(image, FakeDetector(), size=56, margin=0.2)
    assert crop.shape == (56, 56, 3)
    assert info.status == "face" and info.faces == 2 and info.box == Box(32, 38.4, 96, 102.4, 1.0)
    assert info.square == (26, 32, 77)  # side 64 * 1.2 = 76.8 around the centre (64, 70.4)
    np.testing.assert_array_equal(crop, crop_square(image, *square_box(info.box, 0.2), 56))


class NoFace:
    def detect(self, image_rgb: np.ndarray) -> list[Box]:
        return []


def test_crop_face_without_a_face_takes_the_largest_centred_square():
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, 20:80] = 50
    crop, info = crop_face(image, NoFace(), size=30, on_missing="center")
    assert info.status == "centre" and info.box is None and info.square == (20, 0, 60)
    assert centre_square(60, 100) == (20, 0, 60)
    assert (crop == 50).all()


def test_crop_face_without_a_face_in_skip_mode_returns_none():
    crop, info = crop_face(_face(), NoFace(), on_missing="skip")
    assert crop is None and info.status == "no_face" and info.square is None


def test_margin_defaults_to_the_detectors_own():
    class Wide(FakeDetector):
        default_margin = 1.0

    _, info = crop_face(_face(), Wide(), size=32)
    assert info.square[2] == 128  # box side 64 * (1 + 1.0)


# --- crop_folder --------------------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """2 identities x 3 synthetic faces, a flat image (no face), a garbage .jpg and a truncated JPEG."""
    src = tmp_path / "src"
    for identity in (0, 1):
        folder = src / f"person{identity}"
        folder.mkdir(parents=True)
        for k in range(3):
            bgr = cv2.cvtColor(_face(identity, k), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(folder / f"img{k}.{'png' if k == 2 else 'jpg'}"), bgr)
    cv2.imwrite(str(src / "person0" / "blank.png"), np.full((80, 90, 3), 128, np.uint8))
    (src / "person1" / "garbage.jpg").write_bytes(b"this is not an image" * 10)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(_face(1, 5), cv2.COLOR_RGB2BGR))
    (src / "person1" / "truncated.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    (src / "person1" / "notes.txt").write_text("ignored: not an image extension")
    return src


def _outputs(dst: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dst)): p.read_bytes() for p in sorted(dst.rglob("*")) if p.is_file()}


def test_crop_folder_mirrors_the_tree_and_counts_and_names_bad_files(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    assert (r.total, r.cropped, r.cached, r.no_face, r.centre_cropped, r.unreadable) == (9, 6, 0, 1, 1, 2)
    assert r.no_face_files == ["person0/blank.png"]
    assert r.unreadable_files == ["person1/garbage.jpg", "person1/truncated.jpg"]
    assert "truncated" in r.unreadable_reasons["person1/truncated.jpg"]
    images = sorted(str(p.relative_to(dst)) for p in dst.glob("*/*"))
    assert images == [
        "person0/blank.jpg",
        "person0/img0.jpg",
        "person0/img1.jpg",
        "person0/img2.jpg",
        "person1/img0.jpg",
        "person1/img1.jpg",
        "person1/img2.jpg",
    ]
    assert read_image_rgb(dst / "person0/img2.jpg").shape == (48, 48, 3)
    report = json.loads((dst / REPORT_FILE).read_text())
    assert report["unreadable_files"] == r.unreadable_files and report["cropped"] == 6
    meta = read_crop_meta(dst)
    assert (meta["size"], meta["margin"], meta["detector"], meta["complete"]) == (48, 0.4, "FakeDetector()", True)
    rows = {row["image"]: row for row in read_crop_index(dst)}
    assert rows["person0/blank.jpg"]["status"] == "centre" and rows["person0/img0.jpg"]["status"] == "face"
    assert not [p for p in dst.rglob("*") if p.name.endswith(".tmp")]  # atomic writes leave no temporaries


def test_crop_folder_second_run_crops_nothing(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    before = {p: p.stat().st_mtime_ns for p in dst.glob("*/*")}
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    assert (r.cropped, r.cached, r.no_face, r.unreadable) == (0, 7, 0, 2)
    assert r.no_face_files == ["person0/blank.png"]  # the cached centre crop is still named
    assert {p: p.stat().st_mtime_ns for p in dst.glob("*/*")} == before


def test_crop_folder_resumes_a_killed_run(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    full = _outputs(dst)
    (dst / "person0/img1.jpg").unlink()
    (dst / "person1/img2.jpg").unlink()
    (dst / "person1/.img0.jpg.123.tmp").write_bytes(b"half")  # a write cut short
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    assert (r.cropped, r.cached) == (2, 5)
    assert _outputs(dst).keys() == full.keys()
    assert _outputs(dst)["person0/img1.jpg"] == full["person0/img1.jpg"]


def test_crop_folder_recrops_a_source_newer_than_its_crop(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    source = tree / "person1/img0.jpg"
    later = (dst / "person1/img0.jpg").stat().st_mtime + 10
    os.utime(source, (later, later))
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    assert (r.cropped, r.cached) == (1, 6)


def test_crop_folder_with_other_settings_recrops_everything(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    with pytest.warns(UserWarning, match="other settings"):
        r = crop_folder(tree, dst, size=32, detector=FakeDetector(), progress=False)
    assert (r.cropped, r.cached) == (6, 0)
    assert read_image_rgb(dst / "person0/img0.jpg").shape == (32, 32, 3)


def test_crop_folder_skip_mode_writes_no_crop_for_a_missing_face_and_removes_an_old_one(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    assert (dst / "person0/blank.jpg").exists()
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), on_missing="skip", progress=False)
    assert (r.no_face, r.centre_cropped, r.skipped_no_face, r.cached) == (1, 0, 1, 6)
    assert not (dst / "person0/blank.jpg").exists()
    assert "person0/blank.jpg" not in {row["image"] for row in read_crop_index(dst)}


def test_crop_folder_png_format_and_stale_jpgs_removed(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    with pytest.warns(UserWarning, match="other settings"):
        crop_folder(tree, dst, size=48, detector=FakeDetector(), image_format="png", progress=False)
    assert sorted(p.suffix for p in dst.glob("*/*")) == [".png"] * 7
    image = read_image_rgb(dst / "person1/img1.png")
    np.testing.assert_array_equal(image, crop_face(read_image_rgb(tree / "person1/img1.jpg"), FakeDetector(), 48)[0])


@pytest.mark.slow
def test_crop_folder_with_two_workers_writes_the_same_files(tree: Path, tmp_path: Path):
    r0 = crop_folder(tree, tmp_path / "w0", size=48, detector=FakeDetector(), workers=0, progress=False)
    r2 = crop_folder(tree, tmp_path / "w2", size=48, detector=FakeDetector(), workers=2, progress=False)
    assert (r2.cropped, r2.no_face, r2.unreadable_files) == (r0.cropped, r0.no_face, r0.unreadable_files)
    images0 = {k: v for k, v in _outputs(tmp_path / "w0").items() if not k.endswith(".json")}
    images2 = {k: v for k, v in _outputs(tmp_path / "w2").items() if not k.endswith(".json")}
    assert images0 == images2  # crops and crop_index.csv, byte for byte


def test_crop_folder_rejects_two_sources_that_would_share_an_output(tree: Path, tmp_path: Path):
    cv2.imwrite(str(tree / "person0" / "img0.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="img0"):
        crop_folder(tree, tmp_path / "dst", detector=FakeDetector(), progress=False)


def test_crop_command_prints_a_summary(tree: Path, tmp_path: Path, capsys):
    parser = argparse.ArgumentParser()
    add_crop_parser(parser.add_subparsers())
    dst = tmp_path / "dst"
    args = parser.parse_args(["crop", str(tree), str(dst), "--size", "40", "--detector", "haar", "--quiet"])
    assert args.func(args) == 0 and args.func is run_crop
    out = capsys.readouterr().out
    assert "9 = " in out and "2 unreadable" in out and "person1/garbage.jpg" in out
    assert str(dst / REPORT_FILE) in out
    assert json.loads((dst / META_FILE).read_text())["size"] == 40


# --- detectors ----------------------------------------------------------------------------------------------------


def test_create_detector_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("mtcnn")


def test_auto_detector_falls_back_to_haar_without_dlib(monkeypatch):
    monkeypatch.setattr(detect, "dlib_available", lambda: False)
    with pytest.warns(UserWarning, match="Haar"):
        assert isinstance(create_detector("auto"), HaarDetector)


def test_haar_detector_pickles_without_its_model():
    d = HaarDetector()
    d.detect(np.zeros((64, 64, 3), np.uint8))  # loads the cascade
    clone = pickle.loads(pickle.dumps(d))
    assert clone._model is None and clone.detect(np.zeros((64, 64, 3), np.uint8)) == []


def _data_dir() -> Path:
    return data_root()


def _real_images(subset: str, pattern: str, n: int) -> list[np.ndarray]:
    folder = _data_dir() / subset
    if not folder.is_dir():
        pytest.skip(f"real face data not found at {folder} (set EXPLAINFACE_DATA to the folder of the face data sets)")
    files = sorted(folder.glob(pattern))[::97][:n]
    if len(files) < n:
        pytest.skip(f"fewer than {n} images match {folder}/{pattern}")
    return [read_image_rgb(f) for f in files]


def _needs_dlib() -> None:
    if not detect.dlib_available():
        pytest.skip("dlib is not installed (pip install dlib-bin)")


def _assert_finds_the_face(boxes: list[Box], image: np.ndarray) -> None:
    """LFW-style loose crops and ORL's tight ones: the face covers the image centre and is not tiny."""
    h, w = image.shape[:2]
    box = main_face(boxes, h, w)
    assert box is not None, "no face found"
    assert box.left < w / 2 < box.right and box.top < h / 2 < box.bottom
    assert 0.25 * w < box.width < 1.25 * w


@pytest.mark.parametrize("subset, pattern", [("lfw", "*/*.jpg"), ("orl", "*/*.pgm")])
def test_dlib_hog_finds_the_face_in_real_images(subset, pattern):
    _needs_dlib()
    d = create_detector("hog")
    for image in _real_images(subset, pattern, 4):
        _assert_finds_the_face(d.detect(image), image)


@pytest.mark.parametrize("subset, pattern", [("lfw", "*/*.jpg"), ("orl", "*/*.pgm")])
def test_haar_finds_the_face_in_real_images(subset, pattern):
    d = create_detector("haar")
    for image in _real_images(subset, pattern, 4):
        _assert_finds_the_face(d.detect(image), image)


def test_dlib_cnn_detector_loads_its_model_from_face_recognition_models():
    _needs_dlib()
    try:
        detect.face_recognition_model_path(detect.CNN_MODEL_FILE)
    except ImportError:
        pytest.skip("face_recognition_models is not installed")
    d = create_detector("cnn")
    (image,) = _real_images("lfw", "*/*.jpg", 1)
    _assert_finds_the_face(d.detect(image), image)
    assert pickle.loads(pickle.dumps(d)).detect(image)  # reloads the model after a trip to a worker


@pytest.mark.slow
def test_a_large_photo_is_cropped_from_a_reduced_decode_in_full_image_pixels():
    """Issue 15: a photo over twice `CROP_MAX_SIDE` is decoded at 1/2..1/8 (memory), and the crop's square and box
    are still reported in the full image's pixels, matching the full-size crop."""
    import cv2

    from explainface.faces.crop import CROP_MAX_SIDE, crop_face, crop_face_file
    from explainface.faces.detect import create_detector
    from explainface.synthetic import SyntheticFaces

    face = SyntheticFaces(seed=0).sample(identity=1, index=0, size=256).image
    big = cv2.resize(face, (4 * CROP_MAX_SIDE + 100, 4 * CROP_MAX_SIDE + 100), interpolation=cv2.INTER_LINEAR)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    det = create_detector("haar")
    crop, info = crop_face_file(data, "big.jpg", det, size=112)
    full_crop, full_info = crop_face(big, det, size=112)
    assert info.source_shape == big.shape[:2] == full_info.source_shape
    assert info.status == full_info.status and crop.shape == full_crop.shape == (112, 112, 3)
    side = full_info.square[2]
    assert np.abs(np.subtract(info.square, full_info.square)).max() <= 0.05 * side + 8
    assert np.abs(crop.astype(float) - full_crop.astype(float)).mean() < 12
    small = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))[1]
    assert crop_face_file(small, "small.png", det, size=112)[1] == crop_face(face, det, size=112)[1]


# --- aligned chips (crop="chip") ----------------------------------------------------------------------------------

needs_dlib = pytest.mark.skipif(not detect.dlib_available(), reason="dlib is not installed (pip install dlib-bin)")


@needs_dlib
def test_a_chip_cache_records_its_mode_and_never_mixes_with_square_crops(tree: Path, tmp_path: Path):
    from explainface.faces.chip import chip_face
    from explainface.faces.crop import chip_transform_of, is_model_input_folder

    dst = tmp_path / "dst"
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), crop="chip", image_format="png", progress=False)
    assert (r.total, r.cropped, r.no_face, r.centre_cropped, r.unreadable) == (9, 6, 1, 1, 2)
    meta = read_crop_meta(dst)
    assert (meta["crop"], meta["chip_padding"], meta["margin"], meta["size"]) == ("chip", 0.25, None, 48)
    assert is_model_input_folder(dst)  # verify / explain take a chip cache as model inputs, only resized
    rows = {row["image"]: row for row in read_crop_index(dst)}
    chip, info = chip_face(read_image_rgb(tree / "person1/img1.jpg"), FakeDetector(), 48)
    np.testing.assert_array_equal(read_image_rgb(dst / "person1/img1.png"), chip)
    np.testing.assert_allclose(chip_transform_of(rows["person1/img1.png"]).ravel(), info.transform, rtol=0, atol=0)
    assert rows["person0/blank.png"]["status"] == "centre"
    with pytest.warns(UserWarning, match="other settings"):  # a square crop into the chip cache: all redone
        r = crop_folder(tree, dst, size=48, detector=FakeDetector(), image_format="png", progress=False)
    assert (r.cropped, r.cached) == (6, 0) and read_crop_meta(dst)["crop"] == "detect"
    assert "t00" not in read_crop_index(dst)[0]
    with pytest.warns(UserWarning, match="other settings"):
        r = crop_folder(tree, dst, size=48, detector=FakeDetector(), crop="chip", image_format="png", progress=False)
    assert (r.cropped, r.cached) == (6, 0)
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), crop="chip", image_format="png", progress=False)
    assert (r.cropped, r.cached) == (0, 7)


def test_a_square_crop_cache_made_before_chips_existed_is_still_reused(tree: Path, tmp_path: Path):
    dst = tmp_path / "dst"
    crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    meta = json.loads((dst / META_FILE).read_text())
    del meta["crop"]  # the meta of an earlier version
    (dst / META_FILE).write_text(json.dumps(meta))
    r = crop_folder(tree, dst, size=48, detector=FakeDetector(), progress=False)
    assert (r.cropped, r.cached) == (0, 7)


def test_a_chip_takes_no_margin_and_modes_are_checked(tree: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="margin"):
        crop_folder(tree, tmp_path / "dst", detector=FakeDetector(), margin=0.3, crop="chip", progress=False)
    with pytest.raises(ValueError, match="crop must be"):
        crop_folder(tree, tmp_path / "dst", detector=FakeDetector(), crop="none", progress=False)


@needs_dlib
def test_crop_files_makes_chips_in_any_layout_and_keeps_them_apart_from_crops(tree: Path, tmp_path: Path):
    from explainface.faces.crop import FILES_META, crop_files

    paths = [tree / "person0/img0.jpg", tree / "person1/img2.png"]
    chips = crop_files(paths, tree, tmp_path / "dst", size=40, detector=FakeDetector(), progress=False, crop="chip")
    assert [read_image_rgb(p).shape for p in chips] == [(40, 40, 3)] * 2
    assert json.loads((tmp_path / "dst" / FILES_META).read_text())["crop"] == "chip"
    first = chips[0].read_bytes()
    crop_files(paths, tree, tmp_path / "dst", size=40, detector=FakeDetector(), progress=False)  # square crops now
    assert chips[0].read_bytes() != first


@needs_dlib
def test_the_crop_command_aligns_with_align_or_crop_chip(tree: Path, tmp_path: Path, capsys):
    from explainface.errors import InputError

    parser = argparse.ArgumentParser()
    add_crop_parser(parser.add_subparsers())
    dst = tmp_path / "dst"
    args = parser.parse_args(["crop", str(tree), str(dst), "--align", "--detector", "haar", "--quiet"])
    assert args.crop == "chip" and args.func(args) == 0
    assert "aligned chips, padding 0.25" in capsys.readouterr().out
    meta = json.loads((dst / META_FILE).read_text())
    assert (meta["crop"], meta["size"]) == ("chip", 150)  # dlib's chip size unless --size says otherwise
    args = parser.parse_args(["crop", str(tree), str(dst), "--crop", "chip", "--margin", "0.3"])
    with pytest.raises(InputError, match="--margin"):
        args.func(args)


def test_fallback_detector_asks_the_second_only_where_the_first_finds_nothing():
    from explainface.faces.detect import Box, FallbackDetector

    class Stub:
        def __init__(self, boxes):
            self.boxes, self.calls = boxes, 0

        def detect(self, image):
            self.calls += 1
            return list(self.boxes)

    image = np.zeros((20, 20, 3), np.uint8)
    hog, cnn = Stub([Box(1, 1, 9, 9)]), Stub([Box(2, 2, 8, 8)])
    assert FallbackDetector(hog, cnn).detect(image) == [Box(1, 1, 9, 9)] and cnn.calls == 0
    empty = Stub([])
    assert FallbackDetector(empty, cnn).detect(image) == [Box(2, 2, 8, 8)] and cnn.calls == 1
    assert FallbackDetector(empty, Stub([])).detect(image) == []
