"""Export the synthetic faces to disk in the formats of real data (docs/method.md §10), so the real readers are
exercised.

Layout under `out_dir`:

    train/id{identity:05d}/id{identity:05d}_{k:04d}.{jpg|png}   RGB face, k = 1..per_identity
    train/id{identity:05d}/id{identity:05d}_{k:04d}.pts          68 landmarks, 300-W format (1-based)
    train/id{identity:05d}/id{identity:05d}_{k:04d}.parts.png    uint8 label map, values index PART_NAMES
    heldout/...                                                  the same for the held-out identities
    heldout/pairs.txt                                            LFW-style folds over the held-out identities
    meta.json                                                    what was exported and how

Train identities are 0..identities-1; held-out identities start at `HELDOUT_FIRST_IDENTITY` so the two
never overlap (the folder names simply grow: `id1000000`). Image k of an identity is generator sample
index k - 1. Every file is written to a hidden temporary name and renamed into place, so a killed export
leaves no half-written file under a real name.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from explainface.files import atomic_write_bytes, atomic_write_text, is_temporary, temporary_path
from explainface.parts import labels as parts_module
from explainface.readers.images import JPEG_PARAMS, JPEG_QUALITY, PARTS_SUFFIX
from explainface.readers.landmarks import read_pts, write_pts
from explainface.readers.lfw_pairs import make_pairs, write_lfw_pairs
from explainface.synthetic import generator as generator_module
from explainface.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces
from explainface.version import __version__

#: LFW View 2 has 10 folds.
PAIR_FOLDS = 10
IMAGE_FORMATS = ("jpg", "png")
PTS_SUFFIX = ".pts"

_SAMPLE_FILE = re.compile(r"^id\d{5,}_\d{4,}(\.jpg|\.png|\.pts|\.parts\.png)$")
_IDENTITY_DIR = re.compile(r"^id\d{5,}$")


def identity_name(identity: int) -> str:
    """Folder name (and LFW pair name) of an identity: `id00042`, `id1000000`."""
    return f"id{identity:05d}"


def image_name(identity: int, k: int, image_format: str) -> str:
    """File name of image `k` (1-based, as in LFW) of an identity."""
    return f"{identity_name(identity)}_{k:04d}.{image_format}"


def default_heldout_identities(identities: int) -> int:
    """Default held-out count: a fifth of the train identities, at least 20 (two per LFW fold)."""
    return max(2 * PAIR_FOLDS, identities // 5)


def companion_paths(image_path: str | os.PathLike) -> tuple[Path, Path]:
    """The `.pts` and `.parts.png` files that sit beside an exported image."""
    image_path = Path(image_path)
    stem = image_path.name.rsplit(".", 1)[0]
    return image_path.with_name(stem + PTS_SUFFIX), image_path.with_name(stem + PARTS_SUFFIX)


def read_sample(image_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an exported sample: (image RGB uint8 [S,S,3], landmarks 0-based float32 [68,2], parts uint8 [S,S])."""
    image_path = Path(image_path)
    pts_path, parts_path = companion_paths(image_path)
    for p in (image_path, pts_path, parts_path):
        if not p.is_file():
            raise FileNotFoundError(f"missing file of exported sample: {p}")
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{image_path}: not a readable image")
    labels = cv2.imread(str(parts_path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"{parts_path}: not a single-channel uint8 label PNG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), read_pts(pts_path), labels


def export_synthetic(
    out_dir: str | os.PathLike,
    identities: int,
    per_identity: int,
    size: int = 112,
    heldout_identities: int | None = None,
    seed: int = 0,
    difficulty: str | float = "medium",
    image_format: str = "jpg",
    pairs_per_fold: int = 300,
    workers: int = 0,
    progress: bool = True,
    occlusion: float | None = None,
) -> dict:
    """Write `identities` train and `heldout_identities` held-out identities of `per_identity` samples each,
    with landmarks, part maps, held-out `pairs.txt` and `meta.json`; return a summary dict.

    `heldout_identities=None` means `default_heldout_identities(identities)`; 0 writes no held-out set.
    The pairs use 10 folds, or `heldout_identities // 2` folds when there are fewer than 20 identities
    (a fold needs two identities for its different pairs), and `pairs_per_fold` is reduced with a warning
    when the images cannot supply it. `workers > 0` generates identities in that many processes; the
    output is byte-identical for any `workers`. Re-running over an earlier export overwrites it and removes
    its sample files that this export does not produce. `out_dir` must be new, empty or an earlier export.
    """
    heldout = _validate_export_args(
        identities, per_identity, size, heldout_identities, seed, difficulty, image_format, occlusion
    )

    out = Path(out_dir)
    _check_output_dir(out)
    start = time.perf_counter()
    splits = {
        "train": list(range(identities)),
        "heldout": list(range(HELDOUT_FIRST_IDENTITY, HELDOUT_FIRST_IDENTITY + heldout)),
    }
    meta = _export_meta(splits, per_identity, size, seed, difficulty, image_format, occlusion)
    _write_json(out / "meta.json", meta)  # an incomplete marker first: a killed export can be re-run here

    tasks = [(out / split, i, per_identity, size, image_format) for split, ids in splits.items() for i in ids]
    for split, ids in splits.items():
        _remove_stale(out / split, {identity_name(i): _sample_files(i, per_identity, image_format) for i in ids})
    _generate(tasks, seed, difficulty, workers, progress, occlusion)

    pairs_path, folds, per_fold = _write_pairs(out, splits["heldout"], per_identity, pairs_per_fold, seed)
    meta["pairs"] = {"file": "heldout/pairs.txt", "folds": folds, "per_fold": per_fold} if pairs_path else None
    meta["complete"] = True
    _write_json(out / "meta.json", meta)

    return {
        "out_dir": out,
        "train_dir": out / "train",
        "heldout_dir": out / "heldout" if heldout else None,
        "pairs_path": pairs_path,
        "meta_path": out / "meta.json",
        "train_identities": identities,
        "heldout_identities": heldout,
        "per_identity": per_identity,
        "train_images": identities * per_identity,
        "heldout_images": heldout * per_identity,
        "pair_folds": folds,
        "pairs_per_fold": per_fold,
        "size": size,
        "image_format": image_format,
        "seconds": time.perf_counter() - start,
    }


def _validate_export_args(
    identities: int,
    per_identity: int,
    size: int,
    heldout_identities: int | None,
    seed: int,
    difficulty: str | float,
    image_format: str,
    occlusion: float | None,
) -> int:
    """Check the arguments of `export_synthetic` before anything is written; return the held-out count."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if identities < 0 or per_identity < 1 or size < 1:
        raise ValueError(
            f"need identities >= 0, per_identity >= 1, size >= 1; got {identities}, {per_identity}, {size}"
        )
    if identities > HELDOUT_FIRST_IDENTITY:
        raise ValueError(f"at most {HELDOUT_FIRST_IDENTITY} train identities (held-out numbers start there)")
    heldout = default_heldout_identities(identities) if heldout_identities is None else heldout_identities
    if heldout < 0:
        raise ValueError(f"heldout_identities must be >= 0, got {heldout}")
    SyntheticFaces(seed, difficulty, occlusion)  # validate seed/difficulty here rather than in a worker
    return heldout


def _export_meta(
    splits: dict[str, list[int]],
    per_identity: int,
    size: int,
    seed: int,
    difficulty: str | float,
    image_format: str,
    occlusion: float | None,
) -> dict:
    """The `meta.json` contents of an export, still marked incomplete and without pairs."""
    identities, heldout = len(splits["train"]), len(splits["heldout"])
    return {
        "complete": False,
        "format": "explainface-synthetic-export",
        "explainface_version": __version__,
        "generator_version": _generator_version(),
        "seed": seed,
        "difficulty": difficulty,
        "occlusion": occlusion,
        "size": size,
        "image_format": image_format,
        "jpeg": {"quality": JPEG_QUALITY, "chroma_subsampling": "4:4:4"} if image_format == "jpg" else None,
        "counts": {
            "train_identities": identities,
            "heldout_identities": heldout,
            "per_identity": per_identity,
            "train_images": identities * per_identity,
            "heldout_images": heldout * per_identity,
        },
        "identities": {
            "train": [0, identities - 1] if identities else None,
            "heldout": [splits["heldout"][0], splits["heldout"][-1]] if heldout else None,
        },
        "part_names": list(parts_module.PART_NAMES),
        "part_colors": {name: list(c) for name, c in parts_module.PART_COLORS.items()},
        "landmark_groups": {name: [r.start, r.stop - 1] for name, r in parts_module.LANDMARK_GROUPS.items()},
        "layout": {
            "image": f"{{split}}/id{{identity:05d}}/id{{identity:05d}}_{{k:04d}}.{image_format}",
            "landmarks": "{split}/id{identity:05d}/id{identity:05d}_{k:04d}.pts",
            "parts": "{split}/id{identity:05d}/id{identity:05d}_{k:04d}.parts.png",
            "pairs": "heldout/pairs.txt",
            "notes": (
                "k is 1-based and is generator sample index k-1; images RGB (stored as JPEG/PNG); "
                ".pts in 300-W format with 1-based coordinates, 68 iBUG points; .parts.png single-channel "
                "uint8, values index part_names; train identities 0..N-1, held-out identities from "
                f"{HELDOUT_FIRST_IDENTITY}; pairs.txt in LFW format, names are identity folders"
            ),
        },
        "pairs": None,
    }


def _write_pairs(
    out: Path, heldout_ids: list[int], per_identity: int, pairs_per_fold: int, seed: int
) -> tuple[Path | None, int, int]:
    """Write (or remove a stale) `heldout/pairs.txt`; return (its path or None, folds, pairs per fold)."""
    # called by export_synthetic only: stacklevel=3 points the warnings at export_synthetic's caller
    heldout = len(heldout_ids)
    pairs_path, folds, per_fold = None, 0, 0
    if heldout:
        folds = min(PAIR_FOLDS, heldout // 2)
        if folds < PAIR_FOLDS:
            warnings.warn(
                f"{heldout} held-out identities: using {folds} pair folds instead of {PAIR_FOLDS}"
                if folds
                else f"{heldout} held-out identity: no pairs.txt (different pairs need two identities)",
                UserWarning,
                stacklevel=3,
            )
        if folds and per_identity >= 2:
            with warnings.catch_warnings(record=True) as caught:  # re-issued below, pointing at our caller
                warnings.simplefilter("always")
                pairs = make_pairs({identity_name(i): per_identity for i in heldout_ids}, folds, pairs_per_fold, seed)
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=3)
            per_fold = sum(1 for p in pairs if p.fold == 0 and p.same)
            pairs_path = out / "heldout" / "pairs.txt"
            os.replace(write_lfw_pairs(temporary_path(pairs_path), pairs, folds, per_fold), pairs_path)
        elif folds:
            warnings.warn("per_identity < 2: no same pairs possible, no pairs.txt", UserWarning, stacklevel=3)
            folds = 0
    if pairs_path is None and (out / "heldout" / "pairs.txt").exists():
        (out / "heldout" / "pairs.txt").unlink()  # from an earlier export; it would name images we did not write
    return pairs_path, folds, per_fold


def _generator_version() -> str | None:
    version = getattr(generator_module, "GENERATOR_VERSION", None)
    return None if version is None else str(version)


def _check_output_dir(out: Path) -> None:
    """Refuse to write into a non-empty folder that is not an earlier export: we may delete stale files here."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").is_file():
        raise ValueError(f"{out} is not empty and holds no meta.json of an earlier export; choose a new directory")
    out.mkdir(parents=True, exist_ok=True)


def _sample_files(identity: int, per_identity: int, image_format: str) -> set[str]:
    """Names of every file an identity's folder gets: image, `.pts` and `.parts.png` per sample."""
    names = set()
    for k in range(1, per_identity + 1):
        image = image_name(identity, k, image_format)
        names |= {image, *(p.name for p in companion_paths(Path(image)))}
    return names


def _remove_stale(split_dir: Path, expected: dict[str, set[str]]) -> None:
    """Remove sample files (and leftover temporaries) of an earlier export that this export will not write."""
    if not split_dir.is_dir():
        return
    for folder in split_dir.iterdir():
        if not (folder.is_dir() and _IDENTITY_DIR.match(folder.name)):
            continue
        keep = expected.get(folder.name, set())
        for f in folder.iterdir():
            if f.is_file() and (is_temporary(f) or (_SAMPLE_FILE.match(f.name) and f.name not in keep)):
                f.unlink()
        if folder.name not in expected and not any(folder.iterdir()):
            folder.rmdir()


_worker_generator: SyntheticFaces | None = None


def _init_worker(seed: int, difficulty: str | float, occlusion: float | None = None) -> None:
    global _worker_generator
    cv2.setNumThreads(1)  # one process per core already
    _worker_generator = SyntheticFaces(seed, difficulty, occlusion)


def _export_identity_in_worker(task: tuple[Path, int, int, int, str]) -> int:
    assert _worker_generator is not None
    return _export_identity(_worker_generator, task)


def _export_identity(generator: SyntheticFaces, task: tuple[Path, int, int, int, str]) -> int:
    """Generate and write every sample of one identity (one pool task); returns the number of images."""
    split_dir, identity, per_identity, size, image_format = task
    folder = split_dir / identity_name(identity)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, per_identity + 1):
        s = generator.sample(identity, k - 1, size)
        image_path = folder / image_name(identity, k, image_format)
        pts_path, parts_path = companion_paths(image_path)
        _write_image(image_path, cv2.cvtColor(np.ascontiguousarray(s.image), cv2.COLOR_RGB2BGR))
        _write_image(parts_path, np.ascontiguousarray(s.parts, dtype=np.uint8))
        os.replace(write_pts(temporary_path(pts_path), s.landmarks), pts_path)
    return per_identity


def _generate(tasks: list, seed: int, difficulty: str | float, workers: int, progress: bool,
              occlusion: float | None = None) -> None:  # fmt: skip
    bar = tqdm(total=len(tasks), unit="identity", desc="synthetic export", disable=not progress)
    if workers <= 0:
        generator = SyntheticFaces(seed, difficulty, occlusion)
        for task in tasks:
            _export_identity(generator, task)
            bar.update()
    else:
        # spawn, not fork: the parent may hold torch/OpenMP or OpenCV thread pools that do not survive a fork.
        # An executor, not multiprocessing.Pool: a worker that dies raises BrokenProcessPool instead of hanging.
        ctx = multiprocessing.get_context("spawn")
        args = (seed, difficulty, occlusion)
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=args) as ex:
            for future in as_completed([ex.submit(_export_identity_in_worker, task) for task in tasks]):
                future.result()
                bar.update()
    bar.close()


def _write_image(path: Path, array: np.ndarray) -> None:
    ext = ".png" if path.name.endswith(".png") else ".jpg"
    params = list(JPEG_PARAMS) if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, array, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
