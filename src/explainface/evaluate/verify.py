"""The `verify` pipeline (SPEC §5, paper Table 3): pairs in, 10-fold accuracy, AUC, EER, TAR@FAR and ROC out.

Two kinds of model share it:

* an explainface checkpoint: images are cropped by the project's no-alignment
  pipeline (detector, square crop, resize to the model's input size; crops are
  cached), embedded with the horizontal-flip sum, L2-normalised; folders that
  already hold model-input crops (a synthetic export, a crop cache) are only
  resized (`crop="auto"`);
* ``dlib``: dlib's pretrained ResNet embedding from `face_recognition_models`,
  with dlib's own detectors (HOG, and its CNN detector where HOG finds nothing)
  and 5-point face chip (150 px, padding 0.25), as dlib does it, on the main
  face (`detect.main_face`); also flip-summed and L2-normalised, so only the
  model differs. It is the external check of the protocol: dlib documents
  99.13% on LFW for one descriptor per face and 99.38% averaging 100 jittered
  ones (`dlib_jitters`); measured here 99.08% +- 0.30 (no jitter).

Images of insightface `.bin` files are already cropped faces: they are only
resized. Pairs are scored by a pair scorer (`evaluate.scoring`): the cosine of
the embeddings, or xCos for a checkpoint trained with an xCos head (`score`).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from explainface.evaluate.verification import plot_roc, verification_report

DLIB = "dlib"


def _common_root(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent.parent) for p in paths]))


def _identity_layout(paths: list[Path]) -> bool:
    """Whether every image is `root/<identity>/<file>` under one root (what `crop_folder` crops)."""
    root = _common_root(paths).resolve()
    return all(len(p.resolve().relative_to(root).parts) == 2 for p in paths)


def crop_images(
    refs, size: int, crops_dir: Path, detector: str, workers: int, progress: bool, crop: str = "auto"
) -> list[np.ndarray]:
    """Crops of the pair images at `size` (no alignment); cached under `crops_dir`.

    Images on disk in an identity-folder tree are cropped with `crop_folder` (parallel, cached), unless `crop`
    is "none", or "auto" and the folder already holds model-input crops (a crop cache or a synthetic export):
    those, and images given as bytes (`.bin`, already face crops), are only resized.
    """
    from explainface.data.crop import crop_folder, is_model_input_folder
    from explainface.data.images import load_image_rgb, resize_image

    if crop not in ("auto", "detect", "none"):
        raise ValueError(f'crop must be "auto", "detect" or "none", got {crop!r}')
    out: list[np.ndarray | None] = [None] * len(refs)
    on_disk = [(i, r.path) for i, r in enumerate(refs) if getattr(r, "path", None) is not None]
    if on_disk and crop == "auto":
        crop = "none" if is_model_input_folder(_common_root([p for _, p in on_disk])) else "detect"
    if on_disk and crop == "none":
        for i, p in on_disk:
            out[i] = resize_image(load_image_rgb(p), size)
    elif on_disk and not _identity_layout([p for _, p in on_disk]):
        # another layout (CFP: NNN/frontal/XX.jpg): crop file by file, cached the same way
        from explainface.data.crop import crop_files

        paths = [p for _, p in on_disk]
        root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
        for (i, _), cached in zip(on_disk, crop_files(paths, root, crops_dir, size, detector=detector,
                                                      progress=progress)):  # fmt: skip
            out[i] = resize_image(load_image_rgb(cached), size)
    elif on_disk:
        root = _common_root([p for _, p in on_disk])
        crop_folder(root, crops_dir, size=size, detector=detector, workers=workers, progress=progress)
        for i, p in on_disk:
            rel = p.resolve().relative_to(root.resolve())
            cached = crops_dir / rel.parent / (rel.stem + ".jpg")
            if not cached.is_file():
                cached = cached.with_suffix(".png")
            out[i] = resize_image(load_image_rgb(cached), size)
    for i, r in enumerate(refs):
        if out[i] is None:
            out[i] = resize_image(r.load_rgb(), size)
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- dlib reference


def _dlib_models():
    from explainface.data.detect import face_recognition_model_path, import_dlib

    dlib = import_dlib()
    return (
        dlib.get_frontal_face_detector(),
        dlib.cnn_face_detection_model_v1(str(face_recognition_model_path("mmod_human_face_detector.dat"))),
        dlib.shape_predictor(str(face_recognition_model_path("shape_predictor_5_face_landmarks.dat"))),
        dlib.face_recognition_model_v1(str(face_recognition_model_path("dlib_face_recognition_resnet_model_v1.dat"))),
    )


def _dlib_embed_chunk(refs, jitters: int = 0) -> tuple[np.ndarray, int]:
    """Raw dlib descriptors [n, 2, 128] of a chunk of image refs (one worker): of the face chip and its mirror.

    `jitters` > 0 averages each descriptor over that many randomly jittered chips (dlib's `num_jitters`)."""
    import dlib

    from explainface.data.detect import Box, main_face

    hog, cnn, sp, fr = _dlib_models()
    chips, missing = [], 0
    for r in refs:
        img = np.ascontiguousarray(r.load_rgb())
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
    desc = fr.compute_face_descriptor(chips, jitters) if jitters > 0 else fr.compute_face_descriptor(chips)
    return np.array(desc, dtype=np.float32).reshape(len(refs), 2, -1), missing


def dlib_embeddings(refs, workers: int, progress: bool, jitters: int = 0) -> tuple[np.ndarray, int]:
    """Raw dlib descriptors [N, 2, 128] (chip, mirror) in `workers` processes, and the count of faces not found."""
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
    return np.concatenate([e for e, _ in results]), sum(m for _, m in results)


# ---------------------------------------------------------------------------------------------- pipeline


def verify(
    model: str | Path,
    pairs: str | Path,
    out_dir: str | Path,
    root: str | Path | None = None,
    crops_dir: str | Path | None = None,
    detector: str = "hog",
    workers: int = 2,
    batch: int = 128,
    device: str = "cpu",
    progress: bool = True,
    precision: str = "fp32",
    dlib_jitters: int = 0,
    crop: str = "auto",
    protocol: str | None = None,
    score: str = "auto",
) -> dict:
    """Run the protocol for `model` (a checkpoint path or "dlib") on `pairs`; write verification.json and roc.png.

    `pairs` is anything `read_pairs` reads; a CFP folder takes `protocol` "FF" or "FP" (or is `Split/FF|FP`).
    `score` names the pair scorer (`evaluate.scoring`): "auto" (the checkpoint's own: xcos for an xCos checkpoint,
    else cosine), "cosine" or "xcos"; `model="dlib"` scores with dlib's descriptors."""
    from explainface.data.pair_files import read_pairs

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pl = read_pairs(pairs, root=root, protocol=protocol)
    t_read = time.perf_counter()
    folds = pl.folds if pl.folds is not None else 10
    extra: dict = {}
    if str(model) == DLIB:
        if score not in ("auto", "cosine", DLIB):
            raise ValueError(f"--model dlib scores with dlib's own descriptors; --score {score} needs a checkpoint")
        scorer = DlibScorer(workers, progress, dlib_jitters)
        feats = scorer.features_of_files(pl.images)
        extra.update(scorer.extra)
        extra["variants"] = scorer.variants(pl.a, pl.b, pl.same, folds)
        label, size, score_name = scorer.label, 150, "cosine"
        t_crop = t_read
    else:
        from explainface.evaluate.scoring import create_scorer, tensor_batches
        from explainface.train.checkpoint import load_model

        loaded = load_model(model, device)
        scorer = create_scorer(score, loaded, precision=precision)
        size, score_name = loaded.input_size, scorer.name
        crops_dir = Path(crops_dir or out / f"crops{size}")
        crops = crop_images(pl.images, size, crops_dir, detector, workers, progress, crop)
        t_crop = time.perf_counter()
        feats = scorer.features(tensor_batches(crops, batch, device, progress))
        label = scorer.label + (" bf16" if precision == "bf16" else "")
    t_embed = time.perf_counter()
    np.save(out / ("embeddings.npy" if score_name == "cosine" else f"features_{score_name}.npy"), np.asarray(feats))
    scores = scorer.score_pairs(feats, pl.a, pl.b)
    rep = verification_report(scores, pl.same, folds)
    t_protocol = time.perf_counter()
    roc = rep.pop("roc")
    plot_roc({label: (roc["far"], roc["tar"])}, out / "roc.png", title=f"ROC on {_pairs_name(pl)}")
    result = {
        **rep,
        "model": str(model),
        "model_label": label,
        "score": score_name,
        "input_size": size,
        "precision": precision if str(model) != DLIB else "dlib",
        "pairs_file": str(pairs),
        "pairs_source": pl.source,
        "images": len(pl.images),
        "official_folds": pl.folds is not None,
        "seconds": {
            "read_pairs": t_read - start,
            "crop": t_crop - t_read,
            "embed": t_embed - t_crop,
            "protocol": t_protocol - t_embed,
            "total": time.perf_counter() - start,
        },
        **extra,
    }
    (out / "verification.json").write_text(json.dumps(result, indent=2))
    return result


class DlibScorer:
    """dlib's descriptors as a pair scorer: it reads the image files itself (its own detection and face chip);
    features are the flip-summed, L2-normalised descriptors, scores their cosine (our protocol, so only the model
    differs); dlib's own usage (Euclidean distance, one descriptor) is reported as `variants`."""

    name = DLIB
    label = "dlib ResNet (face_recognition_models)"

    def __init__(self, workers: int = 2, progress: bool = True, jitters: int = 0) -> None:
        self.workers, self.progress, self.jitters = workers, progress, jitters
        self.extra: dict = {}
        self.raw: np.ndarray | None = None

    def features_of_files(self, refs) -> np.ndarray:
        raw, missing = dlib_embeddings(refs, self.workers, self.progress, jitters=self.jitters)
        self.raw = raw
        self.extra = {"dlib_no_face_found": missing, "dlib_jitters": self.jitters}
        flip_sum = raw.sum(1)
        return flip_sum / np.linalg.norm(flip_sum, axis=1, keepdims=True)

    def score_pairs(self, feats: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (feats[a] * feats[b]).sum(1)

    def variants(self, a: np.ndarray, b: np.ndarray, same: np.ndarray, folds) -> dict[str, float]:
        raw = self.raw
        assert raw is not None, "features_of_files first"
        mean = raw.mean(1)
        return {
            "euclidean_no_mirror": verification_report(-np.linalg.norm(raw[a, 0] - raw[b, 0], axis=1), same,
                                                       folds)["accuracy_mean"],  # fmt: skip
            "euclidean_flip_mean": verification_report(-np.linalg.norm(mean[a] - mean[b], axis=1), same,
                                                       folds)["accuracy_mean"],  # fmt: skip
        }


def _pairs_name(pl) -> str:
    return pl.source.split(" (")[0] if pl.source.startswith("CFP-") else Path(pl.source).name


def summary_line(result: dict) -> str:
    tar = result["tar_at_far"]
    tars = ", ".join(f"TAR@FAR={k} {100 * v:.2f}%" for k, v in tar.items() if v is not None)
    source = result.get("pairs_source", result["pairs_file"])
    return (
        f"{result['model_label']} ({result.get('score', 'cosine')} score) on {source}: "
        f"accuracy {100 * result['accuracy_mean']:.2f}% "
        f"+- {100 * result['accuracy_std']:.2f} ({result['pairs']} pairs), AUC {result['auc']:.4f}, "
        f"EER {100 * result['eer']:.2f}%" + (f", {tars}" if tars else "")
    )
