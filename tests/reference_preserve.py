"""Slow, obvious float64 references for the embedding-preservation term (explainface.losses.preserve): loops over
the faces and the embedding's dimensions, sharing no code with the package. Written with torch scalars so that
autograd gives the reference gradient too."""

from __future__ import annotations

import torch


def naive_preservation(e: torch.Tensor, e0: torch.Tensor, form: str = "cosine") -> torch.Tensor:
    """mean over faces of 1 - <e, e0> / (|e| |e0|) (cosine), or mean over faces and dimensions of (e - e0)^2 (mse)."""
    b, d = e.shape
    total = torch.zeros((), dtype=torch.float64)
    for i in range(b):
        if form == "cosine":
            dot = torch.zeros((), dtype=torch.float64)
            na = torch.zeros((), dtype=torch.float64)
            nb = torch.zeros((), dtype=torch.float64)
            for k in range(d):
                dot = dot + e[i, k] * e0[i, k]
                na = na + e[i, k] * e[i, k]
                nb = nb + e0[i, k] * e0[i, k]
            total = total + 1.0 - dot / (torch.sqrt(na) * torch.sqrt(nb))
        else:
            for k in range(d):
                total = total + (e[i, k] - e0[i, k]) ** 2 / d
    return total / b
