"""The Explainable Channel Loss (paper §3.2 eqs. 5-7, §4.2; docs/method.md §2).

For every channel map x (flattened to HW values) and template T_t:

    L[x, t]   = sum_q x[q] T_t[q]                     (eq. 6 logits, one matmul)
    P(t | x)  = softmax_t L[x, t]                     (eq. 6)
    MI        = mean_x sum_t P(t|x) log(P(t|x) K)     (eq. 5 with P(t) = 1/K and the
              = mean_x (log K - H(P(.|x)))             paper's P(x) approximation, = 1/K)
    ECLoss    = -MI                                   (eq. 7; total = L_id + beta ECLoss)

The mean runs over the B*C maps. ECLoss therefore rewards every map for matching
one template confidently; it lies in [-log K, 0].

Numerics. Only max-shifted log-softmax / logsumexp appear; the loss is computed
in float32 (float64 if the maps are float64) with autocast disabled, so it
cannot overflow in half precision; tau = 10 with activations of 1e3 is fine.

Memory and speed (`_PaperNegEntropy`, a custom autograd function). The maps are
processed in blocks of rows sized to `max_chunk_bytes` (and to the cache on the
CPU); each block computes its [rows, K] logits once and, when a gradient is
needed, its gradient too, so the backward pass only scales a saved [B*C, HW]
tensor. Peak memory is O(rows * K + B*C*HW) for any K, the full set
(K = 19,307) included, and nothing is recomputed. The channel-marginal option
chunks over templates instead (streaming logsumexp with checkpointed chunks).

Options beyond the paper (off by default, docs/method.md §2.6):

* ``normalize="max"`` or ``"l2"``: divide each map by its max or L2 norm before
  the logits, and use the templates in units of tau with a `temperature`:
  ``L = (x / ||x||) . (T / tau) / temperature``. The loss then no longer depends
  on the activation magnitude (the paper-mode loss is nearly flat for small
  activations, see docs/method.md §2.5).
* ``marginal="channels"``: replace the uniform prior by the per-image marginal
  over channels, ``P_b(t) = mean_c P(t|x_bc)``, giving the true mutual
  information between channel and template, ``MI_b = H(P_b) - mean_c H(P(.|x_bc))``:
  it additionally rewards different channels for choosing different templates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch.utils.checkpoint import checkpoint

from explainface.losses.base import MapRegularizer
from explainface.losses.registry import register_regularizer
from explainface.losses.templates import PAPER_K, PAPER_TAU, KSpec, build_templates

Normalize = Literal["none", "max", "l2"]
Marginal = Literal["uniform", "channels"]

#: Default working-memory budget of one block: the [rows, K] logits and their exp
#: (paper mode), or the [B*C, chunk] buffers of a template chunk (channel marginal).
DEFAULT_CHUNK_BYTES = 256 * 2**20
_NORM_EPS = 1e-6
_CPU_BLOCK_BYTES = 8 * 2**20


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _rows_per_block(n_rows: int, k: int, dtype: torch.dtype, device: torch.device, max_chunk_bytes: int) -> int:
    """Maps per block: the [rows, K] logits and their exp (~3 such buffers) fit the budget.

    On the CPU the block is also capped near 8 MiB per buffer, so the
    element-wise passes run in cache (measured: 1.5x faster than one big block).
    """
    per_row = k * (torch.finfo(dtype).bits // 8)
    rows = max_chunk_bytes // (3 * per_row)
    if device.type == "cpu":
        rows = min(rows, _CPU_BLOCK_BYTES // per_row)
    return int(max(1, min(n_rows, rows)))


class _PaperNegEntropy(torch.autograd.Function):
    """Per-map negative entropy of softmax(x @ T^T), in blocks of maps (rows).

    forward(x [N, HW], T [K, HW], rows_per_block) -> sum_t p_t log p_t   [N]
    d/dx = sum_t p_t (log p_t - sum_s p_s log p_s) T_t

    Each block computes its logits once, a stable log-softmax from the max-shifted
    logits, and (when x needs a gradient) the block's gradient, so the backward
    pass only scales a saved [N, HW] tensor: peak memory is O(rows * K) for any
    K, and no logit is computed twice. The gradient uses log p (not L - E_p[L]),
    so large logits (tau = 10, activations 1e3) lose no precision to cancellation.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, t: torch.Tensor, rows: int) -> torch.Tensor:  # type: ignore[override]
        needs_grad = ctx.needs_input_grad[0]
        n = x.shape[0]
        neg_h = x.new_empty(n)
        grad = torch.empty_like(x) if needs_grad else None
        t_t = t.T.contiguous()
        for r0 in range(0, n, rows):
            logits = x[r0 : r0 + rows] @ t_t
            shifted = logits.sub_(logits.amax(1, keepdim=True))  # L - max: every entry <= 0
            e = shifted.exp()
            s = e.sum(1)
            log_s = s.log()
            nh = torch.linalg.vecdot(e, shifted) / s - log_s  # E_p[L - m] - (lse - m)
            neg_h[r0 : r0 + rows] = nh
            if grad is not None:
                # p (log p - neg_h) = e / s * (shifted - log s - neg_h); the 1/s is applied after the matmul
                coef = shifted.sub_((log_s + nh)[:, None]).mul_(e)
                g = grad[r0 : r0 + rows]
                torch.mm(coef, t, out=g)
                g.div_(s[:, None])
        if grad is not None:
            ctx.save_for_backward(grad)
        return neg_h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out[:, None] * grad, None, None


def _chunk_size(n_rows: int, k: int, dtype: torch.dtype, max_chunk_bytes: int) -> int:
    """Templates per chunk for the channel-marginal mode (about four [N, chunk] buffers)."""
    per_template = max(1, n_rows) * torch.finfo(dtype).bits // 8 * 4
    return int(min(k, max(1, max_chunk_bytes // per_template)))


def _chunk_logsumexp(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(x @ t.T, dim=1)


def _chunk_marginal_terms(
    x: torch.Tensor, t: torch.Tensor, lse: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    logp = (x @ t.T - lse[:, None]).reshape(batch, -1, t.shape[0])
    plogp = (logp.exp() * logp).sum(dim=(1, 2))
    # log P_b(t) = logsumexp_c log p_bct - log C: stable where p underflows (no 0 * log 0 gradients)
    log_marg = torch.logsumexp(logp, dim=1) - math.log(logp.shape[1])
    mlogm = (log_marg.exp() * log_marg).sum(1)
    return plogp, mlogm


def _maybe_checkpoint(fn, *args, chunked: bool):
    return checkpoint(fn, *args, use_reentrant=False) if chunked else fn(*args)


def _marginal_mi(x: torch.Tensor, t: torch.Tensor, batch: int, chunk: int) -> torch.Tensor:
    """Per-image MI(channel; template) = H(mean_c p_bc) - mean_c H(p_bc), chunked with checkpointing."""
    k = t.shape[0]
    chunked = chunk < k
    starts = range(0, k, chunk)
    lse = torch.logsumexp(
        torch.stack([_maybe_checkpoint(_chunk_logsumexp, x, t[s : s + chunk], chunked=chunked) for s in starts], 1),
        dim=1,
    )
    plogp = x.new_zeros(batch)
    mlogm = x.new_zeros(batch)
    for s in starts:
        a, b = _maybe_checkpoint(_chunk_marginal_terms, x, t[s : s + chunk], lse, batch, chunked=chunked)
        plogp = plogp + a
        mlogm = mlogm + b
    channels = x.shape[0] // batch
    return plogp / channels - mlogm


@dataclass(frozen=True)
class ECLossOptions:
    """ECLoss's options, checked once on construction; the defaults are the paper's ("paper mode").

    `k`, `tau`, `radius`: the templates (`build_templates`); `normalize`,
    `temperature`: the magnitude-free logits (docs/method.md §2.6; `temperature`
    is used, and must be > 0, only when `normalize` is not "none"); `marginal`:
    the prior over templates (uniform, eq. 5, or per-image over channels);
    `max_chunk_bytes`: the working-memory budget of one block.
    """

    k: KSpec = PAPER_K
    tau: float = PAPER_TAU
    radius: float | None = None
    normalize: Normalize = "none"
    temperature: float = 0.1
    marginal: Marginal = "uniform"
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES

    def __post_init__(self) -> None:
        """Raise a ValueError for an unknown `normalize` or `marginal`, or a used `temperature` that is not > 0."""
        if self.normalize not in ("none", "max", "l2"):
            raise ValueError(f'normalize must be "none", "max" or "l2", got {self.normalize!r}')
        if self.marginal not in ("uniform", "channels"):
            raise ValueError(f'marginal must be "uniform" or "channels", got {self.marginal!r}')
        if self.normalize != "none" and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


#: The defaults, read by `ECLoss.__init__`'s signature so that each is written once (in `ECLossOptions`).
_DEFAULTS = ECLossOptions()


def _check_maps(maps: torch.Tensor) -> None:
    """Raise a ValueError unless `maps` has shape [B, C, H, W]."""
    if maps.dim() != 4:
        raise ValueError(f"maps must have shape [B, C, H, W], got {tuple(maps.shape)}")


def ecloss(maps: torch.Tensor, templates: torch.Tensor | None = None, **options: Any) -> torch.Tensor:
    """ECLoss = -MI(T; X) of target-layer maps [B, C, H, W] (paper eq. 7), a scalar in [-log K, 0].

    `options` are `ECLossOptions`'s fields (`k`, `tau`, `radius`, `normalize`, `temperature`, `marginal`,
    `max_chunk_bytes`), checked there. `templates` ([K, H, W]) overrides k/radius (pass the tau they were built
    with); otherwise they are built (and cached).
    """
    return -mutual_information(maps, templates, **options)


def mutual_information(maps: torch.Tensor, templates: torch.Tensor | None = None, **options: Any) -> torch.Tensor:
    """MI(T; X) of paper eq. 5 (see the module docstring), mean over the B*C maps; in [0, log K]. `options` as
    `ecloss`'s."""
    _check_maps(maps)
    return _mutual_information(maps, ECLossOptions(**options), templates)


def _mutual_information(maps: torch.Tensor, opts: ECLossOptions, templates: torch.Tensor | None) -> torch.Tensor:
    """MI(T; X) (eq. 5) of 4-D `maps` with checked options; `templates` as in `ecloss`."""
    b, c, h, w = maps.shape
    dtype = _compute_dtype(maps.dtype)
    if templates is None:
        templates = build_templates(h, w, k=opts.k, tau=opts.tau, radius=opts.radius)
    elif templates.shape[1:] != (h, w):
        raise ValueError(f"templates are {tuple(templates.shape[1:])} but the maps are {h}x{w}")
    with torch.autocast(device_type=maps.device.type, enabled=False):
        x = maps.to(dtype).reshape(b * c, h * w)
        t = templates.to(device=maps.device, dtype=dtype).reshape(templates.shape[0], h * w)
        if opts.normalize != "none":
            # templates in units of tau: (x / |x|) . (T / tau) / temperature
            norm = x.amax(1, keepdim=True) if opts.normalize == "max" else x.norm(dim=1, keepdim=True)
            x = x / (norm + _NORM_EPS) / (opts.tau * opts.temperature)
        n_templates = t.shape[0]
        if opts.marginal == "channels":
            chunk = _chunk_size(x.shape[0], n_templates, dtype, opts.max_chunk_bytes)
            return _marginal_mi(x, t, b, chunk).mean()
        rows = _rows_per_block(x.shape[0], n_templates, dtype, x.device, opts.max_chunk_bytes)
        neg_h = _PaperNegEntropy.apply(x, t, rows)
        return math.log(n_templates) + neg_h.mean()


class _Option:
    """A module attribute that is the `ECLossOptions` field of its name (``obj.opts``); setting it re-checks them."""

    def __set_name__(self, owner: type, name: str) -> None:
        """Remember the field this attribute stands for."""
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        """The field's value in ``obj.opts`` (the descriptor itself on the class)."""
        return self if obj is None else getattr(obj.opts, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        """Replace ``obj.opts`` by a copy with this field set (checked again)."""
        obj.opts = replace(obj.opts, **{self.name: value})


@register_regularizer("ecloss")
class ECLoss(MapRegularizer):
    """ECLoss as a module: ``loss = ECLoss()(maps)``; total loss = L_id + beta * loss (paper eq. 7).

    Defaults are the paper's (K = 400, tau = 0.001, r = 4 at 14 x 14, uniform
    prior, no normalisation): "paper mode". The templates are built on first use
    for the map size seen and kept in a non-persistent buffer, so they follow
    ``module.to(device)`` and are not written into checkpoints.
    """

    templates: torch.Tensor
    opts: ECLossOptions
    STATS = ("mi",)

    # the options, read from (and assigned through, re-checked) ``self.opts``
    k = _Option()
    tau = _Option()
    radius = _Option()
    normalize = _Option()
    temperature = _Option()
    marginal = _Option()
    max_chunk_bytes = _Option()

    def __init__(
        self,
        k: KSpec = _DEFAULTS.k,
        tau: float = _DEFAULTS.tau,
        radius: float | None = _DEFAULTS.radius,
        normalize: Normalize = _DEFAULTS.normalize,
        temperature: float = _DEFAULTS.temperature,
        marginal: Marginal = _DEFAULTS.marginal,
        max_chunk_bytes: int = _DEFAULTS.max_chunk_bytes,
    ) -> None:
        """The options are `ECLossOptions`'s (listed here for the registry and config checks); kept in ``self.opts``."""
        super().__init__()
        self.opts = ECLossOptions(k, float(tau), radius, normalize, float(temperature), marginal, int(max_chunk_bytes))
        self.register_buffer("templates", torch.empty(0), persistent=False)
        self.last_mi: torch.Tensor | None = None

    @property
    def paper_mode(self) -> bool:
        return self.normalize == "none" and self.marginal == "uniform"

    def templates_for(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The [K, H, W] templates for this map size on `device` (rebuilt if the size changes)."""
        t = self.templates
        # rebuild on a new size or device, or after .half(): templates stay float32/float64
        if t.shape[1:] != (height, width) or t.device != device or t.dtype not in (torch.float32, torch.float64):
            t = build_templates(height, width, k=self.k, tau=self.tau, radius=self.radius)
            self.templates = t.to(device)
        return self.templates

    def mutual_information(self, maps: torch.Tensor) -> torch.Tensor:
        """MI(T; X) of `maps` [B, C, H, W] with this module's options and cached templates (ECLoss = -MI)."""
        t = self.templates_for(maps.shape[2], maps.shape[3], maps.device)
        _check_maps(maps)
        mi = _mutual_information(maps, self.opts, t)
        self.last_mi = mi.detach()
        return mi

    def compute(self, maps: torch.Tensor) -> torch.Tensor:
        return -self.mutual_information(maps)

    def stats(self) -> dict[str, float]:
        """MI of the last call (nats; ECLoss = -MI)."""
        return {"mi": float(self.last_mi) if self.last_mi is not None else float("nan")}

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, tau={self.tau}, radius={self.radius}, normalize={self.normalize!r}, "
            f"temperature={self.temperature}, marginal={self.marginal!r}"
        )
