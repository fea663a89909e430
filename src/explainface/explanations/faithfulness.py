"""Faithfulness of part explanations: do the parts an explanation ranks first move the pair's
similarity the most when they are removed?

For a pair (A, B) and an *order* of the face parts (most important first), the **deletion curve** is the
protocol's cosine (flip-summed embeddings, `explanations.why`) after removing the first k parts of the order
cumulatively, in both faces, k = 0..K, by either kind of removal of `explanations.why`:

* mode ``"channels"``: the channels of the removed parts (the channel dictionary's dominant part) at the
  reference mean (`why.channel_variants`); parts with no channel are skipped in this mode;
* mode ``"occlusion"``: the removed parts' pixels mid-grey (`why.occlusion_variants`); parts with no pixel in
  either face are skipped in this mode.

Skipping drops a part from every order alike, so within a pair and a mode all orders have the same K, the same
first point (the plain cosine) and the same last point (every usable part removed); they differ only in the
path between. All variants of all orders of a pair go through the network in ONE batched call per mode (the
prefixes the orders share are computed once).

Orders, per pair (each is a permutation of all of `PARTS`; what an explanation cannot rank goes last, in PARTS
order, and ties keep PARTS order):

* every attribution method of `ORDER_METHODS` that can run on the network (`explanations.attributions`, the one
  registry that `why` and the ground-truth protocols use): its part scores, descending (most supportive of the
  match first): ``channels`` and ``occlusion`` (the part's contribution, cos - cos without the part),
  ``gradcam``, ``gradient`` (xSSAB) and ``xcos`` (an xCos checkpoint only: its patch cosine x attention map),
  whose pixel maps are averaged over the part's pixels of both faces;
* ``"random"``: a seeded permutation, ``np.random.default_rng([seed, pair_index])`` (pair_index = the pair's
  position in the pair file, so a pair keeps its order whatever else is drawn).

Scores, per pair, order and mode: the **deletion score** = mean over k = 1..K of (cos_0 - cos_k), how fast
removing the top-ranked parts moves the similarity (higher = more faithful; NaN when K = 0); the
**normalised curve** for plotting = cos_0 - cos_k against the fraction k / K of the usable parts removed, linearly
interpolated onto `CURVE_GRID` (so pairs with different K average). The **rank agreement** of the two
explanations of a pair = Spearman's rho of the channel and occlusion contributions over the parts that have both
(NaN below 3 such parts or when either is constant).

`faithfulness` runs it over up to `limit` pairs of a pair file (a seeded draw over all pairs) and writes
``faithfulness.json`` (means and standard errors over pairs, paired differences vs ``random`` and vs ``gradcam``
with a paired t-test) and ``deletion_curves.png``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explainface.explanations.why import (
    PARTS,
    ReferenceMaps,
    channel_variants,
    occlusion_variants,
    part_channel_sets,
    part_masks_of,
)
from explainface.models.modes import eval_mode, for_inference

MODES: tuple[str, ...] = ("channels", "occlusion")
#: The attribution methods whose part orders are measured (registry names; CorrRISE is left to the protocols, for
#: its cost), and every order with the seeded random one.
ORDER_METHODS: tuple[str, ...] = ("channels", "occlusion", "gradcam", "gradient", "xcos")
ORDERS: tuple[str, ...] = ("channels", "occlusion", "random", "gradcam", "gradient", "xcos")
#: Fractions of the usable parts removed at which normalised curves are reported (0, 1/7, ..., 1).
CURVE_GRID: np.ndarray = np.linspace(0.0, 1.0, len(PARTS) + 1)
#: The orders every other order is compared with (paired over pairs).
BASELINES: tuple[str, ...] = ("random", "gradcam")

DEFINITIONS = {
    "deletion_score": "mean over k = 1..K of (cos_0 - cos_k), cos_k = cosine with the first k usable parts of the "
    "order removed in both faces; higher = removing the parts ranked first moves the similarity more",
    "curve": "cos_0 - cos_k against k / K, interpolated onto x",
    "skipped_parts": "channels mode skips parts with no channel; occlusion mode skips parts with no pixel in either "
    "face; skipping applies to all orders alike",
    "orders": "each attribution method's part scores descending (channels / occlusion: cos - cos without the "
    "part; gradcam, gradient, xcos: the pixel map's mean over the part's pixels of both faces); random: "
    "default_rng([seed, pair_index]).permutation; parts an explanation cannot rank go last",
    "rank_agreement": "Spearman rho of channel vs occlusion contributions over the parts that have both (NaN below 3)",
}


# ---- orders -----------------------------------------------------------------------------------------------------


def ranked(values: Mapping[str, float | None], parts: Sequence[str] = PARTS) -> list[str]:
    """The parts by value, descending (ties keep `parts` order); parts without a finite value go last."""
    have = [p for p in parts if values.get(p) is not None and math.isfinite(values[p])]
    have.sort(key=lambda p: -values[p])  # stable
    return have + [p for p in parts if p not in have]


def random_order(seed: int, pair_index: int, parts: Sequence[str] = PARTS) -> list[str]:
    """A seeded permutation of the parts for one pair: `np.random.default_rng([seed, pair_index])`."""
    perm = np.random.default_rng([int(seed), int(pair_index)]).permutation(len(parts))
    return [parts[i] for i in perm]


def _label_ids(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    return labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)


# ---- deletion curves ----------------------------------------------------------------------------------------------


def usable_parts(mode: str, labels: torch.Tensor, channel_parts: Mapping[int, str | None]) -> list[str]:
    """The parts a mode can remove (PARTS order): with at least one channel ("channels") or with a pixel in
    either face ("occlusion")."""
    if mode == "channels":
        sets = part_channel_sets(channel_parts)
        return [p for p in PARTS if sets[p]]
    if mode == "occlusion":
        masks = part_masks_of(labels)
        return [p for p in PARTS if bool(masks[p].any())]
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def deletion_curves(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    reference: ReferenceMaps | None,
    channel_parts: Mapping[int, str | None],
    orders: Mapping[str, Sequence[str]],
    mode: str,
) -> dict[str, np.ndarray]:
    """Order name -> cosines [K + 1] of pair `images` [2, 3, S, S] (normalised) with the first k usable parts
    of the order removed cumulatively in both faces, k = 0..K (see the module docstring for the modes and the
    skipped parts). All orders in ONE batched call of `channel_variants` / `occlusion_variants`.
    `reference` is needed for mode "channels" only."""
    usable = set(usable_parts(mode, labels, channel_parts))
    variants: dict[frozenset[str], int] = {}
    index: dict[str, list[int]] = {}
    for name, order in orders.items():
        unknown = [p for p in order if p not in PARTS]
        if unknown or len(set(order)) != len(order):
            raise ValueError(f"order {name!r} must list distinct parts of {PARTS}, got {list(order)}")
        seq = [p for p in order if p in usable]
        index[name] = [variants.setdefault(frozenset(seq[:k]), len(variants)) for k in range(len(seq) + 1)]
    if not index:
        return {}
    removed = list(variants)
    with eval_mode(model):
        if mode == "channels":
            if reference is None:
                raise ValueError('mode "channels" needs reference maps')
            sets = part_channel_sets(channel_parts)
            cos = channel_variants(model, images, reference, [sorted(c for p in v for c in sets[p]) for v in removed])
        else:
            masks = part_masks_of(labels)
            empty = torch.zeros_like(labels, dtype=torch.bool)
            cover = []
            for v in removed:
                m = empty.clone()
                for p in v:
                    m |= masks[p]
                cover.append(m)
            cos = occlusion_variants(model, images, cover)
    cos = cos.detach().double().cpu().numpy()
    return {name: cos[idx] for name, idx in index.items()}


def deletion_score(curve: Sequence[float]) -> float:
    """Mean over k = 1..K of (cos_0 - cos_k); NaN for a curve with no removal (K = 0)."""
    c = np.asarray(curve, dtype=np.float64)
    return float(np.mean(c[0] - c[1:])) if len(c) > 1 else math.nan


def normalized_curve(curve: Sequence[float], grid: np.ndarray = CURVE_GRID) -> np.ndarray:
    """cos_0 - cos_k against k / K, linearly interpolated onto `grid` (NaN for K = 0)."""
    c = np.asarray(curve, dtype=np.float64)
    if len(c) < 2:
        return np.full(len(grid), np.nan)
    return np.interp(grid, np.linspace(0.0, 1.0, len(c)), c[0] - c)


def rank_agreement(by_channels: Mapping[str, float | None], by_occlusion: Mapping[str, float | None]) -> float:
    """Spearman's rho of two contribution sets over the parts that have both; NaN below 3 parts or if constant."""
    from scipy.stats import spearmanr

    both = [p for p in PARTS if by_channels.get(p) is not None and by_occlusion.get(p) is not None]
    if len(both) < 3:
        return math.nan
    x, y = [by_channels[p] for p in both], [by_occlusion[p] for p in both]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input: rho is undefined (NaN)
        rho = spearmanr(x, y)[0]
    return float(rho) if np.isfinite(rho) else math.nan


def evaluate_pair(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    reference: ReferenceMaps,
    channel_parts: Mapping[int, str | None],
    seed: int = 0,
    pair_index: int = 0,
    layer: str | None = None,
    xcos_scorer=None,
) -> dict:
    """Everything of one pair: contributions, the orders, the deletion curves and scores per mode, rank
    agreement. The orders come from the attribution registry (`ORDER_METHODS` that can run; `xcos_scorer`, an
    `XCosScorer`, lets "xcos" run) and the seeded random order."""
    from explainface.explanations.attributions import PairContext, attribute
    from explainface.explanations.attributions.base import pair_cosine

    ctx = PairContext(model, channel_parts=channel_parts, reference=reference, xcos_scorer=xcos_scorer,
                      layer=layer, seed=seed)  # fmt: skip
    scores = {m: attribute(m, ctx, images, labels, index=pair_index).parts
              for m in ORDER_METHODS if ctx.available(m) is None}  # fmt: skip
    with eval_mode(model):
        cos = pair_cosine(model, images)
    by_channels, by_occlusion = scores.get("channels", {}), scores.get("occlusion", {})
    orders = {**{m: ranked(v) for m, v in scores.items()}, "random": random_order(seed, pair_index)}
    curves = {m: deletion_curves(model, images, labels, reference, channel_parts, orders, m) for m in MODES}
    return {
        "cosine": cos,
        "contributions": {"channels": by_channels, "occlusion": by_occlusion},
        "part_scores": {m: v for m, v in scores.items() if m not in ("channels", "occlusion")},
        "orders": orders,
        "curves": {m: {o: c.tolist() for o, c in cs.items()} for m, cs in curves.items()},
        "scores": {m: {o: deletion_score(c) for o, c in cs.items()} for m, cs in curves.items()},
        "rank_agreement": rank_agreement(by_channels, by_occlusion),
    }


# ---- the measurement over a pair file -------------------------------------------------------------------------------


def _stat(values: Sequence[float]) -> dict:
    from explainface.stats import mean_se

    mean, se, n = mean_se(values)
    return {"mean": mean, "se": se, "n": n}


def summarize(records: Sequence[dict], orders: Sequence[str]) -> dict:
    """Scores and curves over pairs from `evaluate_pair` records (each with a "same" flag)."""
    from explainface.stats import paired_test

    scores, curves = {}, {}
    for mode in MODES:
        per = {o: [r["scores"][mode].get(o, math.nan) for r in records] for o in orders}
        scores[mode] = {}
        for o in orders:
            entry = _stat(per[o])
            for subset, flag in (("same", True), ("different", False)):
                entry[subset] = _stat([v for v, r in zip(per[o], records) if r["same"] == flag])
            for base in BASELINES:
                if base != o and base in per:
                    entry[f"vs_{base}"] = paired_test(per[o], per[base])
            scores[mode][o] = entry
        curves[mode] = {}
        for o in orders:
            ys = np.array([normalized_curve(r["curves"][mode][o]) for r in records if o in r["curves"][mode]])
            ys = ys[np.isfinite(ys).all(1)] if len(ys) else np.zeros((0, len(CURVE_GRID)))
            n = len(ys)
            mean = ys.mean(0) if n else np.full(len(CURVE_GRID), np.nan)
            se = ys.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.full(len(CURVE_GRID), np.nan)
            curves[mode][o] = {"mean": mean.tolist(), "se": se.tolist(), "n": n}
    return {"scores": scores, "curves": curves, "rank_agreement": _stat([r["rank_agreement"] for r in records])}


def deletion_figure(summary: dict, out_png: str | Path, title: str = "Deletion curves") -> Path:
    """One panel per mode: the mean normalised deletion curve (+- 1 s.e.) of each order."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(MODES), 4.0), dpi=100, facecolor="white")
    axes = fig.subplots(1, len(MODES), squeeze=False)[0]
    for ax, mode in zip(axes, MODES):
        for o, c in summary["curves"][mode].items():
            mean, se = np.array(c["mean"], dtype=float), np.array(c["se"], dtype=float)
            if not np.isfinite(mean).any():
                continue
            score = summary["scores"][mode][o]["mean"]
            line = ax.plot(CURVE_GRID, mean, "o-", ms=3, label=f"{o} ({score:.3f})")[0]
            if np.isfinite(se).all():
                ax.fill_between(CURVE_GRID, mean - se, mean + se, color=line.get_color(), alpha=0.15, lw=0)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_title(f"removal by {mode}")
        ax.set_xlabel("fraction of parts removed (in the order's ranking)")
        ax.set_ylabel("cos$_0$ - cos$_k$")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=8, title="order (deletion score)", title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor="white")
    return out


def _resolve_crop(path: Path, crop: str, cut: str = "detect") -> str:
    from explainface.faces.crop import is_model_input_folder

    if crop != "auto":
        return crop
    return "none" if is_model_input_folder(path.parent) or is_model_input_folder(path.parent.parent) else cut


def _drawn_pairs(total: int, limit: int | None, seed: int) -> np.ndarray:
    """The indices of the pairs to measure: `limit` drawn with `seed` (sorted), or all of them."""
    if limit is not None and limit < total:
        return np.sort(np.random.default_rng(seed).choice(total, size=max(0, int(limit)), replace=False))
    return np.arange(total)


class _PairFaces:
    """`face(j)`: image j of a pair list as a `PartSample` (loaded once), or the reason it is unusable (a str);
    `skipped` names the unusable images with their reasons."""

    def __init__(self, plist, size: int, crop: str, detector: str, landmarks: str, cut: str = "detect") -> None:
        self.plist, self.size, self.crop, self.detector, self.landmarks = plist, size, crop, detector, landmarks
        self.cut = cut
        self.detectors: dict[str, object] = {}
        self.faces: dict[int, object] = {}
        self.skipped: dict[str, str] = {}

    def __call__(self, j: int):
        from explainface.faces.detect import create_detector
        from explainface.parts.samples import face_sample

        if j not in self.faces:
            ref = self.plist.images[j]
            try:
                if ref.path is None:
                    raise ValueError("an image held in the pair file has no part labels beside it")
                how = _resolve_crop(ref.path, self.crop, self.cut)
                if how in ("detect", "chip") and self.detector not in self.detectors:
                    self.detectors[self.detector] = create_detector(self.detector)
                self.faces[j] = face_sample(ref.path, self.size, how, self.detectors.get(self.detector),
                                            self.landmarks, name=ref.name)  # fmt: skip
            except (OSError, ValueError) as err:
                problem = str(err)
                prefix = f"{ref.path}: "
                self.faces[j] = problem[len(prefix) :] if problem.startswith(prefix) else problem
                self.skipped[ref.name] = self.faces[j]
        return self.faces[j]


def _faithfulness_result(loaded, plist, seed: int, limit, orders, counts: dict, summary: dict, records: list,
                         start: float) -> dict:  # fmt: skip
    """faithfulness.json's content: what was measured on what, the counts, the summary, every pair's record."""
    from explainface.training.checkpoint import model_name

    return {
        "model": model_name(loaded),
        "model_label": loaded.label,
        "layer": loaded.layer,
        "input_size": loaded.input_size,
        "pairs_file": plist.source,
        "seed": seed,
        "limit": limit,
        "orders": orders,
        "modes": list(MODES),
        "parts": list(PARTS),
        "curve_x": CURVE_GRID.tolist(),
        "pairs": {
            "total": counts["total"],
            "drawn": counts["drawn"],
            "used": len(records),
            "skipped": len(counts["skipped_pairs"]),
            "same": sum(r["same"] for r in records),
            "different": sum(not r["same"] for r in records),
        },
        "faces_skipped": len(counts["skipped_faces"]),
        "skipped_faces": dict(list(counts["skipped_faces"].items())[:100]),
        "skipped_pairs": dict(list(counts["skipped_pairs"].items())[:100]),
        **summary,
        "definitions": DEFINITIONS,
        "per_pair": records,
        "seconds": time.perf_counter() - start,
    }


def faithfulness(
    model,
    pairs,
    out_dir: str | Path | None = None,
    *,
    root: str | Path | None = None,
    reference: ReferenceMaps,
    channel_parts: Mapping[int, str | None],
    limit: int | None = 200,
    seed: int = 0,
    crop: str = "auto",
    detector: str = "hog",
    landmarks: str = "auto",
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Faithfulness of the part explanations of `model` (a checkpoint, an `nn.Module` or a `LoadedModel`)
    on up to `limit` pairs of `pairs` (a pair file for `read_pairs`, with `root`, or a `PairList`), drawn with
    `seed` over all pairs (all of them when `limit` is None or not smaller). Each face goes through
    `face_sample` (`crop`, `detector`, `landmarks` as in `explain`); a face that cannot be loaded or labelled
    skips its pairs, which are counted and named with the reason. Writes `faithfulness.json` and
    `deletion_curves.png` to `out_dir` when given, and returns the JSON's content. Raises ValueError when no
    pair is usable.
    """
    from tqdm import tqdm

    from explainface.evaluate.scoring import create_scorer
    from explainface.files import atomic_write_json, json_safe
    from explainface.inputs import to_tensor
    from explainface.models.base import LoadedModel
    from explainface.readers.pairs import PairList, read_pairs
    from explainface.training.checkpoint import load_model

    start = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    loaded = replace(loaded, model=for_inference(loaded.model))
    model, size = loaded.model, loaded.input_size
    param = next(model.parameters())
    plist = pairs if isinstance(pairs, PairList) else read_pairs(pairs, root=root)
    total = len(plist)
    chosen = _drawn_pairs(total, limit, seed)
    scorer = create_scorer("xcos", loaded) if "xcos" in loaded.pair_heads else None
    orders = [o for o in ORDERS if o != "xcos" or scorer is not None]  # the others run on every split network

    from explainface.faces.crop import model_cut

    face = _PairFaces(plist, size, crop, detector, landmarks, model_cut(model))
    records, skipped_pairs = [], {}
    for i in tqdm(chosen.tolist(), desc="pairs", unit="pair", disable=not progress):
        ia, ib = int(plist.a[i]), int(plist.b[i])
        sa, sb = face(ia), face(ib)
        bad = [f"{plist.images[j].name}: {s}" for j, s in ((ia, sa), (ib, sb)) if isinstance(s, str)]
        if bad:
            skipped_pairs[str(i)] = "; ".join(bad)
            continue
        images = torch.stack([to_tensor(sa.image), to_tensor(sb.image)]).to(device=param.device, dtype=param.dtype)
        labels = torch.from_numpy(np.stack([sa.labels, sb.labels]).astype(np.int64)).to(param.device)
        rec = evaluate_pair(model, images, labels, reference, channel_parts, seed=seed, pair_index=i,
                            layer=loaded.layer, xcos_scorer=scorer)  # fmt: skip
        records.append({"index": i, "a": plist.images[ia].name, "b": plist.images[ib].name,
                        "same": bool(plist.same[i]), **rec})  # fmt: skip
    if not records:
        shown = "; ".join(list(skipped_pairs.values())[:3])
        raise ValueError(f"{plist.source}: no usable pair among {len(chosen)} drawn ({shown})")

    summary = summarize(records, orders)
    counts = {"total": total, "drawn": len(chosen), "skipped_pairs": skipped_pairs, "skipped_faces": face.skipped}
    result = _faithfulness_result(loaded, plist, seed, limit, orders, counts, summary, records, start)
    result = json_safe(result)
    if out is not None:
        atomic_write_json(out / "faithfulness.json", result)
        deletion_figure(summary, out / "deletion_curves.png",
                        title=f"Deletion curves: {loaded.label}, {len(records)} pairs")  # fmt: skip
    return result
