"""CorrRISE (Lu et al. 2024, after RISE, Petsiuk et al. 2018): a perturbation map of the pair's similarity.

Random smooth masks M_i (a coarse `grid` x `grid` grid of cells kept with probability `keep`, bilinearly upsampled
with a random shift, as RISE draws them) cover face A (pixels x M, i.e. towards mid-grey 0) while B stays whole;
the pixel's map value is the Pearson correlation over the masks between M_i(pixel) and the cosine s_i of
(masked A, B): > 0 where keeping the pixel raises the similarity (CorrRISE's similarity map), < 0 where it lowers
it (the dissimilarity map). The same for B with A whole. Seeded per pair (`base.pair_generator`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from explainface.explanations.attributions.base import (
    PairContext,
    face_embedding,
    from_maps,
    pair_generator,
    register_attribution,
)


def rise_masks(n: int, size: int, grid: int, keep: float, generator: torch.Generator) -> torch.Tensor:
    """n smooth masks [n, size, size] in [0, 1] (RISE: a grid of kept cells, upsampled, randomly shifted)."""
    cell = -(-size // grid)  # ceil
    cells = (torch.rand(n, 1, grid + 1, grid + 1, generator=generator) < keep).double()
    up = F.interpolate(cells, size=((grid + 1) * cell,) * 2, mode="bilinear", align_corners=False)[:, 0]
    dx, dy = (torch.randint(0, cell, (n,), generator=generator) for _ in range(2))
    return torch.stack([up[i, y : y + size, x : x + size] for i, (x, y) in enumerate(zip(dx.tolist(), dy.tolist()))])


def correlation_map(masks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Pearson correlation [S, S] over the masks between each pixel's mask value and the scores (0 where either
    does not vary)."""
    m = masks.double() - masks.double().mean(0)
    s = scores.double() - scores.double().mean()
    num = torch.einsum("nij,n->ij", m, s)
    den = m.pow(2).sum(0).sqrt() * s.pow(2).sum().sqrt()
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


@torch.no_grad()
def face_map(model, x: torch.Tensor, other: torch.Tensor, masks: torch.Tensor, batch: int) -> torch.Tensor:
    scores = []
    for chunk in masks.split(batch):
        covered = x * chunk.unsqueeze(1).to(x)
        scores.append(face_embedding(model, covered) @ other)
    return correlation_map(masks, torch.cat(scores).cpu())


@register_attribution("rise", "CorrRISE: correlation over random smooth masks between a pixel being kept and the "
                      "cosine (seeded per pair)", pixel_map=True)  # fmt: skip
def rise(ctx: PairContext, images, labels, index: int, masks: int = 64, grid: int = 7, keep: float = 0.5,
         batch: int = 16, pool: str = "mean", faces: int = 2):  # fmt: skip
    """`faces` 1: A's map only (B's left 0, half the cost), for a protocol that reads A's map alone. 64 masks by
    default: the method's cost is (masks x 2 faces x 2 views) forward passes, most of `why`'s time."""
    if faces not in (1, 2):
        raise ValueError(f"rise: faces must be 1 (A only) or 2, got {faces!r}")
    g = pair_generator(ctx.seed, index, salt=2)
    size = images.shape[-1]
    with torch.no_grad():
        e = face_embedding(ctx.model, images)
    cos = float((e[0] * e[1]).sum())
    ma, mb = rise_masks(masks, size, grid, keep, g), rise_masks(masks, size, grid, keep, g)
    map_a = face_map(ctx.model, images[[0]], e[1], ma, batch)
    map_b = face_map(ctx.model, images[[1]], e[0], mb, batch) if faces == 2 else torch.zeros_like(map_a)
    maps = torch.stack([map_a, map_b])
    return from_maps("rise", cos, maps.numpy(), labels, pool, masks=masks)
