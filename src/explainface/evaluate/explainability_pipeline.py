"""The `explain` pipeline (docs/method.md §6-7, paper Tables 2, 4, 5): faces with part masks in, explainability
metrics out.

    faces (a landmark folder, a synthetic export, or the built-in generator)
      -> model-input crops with part label maps (the same no-alignment crop as `verify`)
      -> target-layer maps of the model (any layer, captured by name)
      -> PE, LS, AR and the channel dictionary -> explainability.json, channel_dictionary.{json,md}
      -> each channel's average peak location (Yin et al.) -> peak_locations.json, average_peaks.png

The faces and their part labels come through `explainface.parts.samples` (which says where labels come from).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from explainface.files import atomic_write_json, atomic_write_text
from explainface.parts.labels import PART_NAMES
from explainface.parts.samples import (
    SYNTHETIC,
    SampleCounts,
    batched,
    face_samples,
)


@torch.no_grad()
def explain(
    model: str | Path | torch.nn.Module,
    faces: str | Path,
    out_dir: str | Path | None = None,
    n_faces: int = 100,
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
    """Explainability of `model` (a checkpoint path, an `nn.Module` or a `LoadedModel`) on `faces` (a folder or
    "synthetic"); returns the result (explainability.json's content) and, given `out_dir`, writes it there with
    the channel dictionary (JSON and a Markdown table) and the average peak locations.

    `n_faces` and `runs` are the PE/AR draws (N images, R runs; docs/method.md §7.3). With `faces="synthetic"`
    the generator supplies `limit` held-out faces (default max(n_faces, 200)).
    """
    from explainface.evaluate.explainability import ExplainabilityAccumulator, masks_from_labels
    from explainface.evaluate.peak_locations import PeakLocations
    from explainface.faces.crop import model_cut
    from explainface.inputs import to_tensor
    from explainface.models.capture import find_module, target_maps
    from explainface.training.checkpoint import load_model, model_name

    start = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(model, device)
    net, size, label = loaded.model, loaded.input_size, loaded.label
    layer = layer or loaded.layer
    find_module(net, layer)  # a wrong name fails before any face is loaded
    counts = SampleCounts()
    n = limit if limit is not None or str(faces) != SYNTHETIC else max(n_faces, 200)
    samples = face_samples(faces, size, crop, detector, landmarks, n, seed, counts, progress, model_cut(net))

    acc = ExplainabilityAccumulator(size=size, rho=rho)
    peaks = PeakLocations(size)
    for chunk in batched(samples, batch):
        x = torch.stack([to_tensor(s.image) for s in chunk]).to(device)
        with torch.no_grad():
            maps = target_maps(net, x, layer, detach=True).float().cpu()
        labels = torch.from_numpy(np.stack([s.labels for s in chunk]))
        acc.add(maps, masks_from_labels(labels))
        peaks.add(maps, np.stack([s.image for s in chunk]))
    if acc.images == 0:
        raise ValueError(f"{faces}: no usable faces ({counts.skipped_summary()})")
    t_maps = time.perf_counter()
    rep = acc.report(n_images=n_faces, runs=runs, seed=seed)
    where = peaks.report()
    result = {
        **rep,
        "model": model_name(model),
        "model_label": label,
        "layer": layer,
        "input_size": size,
        "data": str(faces),
        "seed": seed,
        "part_names": list(PART_NAMES[1:]),
        "label_sources": counts.by_source,
        "skipped": len(counts.skipped),
        "skipped_files": dict(list(counts.skipped.items())[:100]),
        "peak_spread": where["spread_mean"],  # mean over channels of the spread of their peak (px)
        "seconds": {"maps": t_maps - start, "metrics": time.perf_counter() - t_maps},
    }
    if out is not None:
        write_channel_dictionary(rep["channels"], out)
        write_peak_locations(peaks, {ch["channel"]: ch.get("part") for ch in rep["channels"]}, out, label)
        atomic_write_json(out / "explainability.json", result)
    return result


def write_peak_locations(peaks, channel_parts: dict, out: Path, label: str) -> dict:
    """peak_locations.json and average_peaks.png of a `PeakLocations` accumulator; returns its report."""
    from explainface.evaluate.peak_locations import average_peak_figure

    where = peaks.report()
    atomic_write_json(out / "peak_locations.json", where)
    average_peak_figure(peaks.mean_face(), where, channel_parts, out / "average_peaks.png",
                        title=f"Average peak location: {label}")  # fmt: skip
    return where


def average_peaks(model: str | Path, data: str | Path, out_dir: str | Path, limit: int | None = None, seed: int = 0,
                  crop: str = "auto", detector: str = "hog", landmarks: str = "auto", batch: int = 64,
                  device: str = "cpu", progress: bool = False) -> dict:  # fmt: skip
    """Only the average peak locations of `explain` (same faces, same files), e.g. for runs explained before it
    existed; channels are coloured by the part of `out_dir`'s channel_dictionary.json when there is one."""
    from explainface.evaluate.peak_locations import PeakLocations
    from explainface.faces.crop import model_cut
    from explainface.inputs import to_tensor
    from explainface.models.capture import target_maps
    from explainface.training.checkpoint import load_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(model, device)
    peaks = PeakLocations(loaded.input_size)
    counts = SampleCounts()
    samples = face_samples(data, loaded.input_size, crop, detector, landmarks, limit, seed, counts, progress,
                           model_cut(loaded.model))
    for chunk in batched(samples, batch):
        x = torch.stack([to_tensor(s.image) for s in chunk]).to(device)
        with torch.no_grad():
            peaks.add(target_maps(loaded.model, x, loaded.layer).float().cpu(), np.stack([s.image for s in chunk]))
    if peaks.faces == 0:
        raise ValueError(f"{data}: no usable faces ({counts.skipped_summary()})")
    dictionary = out / "channel_dictionary.json"
    parts = {c["channel"]: c.get("part") for c in json.loads(dictionary.read_text())} if dictionary.is_file() else {}
    return write_peak_locations(peaks, parts, out, loaded.label)


def write_channel_dictionary(channels: list[dict], out: Path) -> None:
    """`channel_dictionary.json` and a readable `channel_dictionary.md`: channels grouped by dominant part."""
    atomic_write_json(out / "channel_dictionary.json", channels)
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
    atomic_write_text(out / "channel_dictionary.md", "\n".join(lines) + "\n")


def summary_line(result: dict) -> str:
    return (
        f"{result['model_label']} [{result['layer']}] on {result['data']} ({result['images']} faces): "
        f"PE {result['pe_mean']:.4f} +- {result['pe_se']:.4f}, LS {result['ls']:.4f} "
        f"({result['ls_channels']} channels), AR {result['ar_mean']:.3f} +- {result['ar_std']:.3f}"
    )
