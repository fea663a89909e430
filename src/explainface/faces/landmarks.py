"""68 landmarks of a face: dlib's iBUG predictor (`predict_landmarks68`, the model file that
`face_recognition_models` ships), and landmarks carried through the no-alignment crop (`crop_landmarks`,
`uncrop_landmarks`). The part masks (`parts.masks`) are drawn from these points."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from explainface.faces.crop import integer_square
from explainface.faces.detect import Box, FaceDetector, create_detector, face_recognition_model_path, main_face

SHAPE_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def crop_landmarks(landmarks: np.ndarray, square: tuple[float, float, float], size: int) -> np.ndarray:
    """Landmarks (0-based pixel (x, y), integer = pixel centre) of the source image -> the same points in the
    `size` x `size` crop that `crop_square(image, *square, size)` makes.

    `crop_square` cuts the whole pixels of `integer_square(*square)` and resizes them with OpenCV, whose
    resampling maps pixel centres: source x -> `(x - x0 + 0.5) * size / side - 0.5`.
    """
    x0, y0, side = integer_square(*square)
    pts = np.asarray(landmarks, np.float64)
    scale = size / side
    out = (pts - np.array([x0, y0], np.float64) + 0.5) * scale - 0.5
    return out.astype(np.float32)


def uncrop_landmarks(points: np.ndarray, square: tuple[float, float, float], size: int) -> np.ndarray:
    """The inverse of `crop_landmarks`: crop pixel points -> source pixel points."""
    x0, y0, side = integer_square(*square)
    pts = np.asarray(points, np.float64)
    return ((pts + 0.5) * side / size - 0.5 + np.array([x0, y0], np.float64)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _shape_predictor() -> Any:
    from explainface.faces.detect import import_dlib

    return import_dlib().shape_predictor(str(face_recognition_model_path(SHAPE_PREDICTOR_FILE)))


def predict_landmarks68(
    image_rgb: np.ndarray, box: Box | None = None, detector: str | FaceDetector = "hog"
) -> np.ndarray | None:
    """dlib's 68-point iBUG predictor (`shape_predictor_68_face_landmarks.dat` from `face_recognition_models`) on
    the main face (`detect.main_face`) or on `box`: float32 [68, 2] 0-based pixel (x, y), or None without a face.

    The predictor was trained on dlib HOG boxes; other detectors' boxes give somewhat worse points.
    """
    from explainface.faces.detect import as_uint8_image, import_dlib

    image = as_uint8_image(image_rgb)
    if box is None:
        det = create_detector(detector) if isinstance(detector, str) else detector
        box = main_face(det.detect(image), *image.shape[:2])
        if box is None:
            return None
    dlib = import_dlib()
    rect = dlib.rectangle(
        int(round(box.left)), int(round(box.top)), int(round(box.right)) - 1, int(round(box.bottom)) - 1
    )
    shape = _shape_predictor()(image, rect)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float32)
