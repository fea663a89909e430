"""Pair explanations checked against planted ground truth: the part-swap and Patch-LFW protocols.

Deletion curves (`explanations.faithfulness`) say which order of parts moves a pair's score fastest, not which part
truly made the pair match. Here the reason is planted, so an explanation can be scored against it:

* **part swap** (ours): for an impostor pair (A, B), one face part of A (eyes, nose, mouth, ...) is replaced by
  B's, warped by the landmarks and blended (`parts.swap`): the part is the planted reason to match, and a
  method *hits* when it ranks that part first by its score (the most supporting part). For a genuine pair the
  part comes from a third identity: the planted reason not to match, hit when ranked first from the most
  *opposing* end. Reported: the hit rate (chance: 1 / the parts a method scores, about 1/7), the planted part's
  mean rank, both over all pairs and over the pairs where the planting moved the cosine by at least `MOVED`
  (the others are pairs where the network did not react: no explanation can find a reason that is not one).
* **Patch-LFW** (xSSAB, Huber et al. WACV 2024; `faces.patches`, `explanations.insertion`): 27 seeded patches
  pasted into A from B (impostor pairs: the similar region) or from a third identity (genuine pairs: the
  dissimilar region); A's pixels are restored in the order of the method's map of A (xSSAB's decision end,
  `decision_order_map`) at 0-95%, the pairs rescored, and the match rate at the threshold tracked against a
  random order. A part-level method orders pixels by its part scores painted on A's part labels. Reported: the
  match-rate curve and its area (impostor pairs: lower = better; genuine pairs: higher = better).

Every planting is seeded by (seed, pair index), so a run is reproducible from its command, and each record keeps
the cosine before and after the planting. docs/why.md "Checked against planted ground truth" has the results.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explainface.explanations.attributions import PARTS, Attribution, PairContext, attribute
from explainface.explanations.attributions.base import face_embedding
from explainface.models.modes import for_inference
from explainface.parts.labels import PART_NAMES

PROTOCOLS = ("part-swap", "patch")
#: A planting that moves the pair's cosine by less than this is one the network did not react to.
MOVED = 0.05


@dataclass
class Face:
    image: np.ndarray  # uint8 [S, S, 3]
    labels: np.ndarray  # part labels [S, S]
    landmarks: np.ndarray  # [68, 2] in the crop
    identity: str


@dataclass
class PlantedPair:
    """A pair with its planted reason: images [2, 3, S, S] (A planted, B), labels, what was planted."""

    images: torch.Tensor
    labels: torch.Tensor
    same: bool
    cos_before: float
    cos_after: float
    part: str | None = None  # part swap
    original: np.ndarray | None = None  # Patch-LFW: A before planting (uint8)
    planted: np.ndarray | None = None  # Patch-LFW: A after planting (uint8)
    mask: np.ndarray | None = None  # Patch-LFW: the planted pixels


def _tensor(images: Sequence[np.ndarray], like: torch.Tensor | None = None) -> torch.Tensor:
    from explainface.inputs import to_tensor

    x = torch.stack([to_tensor(np.ascontiguousarray(im)) for im in images])
    return x if like is None else x.to(like)


@torch.no_grad()
def _cos(model, images: torch.Tensor) -> float:
    e = face_embedding(model, images)
    return float((e[0] * e[1]).sum())


def swap_pair(model, a: Face, b: Face, donor: Face, same: bool, part: str, param: torch.Tensor) -> PlantedPair:
    """A with `part` from `donor` (B for an impostor pair, a third identity for a genuine pair), and B."""
    from explainface.parts.swap import swap_part

    before = _tensor([a.image, b.image], param)
    swapped = swap_part(a.image, a.landmarks, donor.image, donor.landmarks, part)
    after = _tensor([swapped.image, b.image], param)
    labels = torch.from_numpy(np.stack([a.labels, b.labels]).astype(np.int64))
    return PlantedPair(after, labels, same, _cos(model, before), _cos(model, after), part=part)


def patch_pair(model, a: Face, b: Face, source: Face, same: bool, seed, param: torch.Tensor) -> PlantedPair:
    """A with Patch-LFW's patches from `source` (B for an impostor pair, a third identity for a genuine pair)."""
    from explainface.faces.patches import plant_patches

    planting = plant_patches(a.image, source.image, seed)
    before = _tensor([a.image, b.image], param)
    after = _tensor([planting.image, b.image], param)
    labels = torch.from_numpy(np.stack([a.labels, b.labels]).astype(np.int64))
    return PlantedPair(after, labels, same, _cos(model, before), _cos(model, after), original=a.image,
                       planted=planting.image, mask=planting.mask)  # fmt: skip


def part_map(attribution: Attribution, labels: np.ndarray) -> np.ndarray:
    """A part-level attribution as a pixel map of face A: each part's score on its pixels (lowest elsewhere)."""
    scores = [v for v in attribution.parts.values() if v is not None and np.isfinite(v)]
    floor = min(scores, default=0.0) - 1.0
    out = np.full(labels.shape, floor, np.float64)
    for p, v in attribution.parts.items():
        if v is not None and np.isfinite(v):
            out[labels == PART_NAMES.index(p)] = v
    return out


#: A method as the protocols run it: its label (the spec as given, e.g. "channels:baseline=mean") -> (registered
#: name, options).
Methods = dict[str, tuple[str, dict[str, Any]]]
#: Options the protocols give methods unless the user does: CorrRISE's 64 masks (also its default since it keeps
#: `why` under 5 s a pair; kept explicit so that a run's recorded settings name it).
PROTOCOL_OPTIONS: dict[str, dict[str, Any]] = {"rise": {"masks": 64}}


def _attribute(ctx: PairContext, spec: tuple[str, dict[str, Any]], pair: PlantedPair, index: int) -> Attribution:
    name, options = spec
    return attribute(name, ctx, pair.images, pair.labels, index=index, **options)


def swap_record(ctx: PairContext, methods: Methods, pair: PlantedPair, index: int) -> dict:
    """One part-swap pair: the planted part's rank and hit for each method (genuine pairs: from the opposing end)."""
    sign = -1 if pair.same else 1
    rec: dict[str, Any] = {"same": pair.same, "part": pair.part, "cos_before": pair.cos_before,
                           "cos_after": pair.cos_after, "methods": {}}  # fmt: skip
    for label, spec in methods.items():
        a = _attribute(ctx, spec, pair, index)
        rank = a.rank_of(pair.part, sign)
        rec["methods"][label] = {"rank": None if np.isnan(rank) else rank, "hit": bool(rank == 1.0),
                                 "n_scored": len(a.ranked())}  # fmt: skip
    return rec


@torch.no_grad()
def _embed_all(model, x: torch.Tensor, other: torch.Tensor, batch: int = 16) -> np.ndarray:
    return torch.cat([face_embedding(model, c) @ other for c in x.split(batch)]).double().cpu().numpy()


def patch_record(ctx: PairContext, methods: Methods, pair: PlantedPair, index: int, threshold: float,
                 seed: int) -> dict:  # fmt: skip
    """One Patch-LFW pair: the restoration curve of each method's map of A, and of a random order (all restored
    images of the pair scored in one batched pass)."""
    from explainface.explanations.insertion import (
        FRACTIONS,
        decision_order_map,
        pixel_ranks,
        random_order_map,
        restored_images,
    )

    model = ctx.model
    with torch.no_grad():
        eb = face_embedding(model, pair.images[1:2])[0]
    labels = pair.labels[0].numpy()
    orders = {}
    for label, (name, options) in methods.items():
        if name == "rise":  # only A's map is read here: CorrRISE on A alone (half its cost)
            options = {"faces": 1, **options}
        a = _attribute(ctx, (name, options), pair, index)
        signed = a.maps[0] if a.maps is not None else part_map(a, labels)
        orders[label] = decision_order_map(signed, pair.cos_after, threshold)
    orders["random order"] = random_order_map(labels.shape, [seed, index, 9])
    original = _tensor([pair.original], pair.images)[0]
    # orders that restore the pixels in the same sequence (part-level methods that rank the parts alike) have the
    # same curve: each distinct sequence is scored once
    keys = {k: pixel_ranks(o).tobytes() for k, o in orders.items()}
    distinct = {key: orders[k] for k, key in reversed(list(keys.items()))}
    # restoring no pixel leaves the planted pair, whose cosine is known: only the other fractions are scored
    fresh = FRACTIONS[FRACTIONS > 0]
    batch = torch.cat([restored_images(pair.images[0], original, o, fresh) for o in distinct.values()])
    scores = _embed_all(model, batch, eb).reshape(len(distinct), len(fresh))
    curve = {}
    for key, row in zip(distinct, scores):
        scored = iter(row.tolist())
        curve[key] = [pair.cos_after if f == 0 else next(scored) for f in FRACTIONS]
    return {"same": pair.same, "cos_before": pair.cos_before, "cos_after": pair.cos_after,
            "planted_fraction": float(pair.mask.mean()), "curves": {k: curve[keys[k]] for k in orders}}  # fmt: skip


# ---- summaries ---------------------------------------------------------------------------------------------------


def _mean_se(values: Sequence[float]) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if v.size == 0:
        return {"mean": None, "se": None, "n": 0}
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None,
            "n": int(v.size)}  # fmt: skip


def mcnemar_p(hits_a: Sequence[bool], hits_b: Sequence[bool]) -> float | None:
    """Exact two-sided McNemar test (paired over pairs) of two methods' hits; None without discordant pairs."""
    from scipy.stats import binomtest

    a, b = np.asarray(hits_a, bool), np.asarray(hits_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return None
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def toward(record: dict) -> float:
    """How far the planting moved the cosine towards its planted reason (up for impostor, down for genuine)."""
    change = record["cos_after"] - record["cos_before"]
    return -change if record["same"] else change


def summarize_swaps(records: Sequence[dict], methods: Sequence[str], moved: float = MOVED) -> dict:
    """Per method: hit rate and mean rank over all pairs and over the pairs whose cosine the planting moved by at
    least `moved` (towards the planted reason), per kind; McNemar p of every method against the first."""
    out: dict[str, Any] = {"moved": moved, "methods": {}, "pairs": len(records)}
    react = [r for r in records if toward(r) >= moved]
    out["pairs_moved"] = len(react)
    out["mean_cos_change"] = _mean_se([r["cos_after"] - r["cos_before"] for r in records])
    for m in methods:
        entry = {}
        for name, recs in (("all", records), ("moved", react)):
            hits = [r["methods"][m]["hit"] for r in recs]
            entry[name] = {"hit_rate": _mean_se([float(h) for h in hits]),
                           "rank": _mean_se([r["methods"][m]["rank"] for r in recs])}  # fmt: skip
            for kind, same in (("impostor", False), ("genuine", True)):
                sub = [r["methods"][m]["hit"] for r in recs if r["same"] == same]
                entry[name][f"hit_rate_{kind}"] = _mean_se([float(h) for h in sub])
        out["methods"][m] = entry
    for name, recs in (("all", records), ("moved", react)):
        out[f"p_vs_{methods[0]}_{name}"] = {
            m: mcnemar_p([r["methods"][methods[0]]["hit"] for r in recs], [r["methods"][m]["hit"] for r in recs])
            for m in methods[1:]
        }
    return out


def summarize_patches(records: Sequence[dict], methods: Sequence[str], threshold: float) -> dict:
    """Per method and kind: xSSAB's match-rate curve over the fractions and its area."""
    from explainface.explanations.insertion import FRACTIONS, summarize_restoration

    out: dict[str, Any] = {"threshold": threshold, "fractions": FRACTIONS.tolist(), "methods": {}}
    for m in [*methods, "random order"]:
        out["methods"][m] = {}
        for kind, same in (("impostor", False), ("genuine", True)):
            rows = [r["curves"][m] for r in records if r["same"] == same]
            if rows:
                out["methods"][m][kind] = summarize_restoration(np.asarray(rows), threshold).to_dict()
    return out


def compare_runs(a: dict, b: dict, methods: Sequence[str] | None = None, moved: float = MOVED) -> dict:
    """Two part-swap runs on the same pairs (e.g. a network with part channels and one without: the same drawn
    pairs and plantings, seeded by pair index) compared per method, paired over the pairs both scored: hit rates
    and the exact McNemar p, over all common pairs and over those the planting moved by at least `moved` in both
    networks."""
    ra = {r["pair"]: r for r in a["per_pair"]["part-swap"]}
    rb = {r["pair"]: r for r in b["per_pair"]["part-swap"]}
    common = [k for k in ra if k in rb and ra[k]["part"] == rb[k]["part"]]
    names = methods if methods is not None else [m for m in a["methods"] if m in b["methods"]]
    out: dict[str, Any] = {"pairs": len(common), "moved": moved, "methods": {}}
    both_moved = [k for k in common if toward(ra[k]) >= moved and toward(rb[k]) >= moved]
    out["pairs_moved_in_both"] = len(both_moved)
    for m in names:
        entry = {}
        for which, keys in (("all", common), ("moved", both_moved)):
            ha = [ra[k]["methods"][m]["hit"] for k in keys]
            hb = [rb[k]["methods"][m]["hit"] for k in keys]
            entry[which] = {"hit_rate_a": _mean_se([float(h) for h in ha]),
                            "hit_rate_b": _mean_se([float(h) for h in hb]), "p": mcnemar_p(ha, hb) if keys else None}
        out["methods"][m] = entry
    return out


# ---- the run -----------------------------------------------------------------------------------------------------


def _faces_of(plist, loaded, crop: str, detector: str):
    from explainface.explanations.faithfulness import _PairFaces
    from explainface.faces.crop import model_cut

    load = _PairFaces(plist, loaded.input_size, crop, detector, "auto", cut=model_cut(loaded.model))

    def face(j: int) -> Face | str:
        s = load(j)
        if isinstance(s, str):
            return s
        if s.landmarks is None:
            return "no landmarks (a .parts.png labels it): the part swap needs 68 points"
        ref = plist.images[j]
        identity = ref.path.parent.name if ref.path is not None else ref.name
        return Face(s.image, s.labels.astype(np.int64), s.landmarks, identity)

    return face, load.skipped


def ground_truth(model, pairs: str | Path, out_dir: str | Path | None = None, protocols: Sequence[str] = PROTOCOLS,
                 methods: Sequence[str] | None = None, limit: int | None = 600, seed: int = 0,
                 dictionary: str | Path | None = None, faces: str | Path = "synthetic", threshold: float | None = None,
                 crop: str = "auto", detector: str = "hog", device: str = "cpu", options: dict | None = None,
                 progress: bool = True) -> dict:  # fmt: skip
    """Run the protocols on `limit` pairs of `pairs` (drawn with `seed`) for every method that can run on `model`;
    returns (and writes, given `out_dir`, as groundtruth.json) the summaries and every pair's record."""
    from tqdm import tqdm

    from explainface.explanations.attributions import attribution_names, get_attribution
    from explainface.explanations.faithfulness import _drawn_pairs
    from explainface.explanations.why_pipeline import reference_set
    from explainface.files import ResumableLog, atomic_write_json, json_safe
    from explainface.readers.pairs import read_pairs
    from explainface.specs import parse_spec
    from explainface.training.checkpoint import load_model, model_name

    start = time.perf_counter()
    from explainface.explanations.why_pipeline import check_threshold

    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"unknown protocol {p!r}; choose from {', '.join(PROTOCOLS)}")
    threshold = check_threshold(threshold)
    specs = {label: parse_spec(label) for label in (methods or attribution_names())}
    for name, _ in specs.values():
        get_attribution(name)  # an unknown name fails here, before any work
    loaded = load_model(model, device)
    loaded = replace(loaded, model=for_inference(loaded.model))
    ref, channel_parts, source = reference_set(loaded, faces, dictionary=dictionary)
    ctx = PairContext(loaded.model, channel_parts=channel_parts, reference=ref, seed=seed, layer=loaded.layer,
                      options={**PROTOCOL_OPTIONS, **(options or {})})  # fmt: skip
    skipped_methods = {k: ctx.available(n) for k, (n, _) in specs.items() if ctx.available(n) is not None}
    runnable = {k: v for k, v in specs.items() if k not in skipped_methods}
    if not runnable:
        raise ValueError(f"no method can run on this network: {skipped_methods}")
    plist = read_pairs(pairs)
    face, skipped_faces = _faces_of(plist, loaded, crop, detector)
    drawn = _drawn_pairs(len(plist.a), limit, seed)
    param = next(loaded.model.parameters())
    usable = []
    for k in drawn:
        fa, fb = face(int(plist.a[k])), face(int(plist.b[k]))
        if not isinstance(fa, str) and not isinstance(fb, str):
            usable.append((int(k), fa, fb, bool(plist.same[k])))
    if len(usable) < 2:
        raise ValueError(f"{pairs}: fewer than 2 usable pairs ({len(skipped_faces)} faces skipped)")
    if threshold is None:  # the EER threshold of the unplanted pairs (xSSAB's choice)
        threshold = _eer_threshold(loaded.model, usable, param)
    settings = {"model": str(model) if isinstance(model, (str, Path)) else loaded.label, "pairs": str(pairs),
                "seed": seed, "limit": limit, "protocols": list(protocols), "methods": list(runnable),
                "threshold": threshold, "options": ctx.options, "channel_parts_from": source}  # fmt: skip
    log = ResumableLog(Path(out_dir) / RECORDS if out_dir is not None else None, json_safe(settings))
    records: dict[str, list] = {p: [] for p in protocols}
    for k, fa, fb, same in tqdm(usable, desc="ground truth", unit="pair", disable=not progress):
        done = log.done.get(k)
        if done is None:
            rng = np.random.default_rng([seed, k])
            third = _third(usable, fa.identity, fb.identity, rng)
            donor = third if same else fb
            done = {}
            if "part-swap" in protocols:
                shown = [p for p in PARTS if (fa.labels == PART_NAMES.index(p)).any()]
                part = shown[int(rng.integers(len(shown)))]
                pair = swap_pair(loaded.model, fa, fb, donor, same, part, param)
                done["part-swap"] = {"pair": k, **swap_record(ctx, runnable, pair, k)}
            if "patch" in protocols:
                pair = patch_pair(loaded.model, fa, fb, donor, same, [seed, k, 1], param)
                done["patch"] = {"pair": k, **patch_record(ctx, runnable, pair, k, threshold, seed)}
            log.add(k, json_safe(done))
        for p in protocols:
            records[p].append(done[p])
    result = {
        "model": model_name(model), "model_label": loaded.label, "layer": loaded.layer, "pairs_file": str(pairs),
        "seed": seed, "limit": limit, "threshold": threshold, "methods": list(runnable),
        "methods_skipped": skipped_methods, "options": ctx.options,
        "channel_parts_from": source, "pairs": {"drawn": len(drawn), "used": len(usable)},
        "faces_skipped": dict(list(skipped_faces.items())[:100]),
        "part-swap": summarize_swaps(records["part-swap"], list(runnable)) if "part-swap" in protocols else None,
        "patch": summarize_patches(records["patch"], list(runnable), threshold) if "patch" in protocols else None,
        "per_pair": records, "seconds": time.perf_counter() - start,
    }  # fmt: skip
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "groundtruth.json", json_safe(result))
        groundtruth_figure(result, out / "groundtruth.png")
    return result


#: Each finished pair's records, one JSON line each after a first line of the run's settings: a killed run given
#: the same command continues from it.
RECORDS = "groundtruth.records.jsonl"


def _third(usable, id_a: str, id_b: str, rng: np.random.Generator) -> Face:
    """A face of an identity other than A's and B's, drawn from the usable pairs' faces."""
    for _ in range(100):
        _, fa, fb, _ = usable[int(rng.integers(len(usable)))]
        f = fa if rng.random() < 0.5 else fb
        if f.identity not in (id_a, id_b):
            return f
    raise ValueError("no face of a third identity among the pairs")


@torch.no_grad()
def _eer_threshold(model, usable, param) -> float:
    """The threshold where false matches and false non-matches are equally frequent on the unplanted pairs."""
    cos = np.array([_cos(model, _tensor([fa.image, fb.image], param)) for _, fa, fb, _ in usable])
    same = np.array([s for *_, s in usable])
    if same.all() or not same.any():
        return float(np.median(cos))
    cands = np.unique(cos)
    gaps = [abs((cos[~same] >= t).mean() - (cos[same] < t).mean()) for t in cands]
    return float(cands[int(np.argmin(gaps))])


# ---- what people look at -----------------------------------------------------------------------------------------


def groundtruth_table(result: dict) -> str:
    """The protocols' numbers as a Markdown table: per method, the part-swap hit rate (all pairs, moved pairs) and
    mean rank, and the Patch-LFW match-rate areas."""
    swap, patch = result.get("part-swap"), result.get("patch")
    head = ["method"]
    if swap:
        head += ["hit rate (all)", f"hit rate (moved >= {swap['moved']:g})", "rank of planted part", "p vs first"]
    if patch:
        head += ["Patch-LFW area, impostor (lower better)", "genuine (higher better)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(s: dict) -> str:
        if s["mean"] is None:
            return "-"
        return f"{100 * s['mean']:.1f}%" + (f" ± {100 * s['se']:.1f}" if s["se"] is not None else "")

    methods = result["methods"] + (["random order"] if patch else [])
    for m in methods:
        cells = [m]
        if swap:
            e = swap["methods"].get(m)
            if e is None:
                cells += ["", "", "", ""]
            else:
                r = e["all"]["rank"]
                p = swap.get(f"p_vs_{result['methods'][0]}_moved", {}).get(m)
                rank = "-" if r["mean"] is None else f"{r['mean']:.2f}"
                cells += [pct(e["all"]["hit_rate"]), pct(e["moved"]["hit_rate"]), rank, "" if p is None else f"{p:.3g}"]
        if patch:
            e = patch["methods"].get(m, {})
            cells += [f"{e[k]['area']:.3f}" if k in e else "-" for k in ("impostor", "genuine")]
        rows.append("| " + " | ".join(cells) + " |")
    lines = [f"{result['model_label']}, {result['pairs']['used']} pairs of {result['pairs_file']}, "
             f"threshold {result['threshold']:.3f}"]  # fmt: skip
    if swap:
        lines.append(f"part swap: {swap['pairs_moved']} of {swap['pairs']} plantings moved the cosine by >= "
                     f"{swap['moved']:g} towards their reason")  # fmt: skip
    return "\n".join([*lines, "", *rows])


def groundtruth_figure(result: dict, out_png: str | Path) -> Path:
    """Hit rates on the part swap (bars with standard errors, chance level dashed) and Patch-LFW's match-rate
    curves (impostor and genuine pairs), one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swap, patch = result.get("part-swap"), result.get("patch")
    panels = (1 if swap else 0) + (2 if patch else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(5 * max(panels, 1), 4), squeeze=False)
    k = 0
    if swap:
        ax = axes[0, k]
        k += 1
        names = result["methods"]
        for j, which in enumerate(("all", "moved")):
            vals = [swap["methods"][m][which]["hit_rate"] for m in names]
            ax.bar(np.arange(len(names)) + 0.4 * j, [100 * (v["mean"] or 0) for v in vals], 0.4,
                   yerr=[100 * (v["se"] or 0) for v in vals], label=f"{which} pairs")  # fmt: skip
        ax.axhline(100 / len(PARTS), ls="--", c="grey", label="chance (1/7)")
        ax.set_xticks(np.arange(len(names)) + 0.2, names, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("planted part ranked first, %")
        ax.set_title("part swap")
        ax.legend(fontsize=8)
    if patch:
        for kind in ("impostor", "genuine"):
            ax = axes[0, k]
            k += 1
            for m, e in patch["methods"].items():
                if kind in e:
                    style = dict(ls="--", c="k") if m == "random order" else {}
                    ax.plot(100 * np.asarray(e[kind]["fractions"]), e[kind]["match_rate"], label=m, **style)
            ax.set_xlabel("pixels restored, % (in the map's order)")
            ax.set_ylabel("match rate")
            ax.set_title(f"Patch-LFW, {kind} pairs ({'lower' if kind == 'impostor' else 'higher'} = better)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
