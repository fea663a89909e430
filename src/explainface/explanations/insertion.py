"""Patch-LFW's restoration protocol as a model-agnostic kernel: restore a modified face's pixels in an explanation
map's order and score every step.

Huber et al. (xSSAB, WACV 2024; code ``marcohuber/xSSAB``, ``evaluation/replacement.py`` and
``evaluation/evaluate.py``) evaluate similarity / dissimilarity maps on Patch-LFW (`explainface.faces.patches`):
image 1 of a pair carries planted patches; for each fraction ``f`` of 5%, 10%, ..., 95% the top-``f`` pixels of
the explanation map of the *patched* pair are put back from the *original* image 1 (start from the patched image,
overwrite pixels with the original's, all channels; image 2 unchanged), the pair is scored again, and the share of
pairs classified as a match at a fixed threshold is tracked against the fraction, next to a random order. A
faithful map finds the planted patches first: restoring its top pixels undoes the patches' effect sooner than a
random order does. What their code does, and what we do:

* **Which map, which end.** Their map of image 1 is xSSAB's signed combined map (positive = supports a match,
  negative = opposes it). Their ``best_worst`` strategy looks at the *decision* on the patched pair: matched
  (``cos >= thr``) -> restore the highest values (the most similar pixels: an impostor pair matched because of
  planted similar patches should stop matching); not matched -> restore the lowest values (the most dissimilar:
  a genuine pair broken by planted foreign patches should match again). `decision_order_map` is that choice;
  `restore_curve` itself takes any map, higher = restored earlier.
* **How many pixels.** Theirs selects by a value bound with a strict inequality (``> bound`` at sorted index
  ``int(N (1 - f))``, ``< bound`` at ``int(N f)``), so ties at the bound are left out and the top end restores one
  pixel fewer than ``f N``. Ours restores exactly ``k = floor(f N)`` pixels (their ``int(f N)``, guarded against
  float error), ties broken in raster order (row-major, earlier first), so every map restores the same number of
  pixels at every fraction and a constant map is well defined.
* **Random order.** Theirs: one ``np.random.seed(3)`` permutation of the pixels, the same for every pair (the seed
  is reset before each pair's shuffle), its first ``int(f N)`` pixels restored; the fractions are nested.
  `random_order_map(shape, seed)` gives a seeded permutation as a map (no ties): one seed for all pairs is
  theirs, a per-pair seed (``[seed, pair_index]``) averages over orders.
* **Fractions.** Theirs: ``np.arange(0.05, 1, 0.05)`` restored, plus the patched pair itself as 0% (their plots'
  x-axis is ``np.arange(0, 100, 5) / 100``). Ours: `FRACTIONS` = 0.00, 0.05, ..., 0.95 (20 points, 0 included so
  a curve starts at the patched pair's score); any fractions in [0, 1] may be given.
* **Scores and images.** Theirs writes every restored image as JPEG and reads it back before scoring (a lossy
  re-encoding at each fraction); ours scores the exact arrays. The score is whatever ``score_fn`` returns for a
  batch of restored images (their cosine of image 1's embedding with image 2's); all fractions of a pair go
  through ``score_fn`` in one call (or in chunks of ``batch_size``).
* **Summary.** Theirs plots FMR over the impostor pairs and FNMR over the genuine pairs per fraction at the EER
  threshold of the model on the original LFW (``cos >= thr`` is a match), for ``best_worst`` and ``random``; the
  repository computes no area. Ours, `summarize_restoration`: the **match rate** per fraction, the share of pairs
  with ``score >= threshold`` (= FMR on impostor pairs, 1 - FNMR on genuine pairs), and its **area**, the
  trapezoid over the fractions divided by their span (the mean match rate, in [0, 1]; lower is better for impostor
  pairs, higher for genuine pairs). The threshold is the caller's (theirs: the EER threshold on unmodified pairs).

Images are numpy ``H x W x C`` (or ``H x W``) or torch ``C x H x W`` (or ``H x W``) on any device; batches are
``(F, H, W, C)`` / ``(F, C, H, W)`` of the inputs' dtype. torch is only touched when tensors are given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FRACTIONS",
    "RestorationSummary",
    "curve_area",
    "decision_order_map",
    "match_rates",
    "pixel_ranks",
    "random_order_map",
    "restore_counts",
    "restore_curve",
    "restored_images",
    "restoration_masks",
    "summarize_restoration",
]

#: The fractions of pixels restored: 0.00, 0.05, ..., 0.95 (xSSAB's 5%..95% and the patched pair itself at 0).
FRACTIONS: np.ndarray = np.round(np.arange(20) * 0.05, 2)


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_fractions(fractions) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64).reshape(-1) if np.ndim(fractions) <= 1 else None
    if f is None:
        raise ValueError(f"fractions must be a number or a 1-D sequence, got shape {np.shape(fractions)}")
    if f.size == 0:
        raise ValueError("fractions must not be empty")
    if not np.all(np.isfinite(f)) or f.min() < 0.0 or f.max() > 1.0:
        raise ValueError(f"fractions must lie in [0, 1], got {f.tolist()}")
    return f


def restore_counts(fractions, n_pixels: int) -> np.ndarray:
    """Pixels restored per fraction: ``floor(f * N)`` (xSSAB's ``int(f * N)``), guarded against float error."""
    f = _as_fractions(fractions)
    return np.minimum(np.floor(f * n_pixels + 1e-6), n_pixels).astype(np.int64)


def _order_values(order_map) -> np.ndarray:
    if _is_tensor(order_map):
        order_map = order_map.detach().cpu().numpy()
    values = np.asarray(order_map)
    if values.ndim != 2:
        raise ValueError(f"order_map must be H x W, got shape {values.shape}")
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
            or values.dtype == np.bool_):  # fmt: skip
        raise ValueError(f"order_map must be real, got {values.dtype}")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("order_map must be finite (no NaN or inf)")
    return values


def pixel_ranks(order_map) -> np.ndarray:
    """int64 H x W: each pixel's place in the restoration order (0 = first): higher value first, ties in raster
    (row-major) order."""
    values = _order_values(order_map)
    order = np.argsort(-values.reshape(-1), kind="stable")
    ranks = np.empty(order.size, dtype=np.int64)
    ranks[order] = np.arange(order.size, dtype=np.int64)
    return ranks.reshape(values.shape)


def restoration_masks(order_map, fractions=FRACTIONS) -> np.ndarray:
    """bool ``(F, H, W)``: the pixels restored at each fraction (the first ``floor(f N)`` of `pixel_ranks`)."""
    ranks = pixel_ranks(order_map)
    counts = restore_counts(fractions, ranks.size)
    return ranks[None] < counts[:, None, None]


def _spatial_shape(image, tensor: bool) -> tuple[int, int]:
    shape = tuple(image.shape)
    if len(shape) == 2:
        return shape
    if len(shape) != 3:
        raise ValueError(f"images must be H x W, {'C x H x W' if tensor else 'H x W x C'}; got shape {shape}")
    return shape[1:] if tensor else shape[:2]


def _check_pair(modified, original) -> bool:
    tensor = _is_tensor(modified)
    if tensor != _is_tensor(original):
        raise ValueError("modified and original must both be numpy arrays or both torch tensors")
    if not tensor:
        if not isinstance(modified, np.ndarray) or not isinstance(original, np.ndarray):
            raise ValueError("modified and original must be numpy arrays or torch tensors")
    if tuple(modified.shape) != tuple(original.shape):
        raise ValueError(f"modified and original differ in shape: {tuple(modified.shape)} vs {tuple(original.shape)}")
    if modified.dtype != original.dtype:
        raise ValueError(f"modified and original differ in dtype: {modified.dtype} vs {original.dtype}")
    if tensor and modified.device != original.device:
        raise ValueError(f"modified and original are on different devices: {modified.device} vs {original.device}")
    return tensor


def _restore(modified, original, masks: np.ndarray, tensor: bool):
    """where(mask, original, modified) for a stack of H x W masks: ``(F, ...)`` batch of the inputs' type."""
    if tensor:
        import torch

        m = torch.from_numpy(masks).to(modified.device)
        m = m if modified.ndim == 2 else m[:, None]
        return torch.where(m, original[None], modified[None])
    m = masks if modified.ndim == 2 else masks[..., None]
    return np.where(m, original[None], modified[None])


def restored_images(modified, original, order_map, fractions=FRACTIONS):
    """The batch of ``modified`` with the top-``f`` pixels of ``order_map`` put back from ``original``, per fraction.

    numpy ``H x W x C`` in -> ``(F, H, W, C)``; torch ``C x H x W`` in -> ``(F, C, H, W)`` on the same device.
    """
    tensor = _check_pair(modified, original)
    values = _order_values(order_map)
    if values.shape != _spatial_shape(modified, tensor):
        raise ValueError(f"order_map is {values.shape} but the images are {_spatial_shape(modified, tensor)}")
    return _restore(modified, original, restoration_masks(values, fractions), tensor)


def _scores(out, expected: int) -> np.ndarray:
    if _is_tensor(out):
        out = out.detach().cpu().double().numpy()
    s = np.asarray(out, dtype=np.float64).reshape(-1)
    if s.size != expected:
        raise ValueError(f"score_fn returned {s.size} scores for a batch of {expected} images")
    return s


def restore_curve(
    modified,
    original,
    order_map,
    score_fn: Callable[..., object],
    *,
    fractions=FRACTIONS,
    batch_size: int | None = None,
) -> np.ndarray:
    """float64 ``(F,)``: ``score_fn`` of ``modified`` with its top-``f`` pixels of ``order_map`` restored from
    ``original``, for each ``f`` in ``fractions`` (in the order given).

    ``order_map`` is H x W, higher = restored earlier, ties in raster order; exactly ``floor(f H W)`` pixels are
    restored, in all channels. ``score_fn(batch) -> scores`` gets a batch of restored images (see
    `restored_images` for its layout) and returns one score per image (anything array-like or a tensor), e.g. the
    pair's score of each against the fixed other image. All fractions go in one call unless ``batch_size`` splits
    them. Swapping ``modified`` and ``original`` gives the insertion of the modified pixels into the original.
    """
    tensor = _check_pair(modified, original)
    values = _order_values(order_map)
    if values.shape != _spatial_shape(modified, tensor):
        raise ValueError(f"order_map is {values.shape} but the images are {_spatial_shape(modified, tensor)}")
    masks = restoration_masks(values, fractions)
    if batch_size is None:
        batch_size = len(masks)
    elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    parts = []
    for start in range(0, len(masks), int(batch_size)):
        chunk = masks[start : start + int(batch_size)]
        parts.append(_scores(score_fn(_restore(modified, original, chunk, tensor)), len(chunk)))
    return np.concatenate(parts)


def random_order_map(shape: Sequence[int], seed) -> np.ndarray:
    """float64 H x W: a seeded uniform permutation of the pixels as an order map (no ties), from
    ``np.random.default_rng(seed)`` (an int, a sequence such as ``[seed, pair_index]``, or a Generator)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1, got {shape}")
    if seed is None or isinstance(seed, (bool, np.bool_)):
        raise ValueError(f"seed must be an int, a sequence of ints or a numpy Generator, got {seed!r}")
    n = shape[0] * shape[1]
    return np.random.default_rng(seed).permutation(n).reshape(shape).astype(np.float64)


def decision_order_map(signed_map, score: float, threshold: float) -> np.ndarray:
    """xSSAB's ``best_worst`` choice of end: the signed map (positive = supports a match) itself when the pair is
    matched (``score >= threshold``: restore the most similar pixels first), its negation when it is not (restore
    the most dissimilar first)."""
    values = _order_values(signed_map)
    return values if float(score) >= float(threshold) else -values


def match_rates(scores, threshold: float) -> np.ndarray:
    """float64 ``(F,)``: the share of pairs (rows of ``scores``, ``(P, F)``) with ``score >= threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1:
        raise ValueError(f"scores must be (pairs, fractions) with at least one pair, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return (s >= float(threshold)).mean(axis=0)


def curve_area(fractions, values) -> float:
    """The trapezoid area under ``values`` over ``fractions`` (strictly increasing) divided by their span: the
    curve's mean height. A single point is its own value."""
    f = _as_fractions(fractions)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != f.shape:
        raise ValueError(f"{v.size} values for {f.size} fractions")
    if f.size == 1:
        return float(v[0])
    if np.any(np.diff(f) <= 0):
        raise ValueError(f"fractions must be strictly increasing for an area, got {f.tolist()}")
    return float(np.trapezoid(v, f) / (f[-1] - f[0]))


@dataclass(frozen=True)
class RestorationSummary:
    """Match rates of restoration curves over pairs: per fraction, the share of pairs with ``score >= threshold``,
    and the normalised area under that curve (`curve_area`)."""

    fractions: np.ndarray
    match_rate: np.ndarray
    area: float
    threshold: float
    n_pairs: int

    def to_dict(self) -> dict:
        return {
            "fractions": [float(f) for f in self.fractions],
            "match_rate": [float(r) for r in self.match_rate],
            "area": self.area,
            "threshold": self.threshold,
            "n_pairs": self.n_pairs,
        }


def summarize_restoration(scores, threshold: float, fractions=FRACTIONS) -> RestorationSummary:
    """Summarise the curves of ``P`` pairs (``scores``: ``(P, F)``, one `restore_curve` per row) at ``threshold``.

    Match rate = FMR when the pairs are impostor pairs (lower = the map found the similar patches), 1 - FNMR when
    they are genuine pairs (higher = the map found the dissimilar patches).
    """
    f = _as_fractions(fractions)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != f.size:
        raise ValueError(f"scores must be (pairs, {f.size} fractions), got shape {s.shape}")
    rates = match_rates(s, threshold)
    return RestorationSummary(
        fractions=f, match_rate=rates, area=curve_area(f, rates), threshold=float(threshold), n_pairs=s.shape[0]
    )
