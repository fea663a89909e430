"""Activation templates (docs/method.md §1) against a loop-built float64 reference."""

import math
import warnings

import pytest
import torch

from explainface.losses.templates import (
    build_templates,
    default_radius,
    full_template_count,
    template_counts,
    template_index,
)

from reference import naive_one_peak, naive_templates


def test_full_set_at_14x14_has_19307_templates():
    assert full_template_count(14, 14) == 19307
    t = build_templates(14, 14, k="full")
    assert t.shape == (19307, 14, 14)
    assert template_counts(14, 14, "full") == (1, 196, 19110)


@pytest.mark.parametrize("h,w", [(3, 3), (4, 5), (6, 6)])
def test_full_set_matches_loop_reference(h, w):
    fast = build_templates(h, w, k="full", tau=0.5)
    ref = naive_templates(h, w, "full", tau=0.5)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast.double(), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("k", [2, 20, 196, 197, 198, 400, 1000])
def test_k_subset_matches_loop_reference_at_14x14(k):
    fast = build_templates(14, 14, k=k, tau=2.0)
    ref = naive_templates(14, 14, k, tau=2.0)
    assert fast.shape[0] == k
    torch.testing.assert_close(fast.double(), ref, rtol=1e-6, atol=1e-6)


def test_full_set_spot_checks_against_pairwise_max_at_14x14():
    tau, r = 0.001, 4.0
    t = build_templates(14, 14, k="full", tau=tau)
    pairs = [(a, b) for a in range(196) for b in range(a + 1, 196)]
    for idx in [0, 1, 17, 5000, 12345, 19109]:
        a, b = pairs[idx]
        ref = torch.maximum(
            naive_one_peak(14, 14, divmod(a, 14), tau, r), naive_one_peak(14, 14, divmod(b, 14), tau, r)
        )
        torch.testing.assert_close(t[1 + 196 + idx].double(), ref, rtol=1e-6, atol=1e-9)


def test_canonical_order_negative_then_one_peak_row_major_then_pairs():
    tau = 0.7
    t = build_templates(4, 4, k="full", tau=tau)
    assert torch.all(t[0] == -tau)
    for p in range(16):
        peak = divmod(p, 4)
        assert t[1 + p][peak] == pytest.approx(tau)
        assert int(t[1 + p].argmax()) == p
    p1, p2 = template_index(4, 4, "full")
    two_p1, two_p2 = p1[17:].tolist(), p2[17:].tolist()
    assert list(zip(two_p1, two_p2)) == sorted(zip(two_p1, two_p2))
    assert all(a < b for a, b in zip(two_p1, two_p2))


def test_k_below_one_plus_hw_takes_evenly_spaced_one_peak_templates():
    p1, p2 = template_index(14, 14, k=50)
    assert p1[0] == -1 and torch.all(p2 == -1)
    assert p1[1:].tolist() == [(i * 196) // 49 for i in range(49)]


def test_k_above_one_plus_hw_keeps_every_one_peak_template_and_spreads_pairs():
    counts = template_counts(14, 14, 400)
    assert counts == (1, 196, 203)
    p1, p2 = template_index(14, 14, k=400)
    assert p1[1:197].tolist() == list(range(196))
    pairs = list(zip(p1[197:].tolist(), p2[197:].tolist()))
    assert len(set(pairs)) == 203  # distinct
    # evenly spread: the first pair starts at position 0, the last one is in the last rows
    assert pairs[0][0] == 0 and pairs[-1][0] > 150


def test_k_larger_than_the_full_set_warns_and_gives_the_full_set():
    with pytest.warns(UserWarning, match="full set"):
        t = build_templates(3, 3, k=100)
    assert t.shape[0] == full_template_count(3, 3) == 46


@pytest.mark.parametrize("bad", [0, 1, -5, "half"])
def test_invalid_k_is_rejected_with_a_message(bad):
    with pytest.raises(ValueError, match="k must"):
        build_templates(14, 14, k=bad)


def test_radius_scales_with_the_map_size():
    assert default_radius(14, 14) == pytest.approx(4.0)
    assert default_radius(7, 7) == pytest.approx(2.0)
    assert default_radius(28, 28) == pytest.approx(8.0)
    t7 = build_templates(7, 7, k="full", tau=1.0)
    # value at distance 1 from the peak is 1 - 1/r = 0.5 with r = 2
    assert t7[1 + 0][0, 1] == pytest.approx(0.5)


def test_non_square_maps_build_with_row_major_positions():
    t = build_templates(3, 5, k="full", tau=1.0)
    assert t.shape == (1 + 15 + 105, 3, 5)
    assert int(t[1 + 7].argmax()) == 7  # peak at (1, 2)


def test_templates_are_cached_and_not_tracked_by_autograd():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = build_templates(14, 14, k=400)
        b = build_templates(14, 14, k=400)
    assert a is b
    assert not a.requires_grad
    assert build_templates(14, 14, k=400, dtype=torch.float64).dtype == torch.float64


def test_template_values_are_bounded_by_tau():
    tau = 0.003
    t = build_templates(14, 14, k="full", tau=tau)
    assert float(t.max()) == pytest.approx(tau)
    assert float(t.min()) == pytest.approx(-tau)
    assert math.isclose(float(t[1].max()), tau, rel_tol=1e-6)
