"""Identity folders, the LFW layout `root/<identity>/<image>` (SPEC §4): scanning, image decoding, a Dataset.

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

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from explainface.data.synthetic.dataset import to_tensor
from explainface.data.synthetic.export import PARTS_SUFFIX

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp")
BadPolicy = Literal["skip", "raise"]
T = TypeVar("T")
#: A loader maps an image path to an RGB uint8 [H, W, 3] array, or None when the file is unusable.
Loader = Callable[[str], "np.ndarray | None"]

_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"


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
            and not e.name.lower().endswith(PARTS_SUFFIX)
            and e.is_file()
        )
        if images and len(images) >= min_images_per_identity:
            items.extend((f"{name}/{image}", len(identities)) for image in images)
            identities.append(name)
    if not identities:
        wanted = f"at least {min_images_per_identity} images" if min_images_per_identity > 1 else "images"
        raise ValueError(f"{root}: no identity folder holds {wanted} with extensions {', '.join(exts)}")
    return FolderIndex(root, identities, items)


def jpeg_is_complete(data: bytes) -> bool:
    """Whether JPEG bytes reach their end-of-image marker (FFD9), i.e. the file is not truncated.

    Fast path: the data ends with FFD9, allowing trailing zero padding. Otherwise the markers are walked, so a
    complete image followed by a trailer (some cameras append data) still counts; an EOI inside an embedded
    thumbnail does not, because segments are skipped by their lengths.
    """
    if data.rstrip(b"\x00").endswith(_JPEG_EOI):
        return True
    n, pos = len(data), 2
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == 0xD9:
            return True
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker that is not FF00/RSTn
                while True:
                    pos = data.find(b"\xff", pos)
                    if pos < 0 or pos + 1 >= n:
                        return False
                    nxt = data[pos + 1]
                    if nxt == 0xFF:
                        pos += 1
                    elif nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                        pos += 2
                    else:
                        break
    return False


def decode_image_rgb(data: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, BMP, PGM/PPM, WebP) to RGB uint8 [H, W, 3]; greyscale becomes 3 channels.

    Raises `ValueError` naming `name` and the problem for empty, truncated or undecodable data. Older OpenCV
    builds decode a truncated JPEG with only a warning, hence the explicit end-of-image check.
    """
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise ValueError(f"{name}: empty file")
    if buf[:2].tobytes() == _JPEG_SOI and not jpeg_is_complete(buf.tobytes()):
        raise ValueError(f"{name}: truncated JPEG (no end-of-image marker)")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{name}: not a decodable image (corrupt, truncated or unsupported format)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray | None:
    """Read an image file as RGB uint8 [H, W, 3], or None when it is missing, unreadable, truncated or not an image.

    Reads through `np.fromfile` + `cv2.imdecode`, so non-ASCII paths work on every platform.
    """
    try:
        return _load_rgb(path)
    except (OSError, ValueError):
        return None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to `size` x `size`: INTER_AREA when shrinking (no aliasing), INTER_LINEAR when growing."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _load_rgb(path: str | os.PathLike) -> np.ndarray:
    """`read_image_rgb` that raises `OSError`/`ValueError` naming the file and the problem instead of returning None."""
    return decode_image_rgb(np.fromfile(os.fspath(path), np.uint8), str(path))


class BadItems:
    """Per-process record of unusable items: each is named in one warning and skipped, or raised (`bad="raise"`).

    A set per process is enough: every DataLoader worker keeps its own and warns on its own stderr.
    """

    def __init__(self, policy: BadPolicy, what: str = "file", where: str = "") -> None:
        if policy not in ("skip", "raise"):
            raise ValueError(f'bad must be "skip" or "raise", got {policy!r}')
        self.policy = policy
        self.what = what
        self.where = where
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
        raise RuntimeError(f"no usable {self.what} left: all {n} items are bad")


class IdentityFolderDataset(Dataset):
    """`(image, label)` items over identity folders: image float32 [3, size, size], RGB, mean 0.5 std 0.5 (SPEC §4).

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
    ) -> None:
        self.index = root_or_index if isinstance(root_or_index, FolderIndex) else scan_identity_folders(root_or_index)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.loader = loader
        self._bad = BadItems(bad, "image file")

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
            image = _load_rgb(path)
        else:
            image = self.loader(path)
            if image is None:
                raise ValueError(f"{path}: loader returned no image")
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"{path}: loader returned {image.dtype} {image.shape}, expected uint8 [H, W, 3]")
        return to_tensor(np.ascontiguousarray(resize_image(image, self.size))), self.index.items[j][1]
