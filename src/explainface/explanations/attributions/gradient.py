"""The gradient similarity / dissimilarity map of xSSAB (Huber et al., WACV 2024, "Efficient explainable face
verification based on similarity score argument backpropagation").

The cosine of two normalised embeddings is a sum of per-dimension products e_A[i] e_B[i]. xSSAB splits the
dimensions at the decision threshold t: those with e_A[i] e_B[i] >= t / D argue for a match (the *positive*
arguments), the others against it. The gradient of each sum with respect to A's pixels (B fixed), its absolute
value averaged over the colour channels, is A's *similarity* map and *dissimilarity* map; the signed map is their
difference (xSSAB's "combined" map), and the same for B with A fixed. The embedding here is the protocol's
(face + mirror, normalised), the threshold the context's (0 when none is given)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from explainface.explanations.attributions.base import (
    PairContext,
    face_embedding,
    from_maps,
    register_attribution,
)


def argument_maps(model, x: torch.Tensor, other: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarity map, dissimilarity map) [S, S] of one face x [1, 3, S, S] against the fixed embedding `other`."""
    x = x.detach().clone().requires_grad_(True)
    e = face_embedding(model, x)[0]
    prod = e * other
    positive = (prod >= threshold / e.shape[-1]).detach()
    pos = prod[positive].sum() if bool(positive.any()) else (e * 0).sum()
    neg = prod[~positive].sum() if bool((~positive).any()) else (e * 0).sum()
    (g_pos,) = torch.autograd.grad(pos, x, retain_graph=True)
    (g_neg,) = torch.autograd.grad(neg, x)
    return g_pos[0].abs().mean(0), g_neg[0].abs().mean(0)


@register_attribution("gradient", "xSSAB's gradient map: |d(positive arguments of the cosine)/d pixel| minus "
                      "|d(negative arguments)/d pixel|, each face with the other fixed", pixel_map=True)  # fmt: skip
def gradient(ctx: PairContext, images, labels, index: int, pool: str = "mean"):
    with torch.no_grad():
        e = F.normalize(face_embedding(ctx.model, images), dim=-1)
    cos = float((e[0] * e[1]).sum())
    t = 0.0 if ctx.threshold is None else float(ctx.threshold)
    with torch.enable_grad():
        sa, da = argument_maps(ctx.model, images[[0]], e[1], t)
        sb, db = argument_maps(ctx.model, images[[1]], e[0], t)
    maps = torch.stack([sa - da, sb - db]).double().cpu().numpy()
    similar = torch.stack([sa, sb]).double().cpu().numpy()
    return from_maps("gradient", cos, maps, labels, pool, similar=similar, dissimilar=similar - maps)
