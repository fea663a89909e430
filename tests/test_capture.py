"""Target-layer capture by module name on any nn.Module (docs/method.md §2, §3)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from explainface.models import FeatureCapture, capture_features


class _PairOut(nn.Module):
    """A module that returns a tuple, like an RNN or an attention layer."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x.sum()


class _TinyNet(nn.Module):
    """A small model from outside this project, with a nested block and a tuple-returning module."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pair = _PairOut()
        self.head = nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(4, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        doubled, _ = self.pair(self.stem(x))
        return self.head(doubled)


def _net() -> _TinyNet:
    torch.manual_seed(0)
    return _TinyNet()


def _first(model: _TinyNet, x: torch.Tensor) -> torch.Tensor:
    return model.stem(x)


def test_captures_the_named_module_output_of_an_arbitrary_model() -> None:
    model, x = _net(), torch.randn(2, 3, 8, 8)
    with FeatureCapture(model, "stem.1") as cap:
        out = model(x)
    assert out.shape == (2, 2)
    assert torch.equal(cap.output, _first(model, x))


def test_hooks_are_removed_after_normal_exit() -> None:
    model = _net()
    with FeatureCapture(model, "stem.1") as cap:
        model(torch.randn(1, 3, 8, 8))
        assert len(model.stem[1]._forward_hooks) == 1
    assert len(model.stem[1]._forward_hooks) == 0
    assert cap.output.shape == (1, 4, 8, 8)


def test_hooks_are_removed_when_the_body_raises() -> None:
    model = _net()
    with pytest.raises(RuntimeError, match="boom"):
        with FeatureCapture(model, ["stem.1", "head.fc"]):
            model(torch.randn(1, 3, 8, 8))
            raise RuntimeError("boom")
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_unknown_name_error_names_the_model_and_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"_TinyNet has no module named 'stem\.2'.*'stem\.1'"):
        FeatureCapture(_net(), "stem.2")


def test_list_of_names_fills_outputs_by_name() -> None:
    model, x = _net(), torch.randn(2, 3, 8, 8)
    with FeatureCapture(model, ["stem.1", "head.flat"]) as cap:
        model(x)
    assert set(cap.outputs) == {"stem.1", "head.flat"}
    assert cap.outputs["head.flat"].shape == (2, 4)
    with pytest.raises(ValueError, match="outputs"):
        _ = cap.output


def test_tuple_output_captures_its_first_tensor() -> None:
    model, x = _net(), torch.randn(2, 3, 8, 8)
    with FeatureCapture(model, "pair") as cap:
        model(x)
    assert torch.equal(cap.output, _first(model, x) * 2)


def test_captured_output_stays_in_the_graph_by_default() -> None:
    model = _net()
    with FeatureCapture(model, "stem.1") as cap:
        model(torch.randn(1, 3, 8, 8))
    cap.output.sum().backward()
    assert model.stem[0].weight.grad is not None


def test_detach_cuts_the_captured_output_from_the_graph() -> None:
    model = _net()
    with FeatureCapture(model, "stem.1", detach=True) as cap:
        model(torch.randn(1, 3, 8, 8))
    assert not cap.output.requires_grad


def test_output_before_any_forward_pass_raises() -> None:
    with FeatureCapture(_net(), "head.fc") as cap:
        with pytest.raises(RuntimeError, match="forward pass"):
            _ = cap.output


def test_capture_features_returns_model_output_and_feature() -> None:
    model, x = _net(), torch.randn(2, 3, 8, 8)
    out, feat = capture_features(model, x, "stem.1")
    assert torch.equal(out, model(x))
    assert torch.equal(feat, _first(model, x))
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
