"""Slow, obvious float64 references for dlib's network semantics (issue 23): convolution, pools without padding,
the zero-padding residual add, and an interpreter of a dlib op list with its tag registers."""

from __future__ import annotations

import numpy as np

from explainface.readers.dlib_dnn import DlibNet


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """[C, H, W] * [O, C, k, k] + [O], cross-correlation, zero padding `pad`, loops over output pixels."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    ho, wo = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2])) + b
    return out


def pool(x: np.ndarray, k: int, stride: int, reduce) -> np.ndarray:
    """Max or average pool of [C, H, W], window k, no padding (k = 0: the whole map)."""
    if k == 0:
        return reduce(x.reshape(x.shape[0], -1), axis=1)[:, None, None]
    ho, wo = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = x[:, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, i, j] = reduce(window.reshape(x.shape[0], -1), axis=1)
    return out


def padded_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's add_prev: zeros of the larger size, then each tensor added into its top-left corner."""
    out = np.zeros(tuple(max(s, t) for s, t in zip(a.shape, b.shape)))
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out


def run_net(net: DlibNet, pixels: np.ndarray) -> np.ndarray:
    """The embedding of one image (uint8-valued [H, W, 3] RGB) by interpreting `net.ops` in float64."""
    x = (pixels.astype(np.float64) - np.array(net.mean_rgb, dtype=np.float64)) / 256.0
    x = x.transpose(2, 0, 1)
    tags: dict[int, np.ndarray] = {}
    for i, op in enumerate(net.ops):
        p = {k: v.astype(np.float64) for k, v in net.params.get(i, {}).items()}
        if op.kind == "con":
            x = conv2d(x, p["weight"], p["bias"], op.args[3], op.args[5])
        elif op.kind == "affine":
            x = x * p["gamma"][:, None, None] + p["beta"][:, None, None]
        elif op.kind == "relu":
            x = np.maximum(x, 0.0)
        elif op.kind == "max_pool":
            x = pool(x, op.args[0], op.args[2], np.max)
        elif op.kind == "avg_pool":
            x = pool(x, op.args[0], op.args[2], np.mean)
        elif op.kind == "tag":
            tags[op.args[0]] = x
        elif op.kind == "skip":
            x = tags[op.args[0]]
        elif op.kind == "add_prev":
            x = padded_add(x, tags[op.args[0]])
        elif op.kind == "fc":
            x = x.reshape(-1) @ p["weight"]
        else:
            raise ValueError(op.kind)
    return x
