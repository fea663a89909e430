"""Grad-CAM of the pair's cosine (Selvaraju et al. 2017), as pytorch-grad-cam's similarity target does it: for face
A the explained scalar is cos(emb(A), emb(B)) with B's embedding held fixed, and the other way round.

The embedding is the protocol's (the face's and its mirror's summed, `base.face_embedding`), so both views of a
face get a CAM at the target layer: channel weights = the spatial mean of d cos / d Z_c, CAM = ReLU(sum_c w_c Z_c),
the mirror's CAM flipped back and added. Maps are bilinearly upsampled to the input size and kept in the score's
units (not scaled to [0, 1]: the two faces' maps are compared in the part scores). Non-negative by construction."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from explainface.explanations.attributions.base import (
    PairContext,
    face_embedding,
    from_maps,
    register_attribution,
    views,
)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear [N, h, w] -> [N, S, S] in the maps' own dtype (align_corners=False, as image resizing)."""
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def face_cam(model, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Grad-CAM [h, w] at the target layer of cos(face_embedding(x), other) for one face x [1, 3, S, S]."""
    z = model.forward_features(views(x)).detach().requires_grad_(True)  # [2, C, h, w]: face, mirror
    emb = model.forward_head(z)
    emb = emb if emb.dtype == torch.float64 else emb.float()
    e = F.normalize(emb.sum(0), dim=-1)
    (grad,) = torch.autograd.grad((e * other).sum(), z)
    weights = grad.mean((-2, -1), keepdim=True)
    cams = F.relu((weights * z).sum(1))  # [2, h, w]
    return (cams[0] + torch.flip(cams[1], dims=[-1])).detach()


@register_attribution("gradcam", "Grad-CAM of the cosine at the target layer, each face with the other's "
                      "embedding fixed (pytorch-grad-cam's similarity target); non-negative", needs=("layer",),
                      pixel_map=True)  # fmt: skip
def gradcam(ctx: PairContext, images, labels, index: int, pool: str = "mean"):
    with torch.no_grad():
        e = face_embedding(ctx.model, images)
    cos = float((e[0] * e[1]).sum())
    with torch.enable_grad():
        cams = torch.stack([face_cam(ctx.model, images[[0]], e[1]), face_cam(ctx.model, images[[1]], e[0])])
    maps = upsample(cams.double(), tuple(images.shape[-2:]))
    return from_maps("gradcam", cos, maps.cpu().numpy(), labels, pool)
