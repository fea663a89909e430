"""The `explain` pipeline: faces with part labels -> target-layer maps -> explainability.json + dictionary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from checkpoints import tiny_checkpoint
from explainface.evaluate.explainability_pipeline import explain
from explainface.parts.samples import folder_samples
from explainface.synthetic.export import export_synthetic
from realdata import real_data

KEYS = ("pe_mean", "pe_se", "ls", "ls_channels", "ar_mean", "ar_std", "channels", "images")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    export_synthetic(root, 0, 3, size=112, heldout_identities=8, progress=False, pairs_per_fold=2)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors")


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def test_explain_on_a_synthetic_export_writes_the_metrics_and_the_dictionary(export, ckpt, tmp_path):
    out = tmp_path / "ex"
    res = explain(ckpt, export / "heldout", out, n_faces=10, runs=3, progress=False)
    saved = json.loads((out / "explainability.json").read_text())
    for key in KEYS:
        assert key in saved
    assert saved["images"] == 24 and saved["label_sources"] == {"parts.png": 24}
    assert all(_finite(saved[k]) for k in ("pe_mean", "pe_se", "ls", "ar_mean", "ar_std"))
    assert 0.0 <= saved["pe_mean"] <= 1.0 and saved["ar_mean"] >= 0.0
    assert len(saved["channels"]) == 64  # vgg13 width 0.125: 512 * 0.125 channels at relu5_3
    assert saved["layer"] == res["layer"] and res["input_size"] == 112
    table = (out / "channel_dictionary.md").read_text()
    assert table.startswith("# Channel dictionary") and "| part | channels |" in table
    assert len(json.loads((out / "channel_dictionary.json").read_text())) == 64


@pytest.mark.slow
def test_explain_matches_the_metrics_computed_directly_on_the_same_maps(export, ckpt, tmp_path):
    """The pipeline adds nothing of its own: same faces, same layer -> the same numbers as the metric functions."""
    from explainface.evaluate.explainability import explainability_report, masks_from_labels
    from explainface.inputs import to_tensor
    from explainface.models.capture import FeatureCapture
    from explainface.readers.images import find_images
    from explainface.synthetic.export import read_sample
    from explainface.training.checkpoint import load_model

    res = explain(ckpt, export / "heldout", tmp_path / "ex", n_faces=10, runs=3, seed=4, progress=False, batch=5)
    m = load_model(ckpt)
    samples = [read_sample(p) for p in find_images(export / "heldout")]
    x = torch.stack([to_tensor(s[0]) for s in samples])
    with torch.no_grad(), FeatureCapture(m.model, m.layer, detach=True) as cap:
        m.model(x)
    labels = torch.from_numpy(np.stack([s[2] for s in samples]))
    direct = explainability_report(cap.output, masks_from_labels(labels), size=112, n_images=10, runs=3, seed=4)
    for key in ("pe_mean", "pe_se", "ls", "ar_mean", "ar_std"):
        assert res[key] == pytest.approx(direct[key], rel=1e-5, abs=1e-7), key


def test_landmark_files_give_the_part_labels_when_no_label_map_is_there(export, tmp_path):
    import shutil

    folder = tmp_path / "faces"
    shutil.copytree(export / "heldout", folder)
    for p in folder.rglob("*.parts.png"):
        p.unlink()
    from explainface.parts.samples import SampleCounts

    counts = SampleCounts()
    samples = list(folder_samples(folder, 112, crop="none", counts=counts, progress=False))
    assert counts.by_source == {"pts": 24} and len(samples) == 24
    s = samples[0]
    assert s.image.shape == (112, 112, 3) and s.labels.shape == (112, 112)
    assert {4, 5, 6} <= set(np.unique(s.labels).tolist())  # eyes, nose, mouth present


def test_bad_and_unlabelled_images_are_skipped_counted_and_named(export, ckpt, tmp_path):
    import shutil

    folder = tmp_path / "faces"
    shutil.copytree(export / "heldout", folder)
    first = sorted(folder.rglob("*.jpg"))[0]
    first.write_bytes(b"not a jpeg")
    second = sorted(folder.rglob("*.jpg"))[1]
    for companion in second.parent.glob(second.stem + ".*"):
        if companion != second:
            companion.unlink()
    res = explain(ckpt, folder, tmp_path / "ex", n_faces=5, runs=2, landmarks="file", progress=False)
    assert res["images"] == 22 and res["skipped"] == 2
    names = res["skipped_files"]
    assert any(first.name in k for k in names) and any(second.name in k for k in names)
    assert any("no .pts or .parts.png" in v for v in names.values())


def test_an_empty_folder_is_a_clear_error(tmp_path, ckpt):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no face images"):
        explain(ckpt, tmp_path / "empty", tmp_path / "ex", progress=False)


def test_explain_on_the_generator_needs_no_files(ckpt, tmp_path):
    res = explain(ckpt, "synthetic", tmp_path / "ex", n_faces=8, runs=2, limit=12, progress=False)
    assert res["images"] == 12 and res["label_sources"] == {"generator": 12}


def test_explain_command_prints_a_summary(export, ckpt, tmp_path, capsys):
    from explainface.cli import main

    assert main(["explain", "--model", str(ckpt), "--data", str(export / "heldout"), "--out", str(tmp_path / "ex"),
                 "--images", "6", "--runs", "2", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "PE " in out and "LS " in out and "AR " in out and "explainability.json" in out


def test_explain_on_real_helen_faces_with_their_landmarks(ckpt, tmp_path):
    helen = real_data("helen", "testset")
    res = explain(ckpt, helen, tmp_path / "ex", n_faces=8, runs=2, limit=10, landmarks="file", progress=False)
    assert res["images"] + res["skipped"] == 10 and res["images"] >= 8
    assert res["label_sources"] == {"pts": res["images"]}
    assert _finite(res["pe_mean"]) and 0 < res["pe_mean"] < 1


def test_any_layer_can_be_measured_and_its_channel_count_is_reported(export, ckpt, tmp_path):
    res = explain(ckpt, export / "heldout", tmp_path / "ex", n_faces=6, runs=2, layer="features.relu4_2",
                  progress=False)  # fmt: skip
    assert res["layer"] == "features.relu4_2" and len(res["channels"]) == 64
    with pytest.raises(ValueError, match="no_such_layer"):
        explain(ckpt, export / "heldout", tmp_path / "ex2", layer="features.no_such_layer", progress=False)


def test_explain_on_aligned_chips_carries_the_landmarks_and_skips_bad_files(ckpt, export, tmp_path, capsys):
    from explainface.cli import main
    from explainface.faces import detect

    if not detect.dlib_available():
        pytest.skip("dlib is not installed (pip install dlib-bin)")
    helen = real_data("helen", "testset")
    folder = tmp_path / "faces"
    folder.mkdir()
    for stem in sorted(p.with_suffix("") for p in helen.glob("*.pts"))[:4]:
        for ext in (".jpg", ".pts"):
            (folder / (stem.name + ext)).symlink_to(stem.with_suffix(ext))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "ex"
    assert main(["explain", "--model", str(ckpt), "--data", str(folder), "--out", str(out), "--crop", "chip",
                 "--landmarks", "file", "--images", "4", "--runs", "2", "--quiet"]) == 0  # fmt: skip
    res = json.loads((out / "explainability.json").read_text())
    assert res["images"] == 4 and res["label_sources"] == {"pts": 4}
    assert res["skipped"] == 1 and list(res["skipped_files"]) == ["broken.jpg"]
    # a .parts.png label map is warped into the chip with its face (synthetic faces: chips of the centre box)
    samples = list(folder_samples(export / "heldout", 112, crop="chip", limit=2, progress=False))
    assert [s.source for s in samples] == ["parts.png"] * 2
    assert all(s.image.shape == (112, 112, 3) and {4, 5, 6} <= set(np.unique(s.labels).tolist()) for s in samples)


def test_faces_may_be_one_image_or_a_list_of_images_and_anything_else_is_a_type_error(tmp_path):
    """Issue 26: the README promises `faces` as a folder, "synthetic" or image paths; wrong types name `faces`."""
    from explainface.parts.samples import SampleCounts, face_samples
    from explainface.synthetic.export import export_synthetic

    export_synthetic(tmp_path / "faces", identities=0, per_identity=2, size=56, heldout_identities=2, progress=False)
    files = sorted((tmp_path / "faces" / "heldout").rglob("*.jpg"))[:3]

    def names(data):
        counts = SampleCounts()
        got = [s.name for s in face_samples(data, 56, "auto", "hog", "auto", None, 0, counts, False)]
        return got, counts

    listed, counts = names([*files, tmp_path / "missing.jpg"])
    assert listed == [str(f) for f in files] and list(counts.skipped) == [str(tmp_path / "missing.jpg")]
    assert names(str(files[0]))[0] == [str(files[0])]
    assert len(names(tmp_path / "faces" / "heldout")[0]) == 4
    for bad, said in ((3, "got int"), ([files[0], 7], "paths .* only, got PosixPath, int"), ({"a": 1}, "got dict")):
        with pytest.raises(TypeError, match=f"faces.*{said}"):
            names(bad)
