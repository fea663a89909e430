"""Pair scorers: how two faces become one verification score, behind one interface (cosine, xCos, dlib).

A scorer turns image batches into per-face features and a pair of features into a score (higher = more likely
the same identity); the 10-fold protocol (`verification.py`) only ever sees the scores. `verify`, the trainer's
validation and the experiment all reach scorers by name:

* ``cosine``: the flip-summed, L2-normalised embedding's cosine (the protocol of the paper and insightface);
* ``xcos``: xCos (Lin et al. 2021), the attention-weighted sum of the patch cosines of the two faces' grids,
  computed by the checkpoint's ``xcos`` pair head (trained by the ``xcos`` regulariser); a face's grid is the mean
  of its own and its mirror's (mirrored back), like the flip-sum;
* ``dlib``: dlib's pretrained ResNet (`verify.py` has its pipeline: it reads the image files itself).

``auto`` is the checkpoint's own score: ``xcos`` for a checkpoint with an xCos head, else ``cosine``. A scorer
that needs a pair head the checkpoint does not have is an error naming the checkpoint, never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from explainface.models.base import LoadedModel
from explainface.models.capture import target_maps
from explainface.models.modes import eval_mode

_SCORERS: dict[str, Callable[..., PairScorer]] = {}


def register_scorer(name: str) -> Callable[[Callable[..., PairScorer]], Callable[..., PairScorer]]:
    """Decorator: make `factory(loaded: LoadedModel, **options) -> PairScorer` available as score `name`."""

    def add(factory: Callable[..., PairScorer]) -> Callable[..., PairScorer]:
        if name in _SCORERS and _SCORERS[name] is not factory:
            raise ValueError(f"a scorer named {name!r} is already registered")
        _SCORERS[name] = factory
        return factory

    return add


def list_scorers() -> list[str]:
    return sorted([*_SCORERS, "dlib"])


def default_score(loaded: LoadedModel) -> str:
    """The score a checkpoint is verified with under ``auto``: its pair head's if it has one, else cosine."""
    return "xcos" if "xcos" in loaded.pair_heads else "cosine"


def create_scorer(name: str, loaded: LoadedModel, **options: Any) -> PairScorer:
    """Scorer `name` ("auto" = `default_score`) for a loaded model."""
    if name == "auto":
        name = default_score(loaded)
    if name not in _SCORERS:
        raise ValueError(f"unknown score {name!r}; available: auto, {', '.join(list_scorers())}")
    return _SCORERS[name](loaded, **options)


class PairScorer:
    """features(batches) -> per-face features; score(fa, fb) -> [N] float64 scores of the N pairs (fa[i], fb[i])."""

    name: str = ""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    @property
    def label(self) -> str:
        return self.loaded.label if self.name == "cosine" else f"{self.loaded.label}, {self.name}"

    def features(self, batches: Iterable[torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, fa: torch.Tensor, fb: torch.Tensor) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_pairs(self, feats: torch.Tensor, a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Scores of pairs given by index arrays into `feats` (in chunks: xCos holds [chunk, D, h, w] pairs)."""
        a, b = np.asarray(a), np.asarray(b)
        out = [self.score(feats[a[i : i + chunk]], feats[b[i : i + chunk]]) for i in range(0, len(a), chunk)]
        return np.concatenate(out) if out else np.zeros(0)


@register_scorer("cosine")
class CosineScorer(PairScorer):
    name = "cosine"

    def __init__(self, loaded: LoadedModel, precision: str = "fp32") -> None:
        super().__init__(loaded)
        self.precision = precision

    def features(self, batches: Iterable[torch.Tensor]) -> torch.Tensor:
        from explainface.evaluate.verification import embed

        return embed(self.loaded.model, batches, precision=self.precision).cpu()

    def score(self, fa: torch.Tensor, fb: torch.Tensor) -> np.ndarray:
        return (fa.double() * fb.double()).sum(1).numpy()


@register_scorer("xcos")
class XCosScorer(PairScorer):
    name = "xcos"

    def __init__(self, loaded: LoadedModel, precision: str = "fp32") -> None:
        super().__init__(loaded)
        if "xcos" not in loaded.pair_heads:
            raise ValueError(
                f"{loaded.source or loaded.label}: the checkpoint has no xCos head (train it with the xcos method); "
                f"score it with --score cosine"
            )
        self.head = loaded.pair_heads["xcos"]
        if precision != "fp32":
            raise ValueError("the xcos score runs in fp32 only")

    @torch.no_grad()
    def grids(self, x: torch.Tensor) -> torch.Tensor:
        """A batch's xCos features: the mean of the face's and its mirror's (flipped back along x)."""
        model, head = self.loaded.model, self.head
        with eval_mode(model, head):
            x = x.contiguous(memory_format=torch.channels_last)
            f = head.features(target_maps(model, x, self.loaded.layer))
            fm = head.features(target_maps(model, torch.flip(x, dims=[3]), self.loaded.layer))
            return 0.5 * (f + torch.flip(fm, dims=[-1]))

    def features(self, batches: Iterable[torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.grids(x).float().cpu() for x in batches])

    @torch.no_grad()
    def score(self, fa: torch.Tensor, fb: torch.Tensor) -> np.ndarray:
        dev = next(self.head.parameters()).device
        with eval_mode(self.head):
            return self.head.score(fa.to(dev), fb.to(dev)).double().cpu().numpy()

    @torch.no_grad()
    def explain(self, fa: torch.Tensor, fb: torch.Tensor) -> dict[str, np.ndarray]:
        """The patch-cosine and attention maps [N, h, w] of pairs (for the 1x4 panel)."""
        dev = next(self.head.parameters()).device
        with eval_mode(self.head):
            out = self.head.explain(fa.to(dev), fb.to(dev))
        return {k: v.double().cpu().numpy() for k, v in out.items()}


def tensor_batches(images: list[np.ndarray], batch: int, device: str | torch.device,
                   progress: bool = False, desc: str = "embedding"):  # fmt: skip
    """uint8 RGB crops -> normalised [B, 3, S, S] batches on `device`, with a progress bar."""
    from tqdm import tqdm

    from explainface.inputs import to_tensor

    for i in tqdm(range(0, len(images), batch), desc=desc, unit="batch", disable=not progress):
        yield torch.stack([to_tensor(c) for c in images[i : i + batch]]).to(device)
