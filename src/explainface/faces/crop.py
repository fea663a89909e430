"""Face crops without alignment (docs/method.md §4.2, paper §4.1): detect, square crop with a margin, resize;
cached on disk.

No rotation, no landmark warping: the crop is an axis-aligned square around the centre of the main detected
face (`detect.main_face`: the largest, penalised by its distance from the image centre),
`side = max(w, h) * (1 + margin)`, resized to `size`. The margin defaults to the detector's own (HOG 0.4,
see `detect`): the whole face from chin to brows with a little hair and background, between insightface's
tight 112 px crops and a loose head shot (HELEN: eye-to-mouth distance 0.31 of the side). Where the square
leaves the image it is padded with black (constant 0), as insightface's `warpAffine` crops are: mirrored
padding would invent face parts (a second eye), which the part-location metrics would then see.

`crop="chip"` makes dlib's aligned face chips instead (`faces.chip`: detector -> 5-point predictor -> similarity
transform, `faces.align`); a chip cache records the mode in its meta and key, so crops and chips never mix, and
its index rows also hold each chip's chip <- image affine (`t00`..`t12`).

`crop_folder` mirrors an identity-folder tree `src/<identity>/<image>` to `dst/<identity>/<stem>.jpg`
(JPEG quality 95, 4:4:4 chroma: ~6.7 KB per 112 px crop against ~24 KB as PNG, at a mean error of ~1 grey
level; PNG on request). `dst` also holds:

    crop_meta.json    the settings (mode, size, margin, detector, format); a cache made otherwise is re-cropped
    crop_index.csv    one row per crop: source, status (face | centre), the square in source pixels, the box
    crop_report.json  the counts of the last run and the names of the bad files
    <stem>.pts        with `--landmarks`: dlib's 68 points of each face crop (`crop_landmarks.landmark_crops`)

A crop is cached (not redone) when its file is newer than its source, it has an index row, and the settings
match; a killed run resumes from the last index write (every ~10 s). Unreadable or truncated files and
images without a face are counted and named, never fatal.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from tqdm import tqdm

from explainface.faces.align import CHIP_PADDING
from explainface.faces.detect import DEFAULT_DETECTOR, Box, FaceDetector, create_detector, main_face
from explainface.files import atomic_write_bytes, atomic_write_text, is_temporary
from explainface.readers.folders import scan_identity_folders
from explainface.readers.images import JPEG_PARAMS, JPEG_QUALITY, read_image_bytes, resize_image
from explainface.version import __version__

#: Margin for detectors that do not state their own `default_margin` (the dlib HOG value).
DEFAULT_MARGIN = 0.4
DEFAULT_SIZE = 112
OnMissing = Literal["center", "skip"]
IMAGE_FORMATS = ("jpg", "png")
META_FILE = "crop_meta.json"
INDEX_FILE = "crop_index.csv"
REPORT_FILE = "crop_report.json"
INDEX_COLUMNS = ("image", "source", "status", "faces", "x0", "y0", "side", "left", "top", "right", "bottom", "score")
#: A chip cache's index: the same, plus each chip's chip <- image affine (row-major 2 x 3, source pixels).
CHIP_INDEX_COLUMNS = (*INDEX_COLUMNS, "t00", "t01", "t02", "t10", "t11", "t12")
#: The crop modes: "detect" (square around the detector's box, no alignment), "chip" (dlib's aligned face chip,
#: `faces.chip`), "none" (the images are model inputs already: only resized), "auto" ("none" for a crop cache or
#: synthetic export, else "detect"). `crop_folder` / `crop_files` make the first two.
CROP_MODES = ("auto", "detect", "none", "chip")
CUT_MODES = ("detect", "chip")


def model_cut(model) -> str:
    """How `crop="auto"` cuts photos for `model`: its `face_crop` attribute ("chip" for a network of dlib's
    aligned chips, `dlib_resnet`), else "detect" (the no-alignment square). A folder of model-input crops is only
    resized either way."""
    cut = getattr(model, "face_crop", "detect")
    return cut if cut in CUT_MODES else "detect"
#: Seconds between index writes in `crop_folder`: the work a killed run loses at most.
INDEX_WRITE_INTERVAL = 10.0


@dataclass(frozen=True)
class CropInfo:
    """How one image was cropped: status "face" (the main detected box), "centre" (no face, centre crop) or
    "no_face" (no face, skipped); the integer square `(x0, y0, side)` in source pixels (None when skipped);
    the box used; the number of faces found; the source `(height, width)`; for an aligned chip (`faces.chip`),
    `transform`, the chip <- image affine as 6 numbers (row-major 2 x 3), and `square` is the chip's rect before
    its turn.

    A source point p (pixel centres at integers) maps into the crop as `(p - (x0, y0) + 0.5) * size / side - 0.5`
    (`faces.landmarks.crop_landmarks`; tested to 0.05 px against `crop_square`).
    """

    status: Literal["face", "centre", "no_face"]
    square: tuple[int, int, int] | None
    box: Box | None
    faces: int
    source_shape: tuple[int, int]
    transform: tuple[float, ...] | None = None


def resolve_margin(detector: FaceDetector, margin: float | None) -> float:
    """`margin`, or when None the detector's `default_margin` (each detector's boxes have their own scale), else
    `DEFAULT_MARGIN`."""
    if margin is None:
        margin = getattr(detector, "default_margin", DEFAULT_MARGIN)
    if not math.isfinite(margin) or margin <= -1:
        raise ValueError(f"margin must be a finite number > -1, got {margin}")
    return float(margin)


def square_box(box: Box, margin: float = DEFAULT_MARGIN) -> tuple[float, float, float]:
    """`(x0, y0, side)` of the square centred on the box centre with `side = max(w, h) * (1 + margin)`.

    `margin` is the fraction of the box's longer side added in total, half on each side: 0 is the box itself
    (made square), 0.4 adds 20% of the box on every side. The square may extend beyond the image.
    """
    side = max(box.width, box.height) * (1.0 + margin)
    cx, cy = box.center
    return cx - side / 2, cy - side / 2, side


def centre_square(height: int, width: int) -> tuple[float, float, float]:
    """`(x0, y0, side)` of the largest square centred in a `height` x `width` image (the no-face fallback)."""
    side = min(height, width)
    return (width - side) / 2, (height - side) / 2, float(side)


def integer_square(x0: float, y0: float, side: float) -> tuple[int, int, int]:
    """The square rounded to whole pixels, as `crop_square` cuts it (side at least 1)."""
    return int(round(x0)), int(round(y0)), max(1, int(round(side)))


def crop_square(image: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """Cut the square `[x0, x0 + side) x [y0, y0 + side)` (rounded to whole pixels) out of `image`, padding with
    black where it leaves the image, and resize it to `size` x `size` (INTER_AREA shrinking, INTER_LINEAR
    growing). No rotation, no sub-pixel warp; works for [H, W] and [H, W, C] images."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    x0, y0, side = integer_square(x0, y0, side)
    h, w = image.shape[:2]
    x1, y1 = x0 + side, y0 + side
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx0 >= sx1 or sy0 >= sy1:  # the square misses the image entirely
        patch = np.zeros((side, side, *image.shape[2:]), dtype=image.dtype)
    else:
        patch = image[sy0:sy1, sx0:sx1]
        pads = (sy0 - y0, y1 - sy1, sx0 - x0, x1 - sx1)
        if any(pads):
            patch = cv2.copyMakeBorder(np.ascontiguousarray(patch), *pads, cv2.BORDER_CONSTANT, value=0)
            if image.ndim == 3 and patch.ndim == 2:  # OpenCV drops a single channel axis
                patch = patch[:, :, None]
    return np.ascontiguousarray(resize_image(patch, size)).reshape(size, size, *image.shape[2:])


def crop_face(
    image: np.ndarray,
    detector: FaceDetector,
    size: int = DEFAULT_SIZE,
    margin: float | None = None,
    on_missing: OnMissing = "center",
) -> tuple[np.ndarray | None, CropInfo]:
    """Crop the main detected face (`main_face`) (see `square_box`); without a face, the largest centred square
    (`on_missing="center"`) or None (`"skip"`). `margin=None` uses the detector's `default_margin`."""
    if on_missing not in ("center", "skip"):
        raise ValueError(f'on_missing must be "center" or "skip", got {on_missing!r}')
    margin = resolve_margin(detector, margin)
    h, w = image.shape[:2]
    boxes = detector.detect(image)
    box = main_face(boxes, h, w)
    if box is not None:
        status, square = "face", square_box(box, margin)
    elif on_missing == "center":
        status, square = "centre", centre_square(h, w)
    else:
        return None, CropInfo("no_face", None, None, 0, (h, w))
    info = CropInfo(status, integer_square(*square), box, len(boxes), (h, w))
    return crop_square(image, *square, size), info


#: Photos are decoded reduced (a JPEG at 1/2, 1/4 or 1/8, `images.decode_image_rgb_reduced`) as long as their
#: long side stays at least this: a 10000 px photo is cropped from 1250 px instead of 10000 px (memory about
#: 50 MB instead of 600 MB for the decode, and the detector's work shrinks with it). Images under twice this
#: size are decoded whole, so ordinary photos crop exactly as before.
CROP_MAX_SIDE = 1024


def crop_face_file(data: bytes | np.ndarray, name: str, detector: FaceDetector, size: int = DEFAULT_SIZE,
                   margin: float | None = None, on_missing: OnMissing = "center", crop: str = "detect"):  # fmt: skip
    """`crop_face` (`crop="detect"`) or `chip.chip_face` (`crop="chip"`; `margin` must then be None) of an encoded
    image (`data`, named `name` in errors), decoded reduced when it is large (`CROP_MAX_SIDE`); the returned
    `CropInfo` is in full-image pixels either way."""
    from explainface.readers.images import decode_image_rgb_reduced, image_size

    check_cut_mode(crop, margin)
    image, k = decode_image_rgb_reduced(data, name, CROP_MAX_SIDE)
    if crop == "chip":
        from explainface.faces.chip import chip_face

        face, info = chip_face(image, detector, size, on_missing)
    else:
        face, info = crop_face(image, detector, size, margin, on_missing)
    if k == 1:
        return face, info
    full = image_size(data)
    shape = (full[1], full[0]) if full else (image.shape[0] * k, image.shape[1] * k)
    square = None if info.square is None else tuple(int(v) * k for v in info.square)
    box = None if info.box is None else Box(info.box.left * k, info.box.top * k, info.box.right * k,
                                            info.box.bottom * k, info.box.score)  # fmt: skip
    transform = None
    if info.transform is not None:  # chip <- reduced image = chip <- (full image / k)
        t = info.transform
        transform = (t[0] / k, t[1] / k, t[2], t[3] / k, t[4] / k, t[5])
    return face, CropInfo(info.status, square, box, info.faces, shape, transform)


def check_cut_mode(crop: str, margin: float | None = None) -> None:
    """ValueError unless `crop` is a mode that cuts faces ("detect" or "chip"); a chip takes no `margin` (its
    padding is dlib's)."""
    if crop not in CUT_MODES:
        raise ValueError(f'crop must be "detect" or "chip" here, got {crop!r}')
    if crop == "chip" and margin is not None:
        raise ValueError("margin applies to square crops (crop='detect'); a chip's padding is dlib's 0.25")


@dataclass
class CropReport:
    """What `crop_folder` did: `total = cropped + centre_cropped + cached + skipped_no_face + unreadable`.

    `no_face` counts the images of this run without a face (`centre_cropped` of them written as centre crops);
    `no_face_files` also names the cached centre crops, so it lists every centre crop in `dst`. Names are paths
    relative to the source root; `unreadable_reasons` says what was wrong with each unreadable file.
    """

    src_root: str
    dst_root: str
    total: int = 0
    cropped: int = 0
    cached: int = 0
    no_face: int = 0
    centre_cropped: int = 0
    unreadable: int = 0
    seconds: float = 0.0
    no_face_files: list[str] = field(default_factory=list)
    unreadable_files: list[str] = field(default_factory=list)
    unreadable_reasons: dict[str, str] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def skipped_no_face(self) -> int:
        return self.no_face - self.centre_cropped

    def to_dict(self) -> dict:
        return {**asdict(self), "skipped_no_face": self.skipped_no_face}


def crop_folder(
    src_root: str | os.PathLike,
    dst_root: str | os.PathLike,
    size: int = DEFAULT_SIZE,
    margin: float | None = None,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    workers: int = 0,
    on_missing: OnMissing = "center",
    image_format: str = "jpg",
    progress: bool = True,
    crop: str = "detect",
) -> CropReport:
    """Crop every image of the identity folders under `src_root` into `dst_root/<identity>/<stem>.<format>`.

    `crop="chip"` writes dlib's aligned face chips (`faces.chip`; `margin` must be None) instead of square crops.
    `detector` is a name (`create_detector`) or an instance (pickled to workers; its `repr` is part of the cache
    key, so give it a stable one). `workers > 0` uses that many spawned processes, each with its own detector;
    outputs are identical for any `workers`. Re-running is cheap (see the module docstring); crops this folder
    made earlier that this run does not make (source gone, now skipped, other format) are removed.
    """
    start = time.perf_counter()
    _check_crop_options(size, on_missing, image_format)
    check_cut_mode(crop, margin)
    src, dst = Path(src_root), Path(dst_root)
    if dst.resolve() == src.resolve():
        raise ValueError("dst_root must differ from src_root")
    if isinstance(detector, str):
        detector = create_detector(detector)  # resolves "auto", fails early when dlib is missing
    margin = _resolve_mode(detector, margin, crop, size)
    index = scan_identity_folders(src)
    jobs = _plan(index.items, image_format)

    settings = _crop_settings(size, margin, detector, image_format, crop)
    dst.mkdir(parents=True, exist_ok=True)
    old_rows = _open_cache(dst, settings)
    meta = _crop_meta(src, settings, on_missing, image_format)
    _write_json(dst / META_FILE, meta)  # settings first: a killed run's crops are valid for these settings
    _remove_temporaries(dst, {rel.split("/", 1)[0] for rel, _ in jobs})

    report = CropReport(str(src), str(dst), total=len(jobs), settings={**settings, "on_missing": on_missing})
    rows, todo = _split_cached(jobs, old_rows, src, dst, on_missing, report)
    config = (str(src), str(dst), size, margin, on_missing, image_format, crop)
    _crop_todo(todo, detector, config, workers, dst, old_rows, rows, report, progress)
    _finish_folder(dst, old_rows, rows, meta, report, start)
    return report


def _check_crop_options(size: int, on_missing: str, image_format: str) -> None:
    """Reject a size, `on_missing` mode or image format that `crop_folder` cannot make."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if on_missing not in ("center", "skip"):
        raise ValueError(f'on_missing must be "center" or "skip", got {on_missing!r}')
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")


def _resolve_mode(detector: FaceDetector, margin: float | None, crop: str, size: int) -> float | None:
    """The margin of a square crop (`resolve_margin`); None for a chip, after checking its size and that dlib and
    its 5-point predictor are there (before any image is read)."""
    if crop == "chip":
        from explainface.faces.chip import check_chip_available

        if size < 2:
            raise ValueError(f"a chip is at least 2 px, got size {size}")
        check_chip_available()
        return None
    return resolve_margin(detector, margin)


def _crop_settings(size: int, margin: float | None, detector: FaceDetector, image_format: str,
                   crop: str = "detect") -> dict:  # fmt: skip
    """The settings a crop folder is made with (the cache key among them, `_cache_key`)."""
    if crop == "chip":
        from explainface.faces.chip import SHAPE_PREDICTOR_5_FILE

        return {
            "crop": "chip",
            "size": size,
            "margin": None,
            "detector": _detector_key(detector),
            "image_format": image_format,
            "padding": "constant black",
            "alignment": "dlib face chip: 5-point landmarks, similarity transform, bilinear (faces.align)",
            "chip_padding": CHIP_PADDING,
            "landmarks": SHAPE_PREDICTOR_5_FILE,
            "face_choice": "main (largest area - 2 * squared distance from the image centre)",
        }
    return {
        "crop": "detect",
        "size": size,
        "margin": margin,
        "detector": _detector_key(detector),
        "image_format": image_format,
        "padding": "constant black",
        "alignment": "none (axis-aligned square around the main face box)",
        "face_choice": "main (largest area - 2 * squared distance from the image centre)",
    }


def _open_cache(dst: Path, settings: dict) -> dict[str, dict]:
    """The index rows of the crops already in `dst`; none, and those crops removed, when made otherwise."""
    old_meta = _read_json(dst / META_FILE)
    old_rows = _read_index(dst / INDEX_FILE)
    if old_rows and (old_meta is None or _cache_key(old_meta) != _cache_key(settings)):
        made_with = "unknown settings" if old_meta is None else f"other settings ({_cache_key(old_meta)})"
        # stacklevel 3: the warning points at crop_folder's caller
        warnings.warn(f"{dst} holds crops made with {made_with}; re-cropping all", UserWarning, stacklevel=3)
        for out_rel in old_rows:  # the old cache goes as a whole, so the folder never mixes settings
            _unlink(dst / out_rel)
        old_rows = {}
        _write_index(dst / INDEX_FILE, old_rows)
    return old_rows


def _crop_meta(src: Path, settings: dict, on_missing: OnMissing, image_format: str) -> dict:
    """The contents of `crop_meta.json` for this run, not yet `complete`."""
    return {
        "format": "explainface-crops",
        "explainface_version": __version__,
        "source": str(src),
        **settings,
        "on_missing": on_missing,
        "jpeg": {"quality": JPEG_QUALITY, "chroma_subsampling": "4:4:4"} if image_format == "jpg" else None,
        "complete": False,
    }


def _split_cached(
    jobs: list[tuple[str, str]],
    old_rows: dict[str, dict],
    src: Path,
    dst: Path,
    on_missing: OnMissing,
    report: CropReport,
) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    """The index rows of the cached crops (counted in `report`) and the jobs left to do."""
    rows: dict[str, dict] = {}
    todo: list[tuple[str, str]] = []
    for rel, out_rel in jobs:
        row = old_rows.get(out_rel)
        if row is not None and row["source"] == rel and _is_fresh(dst / out_rel, src / rel):
            if row["status"] == "centre" and on_missing == "skip":
                todo.append((rel, out_rel))  # a centre crop that should now not exist: redo (and so remove)
                continue
            rows[out_rel] = row
            report.cached += 1
            if row["status"] == "centre":
                report.no_face_files.append(rel)
        else:
            todo.append((rel, out_rel))
    return rows, todo


def _crop_todo(
    todo: list[tuple[str, str]],
    detector: FaceDetector,
    config: tuple,
    workers: int,
    dst: Path,
    old_rows: dict[str, dict],
    rows: dict[str, dict],
    report: CropReport,
    progress: bool,
) -> None:
    """Crop `todo` (`_run`) under a progress bar, adding to `rows` and `report`; the index is written every
    `INDEX_WRITE_INTERVAL` seconds."""
    last_write = time.monotonic()
    with tqdm(total=len(todo), unit="img", desc="crop", disable=not progress) as bar:
        for results in _run(todo, detector, config, workers):
            _record_results(results, rows, report)
            bar.update(len(results))
            if time.monotonic() - last_write > INDEX_WRITE_INTERVAL:
                _write_index(dst / INDEX_FILE, {**old_rows, **rows})
                last_write = time.monotonic()


def _record_results(results: list, rows: dict[str, dict], report: CropReport) -> None:
    """Count one chunk's results in `report` and add the index rows of its crops to `rows`."""
    for rel, out_rel, info, problem in results:
        if problem is not None:
            report.unreadable += 1
            report.unreadable_files.append(rel)
            report.unreadable_reasons[rel] = problem
            continue
        if info.status == "face":
            report.cropped += 1
        else:
            report.no_face += 1
            report.no_face_files.append(rel)
        if info.status == "centre":
            report.centre_cropped += 1
        if info.square is not None:
            rows[out_rel] = _index_row(out_rel, rel, info)


def _finish_folder(
    dst: Path, old_rows: dict[str, dict], rows: dict[str, dict], meta: dict, report: CropReport, start: float
) -> None:
    """Remove stale crops, write the index, the completed meta and the report, and warn of unreadable files."""
    for out_rel in set(old_rows) - set(rows):  # crops we made before and do not make now
        stale = dst / out_rel
        if stale.is_file():
            stale.unlink()
    _write_index(dst / INDEX_FILE, rows)
    for names in (report.no_face_files, report.unreadable_files):
        names.sort()
    report.seconds = time.perf_counter() - start
    meta["complete"] = True
    meta["images"] = len(rows)
    _write_json(dst / META_FILE, meta)
    _write_json(dst / REPORT_FILE, report.to_dict())
    if report.unreadable:
        shown = ", ".join(report.unreadable_files[:10]) + (" ..." if report.unreadable > 10 else "")
        # stacklevel 3: the warning points at crop_folder's caller
        warnings.warn(f"{report.unreadable} unreadable image(s) skipped: {shown}", UserWarning, stacklevel=3)


FILES_META = "crop_files_meta.json"


def crop_files(
    paths: list[Path],
    src_root: str | os.PathLike,
    dst_root: str | os.PathLike,
    size: int = DEFAULT_SIZE,
    margin: float | None = None,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    progress: bool = True,
    crop: str = "detect",
) -> list[Path]:
    """Crop images in any folder layout (e.g. CFP's `NNN/frontal/XX.jpg`) to `dst_root/<path from src_root>.jpg`,
    one process, cached: a crop made with the same settings is reused. Faces not found are centre-cropped (as
    `crop_folder` does by default). Returns the crop of each path. `crop="chip"` makes aligned chips (`margin`
    None). `crop_folder` is the parallel version for identity folders."""
    check_cut_mode(crop, margin)
    if isinstance(detector, str):
        detector = create_detector(detector)
    margin = _resolve_mode(detector, margin, crop, size)
    src, dst = Path(src_root).resolve(), Path(dst_root)
    settings = {"crop": crop, "size": size, "margin": margin, "detector": _detector_key(detector),
                "image_format": "jpg",
                "face_choice": "main (largest area - 2 * squared distance from the image centre)"}  # fmt: skip
    if crop == "chip":
        settings["chip_padding"] = CHIP_PADDING
    dst.mkdir(parents=True, exist_ok=True)
    old = _read_json(dst / FILES_META)
    reuse = old is not None and _cache_key(old) == _cache_key(settings)
    _write_json(dst / FILES_META, {**settings, "source": str(src)})
    out, no_face = [], 0
    for path in tqdm(paths, desc="crop", unit="img", disable=not progress):
        rel = Path(path).resolve().relative_to(src)
        target = dst / rel.with_suffix(".jpg")
        if not (reuse and _is_fresh(target, Path(path))):
            face, info = crop_face_file(read_image_bytes(path), str(path), detector, size, margin, "center", crop)
            no_face += info.status != "face"
            _write_image(target, face, "jpg")
        out.append(target)
    if no_face:
        warnings.warn(f"{no_face} of {len(paths)} images under {src} had no face found: centre-"
                      + ("chipped" if crop == "chip" else "cropped"),
                      UserWarning, stacklevel=2)  # fmt: skip
    return out


def read_crop_meta(dst_root: str | os.PathLike) -> dict | None:
    """The settings a crop folder was made with (`crop_meta.json`), or None if it has none; training checks
    `size` (and `complete`) before using a cache."""
    return _read_json(Path(dst_root) / META_FILE)


def is_model_input_folder(folder: str | os.PathLike) -> bool:
    """Whether a folder's images are already model-input crops, not to be cropped again: a crop cache
    (`crop_meta.json`) or a synthetic export (`meta.json` of format explainface-synthetic-export), found at the
    folder or up to two levels above it (an export's `heldout/<identity>/` folders)."""
    here = Path(folder).resolve()
    for d in (here, *list(here.parents)[:2]):
        if (d / META_FILE).is_file():
            return True
        meta = _read_json(d / "meta.json")
        if isinstance(meta, dict) and meta.get("format") == "explainface-synthetic-export":
            return True
    return False


def _detector_key(detector: FaceDetector) -> str:
    """The detector's `repr` when its class defines one (with its settings), else its class name."""
    if type(detector).__repr__ is object.__repr__:
        return type(detector).__qualname__
    return repr(detector)


def _cache_key(settings: dict) -> tuple:
    """What must match for a cache to be reused; a meta without a `crop` mode is a (pre-chip) square-crop cache."""
    key = tuple(settings.get(k) for k in ("size", "margin", "detector", "image_format", "face_choice"))
    return (*key, settings.get("crop", "detect"), settings.get("chip_padding"))


def _plan(items: list[tuple[str, int]], image_format: str) -> list[tuple[str, str]]:
    """`(source, output)` relative paths; two sources with one stem in a folder would share an output."""
    jobs, seen = [], {}
    for rel, _ in items:
        folder, name = rel.rsplit("/", 1)
        out_rel = f"{folder}/{name.rsplit('.', 1)[0]}.{image_format}"
        if out_rel in seen:
            raise ValueError(f"{seen[out_rel]} and {rel} would both be cropped to {out_rel}; rename one")
        seen[out_rel] = rel
        jobs.append((rel, out_rel))
    return jobs


def _is_fresh(out: Path, source: Path) -> bool:
    try:
        return out.stat().st_mtime >= source.stat().st_mtime
    except OSError:
        return False


def _run(todo: list[tuple[str, str]], detector: FaceDetector, config: tuple, workers: int):
    """Yield the results of chunks of `todo`, in this process or in `workers` spawned processes."""
    if not todo:
        return
    if workers <= 0:
        for chunk in _chunks(todo, 64):
            yield _crop_chunk(detector, config, chunk)
        return
    # ~8 chunks per worker balance the load; at most 64 images per chunk keep the progress bar moving.
    chunk_size = max(1, min(64, math.ceil(len(todo) / (workers * 8))))
    # spawn, not fork: the parent may hold torch/OpenMP or OpenCV thread pools that do not survive a fork.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(detector, config)) as ex:
        futures = [ex.submit(_crop_chunk_in_worker, chunk) for chunk in _chunks(todo, chunk_size)]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


_worker_state: tuple[FaceDetector, tuple] | None = None


def _init_worker(detector: FaceDetector, config: tuple) -> None:
    global _worker_state
    cv2.setNumThreads(1)  # one process per core already
    _worker_state = (detector, config)


def _crop_chunk_in_worker(chunk: list[tuple[str, str]]) -> list:
    assert _worker_state is not None
    return _crop_chunk(*_worker_state, chunk)


def _crop_chunk(detector: FaceDetector, config: tuple, chunk: list[tuple[str, str]]) -> list:
    """Crop and write one chunk: `(source, output, CropInfo | None, problem | None)` per image."""
    src, dst, size, margin, on_missing, image_format, crop = config
    out = []
    for rel, out_rel in chunk:
        target = Path(dst) / out_rel
        try:
            data = read_image_bytes(os.path.join(src, rel))
        except (OSError, ValueError) as e:  # missing, unreadable, or not a regular file (a FIFO would block)
            out.append((rel, out_rel, None, _problem(e, rel)))
            _unlink(target)
            continue
        try:
            face, info = crop_face_file(data, rel, detector, size, margin, on_missing, crop)
        except (OSError, ValueError) as e:  # not a decodable image
            out.append((rel, out_rel, None, _problem(e, rel)))
            _unlink(target)
            continue
        except Exception as e:  # a detector failing on one image must not end a long run
            out.append((rel, out_rel, None, f"face detection failed: {type(e).__name__}: {e}"))
            _unlink(target)
            continue
        if face is None:
            _unlink(target)
        else:
            _write_image(target, face, image_format)
        out.append((rel, out_rel, info, None))
    return out


def _problem(e: BaseException, name: str) -> str:
    text = str(e) or type(e).__name__
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _write_image(path: Path, rgb: np.ndarray, image_format: str) -> None:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode("." + image_format, bgr, list(JPEG_PARAMS) if image_format == "jpg" else [])
    if not ok:
        raise OSError(f"could not encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.tobytes())


def _remove_temporaries(dst: Path, folders: set[str]) -> None:
    """Remove `.*.tmp` files a killed run left in the output folders."""
    for folder in folders:
        d = dst / folder
        if d.is_dir():
            for f in d.iterdir():
                if is_temporary(f) and f.is_file():
                    f.unlink()


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _index_row(out_rel: str, rel: str, info: CropInfo) -> dict:
    x0, y0, side = info.square
    b = info.box
    edges = ("", "", "", "", "") if b is None else (b.left, b.top, b.right, b.bottom, round(b.score, 4))
    values = (out_rel, rel, info.status, info.faces, x0, y0, side, *edges)
    if info.transform is None:
        return {k: str(v) for k, v in zip(INDEX_COLUMNS, values)}
    return {k: str(v) for k, v in zip(CHIP_INDEX_COLUMNS, (*values, *(repr(float(t)) for t in info.transform)))}


def _write_index(path: Path, rows: dict[str, dict]) -> None:
    chips = any("t00" in row for row in rows.values())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CHIP_INDEX_COLUMNS if chips else INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for key in sorted(rows):
        writer.writerow(rows[key])
    _write_text(path, buf.getvalue())


def _read_index(path: Path) -> dict[str, dict]:
    """Rows of `crop_index.csv` by output path; an unreadable index means no cache."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) not in (INDEX_COLUMNS, CHIP_INDEX_COLUMNS):
                return {}
            return {row["image"]: row for row in reader}
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}


def read_crop_index(dst_root: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of `crop_index.csv` as dicts (strings), sorted by output path: which crops are centre crops, and the
    square each was cut from (to map landmarks into a crop), or for a chip cache its affine (`chip_transform_of`)."""
    rows = _read_index(Path(dst_root) / INDEX_FILE)
    return [rows[k] for k in sorted(rows)]


def chip_transform_of(row: dict[str, str]) -> np.ndarray | None:
    """The chip <- source affine (float64 [2, 3]) of a chip cache's index row; None for a square crop's row."""
    if not row.get("t00"):
        return None
    return np.array([float(row[k]) for k in CHIP_INDEX_COLUMNS[-6:]], np.float64).reshape(2, 3)
