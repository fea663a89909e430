"""VGG face networks and the model registry (docs/method.md §3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainface.models import (
    FeatureCapture,
    VGGFace,
    create_model,
    describe_model,
    list_models,
    register_model,
)

ALL_MODELS = ["vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]
SIZES = [112, 224]
CONVS_PER_DEPTH = {13: 10, 16: 13, 19: 16}


def _small(name: str, size: int) -> tuple[VGGFace, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(name, width=0.25, input_size=size)
    x = torch.randn(2, 3, size, size)
    return model, x


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


# --- every registered network --------------------------------------------------------------


def test_list_models_names_the_six_vggs_sorted() -> None:
    names = list_models()
    assert [n for n in names if n.startswith("vgg")] == ALL_MODELS and names == sorted(names)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ALL_MODELS)
def test_embedding_is_512d_and_target_map_is_14x14(name: str, size: int) -> None:
    model, x = _small(name, size)
    emb, feat = model.forward_with_features(x)
    assert emb.shape == (2, 512)
    assert feat.shape == (2, model.num_channels, 14, 14)
    assert model(x).shape == (2, 512)
    assert model.target_size == (14, 14) and model.embedding_dim == 512


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ALL_MODELS)
def test_feature_capture_of_target_layer_equals_forward_features(name: str, size: int) -> None:
    model, x = _small(name, size)
    model.eval()
    with torch.no_grad():
        with FeatureCapture(model, model.target_layer) as cap:
            model(x)
        direct = model.forward_features(x)
    assert torch.equal(cap.output, direct)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ALL_MODELS)
def test_gradients_from_embedding_reach_first_conv(name: str, size: int) -> None:
    model, x = _small(name, size)
    model.train()
    emb = model(x)
    (emb * torch.randn_like(emb)).sum().backward()
    grad = model.features.conv1_1.weight.grad
    assert grad is not None
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


# --- architecture as data ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [13, 16, 19])
def test_conv_count_matches_configuration(depth: int) -> None:
    model = VGGFace(depth=depth, width=0.125, input_size=112)
    assert _count(model, nn.Conv2d) == CONVS_PER_DEPTH[depth]


@pytest.mark.parametrize("depth", [13, 16, 19])
def test_batch_norm_variant_has_one_batchnorm_per_conv(depth: int) -> None:
    model = VGGFace(depth=depth, batch_norm=True, width=0.125, input_size=112)
    assert _count(model, nn.BatchNorm2d) == CONVS_PER_DEPTH[depth]
    assert _count(VGGFace(depth=depth, width=0.125, input_size=112), nn.BatchNorm2d) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_full_width_block_channels_are_64_to_512(name: str) -> None:
    model = create_model(name, width=1.0, input_size=224)
    last_conv_per_block = {}
    for n, m in model.features.named_children():
        if isinstance(m, nn.Conv2d):
            last_conv_per_block[int(n[4:].split("_")[0])] = m.out_channels
    assert [last_conv_per_block[b] for b in range(1, 6)] == [64, 128, 256, 512, 512]
    assert model.num_channels == 512


def test_full_width_vgg16_conv_params_match_the_reference_count() -> None:
    # 14,714,688 = parameters of the standard VGG16 convolutional trunk (torchvision's vgg16.features).
    model = create_model("vgg16", width=1.0, input_size=224)
    assert sum(p.numel() for p in model.features.parameters()) == 14_714_688


def test_width_scales_channels_with_a_floor_of_8() -> None:
    assert create_model("vgg16", width=0.25).num_channels == 128
    assert create_model("vgg16", width=0.01, input_size=112).features.conv1_1.out_channels == 8


def test_layers_have_readable_names_and_features_end_at_target_relu() -> None:
    model = create_model("vgg16_bn", width=0.125)
    names = [n for n, _ in model.features.named_children()]
    assert names[:4] == ["conv1_1", "bn1_1", "relu1_1", "conv1_2"]
    assert "pool4" in names and "pool5" not in names
    assert names[-1] == "relu5_3" and model.target_layer == "features.relu5_3"
    assert isinstance(model.get_submodule(model.target_layer), nn.ReLU)


def test_relus_are_not_inplace() -> None:
    model = create_model("vgg19_bn", width=0.125)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(m.inplace for m in relus)


def test_input_112_drops_the_pool_after_block_4_by_default() -> None:
    names = [n for n, _ in create_model("vgg13", width=0.125, input_size=112).features.named_children()]
    assert [n for n in names if n.startswith("pool")] == ["pool1", "pool2", "pool3"]


def test_drop_pool_chooses_which_pool_is_removed() -> None:
    model = create_model("vgg13", width=0.125, input_size=112, drop_pool=2)
    names = [n for n, _ in model.features.named_children()]
    assert [n for n in names if n.startswith("pool")] == ["pool1", "pool3", "pool4"]
    assert model.dropped_pools == (2,)
    assert model.forward_features(torch.randn(1, 3, 112, 112)).shape[-2:] == (14, 14)


def test_smaller_inputs_drop_pools_backwards_from_drop_pool() -> None:
    model = create_model("vgg13", width=0.125, input_size=56)
    assert model.dropped_pools == (4, 3)
    assert model.forward_features(torch.randn(1, 3, 56, 56)).shape[-2:] == (14, 14)


@pytest.mark.parametrize("size", [100, 120, 448])
def test_input_size_without_a_14x14_target_map_raises(size: int) -> None:
    with pytest.raises(ValueError, match="input_size"):
        create_model("vgg16", width=0.125, input_size=size)


def test_too_many_pools_to_drop_before_drop_pool_raises() -> None:
    with pytest.raises(ValueError, match="drop_pool"):
        create_model("vgg16", width=0.125, input_size=56, drop_pool=1)


def test_unknown_depth_raises() -> None:
    with pytest.raises(ValueError, match="depth"):
        VGGFace(depth=11)


def test_in_chans_sets_the_first_conv_input() -> None:
    model = create_model("vgg13", width=0.125, input_size=112, in_chans=1)
    assert model(torch.randn(2, 1, 112, 112)).shape == (2, 512)


# --- registry -----------------------------------------------------------------------------------


def test_create_model_unknown_name_lists_available_names() -> None:
    with pytest.raises(ValueError, match="vgg16_bn"):
        create_model("resnet50")


def test_register_model_rejects_a_duplicate_name() -> None:
    def vgg16() -> nn.Module:
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(vgg16)


def test_describe_model_reports_params_target_and_shapes() -> None:
    d = describe_model("vgg16_bn", width=0.25, input_size=112)
    model = create_model("vgg16_bn", width=0.25, input_size=112)
    assert d == {
        "name": "vgg16_bn",
        "params": sum(p.numel() for p in model.parameters()),
        "target_layer": "features.relu5_3",
        "target_layers": ["features.relu5_3"],
        "target_shape": (128, 14, 14),
        "embedding_dim": 512,
    }


def test_the_inference_copy_folds_batchnorm_exactly_and_leaves_the_given_network_alone():
    """for_inference: BatchNorm folded into the convolutions (checked in float64 against the eval-mode network with
    trained-looking statistics), channels-last, target layer still found, and the original module untouched."""
    import torch
    from torch import nn

    from explainface.models import create_model
    from explainface.models.modes import for_inference

    torch.manual_seed(0)
    net = create_model("vgg16_bn", width=0.125, input_size=56, embedding_dim=16).double()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # statistics and affine terms far from the identity
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.2, 3), m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    net.train()
    x = torch.randn(3, 3, 56, 56, dtype=torch.float64)
    fast = for_inference(net)
    assert net.training and any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the given one untouched
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert dict(fast.named_modules()).keys() == dict(net.named_modules()).keys()  # layer names kept
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(fast.forward_features(x), net.forward_features(x), rtol=1e-10, atol=1e-10)
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
