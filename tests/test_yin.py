"""Yin et al. 2019 (explainface.losses.yin, explainface.faces.occlusion): SAD, FAD and the filter term against
float64 loop references, the zero-map guard, the window landing where it was asked on synthetic (and mirrored)
faces, the NaN-landmark fallback, and YinLoss training a tiny network."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from tests.reference_yin import (
    naive_fad,
    naive_filter_diversity,
    naive_gaussian_3x3,
    naive_sad,
    naive_similarity,
    naive_window_mask,
)

import explainface.losses.yin  # noqa: F401  (registers "yin" and "yin_sad")
from explainface.faces.occlusion import (
    MEAN_FACE_110,
    apply_transform,
    crop_mean_face,
    landmark_transforms,
    mean_face,
    occlude,
    occluder_windows,
    sample_window_centres,
    similarity_transform,
    window_mask,
)
from explainface.losses.base import StepContext
from explainface.losses.registry import create_regularizer
from explainface.losses.yin import (
    FAD_KEEP,
    YinLoss,
    YinSAD,
    feature_activation_diversity,
    filter_diversity,
    smoothing_matrix,
    spatial_activation_diversity,
    target_conv,
    truncate_maps,
)
from explainface.models import create_head, create_model, identity_loss
from explainface.readers.landmarks import mirror_landmarks
from explainface.synthetic.generator import SyntheticFaces


def _maps(b=2, c=4, h=7, w=6, seed=0, relu=True, dead=True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    m = torch.relu(m) if relu else m
    if dead:
        m[0, 1] = 0.0
    return m


def _grad(fn, x):
    x = x.clone().requires_grad_(True)
    fn(x).backward()
    return x.grad


# ---- SAD ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep,sigma,relu", [(0.04, 1.5, True), (0.2, 1.5, False), (1.0, 1.5, True), (0.2, 0.0, True)])
def test_sad_matches_the_loop_reference_in_value_and_gradient(keep, sigma, relu):
    maps = _maps(relu=relu)
    fast = lambda x: spatial_activation_diversity(x, sigma, keep)  # noqa: E731
    slow = lambda x: naive_sad(x, sigma, keep)  # noqa: E731
    assert float(fast(maps)) == pytest.approx(float(slow(maps)), rel=1e-10)
    torch.testing.assert_close(_grad(fast, maps), _grad(slow, maps), rtol=1e-8, atol=1e-12)


def test_sad_in_float32_agrees_with_the_float64_reference():
    maps = _maps(b=2, c=5, h=14, w=14, seed=1)
    fast32 = spatial_activation_diversity(maps.float())
    assert fast32.dtype == torch.float32
    assert float(fast32) == pytest.approx(float(naive_sad(maps)), rel=1e-5)
    g32 = _grad(lambda x: spatial_activation_diversity(x), maps.float())
    torch.testing.assert_close(g32.double(), _grad(naive_sad, maps), rtol=1e-3, atol=1e-6)


def test_sad_keeps_each_maps_strongest_four_percent_and_smooths_with_yins_kernel():
    maps = torch.randn(3, 4, 14, 14, dtype=torch.float64)
    kept = truncate_maps(maps)  # round(0.04 * 196) = 8 positions, by |value|
    flat, kflat = maps.reshape(12, -1), kept.reshape(12, -1)
    assert ((kflat != 0).sum(1) == 8).all()
    top = flat.abs().topk(8, dim=1).indices
    assert torch.equal(torch.sort(top, 1).values, torch.sort((kflat != 0).nonzero()[:, 1].reshape(12, 8), 1).values)
    assert torch.equal(kflat[kflat != 0], flat[kflat != 0])  # signed values kept as they are
    # Yin et al.'s constant 3x3 kernel (training/ops.py): corner, edge, centre
    s = smoothing_matrix(5, 5, 1.5, torch.float64)
    centre = s[12].reshape(5, 5)[1:4, 1:4]
    expected = torch.tensor([[0.0947416, 0.118318, 0.0947416], [0.118318, 0.147761, 0.118318],
                             [0.0947416, 0.118318, 0.0947416]], dtype=torch.float64)  # fmt: skip
    torch.testing.assert_close(centre, expected, rtol=0, atol=1e-6)
    assert s[12].reshape(5, 5)[0].abs().sum() == 0  # 3x3: nothing two rows away
    m = maps[0, 0, :6, :5]
    smoothed = (smoothing_matrix(6, 5, 1.5, torch.float64) @ m.reshape(-1)).reshape(6, 5)
    torch.testing.assert_close(smoothed, naive_gaussian_3x3(m, 1.5))


def test_sad_of_all_zero_maps_is_finite_with_a_finite_gradient():
    for dtype in (torch.float64, torch.float32):
        zero = torch.zeros(2, 3, 14, 14, dtype=dtype)
        loss = spatial_activation_diversity(zero)
        assert torch.isfinite(loss) and float(loss) == 0.0
        g = _grad(spatial_activation_diversity, zero)
        assert torch.isfinite(g).all() and (g == 0).all()
        mixed = _maps(b=2, c=3, h=14, w=14, seed=2).to(dtype)  # one dead map among live ones
        g = _grad(spatial_activation_diversity, mixed)
        assert torch.isfinite(g).all() and (g[0, 1] == 0).all() and g.abs().sum() > 0
    one = torch.rand(2, 1, 14, 14, requires_grad=True)
    loss = spatial_activation_diversity(one)  # no channel pair
    loss.backward()
    assert float(loss) == 0.0 and torch.isfinite(one.grad).all()


def test_sad_is_zero_for_disjoint_channels_and_one_for_identical_ones():
    m = torch.zeros(1, 2, 14, 14, dtype=torch.float64)
    m[0, 0, 2, 2], m[0, 1, 10, 10] = 1.0, 1.0
    assert float(spatial_activation_diversity(m)) == pytest.approx(0.0, abs=1e-15)
    same = torch.rand(1, 1, 14, 14, dtype=torch.float64).expand(2, 4, 14, 14)
    assert float(spatial_activation_diversity(same)) == pytest.approx(1.0, rel=1e-12)


def test_sad_is_fast_on_a_training_batch():
    maps = torch.relu(torch.randn(64, 128, 14, 14)).requires_grad_(True)
    spatial_activation_diversity(maps).backward()  # warm-up (smoothing matrix cached)
    t0 = time.perf_counter()
    spatial_activation_diversity(maps).backward()
    assert time.perf_counter() - t0 < 3.0  # ~0.1 s; a Python loop over pairs would take minutes


def test_gradient_steps_on_sad_lower_it():
    yy, xx = torch.meshgrid(torch.arange(14.0), torch.arange(14.0), indexing="ij")
    blob = torch.exp(-((yy - 6.5) ** 2 + (xx - 6.5) ** 2) / 8)
    g = torch.Generator().manual_seed(3)
    x = (blob + 0.1 * torch.rand(2, 8, 14, 14, generator=g)).requires_grad_(True)  # every channel on one blob
    opt = torch.optim.Adam([x], lr=0.05)
    first = float(spatial_activation_diversity(torch.relu(x)))
    for _ in range(30):
        opt.zero_grad()
        spatial_activation_diversity(torch.relu(x)).backward()
        opt.step()
    last = float(spatial_activation_diversity(torch.relu(x)))
    assert first > 0.5 and last < 0.5 * first


def test_yin_sad_is_registered_and_is_the_function():
    reg = create_regularizer("yin_sad", sigma=1.0, keep=0.1)
    assert isinstance(reg, YinSAD)
    maps = _maps(b=2, c=4, h=14, w=14)
    assert float(reg(maps)) == float(spatial_activation_diversity(maps, 1.0, 0.1))
    with pytest.raises(ValueError, match="keep"):
        create_regularizer("yin_sad", keep=0.0)


# ---- FAD and the filter term ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fad_matches_the_loop_reference_in_value_mask_and_gradient(dtype):
    g = torch.Generator().manual_seed(4)
    f = torch.randn(6, 32, generator=g, dtype=torch.float64)
    f_o = f + 0.3 * torch.randn(6, 32, generator=g, dtype=torch.float64)
    loss, mask = feature_activation_diversity(f.to(dtype), f_o.to(dtype))
    ref, ref_mask = naive_fad(f, f_o, FAD_KEEP)
    assert loss.dtype == dtype
    assert float(loss) == pytest.approx(float(ref), rel=1e-12 if dtype == torch.float64 else 1e-6)
    assert torch.equal(mask, ref_mask) and int(mask.sum()) == 26  # round(0.8125 * 32)

    def fast_both(a, b):
        return feature_activation_diversity(a, b)[0]

    fa, fb = f.to(dtype).clone().requires_grad_(True), f_o.to(dtype).clone().requires_grad_(True)
    fast_both(fa, fb).backward()
    sa, sb = f.clone().requires_grad_(True), f_o.clone().requires_grad_(True)
    naive_fad(sa, sb, FAD_KEEP)[0].backward()
    torch.testing.assert_close(fa.grad.double(), sa.grad)
    torch.testing.assert_close(fb.grad.double(), sb.grad)
    assert fb.grad.abs().sum() > 0  # both branches are trained


def test_fad_keeps_yins_260_of_320_and_masks_the_most_changed():
    g = torch.Generator().manual_seed(5)
    f = torch.randn(8, 320, generator=g)
    f_o = f + torch.rand(320, generator=g) * torch.randn(8, 320, generator=g)
    loss, mask = feature_activation_diversity(f, f_o)
    d = (f - f_o).abs().mean(0)
    assert int(mask.sum()) == 260
    assert float(d[~mask].min()) > float(d[mask].max())  # the 60 masked are the most changed
    assert float(loss) == pytest.approx(float(d[mask].sum()), rel=1e-6)


def test_filter_diversity_matches_the_loop_reference():
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    assert float(filter_diversity(w)) == pytest.approx(float(naive_filter_diversity(w)), rel=1e-12)
    torch.testing.assert_close(_grad(filter_diversity, w), _grad(naive_filter_diversity, w))
    z = torch.zeros(2, 3, 3, 3, requires_grad=True)
    filter_diversity(z).backward()
    assert torch.isfinite(z.grad).all()


# ---- occlusion geometry -----------------------------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_similarity_and_never_reflects():
    g = torch.Generator().manual_seed(6)
    src = torch.rand(3, 68, 2, generator=g, dtype=torch.float64) * 100
    ang = torch.tensor([0.3, -1.2, 2.5], dtype=torch.float64)
    sc = torch.tensor([0.7, 1.9, 1.1], dtype=torch.float64)
    rot = torch.stack([torch.stack([torch.cos(ang), -torch.sin(ang)], -1),
                       torch.stack([torch.sin(ang), torch.cos(ang)], -1)], -2) * sc[:, None, None]  # fmt: skip
    t = torch.tensor([[5.0, -3.0], [0.0, 40.0], [-7.5, 2.0]], dtype=torch.float64)
    dst = src @ rot.transpose(1, 2) + t[:, None]
    m = similarity_transform(src, dst)
    torch.testing.assert_close(m[:, :, :2], rot, rtol=0, atol=1e-10)
    torch.testing.assert_close(m[:, :, 2], t, rtol=0, atol=1e-8)
    noisy = dst + torch.randn(dst.shape, generator=g, dtype=torch.float64)
    reflected = noisy.clone()
    reflected[..., 0] = -reflected[..., 0]
    for target in (noisy, reflected):
        fit = similarity_transform(src, target)
        for i in range(3):
            torch.testing.assert_close(fit[i], naive_similarity(src[i], target[i]), rtol=1e-8, atol=1e-8)
        assert (torch.linalg.det(fit[:, :, :2]) > 0).all()
    torch.testing.assert_close(apply_transform(m, src), dst)


def test_window_mask_matches_the_point_in_rectangle_reference():
    g = torch.Generator().manual_seed(7)
    corners = []
    for _ in range(4):
        c = torch.rand(2, generator=g, dtype=torch.float64) * 20 + 10
        a = float(torch.rand((), generator=g, dtype=torch.float64)) * math.pi
        w, h = 14.3, 5.7
        u = torch.tensor([math.cos(a), math.sin(a)], dtype=torch.float64) * w / 2
        v = torch.tensor([-math.sin(a), math.cos(a)], dtype=torch.float64) * h / 2
        corners.append(torch.stack([c - u - v, c - u + v, c + u + v, c + u - v]))
    corners = torch.stack(corners)
    fast = window_mask(corners, 40)
    for i in range(4):
        assert torch.equal(fast[i], naive_window_mask(corners[i], 40))
    assert (fast.sum((1, 2)) > 50).all()
    # Axis-aligned with the corners on pixel centres: closed, so (w + 1) x (h + 1) pixels as PIL's outline + fill.
    box = torch.tensor([[[4.0, 9.0], [4.0, 21.0], [36.0, 21.0], [36.0, 9.0]]], dtype=torch.float64)
    m = window_mask(box, 40)[0]
    assert int(m.sum()) == 33 * 13 and m[9, 4] and m[21, 36] and not m[8, 4] and not m[9, 37]
    assert torch.equal(m, naive_window_mask(box[0], 40))


def _face(identity=5, index=2, size=112, difficulty="easy"):
    s = SyntheticFaces(0, difficulty).sample(identity, index, size)
    img = torch.from_numpy(s.image).permute(2, 0, 1).float().div(127.5).sub(1.0)
    return img[None], torch.from_numpy(s.landmarks).double()[None]


def _eye_centres(lm):
    return lm[..., 36:42, :].mean(-2), lm[..., 42:48, :].mean(-2)


def _centroid(mask):
    ys, xs = mask.nonzero(as_tuple=True)
    return torch.stack([xs.double().mean(), ys.double().mean()])


def _angle(mask):
    """Direction (degrees, mod 180) of a mask's long axis."""
    pts = mask.nonzero().double()[:, [1, 0]]  # (x, y)
    axis = torch.linalg.eigh(torch.cov((pts - pts.mean(0)).T)).eigenvectors[:, -1]
    return math.degrees(math.atan2(float(axis[1]), float(axis[0]))) % 180


def test_the_window_asked_over_the_eyes_lands_over_the_eyes_of_a_synthetic_face():
    img, lm = _face()
    eye_mid_110 = MEAN_FACE_110[36:48].mean(0)
    occ, mask = occlude(img, lm, centre=eye_mid_110)
    m = mask[0]
    assert torch.equal(occ[0][:, m], torch.full_like(occ[0][:, m], -1.0))  # black in every channel
    assert torch.equal(occ[0][:, ~m], img[0][:, ~m])  # nothing else touched
    left, right = _eye_centres(lm[0])
    assert torch.allclose(_centroid(m), (left + right) / 2, atol=2.0)  # a similarity fit: ~1 px off at the eyes
    for k in (39, 42):  # the inner eye corners are covered
        x, y = lm[0, k].round().long().tolist()
        assert m[y, x]
    for k in (8, 30, 51, 57):  # chin, nose tip, mouth: not covered
        x, y = lm[0, k].round().long().tolist()
        assert not m[y, x]
    # width along the eye line: 32 px of the mean face, times this face's size over the mean face's (landmark spread)
    spread = lambda p: float(((p - p.mean(0)) ** 2).sum(1).mean().sqrt())  # noqa: E731
    scale = spread(lm[0]) / spread(torch.from_numpy(np.array(MEAN_FACE_110)))
    row = m[int(round(float((left[1] + right[1]) / 2)))]
    assert abs(int(row.sum()) - 32 * scale) <= 1.5
    # a face turned by 25 degrees turns the window with it
    a = math.radians(25.0)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    turned = (lm - 55.5) @ rot.T + 55.5
    tm = window_mask(occluder_windows(turned, 112, centre=eye_mid_110), 112)[0]
    assert abs(_angle(tm) - _angle(m) - 25.0) < 1.5  # (this face has a small roll of its own)
    tl, tr = _eye_centres(turned[0])
    assert torch.allclose(_centroid(tm), (tl + tr) / 2, atol=2.0)


def test_a_mirrored_face_is_occluded_at_the_mirrored_place():
    img, lm = _face(identity=7, index=1, size=112, difficulty="medium")
    flipped, lm_f = img.flip(-1), mirror_landmarks(lm, 112)
    left_eye_110 = MEAN_FACE_110[36:42].mean(0)  # the image-left eye of the mean face
    _, m = occlude(img, lm, centre=left_eye_110)
    _, m_f = occlude(flipped, lm_f, centre=left_eye_110)
    # on either face the window lands on that face's image-left eye (landmarks 36-41 after the renumbering)
    assert torch.allclose(_centroid(m[0]), _eye_centres(lm[0])[0], atol=2.0)
    assert torch.allclose(_centroid(m_f[0]), _eye_centres(lm_f[0])[0], atol=2.0)
    # asking for the mirrored place on the mirrored face gives the mirrored window
    mirrored_centre = (110.0 - left_eye_110[0], left_eye_110[1])
    _, m_fm = occlude(flipped, lm_f, centre=mirrored_centre)
    a, b = m_fm[0], m[0].flip(-1)
    iou = float((a & b).sum()) / float((a | b).sum())
    assert iou > 0.99
    # without the renumbering a mirrored face would be a reflection: the fit would not follow the face
    naive = lm.clone()
    naive[..., 0] = 111 - naive[..., 0]
    _, m_bad = occlude(flipped, naive, centre=left_eye_110)
    assert not torch.allclose(_centroid(m_bad[0]), _eye_centres(lm_f[0])[0], atol=5.0)


def test_unknown_landmarks_fall_back_to_the_crop_mean_face():
    size = 112
    none = torch.full((2, 68, 2), float("nan"), dtype=torch.float64)
    t = landmark_transforms(none, size)
    expected = naive_similarity(mean_face(), crop_mean_face(size))
    torch.testing.assert_close(t, expected.expand(2, 2, 3), rtol=0, atol=1e-9)
    torch.testing.assert_close(apply_transform(t[0], mean_face()), crop_mean_face(size), rtol=0, atol=1e-9)
    img = torch.zeros(2, 3, size, size)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.testing.assert_close(occlude(img, None, g1)[1], occlude(img, none, g2)[1], rtol=0, atol=0)
    _, lm = _face()
    partial = lm.clone()
    partial[0, 48:68] = float("nan")  # mouth unknown: fitted to the other 48 points
    fit = landmark_transforms(partial, size)[0]
    torch.testing.assert_close(fit, naive_similarity(mean_face()[:48], lm[0, :48]), rtol=1e-9, atol=1e-9)
    one = torch.full((1, 68, 2), float("nan"), dtype=torch.float64)
    one[0, 30] = torch.tensor([10.0, 10.0])  # a single known point cannot place a face
    torch.testing.assert_close(landmark_transforms(one, size)[0], expected, rtol=0, atol=1e-9)
    same = lm.expand(1, 68, 2).clone()
    same[:] = 50.0  # all points in one place: degenerate, falls back too
    torch.testing.assert_close(landmark_transforms(same, size)[0], expected, rtol=0, atol=1e-9)
    # the fallback is where the synthetic faces sit on average
    avg = torch.stack([_face(i, 0, size)[1][0] for i in range(12)]).mean(0)
    rms = float(((crop_mean_face(size) - avg) ** 2).sum(1).mean().sqrt())
    assert rms < 3.0


def test_window_places_are_drawn_as_yin_draws_them():
    c = sample_window_centres(40_000, torch.Generator().manual_seed(8))
    x, y = c[:, 0], c[:, 1]
    assert float(x.min()) == 27 and float(x.max()) == 83 and float(y.min()) == 17 and float(y.max()) == 93
    assert torch.equal(x, x.round()) and torch.equal(y, y.round())
    counts = torch.bincount(x.long() - 27)
    interior = counts[1:-1].double().mean()
    assert 1.6 < float(counts[0]) / float(interior) < 2.4  # their 10 -> 11 bump: the end twice as likely
    assert 1.6 < float(counts[-1]) / float(interior) < 2.4
    torch.testing.assert_close(sample_window_centres(5, torch.Generator().manual_seed(1)),
                               sample_window_centres(5, torch.Generator().manual_seed(1)))  # fmt: skip
    _, lm = _face()
    lms = lm.expand(6, 68, 2)
    shared = occluder_windows(lms, 112, torch.Generator().manual_seed(2))
    assert torch.equal(shared, shared[:1].expand_as(shared))  # one place for the whole batch, as theirs
    own = occluder_windows(lms, 112, torch.Generator().manual_seed(2), per_image=True)
    assert not torch.equal(own, own[:1].expand_as(own))
    # the window scales with the input size through the landmarks alone
    _, lm224 = _face(size=224)
    c112 = occluder_windows(lm, 112, centre=(55.0, 60.0))
    c224 = occluder_windows(lm224, 224, centre=(55.0, 60.0))
    side = lambda c: float((c[0, 3] - c[0, 0]).norm())  # noqa: E731
    assert side(c224) / side(c112) == pytest.approx(2.0, rel=0.02)


# ---- YinLoss on a tiny network --------------------------------------------------------------------------------


def _batch(size=112, n_ids=4, per_id=2):
    faces = SyntheticFaces(1, "easy")
    imgs, lms, labels = [], [], []
    for i in range(n_ids):
        for j in range(per_id):
            s = faces.sample(i, j, size)
            imgs.append(torch.from_numpy(s.image).permute(2, 0, 1).float().div(127.5).sub(1.0))
            lms.append(torch.from_numpy(s.landmarks))
            labels.append(i)
    return torch.stack(imgs), torch.stack(lms), torch.tensor(labels)


def _ctx(model, head, x, y, lm, step=0):
    emb, maps = model.forward_with_features(x)
    return StepContext(images=x, labels=y, maps=maps, embedding=emb, model=model, head=head, step=step, landmarks=lm)


def test_yin_loss_combines_its_terms_on_a_tiny_network():
    torch.manual_seed(0)
    model = create_model("vgg13", width=0.125, input_size=112, embedding_dim=32)
    head = create_head("softmax", 32, 4)
    x, lm, y = _batch()
    reg = create_regularizer("yin")
    assert isinstance(reg, YinLoss) and reg.NEEDS == ("landmarks",)
    assert (reg.sad, reg.occluded, reg.fad, reg.filter_diversity, reg.fad_space) == (0.5, 1.0, 0.05, 0.0, "unit")
    ctx = _ctx(model, head, x, y, lm, step=3)
    loss = reg.loss(ctx)
    st = reg.stats()
    assert set(st) == set(YinLoss.STATS) and all(math.isfinite(v) for v in st.values())
    assert float(loss) == pytest.approx(0.5 * (st["sad"] + st["sad_occluded"]) + st["ce_occluded"] + 0.05 * st["fad"],
                                        rel=1e-6)  # fmt: skip
    # each term, recomputed from the occluded images of this step
    occ, masks = reg.occluded_images(ctx)
    assert masks.any(dim=(1, 2)).all() and (occ[masks[:, None].expand_as(occ)] == -1).all()
    with torch.no_grad():
        emb_o, maps_o = model.forward_with_features(occ)
        unit = torch.nn.functional.normalize
        fad, keep = feature_activation_diversity(unit(ctx.embedding, dim=1), unit(emb_o, dim=1))
        ce_o = identity_loss(head, emb_o * keep, y)
    assert st["sad"] == pytest.approx(float(spatial_activation_diversity(ctx.maps)), rel=1e-6)
    assert st["sad_occluded"] == pytest.approx(float(spatial_activation_diversity(maps_o)), rel=1e-5)
    assert st["fad"] == pytest.approx(float(fad), rel=1e-5)
    assert st["ce_occluded"] == pytest.approx(float(ce_o), rel=1e-5)
    # deterministic in the step (a resumed run draws the same windows); another step draws another place
    assert torch.equal(reg.occluded_images(ctx)[1], masks)
    assert not torch.equal(reg.occluded_images(_ctx(model, head, x, y, lm, step=4))[1], masks)
    # channels-last images and unknown landmarks
    xc = x.contiguous(memory_format=torch.channels_last)
    assert float(reg.loss(_ctx(model, head, xc, y, lm, step=3))) == pytest.approx(float(loss), rel=1e-4)
    assert math.isfinite(float(reg.loss(_ctx(model, head, x, y, None, step=3))))
    # the optional filter term of their code: on the conv that makes the target map
    conv = target_conv(model)
    assert conv is dict(model.named_modules())[model.target_layer.replace("relu", "conv")]
    with_fd = YinLoss(filter_diversity=50.0)
    expected = float(loss) + 50.0 * float(filter_diversity(conv.weight))
    assert float(with_fd.loss(ctx)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="fad_keep"):
        create_regularizer("yin", fad_keep=1.5)
    with pytest.raises(ValueError, match="fad_space"):
        create_regularizer("yin", fad_space="cosine")
    with pytest.raises(ValueError, match="head"):
        reg.loss(StepContext(images=x, labels=y, maps=ctx.maps, embedding=ctx.embedding, model=model))


def test_a_few_sgd_steps_on_the_yin_objective_lower_it():
    torch.manual_seed(1)
    model = create_model("vgg13", width=0.125, input_size=112, embedding_dim=32)
    head = create_head("softmax", 32, 4)
    x, lm, y = _batch()
    reg = YinLoss()
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.05, momentum=0.9)

    def objective():
        ctx = _ctx(model, head, x, y, lm, step=0)  # one step's windows throughout
        return identity_loss(head, ctx.embedding, y) + reg.loss(ctx)

    values, ce_occluded = [], []
    for _ in range(3):
        opt.zero_grad()
        loss = objective()
        values.append(float(loss))
        ce_occluded.append(reg.stats()["ce_occluded"])
        loss.backward()
        opt.step()
    last = float(objective())
    assert last < 0.8 * values[0]
    assert reg.stats()["ce_occluded"] < ce_occluded[0]


def test_fad_on_unit_embeddings_ignores_their_scale_and_raw_is_their_code():
    """The default compares L2-normalised embeddings, so shrinking the embedding cannot lower FAD (the collapse
    that stopped raw FAD from learning, docs/decisions.md); ``fad_space="raw"`` is their formula unchanged."""
    g = torch.Generator().manual_seed(3)
    f = torch.randn(6, 40, generator=g, dtype=torch.float64)
    f_o = f + 0.3 * torch.randn(6, 40, generator=g, dtype=torch.float64)
    unit, raw = YinLoss(), YinLoss(fad_space="raw")
    a = feature_activation_diversity(*unit.fad_embeddings(f, f_o))[0]
    b = feature_activation_diversity(*unit.fad_embeddings(0.01 * f, 0.01 * f_o))[0]
    assert float(a) == pytest.approx(float(b), rel=1e-9)
    nf, nfo = f / f.norm(dim=1, keepdim=True), f_o / f_o.norm(dim=1, keepdim=True)
    assert float(a) == pytest.approx(float(naive_fad(nf, nfo, FAD_KEEP)[0]), rel=1e-9)
    r = feature_activation_diversity(*raw.fad_embeddings(f, f_o))[0]
    r_small = feature_activation_diversity(*raw.fad_embeddings(0.01 * f, 0.01 * f_o))[0]
    assert float(r) == pytest.approx(float(naive_fad(f, f_o, FAD_KEEP)[0]), rel=1e-9)
    assert float(r_small) == pytest.approx(0.01 * float(r), rel=1e-9)
