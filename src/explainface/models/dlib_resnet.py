"""dlib's face-recognition ResNet in PyTorch (``dlib_resnet``), with dlib's exact semantics.

dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (shipped, CC0, by the ``face_recognition_models`` package;
99.38% on LFW by dlib's account) maps a 150x150 aligned RGB chip to a 128-d embedding; two faces are the same
person when the Euclidean distance of their embeddings is below 0.6. Its weights are read by
`explainface.readers.dlib_dnn` (pure Python: dlib is not needed to load it). The network, input to output
(dlib's ``anet_type``; dlib's names ``alevel4`` .. ``alevel0`` are ``stage1`` .. ``stage5`` here):

* ``conv1`` 7x7/2 (no padding) -> ``affine1`` (per-channel scale and shift: dlib's batch norm at test time)
  -> ReLU -> max pool 3x3/2 (no padding): 32 x 35 x 35;
* ``stage1``: 3 blocks of 32 (35x35); ``stage2``: 4 of 64 (17x17); ``stage3``: 3 of 128 (8x8); ``stage4``: 3 of
  256 (4x4); ``stage5``: 1 of 256 (2x2). A block is conv 3x3 -> affine -> ReLU -> conv 3x3 -> affine, plus the
  shortcut, then ReLU. In the first block of stages 2-5 the first conv has stride 2 and **no padding**, and the
  shortcut is a 2x2/2 average pool (no padding) of the block's input; the sum **zero-pads the smaller tensor**
  (its missing channels, and its missing bottom rows and right columns: at 8x8 -> stride 2 the conv gives 3x3
  and the pool 4x4, so the sum is 4x4 with the conv's last row and column zero), as dlib's ``add_prev`` does;
* global average pool -> ``fc`` (256 -> 128, no bias): the embedding, not normalised.

Input: the project's standard tensor (`explainface.inputs.to_tensor`, [-1, 1]) of the 150 px chip; the
network turns it back into pixels and applies dlib's normalisation, ``(p - mean) / 256`` with the means
122.782, 117.001, 104.298 (R, G, B), so every pipeline feeds it as it feeds any other network.

Target layers: each stage's output (after its last block's ReLU: non-negative, on the main path, so the
embedding is a function of the target maps alone). The default, ``stage2`` (64 x 17 x 17), is chosen by
measurement (docs/decisions.md "dlib's ResNet: the target layer").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explainface.models.base import TargetMapNet
from explainface.models.registry import register_model
from explainface.readers.dlib_dnn import ANET_STAGES, DLIB_MEAN_RGB, DlibNet, anet_ops, read_dlib_net

__all__ = ["DlibResNet", "dlib_resnet", "DLIB_WEIGHTS", "load_dlib_weights", "to_dlib_net", "padded_add"]

#: The pretrained file, as the `face_recognition_models` package ships it.
DLIB_WEIGHTS = "dlib_face_recognition_resnet_model_v1.dat"
DEFAULT_TARGET = "stage2"
INPUT_SIZE = 150


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two [B, C, H, W] tensors of possibly different C, H, W, each zero-padded
    (extra channels, bottom rows, right columns) to the larger size."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class Affine(nn.Module):
    """Per-channel ``gamma * x + beta`` (dlib's ``affine`` layer in its convolutional mode)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class DlibBlock(nn.Module):
    """dlib's ``ares`` (identity shortcut) or ``ares_down`` (stride 2, average-pooled shortcut)."""

    def __init__(self, c_in: int, c_out: int, down: bool) -> None:
        super().__init__()
        stride, pad = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, pad)
        self.affine1 = Affine(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.affine2 = Affine(c_out)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(padded_add(y, shortcut))


class DlibResNet(TargetMapNet):
    """dlib's face ResNet (module docstring); `stages` and `stem` shrink it for tests (same structure)."""

    def __init__(self, target_layer: str = DEFAULT_TARGET, stages=ANET_STAGES, stem: int = 32,
                 embedding_dim: int = 128, mean_rgb=DLIB_MEAN_RGB) -> None:  # fmt: skip
        super().__init__()
        self.stage_names = [f"stage{i + 1}" for i in range(len(stages))]
        if target_layer not in self.stage_names:
            raise ValueError(f"dlib_resnet's target layer must be one of {', '.join(self.stage_names)}, "
                             f"got {target_layer!r}")  # fmt: skip
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 0)
        self.affine1 = Affine(stem)
        c_in = stem
        for name, (c_out, down, blocks) in zip(self.stage_names, stages):
            self.add_module(name, nn.Sequential(*(DlibBlock(c_in if b == 0 else c_out, c_out, down and b == 0)
                                                  for b in range(blocks))))  # fmt: skip
            c_in = c_out
        self.fc = nn.Linear(c_in, embedding_dim, bias=False)
        self.register_buffer("pixel_mean", torch.tensor(mean_rgb, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)  # fmt: skip
        self.target_layer = target_layer
        self.target_layers = tuple(self.stage_names)
        self.face_crop = "chip"  # photos are cut as dlib's aligned chips (`faces.crop.model_cut`)
        self.embedding_dim = embedding_dim
        self.input_size = INPUT_SIZE
        self.in_chans = 3
        self.width = 1.0
        self._split = self.stage_names.index(target_layer) + 1

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The project's [-1, 1] input -> dlib's ``(pixel - mean) / 256``."""
        return ((x + 1.0) * 127.5 - self.pixel_mean) / 256.0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.affine1(self.conv1(self.normalize(x)))), 3, 2)
        for name in self.stage_names[: self._split]:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, feat: torch.Tensor) -> torch.Tensor:
        for name in self.stage_names[self._split :]:
            feat = getattr(self, name)(feat)
        return self.fc(feat.mean(dim=(2, 3)))

    def parametrised(self) -> list[tuple[str, nn.Module]]:
        """The convs, affines and fc in dlib's order (input to output): the order of the file's arrays."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, (nn.Conv2d, Affine, nn.Linear))]


def load_dlib_weights(model: DlibResNet, net: DlibNet, name: str = "the dlib network") -> DlibResNet:
    """Copy a parsed dlib network's arrays into `model` (shapes checked; the error names `name`)."""
    arrays = [net.params[i] for i in sorted(net.params)]
    layers = model.parametrised()
    if len(arrays) != len(layers):
        raise ValueError(f"{name}: {len(arrays)} parametrised layers, the network has {len(layers)}")
    with torch.no_grad():
        for (lname, layer), p in zip(layers, arrays):
            if isinstance(layer, nn.Linear):
                pairs = [(layer.weight, p["weight"].T)]
            elif isinstance(layer, Affine):
                pairs = [(layer.weight, p["gamma"]), (layer.bias, p["beta"])]
            else:
                pairs = [(layer.weight, p["weight"]), (layer.bias, p["bias"])]
            for param, value in pairs:
                if tuple(param.shape) != value.shape:
                    raise ValueError(f"{name}: {lname} has shape {value.shape}, the network's is {tuple(param.shape)}")
                param.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    model.pixel_mean.copy_(torch.tensor(net.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
    return model


def to_dlib_net(model: DlibResNet, stages=ANET_STAGES, stem: int = 32) -> DlibNet:
    """`model`'s weights as a `DlibNet` (for `readers.dlib_dnn.write_dlib_net`: a fine-tuned network back in
    dlib's format, which dlib's own ``face_recognition_model_v1`` loads)."""
    ops = anet_ops(stages, stem, model.embedding_dim)
    slots = [i for i, op in enumerate(ops) if op.kind in ("con", "affine", "fc")]
    net = DlibNet(ops=ops, mean_rgb=tuple(float(v) for v in model.pixel_mean.view(-1)))
    for i, (_, layer) in zip(slots, model.parametrised()):
        w = layer.weight.detach().cpu().float().numpy()
        if isinstance(layer, nn.Linear):
            net.params[i] = {"weight": np.ascontiguousarray(w.T)}
        elif isinstance(layer, Affine):
            net.params[i] = {"gamma": w.copy(), "beta": layer.bias.detach().cpu().float().numpy().copy()}
        else:
            net.params[i] = {"weight": w.copy(), "bias": layer.bias.detach().cpu().float().numpy().copy()}
    return net


def _weights_path(weights: str | os.PathLike) -> Path:
    if str(weights) != "dlib":
        return Path(weights)
    from explainface.faces.detect import face_recognition_model_path

    try:
        return face_recognition_model_path(DLIB_WEIGHTS)
    except (ImportError, FileNotFoundError) as e:
        raise ValueError(f"dlib_resnet's pretrained weights: {e}") from None


@register_model
def dlib_resnet(width: float = 1.0, input_size: int = INPUT_SIZE, embedding_dim: int = 128, dropout: float = 0.0,
                weights: str | os.PathLike | None = "dlib", target_layer: str = DEFAULT_TARGET,
                **_: Any) -> DlibResNet:  # fmt: skip
    """dlib's pretrained face ResNet. `weights`: "dlib" (the file `face_recognition_models` ships), a path to
    a dlib ``.dat`` of this architecture, or None (untrained, e.g. to load a checkpoint into). Its shape is
    fixed: `width` 1, `input_size` 150, `embedding_dim` 128 (other values are refused); `dropout` must be 0."""
    if width != 1.0 or input_size != INPUT_SIZE or embedding_dim != 128 or dropout:
        raise ValueError(f"dlib_resnet is dlib's pretrained network: width 1, input_size {INPUT_SIZE}, "
                         f"embedding_dim 128, dropout 0 (got {width:g}, {input_size}, {embedding_dim}, {dropout:g})")
    model = DlibResNet(target_layer=target_layer)
    if weights is not None and str(weights).lower() != "none":
        path = _weights_path(weights)
        load_dlib_weights(model, read_dlib_net(path), name=str(path))
    return model


dlib_resnet.fixed = {"width": 1.0, "input_size": INPUT_SIZE, "embedding_dim": 128}
