"""ECLoss-fit: a template loss that measures how well a map *fits* a template, not how confidently one wins.

Why (docs/ecloss_diagnosis.md): paper-mode ECLoss scores P(t|x) = softmax_t <x, T_t>, with tau = 1e-3;
at BatchNorm-scale activations its logits differ by far less than one nat, the loss is flat, and its
gradient at the target layer is about 1e-4 of the identity loss's, so auto beta sits at its clamp and
the maps do not change. Scaled up (``normalize=max``), it rewards *one template winning clearly*, which a
multi-peaked map with a large activation also achieves. This term instead compares the *shape* of the
map with the templates' shapes, with the same templates (paper eqs. 2-4)::

    cos[x, t]    = <x / |x|, T_t / |T_t|>                     (x >= 0: the map after ReLU, HW values)
    fit[x]       = temperature * logsumexp_t(cos[x, t] / temperature)  (a soft max over templates, <= 1)
    L_fit        = -sum_x w_x fit[x] / sum_x w_x,   w_x = |x| (detached)

A one-peak (or two-peak) cone map has fit near 1; a map with several blobs fits no template and scores
lower; the templates' negative tails (-tau beyond 2r) penalise activation far from the chosen peaks. The
weight w_x = |x| (``weight="norm"``; ``"mean"`` is the plain mean) keeps the gradient bounded: d cos / dx
scales like 1/|x|, which with a plain mean drives weak maps to zero (measured: 17% dead maps).

Two optional terms in the same units (each in [0, 1]), because fit alone collapses every channel onto one
central blob (measured: channel overlap 0.45-0.85 against softmax's 0.07):

* ``diversity``: Yin et al.'s spatial diversity, the mean squared cosine between *different* channels'
  smoothed maps of one face (`spatial_diversity`);
* ``consistency``: each channel's spread across the faces of the batch. ``frame="image"``:
  ``sum_b w_bc |x̂_bc - m_c|^2 / sum_b w_bc`` with ``m_c`` the w-weighted mean normalised map of channel c,
  small when a channel fires at the same place *of the image* in every face (measured: it makes channels
  that stay put when the face moves, `docs/ecloss_diagnosis.md`); ``frame="face"``: the spread of the
  channel's centre of mass relative to its face's centre (`face_frame_consistency`), small when a channel
  fires at the same place *of the face*.

``L = L_fit + diversity * L_div + consistency * L_cons``. Its statistics (``fit``, ``diversity``,
``consistency``) are logged per step by the trainer.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch

from explainface.losses.base import MapRegularizer
from explainface.losses.registry import register_regularizer
from explainface.losses.templates import PAPER_K, KSpec, build_templates

Weight = Literal["norm", "mean"]
Frame = Literal["image", "face"]
_EPS = 1e-6

#: The ECLoss-fit recipe (the methods ``ecloss-fit`` / ``recommended``, the retrofit's map terms): ``beta`` and
#: ``start`` are the trainer's (a regulariser item's), the rest `FitECLoss`'s options. docs/ecloss_diagnosis.md has
#: the measurements behind each.
FIT_RECIPE: dict[str, Any] = {
    "beta": "auto:1",  # the term's gradient at the maps kept at the identity loss's (rho = 1)
    "start": 0.4,  # identity loss alone for the first 40% of the steps, then + the term
    "temperature": 0.05,
    "weight": "norm",
    "diversity": 0.5,
    "consistency": 2.0,
    "frame": "face",  # consistency of each channel's place in the face, not in the image
}


def _flat(maps: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> a contiguous [B*C, H*W] in the compute dtype (float64 stays float64, else float32)."""
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    b, c, h, w = maps.shape
    return maps.to(dtype).reshape(b * c, h * w).contiguous()


def _fit_loss(x: torch.Tensor, norm: torch.Tensor, th: torch.Tensor, temperature: float, weight: Weight):
    """L_fit and the per-map fit from flat maps x [N, HW], their norms [N] and unit templates th [K, HW]."""
    fit = temperature * torch.logsumexp((x / (norm[:, None] + _EPS)) @ th.T / temperature, dim=1)
    if weight == "norm":
        wt = norm.detach()
        return -(wt * fit).sum() / wt.sum().clamp_min(_EPS), fit.detach()
    return -fit.mean(), fit.detach()


def _unit_templates(templates: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    t = templates.to(device=like.device, dtype=like.dtype).reshape(templates.shape[0], -1)
    return t / t.norm(dim=1, keepdim=True)


def template_fit(
    maps: torch.Tensor, templates: torch.Tensor, temperature: float = 0.05, weight: Weight = "norm"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the fit term L_fit, the per-map fit [B, C]) of maps [B, C, H, W] against templates [K, H, W]."""
    b, c = maps.shape[:2]
    with torch.autocast(device_type=maps.device.type, enabled=False):
        x = _flat(maps)
        loss, fit = _fit_loss(x, x.norm(dim=1), _unit_templates(templates, x), temperature, weight)
    return loss, fit.reshape(b, c)


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = max(1, int(round(2 * sigma)))
    r = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _band(n: int, g: torch.Tensor) -> torch.Tensor:
    """The [n, n] matrix of a 1-D convolution with kernel g (odd length) and zero padding."""
    radius = g.numel() // 2
    i = torch.arange(n, device=g.device)
    d = i[None, :] - i[:, None] + radius  # kernel index of (output i, input j)
    inside = (d >= 0) & (d < g.numel())
    return torch.where(inside, g[d.clamp(0, g.numel() - 1)], torch.zeros((), dtype=g.dtype, device=g.device))


def smoothing_matrix(height: int, width: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """[HW, HW] matrix S with ``flat(smooth(x)) = S @ flat(x)``: separable Gaussian, radius round(2 sigma), zero
    padding. One matrix product smooths every map at once (measured 7x faster than conv2d on 8,192 maps)."""
    return _smoothing_cached(int(height), int(width), float(sigma), dtype, str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=16)
def _smoothing_cached(height: int, width: int, sigma: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    g = _gaussian_kernel(sigma, torch.float64, torch.device("cpu"))
    return torch.kron(_band(height, g), _band(width, g)).to(device=device, dtype=dtype)


def smooth_maps(maps: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian smoothing of [B, C, H, W] maps (zero padding); sigma 0 returns the maps."""
    if sigma <= 0:
        return maps
    b, c, h, w = maps.shape
    s = smoothing_matrix(h, w, sigma, maps.dtype, maps.device)
    return (maps.reshape(b * c, h * w) @ s.T).reshape(b, c, h, w)


def _diversity(x: torch.Tensor, b: int, c: int, smoothing: torch.Tensor | None) -> torch.Tensor:
    if c < 2:
        return x.new_zeros(())
    xs = x if smoothing is None else x @ smoothing.T
    xh = (xs / (xs.norm(dim=1, keepdim=True) + _EPS)).reshape(b, c, -1)
    gram = xh @ xh.transpose(1, 2)  # [B, C, C]
    off = gram.pow(2).sum() - gram.diagonal(dim1=1, dim2=2).pow(2).sum()
    return off / (b * c * (c - 1))


def spatial_diversity(maps: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Mean squared cosine between different channels' smoothed maps of the same face, in [0, 1].

    (Yin et al.'s spatial diversity idea: 0 when channels of a face fire in disjoint places.) Channels with an
    all-zero map contribute 0.
    """
    b, c, h, w = maps.shape
    with torch.autocast(device_type=maps.device.type, enabled=False):
        x = _flat(maps)
        s = smoothing_matrix(h, w, sigma, x.dtype, x.device) if sigma > 0 else None
        return _diversity(x, b, c, s)


def _consistency(x: torch.Tensor, norm: torch.Tensor, b: int, c: int, weight: Weight) -> torch.Tensor:
    # sum_b w |x̂ - m|^2 / sum_b w = sum_b w |x̂|^2 / sum_b w - |m|^2 for the w-weighted mean m (|x̂| = 1, or 0)
    xh = (x / (norm[:, None] + _EPS)).reshape(b, c, -1)
    wt = (norm.detach() if weight == "norm" else torch.ones_like(norm)).reshape(b, c, 1)
    wsum = wt.sum(0).clamp_min(_EPS)  # [C, 1]
    m = (wt * xh).sum(0) / wsum  # [C, HW]
    sq = (wt * xh.pow(2).sum(2, keepdim=True)).sum(0) / wsum  # [C, 1]
    return (sq.squeeze(1) - m.pow(2).sum(1)).mean()


#: Spread (E|p - E p|^2) of a position uniform on the unit square: the unit of the face-frame consistency.
_UNIFORM_SPREAD = 2.0 / 12.0


def _face_frame_consistency(x: torch.Tensor, norm: torch.Tensor, b: int, c: int, h: int, w: int,
                            weight: Weight) -> torch.Tensor:  # fmt: skip
    # each map's centre of mass (positions in [0, 1]^2), relative to its face's w-weighted centre over channels
    pos = _unit_positions(h, w, x)  # [HW, 2]
    mass = x / (x.sum(1, keepdim=True) + _EPS)
    mu = (mass @ pos).reshape(b, c, 2)
    wt = (norm.detach() if weight == "norm" else torch.ones_like(norm)).reshape(b, c, 1)
    face = (wt * mu).sum(1, keepdim=True) / wt.sum(1, keepdim=True).clamp_min(_EPS)  # [B, 1, 2]
    rel = mu - face
    wsum = wt.sum(0).clamp_min(_EPS)  # [C, 1]
    mean = (wt * rel).sum(0) / wsum  # [C, 2]
    spread = (wt * (rel - mean).pow(2).sum(2, keepdim=True)).sum(0) / wsum  # [C, 1]
    return spread.mean() / _UNIFORM_SPREAD


def face_frame_consistency(maps: torch.Tensor, weight: Weight = "norm") -> torch.Tensor:
    """Mean over channels of the (w-weighted) spread across the batch of a channel's centre of mass *relative to
    its face* (the w-weighted centre of all the face's channels), in units of a uniform position's spread (1:
    anywhere, 0: always at the same place in the face). Unlike `channel_consistency` it does not ask a channel to
    fire at the same place of the image: a channel that follows the face (a detector) is as consistent as one
    fixed in the image."""
    b, c, h, w = maps.shape
    with torch.autocast(device_type=maps.device.type, enabled=False):
        x = _flat(maps)
        return _face_frame_consistency(x, x.norm(dim=1), b, c, h, w, weight)


def channel_consistency(maps: torch.Tensor, weight: Weight = "norm") -> torch.Tensor:
    """Mean over channels of the (w-weighted) spread of a channel's normalised maps across the batch, in [0, 1]."""
    b, c = maps.shape[:2]
    with torch.autocast(device_type=maps.device.type, enabled=False):
        x = _flat(maps)
        return _consistency(x, x.norm(dim=1), b, c, weight)


#: Rows (maps) per block of the fit term's [rows, K] logits in the fused kernel: about 4 MiB of float32.
_FIT_BLOCK_ELEMENTS = 1 << 20


class _FusedTerms(torch.autograd.Function):
    """fit + diversity * L_div + consistency * L_cons(face frame) and its gradient in one pass, no autograd graph.

    Same value and gradient as the autograd compositions above (`_fit_loss`, `_diversity`,
    `_face_frame_consistency`; tested against the float64 loop references), computed with hand-derived gradients
    (the weights w are constants, as the detached norms are there):

    * fit: d/dx̂_i = -(w_i / W) softmax_t(x̂_i . T̂_t / t) @ T̂, in blocks of maps, each block's [rows, K]
      logits used once for the value and the gradient;
    * diversity: with z = x S^T, ẑ = z / (|z| + eps), G_b = Ẑ_b Ẑ_b^T, d/dẐ_b = 4 (G_b - diag G_b) Ẑ_b / (B C (C-1));
    * face-frame consistency: with mu_i = x_i . pos / (sum x_i + eps), d/dmu_bc = g_bc - (w_bc / W_b) sum_c' g_bc',
      g_bc = 2 w_bc (rel_bc - mean_c) / (C U W_c), and d mu_i / dx_iq = (pos_q - mu_i) / (sum x_i + eps);
    * normalisation x̂ = x / (|x| + eps): d/dx = g / (|x| + eps) - x (x . g) / ((|x| + eps)^2 |x|).

    The recipe's term costs 2.8% of a CPU default training step (benchmarks/ecloss_speed.py).
    """

    @staticmethod
    def forward(ctx, x, th, smoothing, pos, b, c, temperature, weight, lam_div, lam_cons):  # type: ignore[override]
        n_maps = x.shape[0]
        norm = x.norm(dim=1)
        inv = 1.0 / (norm + _EPS)
        xh = x * inv[:, None]
        w = norm if weight == "norm" else torch.ones_like(norm)
        wsum = w.sum().clamp_min(_EPS) if weight == "norm" else x.new_tensor(float(n_maps))
        # fit, in blocks of rows
        fit = x.new_empty(n_maps)
        g_xh = torch.empty_like(x)
        rows = max(1, _FIT_BLOCK_ELEMENTS // max(1, th.shape[0]))
        tht = th.T.contiguous()
        for r0 in range(0, n_maps, rows):
            logits = (xh[r0 : r0 + rows] @ tht).div_(temperature)
            m = logits.amax(1, keepdim=True)
            e = logits.sub_(m).exp_()
            ssum = e.sum(1, keepdim=True)
            fit[r0 : r0 + rows] = temperature * (m + ssum.log()).squeeze(1)
            torch.mm(e, th, out=g_xh[r0 : r0 + rows])
            g_xh[r0 : r0 + rows].mul_((-(w[r0 : r0 + rows] / wsum))[:, None] / ssum)
        loss = -(w * fit).sum() / wsum
        # normalisation backward: g / (n + eps) - x (x . g) / ((n + eps)^2 n)
        dot = torch.linalg.vecdot(x, g_xh)
        safe_n = torch.where(norm > 0, norm, torch.ones_like(norm))
        grad = g_xh.mul_(inv[:, None]).addcmul_(x, (dot * inv * inv / safe_n)[:, None], value=-1.0)
        div = cons = x.new_zeros(())
        if lam_div > 0 and c > 1:
            z = x @ smoothing.T if smoothing is not None else x
            nz = z.norm(dim=1)
            invz = 1.0 / (nz + _EPS)
            zh = (z * invz[:, None]).reshape(b, c, -1)
            gram = zh @ zh.transpose(1, 2)
            diag = gram.diagonal(dim1=1, dim2=2)
            scale = b * c * (c - 1)
            div = (gram.pow(2).sum() - diag.pow(2).sum()) / scale
            gram.diagonal(dim1=1, dim2=2).zero_()
            g_zh = (gram @ zh).mul_(4.0 * lam_div / scale).reshape(n_maps, -1)
            zflat = zh.reshape(n_maps, -1)
            dotz = torch.linalg.vecdot(zflat, g_zh)  # ẑ . g, so z (z . g) / ((n+eps)^2 n) = ẑ (ẑ . g) / n
            safe_nz = torch.where(nz > 0, nz, torch.ones_like(nz))
            g_z = g_zh.mul_(invz[:, None]).addcmul_(zflat, (dotz / safe_nz)[:, None], value=-1.0)
            if smoothing is not None:
                grad.addmm_(g_z, smoothing)
            else:
                grad.add_(g_z)
        if lam_cons > 0:
            sig = x.sum(1)
            isig = 1.0 / (sig + _EPS)
            mu = (x @ pos) * isig[:, None]  # [N, 2]
            wc = w.reshape(b, c, 1)
            mu3 = mu.reshape(b, c, 2)
            wface = wc.sum(1, keepdim=True).clamp_min(_EPS)  # [B, 1, 1]
            face = (wc * mu3).sum(1, keepdim=True) / wface
            rel = mu3 - face
            wchan = wc.sum(0, keepdim=True).clamp_min(_EPS)  # [1, C, 1]
            mean = (wc * rel).sum(0, keepdim=True) / wchan
            d = rel - mean
            cons = ((wc * d.pow(2).sum(2, keepdim=True)).sum(0) / wchan.squeeze(0)).mean() / _UNIFORM_SPREAD
            g_rel = (2.0 * lam_cons / (c * _UNIFORM_SPREAD)) * wc * d / wchan
            g_mu = (g_rel - wc / wface * g_rel.sum(1, keepdim=True)).reshape(n_maps, 2)
            g_mu = g_mu * isig[:, None]
            grad.addmm_(g_mu, pos.T).sub_(torch.linalg.vecdot(g_mu, mu)[:, None])
        ctx.save_for_backward(grad)
        stats = torch.stack([fit.mean(), div, cons]).detach()
        ctx.mark_non_differentiable(stats)
        return loss + lam_div * div + lam_cons * cons, stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, _grad_stats):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None, None, None, None, None, None, None


def _unit_positions(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=like.dtype, device=like.device),
                            torch.linspace(0, 1, w, dtype=like.dtype, device=like.device), indexing="ij")  # fmt: skip
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], 1)


@register_regularizer("ecloss_fit")
class FitECLoss(MapRegularizer):
    """ECLoss-fit (see the module docstring): ``loss = FitECLoss()(maps)``, total = L_id + beta * loss."""

    templates: torch.Tensor
    STATS = ("fit", "diversity", "consistency")

    def __init__(
        self,
        k: KSpec = PAPER_K,
        radius: float | None = None,
        temperature: float = 0.05,
        weight: Weight = "norm",
        diversity: float = 0.0,
        consistency: float = 0.0,
        sigma: float = 1.0,
        frame: Frame = "image",
    ) -> None:
        super().__init__()
        if frame not in ("image", "face"):
            raise ValueError(f'frame must be "image" or "face", got {frame!r}')
        if weight not in ("norm", "mean"):
            raise ValueError(f'weight must be "norm" or "mean", got {weight!r}')
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not (diversity >= 0 and consistency >= 0 and sigma >= 0):
            raise ValueError(f"diversity, consistency and sigma must be >= 0, got {diversity}, {consistency}, {sigma}")
        self.k, self.radius, self.temperature, self.weight = k, radius, float(temperature), weight
        self.diversity, self.consistency, self.sigma = float(diversity), float(consistency), float(sigma)
        self.frame = frame
        self.register_buffer("templates", torch.empty(0), persistent=False)
        self._stats: dict[str, float] = {}

    def templates_for(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        t = self.templates
        if t.shape[1:] != (height, width) or t.device != device or t.dtype not in (torch.float32, torch.float64):
            # tau cancels in the cosine: build at tau = 1
            self.templates = build_templates(height, width, k=self.k, tau=1.0, radius=self.radius).to(device)
        return self.templates

    def compute(self, maps: torch.Tensor) -> torch.Tensor:
        b, c, h, w = maps.shape
        t = self.templates_for(h, w, maps.device)
        with torch.autocast(device_type=maps.device.type, enabled=False):
            x = _flat(maps)  # one contiguous copy shared by the terms
            th = _unit_templates(t, x)
            s = smoothing_matrix(h, w, self.sigma, x.dtype, x.device) if self.sigma > 0 else None
            face = self.consistency if self.frame == "face" else 0.0
            loss, st = _FusedTerms.apply(x, th, s, _unit_positions(h, w, x), b, c, self.temperature, self.weight,
                                         self.diversity, face)  # fmt: skip
            stats = {"fit": float(st[0])}
            if self.diversity > 0:
                stats["diversity"] = float(st[1])
            if self.consistency > 0:
                if self.frame == "face":
                    stats["consistency"] = float(st[2])
                else:  # the image frame (not the recipe's): plain autograd
                    cons = _consistency(x, x.norm(dim=1), b, c, self.weight)
                    loss = loss + self.consistency * cons
                    stats["consistency"] = float(cons.detach())
        self._stats = stats
        return loss

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, radius={self.radius}, temperature={self.temperature}, weight={self.weight!r}, "
            f"diversity={self.diversity}, consistency={self.consistency}, sigma={self.sigma}, frame={self.frame!r}"
        )


@register_regularizer("spatial_diversity")
class SpatialDiversity(MapRegularizer):
    """`spatial_diversity` as a regulariser of its own (mean squared cosine between different channels' maps)."""

    STATS = ()

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def compute(self, maps: torch.Tensor) -> torch.Tensor:
        return spatial_diversity(maps, self.sigma)
