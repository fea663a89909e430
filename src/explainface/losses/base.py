"""The call shapes shared by every regulariser (ECLoss, later the diversity losses), and a step's context.

A regulariser is an ``nn.Module`` whose ``loss(ctx)`` returns a scalar to be
*added*, with its own weight beta, to the identity loss (paper eq. 7):
``total = L_id + sum_r beta_r * loss_r``. It reads what it needs from the
`StepContext` (images, labels, target-layer maps, embedding, the model), so a
loss that needs more than the maps (an occlusion branch, a second forward
pass) fits without a special case in the trainer. ``stats()`` returns the
numbers it wants logged after a step (the trainer writes them as CSV and
TensorBoard columns ``<name>.<stat>``); ``STATS`` names them up front so the
log's columns are fixed when the run starts.

A regulariser may also

* need more from the data than images and labels: it names it in ``NEEDS``
  (``("landmarks",)``: each training face's 68 landmarks in the input frame,
  ``ctx.landmarks``; the trainer asks the dataset for them);
* have trainable parameters of its own (xCos's pair head): they are trained
  with the network's, synchronised across processes and saved in the
  checkpoint as ``reg.<key>.*``;
* provide *pair heads* (`pair_heads()`): modules that score a pair of faces,
  kept in the checkpoint so that inference can rebuild them by name
  (`explainface.models.pair_heads`) and score with them (``--score xcos``).

`MapRegularizer` is the common case: a loss of the target-layer maps alone,
callable directly as ``reg(maps)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn


@dataclass
class StepContext:
    """What a regulariser may read at one training step (tensors keep their graphs)."""

    images: torch.Tensor  # [B, 3, S, S] as the network saw them (flipped, channels-last)
    labels: torch.Tensor  # [B] identity labels
    maps: torch.Tensor  # [B, C, H, W] target-layer output (after ReLU)
    embedding: torch.Tensor  # [B, D] the backbone's embedding
    model: nn.Module  # the backbone (call it for a second branch, e.g. occluded faces)
    head: nn.Module | None = None  # the identity head (classify a second branch)
    step: int = 0
    landmarks: torch.Tensor | None = None  # [B, 68, 2] (x, y) pixels in the input frame (NaN rows: unknown)


class Regularizer(nn.Module):
    """Base of every registered regulariser: override `loss` (and `stats`/`STATS` to log numbers)."""

    #: Names of the values `stats()` returns; they become log columns ``<name>.<stat>``.
    STATS: ClassVar[tuple[str, ...]] = ()
    #: What the regulariser needs from the data besides images and labels (e.g. ``("landmarks",)``).
    NEEDS: ClassVar[tuple[str, ...]] = ()
    #: How a regulariser reads a network from a checkpoint it names (xcos's reference network): the trainer sets it
    #: to `training.checkpoint.load_model_weights` before `setup` (losses sit below training: they never import it).
    load_checkpoint: Callable[[str], nn.Module] | None = None

    def setup(self, model: nn.Module) -> None:
        """Called once by the trainer with the backbone, before the optimizer is built and a checkpoint resumed:
        a regulariser whose parameters depend on the network (a head on the target maps) creates them here."""

    def pair_heads(self) -> dict[str, nn.Module]:
        """Pair-scoring modules this regulariser trains, by registered pair-head name (see `models.pair_heads`);
        each must have ``options()``: the JSON-able constructor options that rebuild it."""
        return {}

    def loss(self, ctx: StepContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """Numbers of the last `loss` call to log (keys: `STATS`): by default what `loss` left in ``self._stats``
        (NaN for a key it did not set)."""
        last = getattr(self, "_stats", None) or {}
        return {k: last.get(k, float("nan")) for k in self.STATS}


class MapRegularizer(Regularizer):
    """A loss of the target-layer maps alone: validates the maps and calls `compute`; override `compute`."""

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if not isinstance(maps, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a tensor of target-layer maps, got {type(maps).__name__}")
        if maps.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects target-layer maps of shape [B, C, H, W], got shape {tuple(maps.shape)}"
            )
        if not maps.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects floating-point maps, got {maps.dtype}")
        if maps.numel() == 0:
            raise ValueError(f"{type(self).__name__} got empty maps of shape {tuple(maps.shape)}")
        return self.compute(maps)

    def loss(self, ctx: StepContext) -> torch.Tensor:
        return self(ctx.maps)

    def compute(self, maps: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
