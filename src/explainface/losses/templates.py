"""Activation templates of ECLoss (paper §3.1, eqs. 2-4; docs/method.md §1).

A template is an H x W map. Three kinds, in the canonical order:

1. the negative template ``T^-[q] = -tau`` (no peak);
2. one-peak templates ``T^p[q] = tau * max(1 - ||q - p||_2 / r, -1)``, one per
   position p in row-major order;
3. two-peak templates ``T^{p1,p2} = max(T^{p1}, T^{p2})`` for every unordered
   pair p1 < p2 (row-major), in lexicographic order of (p1, p2).

The full set has ``1 + HW + HW(HW-1)/2`` templates (19,307 at 14 x 14). The
paper uses K = 400 "taken evenly"; the project's reading (docs/method.md §1.3): the
negative template, all one-peak templates, then two-peak templates at evenly
spaced indices ``floor(i * N2 / m)`` (i = 0..m-1) of the canonical two-peak
list, m = K - 1 - HW. When K < 1 + HW the negative template is followed by
K - 1 one-peak templates at evenly spaced indices ``floor(i * HW / (K - 1))``.
A K at or above the full count gives the full set (with a warning when it
exceeds it).

Default radius: r = 4 at 14 x 14 (the paper) and scales with the map,
``r = 4 * sqrt(H * W) / 14`` (= 4 H / 14 for square maps, docs/method.md §1.4; the
geometric mean is the project's choice for non-square maps).

Everything is vectorised (no Python loop over templates) and cached per
(H, W, K, tau, r); callers get float32 CPU tensors and move them themselves
(`ECLoss` keeps them in a buffer that follows the module's device).
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Literal, Union

import torch

KSpec = Union[int, Literal["full"]]

#: Paper values (§4.2): peak value tau and radius r for a 14 x 14 map.
PAPER_TAU = 0.001
PAPER_RADIUS = 4.0
PAPER_K = 400


def default_radius(height: int, width: int) -> float:
    """Radius scaled with the map: 4 at 14 x 14 (paper), 4 * sqrt(H*W) / 14 otherwise."""
    return PAPER_RADIUS * math.sqrt(height * width) / 14.0


def full_template_count(height: int, width: int) -> int:
    """Size of the full set: 1 negative + HW one-peak + HW(HW-1)/2 two-peak."""
    n = height * width
    return 1 + n + n * (n - 1) // 2


def _resolve_k(height: int, width: int, k: KSpec) -> int:
    total = full_template_count(height, width)
    if isinstance(k, str):
        if k != "full":
            raise ValueError(f'k must be a positive integer or "full", got {k!r}')
        return total
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f'k must be an int or "full", got {type(k).__name__}')
    if k < 2:
        raise ValueError(f"k must be at least 2 (a softmax over one template carries no information), got {k}")
    if k > total:
        warnings.warn(
            f"k={k} exceeds the {total} templates of a {height}x{width} map; using the full set",
            stacklevel=3,
        )
        return total
    return k


def template_counts(height: int, width: int, k: KSpec = PAPER_K) -> tuple[int, int, int]:
    """(negative, one-peak, two-peak) counts of the K-subset rule for an H x W map."""
    n = height * width
    kk = _resolve_k(height, width, k)
    if kk <= 1 + n:
        return 1, kk - 1, 0
    return 1, n, kk - 1 - n


def _evenly_spaced(n: int, m: int) -> torch.Tensor:
    """m distinct indices floor(i * n / m), i = 0..m-1, of a list of length n (m <= n)."""
    return torch.arange(m, dtype=torch.int64) * n // m


def template_index(height: int, width: int, k: KSpec = PAPER_K) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak positions of the K-subset: two int64 tensors (p1, p2) of length K.

    Positions are row-major indices into the H x W map; -1 means "no peak".
    Negative template: (-1, -1); one-peak at p: (p, -1); two-peak: (p1, p2), p1 < p2.
    """
    n = height * width
    n_neg, n_one, n_two = template_counts(height, width, k)
    if n_two == 0:
        one = _evenly_spaced(n, n_one) if n_one < n else torch.arange(n)
        p1 = torch.cat([torch.tensor([-1]), one])
        return p1, torch.full_like(p1, -1)
    pairs = torch.triu_indices(n, n, offset=1)  # lexicographic (p1, p2), p1 < p2
    n2 = pairs.shape[1]
    sel = _evenly_spaced(n2, n_two) if n_two < n2 else torch.arange(n2)
    p1 = torch.cat([torch.tensor([-1]), torch.arange(n), pairs[0, sel]])
    p2 = torch.cat([torch.tensor([-1]), torch.full((n,), -1), pairs[1, sel]])
    return p1, p2


@functools.lru_cache(maxsize=32)
def _build_cached(height: int, width: int, k: int, tau: float, radius: float) -> torch.Tensor:
    n = height * width
    yy, xx = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    pos = torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1)  # [HW, 2]
    dist = torch.cdist(pos, pos)  # [peak p, position q]
    one_peak = tau * torch.clamp(1.0 - dist / radius, min=-1.0)  # eq. 2
    # Row n of the padded table is the "no peak" row: -tau everywhere, which is
    # both the negative template and the identity of max() for any one-peak row
    # (one-peak values are >= -tau), so T[p1, p2] = max(row p1, row p2) covers all kinds.
    table = torch.cat([one_peak, torch.full((1, n), -tau, dtype=torch.float64)])
    p1, p2 = template_index(height, width, k)
    p1 = torch.where(p1 < 0, n, p1)
    p2 = torch.where(p2 < 0, n, p2)
    t = torch.maximum(table[p1], table[p2])  # eq. 3
    t = t.to(torch.float32).reshape(-1, height, width).contiguous()
    t.requires_grad_(False)
    return t


def build_templates(
    height: int,
    width: int | None = None,
    k: KSpec = PAPER_K,
    tau: float = PAPER_TAU,
    radius: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The K activation templates of an H x W map as a [K, H, W] tensor (canonical order).

    Built once per (H, W, K, tau, r) and cached; the returned tensor is shared,
    so treat it as read-only (a dtype other than float32 returns a copy).
    """
    width = height if width is None else width
    if height < 1 or width < 1:
        raise ValueError(f"map size must be positive, got {height}x{width}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    r = default_radius(height, width) if radius is None else float(radius)
    if not r > 0:
        raise ValueError(f"radius must be > 0, got {r}")
    kk = _resolve_k(height, width, k)
    t = _build_cached(int(height), int(width), kk, float(tau), r)
    return t if dtype == torch.float32 else t.to(dtype)


def save_template_grid(templates: torch.Tensor, path: str | Path, limit: int = 48) -> Path:
    """Draw up to `limit` evenly spaced templates of a [K, H, W] set into a PNG grid."""
    from explainface.argtypes import check_picture_path

    path = check_picture_path(path)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = templates.shape[0]
    idx = _evenly_spaced(k, min(limit, k)).tolist()
    cols = min(8, len(idx))
    rows = math.ceil(len(idx) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    vmax = float(templates.abs().max())
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx):
        ax.imshow(templates[i].cpu().numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"#{i}", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
