"""The `why` command: a pair of face images in, its explanation by face parts out (`explain.why` has the kernels).

    explainface why --model CKPT A.jpg B.jpg --out DIR [--dictionary channel_dictionary.json] [--threshold T]
      -> why.json (cosine, decision, parts.<part>.{channels, occlusion}), why.png, a one-line summary
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

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from explainface.argtypes import int_at_least
from explainface.explain.why import PARTS, ReferenceMaps, explain_pair, summary_line

#: Reference faces drawn for the channel dictionary and the reference mean when none are given.
REFERENCE_FACES = 200


def load_channel_parts(path: str | Path) -> dict[int, str | None]:
    """Channel -> dominant part from `explain`'s channel_dictionary.json or explainability.json."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable channel dictionary ({e})") from None
    channels = data.get("channels") if isinstance(data, dict) else data
    if not isinstance(channels, list) or not all(isinstance(c, dict) and "channel" in c for c in channels):
        raise ValueError(f"{path}: no channel list (expected explain's channel_dictionary.json or explainability.json)")
    return {int(c["channel"]): c.get("part") for c in channels}


def threshold_from(verification: str | Path) -> float:
    """The decision threshold of a `verify` result: the mean of its fold thresholds."""
    path = Path(verification)
    try:
        thresholds = json.loads(path.read_text())["thresholds"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a verification.json with fold thresholds ({e})") from None
    return float(np.mean(thresholds))


def reference_set(loaded, faces: str | Path = "synthetic", limit: int = REFERENCE_FACES, seed: int = 0,
                  dictionary: str | Path | None = None, batch: int = 64,
                  progress: bool = False) -> tuple[ReferenceMaps, dict[int, str | None], str]:  # fmt: skip
    """(reference mean maps, channel -> part, where the parts came from) over `limit` faces of `faces`."""
    from explainface.data.synthetic.dataset import to_tensor
    from explainface.evaluate.explain import SampleCounts, batched, face_samples
    from explainface.evaluate.explainability import ExplainabilityAccumulator, masks_from_labels
    from explainface.models.modes import eval_mode

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
        return reference, load_channel_parts(dictionary), str(dictionary)
    n = reference.faces
    channels = acc.report(n_images=min(100, n), runs=1, seed=seed)["channels"]
    return reference, {c["channel"]: c["part"] for c in channels}, f"measured on {n} faces of {faces}"


def why(model: str | Path, image_a: str | Path, image_b: str | Path, out_dir: str | Path,
        dictionary: str | Path | None = None, faces: str | Path = "synthetic", threshold: float | None = None,
        verification: str | Path | None = None, crop: str = "auto", detector: str = "hog",
        landmarks: str = "auto", device: str = "cpu", top: int = 2,
        reference: tuple | None = None) -> dict:  # fmt: skip
    """Explain why `model` finds faces A and B alike (or not); writes why.json and why.png, returns why.json.
    `reference` is a `reference_set` result to reuse (else made from `dictionary` / `faces`)."""
    from explainface.data.synthetic.dataset import to_tensor
    from explainface.evaluate.explain import face_sample
    from explainface.evaluate.explainability import upsample_maps
    from explainface.explain.figures import why_figure
    from explainface.train.checkpoint import load_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threshold is None and verification is not None:
        threshold = threshold_from(verification)
    loaded = load_model(model, device)
    size = loaded.input_size
    a = face_sample(image_a, size, crop, detector, landmarks)
    b = face_sample(image_b, size, crop, detector, landmarks)
    ref, channel_parts, source = reference or reference_set(loaded, faces, dictionary=dictionary)
    images = torch.stack([to_tensor(a.image), to_tensor(b.image)]).to(device)
    labels = torch.from_numpy(np.stack([a.labels, b.labels]).astype(np.int64))
    result = explain_pair(loaded.model, images, labels, ref, channel_parts, threshold)
    result.update({"model": str(model), "model_label": loaded.label, "images": [str(image_a), str(image_b)],
                   "channel_parts_from": source, "label_sources": [a.source, b.source],
                   "summary": summary_line(result)})  # fmt: skip
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
    why_figure(a.image, b.image, a.labels, b.labels, result, overlays, out / "why.png",
               names=(Path(image_a).name, Path(image_b).name))  # fmt: skip
    (out / "why.json").write_text(json.dumps(result, indent=2))
    return result


#: The report's examples: which pair of the evaluation each is.
EXAMPLES = ("true match", "false match", "false non-match")


def example_pairs(verify_dir: str | Path) -> dict[str, tuple[str, str, float]]:
    """From a `verify` output folder (verification.json + embeddings.npy): the most confident true match, the
    most confident false match and the most confident false non-match at the mean threshold, as
    {kind: (image A, image B, cosine)}; kinds the run has none of are left out."""
    from explainface.data.pair_files import read_pairs

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
                 dictionary: str | Path | None = None, faces: str | Path = "synthetic") -> dict[str, dict]:  # fmt: skip
    """`why` for the report's three examples of a verified model (`example_pairs`): {kind: why.json + png}."""
    from explainface.train.checkpoint import load_model

    pairs = example_pairs(verify_dir)
    if not pairs:
        return {}
    loaded = load_model(model)
    reference = reference_set(loaded, faces, dictionary=dictionary)
    thr = threshold_from(Path(verify_dir) / "verification.json")
    done = {}
    for kind, (a, b, _) in pairs.items():
        folder = Path(out_dir) / kind.replace(" ", "_")
        try:
            res = why(model, a, b, folder, threshold=thr, reference=reference)
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
            cells.append(f"{order} {v['mean']:.4f} +- {v['se'] or 0:.4f}" + (f" (vs random p={p:.3g})" if p else ""))
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


def add_why_parser(subparsers) -> None:
    w = subparsers.add_parser(
        "why",
        help="explain a verification decision by face parts (channel ablation and region occlusion)",
        description="Why does the model find two faces alike? Each face part's contribution to their cosine, by "
        "ablating the part's channels (from the channel dictionary) and by covering the part's region; writes "
        "why.json and why.png. With --pairs: the faithfulness of those explanations over many pairs.",
    )
    w.add_argument("images", nargs="*", help="two face images A B")
    w.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    w.add_argument("--out", required=True, help="output folder")
    w.add_argument("--dictionary", default=None, help="explain's channel_dictionary.json or explainability.json")
    w.add_argument("--faces", default="synthetic",
                   help="landmark-labelled faces for the channel dictionary (when none is given) and the reference "
                   "mean (default: the built-in synthetic faces)")  # fmt: skip
    w.add_argument("--threshold", type=float, default=None, help="decision threshold on the cosine")
    w.add_argument("--verification", default=None, help="a verify run's verification.json: its mean threshold")
    w.add_argument("--pairs", default=None, help="measure faithfulness over these pairs instead (verify's formats)")
    w.add_argument("--root", default=None, help="image folder of --pairs")
    w.add_argument("--limit", type=int_at_least(1), default=200, help="--pairs: pairs drawn (default 200)")
    w.add_argument("--crop", default="auto", choices=("auto", "detect", "none"))
    w.add_argument("--detector", default="hog", choices=("hog", "cnn", "haar", "auto"))
    w.add_argument("--device", default="cpu")
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(func=_cmd_why)


def _cmd_why(args: argparse.Namespace) -> int:
    if args.pairs is None:
        if len(args.images) != 2:
            raise SystemExit("explainface why: give two face images A B (or --pairs PAIRS for faithfulness)")
        res = why(args.model, args.images[0], args.images[1], args.out, dictionary=args.dictionary, faces=args.faces,
                  threshold=args.threshold, verification=args.verification, crop=args.crop, detector=args.detector,
                  device=args.device)  # fmt: skip
        print(res["summary"])
        print(f"wrote {args.out}/why.json and {args.out}/why.png")
        return 0
    if args.images:
        raise SystemExit("explainface why: give either two images or --pairs, not both")
    from explainface.evaluate.faithfulness import faithfulness
    from explainface.train.checkpoint import load_model

    loaded = load_model(args.model, args.device)
    reference, channel_parts, _ = reference_set(loaded, args.faces, dictionary=args.dictionary,
                                                progress=not args.quiet)  # fmt: skip
    res = faithfulness(args.model, args.pairs, args.out, root=args.root, reference=reference,
                       channel_parts=channel_parts, limit=args.limit, crop=args.crop, detector=args.detector,
                       progress=not args.quiet)  # fmt: skip
    print(faithfulness_table(res))
    print(f"wrote {args.out}/faithfulness.json and {args.out}/deletion_curves.png")
    return 0
