"""Yin et al. 2019, "Towards Interpretable Face Recognition" (ICCV): SAD, FAD and the occluded branch.

Read from their official TensorFlow 1 code (``yubangji123/Interpret_FR``): ``training/model_pretrain_CASIA.py``
(``build_model``: the total loss; ``discriminator``: the top-k truncation of the target map ``k5``;
``diversityLossA``: a filter term), ``training/ops.py`` (``diversityLossB``: SAD; ``occludedFaces``: the window),
``train/run_pretrain_CASIA.sh`` (320-d features, batch 64, 96 px input), ``test/eval/gen_syn_occl.py`` and
``test/visualization/landmark68_7.mat`` (their mean face). Formulas and ideas only; no code is copied.

Spatial activation diversity, `spatial_activation_diversity` (their ``diversityLossB`` on ``k5``)::

    x̃_bc   = x_bc * [ |x_bc| > (n+1)-th largest |x_bc| ]      n = round(keep * H W)   (top-n truncation)
    z_bc   = G * x̃_bc                                        3x3 Gaussian, sigma 1.5, zero padding, stride 1
    SAD    = mean_b  mean_{i != j}  cos(z_bi, z_bj)^2        (= the mean over pairs i < j)

* Truncation first, then smoothing: their ``discriminator`` multiplies ``k5`` by the mask ``|k5| > min(top_k(|k5|,
  k = H))`` (per image and channel) and returns it, and ``diversityLossB`` smooths that. ``k = H = 24`` on their
  24 x 24 maps keeps the values strictly above the 24th largest, i.e. 23 of 576 = 3.99%; ``keep = 0.04`` gives
  ``n = round(0.04 * 576) = 23`` there and 8 of 196 on our 14 x 14 maps. Ties at the threshold are dropped, as
  theirs; a value 0 is never kept. The mask is a constant (no gradient through the selection), as ``tf.cast``.
* The kernel is theirs: the 3 x 3 Gaussian of sigma 1.5 normalised to sum 1 (0.0947 / 0.1183 / 0.1478), for any
  map size (`smoothing_matrix` applies it to all maps in one product). ``sigma = 0`` skips the smoothing.
* Guard (deviation): they divide by ``|z_i| |z_j|`` and an all-zero map gives NaN; we divide by
  ``max(|z|, 1e-6)``, so a zero map has cosine 0 with every other map, a finite loss and a zero gradient, and
  any map with ``|z| >= 1e-6`` gets the exact cosine. A single channel (no pair) gives 0.
* Deviation: their truncation is part of the *network* (the embedding is the average pool of the truncated,
  signed BN map ``k5``); our backbones are the project's VGGs, whose embedding head sees the whole map, so the
  truncation lives in the loss only. Our maps are after ReLU, so ``|x| = x``.

Feature activation diversity, `feature_activation_diversity` (their ``occl_loss``)::

    d      = mean_b |f_b - f^o_b|          [D]   f, f^o: clean and occluded embeddings (before any dropout)
    FAD    = sum of the n smallest d       n = round(keep * D),  keep = 260 / 320 = 0.8125 (their top_k of -d)
    mask   = [d <= n-th smallest d]        the most-changed D - n elements (about 19%) are set to 0 in f^o

Deviation, **FAD on unit embeddings** (``fad_space="unit"``, the default): `YinLoss` gives the kernel the
L2-normalised ``f / |f|`` and ``f^o / |f^o|``; ``fad_space="raw"`` gives it the embeddings as they are (their
code). On the raw embeddings of our networks (BatchNorm'd, each element about unit scale) FAD is about 180 at
the start, 0.05 FAD is twice the identity loss, and under SGD the network takes the shortcut the raw formula
leaves open: it shrinks the embedding (FAD 95 -> 1.4 in 25 steps) and the identity loss rises instead of falling
(docs/decisions.md, measured). Verification compares directions (cosine), so the direction is what should not
move under occlusion, and on unit vectors FAD has no scale to shrink.

Gradients flow into both branches (no stop-gradient in theirs), the mask is a constant. The masked occluded
embedding is classified by the same identity head: ``CE(head(f^o * mask), y)``. We keep their *fraction*
(0.8125: 416 of 512 elements, 26 of 32) rather than the count 260.

The loss, `YinLoss` (registered ``"yin"``). Their total (``build_model``) is::

    2 CE(clean) + 2 CE(occluded, masked) + SAD(clean) + SAD(occluded) + 0.1 FAD   [+ 100 FD, see below]

(their ``l2_regu_id_logits*`` are computed but not added). Our trainer minimises ``L_id + beta * loss`` with
``L_id = CE(clean)`` of weight 1, so ``loss = sad * (SAD(clean) + SAD(occluded)) + occluded * CE(occluded) +
fad * FAD`` with the defaults ``sad = 0.5, occluded = 1.0, fad = 0.05`` -- their ratios divided by 2 -- and
**beta 1** (a constant beta, not auto) reproduces their objective up to the overall factor 2 (a learning-rate
matter; they use Adam, lr 1e-3). The occluded images come from `explainface.faces.occlusion.occlude` (one black
32 x 12 window per batch, at a place of the 110 px mean-face frame drawn as they draw it, carried onto each face by
a similarity fit to its 68 landmarks; deviations listed there), with a generator seeded from ``(seed,
ctx.step)`` so a resumed run draws the same windows. The occluded branch is a second forward pass of
``ctx.model`` (``forward_with_features``, or the model's ``target_layer`` captured), in train mode like theirs,
under the same autocast dtype as the clean maps.

Other deviations: they apply dropout (keep 0.6) to both embeddings right before their linear classifier; we add
none (the backbone's own dropout, if configured, applies to both branches). Their window place is shared by the
whole batch, and the FAD mask is the batch's; under DDP each process has its own batch, hence its own mask (the
window place is the same on every process: the seed does not depend on the rank).

Filter diversity: their code also adds ``100 * diversityLossA``, computed on the weights of the conv that makes
the target map (``d_k5_conv_new``): for each output filter, the mean over pairs of its k x k taps (each a C_in
vector) of the squared cosine -- a diversity *within* each filter's taps, not between filters or responses. The
paper presents its method as the identity loss plus SAD and FAD (its abstract and project page name only those
two losses; we could not read its full text when writing this, so whether its objective lists this term is
unchecked -- our recollection is that it does not). Decision: implemented as `filter_diversity` and the option
``YinLoss(filter_diversity=...)``, **off by default** (the method as the paper presents it);
``filter_diversity=50`` (their 100, divided by 2 like the other weights) reproduces their code. It is not part
of ``STATS``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from explainface.faces.occlusion import FRAME, WINDOW, occlude
from explainface.losses.base import MapRegularizer, Regularizer, StepContext
from explainface.losses.registry import register_regularizer
from explainface.models.capture import embedding_and_maps

__all__ = [
    "FAD_KEEP",
    "FAD_SPACES",
    "SAD_KEEP",
    "SAD_SIGMA",
    "YinLoss",
    "YinSAD",
    "feature_activation_diversity",
    "filter_diversity",
    "smoothing_matrix",
    "spatial_activation_diversity",
    "step_generator",
    "target_conv",
    "truncate_maps",
]

#: Fraction of positions each map keeps before SAD (their k = H on 24 x 24 maps: 23 of 576).
SAD_KEEP = 0.04
#: Sigma of their 3 x 3 Gaussian.
SAD_SIGMA = 1.5
#: Where FAD compares the embeddings: "unit" (L2-normalised, our default) or "raw" (their code).
FAD_SPACES = ("unit", "raw")
#: Fraction of embedding elements FAD sums and the occluded branch keeps (their 260 of 320).
FAD_KEEP = 260 / 320
_EPS = 1e-6


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 when every input is float64, else float32 (half inputs are computed in float32)."""
    return torch.float64 if all(t.dtype == torch.float64 for t in tensors) else torch.float32


def _n_keep(keep: float, total: int) -> int:
    return min(total, max(1, int(round(keep * total))))


# ---- SAD ------------------------------------------------------------------------------------------------------


def smoothing_matrix(height: int, width: int, sigma: float = SAD_SIGMA, dtype=torch.float32, device=None):
    """[HW, HW] matrix S with ``flat(G * x) = S @ flat(x)``: Yin et al.'s 3 x 3 Gaussian (weights
    ``exp(-(dx^2 + dy^2) / (2 sigma^2))`` normalised to sum 1), zero padding, stride 1."""
    return _smoothing_cached(int(height), int(width), float(sigma), dtype, str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=16)
def _smoothing_cached(height: int, width: int, sigma: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    edge = math.exp(-1.0 / (2 * sigma * sigma))
    g = torch.tensor([edge, 1.0, edge], dtype=torch.float64)
    g = g / g.sum()  # the 3x3 kernel is the outer product of this with itself

    def band(n: int) -> torch.Tensor:
        i = torch.arange(n)
        d = i[None, :] - i[:, None] + 1  # kernel index of (output i, input j)
        inside = (d >= 0) & (d <= 2)
        return torch.where(inside, g[d.clamp(0, 2)], torch.zeros((), dtype=torch.float64))

    return torch.kron(band(height), band(width)).to(device=device, dtype=dtype)


def truncate_maps(maps: torch.Tensor, keep: float = SAD_KEEP) -> torch.Tensor:
    """Each map [B, C, H, W] kept only where |value| is strictly above its (n+1)-th largest |value|, n =
    round(keep * H W) (at most n positions; 0 elsewhere). The selection is a constant for autograd."""
    b, c, h, w = maps.shape
    n = _n_keep(keep, h * w)
    if n >= h * w:
        return maps
    flat = maps.reshape(b, c, h * w)
    mag = flat.detach().abs()
    thr = mag.topk(n + 1, dim=2).values[..., -1:]
    return (flat * (mag > thr)).reshape(b, c, h, w)


def spatial_activation_diversity(maps: torch.Tensor, sigma: float = SAD_SIGMA, keep: float = SAD_KEEP):
    """Yin et al.'s SAD of target maps [B, C, H, W]: mean over images and channel pairs of the squared cosine
    between truncated, smoothed maps (module docstring), in [0, 1]; float64 stays float64, else float32."""
    if maps.dim() != 4:
        raise ValueError(f"maps must have shape [B, C, H, W], got {tuple(maps.shape)}")
    b, c, h, w = maps.shape
    dtype = _compute_dtype(maps)
    if c < 2:
        return maps.to(dtype).sum() * 0.0
    with torch.autocast(device_type=maps.device.type, enabled=False):
        x = truncate_maps(maps.to(dtype), keep).reshape(b * c, h * w)
        if sigma > 0:
            x = x @ smoothing_matrix(h, w, sigma, dtype, x.device).T
        xh = (x / x.norm(dim=1, keepdim=True).clamp_min(_EPS)).reshape(b, c, h * w)
        gram = xh @ xh.transpose(1, 2)  # [B, C, C]
        off = ~torch.eye(c, dtype=torch.bool, device=maps.device)
        return (gram.pow(2) * off).sum() / (b * c * (c - 1))


# ---- FAD ------------------------------------------------------------------------------------------------------


def feature_activation_diversity(
    f: torch.Tensor, f_o: torch.Tensor, keep: float = FAD_KEEP
) -> tuple[torch.Tensor, torch.Tensor]:
    """(FAD, element mask [D] bool) of clean and occluded embeddings [B, D]: d = batch-mean |f - f_o|, FAD = the
    sum of the n = round(keep * D) smallest d; the mask is True where d <= the n-th smallest (kept elements),
    False on the most-changed ones (to be zeroed in the occluded embedding)."""
    if f.dim() != 2 or f.shape != f_o.shape:
        raise ValueError(f"f and f_o must both have shape [B, D], got {tuple(f.shape)} and {tuple(f_o.shape)}")
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    dtype = _compute_dtype(f, f_o)
    with torch.autocast(device_type=f.device.type, enabled=False):
        d = (f.to(dtype) - f_o.to(dtype)).abs().mean(0)
        smallest = torch.topk(d, _n_keep(keep, d.numel()), largest=False).values
        mask = d.detach() <= smallest.detach().max()
        return smallest.sum(), mask


# ---- filter diversity (their code's diversityLossA; off by default) --------------------------------------------


def filter_diversity(weight: torch.Tensor) -> torch.Tensor:
    """Mean over a conv's output filters [C_out, C_in, kh, kw] of the mean over pairs of different taps (each a
    C_in vector) of their squared cosine (Yin et al.'s code, ``diversityLossA``; zero taps guarded)."""
    if weight.dim() != 4:
        raise ValueError(f"weight must have shape [C_out, C_in, kh, kw], got {tuple(weight.shape)}")
    c_out, c_in, kh, kw = weight.shape
    k = kh * kw
    dtype = _compute_dtype(weight)
    if k < 2:
        return weight.to(dtype).sum() * 0.0
    taps = weight.to(dtype).permute(0, 2, 3, 1).reshape(c_out, k, c_in)
    th = taps / taps.norm(dim=2, keepdim=True).clamp_min(_EPS)
    gram = th @ th.transpose(1, 2)
    off = ~torch.eye(k, dtype=torch.bool, device=weight.device)
    return (gram.pow(2) * off).sum() / (c_out * k * (k - 1))


def target_conv(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` registered before the model's ``target_layer`` (the conv that makes the target map;
    ``features.conv5_3`` of a VGG16)."""
    layer = getattr(model, "target_layer", None)
    last = None
    for name, module in model.named_modules():
        if name == layer:
            break
        if isinstance(module, nn.Conv2d):
            last = module
    else:
        if layer is not None:
            raise ValueError(f"target layer {layer!r} is not a module of {type(model).__name__}")
    if last is None:
        raise ValueError(f"{type(model).__name__} has no Conv2d before its target layer {layer!r}")
    return last


# ---- regularisers ---------------------------------------------------------------------------------------------


@register_regularizer("yin_sad")
class YinSAD(MapRegularizer):
    """Yin et al.'s spatial activation diversity of the target maps alone (no occluded branch)."""

    STATS = ()

    def __init__(self, sigma: float = SAD_SIGMA, keep: float = SAD_KEEP) -> None:
        super().__init__()
        _check_sad(sigma, keep)
        self.sigma, self.keep = float(sigma), float(keep)

    def compute(self, maps: torch.Tensor) -> torch.Tensor:
        return spatial_activation_diversity(maps, self.sigma, self.keep)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, keep={self.keep}"


def _check_sad(sigma: float, keep: float) -> None:
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of training step `step`: a function of (seed, step) only, so a resumed run (and every
    DDP process) draws the same windows."""
    state = np.random.SeedSequence([int(seed), int(step)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 32) | int(state[1]))


@register_regularizer("yin")
class YinLoss(Regularizer):
    """Yin et al.'s SAD + occluded branch + FAD (module docstring); use with a constant beta of 1.

    ``loss = sad * (SAD(clean) + SAD(occluded)) + occluded * CE(head(f_o * mask), y) + fad * FAD
    [+ filter_diversity * FD(target conv)]``.
    """

    NEEDS = ("landmarks",)
    STATS = ("sad", "sad_occluded", "fad", "ce_occluded")

    def __init__(
        self,
        sad: float = 0.5,
        occluded: float = 1.0,
        fad: float = 0.05,
        sigma: float = SAD_SIGMA,
        keep: float = SAD_KEEP,
        fad_keep: float = FAD_KEEP,
        fad_space: str = "unit",
        window: Sequence[float] = WINDOW,
        per_image: bool = False,
        filter_diversity: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check_sad(sigma, keep)
        if not (sad >= 0 and occluded >= 0 and fad >= 0 and filter_diversity >= 0):
            raise ValueError(
                f"sad, occluded, fad and filter_diversity must be >= 0, got {sad}, {occluded}, {fad}, "
                f"{filter_diversity}"
            )
        if not 0 < fad_keep <= 1:
            raise ValueError(f"fad_keep must be in (0, 1], got {fad_keep}")
        if fad_space not in FAD_SPACES:
            raise ValueError(f"fad_space must be one of {FAD_SPACES}, got {fad_space!r}")
        window = tuple(float(v) for v in window)
        if len(window) != 2 or not all(v > 0 for v in window):
            raise ValueError(f"window must be two positive sizes (width, height), got {window}")
        self.sad, self.occluded, self.fad = float(sad), float(occluded), float(fad)
        self.sigma, self.keep, self.fad_keep = float(sigma), float(keep), float(fad_keep)
        self.fad_space = fad_space
        self.window, self.per_image = window, bool(per_image)
        self.filter_diversity, self.seed = float(filter_diversity), int(seed)
        self._stats: dict[str, float] = {}

    def occluded_images(self, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(the occluded images of this step, their windows [B, S, S]): deterministic in (seed, ctx.step)."""
        return occlude(ctx.images.detach(), ctx.landmarks, step_generator(self.seed, ctx.step), self.window,
                       FRAME, per_image=self.per_image)  # fmt: skip

    def fad_embeddings(self, f: torch.Tensor, f_o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two embeddings FAD compares: L2-normalised (``fad_space="unit"``, the default) or as they are
        (``"raw"``, their code)."""
        if self.fad_space == "raw":
            return f, f_o
        dtype = _compute_dtype(f, f_o)
        return (nn.functional.normalize(f.to(dtype), dim=1, eps=_EPS),
                nn.functional.normalize(f_o.to(dtype), dim=1, eps=_EPS))  # fmt: skip

    def loss(self, ctx: StepContext) -> torch.Tensor:
        if ctx.head is None:
            raise ValueError("YinLoss needs the identity head (ctx.head) to classify the occluded faces")
        occ, _ = self.occluded_images(ctx)
        amp = ctx.maps.dtype if ctx.maps.dtype in (torch.float16, torch.bfloat16) else None
        autocast = torch.autocast(occ.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
        with autocast:
            emb_o, maps_o = embedding_and_maps(ctx.model, occ)
        if maps_o.shape[1:] != ctx.maps.shape[1:]:
            raise ValueError(
                f"the occluded branch's target maps {tuple(maps_o.shape)} differ from the step's "
                f"{tuple(ctx.maps.shape)}"
            )
        sad_c = spatial_activation_diversity(ctx.maps, self.sigma, self.keep)
        sad_o = spatial_activation_diversity(maps_o, self.sigma, self.keep)
        fad, mask = feature_activation_diversity(*self.fad_embeddings(ctx.embedding, emb_o), self.fad_keep)
        with autocast:
            from explainface.models import identity_loss

            ce_o = identity_loss(ctx.head, emb_o * mask.to(emb_o.dtype), ctx.labels).float()
        total = self.sad * (sad_c + sad_o) + self.occluded * ce_o + self.fad * fad
        if self.filter_diversity > 0:
            total = total + self.filter_diversity * filter_diversity(target_conv(ctx.model).weight)
        self._stats = {
            "sad": float(sad_c.detach()),
            "sad_occluded": float(sad_o.detach()),
            "fad": float(fad.detach()),
            "ce_occluded": float(ce_o.detach()),
        }
        return total

    def extra_repr(self) -> str:
        return (
            f"sad={self.sad}, occluded={self.occluded}, fad={self.fad}, sigma={self.sigma}, keep={self.keep}, "
            f"fad_keep={self.fad_keep}, fad_space={self.fad_space!r}, window={self.window}, "
            f"per_image={self.per_image}, "
            f"filter_diversity={self.filter_diversity}, seed={self.seed}"
        )
