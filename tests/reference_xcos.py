"""Slow, obvious float64 references for xCos (explainface.models.xcos): loops over pairs and cells.

Written plainly from the paper's definitions (a cosine per grid cell, a weighted sum of the cosines), sharing no
code with the package.
"""

from __future__ import annotations

import math

import torch


def naive_patch_cosine(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """[N, h, w]: cos of fa[n, :, i, j] and fb[n, :, i, j] by loops (0 when either vector is zero)."""
    n, d, h, w = fa.shape
    out = torch.zeros(n, h, w, dtype=torch.float64)
    for k in range(n):
        for i in range(h):
            for j in range(w):
                u = [float(fa[k, c, i, j]) for c in range(d)]
                v = [float(fb[k, c, i, j]) for c in range(d)]
                su = max(abs(x) for x in u) or 1.0  # scale first: no overflow for huge values
                sv = max(abs(x) for x in v) or 1.0
                u, v = [x / su for x in u], [x / sv for x in v]
                nu = math.sqrt(sum(x * x for x in u))
                nv = math.sqrt(sum(x * x for x in v))
                if nu == 0 or nv == 0:
                    continue
                out[k, i, j] = sum(x * y for x, y in zip(u, v)) / (nu * nv)
    return out


def naive_xcos(cosine: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """[N]: sum over cells of cosine * attention, by loops."""
    n, h, w = cosine.shape
    out = torch.zeros(n, dtype=torch.float64)
    for k in range(n):
        total = 0.0
        for i in range(h):
            for j in range(w):
                total += float(cosine[k, i, j]) * float(attention[k, i, j])
        out[k] = total
    return out


def naive_max_pool2(maps: torch.Tensor) -> torch.Tensor:
    """[B, C, H // 2, W // 2]: the max of each 2x2 block, by loops."""
    b, c, h, w = maps.shape
    out = torch.empty(b, c, h // 2, w // 2, dtype=maps.dtype)
    for n in range(b):
        for k in range(c):
            for i in range(h // 2):
                for j in range(w // 2):
                    out[n, k, i, j] = max(float(maps[n, k, 2 * i + di, 2 * j + dj]) for di in (0, 1) for dj in (0, 1))
    return out
