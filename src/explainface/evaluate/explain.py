"""The `explain` pipeline (docs/method.md §6-7, paper Tables 2, 4, 5): faces with part masks in, explainability
metrics out.

    faces (a landmark folder, a synthetic export, or the built-in generator)
      -> model-input crops with part label maps (the same no-alignment crop as `verify`)
      -> target-layer maps of the model (any layer, captured by name)
      -> PE, LS, AR and the channel dictionary -> explainability.json, channel_dictionary.{json,md}
      -> each channel's average peak location (Yin et al.) -> peak_locations.json, average_peaks.png

Where the part labels come from, per image of a folder, first found wins: `<stem>.parts.png` (a label map
indexing PART_NAMES, as `explainface synth` exports), `<stem>.pts` (68 iBUG landmarks, 300-W format), dlib's
68-point predictor (`landmarks="auto"`; `"file"` skips images without a file instead).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from explainface.argtypes import float_in, int_at_least
from explainface.data.parts import PART_NAMES

#: Image suffixes a face folder may hold (label PNGs `*.parts.png` are not faces).
FACE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp")
PARTS_SUFFIX = ".parts.png"
SYNTHETIC = "synthetic"


@dataclass
class PartSample:
    """One face as the model sees it: the input crop, its part labels (PART_NAMES ids) and where it came from."""

    name: str
    image: np.ndarray  # uint8 [S, S, 3]
    labels: np.ndarray  # uint8 [S, S]
    source: str  # "generator", "parts.png", "pts" or "dlib"


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
        """"skipped 2: a.png (unreadable image); b.png (no landmarks ...)": the count and the first reasons."""
        items = [f"{name} ({why})" for name, why in list(self.skipped.items())[:show]]
        more = f"; and {len(self.skipped) - show} more" if len(self.skipped) > show else ""
        return f"skipped {len(self.skipped)}" + (": " + "; ".join(items) + more if items else "")


def synthetic_samples(count: int, size: int, seed: int = 0, difficulty: str | float = "medium") -> Iterator[PartSample]:
    """`count` faces of held-out synthetic identities (never trained on), 5 images each, at the model input size."""
    from explainface.data.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces

    gen = SyntheticFaces(seed=seed, difficulty=difficulty)
    for i in range(count):
        identity, k = HELDOUT_FIRST_IDENTITY + i // 5, i % 5
        s = gen.sample(identity, k, size)
        yield PartSample(f"synthetic/{identity}/{k}", s.image, s.parts, "generator")


def face_files(folder: Path) -> list[Path]:
    """The face images under `folder` (recursive, sorted), label PNGs excluded."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in FACE_SUFFIXES and not p.name.endswith(PARTS_SUFFIX) and p.is_file()
    )


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
) -> Iterator[PartSample]:
    """Faces of `folder` at the model input size with part labels; bad files are skipped and counted in `counts`.

    `crop="detect"` crops each image as `verify` does (main face, square with the detector's margin, no
    alignment; the labels follow through the same square); `"none"` only resizes (the folder already holds
    model-input crops); `"auto"` picks "none" for a synthetic export or crop cache, else "detect".
    `limit` takes that many images, drawn with `seed` (all when None).
    """
    from explainface.data.crop import is_model_input_folder
    from explainface.data.detect import create_detector

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"face folder not found: {folder}")
    if crop not in ("auto", "detect", "none"):
        raise ValueError(f'crop must be "auto", "detect" or "none", got {crop!r}')
    if landmarks not in ("auto", "file"):
        raise ValueError(f'landmarks must be "auto" or "file", got {landmarks!r}')
    if crop == "auto":
        crop = "none" if is_model_input_folder(folder) else "detect"
    files = face_files(folder)
    if not files:
        raise ValueError(f"{folder}: no face images ({', '.join(FACE_SUFFIXES)}) found")
    if limit is not None and limit < len(files):
        pick = np.random.default_rng(seed).choice(len(files), size=limit, replace=False)
        files = [files[i] for i in sorted(pick)]
    counts = counts if counts is not None else SampleCounts()
    det = create_detector(detector) if crop == "detect" else None
    for path in tqdm(files, desc="faces", unit="img", disable=not progress):
        name = str(path.relative_to(folder))
        try:
            sample = face_sample(path, size, crop, det, landmarks, name=name)
        except (OSError, ValueError) as err:
            problem = str(err)
            counts.skip(name, problem[len(f"{path}: "):] if problem.startswith(f"{path}: ") else problem)
            continue
        counts.add(sample.source)
        yield sample


def face_sample(path: str | Path, size: int, crop: str = "auto", detector=None, landmarks: str = "auto",
                name: str | None = None) -> PartSample:  # fmt: skip
    """One face file at the model input size with its part labels (see `folder_samples` for `crop` and
    `landmarks`; `detector` is a name or a detector instance). Raises ValueError naming the file when it has no
    landmarks (no `.pts` / `.parts.png` beside it and dlib finds no face, or `landmarks="file"`)."""
    from explainface.data.crop import CROP_MAX_SIDE, crop_face, is_model_input_folder
    from explainface.data.detect import create_detector
    from explainface.data.images import load_image_rgb_reduced, points_to_reduced, resize_image
    from explainface.data.landmarks import read_landmarks
    from explainface.data.part_masks import (
        check_landmarks_in_image,
        crop_label_map,
        part_label_map,
        predict_landmarks68,
    )

    path = Path(path)
    if crop == "auto":
        crop = "none" if is_model_input_folder(path.parent) or is_model_input_folder(path.parent.parent) else "detect"
    stem = path.with_name(path.name.rsplit(".", 1)[0])
    label_png, pts_file = stem.with_name(stem.name + PARTS_SUFFIX), stem.with_suffix(".pts")
    # a large photo is decoded reduced (its landmarks follow); a label PNG is of the full image, so not then
    image, k = load_image_rgb_reduced(path, None if label_png.is_file() else max(CROP_MAX_SIDE, 2 * size))
    h, w = image.shape[:2]
    labels_full, source, pts = None, None, None
    if label_png.is_file():
        labels_full, source = load_label_png(label_png, (h, w)), "parts.png"
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
        det = create_detector(detector or "hog") if detector is None or isinstance(detector, str) else detector
        face, info = crop_face(image, det, size=size)
        labels = crop_label_map(labels_full, info.square, size)
    else:
        face, labels = resize_image(image, size), _resize_nearest(labels_full, size)  # same stretch
    if not labels.any():
        raise ValueError(f"{path}: its {source} labels mark no face part inside the {size}-px crop")
    return PartSample(name or str(path), face, labels, source)


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


@torch.no_grad()
def explain(
    model: str | Path,
    data: str | Path,
    out_dir: str | Path,
    images: int = 100,
    runs: int = 5,
    seed: int = 0,
    layer: str | None = None,
    rho: float = 0.1,
    limit: int | None = None,
    crop: str = "auto",
    detector: str = "hog",
    landmarks: str = "auto",
    batch: int = 64,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Explainability of `model` (a checkpoint path or an `nn.Module`) on `data` (a folder or "synthetic");
    writes explainability.json and the channel dictionary (JSON and a Markdown table) to `out_dir`.

    `images` and `runs` are the PE/AR draws (N images, R runs; docs/method.md §7.3). With `data="synthetic"` the
    generator supplies `limit` held-out faces (default max(images, 200)).
    """
    from explainface.data.synthetic.dataset import to_tensor
    from explainface.evaluate.explainability import ExplainabilityAccumulator, masks_from_labels
    from explainface.evaluate.peak_locations import PeakLocations
    from explainface.models.capture import FeatureCapture, find_module
    from explainface.train.checkpoint import load_model

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(model, device)
    net, size, label = loaded.model, loaded.input_size, loaded.label
    layer = layer or loaded.layer
    find_module(net, layer)  # a wrong name fails before any face is loaded
    counts = SampleCounts()
    n = limit if limit is not None or str(data) != SYNTHETIC else max(images, 200)
    samples = face_samples(data, size, crop, detector, landmarks, n, seed, counts, progress)

    acc = ExplainabilityAccumulator(size=size, rho=rho)
    peaks = PeakLocations(size)
    for chunk in batched(samples, batch):
        x = torch.stack([to_tensor(s.image) for s in chunk]).to(device)
        with FeatureCapture(net, layer, detach=True) as cap:
            net(x)
        maps = cap.output.float().cpu()
        labels = torch.from_numpy(np.stack([s.labels for s in chunk]))
        acc.add(maps, masks_from_labels(labels))
        peaks.add(maps, np.stack([s.image for s in chunk]))
    if acc.images == 0:
        raise ValueError(f"{data}: no usable faces ({counts.skipped_summary()})")
    t_maps = time.perf_counter()
    rep = acc.report(n_images=images, runs=runs, seed=seed)
    where = peaks.report()
    result = {
        **rep,
        "model": str(model) if not isinstance(model, torch.nn.Module) else label,
        "model_label": label,
        "layer": layer,
        "input_size": size,
        "data": str(data),
        "seed": seed,
        "part_names": list(PART_NAMES[1:]),
        "label_sources": counts.by_source,
        "skipped": len(counts.skipped),
        "skipped_files": dict(list(counts.skipped.items())[:100]),
        "peak_spread": where["spread_mean"],  # mean over channels of the spread of their peak (px)
        "seconds": {"maps": t_maps - start, "metrics": time.perf_counter() - t_maps},
    }
    write_channel_dictionary(rep["channels"], out)
    write_peak_locations(peaks, {ch["channel"]: ch.get("part") for ch in rep["channels"]}, out, label)
    (out / "explainability.json").write_text(json.dumps(json_safe(result), indent=2))
    return result


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
             counts: SampleCounts, progress: bool):  # fmt: skip
    """The faces of `data` ("synthetic": `limit` generated held-out faces, default 200; else a folder)."""
    if str(data) == SYNTHETIC:
        n = limit if limit is not None else 200
        counts.add("generator", n)
        return tqdm(synthetic_samples(n, size, seed=seed), total=n, desc="faces", unit="img", disable=not progress)
    return folder_samples(data, size, crop, detector, landmarks, limit, seed, counts, progress)


def write_peak_locations(peaks, channel_parts: dict, out: Path, label: str) -> dict:
    """peak_locations.json and average_peaks.png of a `PeakLocations` accumulator; returns its report."""
    from explainface.explain.figures import average_peak_figure

    where = peaks.report()
    (out / "peak_locations.json").write_text(json.dumps(json_safe(where), indent=2))
    average_peak_figure(peaks.mean_face(), where, channel_parts, out / "average_peaks.png",
                        title=f"Average peak location: {label}")  # fmt: skip
    return where


def average_peaks(model: str | Path, data: str | Path, out_dir: str | Path, limit: int | None = None, seed: int = 0,
                  crop: str = "auto", detector: str = "hog", landmarks: str = "auto", batch: int = 64,
                  device: str = "cpu", progress: bool = False) -> dict:  # fmt: skip
    """Only the average peak locations of `explain` (same faces, same files), e.g. for runs explained before it
    existed; channels are coloured by the part of `out_dir`'s channel_dictionary.json when there is one."""
    from explainface.data.synthetic.dataset import to_tensor
    from explainface.evaluate.peak_locations import PeakLocations
    from explainface.evaluate.scoring import target_maps
    from explainface.train.checkpoint import load_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(model, device)
    peaks = PeakLocations(loaded.input_size)
    counts = SampleCounts()
    samples = face_samples(data, loaded.input_size, crop, detector, landmarks, limit, seed, counts, progress)
    for chunk in batched(samples, batch):
        x = torch.stack([to_tensor(s.image) for s in chunk]).to(device)
        with torch.no_grad():
            peaks.add(target_maps(loaded.model, x, loaded.layer).float().cpu(), np.stack([s.image for s in chunk]))
    if peaks.faces == 0:
        raise ValueError(f"{data}: no usable faces ({counts.skipped_summary()})")
    dictionary = out / "channel_dictionary.json"
    parts = {c["channel"]: c.get("part") for c in json.loads(dictionary.read_text())} if dictionary.is_file() else {}
    return write_peak_locations(peaks, parts, out, loaded.label)


def json_safe(obj):
    """A copy that strict JSON can hold: non-finite floats become None (JSON has no NaN), paths become strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_channel_dictionary(channels: list[dict], out: Path) -> None:
    """`channel_dictionary.json` and a readable `channel_dictionary.md`: channels grouped by dominant part."""
    (out / "channel_dictionary.json").write_text(json.dumps(json_safe(channels), indent=2))
    header = "| part | channels | mean frequency | channel (frequency) |"
    lines = ["# Channel dictionary", "", header, "|---|---|---|---|"]
    by_part: dict[str, list[dict]] = {}
    for c in channels:
        by_part.setdefault(c["part"] or "(never active)", []).append(c)
    order = [p for p in PART_NAMES[1:] if p in by_part] + [p for p in by_part if p not in PART_NAMES]
    for part in order:
        cs = sorted(by_part[part], key=lambda c: -(c["frequency"] or 0.0))
        freq = [c["frequency"] for c in cs if c["frequency"] is not None]
        mean = f"{np.mean(freq):.2f}" if freq else "-"
        listed = ", ".join(f"{c['channel']} ({c['frequency']:.2f})" for c in cs[:12] if c["frequency"] is not None)
        more = f", ... {len(cs) - 12} more" if len(cs) > 12 else ""
        lines.append(f"| {part} | {len(cs)} | {mean} | {listed}{more} |")
    (out / "channel_dictionary.md").write_text("\n".join(lines) + "\n")


def summary_line(result: dict) -> str:
    return (
        f"{result['model_label']} [{result['layer']}] on {result['data']} ({result['images']} faces): "
        f"PE {result['pe_mean']:.4f} +- {result['pe_se']:.4f}, LS {result['ls']:.4f} "
        f"({result['ls_channels']} channels), AR {result['ar_mean']:.3f} +- {result['ar_std']:.3f}"
    )


def add_explain_parser(subparsers) -> None:
    """The `explain` subcommand: `explainface explain --model CKPT --data DIR|synthetic --out DIR [...]`."""
    e = subparsers.add_parser(
        "explain",
        help="explainability metrics: part explainability, location consistency, activation robustness",
        description="Measure how part-like the target layer's channels are (paper Tables 2, 4, 5): faces with part "
        "labels (a folder with .pts landmarks or .parts.png label maps, dlib landmarks otherwise; or 'synthetic') "
        "are cropped as for verify, the target-layer maps compared with the parts. Writes explainability.json, "
        "channel_dictionary.json and channel_dictionary.md.",
    )
    e.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    e.add_argument("--data", required=True, help='face folder (e.g. HELEN with .pts files) or "synthetic"')
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--images", type=int_at_least(1), default=100, help="N: images per draw (default 100, as the paper)")
    e.add_argument("--runs", type=int_at_least(1), default=5, help="R: independent draws (default 5)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--layer", default=None, help="target layer (default: the checkpoint's, e.g. features.relu5_3)")
    e.add_argument("--rho", type=float_in(0, 1), default=0.1, help="peak prominence threshold, relative to the map max")
    e.add_argument("--limit", type=int_at_least(1), default=None, help="use at most this many faces (default: all)")
    e.add_argument("--crop", default="auto", choices=("auto", "detect", "none"))
    e.add_argument("--detector", default="hog", choices=("hog", "cnn", "haar", "auto"))
    e.add_argument("--landmarks", default="auto", choices=("auto", "file"), help="auto: dlib where no file")
    e.add_argument("--batch", type=int_at_least(1), default=64)
    e.add_argument("--device", default="cpu")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_explain)


def _cmd_explain(args) -> int:
    result = explain(
        args.model, args.data, args.out, images=args.images, runs=args.runs, seed=args.seed, layer=args.layer,
        rho=args.rho, limit=args.limit, crop=args.crop, detector=args.detector, landmarks=args.landmarks,
        batch=args.batch, device=args.device, progress=not args.quiet,
    )  # fmt: skip
    print(summary_line(result))
    if result["skipped"]:
        print(f"skipped {result['skipped']} image(s): see skipped_files in explainability.json")
    print(f"wrote {args.out}/explainability.json, channel_dictionary.json and channel_dictionary.md")
    return 0
