"""Embedders that are not networks of ours, selected by name as `verify`'s model (`verify(model="dlib")`): the
external checks of the protocol. Each reads the pair set's image files itself (its own detection and alignment)
and is registered with `register_reference`; `verify` treats every embedder, ours or a reference, the same way
(`evaluate.verification_pipeline.NetworkEmbedder` has the same methods).

* ``dlib``: dlib's pretrained ResNet from `face_recognition_models`, with dlib's own detectors (HOG, and its CNN
  detector where HOG finds nothing) and 5-point face chip (150 px, padding 0.25), on the main face; features are
  the flip-summed, L2-normalised descriptors and scores their cosine (our protocol, so only the model differs);
  dlib's own usage (Euclidean distance, one descriptor) is reported as `variants`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from explainface.errors import InputError
from explainface.evaluate.verification import verification_report
from explainface.faces.pair_crops import skip_reason

#: name -> embedder class (constructed with verify's options as keywords; each takes what it needs).
REFERENCES: dict[str, type] = {}


def register_reference(name: str) -> Callable[[type], type]:
    """Make an embedder class available as `verify(model=name)`."""

    def add(cls: type) -> type:
        if name in REFERENCES:
            raise ValueError(f"reference embedder {name!r} is registered twice")
        REFERENCES[name] = cls
        return cls

    return add


def _dlib_models():
    from explainface.faces.detect import face_recognition_model_path, import_dlib

    dlib = import_dlib()
    return (
        dlib.get_frontal_face_detector(),
        dlib.cnn_face_detection_model_v1(str(face_recognition_model_path("mmod_human_face_detector.dat"))),
        dlib.shape_predictor(str(face_recognition_model_path("shape_predictor_5_face_landmarks.dat"))),
        dlib.face_recognition_model_v1(str(face_recognition_model_path("dlib_face_recognition_resnet_model_v1.dat"))),
    )


#: The size of dlib's face descriptor.
DLIB_DIM = 128


def _dlib_embed_chunk(refs, jitters: int = 0) -> tuple[np.ndarray, int, dict[int, str]]:
    """Raw dlib descriptors [n, 2, 128] of a chunk of image refs (one worker): of the face chip and its mirror;
    the count of faces not found; the images that cannot be read ({index in the chunk: reason}, NaN rows).

    `jitters` > 0 averages each descriptor over that many randomly jittered chips (dlib's `num_jitters`)."""
    import dlib

    from explainface.faces.detect import Box, main_face

    hog, cnn, sp, fr = _dlib_models()
    chips, missing, bad, good = [], 0, {}, []
    for j, r in enumerate(refs):
        try:
            img = np.ascontiguousarray(r.load_rgb())
        except (OSError, ValueError) as e:
            bad[j] = skip_reason(e, r.name)
            continue
        good.append(j)
        h, w = img.shape[:2]
        faces = list(hog(img, 1)) or [m.rect for m in cnn(img, 1)]  # the CNN detector only where HOG fails
        if faces:
            boxes = [Box(f.left(), f.top(), f.right(), f.bottom()) for f in faces]
            rect = faces[boxes.index(main_face(boxes, h, w))]  # the subject, not the largest bystander
        else:  # no detector found a face: a centred box half the image wide (loose crops centre the face)
            missing += 1
            side = min(h, w) // 2
            rect = dlib.rectangle((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
        chip = dlib.get_face_chip(img, sp(img, rect), size=150, padding=0.25)
        chips += [chip, np.ascontiguousarray(chip[:, ::-1])]
    out = np.full((len(refs), 2, DLIB_DIM), np.nan, dtype=np.float32)
    if chips:
        desc = fr.compute_face_descriptor(chips, jitters) if jitters > 0 else fr.compute_face_descriptor(chips)
        out[good] = np.array(desc, dtype=np.float32).reshape(len(good), 2, -1)
    return out, missing, bad


def dlib_embeddings(refs, workers: int, progress: bool, jitters: int = 0) -> tuple[np.ndarray, int, dict[int, str]]:
    """Raw dlib descriptors [N, 2, 128] (chip, mirror) in `workers` processes, the count of faces not found, and
    the images that cannot be read ({index: reason}; their rows are NaN)."""
    from functools import partial

    chunk = 64
    parts = [refs[i : i + chunk] for i in range(0, len(refs), chunk)]
    job = partial(_dlib_embed_chunk, jitters=jitters)
    if workers <= 0:
        results = [job(p) for p in tqdm(parts, desc="dlib", disable=not progress)]
    else:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(tqdm(pool.map(job, parts), total=len(parts), desc="dlib", disable=not progress))
    bad = {start + j: why for start, (_, _, b) in zip(range(0, len(refs), chunk), results) for j, why in b.items()}
    raw = np.concatenate([e for e, _, _ in results]) if results else np.zeros((0, 2, DLIB_DIM), np.float32)
    return raw, sum(m for _, m, _ in results), bad


@register_reference("dlib")
class DlibEmbedder:
    """dlib's descriptors as `verify`'s embedder (module docstring). Images it cannot read are skipped ({index:
    reason}) with NaN features. Options: `workers` processes, `progress`, `dlib_jitters` (dlib's `num_jitters`)."""

    name = "cosine"  # the score: the cosine of the flip-summed descriptors
    label = "dlib ResNet (face_recognition_models)"
    size = 150
    precision = "dlib"

    def __init__(self, workers: int = 2, progress: bool = True, dlib_jitters: int = 0, score: str = "auto",
                 **_: object) -> None:  # fmt: skip
        if score not in ("auto", "cosine", "dlib"):
            raise InputError(f"--model dlib scores with dlib's own descriptors; --score {score} needs a checkpoint")
        self.workers, self.progress, self.jitters = workers, progress, dlib_jitters
        self.raw: np.ndarray | None = None
        self.feats: np.ndarray | None = None
        self.report: dict = {}

    def prepare(self, pl, out) -> dict[int, str]:
        """Read and embed the pair set's images; the skipped ones ({index: reason})."""
        raw, missing, skipped = dlib_embeddings(pl.images, self.workers, self.progress, jitters=self.jitters)
        self.raw = raw
        self.report = {"dlib_no_face_found": missing, "dlib_jitters": self.jitters}
        flip_sum = raw.sum(1)
        self.feats = flip_sum / np.linalg.norm(flip_sum, axis=1, keepdims=True)
        return skipped

    def features(self, readable: np.ndarray) -> np.ndarray:
        return self.feats

    def score_pairs(self, feats: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (feats[a] * feats[b]).sum(1)

    def extra(self, a: np.ndarray, b: np.ndarray, same: np.ndarray, folds) -> dict:
        """What the result reports beyond the protocol: faces not found, jitters, dlib's own scoring's accuracy."""
        return {**self.report, "variants": self._variants(a, b, same, folds)}

    def _variants(self, a: np.ndarray, b: np.ndarray, same: np.ndarray, folds) -> dict[str, float]:
        raw = self.raw
        assert raw is not None, "prepare first"
        mean = raw.mean(1)
        return {
            "euclidean_no_mirror": verification_report(-np.linalg.norm(raw[a, 0] - raw[b, 0], axis=1), same, folds)[
                "accuracy_mean"
            ],  # fmt: skip
            "euclidean_flip_mean": verification_report(-np.linalg.norm(mean[a] - mean[b], axis=1), same, folds)[
                "accuracy_mean"
            ],  # fmt: skip
        }
