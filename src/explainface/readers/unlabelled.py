"""Unlabelled faces: every image under one or more folders (recursive), as a Dataset of ``(image, 0)``.

For training without an identity loss (``data.kind: images``, ``head.name: none``: the retrofit), where any folder
of face crops will do: no identity layout, no labels. Images are found by `readers.images.find_images` (sorted by
path, our ``*.parts.png`` label maps left out), decoded to RGB and resized to the model input, as the identity-folder
reader does; a bad file is skipped, named in one warning, never fatal (`readers.folders.BadItems`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from explainface.errors import InputError
from explainface.inputs import to_tensor
from explainface.readers.folders import BadItems
from explainface.readers.images import IMAGE_EXTENSIONS, find_images, load_image_rgb, resize_image


def find_face_images(folders: str | os.PathLike | list[str | os.PathLike]) -> list[Path]:
    """Every image under `folders` (one or a list; recursive), sorted by folder then path, each file once. An
    `InputError` names a folder that is missing, not a folder, or holds no image."""
    roots = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    if not roots:
        raise InputError("no face folders given")
    paths: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"face folder not found: {root}")
        if not root.is_dir():
            raise InputError(f"{root}: not a folder of face images")
        found = find_images(root)
        if not found:
            raise InputError(f"{root}: holds no face images (looked recursively for {', '.join(IMAGE_EXTENSIONS)})")
        paths.update(dict.fromkeys(p.resolve() for p in found))
    return list(paths)


class UnlabelledImages(Dataset):
    """``(image, 0)`` items over every image under `folders`: float32 [3, size, size], RGB in [-1, 1]
    (docs/method.md §4.3). Unusable files are skipped (the next usable one is returned) and named in a warning."""

    num_classes = 1

    def __init__(self, folders: str | os.PathLike | list[str | os.PathLike], size: int = 112) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.paths = find_face_images(folders)
        self.size = size
        roots = [folders] if isinstance(folders, (str, os.PathLike)) else folders
        self._bad = BadItems("skip", "image file", dataset=", ".join(str(f) for f in roots))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        return self._bad.first_good(i % n, n, lambda j: str(self.paths[j]), self._load)

    def _load(self, j: int) -> tuple[torch.Tensor, int]:
        image = load_image_rgb(str(self.paths[j]))
        return to_tensor(np.ascontiguousarray(resize_image(image, self.size))), 0
