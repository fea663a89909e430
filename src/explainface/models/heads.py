"""Identity heads: `(embedding, labels) -> logits` for cross-entropy (docs/method.md §3).

Softmax is the paper's baseline; CosFace and ArcFace are the usual margin heads
(insightface arcface_torch, written out-of-place so no gradient is hidden). ``none`` is no identity loss at all:
training with the regularisers alone (the retrofit of a pretrained network on unlabelled faces).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SoftmaxHead(nn.Module):
    """A plain linear classifier with bias: the paper's ordinary (softmax) network. Labels are unused."""

    def __init__(self, embedding_dim: int, num_classes: int) -> None:
        super().__init__()
        # Same parameter names, shapes and init as nn.Linear, so its state_dict loads into one.
        ref = nn.Linear(embedding_dim, num_classes)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone())

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(embedding, self.weight, self.bias)


class _MarginHead(nn.Module):
    """Cosine classifier `s * cos(theta)` whose target logit gets a margin; subclasses define `margin`.

    With `labels=None` it returns the margin-free logits `s * cos` (inference).
    The cosine is computed in float32 even under autocast: margins near cos = 1
    are below bf16 resolution.
    """

    def __init__(self, embedding_dim: int, num_classes: int, s: float, m: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, 0.0, 0.01)
        self.s = s
        self.m = m

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        """cos(theta) between each embedding and each class weight, [B, num_classes]."""
        with torch.autocast(device_type=embedding.device.type, enabled=False):
            return F.linear(F.normalize(embedding.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def margin(self, cos_target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosine(embedding)
        if labels is None:
            return self.s * cos
        labels = labels.long()
        target = self.margin(cos.gather(1, labels[:, None]))
        is_target = F.one_hot(labels, cos.shape[1]).bool()
        return self.s * torch.where(is_target, target, cos)

    def extra_repr(self) -> str:
        n, d = self.weight.shape
        return f"embedding_dim={d}, num_classes={n}, s={self.s}, m={self.m}"


class CosFaceHead(_MarginHead):
    """CosFace / additive cosine margin: target logit `s * (cos - m)` (Wang et al. 2018, eq. 4)."""

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 64.0, m: float = 0.35) -> None:
        super().__init__(embedding_dim, num_classes, s, m)

    def margin(self, cos_target: torch.Tensor) -> torch.Tensor:
        return cos_target - self.m


class ArcFaceHead(_MarginHead):
    """ArcFace / additive angular margin: target logit `s * cos(theta + m)` (Deng et al. 2019, eq. 3).

    Past theta + m > pi, cos(theta + m) would grow again; there the usual fallback
    `cos - m * sin(pi - m)` keeps the target logit decreasing in theta.
    """

    # sqrt(1 - cos^2) has an infinite derivative at cos = +-1 (the classic NaN); clamp first.
    eps: float = 1e-7

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5) -> None:
        super().__init__(embedding_dim, num_classes, s, m)
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.threshold = math.cos(math.pi - m)
        self.fallback = m * math.sin(math.pi - m)

    def margin(self, cos_target: torch.Tensor) -> torch.Tensor:
        c = cos_target.clamp(-1.0 + self.eps, 1.0 - self.eps)
        sin = torch.sqrt(1.0 - c * c)
        cos_theta_m = c * self.cos_m - sin * self.sin_m
        return torch.where(cos_target > self.threshold, cos_theta_m, cos_target - self.fallback)


class PartialFCHead(nn.Module):
    """Sampled-class margin head for very many identities (Partial FC, An et al. 2021, in spirit).

    Each step uses the class centres of the batch's labels plus uniformly drawn
    negatives, `sample_rate` of all classes in total, so the logits are
    [B, sampled] instead of [B, num_classes]. `loss(embedding, labels)` returns
    the cross-entropy over the sampled classes; `forward` gives full logits for
    inference. Sampling uses torch's global RNG, which checkpoints save, so
    deterministic runs stay deterministic. Under DistributedDataParallel every
    rank samples its own classes (the weight is replicated, not sharded).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        sample_rate: float = 0.1,
        s: float = 64.0,
        m: float = 0.5,
        margin: str = "arcface",
    ) -> None:
        super().__init__()
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        margins = {"arcface": ArcFaceHead, "cosface": CosFaceHead}
        if margin not in (*margins, "none"):
            raise ValueError(f"margin must be arcface, cosface or none, got {margin!r}")
        self.num_classes, self.sample_rate = num_classes, sample_rate
        self.inner = margins.get(margin, CosFaceHead)(embedding_dim, num_classes, s=s, m=0.0 if margin == "none" else m)
        self.weight = self.inner.weight

    def sample(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sampled class ids, labels re-indexed into them); positives always included."""
        positive = torch.unique(labels)
        n = max(len(positive), int(round(self.sample_rate * self.num_classes)))
        if n >= self.num_classes:
            return torch.arange(self.num_classes, device=labels.device), labels
        score = torch.rand(self.num_classes, device=labels.device)
        score[positive] = 2.0  # positives first
        classes = torch.topk(score, n).indices.sort().values
        return classes, torch.searchsorted(classes, labels)

    def loss(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        classes, local = self.sample(labels)
        cos = F.linear(F.normalize(embedding.float(), dim=1), F.normalize(self.weight[classes].float(), dim=1))
        target = self.inner.margin(cos.gather(1, local[:, None]))
        is_target = F.one_hot(local, len(classes)).bool()
        return F.cross_entropy(self.inner.s * torch.where(is_target, target, cos), local)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(embedding, labels)


class NoHead(nn.Module):
    """No identity head (``head.name: none``): no parameters, an identity loss of 0 that keeps the embedding's graph
    (a backward pass through it gives zero gradients), no logits. Labels are ignored, so unlabelled faces do."""

    def __init__(self, embedding_dim: int, num_classes: int) -> None:
        super().__init__()

    def loss(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return embedding.sum() * 0.0 + 0.0  # + 0.0: a 0 * (negative sum) is -0.0, which logs oddly

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise RuntimeError("head.name=none has no logits: this run trains without an identity loss")


def identity_loss(head: nn.Module, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The identity loss L_id of eq. 7: the head's own `loss` if it has one, else cross-entropy of its logits."""
    own = getattr(head, "loss", None)
    if callable(own):
        return own(embedding, labels)
    return F.cross_entropy(head(embedding, labels), labels)


_HEADS: dict[str, type[nn.Module]] = {
    "softmax": SoftmaxHead,
    "cosface": CosFaceHead,
    "arcface": ArcFaceHead,
    "partial_fc": PartialFCHead,
    "none": NoHead,
}


def list_heads() -> list[str]:
    """The registered identity heads' names (what `create_head` and the config's `head.name` accept)."""
    return sorted(_HEADS)


def create_head(name: str, embedding_dim: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the identity head `name` ("softmax", "cosface", "arcface", "partial_fc" or "none"); kwargs go to its
    class."""
    try:
        cls = _HEADS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown head {name!r}; available: {', '.join(sorted(_HEADS))}") from None
    return cls(embedding_dim, num_classes, **kwargs)
