"""The occlusion attribution: a part's score is how much the pair's cosine drops when the part's region (from the
68 landmarks) is painted mid-grey (0 after normalisation) and the whole network runs again (docs/why.md).

Option ``sides``: ``both`` (the first version of `why`: the part covered in both faces at once) or ``each`` (the mean of
covering it in A alone and in B alone: the grey of one face is not matched by the grey of the other)."""

from __future__ import annotations

import torch

from explainface.explanations.attributions.base import (
    PARTS,
    Attribution,
    PairContext,
    face_embedding,
    register_attribution,
)
from explainface.parts.labels import PART_NAMES

SIDES = ("both", "each")


@torch.no_grad()
def covered_cosines(model, images: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """Cosines [len(masks)] of pair `images` [2, 3, S, S] with each mask pair [2, S, S] (True = cover) painted 0."""
    batch = torch.cat([images.masked_fill(m.to(images.device).unsqueeze(1), 0.0) for m in masks])
    emb = face_embedding(model, batch).reshape(len(masks), 2, -1)
    return (emb[:, 0] * emb[:, 1]).sum(-1)


@register_attribution("occlusion", "the part's region painted grey (sides both: in the two faces at once; each: "
                      "in one face at a time, averaged)")  # fmt: skip
def occlusion(ctx: PairContext, images, labels, index: int, sides: str = "both") -> Attribution:
    if sides not in SIDES:
        raise ValueError(f"occlusion: sides must be one of {SIDES}, got {sides!r}")
    lab = labels.to(images.device)
    shown = [p for p in PARTS if bool((lab == PART_NAMES.index(p)).any())]
    none = torch.zeros_like(lab, dtype=torch.bool)
    masks = [none]
    for p in shown:
        m = lab == PART_NAMES.index(p)
        if sides == "both":
            masks.append(m)
        else:
            masks += [torch.stack([m[0], none[1]]), torch.stack([none[0], m[1]])]
    cos = covered_cosines(ctx.model, images, masks)
    base = float(cos[0])
    removed = cos[1:] if sides == "both" else cos[1:].reshape(-1, 2).mean(1)
    scores = dict.fromkeys(PARTS)
    scores.update({p: base - float(v) for p, v in zip(shown, removed)})
    return Attribution("occlusion", base, scores, extra={"sides": sides})
