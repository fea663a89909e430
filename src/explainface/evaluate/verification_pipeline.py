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

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from explainface.errors import InputError
from explainface.evaluate.verification import plot_roc, verification_report
from explainface.faces.pair_crops import check_crop, crop_images
from explainface.files import atomic_write_json

if TYPE_CHECKING:
    from torch import nn


def _reference(model) -> type | None:
    """The registered reference embedder (`evaluate.reference_embedders`) that `model` names, else None (a
    network of ours)."""
    from explainface.evaluate.reference_embedders import REFERENCES

    return REFERENCES.get(str(model)) if isinstance(model, (str, Path)) else None


#: How many skipped images a summary line or an error names (the result JSON names them all).
SHOWN = 3
#: The fewest pairs the k-fold protocol can score: a threshold chosen on some, tested on the others.
MIN_PAIRS = 2






















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
    check_crop(crop)
    if isinstance(detector, str) and detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    if _reference(model) is None:
        from explainface.evaluate.scoring import list_scorers

        if score not in ("auto", *list_scorers()):
            raise InputError(f"unknown score {score!r}; available: auto, {', '.join(list_scorers())}")


def _named(names: list[str], reasons: list[str], shown: int = SHOWN) -> str:
    listed = "; ".join(f"{n} ({r})" for n, r in zip(names[:shown], reasons[:shown]))
    return listed + (f"; and {len(names) - shown} more" if len(names) > shown else "")


def _rows(values, keep: np.ndarray):
    """The rows of `values` (a tensor or an array) where `keep` is True."""
    import torch

    idx = np.flatnonzero(keep)
    return values[torch.as_tensor(idx)] if isinstance(values, torch.Tensor) else np.asarray(values)[idx]


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
    options = {"score": score, "device": device, "precision": precision, "crops_dir": crops_dir, "detector": detector,
               "workers": workers, "progress": progress, "crop": crop, "batch": batch, "dlib_jitters": dlib_jitters}
    embedder = (_reference(model) or NetworkEmbedder)(model=model, **options)  # options checked before any read
    times = {"start": time.perf_counter()}
    scratch = tempfile.TemporaryDirectory(prefix="explainface-verify-") if out_dir is None else None
    out = Path(out_dir if out_dir is not None else scratch.name)
    pl = _enough_pairs(read_pairs(pairs, root=root, protocol=protocol), pairs)
    out.mkdir(parents=True, exist_ok=True)  # only once the input reads
    times["read"] = time.perf_counter()
    skipped = embedder.prepare(pl, out)
    times["crop"] = time.perf_counter()
    readable, keep = _usable_pairs(pl, skipped, pairs)
    feats = embedder.features(readable)
    _check_finite(_rows(feats, readable), model,
                  "embeddings" if embedder.name == "cosine" else f"{embedder.name} features", "images")  # fmt: skip
    times["embed"] = time.perf_counter()
    # one row per image of the pair set (NaN for the skipped ones), so that row i is always image i
    if out_dir is not None:
        np.save(out / ("embeddings.npy" if embedder.name == "cosine" else f"features_{embedder.name}.npy"),
                np.asarray(feats))  # fmt: skip
    rep, extra = _protocol(embedder, feats, pl, keep, skipped, model)
    times["protocol"] = time.perf_counter()
    roc = rep.pop("roc")
    if out_dir is not None:
        plot_roc({embedder.label: (roc["far"], roc["tar"])}, out / "roc.png", title=f"ROC on {_pairs_name(pl)}")
    described = {"model": model, "label": embedder.label, "score": embedder.name, "size": embedder.size,
                 "precision": embedder.precision, "pairs": pairs, "root": root, "protocol": protocol}  # fmt: skip
    result = _result(rep, extra, described, pl, skipped, keep, times)
    if out_dir is not None:
        atomic_write_json(out / "verification.json", result)
    else:
        scratch.cleanup()
    return result


class NetworkEmbedder:
    """A network of ours (a checkpoint, an `nn.Module` or a `LoadedModel`) as `verify`'s embedder: the pair set's
    faces cropped at its input size (cached), then its pair scorer's features (`evaluate.scoring`). A reference
    embedder (`evaluate.reference_embedders`) has the same methods: `prepare` (read and crop; the skipped images),
    `features` (one row per image, NaN where skipped), `score_pairs`, `extra` (what the result adds)."""

    def __init__(self, model, score: str = "auto", device: str = "cpu", precision: str = "fp32", crops_dir=None,
                 detector: str = "hog", workers: int = 2, progress: bool = True, crop: str = "auto", batch: int = 128,
                 **_: object) -> None:  # fmt: skip
        from explainface.training.checkpoint import _check_device

        _check_device(device)
        self.model, self.score, self.device, self.precision = model, score, device, precision
        self.crops_dir, self.detector, self.workers, self.progress = crops_dir, detector, workers, progress
        self.crop, self.batch = crop, batch

    def prepare(self, pl, out: Path) -> dict[int, str]:
        from explainface.evaluate.scoring import create_scorer
        from explainface.faces.crop import model_cut
        from explainface.training.checkpoint import load_model

        loaded = load_model(self.model, self.device)
        self.scorer = create_scorer(self.score, loaded, precision=self.precision)
        self.name, self.size = self.scorer.name, loaded.input_size
        self.label = self.scorer.label + (" bf16" if self.precision == "bf16" else "")
        kind = "chips" if self.crop == "chip" else "crops"
        crops_dir = Path(self.crops_dir or out / f"{kind}{loaded.input_size}")
        self.crops, skipped = crop_images(pl.images, loaded.input_size, crops_dir, self.detector, self.workers,
                                          self.progress, self.crop, cut=model_cut(loaded.model))  # fmt: skip
        return skipped

    def features(self, readable: np.ndarray):
        """The scorer's features of every readable crop, one row per image (NaN rows where skipped)."""
        import torch

        from explainface.evaluate.scoring import tensor_batches

        idx = np.flatnonzero(readable)
        part = self.scorer.features(tensor_batches([self.crops[i] for i in idx], self.batch, self.device,
                                                   self.progress))  # fmt: skip
        feats = torch.full((len(readable), *part.shape[1:]), float("nan"), dtype=part.dtype)
        feats[torch.as_tensor(idx)] = part
        return feats

    def score_pairs(self, feats, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.scorer.score_pairs(feats, a, b)

    def extra(self, a, b, same, folds) -> dict:
        return {}


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


def _protocol(embedder, feats, pl, keep: np.ndarray, skipped: dict[int, str], model) -> tuple[dict, dict]:
    """The 10-fold protocol on the usable pairs: the report (with its notes) and the embedder's extras."""
    a, b, same = pl.a[keep], pl.b[keep], pl.same[keep]
    folds = pl.folds[keep] if pl.folds is not None else 10
    scores = embedder.score_pairs(feats, a, b)
    _check_finite(scores, model, "scores", "pairs")
    rep = verification_report(scores, same, folds)
    extra = embedder.extra(a, b, same, folds)
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
        "precision": d["precision"],
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
