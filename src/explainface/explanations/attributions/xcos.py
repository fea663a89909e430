"""xCos's own explanation (Lin et al. 2021): the patch cosine x attention grid of an xCos checkpoint's pair head,
the same grid for both faces (patch i of A is compared with patch i of B), bilinearly upsampled to the input.
It explains the xCos score, which is the map's sum; `Attribution.cosine` is that score."""

from __future__ import annotations

import torch

from explainface.explanations.attributions.base import PairContext, from_maps, register_attribution
from explainface.explanations.attributions.gradcam import upsample


@register_attribution("xcos", "xCos's patch cosine x attention grid (xCos checkpoints only)", needs=("xcos",),
                      pixel_map=True)  # fmt: skip
def xcos(ctx: PairContext, images, labels, index: int, pool: str = "mean"):
    f = ctx.xcos_scorer.grids(images)
    ex = ctx.xcos_scorer.explain(f[[0]], f[[1]])
    grid = torch.from_numpy(ex["cosine"][0] * ex["attention"][0])  # [h, w] float64
    up = upsample(grid.unsqueeze(0), tuple(images.shape[-2:]))[0]
    maps = torch.stack([up, up]).numpy()
    return from_maps("xcos", float(grid.sum()), maps, labels, pool, score="xcos")
