"""CFP (Celebrities in Frontal-Profile, Sengupta et al., WACV 2016) in its official release layout, as a `PairList`.

    cfp/Data/Images/NNN/{frontal,profile}/XX.jpg
    cfp/Protocol/Pair_list_F.txt     "<index> <path>" per line, paths relative to Protocol/ (frontal images)
    cfp/Protocol/Pair_list_P.txt     the same for the profile images
    cfp/Protocol/Split/{FF,FP}/01..10/{same,diff}.txt   "<i>,<j>" per line

CFP-FF pairs two frontal images (both indices into the F list); CFP-FP pairs a frontal image (F list) with a
profile image (P list). Each protocol is 10 folds of 350 same + 350 different pairs; the folds are kept, so the
verification protocol cross-validates over them exactly as over LFW's.

Any of these paths names a protocol: the CFP root or its `Protocol/` folder (with `protocol="FF"|"FP"`), or
`Protocol/Split/FF` / `Protocol/Split/FP` (the protocol is then the folder's name).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from explainface.readers.lfw_pairs import read_text
from explainface.readers.pairs import ImageRef, PairList, _is_file, _raise_missing, _short

PROTOCOLS = ("FF", "FP")
#: (pair-list file of the first image, of the second image) per protocol.
_LISTS = {"FF": ("Pair_list_F.txt", "Pair_list_F.txt"), "FP": ("Pair_list_F.txt", "Pair_list_P.txt")}


def is_cfp(path: str | os.PathLike) -> bool:
    """Whether `path` is a CFP root, its Protocol folder or one of its Split/<protocol> folders."""
    try:
        _locate(Path(path), None, check_protocol=False)
        return True
    except ValueError:
        return False


def _locate(path: Path, protocol: str | None, check_protocol: bool = True) -> tuple[Path, str | None]:
    """(the Protocol folder, the protocol) named by `path` and `protocol`."""
    if (path / "Protocol" / "Pair_list_F.txt").is_file():
        proto_dir = path / "Protocol"
    elif (path / "Pair_list_F.txt").is_file():
        proto_dir = path
    elif path.name.upper() in PROTOCOLS and (path.parent.parent / "Pair_list_F.txt").is_file():
        proto_dir = path.parent.parent
        if protocol is not None and protocol.upper() != path.name.upper():
            raise ValueError(f"{path}: this is the {path.name} protocol folder, but protocol={protocol!r} was asked")
        protocol = path.name
    else:
        raise ValueError(
            f"{path}: not a CFP release (no Protocol/Pair_list_F.txt, Pair_list_F.txt or Split/FF|FP folder here)"
        )
    if protocol is None:
        if check_protocol:
            raise ValueError(f"{path}: CFP has two protocols; say which: protocol FF (frontal-frontal) or FP "
                             "(frontal-profile)")  # fmt: skip
        return proto_dir, None
    if protocol.upper() not in PROTOCOLS:
        raise ValueError(f"{path}: CFP protocol must be FF or FP, got {protocol!r}")
    return proto_dir, protocol.upper()


def _read_list(path: Path) -> dict[int, Path]:
    """`index -> image path` of a Pair_list file (paths resolved against its folder)."""
    if not path.is_file():
        raise FileNotFoundError(f"CFP pair list not found: {path}")
    out: dict[int, Path] = {}
    for n, line in enumerate(read_text(path, "CFP pair list").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or not _is_index(fields[0]):
            raise ValueError(f"{path}:{n}: expected '<index> <image path>', got {_short(line)}")
        index = int(fields[0])
        if index in out:
            raise ValueError(f"{path}:{n}: index {index} appears twice")
        out[index] = Path(os.path.normpath(path.parent / fields[1].strip()))
    if not out:
        raise ValueError(f"{path}: no images listed")
    return out


def _is_index(field: str) -> bool:
    """An image index: ASCII digits (`str.isdigit` admits '²' and other digits `int` refuses), at most 18."""
    return field.isascii() and field.isdigit() and len(field) <= 18


def _read_split(path: Path) -> list[tuple[int, int]]:
    if not path.is_file():
        raise FileNotFoundError(f"CFP split file not found: {path}")
    pairs = []
    for n, line in enumerate(read_text(path, "CFP split file").splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not all(_is_index(f) for f in fields):
            raise ValueError(f"{path}:{n}: expected '<index>,<index>', got {_short(line)}")
        pairs.append((int(fields[0]), int(fields[1])))
    return pairs


def read_cfp_pairs(path: str | os.PathLike, protocol: str | None = None) -> PairList:
    """The CFP-FF or CFP-FP pairs (10 official folds) of the release at `path` (see the module docstring).

    Raises ValueError naming the file and line for malformed lists and indices missing from the pair lists,
    FileNotFoundError naming the missing images.
    """
    proto_dir, protocol = _locate(Path(path), protocol)
    first_file, second_file = _LISTS[protocol]
    lists = {name: _read_list(proto_dir / name) for name in set(_LISTS[protocol])}
    split_dir = proto_dir / "Split" / protocol
    folds = sorted(d for d in os.listdir(split_dir) if (split_dir / d).is_dir()) if split_dir.is_dir() else []
    if not folds:
        raise FileNotFoundError(f"{split_dir}: no fold folders (expected 01 .. 10)")
    index: dict[Path, int] = {}
    a, b, same, fold_of = [], [], [], []
    for f, fold in enumerate(folds):
        for label, file in ((True, "same.txt"), (False, "diff.txt")):
            split = split_dir / fold / file
            for n, (i, j) in enumerate(_read_split(split), start=1):
                for k, name, out in ((i, first_file, a), (j, second_file, b)):
                    image = lists[name].get(k)
                    if image is None:
                        raise ValueError(f"{split}:{n}: index {k} is not in {proto_dir / name}")
                    out.append(index.setdefault(image, len(index)))
                same.append(label)
                fold_of.append(f)
    if not same:
        raise ValueError(f"{split_dir}: no pairs in the same.txt / diff.txt files of its fold folders")
    images = list(index)
    missing = [p for p in images if not _is_file(p)]
    if missing:
        _raise_missing(split_dir, missing)
    return PairList([ImageRef.from_path(p) for p in images], np.array(a), np.array(b), np.array(same),
                    np.array(fold_of), f"CFP-{protocol} ({proto_dir})")  # fmt: skip
