"""Activation peaks by topographic prominence and activation robustness (docs/method.md §7.5, paper §5.2.4),
against a plain union-find reference, a brute-force flood-fill reference and scikit-image's h-maxima."""

import math

import pytest
import torch

import reference_metrics as ref
from explainface.evaluate.peaks import activation_robustness, count_peaks, robustness_from_counts


def _relu_gaussians(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(shape, generator=g, dtype=torch.float64))


def _bump(h, w, ci, cj, height=1.0, width=1.5):
    i, j = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return height * torch.exp(-((i - ci) ** 2 + (j - cj) ** 2) / (2 * width**2))


@pytest.mark.parametrize("shape", [(300, 14, 14), (300, 5, 7), (200, 1, 9), (200, 9, 1), (100, 3, 3)])
def test_count_peaks_matches_union_find_reference(shape):
    maps = _relu_gaussians(shape, seed=shape[1] * 10 + shape[2])
    maps[:60] = (maps[:60] * 2).round() / 2  # many exact ties and plateaus
    maps[60:70] = 0
    expected = torch.tensor([ref.count_peaks(m) for m in maps.tolist()])
    assert torch.equal(count_peaks(maps), expected)


def test_union_find_reference_agrees_with_brute_force_prominence():
    maps = _relu_gaussians((150, 5, 5), seed=1)
    maps[:50] = (maps[:50] * 2).round() / 2  # ties
    for rho in (0.1, 0.3):
        for m in maps.tolist():
            assert ref.count_peaks(m, rho) == ref.count_peaks_brute(m, rho)


def test_count_peaks_matches_brute_force_on_tiny_maps():
    maps = _relu_gaussians((150, 4, 6), seed=2)
    maps[:50] = (maps[:50] * 3).round() / 3
    expected = torch.tensor([ref.count_peaks_brute(m, 0.2) for m in maps.tolist()])
    assert torch.equal(count_peaks(maps, rho=0.2), expected)


def test_two_separated_bumps_give_two_peaks():
    m = _bump(14, 14, 3, 3) + 0.8 * _bump(14, 14, 10, 10)
    assert int(count_peaks(m)) == 2


def test_one_bump_gives_one_peak():
    assert int(count_peaks(_bump(14, 14, 6, 7))) == 1


def test_a_plateau_is_one_peak():
    m = torch.zeros(8, 8, dtype=torch.float64)
    m[2:5, 1:6] = 1.0
    assert int(count_peaks(m)) == 1


def test_a_u_shaped_plateau_whose_arms_meet_late_is_one_peak():
    # in index order the right arm's top (0, 4) comes after the left arm's (0, 0) but before the bottom row
    # joins them: it starts its own component, which dies at the plateau's own height (prominence 0)
    m = torch.zeros(5, 5, dtype=torch.float64)
    m[0:4, 0] = 2.0
    m[0:4, 4] = 2.0
    m[3, 0:5] = 2.0
    assert int(count_peaks(m)) == 1


def test_a_zero_map_has_no_peak():
    assert int(count_peaks(torch.zeros(14, 14))) == 0


def test_negative_values_count_as_zero():
    m = _bump(10, 10, 2, 2) - 0.05
    assert int(count_peaks(m)) == int(count_peaks(m.clamp_min(0))) == 1
    assert int(count_peaks(-_bump(10, 10, 5, 5))) == 0


def test_a_secondary_bump_below_rho_does_not_count():
    m = _bump(14, 14, 3, 3) + 0.05 * _bump(14, 14, 10, 10, width=1.0)  # prominence < 0.1 * max
    assert int(count_peaks(m, rho=0.1)) == 1
    assert int(count_peaks(m, rho=0.01)) == 2


def test_a_prominence_of_exactly_rho_times_max_counts():
    # dyadic values, so prominence = 0.5 - 0.25 = 0.25 = rho * max exactly in float64
    m = torch.tensor([[1.0, 0.5, 0.25, 0.5, 0.0]], dtype=torch.float64)
    assert int(count_peaks(m, rho=0.25)) == 2
    assert int(count_peaks(m, rho=0.25 + 1e-9)) == 1


def test_count_peaks_keeps_the_leading_shape():
    maps = _relu_gaussians((2, 3, 4, 6, 6), seed=3)
    out = count_peaks(maps)
    assert out.shape == (2, 3, 4) and out.dtype == torch.int64
    assert torch.equal(out.reshape(-1), count_peaks(maps.reshape(-1, 6, 6)))


def test_count_peaks_rejects_a_non_positive_rho():
    with pytest.raises(ValueError, match="rho"):
        count_peaks(torch.rand(3, 3), rho=0)


def test_count_peaks_agrees_with_skimage_h_maxima():
    skimage = pytest.importorskip("skimage")
    import numpy as np

    maps = _relu_gaussians((200, 14, 14), seed=4)
    g = torch.Generator().manual_seed(5)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(100, 1, 16, 16, generator=g, dtype=torch.float64), 3, 1)
    maps[100:] = torch.relu(smooth[:, 0])
    fast = count_peaks(maps, rho=0.1)
    eight = np.ones((3, 3), dtype=bool)
    checked = 0
    for m, n in zip(maps.numpy(), fast.tolist()):
        h = 0.1 * m.max()
        if h == 0 or m.min() > 0:  # h_maxima needs h > 0 and, to count from 0 as we do, a zero somewhere
            continue
        regions = skimage.morphology.h_maxima(m, h, footprint=eight)
        assert skimage.measure.label(regions, connectivity=2).max() == n
        checked += 1
    assert checked > 150


# ------------------------------------------------------------------------------------------------------- AR


def test_activation_robustness_shares_over_all_maps():
    maps = torch.zeros(4, 3, 14, 14, dtype=torch.float64)
    maps[:, 0] = _bump(14, 14, 7, 7)  # 1 peak
    maps[:, 1] = _bump(14, 14, 2, 2) + _bump(14, 14, 11, 11) + _bump(14, 14, 2, 11)  # 3 peaks
    ar = activation_robustness(maps, runs=3, n_images=2)
    assert torch.equal(ar["peaks"], torch.tensor([[1, 3, 0]] * 4))
    assert ar["zero_share"] == pytest.approx(1 / 3)
    assert ar["at_most_two_share"] == pytest.approx(2 / 3)
    assert ar["ar_mean"] == pytest.approx(4 / 3)
    assert ar["ar_std"] == pytest.approx(0.0, abs=1e-15)  # every image alike


def test_ar_is_mean_and_sd_of_the_per_draw_means():
    g = torch.Generator().manual_seed(0)
    peaks = torch.randint(0, 6, (50, 8), generator=g)
    ar = robustness_from_counts(peaks, runs=4, n_images=10, seed=1)
    per_image = peaks.double().mean(1)
    assert ar["draw_size"] == 10 and not ar["all_images_used"]
    for value in ar["ar_per_draw"]:
        assert float(per_image.min()) <= value <= float(per_image.max())
    draws = ar["ar_per_draw"]
    mean = sum(draws) / 4
    assert ar["ar_mean"] == pytest.approx(mean, abs=1e-12)
    assert ar["ar_std"] == pytest.approx(math.sqrt(sum((d - mean) ** 2 for d in draws) / 3), abs=1e-12)


def test_ar_uses_every_image_when_there_are_fewer_than_asked():
    peaks = torch.tensor([[1, 2], [3, 4], [0, 0]])
    ar = robustness_from_counts(peaks, runs=5, n_images=100)
    assert ar["all_images_used"] and ar["ar_mean"] == pytest.approx(10 / 6) and ar["ar_std"] == 0.0
