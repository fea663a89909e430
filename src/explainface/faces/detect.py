"""Face detectors behind one call shape (docs/method.md §4.2): `detector.detect(image_rgb) -> list[Box]`.

dlib's HOG detector is the default; dlib's CNN (MMOD) detector, with the model file shipped by the
`face_recognition_models` package, is the accurate option; OpenCV's Haar cascade is the light fallback that
needs nothing beyond OpenCV. dlib is imported only when a dlib detector is built, so the package imports
without it. Models load on the first `detect` and are dropped when pickled, so a detector is cheap to send to
(or build in) a spawned worker process; no module-level state.

Each detector's boxes have their own scale, so each states the crop margin (`default_margin`, see
`crop.square_box`) that gives faces of one size in the crop. Measured on the HELEN test set (330 faces with 68
landmarks, scaled to at most 500 px):
HOG at 0.4, Haar at 0.3 and CNN at 0.5 all put the eye-to-mouth distance at 0.31 of the crop side, with all 68
landmarks inside the crop for 93%, 87% and 90% (CNN: of the first 100) of the faces; the rest are mostly
turned faces, whose far jaw points fall outside.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

DETECTORS = ("hog", "cnn", "haar", "auto", "hog+cnn")
DEFAULT_DETECTOR = "hog"
#: dlib's CNN face detector (MMOD), as shipped in the `face_recognition_models` package.
CNN_MODEL_FILE = "mmod_human_face_detector.dat"
HAAR_CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    """A detected face: pixel edges (`right`/`bottom` exclusive, x to the right, y down) and a detector score.

    Scores are not comparable across detectors (HOG: SVM margin, CNN: MMOD confidence, Haar: neighbour count).
    """

    left: float
    top: float
    right: float
    bottom: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with `detect(image_rgb: uint8 [H, W, 3] or [H, W]) -> list[Box]` (empty when no face)."""

    def detect(self, image_rgb: np.ndarray) -> list[Box]: ...


def main_face(boxes: Sequence[Box], height: int, width: int) -> Box | None:
    """The image's subject among `boxes` (ties: the first), or None; the crop keeps only this face.

    The rule of facenet's and insightface's LFW alignment scripts: the largest `area - 2 * d**2`, `d` the
    distance of the box centre from the image centre. Face datasets centre their subject (LFW by construction),
    and a bystander's face is often as large as the subject's. Measured on LFW with `verify --model dlib` (HOG):
    the largest box was a bystander in 19 images; the 29 pairs using them had 23 errors with the largest-box
    rule and none with this one (accuracy at dlib's 0.6 threshold 98.15% -> 98.70%). Detector scores are not
    used: they are not comparable across detectors.
    """
    cy, cx = height / 2, width / 2

    def score(b: Box) -> float:
        x, y = b.center
        return b.area - 2.0 * ((x - cx) ** 2 + (y - cy) ** 2)

    return max(boxes, key=score, default=None)


def as_uint8_image(image: np.ndarray) -> np.ndarray:
    """dlib and OpenCV want C-contiguous uint8 grey [H, W] or RGB [H, W, 3]."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"detectors take uint8 images, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a [H, W] or [H, W, 3] image, got shape {image.shape}")
    return np.ascontiguousarray(image)


def import_dlib() -> Any:
    """The dlib module, or an ImportError that says how to install it."""
    try:
        import dlib
    except ImportError as e:
        raise ImportError("the dlib face detectors need dlib: pip install dlib-bin (or use detector='haar')") from e
    return dlib


def dlib_available() -> bool:
    """Whether dlib can be imported (without importing it)."""
    return importlib.util.find_spec("dlib") is not None


class _LazyModel:
    """Loads its model on first use and drops it when pickled, so instances travel to spawned workers."""

    _model: Any = None

    def _load(self) -> Any:
        raise NotImplementedError

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_model", None)
        return state


class DlibHogDetector(_LazyModel):
    """dlib's frontal HOG + linear SVM detector. `upsample` doubles the image that many times first: measured on
    LFW faces, boxes down to ~30 px wide are found at 1 (the default), ~60 px at 0, at 1/4 of the time."""

    default_margin = 0.4

    def __init__(self, upsample: int = 1, threshold: float = 0.0) -> None:
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        import_dlib()  # fail at construction, not in the first worker task

    def _load(self) -> Any:
        return import_dlib().get_frontal_face_detector()

    def detect(self, image_rgb: np.ndarray) -> list[Box]:
        rects, scores, _ = self.model.run(as_uint8_image(image_rgb), self.upsample, self.threshold)
        return [Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(s)) for r, s in zip(rects, scores)]

    def __repr__(self) -> str:
        return f"DlibHogDetector(upsample={self.upsample}, threshold={self.threshold})"


def face_recognition_model_path(name: str) -> Path:
    """Path of a model file of the `face_recognition_models` package, found without importing it (its
    `__init__` needs `pkg_resources`, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{name} comes with the face_recognition_models package: pip install face_recognition_models")
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name} not found in face_recognition_models at {list(spec.submodule_search_locations)}")


class DlibCnnDetector(_LazyModel):
    """dlib's CNN (max-margin object detection) face detector: finds turned and tilted faces HOG misses, at
    ~10-20x HOG's time on a CPU. Its boxes are ~7% smaller than HOG's; at `upsample=0` it finds faces from ~70 px."""

    default_margin = 0.5

    def __init__(self, upsample: int = 0, model_path: str | Path | None = None) -> None:
        self.upsample = int(upsample)
        import_dlib()
        self.model_path = Path(model_path) if model_path is not None else face_recognition_model_path(CNN_MODEL_FILE)

    def _load(self) -> Any:
        return import_dlib().cnn_face_detection_model_v1(str(self.model_path))

    def detect(self, image_rgb: np.ndarray) -> list[Box]:
        found = self.model(as_uint8_image(image_rgb), self.upsample)
        out = []
        for d in found:
            r = d.rect
            out.append(Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(d.confidence)))
        return out

    def __repr__(self) -> str:
        return f"DlibCnnDetector(upsample={self.upsample}, model={self.model_path.name})"


class HaarDetector(_LazyModel):
    """OpenCV's Viola-Jones Haar cascade (frontal faces): no extra dependency, fast, more false positives; its
    boxes are ~8% larger than HOG's and sit higher on the face. Score = number of merged neighbour detections."""

    default_margin = 0.3

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24) -> None:
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.cascade_path = haar_cascade_path()

    def _load(self) -> Any:
        cascade = cv2.CascadeClassifier(str(self.cascade_path))
        if cascade.empty():
            raise OSError(f"OpenCV could not load the Haar cascade {self.cascade_path}")
        return cascade

    def detect(self, image_rgb: np.ndarray) -> list[Box]:
        image = as_uint8_image(image_rgb)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        rects, neighbours = self.model.detectMultiScale2(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        neighbours = np.asarray(neighbours, dtype=float).reshape(-1)
        return [
            Box(float(x), float(y), float(x + w), float(y + h), float(n)) for (x, y, w, h), n in zip(rects, neighbours)
        ]

    def __repr__(self) -> str:
        return (
            f"HaarDetector(scale_factor={self.scale_factor}, min_neighbors={self.min_neighbors}, "
            f"min_size={self.min_size})"
        )


def haar_cascade_path() -> Path:
    """The frontal-face cascade shipped with the opencv-python wheels (`cv2.data.haarcascades`)."""
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    if folder is None:
        raise ImportError(
            "this OpenCV build has no cv2.data.haarcascades (a system OpenCV?); install opencv-python-headless<5 "
            "or use a dlib detector"
        )
    path = Path(folder) / HAAR_CASCADE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Haar cascade not found: {path}")
    return path


class FallbackDetector:
    """`first`'s faces, or `then`'s where `first` finds none: "hog+cnn" is dlib's HOG detector with its CNN detector
    (upsampled once) only where HOG finds nothing, what `verify --model dlib` does; HOG's margin."""

    def __init__(self, first: FaceDetector, then: FaceDetector) -> None:
        self.first, self.then = first, then
        self.default_margin = getattr(first, "default_margin", 0.4)

    def detect(self, image_rgb: np.ndarray) -> list[Box]:
        return self.first.detect(image_rgb) or self.then.detect(image_rgb)

    def __repr__(self) -> str:
        return f"FallbackDetector({self.first!r} -> {self.then!r})"


def create_detector(name: str = DEFAULT_DETECTOR) -> FaceDetector:
    """A detector by name: "hog" (default), "cnn", "haar", "hog+cnn" (the CNN detector where HOG finds nothing:
    `verify --model dlib`'s), or "auto" (hog, or haar with a warning when dlib is not installed)."""
    if name == "auto":
        if dlib_available():
            return DlibHogDetector()
        warnings.warn("dlib is not installed: falling back to the OpenCV Haar face detector", UserWarning, stacklevel=2)
        return HaarDetector()
    if name == "hog":
        return DlibHogDetector()
    if name == "hog+cnn":
        return FallbackDetector(DlibHogDetector(), DlibCnnDetector(upsample=1))
    if name == "cnn":
        return DlibCnnDetector()
    if name == "haar":
        return HaarDetector()
    raise ValueError(f"unknown detector {name!r}; choose one of {DETECTORS}")
