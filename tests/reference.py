"""Slow, obvious float64 references of the numerical kernels (templates, ECLoss).

Written plainly from docs/method.md §1-2 and the paper's equations, sharing no code with
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
    """Canonical order + K-subset rule of docs/method.md §1.3, with Python loops."""
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


# ---- ECLoss-fit (explainface.losses.fit): loops over maps, channels and templates, float64 ----------------------


def _norm(x: torch.Tensor) -> torch.Tensor:
    """sqrt(sum x^2), with the subgradient 0 at x = 0 (an all-zero map) instead of sqrt's infinite one."""
    s = (x * x).sum()
    return torch.sqrt(s) if float(s) > 0 else s * 0


def naive_template_fit(maps: torch.Tensor, templates: torch.Tensor, temperature: float, weight: str) -> torch.Tensor:
    """-(weighted) mean over maps of temperature * log sum_t exp(cos(x, T_t) / temperature)."""
    b, c = maps.shape[:2]
    total, wsum = maps.new_zeros(()), 0.0
    for i in range(b):
        for j in range(c):
            x = maps[i, j].reshape(-1)
            nx = _norm(x)
            terms = []
            for t in templates:
                tv = t.reshape(-1)
                terms.append((x * tv).sum() / ((nx + 1e-6) * torch.sqrt((tv * tv).sum())) / temperature)
            fit = temperature * torch.log(torch.stack(terms).exp().sum())
            w = float(nx) if weight == "norm" else 1.0
            total = total + w * fit
            wsum += w
    return -total / max(wsum, 1e-6)


def naive_smooth(m: torch.Tensor, sigma: float) -> torch.Tensor:
    """2-D Gaussian smoothing of one [H, W] map with zero padding, radius round(2 sigma), by explicit sums."""
    radius = max(1, int(round(2 * sigma)))
    offs = range(-radius, radius + 1)
    g = torch.tensor([math.exp(-(d * d) / (2 * sigma * sigma)) for d in offs], dtype=m.dtype)
    g = g / g.sum()
    h, w = m.shape
    out = torch.zeros_like(m)
    for y in range(h):
        for x in range(w):
            acc = m.new_zeros(())
            for a, dy in enumerate(offs):
                for bb, dx in enumerate(offs):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        acc = acc + g[a] * g[bb] * m[yy, xx]
            out[y, x] = acc
    return out


def naive_spatial_diversity(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean over faces and ordered pairs of different channels of cos(smoothed maps)^2."""
    b, c = maps.shape[:2]
    total, n = maps.new_zeros(()), 0
    for i in range(b):
        sm = [naive_smooth(maps[i, j], sigma).reshape(-1) for j in range(c)]
        for j in range(c):
            for k in range(c):
                if j != k:
                    cj = sm[j] / (_norm(sm[j]) + 1e-6)
                    ck = sm[k] / (_norm(sm[k]) + 1e-6)
                    total = total + (cj * ck).sum() ** 2
                    n += 1
    return total / n


def naive_channel_consistency(maps: torch.Tensor, weight: str) -> torch.Tensor:
    """Mean over channels of sum_b w |x̂_bc - m_c|^2 / sum_b w, m_c the w-weighted mean of x̂_bc."""
    b, c = maps.shape[:2]
    out = []
    for j in range(c):
        xs = [maps[i, j].reshape(-1) for i in range(b)]
        norms = [_norm(x) for x in xs]
        ws = [float(n) if weight == "norm" else 1.0 for n in norms]
        xh = [x / (n + 1e-6) for x, n in zip(xs, norms)]
        ws_sum = max(sum(ws), 1e-6)
        m = sum(w * x for w, x in zip(ws, xh)) / ws_sum
        out.append(sum(w * ((x - m) ** 2).sum() for w, x in zip(ws, xh)) / ws_sum)
    return torch.stack(out).mean()


def naive_face_frame_consistency(maps: torch.Tensor, weight: str) -> torch.Tensor:
    """Loops: centre of mass of each map in [0, 1]^2, minus its face's weighted centre; per channel the weighted
    spread of that over faces; mean over channels / (2 / 12)."""
    b, c, h, w = maps.shape
    rel = {}
    ws = {}
    for i in range(b):
        mus, wts = [], []
        for j in range(c):
            x = maps[i, j]
            total = x.sum()
            my = sum(x[y, xx] * (y / (h - 1)) for y in range(h) for xx in range(w)) / (total + 1e-6)
            mx = sum(x[y, xx] * (xx / (w - 1)) for y in range(h) for xx in range(w)) / (total + 1e-6)
            mus.append(torch.stack([my, mx]))
            wts.append(float(_norm(x.reshape(-1))) if weight == "norm" else 1.0)
        face = sum(wt * mu for wt, mu in zip(wts, mus)) / max(sum(wts), 1e-6)
        for j in range(c):
            rel[i, j], ws[i, j] = mus[j] - face, wts[j]
    out = []
    for j in range(c):
        wsum = max(sum(ws[i, j] for i in range(b)), 1e-6)
        mean = sum(ws[i, j] * rel[i, j] for i in range(b)) / wsum
        out.append(sum(ws[i, j] * ((rel[i, j] - mean) ** 2).sum() for i in range(b)) / wsum)
    return torch.stack(out).mean() / (2 / 12)
