"""dlib's face ResNet: the .dat reader/writer (pure Python), the PyTorch port's semantics against float64
references, and parity with dlib's own descriptor (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainface.inputs import to_tensor
from explainface.models import create_model
from explainface.models.dlib_resnet import DlibResNet, load_dlib_weights, padded_add, to_dlib_net
from explainface.readers.dlib_dnn import (
    DlibFormatError,
    DlibNet,
    anet_ops,
    parse_dlib_net,
    read_dlib_net,
    write_dlib_net,
)
from reference_dlib import padded_add as padded_add_ref
from reference_dlib import pool as pool_ref
from reference_dlib import run_net

#: A tiny network of the same structure: at 40 px the down-sampling blocks' conv gives 3x3 where the pooled
#: shortcut gives 4x4 (and 1x1 vs 2x2), with more channels than the shortcut: every zero-padding case.
TINY = ((2, False, 1), (3, True, 2), (4, True, 1))


def tiny_net(seed: int = 0, stages=TINY, stem: int = 2, embedding: int = 5) -> DlibNet:
    rng = np.random.default_rng(seed)
    ops = anet_ops(stages, stem, embedding)
    net = DlibNet(ops=ops, mean_rgb=(120.5, 110.25, 100.125), input_size=(40, 40), margin=-0.5, dist_thresh=1e-9)
    channels = 3
    for i, op in enumerate(ops):
        if op.kind == "con":
            c = op.args[0]
            net.params[i] = {"weight": rng.normal(0, 0.3, (c, channels, op.args[1], op.args[2])).astype(np.float32),
                             "bias": rng.normal(0, 0.1, c).astype(np.float32)}  # fmt: skip
            channels = c
        elif op.kind == "affine":
            net.params[i] = {"gamma": rng.uniform(0.5, 1.5, channels).astype(np.float32),
                             "beta": rng.normal(0, 0.1, channels).astype(np.float32)}  # fmt: skip
        elif op.kind == "fc":
            net.params[i] = {"weight": rng.normal(0, 0.3, (channels, op.args[0])).astype(np.float32)}
        elif op.kind == "tag" and op.args[0] == 1:
            tag1 = channels
        elif op.kind == "skip":
            channels = tag1
        elif op.kind == "add_prev" and op.args[0] == 2:
            channels = max(channels, [o for o in ops[:i] if o.kind == "con"][-1].args[0])
    return net


def tiny_model(net: DlibNet) -> DlibResNet:
    model = DlibResNet(target_layer="stage2", stages=TINY, stem=2, embedding_dim=5)
    return load_dlib_weights(model, net).eval()


@pytest.mark.parametrize("layer_version", [1, 2])
def test_reader_reads_what_the_writer_wrote(layer_version):
    net = tiny_net()
    data = write_dlib_net(None, net, layer_version=layer_version)
    back = parse_dlib_net(data, net.ops, name="tiny.dat")
    assert sorted(back.params) == sorted(net.params)
    for i, arrays in net.params.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(back.params[i][key], value)
    assert back.mean_rgb == tuple(float(np.float32(m)) for m in net.mean_rgb)
    assert back.input_size == (40, 40)
    assert (back.margin, back.dist_thresh) == (float(np.float32(-0.5)), float(np.float32(1e-9)))
    layers = {v for i, v in back.versions.items() if i and net.ops[i].kind not in ("tag", "skip")}
    assert layers == {layer_version} and back.versions[0] == 3
    assert write_dlib_net(None, back) == data  # stored as read: the same bytes again


def test_reader_refuses_another_architecture_and_names_the_file():
    data = write_dlib_net(None, tiny_net())
    other = anet_ops(((2, False, 2), (3, True, 2), (4, True, 1)), 2, 5)  # one block more
    with pytest.raises(DlibFormatError, match="tiny.dat"):
        parse_dlib_net(data, other, name="tiny.dat")
    wider = anet_ops(((2, False, 1), (3, True, 2), (6, True, 1)), 2, 5)
    with pytest.raises(DlibFormatError, match=r"tiny.dat: .*filters, size, stride, padding"):
        parse_dlib_net(data, wider, name="tiny.dat")


@pytest.mark.parametrize("cut", [0, 1, 50, -1000, -1])
def test_reader_refuses_a_truncated_file(tmp_path, cut):
    data = write_dlib_net(None, tiny_net())
    path = tmp_path / "cut.dat"
    path.write_bytes(data[:cut])
    with pytest.raises(DlibFormatError, match="cut.dat: (truncated|not a dlib network)"):
        read_dlib_net(path, tiny_net().ops)


def test_reader_refuses_trailing_bytes_and_size_zero_integers():
    net = tiny_net()
    data = write_dlib_net(None, net)
    with pytest.raises(DlibFormatError, match="bytes after the network"):
        parse_dlib_net(data + b"\x00", net.ops)
    with pytest.raises(DlibFormatError, match="control byte 0x00"):  # dlib writes 0 as 01 00, never 00
        parse_dlib_net(b"\x00" + data[2:], net.ops)


def test_padded_add_against_float64_reference():
    rng = np.random.default_rng(1)
    for sa, sb in [((3, 4, 4), (3, 4, 4)), ((3, 3, 3), (2, 4, 4)), ((4, 1, 1), (4, 2, 2)), ((2, 5, 3), (3, 2, 4))]:
        a, b = rng.normal(size=sa), rng.normal(size=sb)
        got = padded_add(torch.from_numpy(a)[None], torch.from_numpy(b)[None])[0].numpy()
        np.testing.assert_allclose(got, padded_add_ref(a, b), rtol=0, atol=1e-12)


def test_pools_without_padding_against_float64_reference():
    rng = np.random.default_rng(2)
    for size in (35, 17, 8, 4, 72):
        x = rng.normal(size=(3, size, size))
        t = torch.from_numpy(x)[None]
        np.testing.assert_allclose(torch.nn.functional.max_pool2d(t, 3, 2)[0].numpy(), pool_ref(x, 3, 2, np.max),
                                   atol=1e-12)  # fmt: skip
        np.testing.assert_allclose(torch.nn.functional.avg_pool2d(t, 2, 2)[0].numpy(), pool_ref(x, 2, 2, np.mean),
                                   atol=1e-12)  # fmt: skip


def test_network_matches_the_float64_interpreter_of_the_file():
    """The PyTorch module against a loop interpreter of the op list (tags, skips, zero-padding adds) in
    float64, on a tiny network read back from its file."""
    net = parse_dlib_net(write_dlib_net(None, tiny_net(3)), tiny_net(3).ops)
    model = tiny_model(net).double()
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, size=(2, 40, 40, 3), dtype=np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(pixels.astype(np.float64) / 127.5 - 1.0).permute(0, 3, 1, 2)  # to_tensor in float64
        ours = model(x).numpy()
    ref = np.stack([run_net(net, p) for p in pixels])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    feat = model.forward_features(to_tensor(pixels[0])[None].double())
    assert tuple(feat.shape) == (1, 3, 4, 4) and float(feat.min()) >= 0  # stage2: after the block's ReLU


def test_to_dlib_net_round_trips_the_weights():
    net = tiny_net(5)
    model = tiny_model(net)
    back = to_dlib_net(model, TINY, stem=2)
    for i, arrays in net.params.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(back.params[i][key], value)


# ---- the pretrained network ----------------------------------------------------------------------------------------


def _weights():
    try:
        from explainface.faces.detect import face_recognition_model_path

        return face_recognition_model_path("dlib_face_recognition_resnet_model_v1.dat")
    except (ImportError, FileNotFoundError) as e:
        pytest.skip(f"dlib's pretrained network is not installed ({e})")


def test_pretrained_file_reads_and_writes_back_byte_identical():
    path = _weights()
    net = read_dlib_net(path)
    assert sum(a.size for p in net.params.values() for a in p.values()) == 5_614_592
    assert net.input_size == (150, 150) and abs(net.dist_thresh - 0.6) < 1e-6
    assert write_dlib_net(None, net) == path.read_bytes()


def test_create_model_shapes_and_target_layers():
    _weights()
    model = create_model("dlib_resnet").eval()
    x = torch.zeros(1, 3, 150, 150)
    shapes = {}
    for name in model.stage_names:
        m = create_model("dlib_resnet", weights=None, target_layer=name).eval()
        with torch.no_grad():
            shapes[name] = tuple(m.forward_features(x).shape[1:])
    assert shapes == {"stage1": (32, 35, 35), "stage2": (64, 17, 17), "stage3": (128, 8, 8), "stage4": (256, 4, 4),
                      "stage5": (256, 2, 2)}  # fmt: skip
    with torch.no_grad():
        assert tuple(model(x).shape) == (1, 128)
    with pytest.raises(ValueError, match="dlib_resnet is dlib's pretrained network"):
        create_model("dlib_resnet", input_size=112)
    with pytest.raises(ValueError, match="target layer must be one of"):
        create_model("dlib_resnet", weights=None, target_layer="layer3")


def _dlib_chips(n: int):
    dlib = pytest.importorskip("dlib", reason="dlib is not installed: the parity check needs its descriptor")
    from explainface.faces.detect import face_recognition_model_path as path
    from explainface.synthetic import SyntheticFaces

    fr = dlib.face_recognition_model_v1(str(path("dlib_face_recognition_resnet_model_v1.dat")))
    chips = [SyntheticFaces(seed=0).sample(i, 0, size=150).image for i in range(n)]
    return fr, np.stack(chips)


def test_parity_with_dlibs_own_descriptor():
    _weights()
    fr, chips = _dlib_chips(6)
    ref = np.array([np.array(fr.compute_face_descriptor(c)) for c in chips])
    with torch.no_grad():
        ours = create_model("dlib_resnet").eval()(torch.stack([to_tensor(c) for c in chips])).numpy()
    assert np.abs(ours - ref).max() <= 1e-4


def test_dlib_loads_a_fine_tuned_network_written_back(tmp_path):
    """A changed network written in dlib's format: dlib's own loader reads it and computes what ours does."""
    _weights()
    fr0, chips = _dlib_chips(3)
    dlib = pytest.importorskip("dlib")
    model = create_model("dlib_resnet").eval()
    with torch.no_grad():
        model.stage3[0].affine2.bias.add_(0.05)
        model.fc.weight.mul_(1.1)
    write_dlib_net(tmp_path / "tuned.dat", to_dlib_net(model))
    fr = dlib.face_recognition_model_v1(str(tmp_path / "tuned.dat"))
    ref = np.array([np.array(fr.compute_face_descriptor(c)) for c in chips])
    before = np.array([np.array(fr0.compute_face_descriptor(c)) for c in chips])
    with torch.no_grad():
        ours = model(torch.stack([to_tensor(c) for c in chips])).numpy()
    assert np.abs(ours - ref).max() <= 1e-4 and np.abs(before - ref).max() > 1e-3


def test_photos_are_cut_as_chips_for_dlib_resnet_and_it_loads_by_name(tmp_path, monkeypatch):
    from explainface.faces.crop import model_cut
    from explainface.training.checkpoint import load_model

    assert model_cut(create_model("dlib_resnet", weights=None)) == "chip"
    assert model_cut(create_model("vgg13", width=0.125, input_size=112)) == "detect"
    _weights()
    loaded = load_model("dlib_resnet")
    assert (loaded.input_size, loaded.layer) == (150, "stage2") and not loaded.model.training
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dlib_resnet").write_bytes(b"not a checkpoint")  # a file of that name is read as a checkpoint
    with pytest.raises(ValueError, match="dlib_resnet"):
        load_model("dlib_resnet")
