"""PyTorch datasets over the synthetic faces: training identities and disjoint held-out ones.

Train identities are numbered 0..N-1, held-out identities from
`HELDOUT_FIRST_IDENTITY` on, so the two never meet. Every item is rendered on
demand from (seed, identity, index): deterministic, independent of order, and
safe in DataLoader workers (each worker renders its own items).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from explainface.inputs import to_tensor
from explainface.synthetic.generator import HELDOUT_FIRST_IDENTITY, FaceSample, SyntheticFaces

Split = Literal["train", "heldout"]


def identity_numbers(split: Split, count: int) -> list[int]:
    """The generator identity numbers of a split: 0..count-1, or HELDOUT_FIRST_IDENTITY + 0..count-1."""
    if split not in ("train", "heldout"):
        raise ValueError(f'split must be "train" or "heldout", got {split!r}')
    if split == "train" and count > HELDOUT_FIRST_IDENTITY:
        raise ValueError(f"at most {HELDOUT_FIRST_IDENTITY} train identities")
    first = 0 if split == "train" else HELDOUT_FIRST_IDENTITY
    return list(range(first, first + count))


class SyntheticFaceDataset(Dataset):
    """`identities` x `per_identity` synthetic faces with class labels 0..identities-1.

    Items are ``(image, label)``, ``(image, label, landmarks)`` with ``landmarks=True``; with
    ``annotations=True`` they are dicts with
    ``image``, ``label``, ``identity``, ``index``, ``landmarks`` ([68, 2] float32,
    pixels) and ``parts`` ([S, S] int64 part labels).
    """

    def __init__(
        self,
        identities: int,
        per_identity: int,
        size: int = 112,
        seed: int = 0,
        difficulty: str | float = "medium",
        split: Split = "train",
        annotations: bool = False,
        landmarks: bool = False,
    ) -> None:
        if identities < 1 or per_identity < 1:
            raise ValueError(f"need at least one identity and one image each, got {identities} x {per_identity}")
        self.ids = identity_numbers(split, identities)
        self.per_identity = per_identity
        self.size = size
        self.split = split
        self.annotations = annotations
        self.landmarks = landmarks
        self.faces = SyntheticFaces(seed, difficulty)

    def __len__(self) -> int:
        return len(self.ids) * self.per_identity

    @property
    def num_classes(self) -> int:
        return len(self.ids)

    def locate(self, i: int) -> tuple[int, int, int]:
        """(label, generator identity, sample index) of item i."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        label, index = divmod(i, self.per_identity)
        return label, self.ids[label], index

    def sample(self, i: int) -> FaceSample:
        _, identity, index = self.locate(i)
        return self.faces.sample(identity, index, self.size)

    def __getitem__(self, i: int):
        label, identity, index = self.locate(i)
        s = self.faces.sample(identity, index, self.size)
        image = to_tensor(s.image)
        if not self.annotations:
            return (image, label, torch.from_numpy(s.landmarks)) if self.landmarks else (image, label)
        return {
            "image": image,
            "label": label,
            "identity": identity,
            "index": index,
            "landmarks": torch.from_numpy(s.landmarks),
            "parts": torch.from_numpy(s.parts.astype(np.int64)),
        }
