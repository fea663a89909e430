"""Embedding preservation (``preserve``): keep a network's embedding what it was while other terms reshape its maps.

The retrofit (`explainface.training.retrofit`) fine-tunes a pretrained recogniser so that its target layer becomes
part-like (ECLoss-fit's map terms) without retraining it: this term holds the embedding to the original network's.
In `setup(model)` -- which the trainer calls after building the network and loading its pretrained weights, and
before it resumes a checkpoint -- the regulariser takes a frozen copy of the network: the reference. At each step::

    form="cosine" (default):  L = mean_b (1 - cos(e_b, e0_b))          in [0, 2]
    form="mse":               L = mean_{b,d} (e_bd - e0_bd)^2

with ``e`` the network's embedding of the step's faces and ``e0`` the reference's of the same faces. The cosine form
asks for what verification reads (the direction: every scorer compares unit embeddings), and is scale-free, so one
beta suits any network. The squared distance of *unit* embeddings is ``2 (1 - cos)``, the cosine form times two, so
it is not a separate option; ``mse`` holds the raw embeddings, their norms too.

The reference is kept out of the module tree (a list, as xCos's reference): it is not trained, not saved in the
checkpoints (a retrofit's checkpoint holds the fine-tuned network only; a resumed run takes a fresh copy of the
original, since `setup` runs before the resume), not moved by ``.to()`` (it follows the images' device on first
use). It runs in eval mode without gradients, under the step's autocast dtype. ``identity_layers`` are replaced by
the identity in the reference only: a port's added layers (an iresnet's ``act3`` ReLU, not in insightface's network)
are then absent from the original, whose function is the weights' authors' (docs/decisions.md "The retrofit").
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from explainface.losses.base import Regularizer, StepContext
from explainface.losses.registry import register_regularizer

Form = Literal["cosine", "mse"]
FORMS = ("cosine", "mse")


def preservation_loss(embedding: torch.Tensor, reference: torch.Tensor, form: Form = "cosine") -> torch.Tensor:
    """The preservation term of embeddings [B, D] against the reference's [B, D] (module docstring), in float32 at
    least."""
    dtype = torch.promote_types(embedding.dtype, torch.float32)
    e, e0 = embedding.to(dtype), reference.to(dtype)
    if form == "cosine":
        return (1.0 - (F.normalize(e, dim=1) * F.normalize(e0, dim=1)).sum(1)).mean()
    if form == "mse":
        return (e - e0).pow(2).mean()
    raise ValueError(f"preserve: form must be one of {', '.join(FORMS)}, got {form!r}")


@register_regularizer("preserve")
class PreserveEmbedding(Regularizer):
    """Keep the embedding of the network at its value in the original network (module docstring).

    `form`: ``cosine`` (mean 1 - cos of the embeddings, default) or ``mse`` (mean squared difference of the raw
    embeddings); `identity_layers`: layers of the reference replaced by the identity (the original's function).
    """

    STATS: ClassVar[tuple[str, ...]] = ("cos_mean", "cos_min")

    def __init__(self, form: Form = "cosine", identity_layers: list[str] | None = None) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"preserve: form must be one of {', '.join(FORMS)}, got {form!r}")
        if identity_layers is not None and (not isinstance(identity_layers, (list, tuple))
                                            or not all(isinstance(n, str) and n for n in identity_layers)):  # fmt: skip
            raise ValueError(f"preserve: identity_layers must be a list of layer names, got {identity_layers!r}")
        self.form: Form = form
        self.identity_layers = list(identity_layers or [])
        self._reference: list[nn.Module] = []  # a list: not a submodule, so neither trained nor saved
        self._stats: dict[str, float] = {}

    def setup(self, model: nn.Module) -> None:
        """Take the frozen reference: a copy of `model` as it is now (the pretrained network), eval mode, no grad."""
        from explainface.models.layers import replace_with_identity

        ref = copy.deepcopy(model)
        try:
            replace_with_identity(ref, self.identity_layers)
        except ValueError as e:
            raise ValueError(f"preserve: {e}") from None
        ref.requires_grad_(False)
        self._reference = [ref.eval()]

    @property
    def reference(self) -> nn.Module:
        """The frozen original network."""
        if not self._reference:
            raise RuntimeError("preserve: setup(model) has not been called: the reference is a copy of the model")
        return self._reference[0]

    @torch.no_grad()
    def reference_embedding(self, images: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The reference's embedding of `images` (eval mode, no gradient), under the autocast dtype of `like` (the
        network's embedding of the step) when that is a half type."""
        ref = self.reference
        p = next(ref.parameters())
        if p.device != images.device:
            ref.to(images.device)
            p = next(ref.parameters())
        ref.eval()  # outside the module tree: nothing else sets its mode, but keep it certain
        half = like.dtype in (torch.float16, torch.bfloat16)
        with torch.autocast(images.device.type, dtype=like.dtype, enabled=half):
            return ref(images.detach().to(p.dtype))

    def loss(self, ctx: StepContext) -> torch.Tensor:
        e0 = self.reference_embedding(ctx.images, ctx.embedding)
        loss = preservation_loss(ctx.embedding, e0, self.form)
        with torch.no_grad():
            cos = (F.normalize(ctx.embedding.detach().float(), dim=1) * F.normalize(e0.float(), dim=1)).sum(1)
            values = torch.stack((cos.mean(), cos.min())).tolist()  # one sync
        self._stats = dict(zip(self.STATS, values))
        return loss
