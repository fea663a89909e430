"""Pair attributions (`explanations.attributions`): the registry, and each method against a slow reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explainface.explanations.attributions import PARTS, Attribution, PairContext, attribute, attribution_names
from explainface.explanations.attributions.base import face_embedding, part_scores
from explainface.explanations.attributions.channels import channel_scores
from explainface.explanations.attributions.gradient import argument_maps
from explainface.explanations.attributions.rise import correlation_map, rise_masks
from explainface.explanations.why import ReferenceMaps, channel_contributions, occlusion_contributions
from explainface.models import create_model
from explainface.parts.labels import PART_NAMES


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("vgg13", width=0.125, input_size=56, embedding_dim=32).eval().double()


def _pair(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 56, 56, generator=g, dtype=torch.float64) * 2 - 1


@pytest.fixture(scope="module")
def labels():
    from explainface.synthetic.generator import SyntheticFaces

    faces = SyntheticFaces(0, "easy")
    return torch.from_numpy(np.stack([faces.sample(5, k, 56).parts for k in (0, 1)]).astype(np.int64))


@pytest.fixture(scope="module")
def context(net):
    ref = ReferenceMaps.of(net, [_pair(7), _pair(8), _pair(9)], keep=5)
    channels = net.forward_features(_pair()).shape[1]
    parts = {c: PARTS[c % len(PARTS)] for c in range(channels)}
    return PairContext(net, channel_parts=parts, reference=ref, seed=3)


def _naive_cos(net, maps4):
    """Cosine of (A, A', B, B') target maps, each through the head on its own, float64."""
    e = [net.forward_head(m[None]).double()[0] for m in maps4]
    a, b = e[0] + e[1], e[2] + e[3]
    return float((a / a.norm()) @ (b / b.norm()))


def _maps4(net, x):
    return [net.forward_features(v[None])[0] for v in (x[0], x[0].flip(-1), x[1], x[1].flip(-1))]


# ---- the registry --------------------------------------------------------------------------------------------------


def test_every_method_is_registered_and_unknown_or_unavailable_methods_are_named(net, labels):
    assert {"channels", "occlusion", "gradcam", "gradient", "rise", "xcos", "random"} <= set(attribution_names())
    with pytest.raises(ValueError, match="unknown attribution method 'lime'; registered: channels"):
        attribute("lime", PairContext(net), _pair(), labels)
    with pytest.raises(ValueError, match="'channels' needs a channel dictionary"):
        attribute("channels", PairContext(net), _pair(), labels)
    with pytest.raises(ValueError, match="'xcos' needs an xCos checkpoint"):
        attribute("xcos", PairContext(net), _pair(), labels)
    with pytest.raises(ValueError, match=r"images \[2, 3, S, S\] with labels"):
        attribute("random", PairContext(net), _pair()[:1], labels)


def test_every_method_explains_the_protocol_cosine_and_scores_only_parts_it_can_see(context, labels):
    x = _pair()
    cos = float((lambda e: e[0] @ e[1])(face_embedding(context.model, x)))
    shown = {p for p in PARTS if bool((labels == PART_NAMES.index(p)).any())}
    for method in ("channels", "occlusion", "gradcam", "gradient", "rise", "random"):
        a = attribute(method, context, x, labels, index=4)
        assert a.method == method and a.cosine == pytest.approx(cos, abs=1e-12)
        if method != "channels":  # channels score the parts their dictionary names, shown or not
            assert {p for p, v in a.parts.items() if v is not None} <= shown
        if a.maps is not None:
            assert a.maps.shape == (2, 56, 56) and np.isfinite(a.maps).all()
            assert a.parts == part_scores(a.maps, labels)


def test_ranks_share_ties_and_skip_parts_without_a_score():
    a = Attribution("x", 0.5, {"eyes": 0.3, "nose": 0.3, "mouth": -0.1, "jaw": None})
    assert a.ranked() == ["eyes", "nose", "mouth"]
    assert a.rank_of("eyes") == 1.5 and a.rank_of("mouth") == 3 and np.isnan(a.rank_of("jaw"))
    assert a.rank_of("mouth", sign=-1) == 1


def test_part_scores_are_the_mean_or_sum_of_the_map_over_both_faces_part_pixels(labels):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, 56, 56))
    lab = labels.numpy()
    for pool in ("mean", "sum"):
        got = part_scores(maps, labels, pool)
        for p in PARTS:
            k = PART_NAMES.index(p)
            vals = [maps[f, i, j] for f in range(2) for i in range(56) for j in range(56) if lab[f, i, j] == k]
            if not vals:
                assert got[p] is None
            else:
                assert got[p] == pytest.approx(np.mean(vals) if pool == "mean" else np.sum(vals), rel=1e-12)
    with pytest.raises(ValueError, match="pool must be one of"):
        part_scores(maps, labels, "max")


# ---- channels and occlusion ----------------------------------------------------------------------------------------


def test_the_mean_baseline_is_the_old_channel_method_and_occlusion_both_is_the_old_occlusion(context, labels):
    x = _pair(2)
    cos, old = channel_contributions(context.model, x, context.reference, context.channel_parts)
    new = attribute("channels", context, x, labels, baseline="mean")
    assert new.cosine == pytest.approx(cos, abs=1e-12)
    assert all(new.parts[p] == pytest.approx(old[p], abs=1e-12) for p in PARTS if old[p] is not None)
    _, old = occlusion_contributions(context.model, x, labels)
    new = attribute("occlusion", context, x, labels, sides="both")
    assert {p: v is None for p, v in old.items()} == {p: v is None for p, v in new.parts.items()}
    assert all(new.parts[p] == pytest.approx(old[p], abs=1e-12) for p in PARTS if old[p] is not None)


def test_the_draws_baseline_matches_a_per_draw_loop_and_removing_every_channel_does_not_give_cosine_one(context):
    net, ref, x = context.model, context.reference, _pair(3)
    sets = [[0, 2], list(range(net.forward_features(x).shape[1]))]
    g = torch.Generator().manual_seed(11)
    cos, removed = channel_scores(net, x, ref, sets, "draws", draws=6, generator=g)
    g = torch.Generator().manual_seed(11)
    first = torch.randint(0, len(ref.bank), (6,), generator=g)
    second = (first + torch.randint(1, len(ref.bank), (6,), generator=g)) % len(ref.bank)
    maps = _maps4(net, x)
    assert cos == pytest.approx(_naive_cos(net, maps), abs=1e-12)
    for s, got in zip(sets, removed):
        expect = []
        for r1, r2 in zip(first.tolist(), second.tolist()):
            edited = [m.clone() for m in maps]
            fill = [ref.bank[r1, 0], ref.bank[r1, 1], ref.bank[r2, 0], ref.bank[r2, 1]]
            for m, f in zip(edited, fill):
                m[s] = f[s]
            expect.append(_naive_cos(net, edited))
        assert got == pytest.approx(np.mean(expect), abs=1e-10)
    # every channel replaced: the mean baseline makes the two faces one (cosine 1), the draws baseline two others
    _, (all_mean,) = channel_scores(net, x, ref, sets[1:], "mean")
    assert all_mean == pytest.approx(1.0, abs=1e-12) and removed[1] < 0.999


def test_occlusion_each_side_is_the_mean_of_covering_one_face_at_a_time(context, labels):
    net, x = context.model, _pair(4)
    a = attribute("occlusion", context, x, labels, sides="each")

    def cos(y):
        e = face_embedding(net, y)
        return float(e[0] @ e[1])

    for p in PARTS:
        m = labels == PART_NAMES.index(p)
        if not bool(m.any()):
            assert a.parts[p] is None
            continue
        ya, yb = x.clone(), x.clone()
        ya[0][:, m[0]] = 0
        yb[1][:, m[1]] = 0
        assert a.parts[p] == pytest.approx(cos(x) - (cos(ya) + cos(yb)) / 2, abs=1e-12)


# ---- pixel maps ----------------------------------------------------------------------------------------------------


def test_gradcam_matches_a_hand_computation_of_the_cam_of_both_views(context, labels):
    net, x = context.model, _pair(5)
    e = face_embedding(net, x).detach()
    z = net.forward_features(torch.stack([x[0], x[0].flip(-1)])).detach()  # face A's two views

    def score(zz):
        emb = net.forward_head(zz).double()
        return float(F.normalize(emb.sum(0), dim=-1) @ e[1])

    zz = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.normalize(net.forward_head(zz).double().sum(0), dim=-1) @ e[1], zz)
    # the gradient itself against finite differences where the map is positive (at 0 a ReLU / max-pool tie makes
    # a central difference the mean of the two one-sided slopes)
    h = 1e-6
    for idx in [tuple(i) for i in torch.nonzero(z > 1e-3)[::7][:30].tolist()]:
        up, down = z.clone(), z.clone()
        up[idx] += h
        down[idx] -= h
        assert float(grad[idx]) == pytest.approx((score(up) - score(down)) / (2 * h), rel=1e-4, abs=1e-8)
    cams = torch.relu((grad.mean((-2, -1), keepdim=True) * z).sum(1))
    cam = cams[0] + cams[1].flip(-1)
    expect = F.interpolate(cam[None, None], size=(56, 56), mode="bilinear", align_corners=False)[0, 0]
    got = attribute("gradcam", context, x, labels)
    np.testing.assert_allclose(got.maps[0], expect.numpy(), atol=1e-6)
    assert (got.maps >= 0).all()


def test_the_gradient_maps_match_finite_differences(context):
    net, x = context.model, _pair(6)
    e = face_embedding(net, x).detach()
    sim, dis = argument_maps(net, x[[0]], e[1], threshold=0.1)
    with torch.no_grad():
        e0 = face_embedding(net, x[[0]])[0]
    positive = (e0 * e[1]) >= 0.1 / e0.shape[-1]

    def args(y):
        with torch.no_grad():
            p = face_embedding(net, y[None])[0] * e[1]
        return float(p[positive].sum()), float(p[~positive].sum())

    h = 1e-6
    for i, j in [(3, 4), (20, 30), (40, 11), (55, 55)]:
        g_pos, g_neg = [], []
        for c in range(3):
            up, down = x[0].clone(), x[0].clone()
            up[c, i, j] += h
            down[c, i, j] -= h
            (pu, nu), (pd, nd) = args(up), args(down)
            g_pos.append((pu - pd) / (2 * h))
            g_neg.append((nu - nd) / (2 * h))
        assert float(sim[i, j]) == pytest.approx(np.mean(np.abs(g_pos)), rel=1e-4, abs=1e-9)
        assert float(dis[i, j]) == pytest.approx(np.mean(np.abs(g_neg)), rel=1e-4, abs=1e-9)


def test_rise_is_seeded_per_pair_and_its_correlation_is_pearsons(context, labels):
    x = _pair(7)
    a1 = attribute("rise", context, x, labels, index=2, masks=24)
    a2 = attribute("rise", context, x, labels, index=2, masks=24)
    b = attribute("rise", context, x, labels, index=3, masks=24)
    np.testing.assert_array_equal(a1.maps, a2.maps)
    assert not np.array_equal(a1.maps, b.maps)
    only_a = attribute("rise", context, x, labels, index=2, masks=24, faces=1)  # A's map alone, the same draw
    np.testing.assert_array_equal(only_a.maps[0], a1.maps[0])
    assert not only_a.maps[1].any()
    g = torch.Generator().manual_seed(0)
    masks = rise_masks(30, 20, 4, 0.5, g)
    assert masks.shape == (30, 20, 20) and float(masks.min()) >= 0 and float(masks.max()) <= 1
    scores = torch.randn(30, generator=g, dtype=torch.float64)
    corr = correlation_map(masks, scores).numpy()
    for i, j in [(0, 0), (5, 17), (19, 19)]:
        assert corr[i, j] == pytest.approx(np.corrcoef(masks[:, i, j].numpy(), scores.numpy())[0, 1], abs=1e-12)


@pytest.mark.slow
def test_the_random_baseline_ranks_a_given_part_first_at_chance_level(context, labels):
    """Over many pairs, a fixed part comes first about 1 / (parts shown) of the time."""
    shown = [p for p in PARTS if bool((labels == PART_NAMES.index(p)).any())]
    x = _pair(8)
    firsts = [attribute("random", context, x, labels, index=i).ranked()[0] for i in range(700)]
    rate = np.mean([f == shown[0] for f in firsts])
    se = np.sqrt((1 / len(shown)) * (1 - 1 / len(shown)) / 700)
    assert abs(rate - 1 / len(shown)) < 4 * se
