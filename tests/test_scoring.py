"""Pair scorers behind one interface; landmarks mirrored with flipped faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.checkpoints import tiny_checkpoint

from explainface.evaluate.scoring import create_scorer, default_score, list_scorers
from explainface.readers.landmarks import IBUG_MIRROR, mirror_landmarks
from explainface.training.checkpoint import load_model


def test_the_cosine_scorer_is_the_dot_product_of_flip_summed_normalised_embeddings(tmp_path):
    loaded = load_model(tiny_checkpoint(tmp_path / "m.safetensors"))
    x = torch.rand(6, 3, 112, 112) * 2 - 1
    scorer = create_scorer("auto", loaded)
    assert scorer.name == "cosine" and default_score(loaded) == "cosine"
    feats = scorer.features([x[:4], x[4:]])
    with torch.no_grad():
        e = loaded.model(x) + loaded.model(torch.flip(x, dims=[3]))
    e = (e / e.norm(dim=1, keepdim=True)).double()
    a, b = np.array([0, 1, 2, 5]), np.array([3, 4, 5, 5])
    want = (e[a] * e[b]).sum(1).numpy()
    np.testing.assert_allclose(scorer.score_pairs(feats, a, b, chunk=3), want, atol=1e-5)
    assert scorer.score_pairs(feats, a[3:], b[3:])[0] == pytest.approx(1.0, abs=1e-5)


def test_scoring_a_checkpoint_without_an_xcos_head_by_xcos_is_an_error_naming_it(tmp_path):
    path = tiny_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="plain.safetensors.*no xCos head"):
        create_scorer("xcos", load_model(path))
    with pytest.raises(ValueError, match="unknown score"):
        create_scorer("nope", load_model(path))
    assert {"cosine", "xcos", "dlib"} <= set(list_scorers())


def test_mirrored_landmarks_keep_their_meaning_on_a_flipped_face():
    from explainface.synthetic.generator import SyntheticFaces

    s = SyntheticFaces(0, "easy").sample(3, 1, 112)
    lm = s.landmarks.astype(np.float64)
    m = mirror_landmarks(lm, 112)
    np.testing.assert_allclose(mirror_landmarks(m, 112), lm)
    # point 36..41 is the eye on the image's left before and after the flip
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean() and m[36:42, 0].mean() < m[42:48, 0].mean()
    # the new image-left eye is the old image-right eye, mirrored
    np.testing.assert_allclose(m[36:42, 0], 111 - lm[[45, 44, 43, 42, 47, 46], 0])
    np.testing.assert_allclose(m[36:42, 1], lm[[45, 44, 43, 42, 47, 46], 1])
    t = mirror_landmarks(torch.from_numpy(lm), 112)
    np.testing.assert_allclose(t.numpy(), m)
    assert sorted(IBUG_MIRROR) == list(range(68))


def test_training_datasets_give_landmarks_in_the_input_frame(tmp_path):
    from explainface.readers.folders import IdentityFolderDataset
    from explainface.synthetic import SyntheticFaceDataset
    from explainface.synthetic.export import export_synthetic

    ds = SyntheticFaceDataset(2, 2, size=64, landmarks=True)
    image, label, lm = ds[1]
    np.testing.assert_allclose(lm.numpy(), ds.sample(1).landmarks)
    export_synthetic(tmp_path / "exp", identities=2, per_identity=2, size=64, heldout_identities=0, progress=False)
    folder = IdentityFolderDataset(tmp_path / "exp" / "train", size=128, landmarks=True)
    image, label, lm = folder[0]
    assert image.shape == (3, 128, 128) and lm.shape == (68, 2) and torch.isfinite(lm).all()
    src = SyntheticFaceDataset(2, 2, size=64).sample(0).landmarks
    np.testing.assert_allclose(lm.numpy(), (src + 0.5) * 2 - 0.5, atol=0.01)
    (tmp_path / "exp" / "train").glob("*/*.pts").__next__().unlink()
    lms = [IdentityFolderDataset(tmp_path / "exp" / "train", size=64, landmarks=True)[i][2] for i in range(4)]
    assert sum(bool(torch.isnan(x).all()) for x in lms) == 1  # the face whose .pts is gone: unknown


def test_eval_mode_restores_each_modules_mode_also_after_an_error():
    from torch import nn

    from explainface.models.modes import eval_mode

    a, b = nn.BatchNorm1d(2).train(), nn.Dropout().eval()
    with pytest.raises(RuntimeError):
        with eval_mode(a, b):
            assert not a.training and not b.training
            raise RuntimeError("boom")
    assert a.training and not b.training
