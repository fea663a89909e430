"""insightface's iresnet backbones (issue 16): their layout and names, the 14x14 target layer after layer3, and
the trainer with ECLoss, Yin and xCos on a slim iresnet18."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explainface.losses import ECLoss
from explainface.losses.xcos import XCosLoss
from explainface.losses.yin import target_conv
from explainface.models import (
    FeatureCapture,
    IResNetFace,
    create_head,
    create_model,
    describe_model,
    identity_loss,
    list_models,
)
from explainface.models.iresnet import StridedConv1x1

IRESNETS = {"iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3), "iresnet50": (3, 4, 14, 3),
            "iresnet100": (3, 13, 30, 3)}  # fmt: skip
SLIM = 0.0625


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these networks are tiny, and two threads on a busy 2-core machine wait on each other
    (measured: 100x slower training steps)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- their layout, derived from arcface_torch's backbones/iresnet.py (IResNet.__init__, _make_layer) -------------


def _their_shapes(layers, chans=(64, 128, 256, 512), num_features=512, fc_scale=7 * 7) -> dict[str, tuple]:
    """Their state_dict (name -> shape). Every stage has stride 2, so their rule `stride != 1 or inplanes !=
    planes` gives each stage's first block a downsample (conv1x1 + BN); stem and first stage have chans[0]."""
    shapes: dict[str, tuple] = {}

    def bn(name: str, c: int) -> None:
        for t in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{t}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (chans[0], 3, 3, 3)
    bn("bn1", chans[0])
    shapes["prelu.weight"] = (chans[0],)
    inplanes = chans[0]
    for i, (planes, blocks) in enumerate(zip(chans, layers), start=1):
        for b in range(blocks):
            p = f"layer{i}.{b}"
            bn(f"{p}.bn1", inplanes)
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.prelu.weight"] = (planes,)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn3", planes)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes)
            inplanes = planes
    bn("bn2", inplanes)
    shapes["fc.weight"] = (num_features, inplanes * fc_scale)
    shapes["fc.bias"] = (num_features,)
    bn("features", num_features)
    return shapes


def _their_param_count(shapes: dict[str, tuple]) -> int:
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(math.prod(s) for k, s in shapes.items() if not k.endswith(buffers))


def _their_random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(s, generator=g) + 0.5
        elif k.endswith(("bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight", "features.weight")):
            sd[k] = torch.rand(s, generator=g) + 0.5
        else:
            sd[k] = 0.1 * torch.randn(s, generator=g)
    return sd


def _their_forward(sd: dict[str, torch.Tensor], layers, x: torch.Tensor) -> torch.Tensor:
    """Their IResNet.forward in eval mode, written with torch.nn.functional on their state_dict names."""

    def bn(t: torch.Tensor, n: str) -> torch.Tensor:
        return F.batch_norm(t, sd[f"{n}.running_mean"], sd[f"{n}.running_var"], sd[f"{n}.weight"], sd[f"{n}.bias"],
                            False, 0.0, 1e-5)  # fmt: skip

    x = F.prelu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), "bn1"), sd["prelu.weight"])
    for i, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p, stride = f"layer{i}.{b}", 2 if b == 0 else 1
            out = bn(F.conv2d(bn(x, f"{p}.bn1"), sd[f"{p}.conv1.weight"], padding=1), f"{p}.bn2")
            out = F.prelu(out, sd[f"{p}.prelu.weight"])
            out = bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn3")
            short = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1") if b == 0 else x
            x = out + short
    x = torch.flatten(bn(x, "bn2"), 1)
    return bn(F.linear(x, sd["fc.weight"], sd["fc.bias"]), "features")


# --- registry, shapes ------------------------------------------------------------------------------------------


def test_the_four_iresnets_are_registered_and_listed_sorted():
    names = list_models()
    assert set(IRESNETS) <= set(names) and names == sorted(names)
    for name, layers in IRESNETS.items():
        model = create_model(name, width=SLIM, input_size=112)
        assert isinstance(model, IResNetFace) and model.layers == layers
        assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == list(layers)


@pytest.mark.slow
@pytest.mark.parametrize("size", [112, 224])
@pytest.mark.parametrize("name", list(IRESNETS))
def test_embedding_is_512d_and_the_target_map_is_14x14(name, size):
    # iresnet18 computes; the deeper ones run on the meta device (shapes only: a first CPU pass costs seconds)
    torch.manual_seed(0)
    device = "cpu" if name == "iresnet18" else "meta"
    with torch.device(device):
        model = create_model(name, width=SLIM, input_size=size).eval()
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            emb, feat = model.forward_with_features(x)
            if device == "cpu":
                assert torch.equal(model(x), emb)
    assert emb.shape == (2, 512) and model.embedding_dim == 512
    assert feat.shape == (2, model.num_channels, 14, 14) and model.target_size == (14, 14)
    assert model.num_channels == max(8, round(256 * SLIM))


def test_the_strides_reach_14x14_at_layer3_and_7x7_at_layer4():
    for size, strides in {224: (2, 2, 2, 2, 2), 112: (1, 2, 2, 2, 2), 56: (1, 2, 2, 1, 2), 28: (1, 2, 1, 1, 2)}.items():
        model = create_model("iresnet18", width=SLIM, input_size=size).eval()
        assert model.strides == strides
        assert model.conv1.stride == (strides[0],) * 2
        assert [getattr(model, f"layer{i}")[0].conv2.stride[0] for i in range(1, 5)] == list(strides[1:])
        with torch.no_grad():
            assert model.layer4(model.forward_features(torch.zeros(1, 3, size, size))).shape[-2:] == (7, 7)
    for size in (100, 120, 448):
        with pytest.raises(ValueError, match="input_size"):
            create_model("iresnet18", width=SLIM, input_size=size)
    with pytest.raises(ValueError, match="depth"):
        IResNetFace(depth=101)
    with pytest.raises(ValueError, match="target_act"):
        create_model("iresnet18", width=SLIM, target_act="prelu")


def test_width_multiplies_the_channels_with_a_floor_of_8():
    model = create_model("iresnet34", width=0.25, input_size=112)
    assert model.conv1.out_channels == 16
    assert [getattr(model, f"layer{i}")[-1].conv2.out_channels for i in range(1, 5)] == [16, 32, 64, 128]
    assert model.num_channels == 64 and model.fc.in_features == 128 * 7 * 7
    slim = create_model("iresnet18", width=SLIM, input_size=112)
    assert [getattr(slim, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)] == [8, 8, 16, 32]


# --- their names, shapes, parameter counts and function ----------------------------------------------------------


@pytest.mark.parametrize("name", list(IRESNETS))
def test_full_width_state_dict_has_their_names_and_shapes_at_112_and_224(name):
    expected = _their_shapes(IRESNETS[name])
    for size in (112, 224):
        with torch.device("meta"):
            sd = create_model(name, width=1.0, input_size=size, embedding_dim=512).state_dict()
        assert {k: tuple(v.shape) for k, v in sd.items()} == expected


@pytest.mark.parametrize("name", ["iresnet50", "iresnet100"])
def test_full_width_parameter_count_is_theirs(name):
    with torch.device("meta"):
        model = create_model(name, width=1.0, input_size=112, embedding_dim=512)
    ours = sum(p.numel() for p in model.parameters())
    assert ours == _their_param_count(_their_shapes(IRESNETS[name]))
    if name == "iresnet50":  # insightface's published size of r50 (512-d, 112 px): 43.6M
        assert round(ours / 1e6, 1) == 43.6
    assert not model.features.weight.requires_grad  # their fixed embedding BN scale


def test_their_checkpoint_loads_strictly_and_with_target_act_none_computes_their_network():
    layers, chans = IRESNETS["iresnet18"], (8, 16, 32, 64)
    theirs = _their_random_state(_their_shapes(layers, chans))
    exact = create_model("iresnet18", width=0.125, input_size=112, target_act="none")
    exact.load_state_dict(theirs, strict=True)
    ours = create_model("iresnet18", width=0.125, input_size=112)
    ours.load_state_dict(theirs, strict=True)
    for k, v in exact.state_dict().items():
        assert torch.equal(v, theirs[k]), k
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        expected = _their_forward({k: v.double() for k, v in theirs.items()}, layers, x)
        got = exact.double().eval()(x)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
        # the default puts a ReLU between layer3 and layer4: the same weights, another function
        assert not torch.allclose(ours.double().eval()(x), expected, rtol=1e-3, atol=1e-3)
        assert exact.forward_features(x).min() < 0 <= ours.forward_features(x).min()
    # a full-width r18 state_dict in their layout loads too
    full = create_model("iresnet18", width=1.0, input_size=112)
    full.load_state_dict(_their_random_state(_their_shapes(layers)), strict=True)


def test_the_strided_1x1_shortcut_is_the_strided_convolution():
    torch.manual_seed(0)
    ours = StridedConv1x1(8, 16, stride=2).double()
    ref = nn.Conv2d(8, 16, kernel_size=1, stride=2, bias=False).double()
    ref.weight.data.copy_(ours.weight.data)
    for size in (56, 57):
        x = torch.randn(2, 8, size, size, dtype=torch.float64, requires_grad=True)
        a, b = ours(x), ref(x)
        torch.testing.assert_close(a, b)
        ga = torch.autograd.grad(a.square().sum(), (x, ours.weight))
        gb = torch.autograd.grad(b.square().sum(), (x, ref.weight))
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v)


# --- the target layer ---------------------------------------------------------------------------------------------


def test_the_target_is_a_non_negative_relu_after_layer3_that_the_head_continues_from():
    torch.manual_seed(0)
    model = create_model("iresnet18", width=SLIM, input_size=112).eval()
    assert model.target_layer == "act3" and isinstance(model.get_submodule("act3"), nn.ReLU)
    assert not model.act3.inplace
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        with FeatureCapture(model, model.target_layer) as cap:
            emb = model(x)
        maps = model.forward_features(x)
        layer3 = model.layer3(model.layer2(model.layer1(model.prelu(model.bn1(model.conv1(x))))))
        assert torch.equal(cap.output, maps) and torch.equal(maps, layer3.clamp_min(0))
        assert (maps >= 0).all() and (layer3 < 0).any() and (maps > 0).any()
        assert torch.equal(model.forward_head(maps), emb)
    # Yin's filter term reads the conv whose output the last block adds to the target's stream
    assert target_conv(model) is model.layer3[-1].conv2


def test_describe_model_reports_the_target_and_shapes():
    d = describe_model("iresnet18", width=0.25, input_size=112)
    model = create_model("iresnet18", width=0.25, input_size=112)
    assert d == {"name": "iresnet18", "params": sum(p.numel() for p in model.parameters()), "target_layer": "act3",
                 "target_layers": ["act3"], "target_shape": (64, 14, 14), "embedding_dim": 512}  # fmt: skip
    # `explainface models` lists them: tests/test_cli.py::test_models_lists_every_network_with_a_14x14_target


def test_xcos_builds_its_head_on_the_target_maps_and_pools_them_to_7x7():
    model = create_model("iresnet18", width=SLIM, input_size=112)
    reg = XCosLoss(reference=None)
    reg.setup(model)
    head = reg.pair_heads()["xcos"]
    assert head.in_channels == model.num_channels
    with torch.no_grad():
        assert head.features(model.eval().forward_features(torch.zeros(2, 3, 112, 112))).shape[-2:] == (7, 7)


# --- training -------------------------------------------------------------------------------------------------------


def test_sgd_steps_on_identity_loss_plus_ecloss_lower_both():
    torch.manual_seed(0)
    model = create_model("iresnet18", width=SLIM, input_size=56, embedding_dim=32)
    head = create_head("softmax", 32, 4)
    x, y = torch.randn(8, 3, 56, 56), torch.arange(8) % 4
    ecloss = ECLoss(normalize="max")
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    totals, eclosses = [], []
    for _ in range(5):
        opt.zero_grad()
        emb, maps = model.forward_with_features(x)
        ec = ecloss(maps)
        loss = identity_loss(head, emb, y) + ec
        totals.append(float(loss.detach()))
        eclosses.append(float(ec.detach()))
        loss.backward()
        opt.step()
    assert all(math.isfinite(v) for v in totals)
    assert totals[-1] < totals[0] and eclosses[-1] < eclosses[0]


def test_the_trainer_runs_ecloss_yin_and_xcos_on_a_slim_iresnet18(tmp_path):
    from explainface.training.checkpoint import load_model
    from explainface.training.config import load_config
    from explainface.training.trainer import Trainer, read_metrics

    tiny = ["model.name=iresnet18", f"model.width={SLIM}", "model.input_size=56", "data.identities=8",
            "data.per_identity=4", "data.workers=0", "optim.batch_size=8", "optim.warmup_steps=1",
            "optim.max_steps=3", "run.log_every=1", "run.deterministic=true", "run.checkpoint_every=1000",
            "run.threads=1",
            "regularizers=[{name: ecloss, beta: auto}, {name: yin, beta: 1.0, filter_diversity: 50.0}, "
            "{name: xcos, reference: null, beta: 1.0}]"]  # fmt: skip
    trainer = Trainer(load_config(None, tiny), tmp_path / "run", progress=False)
    assert trainer.with_landmarks
    summary = trainer.train()
    assert summary["steps"] == 3
    m = read_metrics(tmp_path / "run")
    for col in ("loss", "id_loss", "reg_loss", "ecloss.loss", "ecloss.mi", "yin.sad", "yin.fad", "yin.ce_occluded",
                "xcos.mse", "xcos.xcos_mean"):  # fmt: skip
        assert len(m[col]) == 3 and all(math.isfinite(v) for v in m[col]), col
    assert m["ecloss.beta"][-1] != m["ecloss.beta"][0]  # auto beta saw the ECLoss gradient at act3
    # the checkpoint rebuilds the network by name, with its xCos head
    loaded = load_model(trainer.ckpt_path)
    assert loaded.layer == "act3" and "xcos" in loaded.pair_heads and loaded.input_size == 56
    net = trainer.module.model.eval()
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net(x.contiguous(memory_format=torch.channels_last)))
