"""The paper's explainability metrics (docs/method.md §7, paper §3.3, §5.2.2-5.2.4): top-10% masks, part explainability,
location consistency, activation robustness, the channel dictionary; and channel overlap (beyond the paper).

Pure functions: maps and part masks in (torch tensors), numbers and tensors out; `ExplainabilityAccumulator`
holds only per-image IoUs and peak counts, so a model's maps can arrive in chunks of images.

The top-k masks and their overlaps with the parts come from the exact kernel in `evaluate.topk`.
"""

from __future__ import annotations

import math

import torch

from explainface.evaluate.peaks import RHO, count_peaks, draws, robustness_from_counts, spread
from explainface.evaluate.topk import TOP_FRACTION, top_masks, top_part_overlap
from explainface.models.maps import size2
from explainface.parts.labels import PART_NAMES

#: The seven face parts, in the order of part masks `[N, K, S, S]` (docs/method.md §6).
PARTS: tuple[str, ...] = PART_NAMES[1:]


# ----------------------------------------------------------------------------------------------------------
# part IoU (paper eq. 10)


def masks_from_labels(labels: torch.Tensor, n_parts: int = len(PARTS)) -> torch.Tensor:
    """Part masks `[N, K, S, S']` bool from part-label maps `[N, S, S']` (values index PART_NAMES; 0 = background):
    `parts.masks.part_masks` on tensors."""
    from explainface.parts.masks import part_masks

    return torch.from_numpy(part_masks(labels.cpu().numpy(), n_parts))


def _check(maps: torch.Tensor, parts: torch.Tensor, size: int | tuple[int, int] | None) -> tuple[int, int]:
    if maps.dim() != 4:
        raise ValueError(f"maps must be [images, channels, h, w], got shape {tuple(maps.shape)}")
    if parts.dim() != 4:
        raise ValueError(f"part masks must be [images, parts, S, S], got shape {tuple(parts.shape)}")
    if parts.shape[0] != maps.shape[0]:
        raise ValueError(f"{maps.shape[0]} images of maps but {parts.shape[0]} of part masks")
    s = tuple(parts.shape[-2:]) if size is None else size2(size)
    if tuple(parts.shape[-2:]) != s:
        raise ValueError(f"part masks are {tuple(parts.shape[-2:])}, not the input size {s}")
    if maps.is_floating_point() and not bool(torch.isfinite(maps).all()):
        raise ValueError("maps contain NaN or infinite values")
    return s


def part_iou(
    maps: torch.Tensor,
    parts: torch.Tensor,
    size: int | tuple[int, int] | None = None,
    fraction: float = TOP_FRACTION,
    chunk: int = 128,
) -> torch.Tensor:
    """IoU of each map's top-10% mask (`top_masks`) with each part mask: float64 `[N, C, K]` (paper eq. 10).

    maps `[N, C, h, w]` (target layer after ReLU), parts `[N, K, S, S']` bool at the input size (`size`,
    default the masks' size). An empty mask has IoU 0 with every part. Exact: the same masks as
    `top_masks`, counted without materialising them (`evaluate.topk`); `chunk` = maps per step.
    """
    s = _check(maps, parts, size)
    return top_part_overlap(maps, parts, s, fraction, chunk)[0]


# ----------------------------------------------------------------------------------------------------------
# the metrics on IoUs


def part_explainability(iou: torch.Tensor, n_images: int = 100, runs: int = 5, seed: int = 0) -> dict:
    """Part explainability (paper §5.2.2): PE_I = mean over channels of max_k IoU; PE = mean over a draw of images.

    `runs` independent draws of `n_images` images (without replacement within a draw; all images, every
    draw, when there are fewer: `all_images_used`). `pe_se` = standard error over the draws = sample s.d.
    (ddof=1) / sqrt(runs); NaN for one draw.
    """
    if iou.dim() != 3:
        raise ValueError(f"IoUs must be [images, channels, parts], got shape {tuple(iou.shape)}")
    per_image = iou.to(torch.float64).amax(-1).mean(1)
    chosen = draws(iou.shape[0], n_images, runs, seed)
    per_draw = [float(per_image[d].mean()) for d in chosen]
    return {
        "pe_mean": float(torch.tensor(per_draw, dtype=torch.float64).mean()),
        "pe_se": spread(per_draw) / math.sqrt(len(per_draw)),
        "pe_per_draw": per_draw,
        "draw_size": len(chosen[0]),
        "all_images_used": len(chosen[0]) == iou.shape[0],
        "per_image": per_image,
    }


def _winners(iou: torch.Tensor, active: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (image, channel): the best part (first on ties) and whether the image counts for that channel.

    Decision: an image counts when the channel's mask is non-empty (docs/method.md §7.4) and overlaps some part (max
    IoU > 0); a mask that touches no part has no best part, and taking the first (hair) would bias A.
    """
    best, part = iou.max(-1)
    counted = best > 0
    if active is not None:
        counted = counted & active.to(torch.bool)
    return part, counted


def _frequencies(iou: torch.Tensor, active: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A `[C, K]` (share of counted images where part k wins) and the counted images per channel `[C]`."""
    n, c, k = iou.shape
    part, counted = _winners(iou, active)
    hits = torch.zeros(c, k, dtype=torch.float64)
    hits.index_put_(
        (torch.arange(c).expand(n, c)[counted], part[counted]), torch.ones((), dtype=hits.dtype), accumulate=True
    )
    used = counted.sum(0)
    return hits / used.clamp_min(1)[:, None], used


def location_consistency(iou: torch.Tensor, active: torch.Tensor | None = None) -> dict:
    """Location consistency (paper §5.2.3): `ls, channels_active, per_channel, A`.

    Per channel i: A[i, k] = share of its counted images (see `_winners`) whose best part is k;
    S_i = sqrt(sum_k (A[i,k] - 1/K)^2) / K; LS = mean of S_i over channels counted at least once
    (`channels_active` of them; `per_channel` is NaN for the others). `active` `[N, C]`: non-empty masks.
    """
    if iou.dim() != 3:
        raise ValueError(f"IoUs must be [images, channels, parts], got shape {tuple(iou.shape)}")
    a, used = _frequencies(iou, active)
    k = iou.shape[-1]
    s = ((a - 1.0 / k) ** 2).sum(1).sqrt() / k
    s = torch.where(used > 0, s, torch.full_like(s, math.nan))
    on = used > 0
    return {
        "ls": float(s[on].mean()) if bool(on.any()) else math.nan,
        "channels_active": int(on.sum()),
        "channels": iou.shape[1],
        "per_channel": s,
        "A": a,
        "images_per_channel": used,
    }


def channel_dictionary(
    iou: torch.Tensor, part_names: tuple[str, ...] | list[str] = PARTS, active: torch.Tensor | None = None
) -> list[dict]:
    """Each channel's dominant part: `[{channel, part, frequency, active_images}]` (part None if never counted)."""
    if iou.shape[-1] != len(part_names):
        raise ValueError(f"{iou.shape[-1]} parts in the IoUs but {len(part_names)} part names")
    a, used = _frequencies(iou, active)
    freq, part = a.max(1)
    return [
        {
            "channel": i,
            "part": part_names[int(part[i])] if used[i] > 0 else None,
            "frequency": float(freq[i]) if used[i] > 0 else 0.0,
            "active_images": int(used[i]),
        }
        for i in range(iou.shape[1])
    ]


# ----------------------------------------------------------------------------------------------------------
# channel overlap (docs/method.md §7.7, beyond the paper)


#: Channel overlap compares masks on a grid of at most this side (the input size when smaller): at 224 px with
#: 512 channels, full-size pairwise IoUs take minutes per 100 faces on 2 cores, 112 px masks 25 s, 56 px masks
#: 8 s (benchmarks/metrics_speed.py); on 56 px masks the overlap moved by at most 3.4e-4 from full size
#: (tests/test_explainability.py asserts < 0.005).
OVERLAP_GRID = 56
_OVERLAP_BYTES = 256 * 2**20


def channel_overlap(
    maps: torch.Tensor, size: int | tuple[int, int], fraction: float = TOP_FRACTION, grid: int | None = OVERLAP_GRID
) -> torch.Tensor:
    """Per image, the mean IoU between the top-`fraction` masks of every two different channels: `[N]` float64.

    PE, LS and AR all reward a collapsed network whose channels are one blob on one large part; this tells it
    apart (docs/method.md §7.7). Two empty masks have IoU 0. The masks are those of `top_masks` at `size`, scaled
    down to at most `grid` pixels a side (None: always at `size`). Counts are exact: the masks are 0/1 and a product of
    two of them sums fewer than 2^24 ones in float32.
    """
    if maps.dim() != 4:
        raise ValueError(f"maps must be [N, C, h, w], got shape {tuple(maps.shape)}")
    s = size2(size)
    if grid is not None and max(s) > grid:
        s = (max(1, round(s[0] * grid / max(s))), max(1, round(s[1] * grid / max(s))))
    n, c = maps.shape[:2]
    out = torch.zeros(n, dtype=torch.float64)
    if c < 2 or n == 0:
        return out
    iu = torch.triu_indices(c, c, offset=1)
    per_image = c * s[0] * s[1] * 4
    step = max(1, _OVERLAP_BYTES // per_image)
    for i in range(0, n, step):
        m = top_masks(maps[i : i + step], s, fraction).reshape(-1, c, s[0] * s[1]).to(torch.float32).cpu()
        inter = torch.bmm(m, m.transpose(1, 2)).to(torch.float64)
        sizes = inter.diagonal(dim1=1, dim2=2)
        union = sizes[:, :, None] + sizes[:, None, :] - inter
        iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
        out[i : i + step] = iou[:, iu[0], iu[1]].mean(1)
    return out


# ----------------------------------------------------------------------------------------------------------
# the report, in one call or over chunks of images


class ExplainabilityAccumulator:
    """Collects per-image IoUs `[C, K]`, non-empty flags and peak counts `[C]` from chunks of images.

    `add(maps [n, C, h, w], parts [n, K, S, S'])` keeps no masks, so thousands of images fit in memory;
    `report()` then computes PE, LS, AR and the channel dictionary over everything added.
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        part_names: tuple[str, ...] | list[str] = PARTS,
        rho: float = RHO,
        fraction: float = TOP_FRACTION,
        chunk: int = 128,
    ) -> None:
        self.size = size
        self.part_names = tuple(part_names)
        self.rho = rho
        self.fraction = fraction
        self.chunk = chunk
        self._iou: list[torch.Tensor] = []
        self._active: list[torch.Tensor] = []
        self._peaks: list[torch.Tensor] = []
        self._zero: list[torch.Tensor] = []
        self._overlap: list[torch.Tensor] = []

    @property
    def images(self) -> int:
        return sum(t.shape[0] for t in self._iou)

    def add(self, maps: torch.Tensor, parts: torch.Tensor) -> None:
        s = _check(maps, parts, self.size)
        if parts.shape[1] != len(self.part_names):
            raise ValueError(f"{parts.shape[1]} part masks per image but {len(self.part_names)} part names")
        if self._iou and maps.shape[1] != self._iou[0].shape[1]:
            raise ValueError(f"{maps.shape[1]} channels, earlier chunks had {self._iou[0].shape[1]}")
        iou, sizes = top_part_overlap(maps, parts, s, self.fraction, self.chunk)
        self._iou.append(iou)
        self._active.append(sizes > 0)
        self._peaks.append(count_peaks(maps.detach().cpu(), self.rho))
        self._zero.append(maps.detach().cpu().reshape(*maps.shape[:2], -1).amax(-1) <= 0)
        self._overlap.append(channel_overlap(maps, s, self.fraction))

    def report(self, n_images: int = 100, runs: int = 5, seed: int = 0) -> dict:
        if not self._iou:
            raise ValueError("no images added")
        iou = torch.cat(self._iou)
        active = torch.cat(self._active)
        pe = part_explainability(iou, n_images=n_images, runs=runs, seed=seed)
        ls = location_consistency(iou, active)
        ar = robustness_from_counts(
            torch.cat(self._peaks), torch.cat(self._zero), n_images=n_images, runs=runs, seed=seed
        )
        return {
            "pe_mean": pe["pe_mean"],
            "pe_se": pe["pe_se"],
            "ls": ls["ls"],
            "ls_channels": ls["channels_active"],
            "ar_mean": ar["ar_mean"],
            "ar_std": ar["ar_std"],
            "zero_share": ar["zero_share"],
            "at_most_two_share": ar["at_most_two_share"],
            "channel_overlap": float(torch.cat(self._overlap).mean()),
            "channels": channel_dictionary(iou, self.part_names, active),
            "images": iou.shape[0],
            "draw_size": pe["draw_size"],
            "all_images_used": pe["all_images_used"],
            "runs": runs,
            "pe_per_draw": pe["pe_per_draw"],
            "ar_per_draw": ar["ar_per_draw"],
            "rho": self.rho,
            "fraction": self.fraction,
        }


def explainability_report(
    maps: torch.Tensor,
    parts: torch.Tensor,
    size: int | tuple[int, int] | None = None,
    n_images: int = 100,
    runs: int = 5,
    seed: int = 0,
    rho: float = RHO,
    part_names: tuple[str, ...] | list[str] = PARTS,
) -> dict:
    """PE, LS, AR and the channel dictionary of `[N, C, h, w]` maps and `[N, K, S, S']` part masks (docs/method.md §7).

    Keys: pe_mean, pe_se, ls, ls_channels, ar_mean, ar_std, zero_share, at_most_two_share, channel_overlap, channels,
    images (and the per-draw values). For maps that arrive in chunks use `ExplainabilityAccumulator`.
    """
    acc = ExplainabilityAccumulator(size=size, part_names=part_names, rho=rho)
    acc.add(maps, parts)
    return acc.report(n_images=n_images, runs=runs, seed=seed)
