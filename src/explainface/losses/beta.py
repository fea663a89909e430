"""The weight beta of the regulariser in ``total = alpha * L_id + beta * ECLoss`` (paper eq. 7).

The paper sets beta "1e-5 initially and then automatically changed by the
program" without saying how. Project reading (docs/method.md §2.4), `AutoBeta`: keep the
regulariser's gradient at the target layer at a fixed fraction rho (0.1) of the
identity loss's gradient there, from exponential moving averages of the two
gradient norms::

    beta_{s+1} = clamp(rho * EMA||dL_id/dX|| / EMA||dECLoss/dX||, 1e-8, 1e2)

Step 0 uses the initial 1e-5; each step's value comes from the norms of the
steps before it. Every update is logged (`logging.getLogger("explainface.beta")`) and kept
in the controller's attributes for the trainer's CSV/TensorBoard logs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Union

import torch

log = logging.getLogger("explainface.beta")


class ConstantBeta:
    """A fixed beta; `update` is a no-op so trainers treat both kinds alike."""

    needs_gradients = False

    def __init__(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"beta must be >= 0, got {value}")
        self.value = float(value)

    def update(self, id_grad_norm: float, reg_grad_norm: float) -> float:
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])

    def __repr__(self) -> str:
        return f"ConstantBeta({self.value:g})"


class AutoBeta:
    """Gradient-ratio controller for beta (see the module docstring)."""

    needs_gradients = True

    def __init__(
        self,
        init: float = 1e-5,
        rho: float = 0.1,
        momentum: float = 0.9,
        min_value: float = 1e-8,
        max_value: float = 1e2,
    ) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not (rho > 0 and 0 < min_value <= init <= max_value):
            raise ValueError(
                f"need rho > 0 and 0 < min <= init <= max, got rho={rho}, {min_value} <= {init} <= {max_value}"
            )
        self.value = float(init)
        self.rho, self.momentum = float(rho), float(momentum)
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.ema_id: float | None = None
        self.ema_reg: float | None = None
        self.steps = 0
        self._warned_zero = False

    def update(self, id_grad_norm: float, reg_grad_norm: float) -> float:
        """Fold in one step's gradient norms; return the beta for the next step."""
        id_grad_norm, reg_grad_norm = float(id_grad_norm), float(reg_grad_norm)
        if not (id_grad_norm >= 0 and reg_grad_norm >= 0):  # also rejects NaN
            log.warning("beta: ignoring non-finite gradient norms (id=%s, reg=%s)", id_grad_norm, reg_grad_norm)
            return self.value
        if reg_grad_norm == 0:
            # no signal this step (e.g. all-zero maps): folding a 0 in would send beta to its clamp
            if not self._warned_zero:
                log.warning("beta: the regulariser's gradient at the target maps is 0; beta kept at %.3g", self.value)
                self._warned_zero = True
            return self.value
        mom = self.momentum
        self.ema_id = id_grad_norm if self.ema_id is None else mom * self.ema_id + (1 - mom) * id_grad_norm
        self.ema_reg = reg_grad_norm if self.ema_reg is None else mom * self.ema_reg + (1 - mom) * reg_grad_norm
        target = self.rho * self.ema_id / self.ema_reg
        self.value = min(self.max_value, max(self.min_value, target))
        self.steps += 1
        log.debug(
            "beta step %d: |g_id|=%.3e |g_reg|=%.3e -> beta=%.3e", self.steps, id_grad_norm, reg_grad_norm, self.value
        )
        return self.value

    def state_dict(self) -> dict:
        keys = ("value", "rho", "momentum", "min_value", "max_value", "ema_id", "ema_reg", "steps")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"AutoBeta(value={self.value:.3g}, rho={self.rho}, momentum={self.momentum})"


BetaController = Union[ConstantBeta, AutoBeta]


def make_beta(beta: float | str | BetaController, **auto_kwargs: float) -> BetaController:
    """A controller from a float, "auto" (optionally "auto:<rho>") or an existing controller."""
    if isinstance(beta, (ConstantBeta, AutoBeta)):
        return beta
    if isinstance(beta, str):
        name, _, arg = beta.partition(":")
        if name == "auto":
            if arg:
                auto_kwargs = {**auto_kwargs, "rho": float(arg)}
            return AutoBeta(**auto_kwargs)
        try:
            return ConstantBeta(float(beta))
        except ValueError:
            raise ValueError(f'beta must be a number, "auto" or "auto:<rho>", got {beta!r}') from None
    return ConstantBeta(float(beta))


def target_gradient_norms(
    features: torch.Tensor, id_loss: torch.Tensor, reg_loss: torch.Tensor, name: str = "regularizer"
) -> tuple[float, float]:
    """L2 norms of d(id_loss)/d(features) and d(reg_loss)/d(features), graph kept for backward.

    A regulariser whose loss does not depend on `features` has no gradient there for auto beta to measure:
    that is a ValueError (it used to read as a norm of 0 and send beta to its clamp).
    """
    (g_id,) = torch.autograd.grad(id_loss, features, retain_graph=True, allow_unused=True)
    (g_reg,) = torch.autograd.grad(reg_loss, features, retain_graph=True, allow_unused=True)
    if g_reg is None:
        raise ValueError(
            f'{name}: beta="auto" measures the gradient at the target-layer maps, but this loss does not depend on '
            "them; give it a constant beta"
        )
    n_id = 0.0 if g_id is None else float(g_id.float().norm())
    return n_id, float(g_reg.float().norm())


def regularized_loss(
    id_loss: torch.Tensor,
    terms: Sequence[tuple[str, torch.Tensor, BetaController]],
    features: torch.Tensor | None = None,
    alpha: float = 1.0,
) -> torch.Tensor:
    """``alpha * id_loss + sum_r beta_r * loss_r`` (paper eq. 7 with one or more regularisers).

    `terms` holds (name, loss, beta controller). Each term uses its controller's current value; an `AutoBeta`
    then folds in the gradient norms at `features` (the target-layer maps) for the next step.
    """
    total = alpha * id_loss
    for name, reg_loss, beta in terms:
        value = beta.value
        if beta.needs_gradients:
            if features is None:
                raise ValueError(f'{name}: beta="auto" needs the target-layer features to measure gradient norms')
            beta.update(*target_gradient_norms(features, alpha * id_loss, reg_loss, name))
        total = total + value * reg_loss
    return total


def total_loss(
    id_loss: torch.Tensor,
    reg_loss: torch.Tensor,
    beta: BetaController,
    features: torch.Tensor | None = None,
    alpha: float = 1.0,
) -> torch.Tensor:
    """``alpha * id_loss + beta * reg_loss`` (paper eq. 7) for one regulariser; see `regularized_loss`."""
    return regularized_loss(id_loss, [("regularizer", reg_loss, beta)], features, alpha)
