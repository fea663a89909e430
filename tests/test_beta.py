"""beta of eq. 7: fixed, or "auto" by the gradient ratio at the target layer (docs/method.md §2.4)."""

import logging

import pytest
import torch

from explainface.losses import AutoBeta, ConstantBeta, ECLoss, make_beta
from explainface.losses.beta import target_gradient_norms, total_loss


def test_make_beta_parses_numbers_auto_and_auto_with_rho():
    assert isinstance(make_beta(0.5), ConstantBeta) and make_beta(0.5).value == 0.5
    assert make_beta("1e-3").value == pytest.approx(1e-3)
    auto = make_beta("auto")
    assert isinstance(auto, AutoBeta) and auto.value == pytest.approx(1e-5) and auto.rho == 0.1
    assert make_beta("auto:0.3").rho == pytest.approx(0.3)
    with pytest.raises(ValueError, match="auto"):
        make_beta("sometimes")
    with pytest.raises(ValueError, match=">= 0"):
        make_beta(-1.0)


def test_auto_beta_starts_at_1e5_and_converges_to_rho_times_gradient_ratio():
    beta = AutoBeta(rho=0.1, momentum=0.5)
    assert beta.value == pytest.approx(1e-5)
    for _ in range(60):
        beta.update(id_grad_norm=2.0, reg_grad_norm=0.004)
    assert beta.value == pytest.approx(0.1 * 2.0 / 0.004, rel=1e-6)


def test_auto_beta_smooths_with_exponential_moving_averages():
    beta = AutoBeta(rho=1.0, momentum=0.9)
    beta.update(1.0, 1.0)
    beta.update(11.0, 1.0)  # EMA of id norm: 0.9 * 1 + 0.1 * 11 = 2
    assert beta.value == pytest.approx(2.0)


def test_auto_beta_is_clamped_and_survives_zero_or_nan_gradients():
    beta = AutoBeta()
    beta.update(1.0, 1e-6)
    assert beta.value == 1e2
    beta = AutoBeta()
    beta.update(0.0, 1.0)
    assert beta.value == 1e-8
    before = beta.value
    beta.update(float("nan"), 1.0)
    assert beta.value == before


def test_auto_beta_keeps_its_value_when_the_regulariser_gradient_is_zero(caplog):
    beta = AutoBeta(rho=0.1, momentum=0.5)
    beta.update(2.0, 0.5)
    before = beta.value
    with caplog.at_level(logging.WARNING, logger="explainface.beta"):
        beta.update(2.0, 0.0)  # the old trap: ema_reg -> 0 sent beta to its clamp of 100
    assert beta.value == before and "gradient at the target maps is 0" in caplog.text
    fresh = AutoBeta()
    fresh.update(1.0, 0.0)
    assert fresh.value == 1e-5


def test_auto_beta_on_a_loss_that_does_not_reach_the_target_maps_is_an_error():
    feat = torch.rand(2, 4, 14, 14, requires_grad=True)
    other = torch.rand(3, requires_grad=True)
    id_loss = feat.sum()
    with pytest.raises(ValueError, match="does not depend on them.*constant beta"):
        total_loss(id_loss, other.square().sum(), AutoBeta(), features=feat)
    total = total_loss(id_loss, other.square().sum(), ConstantBeta(0.5), features=feat)  # a constant beta is fine
    assert float(total) == pytest.approx(float(id_loss) + 0.5 * float(other.square().sum()))


def test_auto_beta_state_round_trips_for_resume():
    a = AutoBeta(rho=0.2)
    for g in (1.0, 3.0, 2.0):
        a.update(g, 0.5)
    b = AutoBeta()
    b.load_state_dict(a.state_dict())
    assert b.update(1.5, 0.25) == a.update(1.5, 0.25)


def test_target_gradient_norms_equal_the_norms_of_separate_gradients():
    torch.manual_seed(0)
    feat = torch.relu(torch.randn(2, 4, 14, 14)).mul(100).requires_grad_()
    head = torch.nn.Linear(4 * 14 * 14, 3)
    id_loss = torch.nn.functional.cross_entropy(head(feat.flatten(1)), torch.tensor([0, 2]))
    reg = ECLoss()(feat)
    n_id, n_reg = target_gradient_norms(feat, id_loss, reg)
    g_id = torch.autograd.grad(id_loss, feat, retain_graph=True)[0]
    g_reg = torch.autograd.grad(reg, feat, retain_graph=True)[0]
    assert n_id == pytest.approx(float(g_id.norm()), rel=1e-6)
    assert n_reg == pytest.approx(float(g_reg.norm()), rel=1e-6)


def test_total_loss_uses_current_beta_then_updates_and_logs(caplog):
    torch.manual_seed(0)
    feat = torch.relu(torch.randn(2, 4, 14, 14)).mul(100).requires_grad_()
    head = torch.nn.Linear(4 * 14 * 14, 3)
    id_loss = torch.nn.functional.cross_entropy(head(feat.flatten(1)), torch.tensor([0, 2]))
    reg = ECLoss()(feat)
    beta = AutoBeta()
    with caplog.at_level(logging.DEBUG, logger="explainface.beta"):
        total = total_loss(id_loss, reg, beta, features=feat)
    assert total.item() == pytest.approx((id_loss + 1e-5 * reg).item(), rel=1e-6)
    assert beta.value != 1e-5 and beta.steps == 1
    assert "beta step 1" in caplog.text
    total.backward()  # the graph is still there for the real backward
    assert feat.grad is not None
    with pytest.raises(ValueError, match="features"):
        total_loss(id_loss.detach(), reg.detach(), AutoBeta())


def test_constant_beta_never_changes():
    beta = ConstantBeta(0.01)
    assert beta.update(5.0, 1.0) == 0.01
    assert not beta.needs_gradients
