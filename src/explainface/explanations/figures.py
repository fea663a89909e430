"""The figures of docs/method.md §8 as PNG files (matplotlib, no pyplot state): channel gallery (Figure 6), feature
maps of two networks (Figure 5), the channel dictionary as a picture, the Grad-CAM similarity panel (Figure 1).

Every figure is a grid of square tiles at fixed positions in inches (`TileGrid`), so a figure's size follows from
its rows and columns alone and a tile can be found again in the PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explainface.evaluate.topk import top_masks
from explainface.explanations.overlay import heat_overlay, top_overlay
from explainface.models.capture import layer_name
from explainface.models.maps import upsample_maps
from explainface.parts.labels import PART_COLORS, PART_INDEX, PART_NAMES
from explainface.tiles import GAP, TITLE, TileGrid, figure_header, save_figure

#: Colour map of raw feature maps (Figure 5); overlays use `overlay.OVERLAY_CMAP`.
MAP_CMAP = "viridis"


@torch.no_grad()
def layer_maps(model: nn.Module, images: Sequence[np.ndarray], layer: str | None = None) -> torch.Tensor:
    """Feature maps [N, C, h, w] (float32, CPU) of uint8 face images at `layer` (default the target layer), eval
    mode; the model's previous mode is restored."""
    from explainface.inputs import to_tensor
    from explainface.models.capture import target_maps
    from explainface.models.modes import eval_mode

    if not len(images):
        raise ValueError("no images")
    p = next(model.parameters())
    x = torch.stack([to_tensor(np.ascontiguousarray(im)) for im in images]).to(device=p.device, dtype=p.dtype)
    with eval_mode(model):
        return target_maps(model, x, layer_name(model, layer), detach=True).float().cpu()


def top_channels(maps: torch.Tensor, n: int) -> list[int]:
    """The `n` channels of maps [N, C, h, w] with the highest mean activation (over images and positions)."""
    mean = maps.float().mean(dim=(0, 2, 3))
    return mean.topk(min(n, mean.numel())).indices.tolist()


def _check_channels(channels: Sequence[int], n: int, what: str) -> list[int]:
    bad = [c for c in channels if not 0 <= int(c) < n]
    if bad:
        raise ValueError(f"{what} has {n} channels (0..{n - 1}); no channel {', '.join(map(str, bad))}")
    return [int(c) for c in channels]


def channel_gallery_grid(n_channels: int, n_people: int) -> TileGrid:
    """The layout of `channel_gallery`: one row per channel, one column per person."""
    return TileGrid(n_channels, n_people, top=0.75 + TITLE)


def channel_gallery(
    model: nn.Module,
    images: Sequence[np.ndarray],
    channels: Sequence[int],
    layer: str | None = None,
    out_png: str | Path = "gallery.png",
    names: Sequence[str] | None = None,
) -> Path:
    """Figure 6: the top-10% overlay (`top_overlay`) of each channel (rows) on each face (columns)."""
    layer = layer_name(model, layer)
    maps = layer_maps(model, images, layer)
    channels = _check_channels(channels, maps.shape[1], layer)
    if not channels:
        raise ValueError("channel_gallery needs at least one channel")
    names = list(names) if names is not None else [f"face {i + 1}" for i in range(len(images))]
    grid = channel_gallery_grid(len(channels), len(images))
    fig = grid.figure()
    figure_header(
        fig,
        grid,
        grid.left,
        "Top-10% regions (Figure 6)",
        f"{layer}: channels (rows) on {len(images)} faces (columns); the channel's top 10% as a heatmap",
    )
    for r, ch in enumerate(channels):
        x, y = grid.box(r, 0)
        grid.text(fig, x - 0.08, y + grid.tile / 2, f"ch {ch}", fontsize=9, ha="right", va="center")
        for c, image in enumerate(images):
            ax = grid.tile_axes(fig, r, c)
            ax.imshow(top_overlay(image, maps[c, ch]))
            if r == 0:
                ax.set_title(_short(names[c], 18), fontsize=8, pad=3)
    return save_figure(fig, out_png)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def feature_map_grid(n_networks: int, n_maps: int) -> TileGrid:
    """The layout of `feature_map_comparison`: per network a row with the face, `n_maps` maps and a colour bar."""
    return TileGrid(n_networks, n_maps + 1, left=0.12, right=0.75, top=0.75 + 2 * TITLE, vgap=GAP + 2 * TITLE)


def feature_map_comparison(
    models: Mapping[str, nn.Module],
    image: np.ndarray,
    layer: str | Mapping[str, str] | None = None,
    out_png: str | Path = "feature_maps.png",
    channels: int | Sequence[int] | None = None,
) -> Path:
    """Figure 5: the same face through several networks; per network (row) its channels as raw maps upsampled to
    the face, all on one colour scale (0 to the row's maximum) so that the row's maps compare.

    `channels`: a list (the same channels for every network), or n (default 8): each network's n channels with
    the highest mean activation on this face. `layer`: one name for all, {label: name}, or each target layer.
    """
    if not models:
        raise ValueError("feature_map_comparison needs at least one model")
    rows = []
    for label, model in models.items():
        name = layer_name(model, layer.get(label) if isinstance(layer, Mapping) else layer)
        maps = layer_maps(model, [image], name)[0]
        if channels is None or isinstance(channels, int):
            chosen = top_channels(maps[None], 8 if channels is None else channels)
        else:
            chosen = _check_channels(channels, maps.shape[0], f"{label} ({name})")
        rows.append((label, name, chosen, upsample_maps(maps[chosen], image.shape[:2]).numpy()))
    grid = feature_map_grid(len(rows), max(len(r[2]) for r in rows))
    fig = grid.figure()
    figure_header(fig, grid, grid.left, "Feature maps of one face (Figure 5)",
            "raw maps upsampled to the face; one colour scale per network (row), from 0 to its maximum")  # fmt: skip
    for r, (label, name, chosen, up) in enumerate(rows):
        x, y = grid.box(r, 0)
        grid.text(fig, x, y - TITLE - 0.12, f"{label}  [{name}]", fontsize=10, va="center", weight="bold")
        ax = grid.tile_axes(fig, r, 0)
        ax.imshow(image)
        ax.set_title("face", fontsize=8, pad=3)
        vmax = max(float(up.max()), 1e-12)
        im = None
        for c, (ch, m) in enumerate(zip(chosen, up), start=1):
            ax = grid.tile_axes(fig, r, c)
            im = ax.imshow(m, cmap=MAP_CMAP, vmin=0.0, vmax=vmax)
            ax.set_title(f"ch {ch}", fontsize=8, pad=3)
        if im is not None:
            x_end = grid.box(r, len(chosen))[0] + grid.tile + 0.1
            cax = fig.add_axes(grid.rect(x_end, y, 0.12, grid.tile))
            fig.colorbar(im, cax=cax).ax.tick_params(labelsize=7)
    return save_figure(fig, out_png)


def dictionary_grid(per_part: int) -> TileGrid:
    """The layout of `channel_dictionary_figure`: one row per part (PART_NAMES[1:]), `per_part` columns."""
    return TileGrid(len(PART_NAMES) - 1, per_part, left=1.3, top=0.75 + TITLE, vgap=GAP + TITLE)


def _example_image(masks: torch.Tensor, maps_c: torch.Tensor, part: str, labels: torch.Tensor | None) -> int:
    """The face that shows a channel at `part` best: highest IoU of its top mask with the part where part labels
    are known and some mask touches the part, else the face where the channel is strongest."""
    if labels is not None:
        part_mask = labels == PART_INDEX[part]
        inter = (masks & part_mask).flatten(1).sum(1).float()
        union = (masks | part_mask).flatten(1).sum(1).float().clamp_min(1)
        iou = inter / union
        if float(iou.max()) > 0:
            return int(iou.argmax())
    return int(maps_c.flatten(1).amax(1).argmax())


def channel_dictionary_figure(
    channels: Sequence[Mapping],
    model: nn.Module,
    images: Sequence[np.ndarray],
    layer: str | None = None,
    out_png: str | Path = "channel_dictionary.png",
    per_part: int = 4,
    labels: Sequence[np.ndarray] | None = None,
) -> Path:
    """The channel dictionary as a picture: per part (rows, PART_NAMES[1:] order) its `per_part` most consistent
    channels (highest frequency of that dominant part), each as a top-10% overlay on an example face.

    `channels` are the dictionary entries of `explain` ({channel, part, frequency, ...}). With part `labels`
    (uint8 maps indexing PART_NAMES, one per image) the example is the face whose mask overlaps the part most;
    without, the face where the channel is strongest.
    """
    if per_part < 1:
        raise ValueError(f"per_part must be at least 1, got {per_part}")
    layer = layer_name(model, layer)
    maps = layer_maps(model, images, layer)
    size = images[0].shape[:2]
    label_t = None
    if labels is not None:
        if len(labels) != len(images):
            raise ValueError(f"{len(labels)} label maps for {len(images)} images")
        label_t = torch.from_numpy(np.stack(labels))
    by_part: dict[str, list[Mapping]] = {p: [] for p in PART_NAMES[1:]}
    for entry in channels:
        if entry.get("part") in by_part and entry.get("frequency") is not None:
            by_part[entry["part"]].append(entry)
    _check_channels([e["channel"] for es in by_part.values() for e in es], maps.shape[1], layer)

    grid = dictionary_grid(per_part)
    fig = grid.figure()
    figure_header(
        fig,
        grid,
        0.12,
        "Channel dictionary",
        f"{layer}: channels grouped by the part they detect most often; (how often), an example face each",
    )
    for r, part in enumerate(PART_NAMES[1:]):
        entries = sorted(by_part[part], key=lambda e: (-e["frequency"], e["channel"]))
        x, y = grid.box(r, 0)
        color = np.array(PART_COLORS[part]) / 255.0
        fig.add_axes(grid.rect(0.1, y + 0.1, 0.14, grid.tile - 0.2), facecolor=color).set(xticks=[], yticks=[])
        n = len(entries)
        grid.text(fig, 0.32, y + grid.tile / 2, f"{part}\n{n} channel{'s' if n != 1 else ''}", fontsize=9,
                  va="center")  # fmt: skip
        if not entries:
            grid.text(fig, x + 0.1, y + grid.tile / 2, "no channel", fontsize=9,
                      va="center", color="0.4", style="italic")  # fmt: skip
            continue
        for c, e in enumerate(entries[:per_part]):
            ch = int(e["channel"])
            masks = top_masks(maps[:, ch], size)
            i = _example_image(masks, maps[:, ch], part, label_t)
            ax = grid.tile_axes(fig, r, c)
            ax.imshow(top_overlay(images[i], maps[i, ch]))
            ax.set_title(f"ch {ch} ({e['frequency']:.2f})", fontsize=8, pad=3)
    return save_figure(fig, out_png)


def similarity_grid(n_rows: int) -> TileGrid:
    """The layout of `similarity_panel`: per network a row of face A, face B, Grad-CAM A, Grad-CAM B."""
    return TileGrid(n_rows, 4, left=0.12, top=0.75 + 2 * TITLE, vgap=GAP + 2 * TITLE, tile=1.4)


def similarity_panel(
    image_a: np.ndarray,
    image_b: np.ndarray,
    results: tuple[float, np.ndarray, np.ndarray] | Mapping[str, tuple[float, np.ndarray, np.ndarray]],
    out_png: str | Path = "gradcam.png",
    names: tuple[str, str] | None = None,
) -> Path:
    """Figure 1: face A, face B and the Grad-CAM of their similarity on each (`similarity_gradcam` results), the
    cosine similarity in the row's title; one row per network when `results` is {label: result}. `names` say
    where A and B come from (shown under the title)."""
    rows = dict(results) if isinstance(results, Mapping) else {"": results}
    grid = similarity_grid(len(rows))
    fig = grid.figure()
    sub = f"A: {_short(names[0], 28)}    B: {_short(names[1], 28)}" if names is not None else ""
    figure_header(fig, grid, grid.left, "Grad-CAM of the embedding similarity (Figure 1)", sub)
    for r, (label, (sim, heat_a, heat_b)) in enumerate(rows.items()):
        x, y = grid.box(r, 0)
        title = f"{label}:  cos(A, B) = {sim:.3f}" if label else f"cos(A, B) = {sim:.3f}"
        grid.text(fig, x, y - TITLE - 0.12, title, fontsize=10, va="center", weight="bold")
        tiles = [
            (image_a, "face A"),
            (image_b, "face B"),
            (heat_overlay(image_a, heat_a), "Grad-CAM on A"),
            (heat_overlay(image_b, heat_b), "Grad-CAM on B"),
        ]
        for c, (tile, t) in enumerate(tiles):
            ax = grid.tile_axes(fig, r, c)
            ax.imshow(tile)
            ax.set_title(t, fontsize=8, pad=3)
    return save_figure(fig, out_png)


def xcos_panel(
    image_a: np.ndarray,
    image_b: np.ndarray,
    cosine: np.ndarray,
    attention: np.ndarray,
    score: float,
    threshold: float | None = None,
    out_png: str | Path = "xcos.png",
    names: tuple[str, str] | None = None,
) -> Path:
    """xCos's 1x4 panel: face A with the grid, face B, the patch-cosine map (diverging colours centred at the
    decision threshold, 0 when none is given) and the attention map; the xCos score in the title."""
    from matplotlib.colors import TwoSlopeNorm

    grid = TileGrid(1, 4, left=0.12, top=0.75 + TITLE, tile=1.5, min_width=4.0)
    fig = grid.figure()
    thr = 0.0 if threshold is None else float(threshold)
    verdict = "" if threshold is None else ("  -> same" if score >= thr else "  -> different")
    sub = f"A: {_short(names[0], 28)}    B: {_short(names[1], 28)}" if names is not None else ""
    shown = f" (threshold {thr:.3f})" if threshold is not None else ""
    figure_header(fig, grid, grid.left, f"xCos(A, B) = {score:.3f}" + shown + verdict, sub)
    h, w = cosine.shape
    size = image_a.shape[0]
    for c, (tile, name) in enumerate([(image_a, "face A (grid)"), (image_b, "face B")]):
        ax = grid.tile_axes(fig, 0, c)
        ax.imshow(tile)
        ax.set_title(name, fontsize=8, pad=3)
        if c == 0:
            for k in range(1, w):
                ax.axvline(k * size / w - 0.5, color="white", lw=0.4, alpha=0.7)
            for k in range(1, h):
                ax.axhline(k * size / h - 0.5, color="white", lw=0.4, alpha=0.7)
    lo, hi = min(float(cosine.min()), thr - 1e-3), max(float(cosine.max()), thr + 1e-3)
    ax = grid.tile_axes(fig, 0, 2)
    ax.imshow(cosine, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=thr, vmin=lo, vmax=hi), interpolation="nearest")
    ax.set_title("patch cosine", fontsize=8, pad=3)
    for (i, j), v in np.ndenumerate(cosine):
        if h * w <= 64:
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=5, color="black")
    ax = grid.tile_axes(fig, 0, 3)
    ax.imshow(attention, cmap="magma", interpolation="nearest")
    ax.set_title("attention", fontsize=8, pad=3)
    return save_figure(fig, out_png)


def why_figure(
    image_a: np.ndarray,
    image_b: np.ndarray,
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    result: Mapping,
    overlays: Mapping[str, tuple[np.ndarray, np.ndarray]],
    out_png: str | Path = "why.png",
    names: tuple[str, str] | None = None,
    method: str = "channels",
    pixel_maps: tuple[str, np.ndarray] | None = None,
) -> Path:
    """`explainface why`'s panel: both faces with each part shaded by its contribution to their similarity (red:
    supports the match, blue: argues against it; `method`'s numbers), the parts' scores by every method as bars
    (each method scaled by its largest |score|: their units differ), for the top parts the two faces'
    part-channel overlays (`overlays`: part -> (heat A, heat B)), and with `pixel_maps` (method, signed maps
    [2, S, S]) that method's similar (> 0) and dissimilar (< 0) pixels on both faces."""
    from matplotlib.colors import TwoSlopeNorm

    from explainface.explanations.why import PARTS

    parts = result["parts"]
    vals = {p: parts[p][method] for p in PARTS if parts[p].get(method) is not None}
    if not vals and method == "channels":  # a network with no part channels: shade by occlusion
        method, vals = "occlusion", {p: parts[p]["occlusion"] for p in PARTS if parts[p].get("occlusion") is not None}
    span = max([abs(v) for v in vals.values()] + [1e-6])
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"]

    def shaded(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        out = image.astype(np.float64).copy()
        for p, v in vals.items():
            m = labels == PART_INDEX[p]
            out[m] = 0.45 * out[m] + 0.55 * 255 * np.array(cmap(norm(v))[:3])
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    cols = max(4, 2 * len(overlays))
    rows = 2 + (pixel_maps is not None)
    grid = TileGrid(rows, cols, left=0.15, top=0.75 + TITLE, vgap=GAP + 2 * TITLE, tile=1.5, min_width=6.4)
    fig = grid.figure()
    cos, thr = result["cosine"], result.get("threshold")
    verdict = "" if thr is None else (f"  same person (>= {thr:.2f})" if cos >= thr else f"  different (< {thr:.2f})")
    sub = f"A: {_short(names[0], 28)}    B: {_short(names[1], 28)}" if names is not None else ""
    figure_header(fig, grid, grid.left, f"Why: cos(A, B) = {cos:.3f}{verdict}", sub)
    for c, (img, lab, t) in enumerate([(image_a, labels_a, "A: parts shaded"), (image_b, labels_b, "B")]):
        ax = grid.tile_axes(fig, 0, c)
        ax.imshow(shaded(img, lab))
        ax.set_title(f"{t} ({method})", fontsize=8, pad=3)
    x, y = grid.box(0, 2)
    width = grid.box(0, cols - 1)[0] + grid.tile - x
    ax = fig.add_axes(grid.rect(x + 0.55, y, width - 0.6, grid.tile))
    ys = np.arange(len(PARTS))
    shown = list(result.get("methods") or ["channels", "occlusion"])
    height = 0.8 / max(len(shown), 1)
    colors = matplotlib.colormaps["tab10"]
    for k, m in enumerate(shown):
        v = np.array([parts[p][m] if parts[p].get(m) is not None else 0.0 for p in PARTS], np.float64)
        top = float(np.abs(v).max())
        ax.barh(ys - 0.4 + height * (k + 0.5), v / top if top > 0 else v, height=height, color=colors(k), label=m)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(ys, PARTS, fontsize=7)
    ax.invert_yaxis()
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("score / the method's largest |score| (> 0: supports the match)", fontsize=6)
    ax.legend(fontsize=6, loc="lower right", frameon=False)
    for k, (p, (ha, hb)) in enumerate(overlays.items()):
        for j, (img, heat) in enumerate(((image_a, ha), (image_b, hb))):
            ax = grid.tile_axes(fig, 1, 2 * k + j)
            ax.imshow(heat_overlay(img, heat))
            ax.set_title(f"{p} channels on {'AB'[j]}", fontsize=8, pad=3)
    if pixel_maps is not None:
        name, maps = pixel_maps
        span = max(float(np.abs(maps).max()), 1e-12)
        for j, img in enumerate((image_a, image_b)):
            for k, (sign, what, cm) in enumerate(((1, "similar", "Reds"), (-1, "dissimilar", "Blues"))):
                ax = grid.tile_axes(fig, 2, 2 * j + k)
                ax.imshow(heat_overlay(img, np.clip(sign * maps[j] / span, 0, 1), cmap=cm))
                ax.set_title(f"{'AB'[j]}: {what} ({name})", fontsize=8, pad=3)
    return save_figure(fig, out_png)
