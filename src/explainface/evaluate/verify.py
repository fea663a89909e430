"""The `verify` pipeline (docs/method.md §5, paper Table 3): pairs in, 10-fold accuracy, AUC, EER, TAR@FAR and ROC out.

Two kinds of model share it:

* an explainface checkpoint: images are cropped by the project's no-alignment
  pipeline (detector, square crop, resize to the model's input size; crops are
  cached), embedded with the horizontal-flip sum, L2-normalised; folders that
  already hold model-input crops (a synthetic export, a crop cache) are only
  resized (`crop="auto"`); `crop="chip"` cuts dlib's aligned face chips instead
  (`faces.chip`: the detector, dlib's 5-point landmarks, a similarity
  transform; cached as `chips<size>`), what dlib's ResNet ported to PyTorch takes;
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

Only the images the pairs name are read and cropped. An image that cannot be read (an empty or truncated file,
text saved as .jpg) is skipped, not fatal: it is named with its reason in the result (`skipped_images`), the
pairs that use it are dropped and counted (`pairs_dropped`), and the summary says so; if every pair is dropped,
`verify` raises an `InputError`. Options (`batch`, `workers`, `device`, ...) are checked before anything is
read, and a model whose embeddings or scores are not finite is an error naming it, never a number.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from explainface.errors import InputError
from explainface.evaluate.verification import plot_roc, verification_report
from explainface.files import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from torch import nn

DLIB = "dlib"


def _is_dlib(model) -> bool:
    """Whether `model` names dlib's pretrained embedding rather than a network of ours."""
    return isinstance(model, (str, Path)) and str(model) == DLIB


#: How many skipped images a summary line or an error names (the result JSON names them all).
SHOWN = 3
#: The fewest pairs the k-fold protocol can score: a threshold chosen on some, tested on the others.
MIN_PAIRS = 2


def _common_root(paths: list[Path]) -> Path:
    """The folder above the images' identity folders: `root` of `root/<identity>/<file>`."""
    return Path(os.path.commonpath([str(p.resolve().parent.parent) for p in paths]))


def _identity_layout(paths: list[Path]) -> bool:
    """Whether every image is `root/<identity>/<file>` under one root (what `crop_folder` crops)."""
    root = _common_root(paths)
    return all(len(p.resolve().relative_to(root).parts) == 2 for p in paths)


def _reason(err: BaseException, name: str) -> str:
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
        reason = _reason(e, str(path))
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

    _check_crop(crop)
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
                skipped[i] = _reason(e, r.name)
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


def _check_crop(crop) -> None:
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
            made[j] = _reason(e, str(p))
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
            made[todo[k]] = _reason(e, str(paths[todo[k]]))
            del todo[k]
            continue
        for j, c in zip(todo, crops):
            made[j] = c
        break
    return made  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- dlib reference


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
            bad[j] = _reason(e, r.name)
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


# ---------------------------------------------------------------------------------------------- pipeline


def _whole(value, name: str, low: int) -> int:
    """`value` as an int >= `low`, else an `InputError` naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _check_options(model, batch, workers, dlib_jitters, precision, crop, score, detector) -> None:
    """The options of `verify`, checked before any file is read (the CLI's checks are not the only way in)."""
    from explainface.faces.detect import DETECTORS

    _whole(batch, "batch (images per forward pass)", 1)
    _whole(workers, "workers", 0)
    _whole(dlib_jitters, "dlib_jitters", 0)
    if precision not in ("fp32", "bf16"):
        raise InputError(f'precision must be "fp32" or "bf16", got {precision!r}')
    _check_crop(crop)
    if isinstance(detector, str) and detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if _is_dlib(model):
        if score not in ("auto", "cosine", DLIB):
            raise InputError(f"--model dlib scores with dlib's own descriptors; --score {score} needs a checkpoint")
    else:
        from explainface.evaluate.scoring import list_scorers

        if score not in ("auto", *list_scorers()):
            raise InputError(f"unknown score {score!r}; available: auto, {', '.join(list_scorers())}")


def _named(names: list[str], reasons: list[str], shown: int = SHOWN) -> str:
    listed = "; ".join(f"{n} ({r})" for n, r in zip(names[:shown], reasons[:shown]))
    return listed + (f"; and {len(names) - shown} more" if len(names) > shown else "")


def _check_finite(values, model, what: str, count: str) -> None:
    """An `InputError` naming the model when `values` (features or scores, one row per item) are not finite."""
    import torch

    v = torch.as_tensor(np.asarray(values)) if not isinstance(values, torch.Tensor) else values
    if v.numel() == 0:
        return
    ok = torch.isfinite(v.reshape(len(v), -1)).all(dim=1) if v.dim() > 1 else torch.isfinite(v)
    bad = int((~ok).sum())
    if bad:
        raise InputError(f"{model}: the network gives NaN or infinite {what} for {bad} of {len(v)} {count}: its "
                         "weights are broken (a diverged run?); use another checkpoint")  # fmt: skip


def verify(
    model: str | Path | nn.Module,
    pairs: str | Path,
    out_dir: str | Path | None = None,
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
    """Run the protocol for `model` (a checkpoint path, an `nn.Module`, a `LoadedModel`, or "dlib") on `pairs`;
    returns the result and, given `out_dir`, writes verification.json, roc.png and the embeddings there (with
    the crop cache, unless `crops_dir` names one; without `out_dir` the crops go to a temporary folder).

    `pairs` is anything `read_pairs` reads; a CFP folder takes `protocol` "FF" or "FP" (or is `Split/FF|FP`).
    `score` names the pair scorer (`evaluate.scoring`): "auto" (the checkpoint's own: xcos for an xCos checkpoint,
    else cosine), "cosine" or "xcos"; `model="dlib"` scores with dlib's descriptors. `crop`: "detect" (square
    crops, no alignment), "chip" (dlib's aligned face chips, `faces.chip`), "none" (only resized) or "auto"
    ("none" for a crop cache or synthetic export, else "detect").

    Bad input is an `InputError` (or `OSError`) naming it, raised before any work where it can be: `batch` < 1,
    `workers` or `dlib_jitters` < 0, an unknown `precision`/`crop`/`detector`/`score`, a `device` this machine
    does not have (checked before the checkpoint is read, so the checkpoint is not blamed), an unusable checkpoint,
    non-finite embeddings or scores. Unreadable images are skipped (module docstring): the result has
    `skipped_images` ({name: reason}), `images_skipped`, `pairs_dropped`, `pairs_in_file` and `pairs` (scored);
    `notes` says in words what the numbers rest on (skipped images, fewer folds, an undefined AUC: `auc`, `eer`
    are None (null) when the pairs are all of one kind). The protocol: `verification.kfold_accuracy`."""
    from explainface.readers.pairs import read_pairs

    _check_options(model, batch, workers, dlib_jitters, precision, crop, score, detector)
    is_dlib = _is_dlib(model)
    if not is_dlib:
        from explainface.training.checkpoint import _check_device

        _check_device(device)
    times = {"start": time.perf_counter()}
    scratch = tempfile.TemporaryDirectory(prefix="explainface-verify-") if out_dir is None else None
    out = Path(out_dir if out_dir is not None else scratch.name)
    pl = _enough_pairs(read_pairs(pairs, root=root, protocol=protocol), pairs)
    out.mkdir(parents=True, exist_ok=True)  # only once the input reads
    times["read"] = time.perf_counter()
    if is_dlib:
        scorer = DlibScorer(workers, progress, dlib_jitters)
        feats, skipped = scorer.features_of_files(pl.images), scorer.skipped
        size, score_name = 150, "cosine"
        times["crop"] = times["read"]
    else:
        scorer, crops, skipped, size = _scorer_and_crops(model, pl, score, device, precision, crops_dir, out,
                                                         detector, workers, progress, crop)  # fmt: skip
        score_name = scorer.name
        times["crop"] = time.perf_counter()
    readable, keep = _usable_pairs(pl, skipped, pairs)
    label = scorer.label + (" bf16" if precision == "bf16" and not is_dlib else "")
    if not is_dlib:
        feats = _features(scorer, crops, readable, model, batch, device, progress)
    times["embed"] = time.perf_counter()
    # one row per image of the pair set (NaN for the skipped ones), so that row i is always image i
    if out_dir is not None:
        np.save(out / ("embeddings.npy" if score_name == "cosine" else f"features_{score_name}.npy"), np.asarray(feats))
    rep, extra = _protocol(scorer, feats, pl, keep, skipped, model, is_dlib)
    times["protocol"] = time.perf_counter()
    roc = rep.pop("roc")
    if out_dir is not None:
        plot_roc({label: (roc["far"], roc["tar"])}, out / "roc.png", title=f"ROC on {_pairs_name(pl)}")
    described = {"model": model, "label": label, "score": score_name, "size": size, "precision": precision,
                 "pairs": pairs, "root": root, "protocol": protocol, "is_dlib": is_dlib}  # fmt: skip
    result = _result(rep, extra, described, pl, skipped, keep, times)
    if out_dir is not None:
        atomic_write_json(out / "verification.json", result)
    else:
        scratch.cleanup()
    return result


def _scorer_and_crops(model, pl, score, device, precision, crops_dir, out, detector, workers, progress, crop):
    """Our network's pair scorer, the pair set's crops at its input size, the skipped images, the input size."""
    from explainface.evaluate.scoring import create_scorer
    from explainface.training.checkpoint import load_model

    loaded = load_model(model, device)
    scorer = create_scorer(score, loaded, precision=precision)
    crops_dir = Path(crops_dir or out / f"{'chips' if crop == 'chip' else 'crops'}{loaded.input_size}")
    from explainface.faces.crop import model_cut

    crops, skipped = crop_images(pl.images, loaded.input_size, crops_dir, detector, workers, progress, crop,
                                 cut=model_cut(loaded.model))
    return scorer, crops, skipped, loaded.input_size


def _enough_pairs(pl, pairs):
    """`pl` itself; an `InputError` when it has fewer pairs than the protocol needs."""
    if len(pl) < MIN_PAIRS:
        raise InputError(
            f"{pairs}: only {len(pl)} pair; the k-fold protocol needs at least {MIN_PAIRS} (a threshold is chosen on "
            "some pairs and tested on the others; below 10 pairs, each pair is its own fold)"
        )
    return pl


def _usable_pairs(pl, skipped: dict[int, str], pairs) -> tuple[np.ndarray, np.ndarray]:
    """Which images are readable and which pairs have both; an `InputError` when fewer than `MIN_PAIRS` are left."""
    readable = np.ones(len(pl.images), dtype=bool)
    readable[list(skipped)] = False
    keep = readable[pl.a] & readable[pl.b]
    if keep.sum() < MIN_PAIRS:
        names = _skipped_names(pl, skipped)
        left = "all pairs were dropped" if not keep.any() else f"only {int(keep.sum())} of {len(pl)} pairs are left"
        raise InputError(f"{pairs}: {left} (the protocol needs at least {MIN_PAIRS}): {len(skipped)} of "
                         f"{len(pl.images)} images cannot be read: "
                         f"{_named(list(names), list(names.values()))}")  # fmt: skip
    return readable, keep


def _skipped_names(pl, skipped: dict[int, str]) -> dict[str, str]:
    """{image name: reason} of the skipped images, in image order."""
    return {pl.images[i].name: why for i, why in sorted(skipped.items())}


def _features(scorer, crops, readable: np.ndarray, model, batch, device, progress):
    """The scorer's features of every readable crop, one row per image of the pair set (NaN rows where skipped)."""
    import torch

    from explainface.evaluate.scoring import tensor_batches

    idx = np.flatnonzero(readable)
    part = scorer.features(tensor_batches([crops[i] for i in idx], batch, device, progress))
    _check_finite(part, model, "embeddings" if scorer.name == "cosine" else f"{scorer.name} features", "images")
    feats = torch.full((len(readable), *part.shape[1:]), float("nan"), dtype=part.dtype)
    feats[torch.as_tensor(idx)] = part
    return feats


def _protocol(scorer, feats, pl, keep: np.ndarray, skipped: dict[int, str], model, is_dlib: bool) -> tuple[dict, dict]:
    """The 10-fold protocol on the usable pairs: the report (with its notes) and dlib's extras."""
    extra: dict = dict(scorer.extra) if is_dlib else {}
    a, b, same = pl.a[keep], pl.b[keep], pl.same[keep]
    folds = pl.folds[keep] if pl.folds is not None else 10
    scores = scorer.score_pairs(feats, a, b)
    _check_finite(scores, model, "scores", "pairs")
    rep = verification_report(scores, same, folds)
    if is_dlib:
        extra["variants"] = scorer.variants(a, b, same, folds)
    dropped = int((~keep).sum())
    rep["notes"] = list(rep["notes"])
    if skipped:
        names = _skipped_names(pl, skipped)
        rep["notes"].insert(0, f"{len(skipped)} of {len(pl.images)} images cannot be read and were skipped: "
                               f"{_named(list(names), list(names.values()))}; the {dropped} of {len(pl)} "
                               "pairs that use them were dropped")  # fmt: skip
    return rep, extra


def _result(rep: dict, extra: dict, d: dict, pl, skipped: dict[int, str], keep: np.ndarray, times: dict) -> dict:
    """verification.json's content: the protocol's numbers, what they were measured on, the timings."""
    from explainface.training.checkpoint import model_name

    notes = rep.pop("notes")
    dropped = int((~keep).sum())
    end = time.perf_counter()
    return {
        **rep,
        "model": model_name(d["model"]),
        "model_label": d["label"],
        "score": d["score"],
        "input_size": d["size"],
        "precision": d["precision"] if not d["is_dlib"] else "dlib",
        "pairs_file": str(d["pairs"]),
        "root": None if d["root"] is None else str(d["root"]),
        "cfp_protocol": d["protocol"],
        "pairs_source": pl.source,
        "images": len(pl.images),
        "images_skipped": len(skipped),
        "skipped_images": _skipped_names(pl, skipped),
        "pairs_in_file": len(pl),
        "pairs_dropped": dropped,
        "pairs_dropped_reason": "they use an image that cannot be read (skipped_images)" if dropped else None,
        "official_folds": pl.folds is not None,
        "notes": notes,
        "seconds": {
            "read_pairs": times["read"] - times["start"],
            "crop": times["crop"] - times["read"],
            "embed": times["embed"] - times["crop"],
            "protocol": times["protocol"] - times["embed"],
            "total": end - times["start"],
        },
        **extra,
    }


class DlibScorer:
    """dlib's descriptors as a pair scorer: it reads the image files itself (its own detection and face chip);
    features are the flip-summed, L2-normalised descriptors, scores their cosine (our protocol, so only the model
    differs); dlib's own usage (Euclidean distance, one descriptor) is reported as `variants`. Images it cannot
    read are `skipped` ({index: reason}) with NaN features."""

    name = DLIB
    label = "dlib ResNet (face_recognition_models)"

    def __init__(self, workers: int = 2, progress: bool = True, jitters: int = 0) -> None:
        self.workers, self.progress, self.jitters = workers, progress, jitters
        self.extra: dict = {}
        self.raw: np.ndarray | None = None
        self.skipped: dict[int, str] = {}

    def features_of_files(self, refs) -> np.ndarray:
        raw, missing, self.skipped = dlib_embeddings(refs, self.workers, self.progress, jitters=self.jitters)
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
            "euclidean_no_mirror": verification_report(-np.linalg.norm(raw[a, 0] - raw[b, 0], axis=1), same, folds)[
                "accuracy_mean"
            ],  # fmt: skip
            "euclidean_flip_mean": verification_report(-np.linalg.norm(mean[a] - mean[b], axis=1), same, folds)[
                "accuracy_mean"
            ],  # fmt: skip
        }


def _pairs_name(pl) -> str:
    return pl.source.split(" (")[0] if pl.source.startswith("CFP-") else Path(pl.source).name


def summary_line(result: dict) -> str:
    """The result in one line, then one indented ``note:`` line per note (skipped images, an undefined AUC, ...)."""
    tar = result.get("tar_at_far") or {}
    tars = ", ".join(f"TAR@FAR={k} {100 * v:.2f}%" for k, v in tar.items() if v is not None)
    source = result.get("pairs_source", result["pairs_file"])
    auc, eer = result.get("auc"), result.get("eer")
    pairs = f"{result['pairs']} pairs"
    if result.get("pairs_dropped"):
        pairs = f"{result['pairs']} of {result['pairs_in_file']} pairs, {result['pairs_dropped']} dropped"
    line = (
        f"{result['model_label']} ({result.get('score', 'cosine')} score) on {source}: "
        f"accuracy {100 * result['accuracy_mean']:.2f}% +- {100 * result['accuracy_std']:.2f} ({pairs}), "
        + ("AUC undefined" if auc is None else f"AUC {auc:.4f}") + ", "
        + ("EER undefined" if eer is None else f"EER {100 * eer:.2f}%")
        + (f", {tars}" if tars else "")
    )  # fmt: skip
    return "\n".join([line, *(f"  note: {n}" for n in result.get("notes") or [])])
