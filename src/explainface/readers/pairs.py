"""Verification pair sources (docs/method.md §5.1) read into one structure, `PairList`, so verification has one
input type.

Sources, chosen by suffix in `read_pairs`:

* `.txt`: LFW `pairs.txt`; images at `root/name/name_0001.jpg` (any image extension), the official folds kept.
* `.bin`: insightface pair file, a pickle of `(list_of_encoded_images, issame_list)` where pair i is images
  2i and 2i+1. Read with an unpickler that refuses every global (Python 3's byte-string constructors aside, which
  a bytes-only stand-in replaces), so a `.bin` from the internet cannot run code (`readers.insightface_bin`).
* `.csv`: `path_a,path_b,same` (header optional); folds are left to the protocol.
* a folder: the CFP release (`explainface.readers.cfp`), CFP-FF or CFP-FP with its 10 official folds.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from explainface.errors import InputError
from explainface.readers.images import IMAGE_EXTENSIONS, decode_image_rgb, load_image_rgb
from explainface.readers.lfw_pairs import LfwPair, read_lfw_pairs, read_text

PAIR_FILE_SUFFIXES = (".txt", ".bin", ".csv")
_TRUE, _FALSE = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f"}
_MISSING_SHOWN = 5


@dataclass(frozen=True)
class ImageRef:
    """One image of a pair list: a file (`path`), encoded bytes held in memory (`data`, from a `.bin`), or a
    decoded RGB array (`array`, a rendered synthetic face).

    `name` is what messages call it: the path, `file.bin[i]` for the i-th image of a `.bin`, or the face's name.
    """

    name: str
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    array: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.path, self.data, self.array)) != 1:
            raise ValueError(f"{self.name}: an ImageRef needs exactly one of path, data and array")

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> ImageRef:
        return cls(name=str(path), path=Path(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> ImageRef:
        return cls(name=name, data=bytes(data))

    @classmethod
    def from_array(cls, rgb: np.ndarray, name: str) -> ImageRef:
        """A decoded uint8 RGB [H, W, 3] image (`load_rgb` returns it as it is)."""
        return cls(name=name, array=rgb)

    def load_rgb(self, max_side: int | None = None) -> np.ndarray:
        """Decode to RGB uint8 [H, W, 3]; `OSError`/`ValueError` name the file or the `.bin` entry. `max_side`
        decodes a large image reduced by 2, 4 or 8, its long side kept >= `max_side` (`images.decode_image_rgb`)."""
        if self.path is not None:
            return load_image_rgb(self.path, max_side)
        if self.array is not None:
            return self.array
        return decode_image_rgb(self.data, self.name, max_side)


@dataclass
class PairList:
    """Pairs as indices into a list of unique images: pair k compares `images[a[k]]` with `images[b[k]]`.

    `folds` holds the official fold of each pair where the source defines folds (LFW `pairs.txt` with two or
    more folds), else None and the protocol assigns contiguous folds.
    """

    images: list[ImageRef]
    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    folds: np.ndarray | None
    source: str

    def __post_init__(self) -> None:
        self.a = np.asarray(self.a, dtype=np.int64)
        self.b = np.asarray(self.b, dtype=np.int64)
        self.same = np.asarray(self.same, dtype=bool)
        if self.folds is not None:
            self.folds = np.asarray(self.folds, dtype=np.int64)
        n = len(self.a)
        shapes = [x.shape for x in (self.a, self.b, self.same) + ((self.folds,) if self.folds is not None else ())]
        if any(s != (n,) for s in shapes):
            raise ValueError(f"{self.source}: a, b, same (and folds) must be 1-D of one length, got {shapes}")
        if n and (min(self.a.min(), self.b.min()) < 0 or max(self.a.max(), self.b.max()) >= len(self.images)):
            raise ValueError(f"{self.source}: pair indices outside 0..{len(self.images) - 1}")

    def __len__(self) -> int:
        return len(self.a)


def read_pairs(path: str | os.PathLike, root: str | os.PathLike | None = None, protocol: str | None = None) -> PairList:
    """Read a pair file by its suffix: LFW `.txt`, insightface `.bin` or `.csv` (see the module docstring); a
    folder is a CFP release (`explainface.readers.cfp`: its root or `Protocol/` with `protocol="FF"|"FP"`, or
    `Protocol/Split/FF|FP`).

    `root` is where `.txt` identity folders and relative `.csv` paths live (default: the pair file's folder);
    `.bin` files hold their images and ignore it. Raises `FileNotFoundError` naming the pair file and the first
    missing images, `ValueError` naming the file for malformed content or a `.bin` that asks for any global.
    """
    path = Path(path)
    if path.is_dir():
        from explainface.readers.cfp import read_cfp_pairs

        return read_cfp_pairs(path, protocol)
    if protocol is not None:
        raise ValueError(f"{path}: a protocol ({protocol!r}) is only for CFP folders; this is a pair file")
    suffix = path.suffix.lower()
    if suffix not in PAIR_FILE_SUFFIXES:
        raise ValueError(f"{path}: unknown pair file type {path.suffix!r}; expected one of {PAIR_FILE_SUFFIXES}")
    if not _is_file(path):
        from explainface.files import regular_file

        regular_file(path, "pair file")  # not found, or a FIFO / device: named, never opened
    root = Path(root) if root is not None else path.parent
    if suffix == ".txt":
        pairs = _read_lfw(path, root)
    elif suffix == ".bin":
        from explainface.readers.insightface_bin import read_bin_pairs

        pairs = read_bin_pairs(path)
    else:
        pairs = _read_csv(path, root)
    if len(pairs) == 0:
        raise ValueError(f"{path}: no pairs")
    return pairs


def _is_file(path: Path) -> bool:
    """`Path.is_file` that is False for paths the OS refuses (a name too long, an embedded NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


# ---- LFW pairs.txt ---------------------------------------------------------------------------------------------


def pairs_from_lfw(pairs: Sequence[LfwPair], locate: Callable[[str, int], ImageRef], source: str) -> PairList:
    """A `PairList` from LFW-style pairs (identity name + 1-based image index): each distinct image once, found by
    `locate(name, index)`, in order of first use. Folds are the pairs' own where there are two or more
    (pairsDevTrain/DevTest have one fold: no official split to cross-validate on, so the protocol assigns them)."""
    index: dict[tuple[str, int], int] = {}
    a, b = [], []
    for p in pairs:
        for key, out in (((p.name_a, p.index_a), a), ((p.name_b, p.index_b), b)):
            if key not in index:
                index[key] = len(index)
            out.append(index[key])
    images = [locate(name, k) for name, k in index]
    n_folds = max(p.fold for p in pairs) + 1 if pairs else 0
    folds = np.array([p.fold for p in pairs]) if n_folds >= 2 else None
    return PairList(images, np.array(a), np.array(b), np.array([p.same for p in pairs]), folds, source)


def _read_lfw(path: Path, root: Path) -> PairList:
    listings: dict[str, dict[str, str]] = {}  # identity -> stem -> file name, read once per folder
    missing: list[Path] = []

    def locate(name: str, k: int) -> ImageRef:
        if name not in listings:
            listings[name] = _image_stems(root / name)
        stem = f"{name}_{k:04d}"
        file = listings[name].get(stem)
        if file is None:
            missing.append(root / name / f"{stem}.jpg")
            return ImageRef.from_path(root / name / f"{stem}.jpg")
        return ImageRef.from_path(root / name / file)

    pairs = pairs_from_lfw(read_lfw_pairs(path), locate, str(path))
    if missing:
        _raise_missing(path, missing, f"(looked for {', '.join(IMAGE_EXTENSIONS)} under {root})")
    return pairs


def _image_stems(folder: Path) -> dict[str, str]:
    """Image files in a folder by stem; where one stem has several extensions, IMAGE_EXTENSIONS order wins."""
    try:
        names = os.listdir(folder)
    except (OSError, ValueError):  # missing, not a folder, or a name the OS refuses (a NUL byte)
        return {}
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    found: dict[str, str] = {}
    for file in sorted(names, key=lambda f: rank.get(os.path.splitext(f)[1].lower(), len(rank))):
        stem, ext = os.path.splitext(file)
        if ext.lower() in rank:
            found.setdefault(stem, file)
    return found


def _raise_missing(path: Path, missing: Sequence[Path], hint: str = "") -> None:
    shown = "".join(f"\n  {m}" for m in missing[:_MISSING_SHOWN])
    more = f"\n  ... and {len(missing) - _MISSING_SHOWN} more" if len(missing) > _MISSING_SHOWN else ""
    hint = f" {hint}" if hint else ""
    raise FileNotFoundError(f"{path}: {len(missing)} image(s) not found{hint}:{shown}{more}")


# ---- CSV ---------------------------------------------------------------------------------------------------------


def _parse_same(value: str) -> bool | None:
    v = value.strip().lower()
    return True if v in _TRUE else False if v in _FALSE else None


def _read_csv(path: Path, root: Path) -> PairList:
    text = read_text(path, "pair CSV")  # with or without a byte-order mark: spreadsheets write one
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            if any(row):
                rows.append((reader.line_num, row))
    except csv.Error as e:  # a field over csv's size limit, an unterminated quote at the end, ...
        raise InputError(f"{path}:{reader.line_num}: not a readable CSV line ({e})") from None
    if rows and len(rows[0][1]) == 3 and _parse_same(rows[0][1][2]) is None:
        rows = rows[1:]  # a header: its third field is not a boolean
    index: dict[Path, int] = {}
    a, b, same = [], [], []
    for n, row in rows:
        if len(row) != 3:
            raise ValueError(f"{path}:{n}: expected 3 fields path_a,path_b,same, got {len(row)}: {_short(row)}")
        label = _parse_same(row[2])
        if label is None:
            raise ValueError(f"{path}:{n}: 'same' must be 1/0, true/false or yes/no, got {_short(row[2])}")
        for value, out in ((row[0], a), (row[1], b)):
            value = value.strip()
            if not value:
                raise ValueError(f"{path}:{n}: empty image path")
            image = root / value  # an absolute `value` replaces root
            out.append(index.setdefault(image, len(index)))
        same.append(label)
    images = list(index)
    missing = [image for image in images if not _is_file(image)]
    if missing:
        _raise_missing(path, missing)
    return PairList([ImageRef.from_path(p) for p in images], np.array(a), np.array(b), np.array(same), None, str(path))


def _short(value: object, limit: int = 200) -> str:
    """`repr(value)`, cut to `limit` characters: a message quotes the offending text, not a whole file."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def write_csv_pairs(path: str | os.PathLike, rows: Iterable[tuple[str | os.PathLike, str | os.PathLike, bool]]) -> Path:
    """Write `(path_a, path_b, same)` rows as a pair CSV with a `path_a,path_b,same` header and 1/0 labels."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path_a", "path_b", "same"])
        writer.writerows([os.fspath(pa), os.fspath(pb), int(bool(s))] for pa, pb, s in rows)
    return path
