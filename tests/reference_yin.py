"""Slow, obvious float64 references for Yin et al.'s losses and occlusion (explainface.losses.yin,
explainface.faces.occlusion): Python loops, written from the formulas of their code, sharing no code with the
package."""

from __future__ import annotations

import math

import torch


def _norm(x: torch.Tensor) -> torch.Tensor:
    """sqrt(sum x^2), with the subgradient 0 at x = 0 (an all-zero map) instead of sqrt's infinite one."""
    s = (x * x).sum()
    return torch.sqrt(s) if float(s) > 0 else s * 0


def naive_truncate(m: torch.Tensor, keep: float) -> torch.Tensor:
    """One [H, W] map kept where |value| is strictly above the (n+1)-th largest |value| (n = round(keep H W))."""
    h, w = m.shape
    n = min(h * w, max(1, int(round(keep * h * w))))
    if n >= h * w:
        return m.clone()
    mags = sorted((abs(float(m[y, x])) for y in range(h) for x in range(w)), reverse=True)
    thr = mags[n]  # the (n+1)-th largest
    out = torch.zeros_like(m)
    for y in range(h):
        for x in range(w):
            if abs(float(m[y, x])) > thr:
                out[y, x] = m[y, x]
    return out


def naive_gaussian_3x3(m: torch.Tensor, sigma: float) -> torch.Tensor:
    """3x3 Gaussian (weights exp(-(dx^2+dy^2)/(2 sigma^2)) normalised over the 9 taps), zero padding."""
    k = [[math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) for dx in (-1, 0, 1)] for dy in (-1, 0, 1)]
    total = sum(sum(r) for r in k)
    h, w = m.shape
    out = torch.zeros_like(m)
    for y in range(h):
        for x in range(w):
            acc = m.new_zeros(())
            for a, dy in enumerate((-1, 0, 1)):
                for b, dx in enumerate((-1, 0, 1)):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        acc = acc + (k[a][b] / total) * m[y + dy, x + dx]
            out[y, x] = acc
    return out


def naive_sad(maps: torch.Tensor, sigma: float = 1.5, keep: float = 0.04) -> torch.Tensor:
    """Per image: truncate each channel, smooth it, mean over pairs i < j of cos^2; mean over images.
    Norms guarded as max(|z|, 1e-6)."""
    x = maps.to(torch.float64)
    b, c = x.shape[:2]
    per_image = []
    for i in range(b):
        zs = []
        for j in range(c):
            t = naive_truncate(x[i, j], keep)
            zs.append((naive_gaussian_3x3(t, sigma) if sigma > 0 else t).reshape(-1))
        total, pairs = x.new_zeros(()), 0
        for p in range(c):
            for q in range(p + 1, c):
                np_, nq = _norm(zs[p]), _norm(zs[q])
                npv = np_ if float(np_) >= 1e-6 else np_ * 0 + 1e-6
                nqv = nq if float(nq) >= 1e-6 else nq * 0 + 1e-6
                total = total + ((zs[p] * zs[q]).sum() / (npv * nqv)) ** 2
                pairs += 1
        per_image.append(total / pairs)
    return torch.stack(per_image).mean()


def naive_fad(f: torch.Tensor, f_o: torch.Tensor, keep: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the n smallest batch-mean |f - f_o| elements, mask of the n least-changed elements)."""
    f, f_o = f.to(torch.float64), f_o.to(torch.float64)
    b, d = f.shape
    diffs = []
    for k in range(d):
        diffs.append(sum((f[i, k] - f_o[i, k]).abs() for i in range(b)) / b)
    n = min(d, max(1, int(round(keep * d))))
    order = sorted(range(d), key=lambda k: float(diffs[k]))
    loss = sum(diffs[k] for k in order[:n])
    mask = torch.zeros(d, dtype=torch.bool)
    for k in order[:n]:
        mask[k] = True
    return loss, mask


def naive_filter_diversity(weight: torch.Tensor) -> torch.Tensor:
    """Mean over filters of the mean over ordered pairs of different taps of cos^2 (taps: C_in vectors)."""
    w = weight.to(torch.float64)
    c_out, c_in, kh, kw = w.shape
    out = []
    for o in range(c_out):
        taps = [w[o, :, y, x] for y in range(kh) for x in range(kw)]
        total, pairs = w.new_zeros(()), 0
        for p in range(len(taps)):
            for q in range(len(taps)):
                if p != q:
                    total = total + ((taps[p] * taps[q]).sum() / (_norm(taps[p]) * _norm(taps[q]))) ** 2
                    pairs += 1
        out.append(total / pairs)
    return torch.stack(out).mean()


def naive_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """[2, 3] least-squares similarity x' = a x - b y + tx, y' = b x + a y + ty by a linear least-squares solve."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src.tolist(), dst.tolist()):
        rows.append([x, -y, 1.0, 0.0])
        rhs.append(u)
        rows.append([y, x, 0.0, 1.0])
        rhs.append(v)
    a_mat = torch.tensor(rows, dtype=torch.float64)
    sol = torch.linalg.lstsq(a_mat, torch.tensor(rhs, dtype=torch.float64)[:, None]).solution[:, 0]
    a, b, tx, ty = sol.tolist()
    return torch.tensor([[a, -b, tx], [b, a, ty]], dtype=torch.float64)


def naive_window_mask(corners: torch.Tensor, size: int) -> torch.Tensor:
    """[S, S] bool for one convex quadrilateral [4, 2]: a pixel centre (x = column, y = row) is inside when it is
    on the same side (or on) of all four edges, tested with cross products."""
    pts = [tuple(map(float, p)) for p in corners]
    area = sum(pts[i][0] * pts[(i + 1) % 4][1] - pts[(i + 1) % 4][0] * pts[i][1] for i in range(4))
    sign = 1.0 if area > 0 else -1.0
    out = torch.zeros(size, size, dtype=torch.bool)
    for y in range(size):
        for x in range(size):
            ok = True
            for i in range(4):
                (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % 4]
                cross = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
                if sign * cross < -1e-9:
                    ok = False
                    break
            out[y, x] = ok
    return out
