"""Identity folders, the LFW layout `root/<identity>/<image>` (docs/method.md §4): scanning, image decoding, a Dataset.

Labels are the positions of the identity folders in sorted order. Images are decoded to RGB and resized to the
model input here; detection and cropping belong to another module, which plugs in as `loader`. A bad file
(unreadable, truncated, not an image) never stops a run: it is skipped, remembered and named in a warning, or,
with `bad="raise"`, reported as a `ValueError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Literal, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from explainface.errors import InputError
from explainface.inputs import to_tensor
from explainface.readers.images import IMAGE_EXTENSIONS, is_label_map, load_image_rgb, resize_image

BadPolicy = Literal["skip", "raise"]
T = TypeVar("T")
#: A loader maps an image path to an RGB uint8 [H, W, 3] array, or None when the file is unusable.
Loader = Callable[[str], "np.ndarray | None"]


@dataclass
class FolderIndex:
    """The images under `root`: sorted identity names (label = position) and `(relative path, label)` items."""

    root: Path
    identities: list[str]
    items: list[tuple[str, int]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def path(self, i: int) -> Path:
        """Absolute path of item `i`."""
        return self.root / self.items[i][0]


def scan_identity_folders(
    root: str | os.PathLike,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    min_images_per_identity: int = 1,
) -> FolderIndex:
    """Index `root/<identity>/<image>`: identities sorted by name, images sorted by name within each identity.

    Skips hidden files and folders, our `*.parts.png` label maps, files whose extension (any case) is not in
    `extensions`, files directly under `root`, and identities with fewer than `min_images_per_identity` images;
    labels are re-numbered 0..N-1 over the identities kept. The order depends on names only, never on the file
    system, so every process and machine sees the same labels.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image folder root does not exist: {root}")
    if not root.is_dir():
        raise ValueError(f"image folder root is not a directory: {root}")
    exts = tuple(e.lower() for e in extensions)
    folders = sorted(e.name for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir())
    if not folders:
        raise ValueError(f"{root}: no identity folders (expected root/<identity>/<image>)")

    identities: list[str] = []
    items: list[tuple[str, int]] = []
    for name in folders:
        images = sorted(
            e.name
            for e in os.scandir(root / name)
            if not e.name.startswith(".")
            and e.name.lower().endswith(exts)
            and not is_label_map(e.name)
            and not e.is_dir()  # a FIFO or a broken link named like an image: listed, then skipped with its reason
        )
        if images and len(images) >= min_images_per_identity:
            items.extend((f"{name}/{image}", len(identities)) for image in images)
            identities.append(name)
    if not identities:
        wanted = f"at least {min_images_per_identity} images" if min_images_per_identity > 1 else "images"
        raise ValueError(f"{root}: no identity folder holds {wanted} with extensions {', '.join(exts)}")
    return FolderIndex(root, identities, items)


class NoUsableItems(InputError, RuntimeError):
    """Every item of a dataset is unusable: a user error (an `InputError`); a `RuntimeError` as it used to be."""


class BadItems:
    """Per-process record of unusable items: each is named in one warning and skipped, or raised (`bad="raise"`).

    A set per process is enough: every DataLoader worker keeps its own and warns on its own stderr.
    """

    def __init__(self, policy: BadPolicy, what: str = "file", where: str = "", dataset: str = "") -> None:
        if policy not in ("skip", "raise"):
            raise ValueError(f'bad must be "skip" or "raise", got {policy!r}')
        self.policy = policy
        self.what = what
        self.where = where
        self.dataset = dataset or where  # what the error says has no usable item left
        self.seen: set = set()

    def report(self, item: Hashable, problem: str, cause: BaseException | None = None) -> None:
        """Record `item` as bad; warn the first time it is seen, or raise `ValueError` under `bad="raise"`."""
        name = f"{self.what} {item}" + (f" in {self.where}" if self.where else "")
        for prefix in (f"{item}: ", f"{self.where}: "):  # the error may already start with the name
            problem = problem[len(prefix) :] if problem.startswith(prefix) else problem
        if self.policy == "raise":
            raise ValueError(f"bad {name}: {problem}") from cause
        if item not in self.seen:
            self.seen.add(item)
            warnings.warn(f"skipping bad {name}: {problem}", UserWarning, stacklevel=4)

    def first_good(self, i: int, n: int, key: Callable[[int], Hashable], load: Callable[[int], T]) -> T:
        """`load(j)` for the first j = i, i+1, ... (wrapping around) whose item is not bad; raise if none is."""
        for step in range(n):
            j = (i + step) % n
            item = key(j)
            if item in self.seen:
                continue
            try:
                return load(j)
            except Exception as e:  # any failure of one item (a custom loader's too) must not end a run
                problem = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e) or type(e).__name__
                self.report(item, problem, e)
        where = f"{self.dataset}: " if self.dataset else ""
        raise NoUsableItems(f"{where}no usable {self.what} left: all {n} items are bad")


class IdentityFolderDataset(Dataset):
    """`(image, label)` items (`(image, label, landmarks)` with ``landmarks=True``: see `_landmarks`) over identity
    folders: image float32 [3, size, size], RGB, mean 0.5 std 0.5 (docs/method.md §4.3).

    `loader(path)` returns RGB uint8 [H, W, 3] or None (default: decode the file); the result is resized to
    `size`. Unusable files follow `bad`: "skip" returns the next usable item (wrapping around) and names the file
    in a warning once per process; "raise" raises `ValueError` naming the file.
    """

    def __init__(
        self,
        root_or_index: str | os.PathLike | FolderIndex,
        size: int = 112,
        loader: Loader | None = None,
        bad: BadPolicy = "skip",
        landmarks: bool = False,
    ) -> None:
        self.with_landmarks = landmarks
        self._bad_pts: set[str] = set()
        self.index = root_or_index if isinstance(root_or_index, FolderIndex) else scan_identity_folders(root_or_index)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.loader = loader
        self._bad = BadItems(bad, "image file", dataset=str(self.index.root))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_classes(self) -> int:
        return len(self.index.identities)

    @property
    def identities(self) -> list[str]:
        return self.index.identities

    @property
    def labels(self) -> list[int]:
        """Label of every item, in item order (for samplers)."""
        return [label for _, label in self.index.items]

    @property
    def bad_files(self) -> frozenset[str]:
        """Paths found unusable in this process (each DataLoader worker has its own)."""
        return frozenset(self._bad.seen)

    def path(self, i: int) -> Path:
        return self.index.path(i)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        return self._bad.first_good(i % n, n, lambda j: str(self.index.path(j)), self._load)

    def _load(self, j: int) -> tuple[torch.Tensor, int]:
        path = str(self.index.path(j))
        if self.loader is None:
            image = load_image_rgb(path)
        else:
            image = self.loader(path)
            if image is None:
                raise ValueError(f"{path}: loader returned no image")
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"{path}: loader returned {image.dtype} {image.shape}, expected uint8 [H, W, 3]")
        out = to_tensor(np.ascontiguousarray(resize_image(image, self.size))), self.index.items[j][1]
        if self.with_landmarks:
            return (*out, self._landmarks(path, image.shape[1], image.shape[0]))
        return out

    def _landmarks(self, path: str, width: int, height: int) -> torch.Tensor:
        """The 68 landmarks of the `.pts` file beside image `path`, in the resized frame; NaN when there is none
        (or it is not 68 points, or they lie outside the image): a regulariser then places things through the mean
        face."""
        pts = Path(path).with_suffix(".pts")
        if pts.is_file():
            from explainface.readers.landmarks import check_landmarks_in_image, read_pts

            try:
                lm = np.asarray(read_pts(pts), dtype=np.float32)
                if lm.shape == (68, 2):  # a point at 1e9 would throw the occluder fit far off, silently
                    try:
                        check_landmarks_in_image(lm, width, height)
                    except ValueError as e:
                        raise ValueError(f"{pts}: {e}") from None
            except (OSError, ValueError) as e:  # the image is still good: warn once, train it with the mean face
                if str(pts) not in self._bad_pts:
                    self._bad_pts.add(str(pts))
                    warnings.warn(f"{e}; the face's landmarks are taken as unknown", UserWarning, stacklevel=2)
                lm = None
            if lm is not None and lm.shape == (68, 2):
                scale = np.array([self.size / width, self.size / height], dtype=np.float32)
                return torch.from_numpy((lm + 0.5) * scale - 0.5)
        return torch.full((68, 2), float("nan"))
