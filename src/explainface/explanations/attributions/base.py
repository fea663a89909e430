"""One interface for pair explanations: ``attribute(method, context, images, labels) -> Attribution``.

A *pair attribution* says, for a pair of faces (A, B), how much each face part (hair, forehead, cheek, eyes, nose,
mouth, jaw) makes the pair's similarity score what it is: a part score per part (> 0: the part supports the match,
< 0: it argues against it) and, where the method has one, a signed pixel map per face (> 0: the pixel makes the
faces *similar*, < 0: *dissimilar*). Every method explains the same score, the verification protocol's: the cosine
of the flip-summed, L2-normalised embeddings (`explanations.why.flip_sum_cosine`).

Methods are registered names (`register_attribution`), one file each in this package; `why`, the ground-truth
protocols (`explanations.groundtruth`) and the report call them through `attribute`. A method that has a pixel
map turns it into part scores with the part masks (`part_scores`, docs/decisions.md "Pair attributions: pixel
maps to part scores"). What a method needs beyond the network (a channel dictionary and reference maps, an xCos
head) is declared in ``needs`` and checked before it runs, with one line that says what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explainface.models.modes import eval_mode
from explainface.parts.labels import PART_NAMES

PARTS: tuple[str, ...] = PART_NAMES[1:]
#: What a method may need beyond the network.
NEEDS = {
    "dictionary": "a channel dictionary and reference maps (`why --dictionary` / `--faces`)",
    "layer": "a network split at its target layer (forward_features / forward_head)",
    "xcos": "an xCos checkpoint (its pair head)",
}
#: How a pixel map becomes part scores: the map's mean over the part's pixels in both faces, or its sum.
POOLS = ("mean", "sum")


@dataclass
class PairContext:
    """What the methods may use besides the pair: the network in eval mode, the channel dictionary (channel ->
    part) with the reference maps that replace removed channels, an xCos scorer, the decision threshold (xSSAB's
    split of the embedding), the target layer, and the seed that perturbation methods draw from."""

    model: nn.Module
    channel_parts: Mapping[int, str | None] | None = None
    reference: Any = None  # explanations.why.ReferenceMaps
    xcos_scorer: Any = None  # evaluate.scoring.XCosScorer
    threshold: float | None = None
    layer: str | None = None
    seed: int = 0
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> its options

    def available(self, method: str) -> str | None:
        """None if `method` can run here, else what is missing."""
        for need in get_attribution(method).needs:
            if need == "dictionary" and (self.channel_parts is None or self.reference is None):
                return NEEDS[need]
            split = hasattr(self.model, "forward_features") and hasattr(self.model, "forward_head")
            if need == "layer" and not split:
                return NEEDS[need]
            if need == "xcos" and self.xcos_scorer is None:
                return NEEDS[need]
        return None


@dataclass
class Attribution:
    """A method's explanation of one pair: the cosine it explains, part -> score (None: the method cannot say
    anything about the part, e.g. no channel owns it or neither face shows it), and the signed pixel maps
    [2, S, S] (A, B) where the method has them."""

    method: str
    cosine: float
    parts: dict[str, float | None]
    maps: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def ranked(self) -> list[str]:
        """The parts with a score, the most supporting first (ties: PARTS order)."""
        scored = [(p, v) for p, v in self.parts.items() if v is not None and np.isfinite(v)]
        order = {p: i for i, p in enumerate(PARTS)}
        return [p for p, _ in sorted(scored, key=lambda pv: (-pv[1], order.get(pv[0], 99)))]

    def rank_of(self, part: str, sign: int = 1) -> float:
        """1-based rank of `part` when parts are sorted by `sign` * score, descending (sign -1: the most opposing
        first); ties share the mean rank; NaN when the part has no score."""
        v = self.parts.get(part)
        if v is None or not np.isfinite(v):
            return float("nan")
        vals = [sign * x for x in self.parts.values() if x is not None and np.isfinite(x)]
        above = sum(x > sign * v for x in vals)
        ties = sum(x == sign * v for x in vals)
        return above + (ties + 1) / 2


@dataclass(frozen=True)
class AttributionMethod:
    name: str
    fn: Callable[..., Attribution]
    description: str
    needs: tuple[str, ...] = ()
    pixel_map: bool = False


ATTRIBUTIONS: dict[str, AttributionMethod] = {}


def register_attribution(name: str, description: str, needs: Iterable[str] = (), pixel_map: bool = False):
    """Register ``fn(context, images, labels, index, **options) -> Attribution`` under `name`."""
    needs = tuple(needs)
    for n in needs:
        if n not in NEEDS:
            raise ValueError(f"attribution {name!r}: unknown need {n!r}; known: {', '.join(NEEDS)}")

    def deco(fn):
        if name in ATTRIBUTIONS:
            raise ValueError(f"attribution {name!r} is registered twice")
        ATTRIBUTIONS[name] = AttributionMethod(name, fn, description, needs, pixel_map)
        return fn

    return deco


def get_attribution(name: str) -> AttributionMethod:
    try:
        return ATTRIBUTIONS[name]
    except KeyError:
        raise ValueError(f"unknown attribution method {name!r}; registered: {', '.join(ATTRIBUTIONS)}") from None


def attribution_names() -> list[str]:
    return list(ATTRIBUTIONS)


def attribute(method: str, context: PairContext, images: torch.Tensor, labels: torch.Tensor, index: int = 0,
              **options: Any) -> Attribution:  # fmt: skip
    """Explain pair `images` [2, 3, S, S] (normalised A, B; part label maps `labels` [2, S, S]) with `method`;
    `index` (the pair's number) and the context's seed seed the methods that draw at random. Options are the
    method's own (else the context's options for it)."""
    entry = get_attribution(method)
    missing = context.available(method)
    if missing is not None:
        raise ValueError(f"attribution {method!r} needs {missing}")
    if images.ndim != 4 or images.shape[0] != 2 or labels.shape != (2, *images.shape[-2:]):
        raise ValueError(f"a pair is images [2, 3, S, S] with labels [2, S, S], got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")  # fmt: skip
    opts = {**context.options.get(method, {}), **options}
    with eval_mode(context.model):
        return entry.fn(context, images, labels, index, **opts)


# ---- shared pieces -----------------------------------------------------------------------------------------------


def _views(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, S, S] -> [N, 2, 3, S, S]: each image and its mirror."""
    return torch.stack([x, torch.flip(x, dims=[-1])], dim=1)


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.float()


def flip_sum_cosine(emb: torch.Tensor) -> torch.Tensor:
    """Embeddings [..., 4, D] of (A, mirrored A, B, mirrored B) -> cosine [...] of the flip-summed faces."""
    a = F.normalize(emb[..., 0, :] + emb[..., 1, :], dim=-1)
    b = F.normalize(emb[..., 2, :] + emb[..., 3, :], dim=-1)
    return (a * b).sum(-1)


@dataclass
class ReferenceMaps:
    """Per-channel mean target maps [C, H, W] over reference faces, of the faces and of their mirrors; `bank`
    keeps the maps [R, 2, C, H, W] (face, mirror) of the first R faces themselves (the ``draws`` baseline of the
    channel attribution: `explanations.attributions.channels`)."""

    mean: torch.Tensor
    mean_mirrored: torch.Tensor
    faces: int
    bank: torch.Tensor | None = None

    @classmethod
    @torch.no_grad()
    def of(cls, model: nn.Module, batches: Iterable[torch.Tensor], keep: int = 32) -> ReferenceMaps:
        """From normalised image batches [B, 3, S, S] (the model in eval mode); the first `keep` faces' maps are
        kept in `bank`."""
        total = total_m = None
        n, dtype, kept = 0, torch.float32, []
        for x in batches:
            maps = model.forward_features(_views(x).flatten(0, 1))
            dtype, maps = maps.dtype, maps.double()
            maps = maps.reshape(x.shape[0], 2, *maps.shape[1:])
            if sum(len(k) for k in kept) < keep:
                kept.append(maps[: keep - sum(len(k) for k in kept)].to(dtype))
            s, sm = maps[:, 0].sum(0), maps[:, 1].sum(0)
            total = s if total is None else total + s
            total_m = sm if total_m is None else total_m + sm
            n += x.shape[0]
        if n == 0:
            raise ValueError("no reference faces")
        return cls((total / n).to(dtype), (total_m / n).to(dtype), n, torch.cat(kept) if kept else None)


def part_channel_sets(channel_parts: Mapping[int, str | None], parts: Sequence[str] = PARTS) -> dict[str, list[int]]:
    """Part -> the channels whose dominant part it is (from a channel dictionary)."""
    return {p: sorted(int(c) for c, q in channel_parts.items() if q == p) for p in parts}


def pair_generator(seed: int, index: int, salt: int = 0) -> torch.Generator:
    """A CPU generator for pair `index` of a run seeded `seed` (independent of every other pair and method)."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([int(seed), int(index), int(salt)]).generate_state(1)[0]))
    return g


def views(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, S, S] -> [2N, 3, S, S]: each image followed by its mirror."""
    return torch.stack([x, torch.flip(x, dims=[-1])], dim=1).flatten(0, 1)


def face_embedding(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The protocol's embedding [N, D] of faces x [N, 3, S, S]: L2-normalised sum of the face's and its mirror's."""
    emb = model(views(x))
    emb = emb if emb.dtype == torch.float64 else emb.float()
    return F.normalize(emb.reshape(x.shape[0], 2, -1).sum(1), dim=-1)


@torch.no_grad()
def pair_cosine(model: nn.Module, images: torch.Tensor) -> float:
    e = face_embedding(model, images)
    return float((e[0] * e[1]).sum())


def part_scores(maps: np.ndarray, labels: torch.Tensor | np.ndarray, pool: str = "mean") -> dict[str, float | None]:
    """Pixel maps [2, S, S] -> part -> score: over the part's pixels in both faces, the mean of the map ("mean",
    the default: a part is not favoured for being large) or its sum; None where neither face shows the part."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    m = np.asarray(maps, dtype=np.float64)
    out: dict[str, float | None] = {}
    for p in PARTS:
        sel = lab == PART_NAMES.index(p)
        n = int(sel.sum())
        out[p] = None if n == 0 else float(m[sel].sum() / (n if pool == "mean" else 1))
    return out


def from_maps(method: str, cosine: float, maps: np.ndarray, labels, pool: str = "mean", **extra: Any) -> Attribution:
    return Attribution(method, cosine, part_scores(maps, labels, pool), np.asarray(maps, dtype=np.float64), extra)
