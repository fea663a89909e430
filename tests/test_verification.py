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
