"""The `report` command: a model (and a baseline) in, one self-contained HTML report out.

    per model: verify (pairs) -> verification.json, roc.png
               explain (faces with part labels) -> explainability.json, channel dictionary
               visualize -> gallery, channel dictionary picture (+ feature maps and Grad-CAM vs the baseline)
    -> report.html (`render_report`)

With no data given, the faces are held-out synthetic identities exported into `OUT/faces` (pairs.txt, part
label maps), so the report needs nothing but checkpoints. Results already in `OUT/<role>/` are recomputed:
a report always shows what the checkpoints do now.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

ROLES = ("model", "baseline")
#: Faces shown in the galleries.
GALLERY_PEOPLE = 6


def export_heldout_faces(out: Path, size: int, seed: int = 0, identities: int = 40, per_identity: int = 10,
                         progress: bool = True, occlusion: float | None = None) -> Path:  # fmt: skip
    """Held-out synthetic faces at `size` in `out` (reused when an export of the same settings is there);
    `occlusion` is the share of faces with an occluder (None: the generator's default for the difficulty)."""
    from explainface.synthetic.export import export_synthetic

    meta_path = out / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        counts = meta.get("counts") or {}
        same = meta.get("complete") and meta.get("size") == size and meta.get("seed") == seed
        same = same and meta.get("occlusion") == occlusion
        if same and counts.get("heldout_identities") == identities and counts.get("per_identity") == per_identity:
            return out
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*cannot supply.*pairs")  # fewer pairs than LFW's is expected
        export_synthetic(
            out, identities=0, per_identity=per_identity, size=size, heldout_identities=identities, seed=seed,
            progress=progress, occlusion=occlusion,
        )  # fmt: skip
    return out


def evaluate_model(
    model: str | Path | nn.Module,
    out: Path,
    pairs: str | Path | None,
    faces: str | Path,
    n_faces: int = 100,
    runs: int = 5,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """verification.json (when `pairs` is given) and explainability.json of one model (a checkpoint path, an
    `nn.Module` or a `LoadedModel`) under `out`; returns both results."""
    from explainface.evaluate.explainability_pipeline import explain
    from explainface.evaluate.verification_pipeline import verify

    res: dict = {"checkpoint": model, "verification": None, "roc": None}
    if pairs is not None:
        res["verification"] = verify(model, pairs, out / "verify", progress=progress, workers=0)
        res["roc"] = out / "verify" / "roc.png"
    res["explainability"] = explain(model, faces, out / "explain", n_faces=n_faces, runs=runs, seed=seed,
                                    progress=progress)  # fmt: skip
    res["explainability_json"] = out / "explain" / "explainability.json"
    return res


def assemble_report(
    out: Path,
    entries: list[dict],
    faces: str | list,
    title: str = "explainface report",
    notes: list[str] | None = None,
    commands: list[str] | None = None,
    extra_images: dict[str, dict[str, Path]] | None = None,
    seed: int = 0,
    checked: str | Path | None = None,
) -> Path:
    """Draw the pictures of each evaluated model (`entries`: model first, then the baseline, each as returned by
    `evaluate_model` plus a `label`) on `faces` ("synthetic" or image paths) and write `out/report.html`."""
    from explainface.explanations.visualize import visualize
    from explainface.files import atomic_write_json
    from explainface.report.html import render_report
    from explainface.training.checkpoint import model_name

    models, figures = [], []
    baseline = entries[1]["checkpoint"] if len(entries) > 1 else None
    for i, e in enumerate(entries):
        role = ROLES[i]
        written = visualize(
            e["checkpoint"], faces, out / role / "figures", baseline=baseline if i == 0 else None,
            n_people=GALLERY_PEOPLE, dictionary=e["explainability_json"], seed=seed,
            labels=(entries[0]["label"], entries[1]["label"]) if len(entries) > 1 else None,
        )  # fmt: skip
        imgs = {"gallery": written["gallery"], "channel_dictionary": written["channel_dictionary"]}
        if e.get("roc") is not None:
            imgs["roc"] = e["roc"]
        imgs.update((extra_images or {}).get(role, {}))
        if i == 0:
            for key, caption in (
                ("feature_maps", "The same face's target-layer maps, each network on its own colour scale "
                 "(paper Figure 5)."),
                ("gradcam", "Grad-CAM of the cosine similarity between two faces (paper Figure 1)."),
            ):  # fmt: skip
                if key in written:
                    figures.append({"title": key.replace("_", " ").capitalize(), "caption": caption,
                                    "png_path": str(written[key])})  # fmt: skip
        if "xcos" in written:
            caption = (
                "xCos's explanation of the pair: face A with the grid, face B, the patch cosines (red above "
                "the centre value, blue below) and the attention that weights them into the score."
            )
            figures.append({"title": f"xCos: {e['label']}", "caption": caption, "png_path": str(written["xcos"])})
        peaks_png = (
            Path(e["explainability_json"]).parent / "average_peaks.png" if e.get("explainability_json") else None
        )
        if peaks_png is not None and peaks_png.is_file():
            figures.append({"title": f"Average peak locations: {e['label']}", "caption": "Yin et al.'s average "
                            "location: each channel's mean peak on the mean face, with its one-s.d. ellipse, coloured "
                            "by its dominant part; small ellipses on parts = channels that follow parts.",
                            "png_path": str(peaks_png)})  # fmt: skip
        models.append({
            "label": e["label"], "checkpoint": model_name(e["checkpoint"]), "verification": e["verification"],
            "explainability": e["explainability"], "images": {k: str(v) for k, v in imgs.items()},
        })  # fmt: skip
    why = []
    first = entries[0]
    verify_dir = Path(first["roc"]).parent if first.get("roc") is not None else None
    if verify_dir is not None and (verify_dir / "embeddings.npy").is_file():
        from explainface.explanations.why_pipeline import why_examples

        dictionary = first.get("explainability_json")
        examples = why_examples(first["checkpoint"], verify_dir, out / ROLES[0] / "why", dictionary, checked=checked)
        for kind, ex in examples.items():
            if "png" in ex:
                why.append({"kind": f"{first['label']}: {kind}", "summary": ex["summary"], "png_path": ex["png"],
                            "methods": ex.get("methods"), "checked": ex.get("checked")})  # fmt: skip
    report = {
        "title": title,
        "why": why,
        "subtitle": " vs ".join(m["label"] for m in models),
        "notes": notes or [],
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "models": models,
        "figures": figures,
        "commands": commands or [],
    }
    atomic_write_json(out / "report.json", report)
    return render_report(report, out / "report.html")


def build_report(
    model: str | Path | nn.Module,
    out_dir: str | Path,
    baseline: str | Path | nn.Module | None = None,
    pairs: str | Path | None = None,
    faces: str | Path | None = None,
    n_faces: int = 100,
    runs: int = 5,
    seed: int = 0,
    progress: bool = True,
    checked: str | Path | None = None,
) -> Path:
    """Evaluate `model` (and `baseline`; each a checkpoint path or an `nn.Module`) and write
    `out_dir/report.html`; returns its path (a report is a file: `out_dir` is required).

    `faces` (faces with part labels for `explain`: a folder or "synthetic") and `pairs` default to held-out
    synthetic faces exported into `out_dir/faces`; given `faces` without `pairs`, the report has no verification
    section numbers. `n_faces` and `runs` are `explain`'s draws. `checked`: a ground-truth run's groundtruth.json
    (`why --protocol`): the "why" examples show the methods in the order of their hit rate, the rate beside each.
    """
    from explainface.training.checkpoint import load_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = [model] + ([baseline] if baseline is not None else [])
    loaded = [load_model(c) for c in checkpoints]
    sizes = {m.input_size for m in loaded}
    if len(sizes) > 1:
        raise ValueError(f"the model and the baseline take different input sizes: {sorted(sizes)}")
    gallery: str | list = "synthetic"
    if faces is None:
        export = export_heldout_faces(out / "faces", sizes.pop(), seed=seed, progress=progress)
        faces = export / "heldout"
        pairs = pairs if pairs is not None else faces / "pairs.txt"
    elif isinstance(faces, (list, tuple)):  # image files (`parts.samples.face_samples` reads them too)
        gallery = [str(p) for p in faces[:GALLERY_PEOPLE]]
    elif str(faces) != "synthetic":
        from explainface.readers.images import find_images

        gallery = [str(p) for p in find_images(Path(faces))[:GALLERY_PEOPLE]] if Path(faces).is_dir() else [str(faces)]
    entries = []
    for role, ckpt, m in zip(ROLES, checkpoints, loaded):
        e = evaluate_model(ckpt, out / role, pairs, faces, n_faces, runs, seed, progress)
        e["label"] = f"{role}: {m.label}"
        entries.append(e)
    return assemble_report(out, entries, gallery, notes=verification_notes(entries),
                           commands=[shlex.join(["explainface", *sys.argv[1:]])], seed=seed,
                           checked=checked)  # fmt: skip


def verification_notes(entries: list[dict]) -> list[str]:
    """The report's notes on what each model's verification numbers rest on, from `verify`'s `notes`: images that
    could not be read (skipped, named, with the pairs they dropped), fewer folds than 10, an undefined AUC."""
    notes = []
    for e in entries:
        v = e.get("verification") or {}
        notes += [f"{e.get('label', e.get('checkpoint'))}, verification: {n}" for n in v.get("notes") or []]
    return notes
