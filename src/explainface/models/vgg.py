"""VGG face networks with a 14x14 target layer (paper §4.2, docs/method.md §3).

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (2015), configurations B, D, E. No skip connections: ECLoss wants
each target channel to see one layer's patterns. The network is data (`cfgs`)
and one class builds every variant (timm style).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from explainface.models.base import TargetMapNet
from explainface.models.registry import register_model

# Channels per conv, "M" = 2x2 max-pool; five blocks each. Keyed by depth.
cfgs: dict[int, list[int | str]] = {
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # B
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # D
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],  # E
}


def _pools_to_drop(input_size: int, target_size: int, pools_before_target: int, drop_pool: int) -> list[int]:
    """Block numbers whose max-pool is removed so that the target map is `target_size` wide.

    Removal starts at `drop_pool` and goes backwards (4, 3, ...): the default keeps
    the early high-resolution blocks cheap.
    """
    ratio = input_size / target_size
    n_pools = round(math.log2(ratio)) if ratio >= 1 else -1
    if input_size % target_size or n_pools < 0 or 2**n_pools != ratio:
        raise ValueError(
            f"input_size={input_size} must be target_size={target_size} times a power of two "
            f"(e.g. 112 or 224 for a 14x14 target map)"
        )
    if n_pools > pools_before_target:
        raise ValueError(
            f"input_size={input_size} needs {n_pools} max-pools before the target layer to reach "
            f"{target_size}x{target_size}, but VGG has only {pools_before_target}"
        )
    n_drop = pools_before_target - n_pools
    if n_drop and not 1 <= drop_pool <= pools_before_target:
        raise ValueError(f"drop_pool={drop_pool} must name a block in 1..{pools_before_target}")
    if n_drop > drop_pool:
        raise ValueError(
            f"input_size={input_size} needs {n_drop} max-pools removed, counting back from "
            f"drop_pool={drop_pool} leaves only {drop_pool}"
        )
    return list(range(drop_pool, drop_pool - n_drop, -1))


class EmbeddingHead(nn.Module):
    """Target map -> face embedding: max-pool -> flatten -> dropout -> linear -> BatchNorm1d.

    insightface arcface_torch style (docs/method.md §3); verification compares these embeddings.
    """

    def __init__(
        self, in_channels: int, in_size: tuple[int, int], embedding_dim: int = 512, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        # No bias: the BatchNorm1d right after removes it anyway.
        self.fc = nn.Linear(in_channels * (in_size[0] // 2) * (in_size[1] // 2), embedding_dim, bias=False)
        self.bn = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(self.dropout(self.flatten(self.pool(x)))))


class VGGFace(TargetMapNet):
    """VGG13/16/19 (optionally with BatchNorm) whose target layer is the last conv's ReLU.

    `features` ends at that ReLU (`target_layer`, e.g. "features.relu5_3"); its map
    is `target_size` (14x14) at input 224 (five pools) and at 112 (one pool before
    the target removed, by default the one after block 4).
    """

    def __init__(
        self,
        depth: int = 16,
        batch_norm: bool = False,
        width: float = 1.0,
        input_size: int = 224,
        embedding_dim: int = 512,
        dropout: float = 0.0,
        in_chans: int = 3,
        drop_pool: int = 4,
        target_size: int = 14,
    ) -> None:
        super().__init__()
        if depth not in cfgs:
            raise ValueError(f"depth={depth} is not a VGG configuration; choose one of {sorted(cfgs)}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        cfg = cfgs[depth]
        n_blocks = cfg.count("M")
        dropped = _pools_to_drop(input_size, target_size, n_blocks - 1, drop_pool)

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        block, i, c_in = 1, 0, in_chans
        for v in cfg[:-1]:  # the last pool belongs to the embedding head
            if v == "M":
                if block not in dropped:
                    layers[f"pool{block}"] = nn.MaxPool2d(kernel_size=2, stride=2)
                block, i = block + 1, 0
                continue
            i += 1
            c_out = max(8, round(int(v) * width))
            layers[f"conv{block}_{i}"] = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=not batch_norm)
            if batch_norm:
                layers[f"bn{block}_{i}"] = nn.BatchNorm2d(c_out)
            # Not inplace: the target ReLU's output is captured and must not be mutated.
            layers[f"relu{block}_{i}"] = nn.ReLU(inplace=False)
            c_in = c_out
        self.features = nn.Sequential(layers)

        self.depth = depth
        self.batch_norm = batch_norm
        self.width = width
        self.input_size = input_size
        self.in_chans = in_chans
        self.dropped_pools: tuple[int, ...] = tuple(dropped)
        self.target_layer: str = f"features.relu{block}_{i}"
        self.num_channels: int = c_in
        self.target_size: tuple[int, int] = (target_size, target_size)
        self.embedding_dim: int = embedding_dim
        self.head = EmbeddingHead(c_in, self.target_size, embedding_dim, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch [B, in_chans, S, S] -> target map [B, C, 14, 14] (after ReLU)."""
        return self.features(x)

    def forward_head(self, feat: torch.Tensor) -> torch.Tensor:
        """Target map -> embedding [B, embedding_dim]."""
        return self.head(feat)


@register_model
def vgg13(**kwargs: Any) -> VGGFace:
    """VGG13 without BatchNorm; kwargs go to `VGGFace`."""
    return VGGFace(depth=13, batch_norm=False, **kwargs)


@register_model
def vgg13_bn(**kwargs: Any) -> VGGFace:
    """VGG13 with BatchNorm; kwargs go to `VGGFace`."""
    return VGGFace(depth=13, batch_norm=True, **kwargs)


@register_model
def vgg16(**kwargs: Any) -> VGGFace:
    """VGG16 without BatchNorm; kwargs go to `VGGFace`."""
    return VGGFace(depth=16, batch_norm=False, **kwargs)


@register_model
def vgg16_bn(**kwargs: Any) -> VGGFace:
    """VGG16 with BatchNorm; kwargs go to `VGGFace`."""
    return VGGFace(depth=16, batch_norm=True, **kwargs)


@register_model
def vgg19(**kwargs: Any) -> VGGFace:
    """VGG19 without BatchNorm; kwargs go to `VGGFace`."""
    return VGGFace(depth=19, batch_norm=False, **kwargs)


@register_model
def vgg19_bn(**kwargs: Any) -> VGGFace:
    """VGG19 with BatchNorm; kwargs go to `VGGFace`."""
    return VGGFace(depth=19, batch_norm=True, **kwargs)
