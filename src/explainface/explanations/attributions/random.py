"""The random baseline: every part a face shows gets an independent uniform score, seeded per pair. Its hit rate
on a protocol is the chance level (1 / the number of parts shown)."""

from __future__ import annotations

import torch

from explainface.explanations.attributions.base import (
    PARTS,
    Attribution,
    PairContext,
    pair_cosine,
    pair_generator,
    register_attribution,
)
from explainface.parts.labels import PART_NAMES


@register_attribution("random", "a seeded random score per part (chance level)")
def random_parts(ctx: PairContext, images, labels, index: int) -> Attribution:
    values = torch.rand(len(PARTS), generator=pair_generator(ctx.seed, index, salt=3), dtype=torch.float64)
    shown = {p: bool((labels == PART_NAMES.index(p)).any()) for p in PARTS}
    scores = {p: (float(v) if shown[p] else None) for p, v in zip(PARTS, values)}
    return Attribution("random", pair_cosine(ctx.model, images), scores)
