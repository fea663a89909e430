"""insightface's iresnet face backbones (iresnet18/34/50/100) with a 14x14 target layer.

The layout of insightface's ``recognition/arcface_torch/backbones/iresnet.py`` (the "improved" residual
network of ArcFace, Deng et al., CVPR 2019: LResNet-E-IR), read for its layout only; the code here is our own.

* stem: ``conv1`` (3x3, stride 1, no bias) -> ``bn1`` -> ``prelu``;
* ``layer1`` .. ``layer4``: ``[2, 2, 2, 2]``, ``[3, 4, 6, 3]``, ``[3, 4, 14, 3]``, ``[3, 13, 30, 3]`` blocks of
  64 / 128 / 256 / 512 channels (times ``width``), stride 2 in the first block of each stage;
* `IBasicBlock`: ``bn1 -> conv1 (3x3) -> bn2 -> prelu -> conv2 (3x3, the stage's stride) -> bn3``, plus the
  shortcut: ``downsample`` = ``conv1x1 (stride) + BN`` in the first block of each stage, the identity in the
  others; no activation after the sum;
* head: ``bn2`` (BatchNorm2d) -> flatten -> ``dropout`` -> ``fc`` (linear, with bias) -> ``features``
  (BatchNorm1d whose scale is fixed at 1, as theirs: ``features.weight`` does not train).

**Their checkpoints load into ours.** The parameter and buffer names and shapes are theirs (``conv1``, ``bn1``,
``prelu``, ``layer{1..4}.{i}.{bn1,conv1,bn2,prelu,conv2,bn3,downsample.0,downsample.1}``, ``bn2``, ``fc``,
``features``), so at ``width=1``, ``input_size=112``, ``embedding_dim=512`` an arcface_torch ``state_dict``
loads with ``strict=True`` (tested against the key list derived from their constructor). The *function* is
theirs only with ``target_act="none"``: the default puts a ReLU (``act3``, no parameters, see below) between
``layer3`` and ``layer4``, which their network does not have. Their models also expect aligned 112 px faces
normalised as ``(x / 255 - 0.5) / 0.5`` (the same normalisation as our data; our crops are not aligned).

**Target layer: ``act3``, a ReLU on the output of ``layer3``** (decision, docs/decisions.md "iresnet
backbones"). At 112 px ``layer3`` runs at 14x14. Why this module:

* it is on the main path: the embedding is a function of the target map alone, so `forward_features` /
  `forward_head` split the network there (the trainer's `forward_with_features`, ``why``'s channel ablation,
  the xCos pair head and Grad-CAM all read the same maps the embedding is computed from). The PReLU inside the
  last block of ``layer3`` is not: the block's output also carries the shortcut, so ablating or shaping those
  maps would explain only part of what ``layer4`` sees;
* it is non-negative, which ECLoss and the metrics assume: the templates' negative entries (the no-peak
  template ``-tau`` everywhere, one-peak tails down to ``-tau``) would reward a *signed* map for negative mass
  (the no-peak logit ``-tau * sum(x)`` grows without bound as a map goes negative), the peak count filters at
  0, the top-10% masks, ECLoss-fit's cosine and Yin's truncation ``|x| = x`` all read maps after a ReLU. The
  raw block output (the residual sum) and a PReLU are signed.
* the original ResNet has a ReLU after every residual sum, so one after ``layer3`` is an ordinary design.

The paper's caveat remains: through the shortcuts the map mixes the patterns of all earlier blocks (the paper
chose VGG for that reason); an iresnet target channel is a channel of the residual stream, not of one conv.
`losses.yin.target_conv` (the last ``Conv2d`` registered before the target) is ``layer3.{last}.conv2``, the
conv whose output the last block adds to that stream. ``target_act="none"`` makes ``act3`` an identity (the
target is then ``layer3``'s signed output and the network is exactly theirs, e.g. to evaluate their weights);
trained models use the default. ``added_layers`` names what this port adds to their function (``("act3",)`` with
the ReLU): the config's ``model.identity_layers`` and the retrofit's preservation reference take it out again
(`explainface.models.layers.replace_with_identity`; docs/decisions.md "The retrofit").

Input sizes: 112 (theirs) and 224 (consistent with the VGGs): ``input_size`` must be ``target_size`` (14) times
a power of two up to 16. At 224 the stem conv has stride 2; below 112 the stage strides before the target are
set to 1 from ``layer3`` backwards (56: ``layer3``'s; 28: also ``layer2``'s), as the VGGs drop pools
backwards. ``layer4`` always halves the map (7x7 at the embedding), so ``fc`` has the same shape at every
input size, and every stage's first block keeps its ``downsample`` (as at 112), so the names never depend on
the input size. ``width`` multiplies the channels as the VGGs' (``max(8, round(c * width))``).

Initialisation (ours, not theirs): Kaiming-normal convs (fan-out), BatchNorm 1 / 0, ``fc`` normal(0, 0.01)
with zero bias, PReLU slopes 0.25 (PyTorch's default, as theirs). Their convs are normal(0, 0.1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from explainface.models.base import TargetMapNet
from explainface.models.registry import register_model

#: Blocks per stage, keyed by depth (insightface's iresnet18/34/50/100).
LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
}
#: Channels of the four stages at width 1 (the stem has the first stage's).
STAGE_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 512)
#: What follows ``layer3`` (the target module ``act3``): a ReLU (default) or nothing (their network).
TARGET_ACTS = ("relu", "none")


def _channels(c: int, width: float) -> int:
    return max(8, round(c * width))


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def _strides(input_size: int, target_size: int) -> tuple[int, int, int, int]:
    """Strides of (stem, layer1, layer2, layer3) that bring `input_size` to `target_size` at ``layer3``."""
    ratio = input_size / target_size
    n = round(math.log2(ratio)) if ratio >= 1 else -1
    if input_size % target_size or n < 0 or 2**n != ratio:
        raise ValueError(
            f"input_size={input_size} must be target_size={target_size} times a power of two "
            f"(e.g. 112 or 224 for a 14x14 target map)"
        )
    if n > 4:
        raise ValueError(
            f"input_size={input_size} needs {n} halvings before the target layer to reach "
            f"{target_size}x{target_size}, but iresnet has 4 (the stem at 224, layer1-3)"
        )
    stages = tuple(2 if i < n else 1 for i in range(3))
    return (2 if n == 4 else 1, *stages)  # type: ignore[return-value]


class StridedConv1x1(nn.Conv2d):
    """A 1x1 convolution (no padding) with a stride, computed as the stride-1 convolution of the subsampled
    input ``x[:, :, ::s, ::s]``: the same numbers, the same parameters and attributes as ``nn.Conv2d``.

    Why: with torch 2.13's CPU build (oneDNN), the backward pass of a stride-2 1x1 convolution on a
    channels-last input with few channels (8 or fewer at 56 or 112 px, measured; the trainer uses channels-last
    on the CPU) corrupts the heap and kills the process. The stride-1 form does not.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size=1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride
        if (sh, sw) != (1, 1):
            x = x[:, :, ::sh, ::sw]
        return F.conv2d(x, self.weight, self.bias, 1, 0, self.dilation, self.groups)


class IBasicBlock(nn.Module):
    """insightface's residual unit: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus the shortcut.

    `downsample` (conv1x1 with the stride, `StridedConv1x1`, + BN) when asked, else the identity (then stride 1,
    same channels). No activation after the sum.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, downsample: bool = False) -> None:
        super().__init__()
        if not downsample and (stride != 1 or c_in != c_out):
            raise ValueError(f"an identity shortcut needs stride 1 and c_in == c_out, got {stride}, {c_in}, {c_out}")
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = _conv3x3(c_in, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.prelu = nn.PReLU(c_out)
        self.conv2 = _conv3x3(c_out, c_out, stride)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Sequential | None = None
        if downsample:
            self.downsample = nn.Sequential(StridedConv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut  # not in place: hooks may hold `out`


class IResNetFace(TargetMapNet):
    """insightface's iresnet18/34/50/100 whose target layer is ``act3``, a ReLU after ``layer3`` (module docstring).

    Exposes what `VGGFace` exposes: `target_layer`, `num_channels`, `target_size`, `embedding_dim`,
    `input_size`, `in_chans`, `width`, `forward_features` (image -> target map), `forward_head` (target map ->
    embedding), `forward_with_features`.
    """

    def __init__(
        self,
        depth: int = 50,
        width: float = 1.0,
        input_size: int = 112,
        embedding_dim: int = 512,
        dropout: float = 0.0,
        in_chans: int = 3,
        target_size: int = 14,
        target_act: str = "relu",
    ) -> None:
        super().__init__()
        if depth not in LAYERS:
            raise ValueError(f"depth={depth} is not an iresnet configuration; choose one of {sorted(LAYERS)}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if target_act not in TARGET_ACTS:
            raise ValueError(f"target_act={target_act!r}: choose one of {', '.join(TARGET_ACTS)}")
        strides = _strides(input_size, target_size)
        channels = [_channels(c, width) for c in STAGE_CHANNELS]

        # Registration order is forward order (`losses.yin.target_conv` relies on it).
        self.conv1 = nn.Conv2d(in_chans, channels[0], kernel_size=3, stride=strides[0], padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.prelu = nn.PReLU(channels[0])
        c_in = channels[0]
        for i, (c_out, blocks, stride) in enumerate(zip(channels, LAYERS[depth], (*strides[1:], 2)), start=1):
            layer = [IBasicBlock(c_in, c_out, stride, downsample=True)]
            layer += [IBasicBlock(c_out, c_out) for _ in range(blocks - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*layer))
            if i == 3:
                # Not inplace: the target's output is captured and must not be mutated.
                self.add_module("act3", nn.ReLU(inplace=False) if target_act == "relu" else nn.Identity())
            c_in = c_out
        out_size = (target_size - 1) // 2 + 1  # layer4's stride-2 conv (padding 1) and 1x1 shortcut
        self.bn2 = nn.BatchNorm2d(c_in)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in * out_size * out_size, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim)

        self.depth = depth
        self.layers: tuple[int, ...] = LAYERS[depth]
        self.width = width
        self.input_size = input_size
        self.in_chans = in_chans
        self.strides: tuple[int, ...] = (*strides, 2)  # stem, layer1 .. layer4
        self.target_act = target_act
        #: Parameter-free layers this port adds to insightface's network (identities there: their function).
        self.added_layers: tuple[str, ...] = ("act3",) if target_act == "relu" else ()
        self.target_layer: str = "act3"
        self.num_channels: int = channels[2]
        self.target_size: tuple[int, int] = (target_size, target_size)
        self.embedding_dim: int = embedding_dim
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        # theirs: the embedding's BatchNorm keeps scale 1 (a buffer in effect, a parameter by name)
        self.features.weight.requires_grad_(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch [B, in_chans, S, S] -> target map [B, C, 14, 14] (``act3``: after the ReLU)."""
        x = self.prelu(self.bn1(self.conv1(x)))
        return self.act3(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, feat: torch.Tensor) -> torch.Tensor:
        """Target map -> embedding [B, embedding_dim]: layer4, bn2, flatten, dropout, fc, features."""
        x = torch.flatten(self.bn2(self.layer4(feat)), 1)
        return self.features(self.fc(self.dropout(x)))


@register_model
def iresnet18(**kwargs: Any) -> IResNetFace:
    """insightface's iresnet18 ([2, 2, 2, 2]); kwargs go to `IResNetFace`."""
    return IResNetFace(depth=18, **kwargs)


@register_model
def iresnet34(**kwargs: Any) -> IResNetFace:
    """insightface's iresnet34 ([3, 4, 6, 3]); kwargs go to `IResNetFace`."""
    return IResNetFace(depth=34, **kwargs)


@register_model
def iresnet50(**kwargs: Any) -> IResNetFace:
    """insightface's iresnet50 ([3, 4, 14, 3]); kwargs go to `IResNetFace`."""
    return IResNetFace(depth=50, **kwargs)


@register_model
def iresnet100(**kwargs: Any) -> IResNetFace:
    """insightface's iresnet100 ([3, 13, 30, 3]); kwargs go to `IResNetFace`."""
    return IResNetFace(depth=100, **kwargs)
