"""Why do two faces match? A verification decision explained by face parts, two ways.

For a pair (A, B) the similarity is the protocol's: cos of the flip-summed, L2-normalised embeddings. Each face
part k (hair, forehead, cheek, eyes, nose, mouth, jaw) gets a *contribution* = cos(A, B) - cos(A, B without part k)
(positive: the part supports the match; negative: it argues against it), by two kinds of removal:

* **channels** (`channel_contributions`): the target-layer channels assigned to part k (the channel
  dictionary's dominant part) are replaced, in both faces and both their mirror views, by their mean over a
  reference set of faces (`ReferenceMaps`); the rest of the network (the embedding head) runs on the edited
  maps. It asks what the network's *part channels* carry, and is only as good as the channels are part-like.
* **occlusion** (`occlusion_contributions`): part k's region (from 68 landmarks) is painted mid-grey (0 after
  normalisation) in both images and the whole network runs again. It asks what the *pixels* of the part carry.

All variants of a pair go through the network in one batch: (parts + 1) x 4 views (A, mirrored A, B, mirrored
B) maps through the head for the channels, the same number of images through the whole network for occlusion.
Removing nothing reproduces the cosine exactly; removing every channel leaves both faces at the reference mean,
cosine 1. `why.json`'s shape (keep it stable): ``{"cosine", "threshold", "decision", "parts": {part:
{"channels", "occlusion", "n_channels", "area_a", "area_b"}}, ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from explainface.explanations.attributions.base import (  # noqa: F401  (kept importable from here)
    PARTS,
    ReferenceMaps,
    _views,
    _wide,
    flip_sum_cosine,
    part_channel_sets,
)
from explainface.models.modes import eval_mode
from explainface.parts.labels import PART_NAMES


def _head(model: nn.Module):
    if not hasattr(model, "forward_head") or not hasattr(model, "forward_features"):
        raise ValueError(f"{type(model).__name__} has no forward_features/forward_head: channel ablation needs the "
                         "network split at its target layer")  # fmt: skip
    return model.forward_head


@torch.no_grad()
def channel_variants(
    model: nn.Module, images: torch.Tensor, reference: ReferenceMaps, channel_sets: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Cosines [len(channel_sets)] of pair `images` [2, 3, S, S] (A, B) with each set of channels replaced by the
    reference mean (in both faces and both views; an empty set = the plain cosine), in ONE pass through the
    head."""
    head = _head(model)
    maps = model.forward_features(_views(images).flatten(0, 1))  # [4, C, H, W]: A, A', B, B'
    means = torch.stack([reference.mean, reference.mean_mirrored] * 2).to(maps)
    variants = maps.unsqueeze(0).repeat(len(channel_sets), 1, 1, 1, 1)  # [V, 4, C, H, W]
    for v, chans in enumerate(channel_sets):
        if len(chans):
            idx = torch.as_tensor(list(chans), dtype=torch.long, device=maps.device)
            variants[v][:, idx] = means[:, idx]
    emb = _wide(head(variants.flatten(0, 1))).reshape(len(channel_sets), 4, -1)
    return flip_sum_cosine(emb)


@torch.no_grad()
def occlusion_variants(model: nn.Module, images: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cosines [len(masks)] of pair `images` [2, 3, S, S] with each mask pair [2, S, S] (bool, True = cover) painted
    mid-grey (0) in its face, then mirrored, all in ONE pass through the network."""
    batch = []
    for m in masks:
        covered = images.masked_fill(m.to(images.device).unsqueeze(1), 0.0)
        batch.append(_views(covered).flatten(0, 1))
    emb = _wide(model(torch.cat(batch))).reshape(len(masks), 4, -1)
    return flip_sum_cosine(emb)


Contributions = tuple[float, dict[str, float | None]]


def channel_contributions(model: nn.Module, images: torch.Tensor, reference: ReferenceMaps,
                          channel_parts: Mapping[int, str | None]) -> Contributions:  # fmt: skip
    """(cosine, part -> cos - cos without the part's channels; None for a part with no channel)."""
    sets = part_channel_sets(channel_parts)
    with eval_mode(model):
        cos = channel_variants(model, images, reference, [[]] + [sets[p] for p in PARTS])
    base = float(cos[0])
    return base, {p: (base - float(cos[i + 1]) if sets[p] else None) for i, p in enumerate(PARTS)}


def part_masks_of(labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Label maps [2, S, S] (PART_NAMES ids) -> part -> bool masks [2, S, S]."""
    return {p: labels == PART_NAMES.index(p) for p in PARTS}


def occlusion_contributions(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Contributions:
    """(cosine, part -> cos - cos with the part's region covered in both faces; None where neither face shows it)."""
    masks = part_masks_of(labels)
    empty = torch.zeros_like(labels, dtype=torch.bool)
    with eval_mode(model):
        cos = occlusion_variants(model, images, [empty] + [masks[p] for p in PARTS])
    base = float(cos[0])
    return base, {p: (base - float(cos[i + 1]) if bool(masks[p].any()) else None) for i, p in enumerate(PARTS)}


#: The methods `why` runs by default, in this order (every registered one that can run on the network, but the
#: random baseline): the checked order comes from a ground-truth run (`explain_pair(..., order=...)`).
WHY_METHODS = ("channels", "occlusion", "gradient", "gradcam", "rise", "xcos")


def explain_pair(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, reference: ReferenceMaps,
                 channel_parts: Mapping[int, str | None], threshold: float | None = None,
                 methods: Sequence[str] | None = None, xcos_scorer=None, seed: int = 0,
                 keep_maps: bool = False) -> dict:  # fmt: skip
    """The why.json content of one pair: images [2, 3, S, S] (normalised), labels [2, S, S] part label maps.
    Every method of `methods` (default `WHY_METHODS`, those that can run) through the attribution registry:
    ``parts.<part>.<method>`` is its score; with `keep_maps` the pixel maps come back under ``"_maps"``."""
    from explainface.explanations.attributions import PairContext, attribute

    ctx = PairContext(model, channel_parts=channel_parts, reference=reference, xcos_scorer=xcos_scorer,
                      threshold=threshold, seed=seed)  # fmt: skip
    wanted = list(methods) if methods is not None else list(WHY_METHODS)
    runnable = [m for m in wanted if ctx.available(m) is None]
    results = {m: attribute(m, ctx, images, labels) for m in runnable}
    sets = part_channel_sets(channel_parts)
    cos = next(a.cosine for m, a in results.items() if m != "xcos") if any(m != "xcos" for m in results) else None
    parts = {
        p: {
            **{m: a.parts[p] for m, a in results.items()},
            "n_channels": len(sets[p]),
            "area_a": int((labels[0] == PART_NAMES.index(p)).sum()),
            "area_b": int((labels[1] == PART_NAMES.index(p)).sum()),
        }
        for p in PARTS
    }
    out = {"cosine": cos, "threshold": threshold, "methods": runnable, "parts": parts,
           "channel_baseline": results["channels"].extra["baseline"] if "channels" in results else None}  # fmt: skip
    if threshold is not None and cos is not None:
        out["decision"] = "same" if cos >= threshold else "different"
    if keep_maps:
        out["_maps"] = {m: a.maps for m, a in results.items() if a.maps is not None}
    return out


def summary_line(result: dict, method: str = "channels", top: int = 4) -> str:
    """ "same person, cos 0.62 >= 0.41: eyes +0.21, nose +0.09, jaw -0.03, ..." (parts by |contribution|)."""
    cos, thr = result["cosine"], result.get("threshold")
    if thr is None:
        head = f"cos {cos:.2f} (no threshold)"
    elif cos >= thr:
        head = f"same person, cos {cos:.2f} >= {thr:.2f}"
    else:
        head = f"different people, cos {cos:.2f} < {thr:.2f}"
    vals = [(p, v[method]) for p, v in result["parts"].items() if v.get(method) is not None]
    vals.sort(key=lambda pv: -abs(pv[1]))
    parts = ", ".join(f"{p} {v:+.2f}" for p, v in vals[:top])
    more = ", ..." if len(vals) > top else ""
    return f"{head}: {parts}{more}" if parts else head


def contributions_array(result: dict, method: str) -> np.ndarray:
    """The parts' contributions in PARTS order (NaN where a part has none)."""
    return np.array([np.nan if result["parts"][p][method] is None else result["parts"][p][method] for p in PARTS])
