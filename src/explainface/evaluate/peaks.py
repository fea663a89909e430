"""Activation peaks by 2-D topographic prominence and the activation-robustness metric (docs/method.md §7.5, paper
§5.2.4).

A peak's prominence is computed exactly as 0-dimensional persistence of the superlevel sets of the map
(8-connected, native resolution): pixels enter from the highest to the lowest; a pixel with no earlier
neighbour starts a component (its peak); when components meet, the younger one (lower peak) dies with
prominence = its peak height - the current level (the elder rule). Decisions where the paper leaves room:

* ties are broken by flat index (value descending, then index ascending), so a plateau is one peak; a
  component that meets an equal-height elder dies with prominence 0 and never counts (rho * max > 0);
* the filtration stops at 0: only pixels > 0 enter, so a ReLU map's zero background creates no peak and
  components that only touch through zeros keep prominence = their height (the same as merging at level 0);
  negative values count as 0. A map with max <= 0 has 0 peaks.

`count_peaks` runs all maps in lockstep: step t adds every map's t-th highest pixel at once, with a
union-find over one flat parent array (finds by pointer jumping), so the Python loop has h*w steps whatever
the number of maps.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

#: Default relative prominence threshold (docs/method.md §7.5: a peak counts when prominence >= rho * max).
RHO = 0.1
#: Intra-op threads while the metrics run (`metric_threads`); None keeps torch's setting (the default). On an
#: idle 2-core CPU torch's 2 threads made the 100 x 512 benchmark 1.3x faster than 1 (7.7 s vs 10.3 s); on a
#: CPU shared with other busy processes set 1: the kernels are many small ops, and each parallel op can wait
#: milliseconds for a descheduled thread (measured: a 56-row reduction 7.5 ms with 2 threads, 3 us with 1).
METRIC_THREADS: int | None = None


@contextlib.contextmanager
def metric_threads() -> Iterator[None]:
    """Run the enclosed metric code with `METRIC_THREADS` intra-op threads, restoring torch's setting after."""
    want, old = METRIC_THREADS, torch.get_num_threads()
    if want is None or want == old:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _take(src: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """src[idx] for a flat `src` (index_select is several times faster than advanced indexing on CPU)."""
    return src.index_select(0, idx.reshape(-1)).view(idx.shape)


def _find(parent: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """Roots of `nodes` (flat indices) by pointer jumping until nothing moves; compresses the queried paths."""
    roots = _take(parent, nodes)
    while True:
        up = _take(parent, roots)
        if torch.equal(up, roots):
            break
        roots = up
    parent.scatter_(0, nodes.reshape(-1), roots.reshape(-1))
    return roots


def _count_flat(x: torch.Tensor, h: int, w: int, rho: float) -> torch.Tensor:
    """Peak counts of `[M, h*w]` float64 maps (already clamped at 0): int64 `[M]`.

    Each map lives on a zero-padded (h+2) x (w+2) grid in one flat array, so the 8 neighbours are fixed
    offsets and the border is never processed. Maps are sorted by their number of positive pixels, so the
    maps still running at step s are a prefix.
    """
    m, n = x.shape
    dev = x.device
    positives = (x > 0).sum(1)
    by_size = torch.argsort(positives, descending=True)
    x = x[by_size]
    positives = positives[by_size]
    wp = w + 2
    stride = (h + 2) * wp
    inner = ((torch.arange(h, device=dev)[:, None] + 1) * wp + torch.arange(w, device=dev) + 1).reshape(-1)
    offsets = torch.tensor([di * wp + dj for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj], device=dev)
    order = torch.sort(x, dim=1, descending=True, stable=True).indices  # ties: lower index first
    never = n + 1
    rank = torch.full((m, stride), never, dtype=torch.int64, device=dev)
    rank[:, inner] = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=dev).expand(m, n))
    rank = rank.reshape(-1)
    xf = torch.zeros(m, stride, dtype=x.dtype, device=dev)
    xf[:, inner] = x
    xf = xf.reshape(-1)
    base = torch.arange(m, device=dev) * stride
    pixel_t = (base[:, None] + inner[order]).t().contiguous()  # [n, M]: global index of each map's s-th pixel
    parent = torch.arange(m * stride, device=dev)
    died_at = torch.zeros_like(xf)  # the level at which a root died (garbage for roots still alive)
    born = torch.zeros(m * stride, dtype=torch.bool, device=dev)
    live_after = torch.searchsorted(-positives, -torch.arange(n, device=dev)).tolist()  # maps with > s positives
    for s in range(n):
        live = live_after[s]
        if live == 0:
            break
        p = pixel_t[s, :live]
        q = p[:, None] + offsets  # [L, 8]
        done = _take(rank, q) < s
        # neighbours not processed yet stand in as p itself (its own root until now): their writes below are
        # overwritten by p's own, so no masking is needed
        roots = _find(parent, torch.where(done, q, p[:, None]))
        slot = _take(rank, roots).argmin(dim=1, keepdim=True)  # (argmin + gather: faster than min(dim))
        elder = roots.gather(1, slot)  # the neighbouring root that entered first (highest peak); p if none
        # every other neighbouring root dies here (elder rule); the elder's own entry is rewritten at its
        # death, or ignored if it survives
        flat = roots.reshape(-1)
        died_at.scatter_(0, flat, xf.index_select(0, p)[:, None].expand(-1, 8).reshape(-1))
        parent.scatter_(0, flat, elder.expand(-1, 8).reshape(-1))
        elder = elder.squeeze(1)
        parent.scatter_(0, p, elder)
        born.scatter_(0, p, elder == p)
    survivor = parent == torch.arange(m * stride, device=dev)
    prom = torch.where(survivor, xf, xf - died_at).view(m, stride)  # a survivor: its height above 0
    peak_max = xf.view(m, stride).amax(1)
    counts = (born.view(m, stride) & (prom >= rho * peak_max[:, None])).sum(1)
    return torch.empty_like(counts).scatter_(0, by_size, counts)


def count_peaks(maps: torch.Tensor, rho: float = RHO, chunk: int = 2048) -> torch.Tensor:
    """Number of peaks with prominence >= rho * max of each `[..., h, w]` map: int64 `[...]` (docs/method.md §7.5).

    Exact 0-dimensional persistence of superlevel sets (8-connected union-find, elder rule), in float64;
    `chunk` bounds how many maps run in lockstep at once.
    """
    if maps.dim() < 2:
        raise ValueError(f"count_peaks expects maps [..., h, w], got shape {tuple(maps.shape)}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    h, w = maps.shape[-2:]
    lead = maps.shape[:-2]
    x = maps.detach().reshape(-1, h * w)
    out = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    with metric_threads():
        for s in range(0, x.shape[0], chunk):
            out[s : s + chunk] = _count_flat(x[s : s + chunk].to(torch.float64).clamp_min(0), h, w, rho)
    return out.reshape(lead)


def draws(n_total: int, n_images: int, runs: int, seed: int) -> list[torch.Tensor]:
    """`runs` independent draws of min(n_images, n_total) image indices, without replacement within a draw.

    Seeded (torch.Generator); shared by PE and AR so that one report uses the same images for both.
    """
    if n_total < 1:
        raise ValueError("no images to draw from")
    if runs < 1 or n_images < 1:
        raise ValueError(f"runs and n_images must be >= 1, got runs={runs}, n_images={n_images}")
    g = torch.Generator().manual_seed(seed)
    size = min(n_images, n_total)
    return [torch.randperm(n_total, generator=g)[:size].sort().values for _ in range(runs)]


def spread(values: list[float]) -> float:
    """Sample standard deviation (ddof=1) of per-draw values; NaN for a single draw (undefined)."""
    if len(values) < 2:
        return math.nan
    return float(torch.tensor(values, dtype=torch.float64).std(correction=1))


def robustness_from_counts(
    peaks: torch.Tensor, zero: torch.Tensor | None = None, n_images: int = 100, runs: int = 5, seed: int = 0
) -> dict:
    """Activation robustness from per-map peak counts `[N, C]` (N images): AR per draw of images, mean and s.d.

    AR of a draw = mean peak count over all maps of its images; `ar_std` is the standard deviation over the
    `runs` draws (ddof=1, as the paper's §5.2.4 text says; its Table 5 calls it a standard error). `zero_share`
    (maps with max <= 0; pass `zero`, else maps with 0 peaks are taken) and `at_most_two_share` are over all
    N*C maps.
    """
    if peaks.dim() != 2:
        raise ValueError(f"peak counts must be [images, channels], got shape {tuple(peaks.shape)}")
    per_image = peaks.to(torch.float64).mean(1)
    chosen = draws(peaks.shape[0], n_images, runs, seed)
    per_draw = [float(per_image[d].mean()) for d in chosen]
    zero = peaks == 0 if zero is None else zero
    return {
        "ar_mean": float(torch.tensor(per_draw, dtype=torch.float64).mean()),
        "ar_std": spread(per_draw),
        "ar_per_draw": per_draw,
        "zero_share": float(zero.to(torch.float64).mean()),
        "at_most_two_share": float((peaks <= 2).to(torch.float64).mean()),
        "draw_size": len(chosen[0]),
        "all_images_used": len(chosen[0]) == peaks.shape[0],
        "peaks": peaks,
    }


def activation_robustness(
    maps: torch.Tensor, rho: float = RHO, n_images: int = 100, runs: int = 5, seed: int = 0
) -> dict:
    """AR of `[N, C, h, w]` target-layer maps: `ar_mean, ar_std, zero_share, at_most_two_share, peaks`.

    R = `runs` draws of `n_images` images (all of them, every draw, when fewer: `all_images_used` says so).
    Definitions: docs/method.md §7.5.
    """
    if maps.dim() != 4:
        raise ValueError(f"maps must be [images, channels, h, w], got shape {tuple(maps.shape)}")
    peaks = count_peaks(maps, rho)
    zero = maps.detach().reshape(*maps.shape[:2], -1).amax(-1) <= 0
    return robustness_from_counts(peaks, zero, n_images=n_images, runs=runs, seed=seed)
