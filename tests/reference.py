"""Slow, obvious float64 references of the numerical kernels (templates, ECLoss).

Written plainly from SPEC §1-2 and the paper's equations, sharing no code with
the package, so the fast versions can be checked against them.
"""

from __future__ import annotations

import math

import torch


def naive_one_peak(h: int, w: int, peak: tuple[int, int], tau: float, r: float) -> torch.Tensor:
    t = torch.empty(h, w, dtype=torch.float64)
    for u in range(h):
        for v in range(w):
            d = math.sqrt((u - peak[0]) ** 2 + (v - peak[1]) ** 2)
            t[u, v] = tau * max(1.0 - d / r, -1.0)  # paper eq. 2
    return t


def naive_templates(h: int, w: int, k, tau: float = 0.001, r: float | None = None) -> torch.Tensor:
    """Canonical order + K-subset rule of SPEC §1, with Python loops."""
    if r is None:
        r = 4.0 * math.sqrt(h * w) / 14.0
    positions = [(i, j) for i in range(h) for j in range(w)]
    negative = torch.full((h, w), -tau, dtype=torch.float64)
    one = [naive_one_peak(h, w, p, tau, r) for p in positions]
    pairs = [(a, b) for a in range(len(positions)) for b in range(a + 1, len(positions))]
    n = len(positions)
    total = 1 + n + len(pairs)
    kk = total if k == "full" else min(k, total)
    if kk <= 1 + n:
        m = kk - 1
        chosen_one = [one[(i * n) // m] for i in range(m)]
        return torch.stack([negative] + chosen_one)
    m = kk - 1 - n
    chosen_pairs = [pairs[(i * len(pairs)) // m] for i in range(m)]
    two = [torch.maximum(one[a], one[b]) for a, b in chosen_pairs]  # paper eq. 3
    return torch.stack([negative] + one + two)


def naive_log_probs(maps: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """log P(t|x) of paper eq. 6 for every map, by broadcasting over templates: [B, C, K]."""
    x = maps.to(torch.float64)
    t = templates.to(torch.float64)
    logits = (x[:, :, None, :, :] * t[None, None]).sum(dim=(-1, -2))  # tr(x . T)
    top = logits.max(dim=-1, keepdim=True).values
    lse = top + torch.log(torch.exp(logits - top).sum(-1, keepdim=True))
    return logits - lse


def naive_mi(maps: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Paper-mode MI: mean over maps of sum_t P(t|x) log(P(t|x) K)."""
    logp = naive_log_probs(maps, templates)
    k = templates.shape[0]
    return (logp.exp() * (logp + math.log(k))).sum(-1).mean()


def naive_marginal_mi(maps: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """MI with the per-image marginal over channels: mean_b [H(mean_c p_bc) - mean_c H(p_bc)]."""
    logp = naive_log_probs(maps, templates)
    p = logp.exp()
    h_cond = -(p * logp).sum(-1).mean(1)  # [B]
    marg = p.mean(1)  # [B, K]
    h_marg = -(marg * torch.log(marg)).sum(-1)
    return (h_marg - h_cond).mean()


def naive_mi_loop(maps: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Paper-mode MI with a Python loop over templates (any dtype; the benchmarks' naive baseline)."""
    b, c, h, w = maps.shape
    x = maps.reshape(b * c, h, w)
    logits = torch.stack([(x * templates[t]).sum(dim=(1, 2)) for t in range(templates.shape[0])], dim=1)
    logp = torch.log_softmax(logits, dim=1)
    return (logp.exp() * logp).sum(1).mean() + math.log(templates.shape[0])
