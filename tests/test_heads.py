"""Identity heads: softmax, CosFace, ArcFace (docs/method.md §3)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explainface.models import ArcFaceHead, CosFaceHead, SoftmaxHead, create_head

D, C = 16, 5


def _plain_cos(head: nn.Module, emb: torch.Tensor) -> torch.Tensor:
    return F.normalize(emb.double(), dim=1) @ F.normalize(head.weight.double(), dim=1).T


@pytest.mark.parametrize("name", ["softmax", "cosface", "arcface"])
def test_logits_have_shape_batch_by_classes(name: str) -> None:
    head = create_head(name, D, C)
    logits = head(torch.randn(4, D), torch.tensor([0, 1, 2, 4]))
    assert logits.shape == (4, C)


def test_softmax_head_equals_nn_linear() -> None:
    torch.manual_seed(0)
    head = SoftmaxHead(D, C)
    linear = nn.Linear(D, C)
    linear.load_state_dict(head.state_dict())
    x = torch.randn(3, D)
    assert torch.equal(head(x), linear(x))
    assert torch.equal(head(x, None), head(x, torch.tensor([0, 1, 2])))


def test_cosface_target_is_s_cos_minus_m_and_others_s_cos() -> None:
    torch.manual_seed(0)
    head = CosFaceHead(D, C, s=64.0, m=0.35)
    emb, labels = torch.randn(6, D), torch.tensor([0, 1, 2, 3, 4, 0])
    cos = _plain_cos(head, emb)
    expected = 64.0 * (cos - 0.35 * F.one_hot(labels, C))
    torch.testing.assert_close(head(emb, labels).double(), expected, rtol=1e-5, atol=1e-4)


def test_arcface_target_is_s_cos_theta_plus_m_in_the_normal_range() -> None:
    torch.manual_seed(0)
    head = ArcFaceHead(D, C, s=64.0, m=0.5)
    emb, labels = torch.randn(6, D), torch.tensor([0, 1, 2, 3, 4, 0])
    cos = _plain_cos(head, emb)
    target = cos.gather(1, labels[:, None])
    assert (torch.acos(target) + 0.5 < math.pi).all()
    expected = 64.0 * torch.where(F.one_hot(labels, C).bool(), torch.cos(torch.acos(target) + 0.5), cos)
    torch.testing.assert_close(head(emb, labels).double(), expected, rtol=1e-5, atol=1e-4)


def test_arcface_uses_the_fallback_when_theta_plus_m_exceeds_pi() -> None:
    torch.manual_seed(0)
    m = 0.5
    head = ArcFaceHead(D, C, s=64.0, m=m)
    labels = torch.tensor([0, 1, 2])
    emb = -head.weight.detach()[labels] + 0.001 * torch.randn(3, D)  # theta close to pi
    target = _plain_cos(head, emb).gather(1, labels[:, None])
    assert (target <= math.cos(math.pi - m)).all()
    expected = 64.0 * (target - m * math.sin(math.pi - m))
    got = head(emb, labels).double().gather(1, labels[:, None])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cls", [CosFaceHead, ArcFaceHead])
def test_margin_is_finite_with_finite_gradient_at_cos_exactly_plus_and_minus_one(cls: type) -> None:
    head = cls(D, C)
    cos = torch.tensor([[1.0], [-1.0]], requires_grad=True)
    out = head.margin(cos)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(cos.grad).all()


@pytest.mark.parametrize("cls", [CosFaceHead, ArcFaceHead])
def test_margin_heads_have_finite_gradients_for_embeddings_equal_or_opposite_a_weight_row(cls: type) -> None:
    torch.manual_seed(0)
    head = cls(D, C)
    w = head.weight.detach()
    # target at cos=+1, target at cos=-1, non-target at cos=+1, non-target at cos=-1
    emb = torch.stack([w[0], -w[1], w[2], -w[3]]).clone().requires_grad_(True)
    labels = torch.tensor([0, 1, 3, 0])
    logits = head(emb, labels)
    F.cross_entropy(logits, labels).backward()
    assert torch.isfinite(logits).all()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("cls", [CosFaceHead, ArcFaceHead])
def test_margin_heads_without_labels_return_s_times_cosine(cls: type) -> None:
    torch.manual_seed(0)
    head = cls(D, C, s=30.0)
    emb = torch.randn(3, D)
    torch.testing.assert_close(head(emb).double(), 30.0 * _plain_cos(head, emb), rtol=1e-5, atol=1e-5)


def test_cosface_gradient_equals_the_plain_formula_gradient() -> None:
    torch.manual_seed(0)
    head = CosFaceHead(D, C)
    emb, labels = torch.randn(4, D, requires_grad=True), torch.tensor([0, 1, 2, 3])
    F.cross_entropy(head(emb, labels), labels).backward()
    got = emb.grad.clone()
    emb.grad = None
    cos = F.normalize(emb, dim=1) @ F.normalize(head.weight, dim=1).T
    F.cross_entropy(head.s * (cos - head.m * F.one_hot(labels, C)), labels).backward()
    torch.testing.assert_close(got, emb.grad)


def test_create_head_passes_margin_arguments() -> None:
    head = create_head("arcface", D, C, s=32.0, m=0.3)
    assert isinstance(head, ArcFaceHead) and head.s == 32.0 and head.m == 0.3


def test_create_head_unknown_name_lists_available_heads() -> None:
    with pytest.raises(ValueError, match="arcface, cosface, none, partial_fc, softmax"):
        create_head("sphereface", D, C)
