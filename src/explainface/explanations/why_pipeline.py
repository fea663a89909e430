"""The `why` command: a pair of face images in, its explanation by face parts out (`explanations.why` has the kernels).

    explainface why --model CKPT A.jpg B.jpg --out DIR [--dictionary channel_dictionary.json] [--threshold T]
      -> why.json (cosine, decision, parts.<part>.<method> for every attribution method), why.png, a summary
    explainface why --model CKPT --pairs PAIRS [--root DIR] --out DIR
      -> faithfulness.json, deletion_curves.png: are the part explanations faithful, over many pairs?

Both faces are cropped as `verify` crops them and get part labels from their landmarks (a `.pts` or
`.parts.png` beside the image, else dlib's). The channels' parts come from a channel dictionary (`explain`'s
channel_dictionary.json or explainability.json), else are measured on the fly on `--faces` (landmark-labelled
faces; default the built-in synthetic held-out faces); the reference mean that replaces ablated channels is taken
over the same faces. The threshold is `--threshold`, or the mean of the ten fold thresholds of a
`verify` result (`--verification verification.json`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from explainface.explanations.why import PARTS, WHY_METHODS, ReferenceMaps, explain_pair, summary_line
from explainface.files import regular_file
from explainface.models.modes import for_inference

#: Reference faces drawn for the channel dictionary and the reference mean when none are given.
REFERENCE_FACES = 200


def load_channel_parts(path: str | Path) -> dict[int, str | None]:
    """Channel -> dominant part from `explain`'s channel_dictionary.json or explainability.json (read and checked
    by `explanations.dictionary`; `reference_set` also checks it against the network)."""
    from explainface.explanations.dictionary import read_dictionary

    return read_dictionary(path).parts()


def checked_hit_rates(path: str | Path) -> dict[str, float | None]:
    """Method -> its part-swap hit rate over the pairs the planting moved (else over all pairs) in a ground-truth
    run's groundtruth.json (`explanations.groundtruth`)."""
    path = regular_file(path, "groundtruth.json")
    try:
        swap = json.loads(path.read_text())["part-swap"]
        out = {}
        for m, e in swap["methods"].items():
            rate = e["moved"]["hit_rate"]["mean"]
            out[m] = rate if rate is not None else e["all"]["hit_rate"]["mean"]
        return out
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a groundtruth.json with part-swap hit rates ({e})") from None


def check_threshold(threshold: float | None, what: str = "--threshold") -> float | None:
    """A decision threshold on the cosine: a finite number in [-1, 1] (or None)."""
    if threshold is None:
        return None
    t = float(threshold)
    if not (np.isfinite(t) and -1.0 <= t <= 1.0):
        raise ValueError(f"{what}: a threshold on the cosine is a finite number in [-1, 1], got {threshold!r}")
    return t


def _same_model(a: object, b: object) -> bool:
    if not isinstance(a, (str, Path)) or not isinstance(b, (str, Path)):
        return True  # a network given as an object: nothing to compare with
    pa, pb = Path(a), Path(b)
    return pa.resolve() == pb.resolve() if pa.exists() and pb.exists() else str(a) == str(b)


def threshold_from(verification: str | Path, model: object = None) -> float:
    """The decision threshold of a `verify` result: the mean of its fold thresholds. It must be a result of the
    cosine (what `why` explains) and, given `model` (a path or a registered name), of the same model."""
    path = regular_file(verification, "verification.json")
    try:
        data = json.loads(path.read_text())
        thresholds = data["thresholds"]
        values = [float(t) for t in thresholds]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a verification.json with fold thresholds ({e})") from None
    if not values:
        raise ValueError(f"{path}: its 'thresholds' list is empty")
    score = data.get("score", "cosine")
    if score != "cosine":
        raise ValueError(f"{path}: thresholds of the {score!r} score; `why` decides on the cosine (give --threshold, "
                         "or a verify result with --score cosine)")  # fmt: skip
    if model is not None and data.get("model") is not None and not _same_model(data["model"], model):
        raise ValueError(f"{path}: a verify result of {data['model']}, not of {model} (verify this model, or give "
                         "--threshold)")  # fmt: skip
    return check_threshold(float(np.mean(values)), str(path))


def reference_set(loaded, faces: str | Path = "synthetic", limit: int = REFERENCE_FACES, seed: int = 0,
                  dictionary: str | Path | None = None, batch: int = 64,
                  progress: bool = False) -> tuple[ReferenceMaps, dict[int, str | None], str]:  # fmt: skip
    """(reference mean maps, channel -> part, where the parts came from) over `limit` faces of `faces`."""
    from explainface.evaluate.explainability import ExplainabilityAccumulator, masks_from_labels
    from explainface.inputs import to_tensor
    from explainface.models.modes import eval_mode
    from explainface.parts.samples import SampleCounts, batched, face_samples

    model, size = loaded.model, loaded.input_size
    acc = None if dictionary is not None else ExplainabilityAccumulator(size=size)
    crops = []
    dev = next(model.parameters()).device
    with eval_mode(model):
        samples = face_samples(faces, size, "auto", "hog", "auto", limit, seed, SampleCounts(), progress)
        for chunk in batched(samples, batch):
            x = torch.stack([to_tensor(s.image) for s in chunk])
            crops.append(x)
            if acc is not None:
                with torch.no_grad():
                    maps = model.forward_features(x.to(dev)).float().cpu()
                acc.add(maps, masks_from_labels(torch.from_numpy(np.stack([s.labels for s in chunk]))))
        if not crops:
            raise ValueError(f"{faces}: no usable reference faces")
        reference = ReferenceMaps.of(model, (x.to(dev) for x in crops))
    if dictionary is not None:
        from explainface.explanations.dictionary import read_dictionary

        checked = read_dictionary(dictionary).check(reference.mean.shape[0], loaded.layer)
        return reference, checked.parts(), str(dictionary)
    n = reference.faces
    channels = acc.report(n_images=min(100, n), runs=1, seed=seed)["channels"]
    return reference, {c["channel"]: c["part"] for c in channels}, f"measured on {n} faces of {faces}"


def why(model: str | Path | torch.nn.Module, image_a: str | Path, image_b: str | Path,
        out_dir: str | Path | None = None, dictionary: str | Path | None = None, faces: str | Path = "synthetic",
        threshold: float | None = None,
        verification: str | Path | None = None, crop: str = "auto", detector: str = "hog",
        landmarks: str = "auto", device: str = "cpu", top: int = 2,
        reference: tuple | None = None, methods: list[str] | None = None,
        checked: str | Path | None = None) -> dict:  # fmt: skip
    """Explain why `model` (a checkpoint path, an `nn.Module` or a `LoadedModel`) finds faces A and B alike (or
    not); returns the explanation and, given `out_dir`, writes it there as why.json with the picture why.png.
    `reference` is a `reference_set` result to reuse (else made from `dictionary` / `faces`). `methods`: the
    attribution methods (default `why.WHY_METHODS`); `checked`: a ground-truth run's groundtruth.json, which
    orders them by their part-swap hit rate (the checked method first) and puts that rate beside each."""
    from explainface.explanations.figures import why_figure
    from explainface.faces.crop import model_cut
    from explainface.files import atomic_write_json, json_safe
    from explainface.inputs import to_tensor
    from explainface.models.maps import upsample_maps
    from explainface.parts.samples import face_sample
    from explainface.training.checkpoint import load_model, model_name

    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    threshold = check_threshold(threshold)
    if threshold is None and verification is not None:
        threshold = threshold_from(verification, model)
    loaded = load_model(model, device)
    loaded = replace(loaded, model=for_inference(loaded.model))
    size = loaded.input_size
    a = face_sample(image_a, size, crop, detector, landmarks, cut=model_cut(loaded.model))
    b = face_sample(image_b, size, crop, detector, landmarks, cut=model_cut(loaded.model))
    ref, channel_parts, source = reference or reference_set(loaded, faces, dictionary=dictionary)
    images = torch.stack([to_tensor(a.image), to_tensor(b.image)]).to(device)
    labels = torch.from_numpy(np.stack([a.labels, b.labels]).astype(np.int64))
    xcos = None
    if "xcos" in getattr(loaded, "pair_heads", {}):
        from explainface.evaluate.scoring import XCosScorer

        xcos = XCosScorer(loaded)
    hits = checked_hit_rates(checked) if checked is not None else {}
    if hits:  # the checked order: the best hit rate first, methods the run did not check after them
        methods = sorted(methods or WHY_METHODS, key=lambda m: -(hits.get(m) if hits.get(m) is not None else -1))
    result = explain_pair(loaded.model, images, labels, ref, channel_parts, threshold, methods=methods,
                          xcos_scorer=xcos, keep_maps=True)  # fmt: skip
    pixel = result.pop("_maps")
    if hits:
        result["checked"] = {"groundtruth": str(checked), "hit_rate": {m: hits.get(m) for m in result["methods"]}}
    result.update({"model": model_name(model), "model_label": loaded.label, "images": [str(image_a), str(image_b)],
                   "channel_parts_from": source, "label_sources": [a.source, b.source],
                   "summary": summary_line(result)})  # fmt: skip
    if out is None:
        return result
    # the top parts' channels on both faces (their mean map), for the figure
    with torch.no_grad():
        maps = loaded.model.forward_features(images).float().cpu()
    ranked = sorted((p for p in PARTS if result["parts"][p]["channels"] is not None),
                    key=lambda p: -abs(result["parts"][p]["channels"]))  # fmt: skip
    overlays = {}
    for p in ranked[:top]:
        chans = [c for c, q in channel_parts.items() if q == p]
        heat = upsample_maps(maps[:, chans].mean(1), size).numpy()
        heat = heat / max(float(heat.max()), 1e-12)
        overlays[p] = (heat[0], heat[1])
    first_map = next((m for m in result["methods"] if m in pixel), None)
    why_figure(a.image, b.image, a.labels, b.labels, result, overlays, out / "why.png",
               names=(Path(image_a).name, Path(image_b).name),
               pixel_maps=(first_map, pixel[first_map]) if first_map else None)  # fmt: skip
    atomic_write_json(out / "why.json", json_safe(result))
    return result


#: The report's examples: which pair of the evaluation each is.
EXAMPLES = ("true match", "false match", "false non-match")


def example_pairs(verify_dir: str | Path) -> dict[str, tuple[str, str, float]]:
    """From a `verify` output folder (verification.json + embeddings.npy): the most confident true match, the
    most confident false match and the most confident false non-match at the mean threshold, as
    {kind: (image A, image B, cosine)}; kinds the run has none of are left out."""
    from explainface.readers.pairs import read_pairs

    d = Path(verify_dir)
    result = json.loads((d / "verification.json").read_text())
    emb = np.load(d / "embeddings.npy")
    pl = read_pairs(result["pairs_file"], result.get("root"), result.get("cfp_protocol"))
    if result.get("score", "cosine") != "cosine" or emb.ndim != 2 or len(emb) != len(pl.images):
        return {}
    usable = np.isfinite(emb).all(1)  # the rows of skipped (unreadable) images are NaN
    thr = threshold_from(d / "verification.json")
    scores = (emb[pl.a] * emb[pl.b]).sum(1)
    same = np.asarray(pl.same, bool)
    ok = usable[pl.a] & usable[pl.b]
    picks = {"true match": ok & same & (scores >= thr), "false match": ok & ~same & (scores >= thr),
             "false non-match": ok & same & (scores < thr)}  # fmt: skip
    out = {}
    for kind, mask in picks.items():
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        i = int(idx[np.argmax(scores[idx])] if kind != "false non-match" else idx[np.argmin(scores[idx])])
        ref_a, ref_b = pl.images[pl.a[i]], pl.images[pl.b[i]]
        if getattr(ref_a, "path", None) is None or getattr(ref_b, "path", None) is None:
            continue
        out[kind] = (str(ref_a.path), str(ref_b.path), float(scores[i]))
    return out


def why_examples(model: str | Path, verify_dir: str | Path, out_dir: str | Path,
                 dictionary: str | Path | None = None, faces: str | Path = "synthetic",
                 checked: str | Path | None = None) -> dict[str, dict]:  # fmt: skip
    """`why` for the report's three examples of a verified model (`example_pairs`): {kind: why.json + png}."""
    from explainface.training.checkpoint import load_model

    pairs = example_pairs(verify_dir)
    if not pairs:
        return {}
    loaded = load_model(model)
    loaded = replace(loaded, model=for_inference(loaded.model))
    reference = reference_set(loaded, faces, dictionary=dictionary)
    thr = threshold_from(Path(verify_dir) / "verification.json", model)
    done = {}
    for kind, (a, b, _) in pairs.items():
        folder = Path(out_dir) / kind.replace(" ", "_")
        try:
            res = why(model, a, b, folder, threshold=thr, reference=reference, checked=checked)
        except ValueError as e:  # a face without landmarks: the example is left out, said why
            done[kind] = {"error": str(e)}
            continue
        done[kind] = {**res, "png": str(folder / "why.png")}
    return done


def faithfulness_table(res: dict) -> str:
    """The deletion scores (mean +- se over pairs; higher = the order moves the similarity faster) as text."""
    lines = [f"{res['pairs']['used']} pairs; deletion score = mean drop of the cosine as parts are removed in order"]
    for mode, orders in res["scores"].items():
        cells = []
        for order, v in orders.items():
            if v.get("mean") is None:
                continue
            p = (v.get("vs_random") or {}).get("p_value")
            se = f" +- {v['se']:.4f}" if v.get("se") is not None else ""  # one pair: no standard error
            cells.append(f"{order} {v['mean']:.4f}{se}" + (f" (vs random p={p:.3g})" if p else ""))
        lines.append(f"  removing by {mode}: " + "; ".join(cells))
        for subset in ("same", "different"):
            sub = [f"{o} {v[subset]['mean']:.4f}" for o, v in orders.items() if (v.get(subset) or {}).get("mean")
                   is not None]  # fmt: skip
            if sub:
                lines.append(f"    {subset}-identity pairs: " + "; ".join(sub))
    ra = res.get("rank_agreement") or {}
    if ra.get("mean") is not None:
        lines.append(f"  rank agreement (Spearman, channels vs occlusion): {ra['mean']:.3f} +- {ra.get('se') or 0:.3f}")
    return "\n".join(lines)
