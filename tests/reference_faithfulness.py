"""Slow, obvious float64 references for the faithfulness measurement (explainface.explanations.faithfulness): one
variant at a time, one view at a time, pixels and cells by loops. Shares no code with the package beyond the
network itself and the reference maps' numbers.
"""

from __future__ import annotations

import math

import torch

from explainface.parts.labels import PART_NAMES

PARTS = PART_NAMES[1:]


def _flip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=[-1])


def _cos_of_embeddings(e: list[torch.Tensor]) -> float:
    a, b = (e[0] + e[1]).double(), (e[2] + e[3]).double()
    return float((a @ b) / (a.norm() * b.norm()))


@torch.no_grad()
def loop_channel_cosine(net, images, reference, channels: list[int]) -> float:
    """Flip-summed cosine with `channels` of each view's target maps set to the reference mean (of that view)."""
    views = [images[0], _flip(images[0]), images[1], _flip(images[1])]
    means = [reference.mean, reference.mean_mirrored, reference.mean, reference.mean_mirrored]
    emb = []
    for v, mu in zip(views, means):
        m = net.forward_features(v[None])[0].clone()
        for c in channels:
            m[c] = mu[c]
        emb.append(net.forward_head(m[None])[0])
    return _cos_of_embeddings(emb)


@torch.no_grad()
def loop_occlusion_cosine(net, images, labels, parts: list[str]) -> float:
    """Flip-summed cosine with the pixels of `parts` set to 0 in each face (pixel by pixel)."""
    covered = images.clone()
    ids = {PART_NAMES.index(p) for p in parts}
    n, s, _ = labels.shape
    for f in range(n):
        for y in range(s):
            for x in range(s):
                if int(labels[f, y, x]) in ids:
                    covered[f, :, y, x] = 0.0
    views = [covered[0], _flip(covered[0]), covered[1], _flip(covered[1])]
    return _cos_of_embeddings([net(v[None])[0] for v in views])


def loop_deletion_curve(net, images, labels, reference, channel_parts, order, mode) -> list[float]:
    """Cosines after removing the first k usable parts of `order`, k = 0..K, each variant on its own."""
    if mode == "channels":
        chans = {p: [c for c, q in channel_parts.items() if q == p] for p in PARTS}
        seq = [p for p in order if chans[p]]
        return [loop_channel_cosine(net, images, reference, [c for p in seq[:k] for c in chans[p]])
                for k in range(len(seq) + 1)]  # fmt: skip
    present = {PART_NAMES[int(v)] for v in labels.flatten().tolist()}
    seq = [p for p in order if p in present]
    return [loop_occlusion_cosine(net, images, labels, seq[:k]) for k in range(len(seq) + 1)]


def mean_drop(curve: list[float]) -> float:
    return sum(curve[0] - c for c in curve[1:]) / (len(curve) - 1) if len(curve) > 1 else math.nan
