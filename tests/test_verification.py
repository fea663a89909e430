"""The 10-fold verification protocol against brute force and known answers."""

import numpy as np
import pytest
import torch

from explainface.evaluate.verification import best_threshold, embed, kfold_accuracy


def _brute_best(scores, same):
    cands = np.concatenate([[scores.min() - 1], np.sort(scores), [scores.max() + 1]])
    best = max(((scores >= t) == same).mean() for t in cands)
    return best


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_accuracy_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=200), 1)  # ties on purpose
    same = rng.random(200) < 0.5
    thr, acc = best_threshold(scores, same)
    assert acc == pytest.approx(_brute_best(scores, same))
    assert ((scores >= thr) == same).mean() == pytest.approx(acc)


def test_separable_scores_give_100_percent_and_random_about_50():
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 300)
    sep = np.where(same, 0.8, 0.1) + rng.normal(0, 0.01, 600)
    order = rng.permutation(600)
    assert kfold_accuracy(sep[order], same[order])["accuracy_mean"] == 1.0
    noise = rng.random(6000)
    res = kfold_accuracy(noise, rng.random(6000) < 0.5)
    assert abs(res["accuracy_mean"] - 0.5) < 0.03


def test_official_fold_ids_are_respected():
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    same = np.array([True, False, True, False])
    res = kfold_accuracy(scores, same, folds=np.array([0, 0, 1, 1]))
    assert len(res["fold_accuracies"]) == 2 and res["accuracy_mean"] == 1.0


def test_embed_sums_the_flip_and_normalises():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x = torch.randn(3, 3, 4, 4)
    e = embed(model, [x[:2], x[2:]])
    ref = torch.nn.functional.normalize(model(x) + model(torch.flip(x, dims=[3])), dim=1)
    torch.testing.assert_close(e, ref, atol=1e-6, rtol=1e-6)
    assert model.training  # mode restored


def test_roc_matches_sklearn_and_auc_eer_are_consistent():
    from sklearn.metrics import roc_auc_score, roc_curve

    from explainface.evaluate.verification import roc, verification_report

    rng = np.random.default_rng(1)
    same = rng.random(2000) < 0.5
    scores = np.round(rng.normal(size=2000) + 1.5 * same, 2)  # ties included
    far, tar, thr = roc(scores, same)
    f_ref, t_ref, th_ref = roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, f_ref)
    np.testing.assert_allclose(tar, t_ref)
    np.testing.assert_allclose(thr[1:], th_ref[1:])
    rep = verification_report(scores, same)
    assert rep["auc"] == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
    # at the EER, false accepts and false rejects balance
    i = np.argmin(np.abs(far - (1 - tar)))
    assert rep["eer"] == pytest.approx(far[i], abs=0.01)


def test_tar_at_far_needs_enough_negatives():
    from explainface.evaluate.verification import verification_report

    rng = np.random.default_rng(0)
    same = np.repeat([True, False], [300, 300])
    rep = verification_report(rng.normal(size=600) + same, same)
    assert rep["tar_at_far"]["0.01"] is not None and rep["tar_at_far"]["0.001"] is None
    same = np.repeat([True, False], [3000, 3000])
    rep = verification_report(rng.normal(size=6000) + 3 * same, same)
    assert rep["tar_at_far"]["0.001"] is not None


def test_contiguous_folds_match_sklearn_kfold():
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(2)
    same = rng.random(600) < 0.5
    scores = rng.normal(size=600) + same
    res = kfold_accuracy(scores, same, folds=10)
    expected = []
    for train, test in KFold(n_splits=10, shuffle=False).split(scores):
        thr, _ = best_threshold(scores[train], same[train])
        expected.append(((scores[test] >= thr) == same[test]).mean())
    np.testing.assert_allclose(res["fold_accuracies"], expected)


def test_official_lfw_folds_come_from_the_file(lfw_pairs):
    from explainface.readers.pairs import read_pairs

    pl = read_pairs(lfw_pairs)
    assert np.bincount(pl.folds).tolist() == [600] * 10
    for f in range(10):  # each fold: 300 same then 300 different, in file order
        assert pl.same[pl.folds == f].tolist() == [True] * 300 + [False] * 300


@pytest.fixture
def lfw_pairs():
    from realdata import real_data

    return real_data("lfw", "pairs.txt")


@pytest.mark.slow
def test_verify_end_to_end_on_an_exported_synthetic_pair_set(tmp_path):
    import json
    import subprocess
    import sys

    from explainface.synthetic.export import export_synthetic
    from explainface.training.checkpoint import save_checkpoint
    from explainface.training.config import load_config

    export_synthetic(tmp_path / "synth", 0, 4, size=112, heldout_identities=20, progress=False, pairs_per_fold=3)
    cfg = load_config(None, ["model.name=vgg13_bn", "model.width=0.125", "model.input_size=112"])
    from explainface.models import create_model

    torch.manual_seed(0)
    model = create_model("vgg13_bn", width=0.125, input_size=112)
    state = {"config": cfg.to_dict(), "step": 0}
    ckpt = save_checkpoint(tmp_path / "m.safetensors", {f"model.{k}": v for k, v in model.state_dict().items()}, state)
    out = tmp_path / "verify"
    pairs = tmp_path / "synth" / "heldout" / "pairs.txt"
    cmd = [sys.executable, "-m", "explainface", "verify", "--model", str(ckpt), "--out", str(out), "--quiet",
           "--pairs", str(pairs), "--detector", "haar", "--workers", "0"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "accuracy" in res.stdout and "AUC" in res.stdout
    report = json.loads((out / "verification.json").read_text())
    for key in ("accuracy_mean", "accuracy_std", "auc", "eer", "pairs"):
        assert key in report
    assert report["pairs"] == 60 and 0.0 <= report["accuracy_mean"] <= 1.0
    assert (out / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "crops112").exists()  # an export holds model-input crops: only resized, never re-cropped


def test_missing_images_are_named(tmp_path):
    from explainface.evaluate.verification_pipeline import verify

    csv = tmp_path / "pairs.csv"
    csv.write_text("path_a,path_b,same\nnowhere/a.jpg,nowhere/b.jpg,1\n")
    with pytest.raises(FileNotFoundError, match="a.jpg"):
        verify("dlib", csv, tmp_path / "out")


@pytest.mark.slow
def test_dlib_reference_runs_on_a_few_real_lfw_pairs(lfw_pairs, tmp_path):
    import importlib.util
    import json

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed (pip install face_recognition_models)")
    from explainface.evaluate.verification_pipeline import verify
    from explainface.readers.pairs import read_pairs, write_csv_pairs

    pl = read_pairs(lfw_pairs)
    pick = [0, 1, 2, 3, 300, 301, 302, 303]  # 4 same and 4 different pairs of fold 0
    rows = [(pl.images[pl.a[i]].path, pl.images[pl.b[i]].path, bool(pl.same[i])) for i in pick]
    csv = write_csv_pairs(tmp_path / "few.csv", rows)
    result = verify("dlib", csv, tmp_path / "out", workers=0, progress=False)
    assert result["pairs"] == 8 and result["images"] == len({p for row in rows for p in row[:2]})
    report = json.loads((tmp_path / "out" / "verification.json").read_text())
    assert report["auc"] > 0.9  # dlib separates these easily
    assert set(report["variants"]) == {"euclidean_no_mirror", "euclidean_flip_mean"}


@pytest.mark.slow
def test_verify_with_crop_chip_embeds_dlibs_aligned_chips(lfw_pairs, tmp_path):
    import json

    from explainface.faces import detect

    if not detect.dlib_available():
        pytest.skip("dlib is not installed (pip install dlib-bin)")
    import dlib

    from checkpoints import tiny_checkpoint
    from explainface.cli import main
    from explainface.faces.chip import SHAPE_PREDICTOR_5_FILE, chip_face
    from explainface.readers.images import load_image_rgb, read_image_rgb
    from explainface.readers.pairs import read_pairs, write_csv_pairs

    pl = read_pairs(lfw_pairs)
    rows = [(pl.images[pl.a[i]].path, pl.images[pl.b[i]].path, bool(pl.same[i])) for i in (0, 1, 300, 301)]
    csv = write_csv_pairs(tmp_path / "few.csv", rows)
    ckpt = tiny_checkpoint(tmp_path / "m.safetensors", input_size=112)
    out = tmp_path / "out"
    assert main(["verify", "--model", str(ckpt), "--pairs", str(csv), "--out", str(out), "--crop", "chip",
                 "--workers", "0", "--quiet"]) == 0  # fmt: skip
    assert json.loads((out / "verification.json").read_text())["pairs"] == 4
    assert json.loads((out / "chips112" / "crop_meta.json").read_text())["crop"] == "chip"
    assert not (out / "crops112").exists()
    first = rows[0][0]
    image = load_image_rgb(first)
    chip, _ = chip_face(image, detect.create_detector("hog"), 112)
    cached = read_image_rgb(out / "chips112" / first.parent.name / (first.stem + ".jpg"))
    assert np.abs(cached.astype(int) - chip.astype(int)).mean() < 2  # the same chip, through a JPEG (quality 95)
    # at 150 px, the chip `verify --model dlib` gives dlib's ResNet (HOG at upsample 1, 5 points), pixel for pixel
    hog = dlib.get_frontal_face_detector()
    rect = hog(image, 1)[0]
    shape = dlib.shape_predictor(str(detect.face_recognition_model_path(SHAPE_PREDICTOR_5_FILE)))(image, rect)
    np.testing.assert_array_equal(chip_face(image, detect.create_detector("hog"), 150)[0],
                                  dlib.get_face_chip(image, shape, size=150, padding=0.25))  # fmt: skip
