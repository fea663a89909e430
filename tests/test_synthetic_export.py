"""Synthetic export: the on-disk layout, reading it back as generated, pairs, contact sheet and `synth` CLI."""

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from explainface.cli import main
from explainface.parts.labels import PART_NAMES
from explainface.readers.images import JPEG_PARAMS
from explainface.readers.lfw_pairs import read_lfw_pairs
from explainface.synthetic import SyntheticFaces
from explainface.synthetic.contact_sheet import contact_sheet, legend_height, sample_grid
from explainface.synthetic.export import (
    HELDOUT_FIRST_IDENTITY,
    export_synthetic,
    read_sample,
)

SEED, SIZE, IDS, PER_ID, HELDOUT = 7, 64, 6, 3, 10


def _export(out: Path, **kw) -> dict:
    args = dict(identities=IDS, per_identity=PER_ID, size=SIZE, heldout_identities=HELDOUT, seed=SEED, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 10 held-out identities: fewer folds and pairs
        return export_synthetic(out, **{**args, **kw})


@pytest.fixture(scope="module")
def jpg_export(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("jpg")
    return out, _export(out)


@pytest.fixture(scope="module")
def png_export(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("png")
    return out, _export(out, image_format="png")


def _images(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.suffix in (".jpg", ".png") and not p.name.endswith(".parts.png"))


def _identity_and_k(image: Path) -> tuple[int, int]:
    name, k = image.name.split(".")[0].split("_")
    return int(name[2:]), int(k)


def test_export_writes_the_documented_layout(jpg_export):
    out, _ = jpg_export
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {"meta.json", "heldout/pairs.txt"}
    for split, ids in (
        ("train", range(IDS)),
        ("heldout", range(HELDOUT_FIRST_IDENTITY, HELDOUT_FIRST_IDENTITY + HELDOUT)),
    ):
        for i in ids:
            for k in range(1, PER_ID + 1):
                stem = f"{split}/id{i:05d}/id{i:05d}_{k:04d}"
                expected |= {f"{stem}.jpg", f"{stem}.pts", f"{stem}.parts.png"}
    assert files == expected


def test_every_exported_image_has_its_landmarks_and_part_map(jpg_export):
    images = _images(jpg_export[0])
    assert len(images) == (IDS + HELDOUT) * PER_ID
    for image in images:
        stem = image.name.rsplit(".", 1)[0]
        assert (image.parent / f"{stem}.pts").is_file() and (image.parent / f"{stem}.parts.png").is_file()


def test_heldout_identities_are_disjoint_from_train(jpg_export):
    out, _ = jpg_export
    train = {p.name for p in (out / "train").iterdir()}
    heldout = {p.name for p in (out / "heldout").iterdir() if p.is_dir()}
    assert len(train) == IDS and len(heldout) == HELDOUT and not train & heldout
    assert min(int(n[2:]) for n in heldout) == HELDOUT_FIRST_IDENTITY


def test_exported_landmarks_and_part_maps_read_back_as_generated(jpg_export):
    gen = SyntheticFaces(SEED, "medium")
    for image in _images(jpg_export[0]):
        identity, k = _identity_and_k(image)
        s = gen.sample(identity, k - 1, SIZE)
        _, landmarks, parts = read_sample(image)
        np.testing.assert_allclose(landmarks, s.landmarks, atol=1e-3)
        np.testing.assert_array_equal(parts, s.parts)


def test_exported_png_images_read_back_exactly(png_export):
    gen = SyntheticFaces(SEED, "medium")
    for image in _images(png_export[0]):
        identity, k = _identity_and_k(image)
        rgb, _, _ = read_sample(image)
        np.testing.assert_array_equal(rgb, gen.sample(identity, k - 1, SIZE).image)


def test_exported_jpeg_images_are_the_generated_rgb_images(jpg_export):
    gen = SyntheticFaces(SEED, "medium")
    for image in _images(jpg_export[0]):
        identity, k = _identity_and_k(image)
        rgb, _, _ = read_sample(image)
        want = gen.sample(identity, k - 1, SIZE).image
        # exactly what encoding the generated image gives, and close to it (a swapped channel order is far)
        _, buf = cv2.imencode(".jpg", np.ascontiguousarray(want[..., ::-1]), list(JPEG_PARAMS))
        np.testing.assert_array_equal(rgb, cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
        assert rgb.shape == want.shape and np.abs(rgb.astype(int) - want).mean() < 5


def test_workers_give_byte_identical_files(png_export, tmp_path):
    out0, _ = png_export
    out2 = tmp_path / "w2"
    _export(out2, image_format="png", workers=2)
    files0 = sorted(p.relative_to(out0) for p in out0.rglob("*") if p.is_file() and p.name != "meta.json")
    files2 = sorted(p.relative_to(out2) for p in out2.rglob("*") if p.is_file() and p.name != "meta.json")
    assert files0 == files2
    assert all((out0 / f).read_bytes() == (out2 / f).read_bytes() for f in files0)


def test_heldout_pairs_read_back_and_name_existing_heldout_images(jpg_export):
    out, summary = jpg_export
    pairs = read_lfw_pairs(out / "heldout" / "pairs.txt")
    assert len(pairs) == summary["pair_folds"] * 2 * summary["pairs_per_fold"] > 0
    for p in pairs:
        for name, k in ((p.name_a, p.index_a), (p.name_b, p.index_b)):
            assert (out / "heldout" / name / f"{name}_{k:04d}.jpg").is_file()


def test_too_few_heldout_identities_reduce_folds_and_pairs_with_warnings(tmp_path):
    with pytest.warns(UserWarning) as record:
        summary = export_synthetic(tmp_path, 1, PER_ID, size=32, heldout_identities=HELDOUT, progress=False)
    # 10 identities -> 5 folds of 2 identities x 3 images: 2 * C(3, 2) = 6 same pairs per fold
    assert (summary["pair_folds"], summary["pairs_per_fold"]) == (5, 6)
    assert any("5 pair folds" in str(w.message) for w in record) and any("6 per fold" in str(w.message) for w in record)


def test_meta_json_records_settings_counts_and_part_names(jpg_export):
    out, summary = jpg_export
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is True
    assert (meta["seed"], meta["difficulty"], meta["size"], meta["image_format"]) == (SEED, "medium", SIZE, "jpg")
    assert meta["counts"]["train_images"] == IDS * PER_ID and meta["counts"]["heldout_identities"] == HELDOUT
    assert meta["part_names"] == list(PART_NAMES)
    assert meta["pairs"] == {"file": "heldout/pairs.txt", "folds": summary["pair_folds"], "per_fold": 6}
    assert "generator_version" in meta and "layout" in meta


def test_export_leaves_no_temporary_files(jpg_export):
    assert not [p for p in jpg_export[0].rglob("*") if p.name.endswith(".tmp")]


def test_rerun_overwrites_and_removes_stale_samples(tmp_path):
    export_synthetic(tmp_path, 3, 2, size=32, heldout_identities=0, progress=False)
    export_synthetic(tmp_path, 2, 1, size=32, heldout_identities=0, progress=False, image_format="png")
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    stems = ["train/id00000/id00000_0001", "train/id00001/id00001_0001"]
    assert files == ["meta.json"] + sorted(f"{s}{ext}" for s in stems for ext in (".parts.png", ".png", ".pts"))


def test_export_refuses_a_non_empty_folder_that_is_not_an_export(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_synthetic(tmp_path, 1, 1, size=32, heldout_identities=0, progress=False)


def test_read_sample_names_the_missing_file(png_export, tmp_path):
    image = _images(png_export[0])[0]
    copy = tmp_path / image.name
    copy.write_bytes(image.read_bytes())
    (tmp_path / image.name.replace(".png", ".pts")).write_bytes(image.with_suffix(".pts").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"\.parts\.png"):
        read_sample(copy)


def test_sample_grid_is_identity_major():
    samples = sample_grid(SyntheticFaces(SEED), [4, 2], per_identity=2, size=32)
    assert [(s.identity, s.index) for s in samples] == [(4, 0), (4, 1), (2, 0), (2, 1)]


def test_contact_sheet_size_follows_tiles_and_columns(tmp_path):
    samples = sample_grid(SyntheticFaces(SEED), 5, per_identity=1, size=32)
    sheet = cv2.imread(str(contact_sheet(samples, tmp_path / "s.png", tile=48, columns=2)))
    width = 2 * 3 * 48  # 2 samples per row, 3 tiles each; 5 samples -> 3 rows
    assert sheet.shape == (3 * 48 + legend_height(width), width, 3)


def test_cli_synth_exports_and_prints_where_things_are(tmp_path, capsys):
    out = tmp_path / "synth"
    args = ["synth", "--out", str(out), "--identities", "2", "--per-identity", "2", "--size", "32"]
    assert main(args + ["--heldout", "20", "--pairs-per-fold", "1", "--seed", "3", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert str(out / "train") in text and "10 folds x (1 same + 1 different)" in text
    assert len(read_lfw_pairs(out / "heldout" / "pairs.txt")) == 20
    assert json.loads((out / "meta.json").read_text())["seed"] == 3


def test_cli_synth_sheet_writes_a_png_of_4_identities_by_3_samples(tmp_path, capsys):
    path = tmp_path / "sheet.png"
    assert main(["synth", "--sheet", str(path), "--size", "32", "--tile", "40"]) == 0
    sheet = cv2.imread(str(path))
    width = 3 * 3 * 40  # one identity per row: 3 samples x 3 tiles
    assert sheet.shape == (4 * 40 + legend_height(width), width, 3)
    assert str(path) in capsys.readouterr().out


def test_cli_synth_without_out_or_sheet_is_a_usage_error():
    with pytest.raises(SystemExit) as e:
        main(["synth"])
    assert e.value.code == 2
