"""The faces of a pair set at a network's input, cropped once and cached: `crop_images` (what `verify` scores).

Images in identity folders (LFW's layout) go through the parallel, resumable crop cache (`faces.crop.crop_folder`);
images in any other layout are cropped one by one, and images of insightface `.bin` files (already cropped faces)
only resized. An image that cannot be read or has no usable face is skipped with its reason, never fatal.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from explainface.errors import InputError
from explainface.files import atomic_write_text


def _common_root(paths: list[Path]) -> Path:
    """The folder above the images' identity folders: `root` of `root/<identity>/<file>`."""
    return Path(os.path.commonpath([str(p.resolve().parent.parent) for p in paths]))


def _identity_layout(paths: list[Path]) -> bool:
    """Whether every image is `root/<identity>/<file>` under one root (what `crop_folder` crops)."""
    root = _common_root(paths)
    return all(len(p.resolve().relative_to(root).parts) == 2 for p in paths)


def skip_reason(err: BaseException, name: str) -> str:
    """What is wrong with an image, from the error reading it, without the image's name in front."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = " ".join(str(err).split()) or type(err).__name__
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text


def _resized(path, size: int, i: int, out: list, skipped: dict[int, str], name: str | None = None) -> None:
    """`out[i]` = the image at `path` resized to `size`, or `skipped[i]` = why it cannot be read."""
    from explainface.readers.images import load_image_rgb, resize_image

    try:
        out[i] = resize_image(load_image_rgb(path, max_side=2 * size), size)  # a large image: decoded reduced
    except (OSError, ValueError) as e:
        reason = skip_reason(e, str(path))
        skipped[i] = reason if name is None else f"{name}: {reason}"


def crop_images(
    refs, size: int, crops_dir: Path, detector: str, workers: int, progress: bool, crop: str = "auto",
    cut: str = "detect",
) -> tuple[list[np.ndarray | None], dict[int, str]]:
    """(crops, skipped): the crop of each pair image at `size` (no alignment, or an aligned chip with
    `crop="chip"`; cached under `crops_dir`), and the images that cannot be read as {index: reason}, their crops
    None.

    Only these images are read: images on disk in an identity-folder tree are cropped with `crop_folder`
    (parallel, cached) on a tree of links to them, never on the rest of the folder; other layouts file by file
    (`crop_files`). Unless `crop` is "none", or "auto" and the folder already holds model-input crops (a crop
    cache or a synthetic export): those, and images given as bytes (`.bin`, already face crops), are only resized.
    """
    from explainface.faces.crop import is_model_input_folder

    check_crop(crop)
    out: list[np.ndarray | None] = [None] * len(refs)
    skipped: dict[int, str] = {}
    on_disk = [(i, r.path) for i, r in enumerate(refs) if getattr(r, "path", None) is not None]
    paths = [p for _, p in on_disk]
    if on_disk and crop == "auto":
        here = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
        crop = "none" if is_model_input_folder(here) or is_model_input_folder(_common_root(paths)) else cut
    if on_disk and crop == "none":
        for i, p in on_disk:
            _resized(p, size, i, out, skipped)
    elif on_disk:
        if _identity_layout(paths):
            made = _crop_identity_folders(paths, crops_dir, size, detector, workers, progress, crop)
        else:  # another layout (CFP: NNN/frontal/XX.jpg): crop file by file, cached the same way
            root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
            made = _crop_files_skipping(paths, root, crops_dir, size, detector, progress, crop)
        for (i, _), cached in zip(on_disk, made):
            if isinstance(cached, str):
                skipped[i] = cached
            else:
                _resized(cached, size, i, out, skipped, name=f"its crop {cached}")
    for i, r in enumerate(refs):
        if out[i] is None and i not in skipped:
            try:
                from explainface.readers.images import resize_image

                out[i] = resize_image(r.load_rgb(max_side=2 * size), size)
            except (OSError, ValueError) as e:
                skipped[i] = skip_reason(e, r.name)
    return out, skipped


def _link(target: Path, link: Path) -> None:
    """`link` -> `target`: a symbolic link, else a hard link, else a copy (keeping the time stamp)."""
    for make in (os.symlink, os.link, shutil.copy2):
        try:
            make(target, link)
            return
        except OSError:
            continue
    raise OSError(f"cannot link or copy {target} to {link}")


def check_crop(crop) -> None:
    """An `InputError` unless `crop` is one of the crop modes."""
    from explainface.faces.crop import CROP_MODES

    if crop not in CROP_MODES:
        raise InputError(f"crop must be one of {', '.join(map(repr, CROP_MODES))}, got {crop!r}")


def _crop_identity_folders(paths: list[Path], crops_dir: Path, size: int, detector, workers: int,
                           progress: bool, crop: str = "detect") -> list[Path | str]:  # fmt: skip
    """`crop_folder` for exactly these images of `root/<identity>/<file>`: it crops a temporary tree of links to
    them (the cache, `crops_dir/<identity>/<stem>.jpg`, is the same as for the whole folder). The crop of each
    path, or why there is none."""
    from explainface.faces.crop import crop_folder
    from explainface.readers.images import IMAGE_EXTENSIONS

    root = _common_root(paths)
    rels = [p.resolve().relative_to(root) for p in paths]
    made: list[Path | str | None] = [None] * len(paths)
    with tempfile.TemporaryDirectory(prefix="explainface-verify-") as tmp:
        src = Path(tmp) / "images"
        for j, (p, rel) in enumerate(zip(paths, rels)):
            if rel.suffix.lower() not in IMAGE_EXTENSIONS:
                kind = rel.suffix or "(none)"
                made[j] = f"not cropped: the file type {kind!r} is not one of {' '.join(IMAGE_EXTENSIONS)}"
            elif any(part.startswith(".") for part in rel.parts) or rel.name.lower().endswith(".parts.png"):
                made[j] = "not cropped: hidden files and part label maps (.parts.png) are not face images"
            elif not (src / rel).exists():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                _link(p.resolve(), src / rel)
        if src.is_dir():
            with warnings.catch_warnings():  # verify names the unreadable images itself
                warnings.filterwarnings("ignore", message=r".*unreadable image")
                report = crop_folder(src, crops_dir, size=size, detector=detector, workers=workers, progress=progress,
                                     crop=crop)  # fmt: skip
            reasons = report.unreadable_reasons
            _name_source(crops_dir, root, len(paths))
        else:
            reasons = {}
    for j, rel in enumerate(rels):
        if made[j] is not None:
            continue
        if rel.as_posix() in reasons:
            made[j] = reasons[rel.as_posix()]
            continue
        cached = crops_dir / rel.parent / (rel.stem + ".jpg")
        if not cached.is_file():
            cached = cached.with_suffix(".png")
        made[j] = cached if cached.is_file() else f"no crop was made (none in {crops_dir / rel.parent})"
    return made  # type: ignore[return-value]


def _name_source(crops_dir: Path, root: Path, count: int) -> None:
    """Name the real image folder, not the temporary tree of links, in the crop cache's meta and report."""
    for file, key in (("crop_meta.json", "source"), ("crop_report.json", "src_root")):
        path = crops_dir / file
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data[key] = str(root)
            data["source_images"] = f"the {count} images a pair set names (verify)"
            atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _crop_files_skipping(paths: list[Path], root: Path, crops_dir: Path, size: int, detector,
                         progress: bool, crop: str = "detect") -> list[Path | str]:  # fmt: skip
    """`crop_files` that skips the images it cannot read: the crop of each path, or why there is none. An image
    that fails is taken out and the rest cropped again (what was cropped is cached, so a retry only stats)."""
    from explainface.faces.crop import crop_files
    from explainface.faces.detect import create_detector

    det = create_detector(detector) if isinstance(detector, str) else detector
    made: list[Path | str | None] = [None] * len(paths)
    todo = []
    for j, p in enumerate(paths):
        try:
            empty = p.stat().st_size == 0
        except OSError as e:
            made[j] = skip_reason(e, str(p))
            continue
        if empty:
            made[j] = "empty file"
        else:
            todo.append(j)
    while todo:
        try:
            crops = crop_files([paths[j] for j in todo], root, crops_dir, size, detector=det, progress=progress,
                               crop=crop)  # fmt: skip
        except (OSError, ValueError) as e:
            text, name = str(e), getattr(e, "filename", None)
            name = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else None
            named = [k for k, j in enumerate(todo) if str(paths[j]) in text or name == str(paths[j])]
            if not named:
                raise
            k = max(named, key=lambda k: len(str(paths[todo[k]])))  # "/a/x.jpg" is also in "/a/x.jpg.jpg"
            made[todo[k]] = skip_reason(e, str(paths[todo[k]]))
            del todo[k]
            continue
        for j, c in zip(todo, crops):
            made[j] = c
        break
    return made  # type: ignore[return-value]
