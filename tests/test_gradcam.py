"""Grad-CAM of the embedding similarity (paper Figure 1) through Captum, against a hand-written Grad-CAM."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explainface.explanations.gradcam import similarity_cam, similarity_gradcam
from explainface.inputs import to_tensor
from explainface.models import create_model
from explainface.models.capture import find_module
from explainface.synthetic.generator import HELDOUT_FIRST_IDENTITY, SyntheticFaces


def naive_gradcam(model: nn.Module, x: torch.Tensor, reference: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM written out: hook the layer, d cos / d A by autograd, w_c = spatial mean, ReLU(sum_c w_c A_c)."""
    store = {}
    handle = find_module(model, layer).register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        cos = F.cosine_similarity(model(x), reference.reshape(1, -1), dim=1).sum()
    finally:
        handle.remove()
    a = store["a"]
    (g,) = torch.autograd.grad(cos, a)
    weights = g.mean(dim=(2, 3))
    cam = torch.zeros(a.shape[2:], dtype=a.dtype)
    for c in range(a.shape[1]):
        cam += weights[0, c] * a[0, c]
    return cam.clamp_min(0).detach()


@pytest.fixture(scope="module")
def model64() -> nn.Module:
    torch.manual_seed(0)
    return create_model("vgg13", width=0.125, input_size=56, target_size=7).double().eval()


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    gen = SyntheticFaces(0)
    return [gen.sample(HELDOUT_FIRST_IDENTITY + i, 0, 56).image for i in range(2)]


def test_captum_gradcam_matches_a_hand_written_gradcam_in_float64(model64, faces):
    a, b = (to_tensor(f)[None].double() for f in faces)
    with torch.no_grad():
        emb_b = model64(b)[0]
    ref = naive_gradcam(model64, a, emb_b, model64.target_layer)
    assert ref.max() > 0  # the comparison means something only where the CAM is not all zero
    cam = similarity_cam(model64, a, emb_b)
    assert cam.dtype == torch.float64 and cam.shape == ref.shape
    torch.testing.assert_close(cam, ref, rtol=1e-10, atol=1e-12)


def test_heats_are_the_upsampled_normalised_cams_of_each_face_against_the_other(model64, faces):
    a, b = (to_tensor(f)[None].double() for f in faces)
    with torch.no_grad():
        emb_a, emb_b = model64(a)[0], model64(b)[0]
    sim, heat_a, heat_b = similarity_gradcam(model64, faces[0], faces[1])
    for heat, x, other in ((heat_a, a, emb_b), (heat_b, b, emb_a)):
        cam = naive_gradcam(model64, x, other, model64.target_layer)
        up = F.interpolate(cam[None, None], size=(56, 56), mode="bilinear", align_corners=False)[0, 0]
        np.testing.assert_allclose(heat, (up / up.max()).numpy(), atol=1e-5)
    assert sim == pytest.approx(float(F.cosine_similarity(emb_a, emb_b, dim=0)), abs=1e-12)


def test_heats_have_the_input_size_and_lie_in_the_unit_range(model64, faces):
    _, heat_a, heat_b = similarity_gradcam(model64, faces[0], faces[1])
    for heat in (heat_a, heat_b):
        assert heat.shape == (56, 56)
        assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)


def test_gradcam_leaves_the_model_in_its_mode(faces):
    torch.manual_seed(0)
    model = create_model("vgg13", width=0.125, input_size=56, target_size=7).train()
    similarity_gradcam(model, faces[0], faces[1])
    assert model.training


class LeftHalfNet(nn.Module):
    """An embedding of the left half of the image only: the right half is zeroed before the first conv."""

    target_layer = "features.relu"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(conv=nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), relu=nn.ReLU())
        )
        self.fc = nn.Linear(8 * 16 * 16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.ones_like(x)
        keep[..., x.shape[-1] // 2 :] = 0
        return self.fc(self.features(x * keep).flatten(1))


def test_heat_lies_on_the_half_of_the_face_the_embedding_sees():
    torch.manual_seed(0)
    net = LeftHalfNet()
    gen = torch.Generator().manual_seed(1)
    a, b = (torch.rand(3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
    _, heat_a, heat_b = similarity_gradcam(net, a, b)
    for heat in (heat_a, heat_b):
        assert heat.sum() > 0
        assert heat[:, :16].sum() / heat.sum() > 0.8  # the conv at the border column and upsampling bleed a little
        assert heat[:, 20:].max() == 0  # beyond the receptive field of the left half: nothing
        assert heat[20:, :].max() > 0  # not a transposed map: the bottom rows hold heat too


def test_an_unknown_layer_is_named():
    net = LeftHalfNet()
    with pytest.raises(ValueError, match="features.relu9"):
        similarity_gradcam(net, torch.zeros(3, 32, 32), torch.zeros(3, 32, 32), layer="features.relu9")
