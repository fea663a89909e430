"""Landmark files of every format docs/method.md §6.1 names, and index maps from 98/106 points to iBUG 68.

Inside the package landmarks are float32 `[N, 2]` arrays of (x, y) pixel
coordinates, 0-based. Every offset conversion happens here:

* 300-W `.pts` (`read_pts`, `write_pts`): 1-based on disk (Matlab convention),
  so the reader subtracts 1 and the writer adds 1.
* LaPa 106-point `.txt` (`read_lapa106`): a first line `106`, then 106 `x y`
  rows, 0-based; read as is.
* WFLW 98-point annotation lists (`read_wflw`): one face per line, 0-based; read as is.
* COCO-style keypoint JSON (`read_coco_keypoints`): COCO pixel coordinates are
  taken as 0-based and read as is; points with visibility 0 become NaN.

Index maps to iBUG 68 (0-based; the first of each left/right pair is the
subject's right side, image left in a frontal face). Each entry of
`WFLW98_TO_68` / `LAPA106_TO_68` is one source index, or a tuple of source
indices to average. Where each iBUG group comes from:

=====================  ==============================  ================================
iBUG 68 group          WFLW 98                         LaPa 106
=====================  ==============================  ================================
jaw 0-16               contour 0-32, every other       contour 0-32, every other
right brow 17-21       33-37 (upper brow contour)      33-37 (upper brow contour)
left brow 22-26        42-46 (upper brow contour)      42-46 (upper brow contour)
nose bridge 27-30      51-54                           51-54
nose base 31-35        55-59                           58-62 (centre of the 55-65 arc)
right eye 36-41        60 61 63 64 65 67 (of 60-67)    66 67 69 70 71 73 (of 66-73)
left eye 42-47         68 69 71 72 73 75 (of 68-75)    75 76 78 79 80 82 (of 75-82)
mouth 48-67            76-95 (outer 76-87, inner       84-103 (outer 84-95, inner
                       88-95)                          96-103)
unused                 lower brows 38-41, 47-50;       lower brows 38-41, 47-50; nose
                       mid-lids 62, 66, 70, 74;        sides 55-57, 63-65; mid-lids
                       pupils 96-97                    68, 72, 77, 81; eye centres 74,
                                                       83; pupils 104-105
=====================  ==============================  ================================

Eyes: both 98/106 layouts put 8 points on each eye (corner, 3 upper, corner, 3
lower) where iBUG puts 6 (corner, 2 upper, corner, 2 lower); the maps keep the
corners and the outer two of each lid's three, so iBUG's lid points (at 1/3 and
2/3 of the lid) come from points at 1/4 and 3/4 of it: a shift of about 1/12
of the eye width, the price of a map without interpolation weights.

Sources: the WFLW map is the one in wide use (`WFLW_2_iBUG68` in e.g. pixel3dmm
and MonoNPHM). LaPa follows the JD-landmark 106 layout; its map was derived
from the 68 -> 106 and WFLW -> LaPa correspondences of MMPose's face6 config
(`configs/face_2d_keypoint/rtmpose/face6/`), which agree with the LaPa left/right
swap table in MMPose's `lapa.py`: LaPa shares WFLW's indices up to 54, then its
5 nose-base points are LaPa 58-62, its eyes WFLW's + 6 / + 7 and its mouth WFLW's + 8.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: 300-W coordinates are 1-based; ours are 0-based.
PTS_OFFSET = 1.0

#: Number of points of each landmark scheme `to_ibug68` knows.
SCHEME_POINTS: dict[str, int] = {"ibug68": 68, "wflw98": 98, "lapa106": 106}

#: One entry per iBUG point: a source index, or a tuple of source indices to average.
IndexMap = tuple[int | tuple[int, ...], ...]

_EYE8_TO_6 = (0, 1, 3, 4, 5, 7)  # of an 8-point eye: corner, upper 1 and 3, corner, lower 1 and 3

WFLW98_TO_68: IndexMap = (
    *range(0, 33, 2),  # jaw 0-16
    *range(33, 38),  # right brow 17-21 (upper contour)
    *range(42, 47),  # left brow 22-26 (upper contour)
    *range(51, 55),  # nose bridge 27-30
    *range(55, 60),  # nose base 31-35
    *(60 + k for k in _EYE8_TO_6),  # right eye 36-41
    *(68 + k for k in _EYE8_TO_6),  # left eye 42-47
    *range(76, 96),  # mouth 48-67
)

LAPA106_TO_68: IndexMap = (
    *range(0, 33, 2),  # jaw 0-16
    *range(33, 38),  # right brow 17-21 (upper contour)
    *range(42, 47),  # left brow 22-26 (upper contour)
    *range(51, 55),  # nose bridge 27-30
    *range(58, 63),  # nose base 31-35
    *(66 + k for k in _EYE8_TO_6),  # right eye 36-41
    *(75 + k for k in _EYE8_TO_6),  # left eye 42-47
    *range(84, 104),  # mouth 48-67
)

_INDEX_MAPS: dict[str, IndexMap] = {
    "ibug68": tuple(range(68)),
    "wflw98": WFLW98_TO_68,
    "lapa106": LAPA106_TO_68,
}

#: WFLW's 6 attribute flags, in file order.
WFLW_ATTRIBUTES: tuple[str, ...] = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")
_WFLW_FIELDS = 98 * 2 + 4 + len(WFLW_ATTRIBUTES) + 1
#: The largest magnitude a coordinate may have: landmarks are float32, and a larger value would become infinite.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _shown(line: str, limit: int = 120) -> str:
    """`repr(line)`, cut to `limit` characters: a message quotes the offending line, not a megabyte of it."""
    text = repr(line)
    return text if len(text) <= limit else text[:limit] + "..."


def _coordinate_ok(v: float) -> bool:
    return math.isfinite(v) and abs(v) <= _FLOAT32_MAX


def _read_lines(path: Path, kind: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines; undecodable bytes are a ValueError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: malformed {kind}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _xy_row(fields: list[str], fail, n: int, line: str) -> tuple[float, float]:
    if len(fields) != 2:
        raise fail(f"line {n}: expected two numbers 'x y', got {_shown(line)}")
    try:
        x, y = float(fields[0]), float(fields[1])
    except ValueError:
        raise fail(f"line {n}: non-numeric row {_shown(line)}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise fail(f"line {n}: non-finite coordinate {_shown(line)}")
    if not (_coordinate_ok(x) and _coordinate_ok(y)):
        raise fail(f"line {n}: coordinate beyond the float32 range (|v| > 3.4e38) {_shown(line)}")
    return x, y


# ---------------------------------------------------------------------------
# 300-W .pts


def write_pts(path: str | os.PathLike, landmarks: np.ndarray) -> Path:
    """Write 0-based `[N, 2]` landmarks as a 300-W `.pts` file (header, braces, 1-based rows)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"landmarks must have shape [N, 2], got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks must be finite")
    rows = "".join(f"{x + PTS_OFFSET:.4f} {y + PTS_OFFSET:.4f}\n" for x, y in pts)
    path = Path(path)
    path.write_text(f"version: 1\nn_points: {len(pts)}\n{{\n{rows}}}\n")
    return path


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Read a 300-W `.pts` file (header form or bare `x y` rows) as 0-based float32 `[N, 2]`.

    Raises `ValueError` naming the file and the problem when the file is malformed.
    """
    path = Path(path)
    lines = _read_lines(path, ".pts file")

    def fail(problem: str) -> ValueError:
        return ValueError(f"{path}: malformed .pts file: {problem}")

    if not lines:
        raise fail("empty file")
    expected = None
    has_header = any(line.split(":")[0].strip().lower() in ("version", "n_points") for _, line in lines[:3])
    if has_header or lines[0][1] == "{":
        body_start = None
        for k, (n, line) in enumerate(lines):
            if line == "{":
                body_start = k + 1
                break
            key, sep, value = line.partition(":")
            if not sep:
                raise fail(f"line {n}: expected a 'key: value' header line or '{{', got {_shown(line)}")
            if key.strip().lower() == "n_points":
                try:
                    expected = int(value.strip())
                except ValueError:
                    raise fail(f"line {n}: n_points is not an integer: {_shown(value.strip())}") from None
        if body_start is None:
            raise fail("missing opening '{'")
        if lines[-1][1] != "}":
            raise fail("missing closing '}'")
        body = lines[body_start:-1]
    else:
        body = lines

    rows = [_xy_row(line.split(), fail, n, line) for n, line in body]
    if not rows:
        raise fail("no points")
    if expected is not None and len(rows) != expected:
        raise fail(f"header says n_points: {expected} but the file has {len(rows)} points")
    return (np.asarray(rows, dtype=np.float64) - PTS_OFFSET).astype(np.float32)


# ---------------------------------------------------------------------------
# LaPa 106-point text


def _read_counted_points(path: Path, expected: int | None, kind: str) -> np.ndarray:
    """A count line `N`, then N rows `x y` (0-based); `expected` fixes N when given."""
    lines = _read_lines(path, kind)

    def fail(problem: str) -> ValueError:
        return ValueError(f"{path}: malformed {kind}: {problem}")

    if not lines:
        raise fail("empty file")
    n0, first = lines[0]
    try:
        count = int(first)
    except ValueError:
        raise fail(f"line {n0}: expected the point count, got {_shown(first)}") from None
    if expected is not None and count != expected:
        raise fail(f"line {n0}: point count is {count}, expected {expected}")
    if count <= 0:
        raise fail(f"line {n0}: point count must be positive, got {count}")
    rows = [_xy_row(line.split(), fail, n, line) for n, line in lines[1:]]
    if len(rows) != count:
        raise fail(f"the count line says {count} points but the file has {len(rows)}")
    return np.asarray(rows, dtype=np.float32)


def read_lapa106(path: str | os.PathLike) -> np.ndarray:
    """Read a LaPa landmark file (`106`, then 106 rows `x y`, 0-based) as float32 `[106, 2]`."""
    return _read_counted_points(Path(path), 106, "LaPa 106-point landmark file")


# ---------------------------------------------------------------------------
# WFLW 98-point annotation lists


@dataclass(frozen=True)
class WFLWRecord:
    """One face of a WFLW annotation list; `image` is relative to the WFLW images folder."""

    image: str
    landmarks: np.ndarray  # float32 [98, 2], 0-based
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    attributes: dict[str, bool]  # keys: WFLW_ATTRIBUTES, in file order


def read_wflw(path: str | os.PathLike) -> list[WFLWRecord]:
    """Read a WFLW list (`list_98pt_rect_attr_*.txt`): per line 196 coordinates, box, 6 flags, image path.

    Fields are whitespace-separated (so the image path holds no spaces, as in WFLW). Coordinates are
    read as 0-based; errors name the file and the line.
    """
    path = Path(path)
    kind = "WFLW annotation file"
    records = []
    for n, line in _read_lines(path, kind):

        def fail(problem: str, n: int = n) -> ValueError:
            return ValueError(f"{path}: malformed {kind}: line {n}: {problem}")

        fields = line.split()
        if len(fields) != _WFLW_FIELDS:
            raise fail(
                f"expected {_WFLW_FIELDS} fields (196 coordinates, 4 box values, 6 attribute flags, "
                f"image path), got {len(fields)}"
            )
        try:
            values = [float(v) for v in fields[:200]]
        except ValueError:
            raise fail("non-numeric coordinate or box value") from None
        if not all(math.isfinite(v) for v in values):
            raise fail("non-finite coordinate or box value")
        if not all(abs(v) <= _FLOAT32_MAX for v in values[:196]):
            raise fail("coordinate beyond the float32 range (|v| > 3.4e38)")
        flags = fields[200:206]
        if any(f not in ("0", "1") for f in flags):
            raise fail(f"attribute flags must be 0 or 1, got {' '.join(flags)}")
        x_min, y_min, x_max, y_max = values[196:200]
        if x_max < x_min or y_max < y_min:
            raise fail(f"box has x_max < x_min or y_max < y_min: {values[196:200]}")
        records.append(
            WFLWRecord(
                image=fields[206],
                landmarks=np.asarray(values[:196], dtype=np.float32).reshape(98, 2),
                box=(x_min, y_min, x_max, y_max),
                attributes={name: f == "1" for name, f in zip(WFLW_ATTRIBUTES, flags, strict=True)},
            )
        )
    if not records:
        raise ValueError(f"{path}: malformed {kind}: no records")
    return records


# ---------------------------------------------------------------------------
# COCO-style keypoint JSON


def _to_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range
        return math.inf if value > 0 else -math.inf


def _is_id(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def read_coco_keypoints(path: str | os.PathLike, field: str = "auto") -> dict[str, list[np.ndarray]]:
    """Read COCO-style keypoints: `file_name` -> one float32 `[K, 2]` array per annotation, in file order.

    `field` is the annotation key holding the flat `[x, y, v, ...]` list: `"keypoints"`, `"face_kpts"`
    (COCO-WholeBody's 68 face points, iBUG order) or `"auto"` (`face_kpts` when the file has it, else
    `keypoints`). Points with visibility `v <= 0` (unlabelled) become NaN. COCO pixel coordinates are
    taken as 0-based and not shifted. Images without annotations map to an empty list.
    """
    path = Path(path)
    if field not in ("auto", "keypoints", "face_kpts"):
        raise ValueError(f'field must be "auto", "keypoints" or "face_kpts", got {field!r}')

    def fail(problem: str) -> ValueError:
        return ValueError(f"{path}: malformed COCO keypoint file: {problem}")

    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise fail(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise fail(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise fail("JSON nested too deeply") from None
    except ValueError as e:  # an integer of more digits than Python converts (4300)
        raise fail(f"invalid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise fail('expected an object with an "images" list')
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise fail('"annotations" must be a list')

    names: dict[object, str] = {}
    out: dict[str, list[np.ndarray]] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")) or not isinstance(image.get("file_name"), str):
            raise fail(f'images[{i}]: needs an "id" (number or string) and a "file_name" string')
        if image["id"] in names:
            raise fail(f"images[{i}]: duplicate image id {image['id']!r}")
        names[image["id"]] = image["file_name"]
        out.setdefault(image["file_name"], [])

    if field == "auto":
        has_face = any(isinstance(a, dict) and "face_kpts" in a for a in annotations)
        field = "face_kpts" if has_face else "keypoints"
    for i, ann in enumerate(annotations):
        has_id = isinstance(ann, dict) and _is_id(ann.get("id"))
        where = f"annotations[{i}]" + (f" (id {str(ann['id'])[:80]})" if has_id else "")
        if not isinstance(ann, dict):
            raise fail(f"{where}: not an object")
        if not _is_id(ann.get("image_id")) or ann["image_id"] not in names:
            image_id = ann.get("image_id")
            shown = _shown(image_id) if _is_id(image_id) or image_id is None else type(image_id).__name__
            raise fail(f"{where}: image_id {shown} is not in images")
        flat = ann.get(field)
        if not isinstance(flat, list) or not flat or len(flat) % 3:
            raise fail(f'{where}: "{field}" must be a non-empty list of x, y, v triples')
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            raise fail(f'{where}: "{field}" holds a non-numeric value')
        try:
            kpts = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
        except OverflowError:  # an integer beyond the float64 range: infinite, refused below if labelled
            kpts = np.asarray([_to_float(v) for v in flat], dtype=np.float64).reshape(-1, 3)
        labelled = kpts[:, 2] > 0
        if not np.isfinite(kpts[labelled, :2]).all():
            raise fail(f'{where}: "{field}" has a non-finite coordinate on a labelled point')
        if not (np.abs(kpts[labelled, :2]) <= _FLOAT32_MAX).all():
            raise fail(f'{where}: "{field}" has a coordinate beyond the float32 range (|v| > 3.4e38)')
        points = np.where(labelled[:, None], kpts[:, :2], np.nan).astype(np.float32)
        out[names[ann["image_id"]]].append(points)
    return out


# ---------------------------------------------------------------------------
# index maps and the one entry point


def apply_index_map(points: np.ndarray, index_map: IndexMap) -> np.ndarray:
    """Pick (or average) source points per `index_map` entry: float32 `[len(index_map), 2]`; NaN propagates."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape [N, 2], got {pts.shape}")
    out = np.empty((len(index_map), 2), dtype=np.float64)
    for k, entry in enumerate(index_map):
        idx = (entry,) if isinstance(entry, int) else tuple(entry)
        if not idx or min(idx) < 0 or max(idx) >= len(pts):
            raise ValueError(f"index map entry {k} ({entry!r}) is out of range for {len(pts)} points")
        out[k] = pts[list(idx)].mean(axis=0)
    return out.astype(np.float32)


def infer_scheme(n_points: int) -> str:
    """The landmark scheme of a point count: 68 -> "ibug68", 98 -> "wflw98", 106 -> "lapa106"."""
    for name, n in SCHEME_POINTS.items():
        if n == n_points:
            return name
    raise ValueError(f"cannot infer a landmark scheme from {n_points} points (known: 68, 98, 106)")


def to_ibug68(points: np.ndarray, scheme: str = "auto") -> np.ndarray:
    """Landmarks of `scheme` ("ibug68", "wflw98", "lapa106", or "auto" from the count) -> iBUG float32 `[68, 2]`."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape [N, 2], got {pts.shape}")
    if scheme == "auto":
        scheme = infer_scheme(len(pts))
    if scheme not in _INDEX_MAPS:
        raise ValueError(f"unknown landmark scheme {scheme!r} (known: auto, {', '.join(_INDEX_MAPS)})")
    if len(pts) != SCHEME_POINTS[scheme]:
        raise ValueError(f"scheme {scheme!r} has {SCHEME_POINTS[scheme]} points, got {len(pts)}")
    return apply_index_map(pts, _INDEX_MAPS[scheme])


def read_landmarks(path: str | os.PathLike, scheme: str = "auto") -> np.ndarray:
    """One face's landmarks in iBUG-68 order, 0-based float32 `[68, 2]`, from a `.pts` or LaPa-style `.txt`.

    `.pts` files are 300-W (1-based); any other file whose first line is a point count is read as
    LaPa-style 0-based rows. `scheme` names the file's layout ("auto": from the point count).
    Multi-face files (WFLW lists, COCO JSON) have their own readers and are refused here.
    """
    path = Path(path)
    if path.suffix.lower() == ".pts":
        pts = read_pts(path)
    elif path.suffix.lower() == ".json":
        raise ValueError(f"{path}: a JSON keypoint file holds many faces; read it with read_coco_keypoints")
    else:
        lines = _read_lines(path, "landmark file")
        first = lines[0][1] if lines else ""
        if first.isdigit():
            pts = _read_counted_points(path, None, "landmark file")
        elif len(first.split()) == _WFLW_FIELDS:
            raise ValueError(f"{path}: looks like a WFLW annotation list (many faces); read it with read_wflw")
        else:
            raise ValueError(
                f"{path}: unrecognised landmark file: expected a .pts file or a first line with the point count"
            )
    try:
        return to_ibug68(pts, scheme)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


#: iBUG 68-point index of each point's mirror image (left <-> right): jaw, brows, nostrils, eyes, mouth.
IBUG_MIRROR: tuple[int, ...] = tuple(
    list(range(16, -1, -1))  # jaw 0..16
    + list(range(26, 21, -1))  # brows 17..21 <- 26..22
    + list(range(21, 16, -1))  # brows 22..26 <- 21..17
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # eye 36..41 <- the other eye
    + [39, 38, 37, 36, 41, 40]  # eye 42..47
    + [54, 53, 52, 51, 50, 49, 48]  # outer lip top 48..54
    + [59, 58, 57, 56, 55]  # outer lip bottom 55..59
    + [64, 63, 62, 61, 60]  # inner lip top 60..64
    + [67, 66, 65]  # inner lip bottom 65..67
)


def mirror_landmarks(landmarks, width: float):
    """68 landmarks [..., 68, 2] of a face after a horizontal flip of its `width`-pixel image: x -> width - 1 - x
    (0-based pixel centres) and each point renumbered as its mirror (`IBUG_MIRROR`), so point 36 stays the
    outer corner of the image-left eye. Works on NumPy arrays and torch tensors."""
    out = landmarks[..., list(IBUG_MIRROR), :]
    x = width - 1 - out[..., 0]
    if hasattr(out, "clone"):
        out = out.clone()
    else:
        out = out.copy()
    out[..., 0] = x
    return out


def check_landmarks_in_image(points: np.ndarray, width: int, height: int, what: str = "image") -> None:
    """ValueError unless the face the landmarks outline (their bounding box's centre) lies inside the image and
    no point is more than an image side outside it: landmarks of another image, or in another scale, are not
    silently turned into an empty or shifted part mask."""
    pts = np.asarray(points, np.float64)
    lo, hi = pts.min(0), pts.max(0)
    centre, size = (lo + hi) / 2, np.array([width, height], np.float64)
    if not ((centre >= 0).all() and (centre < size).all() and (lo > -size).all() and (hi < 2 * size).all()):
        raise ValueError(
            f"the landmarks lie outside the {what}: x {lo[0]:.4g}..{hi[0]:.4g}, y {lo[1]:.4g}..{hi[1]:.4g} "
            f"for {width} x {height} px (wrong landmarks for this image, or in another scale?)"
        )
