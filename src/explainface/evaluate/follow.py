"""Do a network's target-layer channels follow the face? (beyond the paper; docs/ecloss_diagnosis.md)

On roughly aligned crops a channel that fires at a fixed place of the image, whatever the face does, scores like a
part detector on PE, LS and AR: its top-10% mask lands on the same part in most faces because the part is there in
most faces. It is not a detector: move the face and the detector's peak moves with it, the fixed channel's stays.

`peak_moves(a, b)` compares the peak (argmax cell) of every map of a face with the same channel's peak on the face
moved right by `shift` pixels; `follow_test` runs it on images: ``follows`` = share of maps whose peak moved by the
expected number of cells (shift x map width / input size, within half a cell), ``stays`` = share whose peak did not
move. Only maps active on both faces, whose peak row moved by at most one cell, count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

#: The default move: 16 px at 112 px input = 2 cells of a 14 x 14 map.
DEFAULT_SHIFT = 16


def peak_moves(a: torch.Tensor, b: torch.Tensor, expected_cells: float) -> dict:
    """Maps [N, C, H, W] of faces (a) and of the same faces moved right (b): follows / stays shares, mean move."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"need two [N, C, H, W] map tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    w = a.shape[-1]
    ia, ib = a.flatten(2).argmax(2), b.flatten(2).argmax(2)
    dx = (ib % w - ia % w).double()
    dy = (ib // w - ia // w).double()
    ok = (a.flatten(2).amax(2) > 0) & (b.flatten(2).amax(2) > 0) & (dy.abs() <= 1)
    n = int(ok.sum())
    if n == 0:
        return {"follows": float("nan"), "stays": float("nan"), "mean_move_cells": float("nan"), "maps": 0}
    return {
        "follows": float(((dx - expected_cells).abs() <= 0.5 + 1e-9)[ok].double().mean()),
        "stays": float((dx == 0)[ok].double().mean()),
        "mean_move_cells": float(dx[ok].mean()),
        "maps": n,
    }


def shift_right(image: np.ndarray, shift: int) -> np.ndarray:
    """An RGB image moved right by `shift` px, the left border replicated."""
    import cv2

    m = np.float32([[1, 0, shift], [0, 1, 0]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def follow_test(model, images: Sequence[np.ndarray], shift: int = DEFAULT_SHIFT, batch: int = 50,
                device: str = "cpu") -> dict:  # fmt: skip
    """`peak_moves` of a model (checkpoint path or module, see `load_model`) on model-input RGB images (resized to
    the model's input size where they differ)."""
    from explainface.inputs import to_tensor
    from explainface.models.capture import target_maps
    from explainface.readers.images import resize_image
    from explainface.training.checkpoint import load_model

    lm = load_model(model, device)
    if not images:
        raise ValueError("follow_test: no images")
    images = [resize_image(x, lm.input_size) for x in images]  # a no-op at the input size
    a, b = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            chunk = images[i : i + batch]
            for out, shown in ((a, chunk), (b, [shift_right(x, shift) for x in chunk])):
                x = torch.stack([to_tensor(im) for im in shown]).to(device)
                out.append(target_maps(lm.model, x, lm.layer).float().cpu())
    maps_a, maps_b = torch.cat(a), torch.cat(b)
    expected = shift * maps_a.shape[-1] / lm.input_size
    return {**peak_moves(maps_a, maps_b, expected), "shift_px": shift, "expected_cells": expected}


def follow_test_folder(model, folder: str | Path, limit: int = 200, shift: int = DEFAULT_SHIFT) -> dict:
    """`follow_test` on the first `limit` images of a folder of model-input crops (a synthetic export, a crop
    cache); images that cannot be read are skipped."""
    from explainface.readers.images import find_images, read_image_rgb

    images = []
    for p in find_images(Path(folder)):
        img = read_image_rgb(p)
        if img is not None:
            images.append(img)
        if len(images) == limit:
            break
    return {**follow_test(model, images, shift), "images": len(images)}
