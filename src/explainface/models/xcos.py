"""xCos, the explainable cosine (Lin et al., "xCos: An Explainable Cosine Metric for Face Verification Task",
ACM TOMM 2021), as a pair head on the target-layer maps.

A face's target-layer maps ``[C, 14, 14]`` become a grid of local features (`XCosHead.features`): the 7x7 grid
of a 2x2 max-pool (``grid="pool"``: what the VGG's own next pool gives, 49 cells of 16 px at input 112, like
xCos's 7x7 ResNet grid) or the 14x14 maps as they are (``grid="target"``), then a 1x1 convolution to
``channels`` (32 in xCos) + BatchNorm + PReLU. For a pair of grids ``fa, fb [N, channels, h, w]``:

* the patch cosine ``cos[n, i, j]`` is the cosine over channels of cell ``(i, j)`` of ``fa[n]`` and ``fb[n]``;
* the attention ``att[n]`` is a softmax over the ``h * w`` cells of a small conv net of both grids: a shared
  3x3 conv (``channels -> channels/2``, BN, PReLU) per face, the two concatenated, a 3x3 conv
  (``channels -> channels/2``, BN, PReLU) and a 3x3 conv to one channel (BN, PReLU): the logits;
* ``xcos[n] = sum_ij cos[n, i, j] * att[n, i, j]``: a convex combination of cosines, so in [-1, 1]
  (= 1 for identical non-zero grids, -1 for ``fb = -fa``).

Read from the authors' code (github.com/ntubiolin/xcos: ``src/model/xcos_modules.py`` GridCos,
XCosAttention, FrobeniusInnerProduct; ``src/model/face_recog.py`` Backbone_FC2Conv; ``src/model/model.py``
xCosModel; ``src/configs/xcos_train_config.json``) and followed: the attention is fed the same projected
32-channel grid as the patch cosine (not the raw 512-channel backbone grid), embedding / attention widths
32 -> 16, 16 + 16 -> 16 -> 1, BN + PReLU after every conv (also the last, before the softmax), softmax with
temperature 1, attention not symmetric in the two faces (the concatenation has an order).

Deviations:

* the grid comes from our VGG's 14x14 target layer pooled to 7x7 (xCos: the last ResNet stage's 7x7 output;
  their 14x14 / 5x5 ablations change that stage's stride); the 1x1 projection is a head of its own here,
  while in xCos it replaces the backbone's embedding layer (the flattened 32x7x7 grid is their identity
  embedding). Our backbone keeps its own embedding; the head only reads the maps.
* the convolutions have no bias (the BatchNorm right after each removes it; xCos's have one); initialisation is
  PyTorch's default, as in xCos in effect (their ``weight_init(0, 0.02)`` only visits the top-level
  ``Sequential`` containers, never a ``Conv2d``);
* the attention width is ``max(1, channels // 2)`` for any ``channels`` (xCos: 16 for 32);
* the cosine is computed on features scaled by their largest component first (mathematically the same
  cosine; no overflow or underflow for extreme magnitudes), a zero cell has cosine 0, cosines and the score
  are clamped to [-1, 1] against rounding, and non-finite attention logits are mapped to finite ones
  (``nan_to_num``) so the score stays in [-1, 1] for any finite input;
* the cosine and the weighted sum are computed in at least float32 (under autocast too).

The grid's last axis is the image's x, and `features` commutes with a horizontal flip (pool, 1x1 conv, BN
and PReLU are all per position or mirror-symmetric), as `explainface.models.pair_heads` requires.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explainface.models.pair_heads import register_pair_head

GRIDS = ("pool", "target")


def check_xcos_options(in_channels: int | None, channels: int, grid: str) -> None:
    """Raise a ValueError for options that do not build an xCos head (`in_channels` None: not known yet)."""
    if grid not in GRIDS:
        raise ValueError(
            f"xcos: unknown grid {grid!r}; choose 'pool' (the 14x14 maps 2x2 max-pooled to 7x7) "
            f"or 'target' (the maps as they are)"
        )
    for name, value in (("in_channels", in_channels), ("channels", channels)):
        if value is None and name == "in_channels":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"xcos: {name} must be a positive integer, got {value!r}")


def _unit(f: torch.Tensor) -> torch.Tensor:
    """`f` [N, D, h, w] divided by its norm over D; zero vectors stay zero; safe for any finite magnitude."""
    # Dividing by the largest |component| first changes nothing mathematically (the norm divides it out) but
    # keeps the squares in range for 1e30 and 1e-30 alike.
    tiny = torch.finfo(f.dtype).tiny
    f = f / f.detach().abs().amax(dim=1, keepdim=True).clamp_min(tiny)
    return f / torch.linalg.vector_norm(f, dim=1, keepdim=True).clamp_min(tiny)


def _conv_bn_prelu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),  # BN right after: no bias
        nn.BatchNorm2d(c_out),
        nn.PReLU(c_out),
    )


@register_pair_head("xcos")
class XCosHead(nn.Module):
    """xCos pair head: `features` per face, then `score` / `explain` of a pair of feature grids."""

    def __init__(self, in_channels: int, channels: int = 32, grid: str = "pool") -> None:
        super().__init__()
        check_xcos_options(in_channels, channels, grid)
        self.in_channels, self.channels, self.grid = in_channels, channels, grid
        half = max(1, channels // 2)
        self.project = _conv_bn_prelu(in_channels, channels, 1)
        self.embed = _conv_bn_prelu(channels, half, 3)  # shared by both faces
        self.fuse = _conv_bn_prelu(2 * half, half, 3)
        self.logits = _conv_bn_prelu(half, 1, 3)

    def options(self) -> dict:
        return {"in_channels": self.in_channels, "channels": self.channels, "grid": self.grid}

    def features(self, maps: torch.Tensor) -> torch.Tensor:
        """Target-layer maps [B, in_channels, H, W] -> grid features [B, channels, h, w] (h = H/2 if pooled)."""
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4:
            shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise ValueError(f"xcos: features() expects maps [B, C, H, W], got {shape}")
        if maps.shape[1] != self.in_channels:
            raise ValueError(f"xcos: the head was built for {self.in_channels} channels, the maps have {maps.shape[1]}")
        if self.grid == "pool":
            if maps.shape[-1] < 2 or maps.shape[-2] < 2:
                raise ValueError(f"xcos: grid='pool' needs maps at least 2x2, got {tuple(maps.shape[-2:])}")
            maps = F.max_pool2d(maps, kernel_size=2, stride=2)
        return self.project(maps)

    def _check_pair(self, fa: torch.Tensor, fb: torch.Tensor) -> None:
        if fa.dim() != 4 or fa.shape != fb.shape or fa.shape[1] != self.channels:
            raise ValueError(
                f"xcos: expects two feature grids [N, {self.channels}, h, w] of one shape, "
                f"got {tuple(fa.shape)} and {tuple(fb.shape)}"
            )

    def patch_cosine(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """[N, h, w]: cosine over channels of each cell of `fa` with the same cell of `fb` (0 for a zero cell)."""
        self._check_pair(fa, fb)
        dtype = torch.promote_types(fa.dtype, torch.float32)
        cos = (_unit(fa.to(dtype)) * _unit(fb.to(dtype))).sum(1)
        return cos.clamp(-1.0, 1.0)

    def attention(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """[N, h, w]: non-negative weights of the cells, summing to 1 per pair (softmax over the h * w cells)."""
        self._check_pair(fa, fb)
        fused = torch.cat((self.embed(fa), self.embed(fb)), dim=1)
        logits = self.logits(self.fuse(fused))[:, 0]  # [N, h, w]
        n, h, w = logits.shape
        dtype = torch.promote_types(logits.dtype, torch.float32)
        logits = torch.nan_to_num(logits.to(dtype).reshape(n, h * w))
        return torch.softmax(logits, dim=1).reshape(n, h, w)

    def explain(self, fa: torch.Tensor, fb: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the score is made of: {"cosine": [N, h, w] patch cosines, "attention": [N, h, w] weights}."""
        return {"cosine": self.patch_cosine(fa, fb), "attention": self.attention(fa, fb)}

    def score(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """[N] xCos: the attention-weighted sum of the patch cosines, in [-1, 1]."""
        parts = self.explain(fa, fb)
        return (parts["cosine"] * parts["attention"]).sum((1, 2)).clamp(-1.0, 1.0)

    def forward(self, maps_a: torch.Tensor, maps_b: torch.Tensor) -> torch.Tensor:
        """xCos of two batches of target-layer maps [N, C, H, W] -> [N]."""
        return self.score(self.features(maps_a), self.features(maps_b))
