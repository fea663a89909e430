"""ECLoss-fit (explainface.losses.fit): every term against a float64 loop reference (value and gradient), the
loss alone makes noisy multi-blob maps single- or two-peaked, and the recipe (start, parts owned) works."""

from __future__ import annotations

import math

import pytest
import torch
from tests.reference import (
    naive_channel_consistency,
    naive_face_frame_consistency,
    naive_smooth,
    naive_spatial_diversity,
    naive_template_fit,
)

from explainface.evaluate.peaks import count_peaks
from explainface.losses import FitECLoss, build_templates, create_regularizer
from explainface.losses.fit import (
    channel_consistency,
    face_frame_consistency,
    smooth_maps,
    spatial_diversity,
    template_fit,
)


def _maps(b=2, c=3, h=5, w=5, seed=0, dead=True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.relu(torch.randn(b, c, h, w, generator=g, dtype=torch.float64))
    if dead:
        m[0, 1] = 0.0  # an all-zero (dead) map must not produce NaNs
    return m


def _grad(fn, maps):
    x = maps.clone().requires_grad_(True)
    fn(x).backward()
    return x.grad


@pytest.mark.parametrize("weight", ["norm", "mean"])
def test_template_fit_matches_the_loop_reference_in_value_and_gradient(weight):
    maps = _maps()
    t = build_templates(5, 5, k=20, tau=1.0, radius=2.0, dtype=torch.float64)
    fast = lambda x: template_fit(x, t, 0.1, weight)[0]  # noqa: E731
    slow = lambda x: naive_template_fit(x, t, 0.1, weight)  # noqa: E731
    assert float(fast(maps)) == pytest.approx(float(slow(maps)), rel=1e-10)
    torch.testing.assert_close(_grad(fast, maps), _grad(slow, maps), rtol=1e-8, atol=1e-12)
    assert torch.isfinite(_grad(fast, maps)).all()


def test_a_map_shaped_like_a_template_fits_better_than_a_multi_peaked_one():
    t = build_templates(14, 14, k=400, tau=1.0)
    cone = t[50].clamp_min(0)[None, None]  # a one-peak template's positive part
    yy, xx = torch.meshgrid(torch.arange(14.0), torch.arange(14.0), indexing="ij")
    blobs = sum(torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2) for cy, cx in [(2, 2), (2, 11), (11, 6), (7, 3)])
    _, fit_cone = template_fit(cone, t)
    _, fit_blobs = template_fit(blobs[None, None], t)
    assert float(fit_cone) > float(fit_blobs) + 0.2


def test_smoothing_and_spatial_diversity_match_the_loop_reference():
    maps = _maps(b=2, c=3, h=6, w=5)
    for j in range(3):
        torch.testing.assert_close(smooth_maps(maps, 1.0)[1, j], naive_smooth(maps[1, j], 1.0), rtol=1e-10, atol=0)
    fast = lambda x: spatial_diversity(x, 1.0)  # noqa: E731
    slow = lambda x: naive_spatial_diversity(x, 1.0)  # noqa: E731
    assert float(fast(maps)) == pytest.approx(float(slow(maps)), rel=1e-10)
    torch.testing.assert_close(_grad(fast, maps), _grad(slow, maps), rtol=1e-8, atol=1e-12)


def test_spatial_diversity_is_zero_for_disjoint_channels_and_one_for_identical_ones():
    m = torch.zeros(1, 2, 9, 9, dtype=torch.float64)
    m[0, 0, 1, 1], m[0, 1, 7, 7] = 1.0, 1.0
    assert float(spatial_diversity(m, 1.0)) == pytest.approx(0.0, abs=1e-12)
    same = torch.rand(1, 1, 9, 9, dtype=torch.float64).expand(1, 3, 9, 9)
    assert float(spatial_diversity(same, 1.0)) == pytest.approx(1.0, rel=1e-5)  # up to the 1e-6 norm guard


@pytest.mark.parametrize("weight", ["norm", "mean"])
def test_channel_consistency_matches_the_loop_reference(weight):
    maps = _maps(b=4, c=3)
    fast = lambda x: channel_consistency(x, weight)  # noqa: E731
    slow = lambda x: naive_channel_consistency(x, weight)  # noqa: E731
    assert float(fast(maps)) == pytest.approx(float(slow(maps)), rel=1e-10)
    torch.testing.assert_close(_grad(fast, maps), _grad(slow, maps), rtol=1e-8, atol=1e-12)
    same = maps[:1].expand(4, -1, -1, -1) * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)[:, None, None, None]
    assert float(channel_consistency(same, weight)) == pytest.approx(0.0, abs=1e-12)  # scale does not matter


@pytest.mark.parametrize("weight", ["norm", "mean"])
def test_face_frame_consistency_matches_the_loop_reference_and_ignores_where_the_face_is(weight):
    maps = _maps(b=3, c=3, h=5, w=6, seed=2)
    fast = lambda x: face_frame_consistency(x, weight)  # noqa: E731
    slow = lambda x: naive_face_frame_consistency(x, weight)  # noqa: E731
    assert float(fast(maps)) == pytest.approx(float(slow(maps)), rel=1e-9)
    torch.testing.assert_close(_grad(fast, maps), _grad(slow, maps), rtol=1e-7, atol=1e-12)
    # the same face moved by 0, 2 and 4 columns: consistent in the face's frame, not in the image's
    face = torch.zeros(1, 2, 8, 12, dtype=torch.float64)
    face[0, 0, 2, 1], face[0, 1, 5, 3] = 1.0, 2.0
    moved = torch.cat([torch.roll(face, s, dims=3) for s in (0, 2, 4)])
    assert float(face_frame_consistency(moved, weight)) == pytest.approx(0.0, abs=1e-10)
    assert float(channel_consistency(moved, weight)) > 0.5


def test_the_regulariser_sums_its_terms_and_logs_them():
    maps = _maps(b=3, c=4, h=14, w=14, seed=3)
    reg = create_regularizer("ecloss_fit", diversity=0.5, consistency=2.0)
    t = build_templates(14, 14, k=400, tau=1.0, dtype=torch.float64)
    expected = template_fit(maps, t)[0] + 0.5 * spatial_diversity(maps) + 2.0 * channel_consistency(maps)
    assert float(reg(maps)) == pytest.approx(float(expected), rel=1e-9)
    st = reg.stats()
    assert set(st) == {"fit", "diversity", "consistency"} and all(math.isfinite(v) for v in st.values())
    plain = FitECLoss()
    plain(maps)
    assert math.isnan(plain.stats()["diversity"])  # a term that is off is not measured
    face = FitECLoss(consistency=1.5, frame="face")
    assert float(face(maps)) == pytest.approx(float(template_fit(maps, t)[0] + 1.5 * face_frame_consistency(maps)),
                                              rel=1e-9)  # fmt: skip
    for bad in ({"weight": "l1"}, {"temperature": 0}, {"diversity": -1}, {"frame": "world"}):
        with pytest.raises(ValueError):
            FitECLoss(**bad)


def test_gradient_descent_on_the_recipes_loss_alone_reduces_the_peaks_of_noisy_multi_blob_maps():
    g = torch.Generator().manual_seed(0)
    b, c, h, w = 4, 8, 14, 14
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    maps = torch.zeros(b, c, h, w)
    for i in range(b):
        for j in range(c):
            for _ in range(5):
                cy, cx = (torch.rand(2, generator=g) * (h - 1)).tolist()
                amp = float(torch.rand((), generator=g)) + 0.5
                maps[i, j] += amp * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 3)
    maps += 0.05 * torch.rand(maps.shape, generator=g)
    x = maps.clone().requires_grad_(True)
    from explainface.experiments.methods import RECOMMENDED, method_config
    from explainface.training.config import TrainConfig
    from explainface.training.regularizer_specs import regularizer_options

    spec = method_config(RECOMMENDED, TrainConfig()).regularizers[0]  # the recommended recipe's term, all of it
    reg = create_regularizer(spec["name"], **regularizer_options(spec))
    assert reg.diversity > 0 and reg.consistency > 0
    opt = torch.optim.SGD([x], lr=300.0)
    for _ in range(150):
        opt.zero_grad()
        reg(torch.relu(x)).backward()
        opt.step()
    before = count_peaks(maps.reshape(-1, h, w)).double()
    after = count_peaks(torch.relu(x).detach().reshape(-1, h, w)).double()
    assert after.mean() < 0.8 * before.mean()
    assert (after <= 2).double().mean() > (before <= 2).double().mean() + 0.2
    assert (torch.relu(x).detach().flatten(2).amax(2) > 0).all()  # no map killed


def test_the_recipe_is_a_method_and_recommended_names_it():
    from explainface.experiments.methods import FIT_DEFAULTS, RECOMMENDED, method_config
    from explainface.training.config import TrainConfig

    base = TrainConfig()
    cfg = method_config("ecloss-fit", base)
    (spec,) = cfg.regularizers
    assert spec["name"] == "ecloss_fit" and spec["beta"] == FIT_DEFAULTS["beta"]
    assert spec["start"] == FIT_DEFAULTS["start"] and spec["diversity"] == FIT_DEFAULTS["diversity"]
    assert method_config("recommended", base).regularizers == method_config(RECOMMENDED, base).regularizers
    tuned = method_config("ecloss-fit:consistency=0,start=0", base).regularizers[0]
    assert tuned["consistency"] == 0 and "start" not in tuned
    with pytest.raises(ValueError, match="ecloss-fit:colour=1"):
        method_config("ecloss-fit:colour=1", base)


def test_parts_owned_counts_parts_with_a_channel_that_picks_them_in_half_of_the_faces(tmp_path):
    import json

    from explainface.experiments.run import _backfill, parts_owned

    channels = [
        {"channel": 0, "part": "eyes", "frequency": 0.5},
        {"channel": 1, "part": "eyes", "frequency": 0.9},
        {"channel": 2, "part": "nose", "frequency": 0.49},
        {"channel": 3, "part": "mouth", "frequency": 0.7},
        {"channel": 4, "part": None, "frequency": 0.0},
    ]
    assert parts_owned(channels) == 2
    assert parts_owned(channels, threshold=0.4) == 3
    folder = tmp_path / "eval" / "synthetic"
    (folder / "explain").mkdir(parents=True)
    (folder / "explain" / "channel_dictionary.json").write_text(json.dumps(channels))
    old = {"pe_mean": 0.1}  # evaluated before parts_owned existed
    assert _backfill(old, folder / "metrics.json")["parts_owned"] == 2
    assert json.loads((folder / "metrics.json").read_text())["parts_owned"] == 2


@pytest.mark.parametrize("weight", ["norm", "mean"])
def test_the_fused_kernel_matches_the_loop_references_in_value_and_gradient(weight):
    maps = _maps(b=3, c=4, h=6, w=5, seed=5)  # one dead map included
    reg = FitECLoss(k=20, radius=2.0, temperature=0.1, weight=weight, diversity=0.7, consistency=1.3, frame="face")
    t = build_templates(6, 5, k=20, tau=1.0, radius=2.0, dtype=torch.float64)

    def slow(x):
        return (naive_template_fit(x, t, 0.1, weight) + 0.7 * naive_spatial_diversity(x, 1.0)
                + 1.3 * naive_face_frame_consistency(x, weight))  # fmt: skip

    assert float(reg(maps)) == pytest.approx(float(slow(maps)), rel=1e-9)
    g_fast, g_slow = _grad(reg, maps), _grad(slow, maps)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-7, atol=1e-11)
    assert torch.isfinite(g_fast).all()
    if weight == "norm":
        assert (g_fast[0, 1] == 0).all()  # a dead map (weight 0) gets no gradient
    st = reg.stats()
    assert st["diversity"] == pytest.approx(float(naive_spatial_diversity(maps, 1.0)), rel=1e-9)
    assert st["consistency"] == pytest.approx(float(naive_face_frame_consistency(maps, weight)), rel=1e-9)


def test_the_fused_kernel_in_float32_agrees_with_float64():
    maps = _maps(b=4, c=8, h=14, w=14, seed=6)
    reg = FitECLoss(diversity=0.5, consistency=2.0, frame="face")
    g64 = _grad(reg, maps)
    g32 = _grad(reg, maps.float())
    assert float(reg(maps.float())) == pytest.approx(float(reg(maps)), rel=1e-5)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-3, atol=1e-7)
