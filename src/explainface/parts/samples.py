"""Faces with their part labels, as the model sees them: from the synthetic generator, or a folder (docs/method.md §6).

Where the part labels come from, per image of a folder, first found wins: `<stem>.parts.png` (a label map
indexing PART_NAMES, as `explainface synth` exports), `<stem>.pts` (68 iBUG landmarks, 300-W format), dlib's
68-point predictor (`landmarks="auto"`; `"file"` skips images without a file instead). The explainability
metrics (`explain`), part explanations (`why`) and their faithfulness read faces through here.

With `crop="chip"` the face is dlib's aligned chip (`faces.chip`) and the 68 landmarks (of the file, or dlib's
predicted on the photo) are carried into it through the chip's affine (`align.transform_points`), where the part
map is drawn; a `.parts.png` map is warped into the chip (nearest neighbour).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from explainface.parts.labels import PART_NAMES
from explainface.readers.images import IMAGE_EXTENSIONS, PARTS_SUFFIX, find_images

#: The face source that means "the built-in generator's held-out faces".
SYNTHETIC = "synthetic"


@dataclass
class PartSample:
    """One face as the model sees it: the input crop, its part labels (PART_NAMES ids) and where it came from."""

    name: str
    image: np.ndarray  # uint8 [S, S, 3]
    labels: np.ndarray  # uint8 [S, S]
    source: str  # "generator", "parts.png", "pts" or "dlib"
    landmarks: np.ndarray | None = None  # float64 [68, 2] in the crop's pixels (None: none known)


@dataclass
class SampleCounts:
    """What loading faces did: faces used per label source, and the skipped files with the reason."""

    by_source: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, source: str, n: int = 1) -> None:
        self.by_source[source] = self.by_source.get(source, 0) + n

    def skip(self, name: str, why: str) -> None:
        self.skipped[name] = why

    def skipped_summary(self, show: int = 3) -> str:
        """ "skipped 2: a.png (unreadable image); b.png (no landmarks ...)": the count and the first reasons."""
        items = [f"{name} ({why})" for name, why in list(self.skipped.items())[:show]]
        more = f"; and {len(self.skipped) - show} more" if len(self.skipped) > show else ""
        return f"skipped {len(self.skipped)}" + (": " + "; ".join(items) + more if items else "")


def synthetic_samples(count: int, size: int, seed: int = 0, difficulty: str | float = "medium") -> Iterator[PartSample]:
    """`count` faces of held-out synthetic identities (never trained on), 5 images each, at the model input size."""
    from explainface.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces

    gen = SyntheticFaces(seed=seed, difficulty=difficulty)
    for i in range(count):
        identity, k = HELDOUT_FIRST_IDENTITY + i // 5, i % 5
        s = gen.sample(identity, k, size)
        yield PartSample(f"synthetic/{identity}/{k}", s.image, s.parts, "generator", s.landmarks.astype(np.float64))


def folder_samples(
    folder: str | Path,
    size: int,
    crop: str = "auto",
    detector: str = "hog",
    landmarks: str = "auto",
    limit: int | None = None,
    seed: int = 0,
    counts: SampleCounts | None = None,
    progress: bool = True,
    cut: str = "detect",
) -> Iterator[PartSample]:
    """Faces of `folder` at the model input size with part labels; bad files are skipped and counted in `counts`.

    `crop="detect"` crops each image as `verify` does (main face, square with the detector's margin, no
    alignment; the labels follow through the same square); `"chip"` cuts dlib's aligned face chip (the landmarks
    carried into it, module docstring); `"none"` only resizes (the folder already holds model-input crops);
    `"auto"` picks "none" for a synthetic export or crop cache, else `cut` (the model's way to cut photos:
    `faces.crop.model_cut`, "chip" for dlib_resnet).
    `limit` takes that many images, drawn with `seed` (all when None).
    """
    from explainface.faces.crop import is_model_input_folder

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"face folder not found: {folder}")
    files = find_images(folder)
    if not files:
        raise ValueError(f"{folder}: no face images ({', '.join(IMAGE_EXTENSIONS)}) found")
    yield from _file_samples(files, folder, size, crop, detector, landmarks, limit, seed, counts, progress,
                             lambda: is_model_input_folder(folder), cut)  # fmt: skip


def image_samples(paths, size: int, crop: str = "auto", detector: str = "hog", landmarks: str = "auto",
                  limit: int | None = None, seed: int = 0, counts: SampleCounts | None = None, progress: bool = True,
                  cut: str = "detect") -> Iterator[PartSample]:  # fmt: skip
    """The faces of a list of image files (what `folder_samples` does for a folder's files; `crop="auto"`: "none"
    for files of a synthetic export or crop cache, else `cut`). A missing file is skipped and counted."""
    from explainface.faces.crop import is_model_input_folder

    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("faces: an empty list of images")
    yield from _file_samples(files, None, size, crop, detector, landmarks, limit, seed, counts, progress,
                             lambda: all(is_model_input_folder(f.parent) for f in files), cut)  # fmt: skip


def _file_samples(files: list[Path], root: Path | None, size: int, crop: str, detector: str, landmarks: str,
                  limit: int | None, seed: int, counts: SampleCounts | None, progress: bool,
                  model_input: Callable[[], bool], cut: str) -> Iterator[PartSample]:  # fmt: skip
    """The faces of image files (named relative to `root`, else by their path), `limit` of them drawn with `seed`;
    `crop="auto"` is "none" when `model_input()` says they are model-input crops, else `cut`. Bad files are
    skipped and counted."""
    from explainface.faces.crop import CROP_MODES
    from explainface.faces.detect import create_detector

    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {', '.join(map(repr, CROP_MODES))}, got {crop!r}")
    if landmarks not in ("auto", "file"):
        raise ValueError(f'landmarks must be "auto" or "file", got {landmarks!r}')
    if crop == "auto":
        crop = "none" if model_input() else cut
    if limit is not None and limit < len(files):
        pick = np.random.default_rng(seed).choice(len(files), size=limit, replace=False)
        files = [files[i] for i in sorted(pick)]
    counts = counts if counts is not None else SampleCounts()
    det = create_detector(detector) if crop in ("detect", "chip") else None
    for path in tqdm(files, desc="faces", unit="img", disable=not progress):
        name = str(path.relative_to(root)) if root is not None else str(path)
        try:
            sample = face_sample(path, size, crop, det, landmarks, name=name)
        except (OSError, ValueError) as err:
            problem = str(err)
            counts.skip(name, problem[len(f"{path}: ") :] if problem.startswith(f"{path}: ") else problem)
            continue
        counts.add(sample.source)
        yield sample


def face_sample(path: str | Path, size: int, crop: str = "auto", detector=None, landmarks: str = "auto",
                name: str | None = None, cut: str = "detect") -> PartSample:  # fmt: skip
    """One face file at the model input size with its part labels (see `folder_samples` for `crop` and
    `landmarks`; `detector` is a name or a detector instance). Raises ValueError naming the file when it has no
    landmarks (no `.pts` / `.parts.png` beside it and dlib finds no face, or `landmarks="file"`)."""
    from explainface.faces.crop import CROP_MAX_SIDE, CROP_MODES, crop_face, is_model_input_folder
    from explainface.faces.landmarks import crop_landmarks, predict_landmarks68
    from explainface.parts.masks import crop_label_map, part_label_map
    from explainface.readers.images import load_image_rgb_reduced, points_to_reduced, resize_image
    from explainface.readers.landmarks import check_landmarks_in_image, read_landmarks

    path = Path(path)
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {', '.join(map(repr, CROP_MODES))}, got {crop!r}")
    if crop == "auto":
        crop = "none" if is_model_input_folder(path.parent) or is_model_input_folder(path.parent.parent) else cut
    stem = path.with_name(path.name.rsplit(".", 1)[0])
    label_png, pts_file = stem.with_name(stem.name + PARTS_SUFFIX), stem.with_suffix(".pts")
    # a large photo is decoded reduced (its landmarks follow); a label PNG is of the full image, so not then
    image, k = load_image_rgb_reduced(path, None if label_png.is_file() else max(CROP_MAX_SIDE, 2 * size))
    if crop == "chip":
        return _chip_sample(path, image, k, size, detector, landmarks, name)
    h, w = image.shape[:2]
    labels_full, source, pts = None, None, None
    if label_png.is_file():
        labels_full, source = load_label_png(label_png, (h, w)), "parts.png"
        if pts_file.is_file():  # the labels come from the PNG, the landmarks (PartSample.landmarks) from here
            pts = points_to_reduced(read_landmarks(pts_file), k)
    elif pts_file.is_file():
        pts, source = points_to_reduced(read_landmarks(pts_file), k), "pts"
    elif landmarks == "auto":
        pts, source = predict_landmarks68(image), "dlib"
        if pts is None:
            raise ValueError(f"{path}: no landmarks file and dlib found no face")
    else:
        raise ValueError(f"{path}: no .pts or .parts.png beside it")
    if labels_full is None:
        check_landmarks_in_image(pts, w, h)
        labels_full = part_label_map(pts, h, w)
    if crop == "detect":
        face, info = crop_face(image, _detector(detector), size=size)
        labels = crop_label_map(labels_full, info.square, size)
        carried = None if pts is None else crop_landmarks(pts, info.square, size).astype(np.float64)
    else:
        face, labels = resize_image(image, size), _resize_nearest(labels_full, size)  # same stretch
        carried = None if pts is None else (np.asarray(pts, np.float64) + 0.5) * [size / w, size / h] - 0.5
    _check_face_size(labels, path, source, size, image.shape)
    return PartSample(name or str(path), face, labels, source, carried)


def _detector(detector):
    """A detector instance from a name, an instance or None (the default, "hog")."""
    from explainface.faces.detect import create_detector

    return create_detector(detector or "hog") if detector is None or isinstance(detector, str) else detector


def _chip_sample(path: Path, image: np.ndarray, k: int, size: int, detector, landmarks: str,
                 name: str | None) -> PartSample:  # fmt: skip
    """`face_sample` with `crop="chip"` (module docstring): the aligned chip of `image` (decoded at 1/`k`) with its
    part labels drawn from the landmarks carried into it, or its `.parts.png` warped into it."""
    import cv2

    from explainface.faces.align import transform_points
    from explainface.faces.chip import chip_face
    from explainface.faces.landmarks import predict_landmarks68
    from explainface.parts.masks import part_label_map
    from explainface.readers.images import points_to_reduced
    from explainface.readers.landmarks import check_landmarks_in_image, read_landmarks

    stem = path.with_name(path.name.rsplit(".", 1)[0])
    label_png, pts_file = stem.with_name(stem.name + PARTS_SUFFIX), stem.with_suffix(".pts")
    source = "parts.png" if label_png.is_file() else "pts" if pts_file.is_file() else "dlib"
    if source == "dlib" and landmarks != "auto":
        raise ValueError(f"{path}: no .pts or .parts.png beside it")
    h, w = image.shape[:2]
    labels_full = load_label_png(label_png, (h, w)) if source == "parts.png" else None
    pts = points_to_reduced(read_landmarks(pts_file), k) if pts_file.is_file() else None
    face, info = chip_face(image, _detector(detector), size=size)
    transform = np.asarray(info.transform, np.float64).reshape(2, 3)
    if source == "dlib":
        pts = predict_landmarks68(image, box=info.box) if info.box is not None else None
        if pts is None:
            raise ValueError(f"{path}: no landmarks file and dlib found no face")
    carried = None if pts is None else transform_points(pts, transform)
    if labels_full is not None:
        labels = cv2.warpAffine(labels_full, transform, (size, size), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    else:
        check_landmarks_in_image(pts, w, h)
        check_landmarks_in_image(carried, size, size, "face chip")
        labels = part_label_map(carried, size, size)
    _check_face_size(labels, path, source, size, image.shape, "chip")
    return PartSample(name or str(path), face, labels, source, carried)


#: The least share of a face crop that its part labels must cover: a crop is cut around the face, so labels on a
#: few pixels of it come from landmarks of another image (or another size of this one).
MIN_FACE_SHARE = 0.02


def _check_face_size(labels: np.ndarray, path: Path, source: str, size: int, shape: tuple, what: str = "crop") -> None:
    share = float((labels > 0).mean())
    if share == 0:
        raise ValueError(f"{path}: its {source} labels mark no face part inside the {size}-px {what}")
    if share < MIN_FACE_SHARE:
        raise ValueError(f"{path}: its {source} labels cover {100 * share:.2f}% of the {size}-px {what} (a face "
                         f"covers most of it): do they belong to this {shape[1]}x{shape[0]} image?")  # fmt: skip


def load_label_png(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A part label PNG (uint8, values < len(PART_NAMES)) of the image's size; errors name the file."""
    import cv2

    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"{path}: not a single-channel uint8 label PNG")
    if labels.shape != shape:
        raise ValueError(f"{path}: label map is {labels.shape[1]}x{labels.shape[0]}, its image {shape[1]}x{shape[0]}")
    if labels.max() >= len(PART_NAMES):
        raise ValueError(f"{path}: label {int(labels.max())} is not a part id (0..{len(PART_NAMES) - 1})")
    return labels


def _resize_nearest(labels: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)


def batched(items, n: int) -> Iterator[list]:
    """Lists of `n` consecutive items (the last one shorter)."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def face_samples(data, size: int, crop: str, detector: str, landmarks: str, limit: int | None, seed: int,
             counts: SampleCounts, progress: bool, cut: str = "detect"):  # fmt: skip
    """The faces of `data`: "synthetic" (`limit` generated held-out faces, default 200), a folder, one image file,
    or a list of image files. Anything else is a `TypeError` naming the argument (`faces`)."""
    if isinstance(data, (list, tuple)):
        if not all(isinstance(p, (str, os.PathLike)) for p in data):
            raise TypeError("faces: a list of image paths must hold paths (str or os.PathLike) only, got "
                            + ", ".join(sorted({type(p).__name__ for p in data})))  # fmt: skip
        return image_samples(data, size, crop, detector, landmarks, limit, seed, counts, progress, cut)
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f'faces must be a folder, "synthetic", an image path or a list of image paths, got '
                        f"{type(data).__name__}")  # fmt: skip
    if str(data) != SYNTHETIC and Path(data).is_file():
        return image_samples([data], size, crop, detector, landmarks, limit, seed, counts, progress, cut)
    if str(data) == SYNTHETIC:
        n = limit if limit is not None else 200
        counts.add("generator", n)
        return tqdm(synthetic_samples(n, size, seed=seed), total=n, desc="faces", unit="img", disable=not progress)
    return folder_samples(data, size, crop, detector, landmarks, limit, seed, counts, progress, cut)
