"""dlib landmarks of a crop cache, kept as .pts beside each crop and read by the training dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explainface.faces.crop import crop_folder, read_crop_index
from explainface.faces.crop_landmarks import landmark_crops
from explainface.faces.detect import Box
from explainface.faces.landmarks import crop_landmarks
from explainface.readers.landmarks import read_pts


class BoxFromLandmarks:
    """A stand-in detector: the box around the synthetic face's own landmarks (none for one chosen image)."""

    def __init__(self, boxes: dict[bytes, Box]) -> None:
        self.boxes = boxes

    def detect(self, image):
        return [b for k, b in self.boxes.items() if k == image[::7, ::7].tobytes()]

    def __repr__(self) -> str:
        return "BoxFromLandmarks()"


def test_face_crops_get_their_landmarks_in_crop_pixels_and_the_dataset_reads_them(tmp_path, monkeypatch):
    from explainface.faces import landmarks as face_landmarks
    from explainface.readers.folders import IdentityFolderDataset
    from explainface.readers.images import load_image_rgb
    from explainface.synthetic.export import export_synthetic

    export_synthetic(tmp_path / "src", identities=2, per_identity=3, size=160, heldout_identities=0, progress=False)
    src = tmp_path / "src" / "train"
    images = sorted(src.glob("*/*.jpg"))
    truth = {}
    boxes = {}
    for k, path in enumerate(images):
        lm = read_pts(path.with_suffix(".pts"))
        img = load_image_rgb(path)
        truth[path.relative_to(src).as_posix()] = lm
        if k != 0:  # the first image: "no face found" (a centre crop, no landmarks)
            (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
            boxes[img[::7, ::7].tobytes()] = Box(float(x0), float(y0), float(x1), float(y1), 1.0)
    crop_folder(src, tmp_path / "crops", size=112, detector=BoxFromLandmarks(boxes), progress=False)

    calls = []

    def fake_predictor(image, box=None, detector="hog"):  # the true points: checks where they land in the crop
        calls.append(box)
        match = [lm for rel, lm in truth.items() if np.array_equal(load_image_rgb(src / rel), image)]
        return match[0]

    monkeypatch.setattr(face_landmarks, "predict_landmarks68", fake_predictor)
    counts = landmark_crops(tmp_path / "crops", progress=False)
    assert (counts["written"], counts["no_face"], counts["failed"]) == (len(images) - 1, 1, 0)
    assert all(b is not None for b in calls)  # the predictor ran inside the detector's box
    for row in read_crop_index(tmp_path / "crops"):
        pts = (tmp_path / "crops" / row["image"]).with_suffix(".pts")
        if row["status"] != "face":
            assert not pts.exists()
            continue
        square = (float(row["x0"]), float(row["y0"]), float(row["side"]))
        np.testing.assert_allclose(read_pts(pts), crop_landmarks(truth[row["source"]], square, 112), atol=1e-3)
    assert landmark_crops(tmp_path / "crops", progress=False)["cached"] == len(images) - 1  # not redone

    ds = IdentityFolderDataset(tmp_path / "crops", size=112, landmarks=True)
    known = [bool(np.isfinite(ds[i][2].numpy()).all()) for i in range(len(ds))]
    assert sorted(known) == [False] + [True] * (len(images) - 1)


def test_a_folder_that_is_not_a_crop_cache_is_named(tmp_path):
    with pytest.raises(ValueError, match="not a complete crop cache"):
        landmark_crops(tmp_path)


def _three_helen_faces(person: Path) -> list[Path]:
    """Links to HELEN's first three test faces in `person` (skips without dlib or the data); HELEN's folder."""
    from explainface.faces import detect
    from realdata import real_data

    if not detect.dlib_available():
        pytest.skip("dlib is not installed (pip install dlib-bin)")
    helen = real_data("helen", "testset")
    person.mkdir(parents=True)
    stems = sorted(p.with_suffix("") for p in helen.glob("*.pts"))[:3]
    for stem in stems:
        (person / stem.with_suffix(".jpg").name).symlink_to(stem.with_suffix(".jpg"))
    return helen


def test_real_faces_crop_landmarks_agree_with_helen_annotations(tmp_path):
    helen = _three_helen_faces(tmp_path / "src" / "helen")
    crop_folder(tmp_path / "src", tmp_path / "crops", size=112, detector="hog", progress=False)
    assert landmark_crops(tmp_path / "crops", progress=False)["written"] == 3
    for row in read_crop_index(tmp_path / "crops"):
        square = (float(row["x0"]), float(row["y0"]), float(row["side"]))
        truth = crop_landmarks(read_pts(helen / (row["source"].split("/")[1].rsplit(".", 1)[0] + ".pts")), square,
                               112)  # fmt: skip
        got = read_pts((tmp_path / "crops" / row["image"]).with_suffix(".pts"))
        iod = np.linalg.norm(truth[36:42].mean(0) - truth[42:48].mean(0))
        assert np.linalg.norm(got - truth, axis=1).mean() < 0.08 * iod, row["source"]


@pytest.mark.slow
def test_the_crop_command_writes_landmarks_on_request(tmp_path):
    import subprocess
    import sys

    from explainface.faces import detect
    from explainface.synthetic.export import export_synthetic

    if not detect.dlib_available():
        pytest.skip("dlib is not installed (pip install dlib-bin)")
    export_synthetic(tmp_path / "src", identities=1, per_identity=2, size=160, heldout_identities=0, progress=False)
    cmd = [sys.executable, "-m", "explainface", "crop", str(tmp_path / "src" / "train"), str(tmp_path / "crops"),
           "--landmarks", "--quiet"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("landmarks:"))
    written = int(line.split()[1])
    faces = sum(r["status"] == "face" for r in read_crop_index(tmp_path / "crops"))
    assert written + int(line.split("cached, ")[1].split()[0]) == 2 and written <= faces
    assert len(list((tmp_path / "crops").glob("*/*.pts"))) == written


def test_a_chip_cache_gets_landmarks_through_each_chips_affine(tmp_path):
    from explainface.faces.align import transform_points
    from explainface.faces.crop import chip_transform_of
    helen = _three_helen_faces(tmp_path / "src" / "helen")
    crop_folder(tmp_path / "src", tmp_path / "chips", size=150, detector="hog", crop="chip", progress=False)
    assert landmark_crops(tmp_path / "chips", progress=False)["written"] == 3
    for row in read_crop_index(tmp_path / "chips"):
        transform = chip_transform_of(row)
        assert transform is not None and transform.shape == (2, 3)
        truth = transform_points(read_pts(helen / (row["source"].split("/")[1].rsplit(".", 1)[0] + ".pts")), transform)
        got = read_pts((tmp_path / "chips" / row["image"]).with_suffix(".pts"))
        iod = np.linalg.norm(truth[36:42].mean(0) - truth[42:48].mean(0))
        assert np.linalg.norm(got - truth, axis=1).mean() < 0.08 * iod, row["source"]
