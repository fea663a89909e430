"""Faithfulness of part explanations: deletion curves per order of the parts, their scores, the end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tests.checkpoints import tiny_checkpoint
from tests.reference_faithfulness import (
    loop_channel_cosine,
    loop_deletion_curve,
    mean_drop,
)

from explainface.explanations import faithfulness as fm
from explainface.explanations.faithfulness import (
    CURVE_GRID,
    deletion_curves,
    deletion_score,
    evaluate_pair,
    normalized_curve,
    random_order,
    rank_agreement,
    ranked,
)
from explainface.explanations.why import PARTS, ReferenceMaps, channel_contributions
from explainface.models import create_model
from explainface.parts.labels import PART_NAMES


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("vgg13", width=0.125, input_size=56, embedding_dim=32).eval().double()


def _faces(identity: int, ks=(0, 1)):
    from explainface.inputs import to_tensor
    from explainface.synthetic.generator import SyntheticFaces

    gen = SyntheticFaces(0, "easy")
    samples = [gen.sample(identity, k, 56) for k in ks]
    images = torch.stack([to_tensor(s.image) for s in samples]).double()
    labels = torch.from_numpy(np.stack([s.parts for s in samples]).astype(np.int64))
    return images, labels


@pytest.fixture(scope="module")
def pair():
    return _faces(5)


@pytest.fixture(scope="module")
def reference(net):
    return ReferenceMaps.of(net, [_faces(20, (0, 1, 2))[0], _faces(21, (0, 1, 2))[0]])


def _channel_parts(n: int, without: tuple[str, ...] = ()) -> dict[int, str | None]:
    """Channel c -> part c % 9 (2 in 9 channels assigned to none), parts in `without` getting no channel."""
    out = {}
    for c in range(n):
        p = PARTS[c % 9] if c % 9 < len(PARTS) else None
        out[c] = None if p in without else p
    return out


def _counting(counter: dict, name: str, fn):
    def wrapped(*a, **k):
        counter[name] += 1
        return fn(*a, **k)

    return wrapped


ORDERS = {"forward": list(PARTS), "backward": list(PARTS[::-1]), "mixed": random_order(3, 4)}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["channels", "occlusion"])
def test_deletion_curves_match_a_per_variant_float64_loop_and_skip_parts_the_mode_cannot_remove(
    net, pair, reference, mode
):
    images, labels = pair
    labels = labels.clone()
    labels[labels == PART_NAMES.index("hair")] = 0  # no hair pixels in either face: occlusion skips hair
    cp = _channel_parts(reference.mean.shape[0], without=("jaw",))  # no jaw channel: channels mode skips jaw
    curves = deletion_curves(net, images, labels, reference, cp, ORDERS, mode)
    assert set(curves) == set(ORDERS)
    skipped = "jaw" if mode == "channels" else "hair"
    for name, order in ORDERS.items():
        want = loop_deletion_curve(net, images, labels, reference, cp, order, mode)
        assert len(curves[name]) == len(PARTS) == len(want), name  # 6 usable parts -> k = 0..6
        np.testing.assert_allclose(curves[name], want, atol=1e-10, err_msg=f"{mode} {name}")
    # skipping the part changes nothing else: the same curve as the order without it
    for name, order in ORDERS.items():
        without = deletion_curves(net, images, labels, reference, cp, {"x": [p for p in order if p != skipped]}, mode)
        np.testing.assert_allclose(curves[name], without["x"], atol=1e-12)
    first, last = (np.array([c[i] for c in curves.values()]) for i in (0, -1))
    assert np.ptp(first) < 1e-12 and np.ptp(last) < 1e-12  # every order starts and ends at the same points


def test_k0_is_the_plain_cosine_and_removing_all_parts_leaves_all_assigned_channels_at_the_reference_mean(
    net, pair, reference
):
    images, labels = pair
    c = reference.mean.shape[0]
    cp = _channel_parts(c)
    with torch.no_grad():
        views = torch.stack([images[0], images[0].flip(-1), images[1], images[1].flip(-1)])
        e = net(views)
    a, b = e[0] + e[1], e[2] + e[3]
    plain = float(a @ b / (a.norm() * b.norm()))
    curves = deletion_curves(net, images, labels, reference, cp, ORDERS, "channels")
    assigned = [ch for ch, p in cp.items() if p is not None]
    assert len(assigned) < c
    last = loop_channel_cosine(net, images, reference, assigned)
    assert abs(last - plain) > 1e-3  # the test can tell the two apart
    for curve in curves.values():
        assert curve[0] == pytest.approx(plain, abs=1e-12)
        assert curve[0] == pytest.approx(channel_contributions(net, images, reference, cp)[0], abs=1e-12)
        assert curve[-1] == pytest.approx(last, abs=1e-10)
    every = {ch: PARTS[ch % len(PARTS)] for ch in range(c)}  # every channel assigned: both faces = the mean
    full = deletion_curves(net, images, labels, reference, every, ORDERS, "channels")
    assert all(curve[-1] == pytest.approx(1.0, abs=1e-10) for curve in full.values())


@pytest.mark.slow
def test_all_orders_of_a_pair_take_one_batched_call_per_mode(net, pair, reference, monkeypatch):
    images, labels = pair
    cp = _channel_parts(reference.mean.shape[0])
    calls = {"head": 0, "features": 0, "forward": 0}
    monkeypatch.setattr(net, "forward_head", _counting(calls, "head", net.forward_head))
    monkeypatch.setattr(net, "forward_features", _counting(calls, "features", net.forward_features))
    deletion_curves(net, images, labels, reference, cp, ORDERS, "channels")
    assert calls == {"head": 1, "features": 1, "forward": 0}
    monkeypatch.setattr(type(net), "forward", _counting(calls, "forward", type(net).forward))
    calls.update(head=0, features=0, forward=0)
    deletion_curves(net, images, labels, reference, cp, ORDERS, "occlusion")
    assert calls["forward"] == 1

    # and evaluate_pair: one deletion call per mode for all its orders
    monkeypatch.undo()
    used = {"channel_variants": 0, "occlusion_variants": 0}
    for name in used:
        monkeypatch.setattr(fm, name, _counting(used, name, getattr(fm, name)))
    rec = evaluate_pair(net, images, labels, reference, cp, seed=0, pair_index=0)
    assert used == {"channel_variants": 1, "occlusion_variants": 1}
    assert set(rec["orders"]) == {"channels", "occlusion", "random", "gradcam", "gradient"}
    for mode in ("channels", "occlusion"):
        for o, curve in rec["curves"][mode].items():
            assert rec["scores"][mode][o] == pytest.approx(mean_drop(curve), abs=1e-12)


def test_the_random_order_is_seeded_per_pair():
    assert random_order(0, 3) == random_order(0, 3)
    assert sorted(random_order(0, 3)) == sorted(PARTS)
    assert random_order(0, 3) != random_order(0, 4)
    assert random_order(0, 3) != random_order(1, 3)
    assert random_order(5, 2) == [PARTS[i] for i in np.random.default_rng([5, 2]).permutation(len(PARTS))]


def test_contribution_orders_are_descending_with_unrankable_parts_last():
    values = {"hair": 0.1, "forehead": None, "cheek": -0.2, "eyes": 0.3, "nose": 0.1, "mouth": math.nan, "jaw": 0.0}
    assert ranked(values) == ["eyes", "hair", "nose", "jaw", "cheek", "forehead", "mouth"]


@pytest.mark.slow
def test_the_orders_are_the_attribution_registrys_part_scores_descending(net, pair, reference):
    from explainface.explanations.attributions import PairContext, attribute

    images, labels = pair
    parts = _channel_parts(reference.mean.shape[0])
    rec = evaluate_pair(net, images, labels, reference, parts, seed=2, pair_index=5, layer=net.target_layer)
    ctx = PairContext(net, channel_parts=parts, reference=reference, layer=net.target_layer, seed=2)
    assert set(rec["orders"]) == {"channels", "occlusion", "gradcam", "gradient", "random"}  # no xCos head here
    for m in ("channels", "occlusion", "gradcam", "gradient"):
        assert rec["orders"][m] == ranked(attribute(m, ctx, images, labels, index=5).parts), m
    assert rec["orders"]["random"] == random_order(2, 5)
    assert rec["contributions"]["occlusion"] == attribute("occlusion", ctx, images, labels).parts


def _bilinear(grid: np.ndarray, size: int) -> np.ndarray:
    """Slow bilinear upsampling (align_corners=False, edges clamped), float64."""
    h, w = grid.shape
    out = np.zeros((size, size))
    for y in range(size):
        for x in range(size):
            sy = min(max((y + 0.5) * h / size - 0.5, 0.0), h - 1)
            sx = min(max((x + 0.5) * w / size - 0.5, 0.0), w - 1)
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = sy - y0, sx - x0
            top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
            bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bottom * fy
    return out


def test_the_xcos_attribution_is_its_patch_cosine_times_attention_map_over_each_part(net, pair):
    from explainface.evaluate.scoring import create_scorer
    from explainface.explanations.attributions import PairContext, attribute
    from explainface.models.base import LoadedModel
    from explainface.models.xcos import XCosHead

    images, labels = pair
    torch.manual_seed(1)
    head = XCosHead(in_channels=net.forward_features(images[:1]).shape[1], channels=8).double().eval()
    loaded = LoadedModel(net, 56, net.target_layer, "tiny", pair_heads={"xcos": head})
    scorer = create_scorer("xcos", loaded)
    f = scorer.grids(images)  # the flip-averaged grids, in the head's dtype
    ex = scorer.explain(f[[0]], f[[1]])
    grid = ex["cosine"][0] * ex["attention"][0]
    a = attribute("xcos", PairContext(net, xcos_scorer=scorer), images, labels)
    assert a.cosine == pytest.approx(grid.sum(), abs=1e-12)
    up = _bilinear(grid, 56)
    np.testing.assert_allclose(a.maps[0], up, atol=1e-12)
    np.testing.assert_allclose(a.maps[1], up, atol=1e-12)
    lab = labels.numpy()
    for p in PARTS:
        sel = lab == PART_NAMES.index(p)
        want = None if not sel.any() else np.concatenate([up[sel[0]], up[sel[1]]]).mean()
        assert (a.parts[p] is None) if want is None else a.parts[p] == pytest.approx(want, abs=1e-12), p


def test_deletion_score_normalised_curve_and_rank_agreement_definitions():
    curve = [0.8, 0.5, 0.6, 0.2]
    assert deletion_score(curve) == pytest.approx((0.3 + 0.2 + 0.6) / 3)
    assert math.isnan(deletion_score([0.8]))
    y = normalized_curve(curve)
    assert len(y) == len(CURVE_GRID) and y[0] == 0 and y[-1] == pytest.approx(0.6)
    np.testing.assert_allclose(normalized_curve(curve, np.array([0, 1 / 3, 0.5, 1])), [0, 0.3, 0.25, 0.6])
    a = {"hair": 0.1, "cheek": 0.2, "eyes": 0.3, "nose": 0.4, "jaw": None}
    b = {"hair": 0.3, "cheek": 0.1, "eyes": 0.2, "nose": 0.5, "jaw": 0.9, "mouth": None}
    assert rank_agreement(a, b) == pytest.approx(0.4)  # ranks 1234 vs 3124: 1 - 6 * 6 / 60
    assert rank_agreement(a, a) == pytest.approx(1.0)
    assert math.isnan(rank_agreement({"hair": 0.1, "eyes": 0.2}, {"hair": 0.2, "eyes": 0.1}))
    assert math.isnan(rank_agreement({"hair": 0.1, "eyes": 0.1, "nose": 0.1}, a))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from explainface.synthetic.export import export_synthetic

    d = tmp_path_factory.mktemp("faces")
    with pytest.warns(UserWarning):
        export_synthetic(d, identities=0, per_identity=4, size=56, heldout_identities=4, progress=False)
    return d / "heldout"


def _xcos_checkpoint(path):
    from explainface.models.xcos import XCosHead
    from explainface.training.checkpoint import load_checkpoint, save_checkpoint

    plain = tiny_checkpoint(path.with_name("plain.safetensors"), input_size=56)
    tensors, state = load_checkpoint(plain)
    torch.manual_seed(2)
    head = XCosHead(in_channels=64, channels=8)
    state["pair_heads"] = {"xcos": {"options": head.options(), "prefix": "reg.0"}}
    tensors.update({f"reg.0.{k}": v for k, v in head.state_dict().items()})
    return save_checkpoint(path, tensors, state)


@pytest.mark.slow
def test_faithfulness_end_to_end_writes_json_and_png_and_skips_a_corrupt_face(exported, tmp_path):
    import cv2

    from explainface.explanations.faithfulness import faithfulness
    from explainface.readers.pairs import read_pairs
    from explainface.training.checkpoint import load_model

    ckpt = _xcos_checkpoint(tmp_path / "xcos.safetensors")
    loaded = load_model(ckpt)
    pairs_file = exported / "pairs.txt"
    plist = read_pairs(pairs_file)
    limit, seed = 10, 0
    drawn = sorted(np.random.default_rng(seed).choice(len(plist), size=limit, replace=False).tolist())
    bad = int(plist.a[drawn[0]])  # a face of a drawn pair
    bad_name = plist.images[bad].name
    plist.images[bad].path.write_bytes(b"\x00garbage, not an image" * 10)
    with_bad = [i for i in drawn if bad in (int(plist.a[i]), int(plist.b[i]))]

    from explainface.inputs import to_tensor
    from explainface.parts.samples import face_sample

    ok = [im.path for j, im in enumerate(plist.images) if j != bad][:6]
    ref = ReferenceMaps.of(loaded.model, [torch.stack([to_tensor(face_sample(p, 56).image) for p in ok])])
    cp = _channel_parts(ref.mean.shape[0])
    out = tmp_path / "out"
    result = faithfulness(ckpt, pairs_file, out, reference=ref, channel_parts=cp, limit=limit, seed=seed,
                          progress=False)  # fmt: skip

    text = (out / "faithfulness.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data == json.loads(json.dumps(result))
    assert data["orders"] == ["channels", "occlusion", "random", "gradcam", "gradient", "xcos"]
    assert data["pairs"]["total"] == len(plist) and data["pairs"]["drawn"] == limit
    assert data["pairs"]["skipped"] == len(with_bad) >= 1
    assert data["pairs"]["used"] == limit - len(with_bad)
    assert data["faces_skipped"] == 1 and list(data["skipped_faces"]) == [bad_name]
    assert sorted(int(i) for i in data["skipped_pairs"]) == with_bad
    assert all(bad_name in why for why in data["skipped_pairs"].values())
    used = [r["index"] for r in data["per_pair"]]
    assert sorted(used + with_bad) == drawn  # the documented seeded draw
    assert data["pairs"]["same"] >= 1 and data["pairs"]["different"] >= 1
    for mode in ("channels", "occlusion"):
        for o in data["orders"]:
            s = data["scores"][mode][o]
            assert math.isfinite(s["mean"]) and math.isfinite(s["se"]) and s["n"] == data["pairs"]["used"]
            for base in ("random", "gradcam"):
                if base != o:
                    assert math.isfinite(s[f"vs_{base}"]["diff"]) and s[f"vs_{base}"]["n"] == s["n"]
            curve = data["curves"][mode][o]
            assert len(curve["mean"]) == len(CURVE_GRID) and all(math.isfinite(v) for v in curve["mean"])
            assert curve["mean"][0] == 0.0
            per = [r["scores"][mode][o] for r in data["per_pair"]]
            assert s["mean"] == pytest.approx(np.mean(per), abs=1e-12)
    assert math.isfinite(data["rank_agreement"]["mean"]) and data["rank_agreement"]["n"] >= 1
    png = cv2.imread(str(out / "deletion_curves.png"))
    assert png is not None and png.shape[1] > png.shape[0] > 100
