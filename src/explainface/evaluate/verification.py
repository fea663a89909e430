"""Face verification protocol (paper §5.2.1, SPEC §5): embeddings, cosine scores, 10-fold accuracy.

The k-fold accuracy is insightface's `eval/verification.py` protocol: for each
fold, the threshold with the best accuracy on the other folds is applied to the
held-out fold; report the mean and standard deviation over folds.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def embed(model: nn.Module, images: Iterable[torch.Tensor], flip: bool = True) -> torch.Tensor:
    """L2-normalised embeddings of image batches; with `flip`, of the image plus its mirror (summed)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for batch in images:
            e = model(batch)
            if flip:
                e = e + model(torch.flip(batch, dims=[3]))
            out.append(F.normalize(e.float(), dim=1))
    finally:
        model.train(was_training)
    return torch.cat(out)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of `score >= threshold` -> same.

    Candidate thresholds are the midpoints between consecutive distinct scores
    (and the two ends), evaluated in one sorted pass.
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order].astype(bool)
    n = len(s)
    # predicting "same" for items at positions >= i: correct = negatives below i + positives from i
    neg_below = np.concatenate([[0], np.cumsum(~y)])
    pos_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    correct = neg_below + pos_from
    # only cut between distinct scores
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] != s[:-1]
    correct = np.where(valid, correct, -1)
    i = int(np.argmax(correct))
    if i == 0:
        thr = s[0] - 1e-6
    elif i == n:
        thr = s[-1] + 1e-6
    else:
        thr = 0.5 * (s[i - 1] + s[i])
    return float(thr), float(correct[i] / n)


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray | int = 10) -> dict:
    """10-fold verification accuracy: best threshold on 9 folds, applied to the 10th.

    `folds` is a fold id per pair (official folds) or a number of contiguous folds.
    Returns mean and standard deviation of the fold accuracies, and per-fold values.
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same).astype(bool)
    if scores.shape != same.shape or scores.ndim != 1:
        raise ValueError(f"scores and same must be 1-D of equal length, got {scores.shape} and {same.shape}")
    if isinstance(folds, int):
        fold_id = np.arange(len(scores)) * folds // max(1, len(scores))
    else:
        fold_id = np.asarray(folds)
    accs, thrs = [], []
    for f in np.unique(fold_id):
        test = fold_id == f
        thr, _ = best_threshold(scores[~test], same[~test])
        accs.append(float(((scores[test] >= thr) == same[test]).mean()))
        thrs.append(thr)
    return {
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "fold_accuracies": accs,
        "thresholds": thrs,
        "pairs": int(len(scores)),
    }
