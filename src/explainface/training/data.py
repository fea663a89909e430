"""Training data: datasets from the config, and a deterministic, resumable, sharded batch order.

The order of epoch e is a permutation seeded by (seed, e) alone, each rank
takes every world-th item of it, and a resumed run starts the epoch at the
batch it had reached: an interrupted run sees exactly the batches an
uninterrupted one would have seen.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from explainface.readers.pairs import PairList
from explainface.training.config import DataConfig, ValConfig


class ResumableBatches(Sampler[list[int]]):
    """Batch sampler: shuffled per (seed, epoch), sharded by rank, starting at a batch offset."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if n < batch_size * world:
            raise ValueError(f"{n} training images are fewer than one batch of {batch_size} x {world} processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.start = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return (self.n // self.world) // self.batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g)[self.rank :: self.world].tolist()
        b = self.batch_size
        for i in range(self.start, self.steps_per_epoch):
            yield order[i * b : (i + 1) * b]


def build_train_dataset(cfg: DataConfig, size: int, landmarks: bool = False) -> tuple[Dataset, int]:
    """(dataset of (image tensor, label), number of identities) for `cfg.kind`; with `landmarks`, items are
    (image, label, 68 landmarks [68, 2] in the input frame, NaN where unknown). ``images``: unlabelled faces under
    ``data.root`` (a folder or a list of folders), every label 0."""
    if cfg.kind == "synthetic":
        from explainface.synthetic import SyntheticFaceDataset

        ds = SyntheticFaceDataset(cfg.identities, cfg.per_identity, size=size, seed=cfg.seed, difficulty=cfg.difficulty,
                                  landmarks=landmarks)  # fmt: skip
        return ds, ds.num_classes
    if cfg.root is None:
        raise ValueError(f"data.kind={cfg.kind!r} needs data.root")
    if cfg.kind == "images":  # unlabelled: every image under one or more folders, all label 0
        from explainface.readers.unlabelled import UnlabelledImages

        ds = UnlabelledImages(cfg.root, size=size)
        return (UnknownLandmarks(ds) if landmarks else ds), ds.num_classes
    if isinstance(cfg.root, list):
        raise ValueError(f"data.kind={cfg.kind!r} reads one folder, data.root is a list: {cfg.root}")
    if cfg.kind == "folder":
        from explainface.readers.folders import IdentityFolderDataset, scan_identity_folders

        _check_crop_cache(Path(cfg.root), size)
        index = scan_identity_folders(cfg.root)
        return IdentityFolderDataset(index, size=size, landmarks=landmarks), len(index.identities)
    if cfg.kind == "recordio":
        from explainface.readers.recordio import RecordIODataset

        ds = RecordIODataset(cfg.root, size=size)
        return (UnknownLandmarks(ds) if landmarks else ds), ds.num_classes
    from explainface.training.config import DATA_KINDS

    raise ValueError(f"data.kind must be one of {', '.join(DATA_KINDS)}, got {cfg.kind!r}")


class UnknownLandmarks(Dataset):
    """(image, label) items + NaN landmarks, for data that carries none (RecordIO, unlabelled images)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        image, label = self.dataset[i]
        return image, label, torch.full((68, 2), float("nan"))


def _check_crop_cache(root: Path, size: int) -> None:
    """Warn when a crop cache (made by `explainface crop`) was made for another input size."""
    meta = root / "crop_meta.json"
    if meta.is_file():
        made = json.loads(meta.read_text()).get("size")
        if made is not None and int(made) != size:
            msg = f"{root}: crops were made at {made}px but the model takes {size}px; they will be resized"
            warnings.warn(msg, stacklevel=2)


def build_val_pairs(cfg: ValConfig, data: DataConfig, size: int) -> tuple[PairList, torch.Tensor] | None:
    """The validation pairs of the config and their images as model inputs ([N, 3, size, size], row i is
    `pairs.images[i]`): held-out synthetic identities, or a pair file (`read_pairs`) under `val.root`."""
    if not cfg.pairs:
        return None
    from explainface.inputs import to_tensor
    from explainface.readers.images import resize_image

    if cfg.pairs == "synthetic":
        from explainface.readers.lfw_pairs import make_pairs
        from explainface.readers.pairs import ImageRef, pairs_from_lfw
        from explainface.synthetic import SyntheticFaces, identity_numbers

        faces = SyntheticFaces(data.seed, data.difficulty)
        names = {f"id{i:05d}": cfg.heldout_per_identity for i in identity_numbers("heldout", cfg.heldout_identities)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fewer pairs per fold than LFW's 300 is expected here
            lfw = make_pairs(names, folds=10, per_fold=300, seed=data.seed)

        def render(name: str, k: int) -> ImageRef:
            return ImageRef.from_array(faces.sample(int(name[2:]), k - 1, size).image, f"synthetic/{name}/{k}")

        pl = pairs_from_lfw(lfw, render, "synthetic held-out identities")
    else:
        from explainface.readers.pairs import read_pairs

        if cfg.root is None:
            raise ValueError("val.pairs is a pairs file: val.root must name the (cropped) image folder")
        pl = read_pairs(cfg.pairs, root=cfg.root)  # images resolved (and missing ones named) there
    if pl.folds is None:  # no official folds: contiguous tenths, as the verification protocol assigns them
        pl.folds = np.arange(len(pl)) * 10 // len(pl)
    images = torch.stack([to_tensor(resize_image(ref.load_rgb(), size)) for ref in pl.images])
    return pl, images
