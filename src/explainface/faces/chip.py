"""The aligned crop mode "chip": detector -> dlib's 5-point shape predictor -> dlib's face chip (`faces.align`).

The face is the main detected one (`detect.main_face`), as in the no-alignment crop; dlib's 5-point predictor
(`shape_predictor_5_face_landmarks.dat` from `face_recognition_models`) finds its eye corners and nose base in the
detector's box, and `align.align_chip` cuts the chip (default 150 px, padding 0.25: what dlib's face-recognition
ResNet takes). Without a face, `on_missing="center"` runs the predictor in a centred box half the image's shorter
side (what `verify --model dlib` does: loose face photos centre their face) and marks the chip "centre";
`"skip"` makes no chip. The returned `CropInfo` carries the chip <- image affine (`transform`) that moves any
landmarks of the image into the chip (`align.transform_points`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from explainface.faces.align import CHIP_PADDING, CHIP_SIZE, chip_transform, extract_chip, face_chip_details
from explainface.faces.crop import CropInfo, OnMissing, integer_square
from explainface.faces.detect import Box, FaceDetector, as_uint8_image, face_recognition_model_path, main_face

SHAPE_PREDICTOR_5_FILE = "shape_predictor_5_face_landmarks.dat"


def check_chip_available() -> None:
    """ImportError / FileNotFoundError saying what to install when dlib or its 5-point predictor is missing."""
    from explainface.faces.detect import import_dlib

    import_dlib()
    face_recognition_model_path(SHAPE_PREDICTOR_5_FILE)


@functools.lru_cache(maxsize=1)
def _shape_predictor5() -> Any:
    from explainface.faces.detect import import_dlib

    return import_dlib().shape_predictor(str(face_recognition_model_path(SHAPE_PREDICTOR_5_FILE)))


def predict_landmarks5(image_rgb: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 5 face points (image-right eye outer, inner corner; image-left eye outer, inner corner; nose base)
    in `box`: float64 [5, 2], 0-based pixel (x, y)."""
    from explainface.faces.detect import import_dlib

    rect = import_dlib().rectangle(
        int(round(box.left)), int(round(box.top)), int(round(box.right)) - 1, int(round(box.bottom)) - 1
    )
    shape = _shape_predictor5()(as_uint8_image(image_rgb), rect)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float64)


def centre_box(height: int, width: int) -> Box:
    """The no-face fallback box: a centred square half the image's shorter side (`verify --model dlib`'s)."""
    side = min(height, width) // 2
    left, top = (width - side) // 2, (height - side) // 2
    return Box(left, top, (width + side) // 2 + 1, (height + side) // 2 + 1)


def chip_face(
    image: np.ndarray,
    detector: FaceDetector,
    size: int = CHIP_SIZE,
    on_missing: OnMissing = "center",
    padding: float = CHIP_PADDING,
) -> tuple[np.ndarray | None, CropInfo]:
    """The aligned chip of the main detected face (module docstring): `(chip, info)`, `info.transform` the chip
    <- image affine as 6 numbers (row-major 2 x 3) and `info.square` the chip's rect before its turn (whole
    pixels); `(None, info)` with status "no_face" when no face is found and `on_missing="skip"`."""
    if on_missing not in ("center", "skip"):
        raise ValueError(f'on_missing must be "center" or "skip", got {on_missing!r}')
    image = as_uint8_image(image)
    h, w = image.shape[:2]
    boxes = detector.detect(image)
    box = main_face(boxes, h, w)
    if box is not None:
        status = "face"
    elif on_missing == "center":
        status, box = "centre", centre_box(h, w)
    else:
        return None, CropInfo("no_face", None, None, 0, (h, w))
    details = face_chip_details(predict_landmarks5(image, box), size, padding)
    transform = tuple(float(v) for v in chip_transform(details).ravel())
    square = integer_square(details.left, details.top, details.width)
    info = CropInfo(status, square, box if status == "face" else None, len(boxes), (h, w), transform)
    return extract_chip(image, details), info
