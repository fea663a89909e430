"""The channel attribution: a part's score is how much the pair's cosine drops when the target-layer channels
that the channel dictionary assigns to the part are replaced (docs/why.md).

Baselines for the replaced channels (option ``baseline``):

* ``mean`` (the first version of `why`): the channels' mean over reference faces, in *both* faces. Both faces then
  carry the same values in those channels, which pulls every pair together: replacing all channels gives
  cosine 1, so a part's score is biased down by its share of that pull (a demo pair: forehead -0.05 by channels,
  +0.30 by occlusion).
* ``draws`` (the default): the channels of *individual* reference faces, a different one for each face of the
  pair, averaged over `draws` draws (the interventional baseline of SHAP-style attributions). The replaced
  channels carry two unrelated faces, so nothing is shared: replacing all channels gives the cosine of two
  unrelated faces, not 1. docs/decisions.md "The channel attribution's baseline" has the measurements.

The rest of the network (the head after the target layer) runs on the edited maps of both faces and their
mirrors, all variants in one batch.
"""

from __future__ import annotations

import torch

from explainface.explanations.attributions.base import (
    PARTS,
    Attribution,
    PairContext,
    flip_sum_cosine,
    pair_generator,
    part_channel_sets,
    register_attribution,
    views,
)

BASELINES = ("draws", "mean")


def _cosines(model, variants: torch.Tensor) -> torch.Tensor:
    """Variants [V, 4, C, H, W] of (A, A', B, B') maps -> flip-summed cosines [V]."""
    emb = model.forward_head(variants.flatten(0, 1))
    emb = emb if emb.dtype == torch.float64 else emb.float()
    return flip_sum_cosine(emb.reshape(variants.shape[0], 4, -1))


@torch.no_grad()
def channel_scores(model, images: torch.Tensor, reference, channel_sets: list[list[int]], baseline: str = "draws",
                   draws: int = 8, generator: torch.Generator | None = None) -> tuple[float, list[float]]:  # fmt: skip
    """(the pair's cosine, the cosine with each set of channels replaced) for pair `images` [2, 3, S, S]."""
    if baseline not in BASELINES:
        raise ValueError(f"channels: baseline must be one of {BASELINES}, got {baseline!r}")
    maps = model.forward_features(views(images))  # [4, C, H, W]: A, A', B, B'
    sets = [torch.as_tensor(list(c), dtype=torch.long, device=maps.device) for c in channel_sets]
    if baseline == "mean":
        fill = torch.stack([reference.mean, reference.mean_mirrored] * 2).to(maps).unsqueeze(0)  # [1, 4, C, H, W]
    else:
        bank = reference.bank
        if bank is None or len(bank) < 2:
            raise ValueError("channels: the draws baseline needs at least 2 reference faces' maps (ReferenceMaps.bank)")
        r = len(bank)
        first = torch.randint(0, r, (draws,), generator=generator)
        second = (first + torch.randint(1, r, (draws,), generator=generator)) % r  # another face than the first
        fill = torch.cat([bank[first], bank[second]], dim=1).to(maps)  # [draws, 4, C, H, W]
    variants = maps.unsqueeze(0).repeat(len(sets) * len(fill) + 1, 1, 1, 1, 1)
    for k, idx in enumerate(sets):
        block = variants[1 + k * len(fill) : 1 + (k + 1) * len(fill)]
        if len(idx):
            block[:, :, idx] = fill[:, :, idx]
    cos = _cosines(model, variants)
    removed = cos[1:].reshape(len(sets), len(fill)).mean(1)
    return float(cos[0]), [float(v) for v in removed]


@register_attribution("channels", "the part's target-layer channels replaced (baseline draws: other faces' "
                      "channels, a different face for A and for B; mean: the reference mean in both)",
                      needs=("dictionary", "layer"))  # fmt: skip
def channels(ctx: PairContext, images, labels, index: int, baseline: str = "draws", draws: int = 8) -> Attribution:
    sets = part_channel_sets(ctx.channel_parts)
    owned = [p for p in PARTS if sets[p]]
    g = pair_generator(ctx.seed, index, salt=1)
    cos, removed = channel_scores(ctx.model, images, ctx.reference, [sets[p] for p in owned], baseline, draws, g)
    scores = dict.fromkeys(PARTS)
    scores.update({p: cos - v for p, v in zip(owned, removed)})
    counts = {p: len(sets[p]) for p in PARTS}
    return Attribution("channels", cos, scores, extra={"baseline": baseline, "n_channels": counts})
