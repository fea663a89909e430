"""xCos training (Lin et al., ACM TOMM 2021): teach an `XCosHead` to reproduce a frozen reference model's cosine.

xCos's loss (github.com/ntubiolin/xcos: ``src/model/model.py`` xCosModel.getCos, ``src/model/loss.py``
SiameseMSELoss, ``src/configs/xcos_train_config.json``) is the mean squared error between the xCos of a pair and
the cosine of the pair's L2-normalised embeddings from a frozen, separately trained face model (their
``backbone_target``), added with weight 1 to the identity loss; the gradient trains the attention, the grid
projection and the backbone. Here:

* the pairs come from the training batch: every same-label pair plus random different-identity pairs, up to
  ``pairs`` in all (xCos: a dataset of random pairs, half positive). The different-identity pairs keep at least
  half the budget when there are enough of them (same-label pairs beyond that are subsampled), and each pair's
  order is a coin flip (the attention's concatenation has an order). The draw uses a `torch.Generator` seeded
  by ``ctx.step`` only, so a resumed run draws the same pairs.
* the target is the cosine of the reference model's L2-normalised embeddings of ``ctx.images`` (no gradient,
  eval mode). ``reference`` is a checkpoint path (`load_model_weights`); it is kept out of the module tree (not
  trained, not saved, not moved by ``.to()``: it follows the maps' device on first use). ``reference=None``
  (tests, or a self-distillation run) uses the backbone's own embedding of the step, detached, instead
  (``ctx.embedding``, in whatever mode the backbone is).
* the head's grid is the 14x14 target layer 2x2 max-pooled to 7x7 (``grid="pool"``) or as it is
  (``"target"``); see `explainface.models.xcos` for the head and its deviations from xCos.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from explainface.losses.base import Regularizer, StepContext
from explainface.losses.registry import register_regularizer
from explainface.models.modes import eval_mode
from explainface.models.xcos import XCosHead, check_xcos_options


def select_pairs(labels: torch.Tensor, max_pairs: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(a, b)`` of the pairs of a batch with identity `labels` [B] (on the labels' device).

    Every same-label pair, plus random different-label pairs, `max_pairs` in all at most; the different-label
    pairs keep ``min(count, max_pairs // 2)`` places (so a batch of few identities cannot crowd them out), the
    same-label pairs beyond their share are a random subset. Each pair's order is random. Deterministic in
    (`labels`, `max_pairs`, `step`): the generator is seeded by `step`.
    """
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be positive, got {max_pairs}")
    cpu = labels.detach().reshape(-1).cpu()
    n = cpu.numel()
    g = torch.Generator().manual_seed(int(step))
    i, j = torch.triu_indices(n, n, offset=1)
    same = cpu[i] == cpu[j]
    si, sj, di, dj = i[same], j[same], i[~same], j[~same]
    n_same = min(len(si), max_pairs - min(len(di), max_pairs // 2))
    if n_same < len(si):
        keep = torch.randperm(len(si), generator=g)[:n_same]
        si, sj = si[keep], sj[keep]
    keep = torch.randperm(len(di), generator=g)[: min(len(di), max_pairs - n_same)]
    a, b = torch.cat((si, di[keep])), torch.cat((sj, dj[keep]))
    swap = torch.rand(len(a), generator=g) < 0.5
    a, b = torch.where(swap, b, a), torch.where(swap, a, b)
    return a.to(labels.device), b.to(labels.device)


@register_regularizer("xcos")
class XCosLoss(Regularizer):
    """MSE between the xCos of batch pairs and a frozen reference model's cosine (module docstring).

    `reference`: path of a trained checkpoint (None: the backbone's own detached embedding); `channels`, `grid`:
    the `XCosHead`'s; `pairs`: the most pairs per batch.
    """

    STATS: ClassVar[tuple[str, ...]] = ("mse", "xcos_mean", "target_mean", "pairs")

    def __init__(self, reference: str | None, channels: int = 32, grid: str = "pool", pairs: int = 256) -> None:
        super().__init__()
        check_xcos_options(None, channels, grid)
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"xcos: pairs must be a positive integer, got {pairs!r}")
        if reference is not None and not isinstance(reference, (str, Path)):
            raise ValueError(f"xcos: reference must be a checkpoint path or None, got {reference!r}")
        self.reference = None if reference is None else str(reference)
        self.channels, self.grid, self.max_pairs = channels, grid, pairs
        self.head: XCosHead | None = None
        self._reference: list[nn.Module] = []  # a list: not a submodule, so neither trained nor saved
        self._stats: dict[str, float] = {}

    def setup(self, model: nn.Module) -> None:
        """Build the head for `model`'s target layer (channels from a no-grad dummy pass); load the reference."""
        size = getattr(model, "input_size", None)
        if size is None:
            raise ValueError(f"xcos: the model ({type(model).__name__}) has no input_size")
        p = next(model.parameters(), None)
        device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
        # eval mode: a batch of one zero image must not touch BatchNorm's running statistics
        with eval_mode(model), torch.no_grad():
            maps = model.forward_features(
                torch.zeros(1, getattr(model, "in_chans", 3), int(size), int(size), device=device, dtype=dtype)
            )
        if maps.dim() != 4:
            raise ValueError(f"xcos: forward_features gave shape {tuple(maps.shape)}, not [B, C, H, W]")
        self.head = XCosHead(int(maps.shape[1]), self.channels, self.grid).to(device=device, dtype=dtype)
        self._reference = []
        if self.reference is not None:
            if self.load_checkpoint is None:
                raise ValueError("xcos: a reference checkpoint needs a checkpoint reader: set the regulariser's "
                                 "load_checkpoint (the trainer sets training.checkpoint.load_model_weights)")
            ref = self.load_checkpoint(self.reference)
            ref_size = getattr(ref, "input_size", None)
            if ref_size != size:
                raise ValueError(
                    f"xcos: the reference model {self.reference} takes {ref_size}px faces, the model {size}px"
                )
            ref.requires_grad_(False)
            self._reference = [ref.eval()]

    def _require_setup(self) -> XCosHead:
        if self.head is None:
            raise RuntimeError("xcos: setup(model) has not been called: the head is built for the model's target layer")
        return self.head

    def pair_heads(self) -> dict[str, nn.Module]:
        return {"xcos": self._require_setup()}

    @torch.no_grad()
    def target_cosine(self, ctx: StepContext, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """[N] cosine of the pairs' L2-normalised reference embeddings (float32 at least, no gradient)."""
        if self._reference:
            ref = self._reference[0]
            p = next(ref.parameters())
            if p.device != ctx.images.device:
                ref.to(ctx.images.device)
                p = next(ref.parameters())
            ref.eval()
            emb = ref(ctx.images.detach().to(p.dtype))
        else:
            emb = ctx.embedding.detach()
        emb = F.normalize(emb.to(torch.promote_types(emb.dtype, torch.float32)), dim=1)
        return (emb[a] * emb[b]).sum(1).clamp(-1.0, 1.0)

    def loss(self, ctx: StepContext) -> torch.Tensor:
        head = self._require_setup()
        a, b = select_pairs(ctx.labels, self.max_pairs, ctx.step)
        if len(a) == 0:  # a batch of one face: nothing to compare
            self._stats = {"mse": 0.0, "xcos_mean": 0.0, "target_mean": 0.0, "pairs": 0.0}
            return ctx.maps.sum() * 0.0
        p = next(head.parameters())
        f = head.features(ctx.maps.to(p.dtype))
        xcos = head.score(f[a], f[b])
        target = self.target_cosine(ctx, a, b)
        dtype = torch.promote_types(xcos.dtype, target.dtype)
        mse = (xcos.to(dtype) - target.to(dtype)).pow(2).mean()
        values = torch.stack((mse.detach(), xcos.detach().mean().to(dtype), target.mean().to(dtype))).tolist()
        self._stats = dict(zip(("mse", "xcos_mean", "target_mean"), values), pairs=float(len(a)))  # one sync
        return mse
