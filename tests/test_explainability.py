"""Explainability metrics (docs/method.md §7): top-10% masks, part IoU, PE, LS, the channel dictionary and the report,
against the plain-loop float64 references of tests/reference_metrics.py and hand-built cases."""

import math

import pytest
import torch

import reference_metrics as ref
from explainface.evaluate.explainability import (
    PARTS,
    ExplainabilityAccumulator,
    channel_dictionary,
    explainability_report,
    location_consistency,
    masks_from_labels,
    part_explainability,
    part_iou,
    top_masks,
)


def _relu_gaussians(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)


def _random_parts(n, k, s, s2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, k, s, s2, generator=g) > 0.6


def _reference_iou(maps, parts):
    return torch.tensor(ref.part_ious(maps.tolist(), parts.tolist()), dtype=torch.float64)


# ------------------------------------------------------------------------------------------------- part IoU


@pytest.mark.parametrize(
    "h,w,s,s2",
    [
        (14, 14, 56, 56),  # integer scale 4
        (7, 7, 32, 32),  # non-integer scale
        (5, 6, 23, 17),  # different scales per axis
        (14, 14, 40, 40),
        (4, 4, 9, 9),
        (6, 6, 6, 6),  # no upsampling
        (8, 8, 5, 5),  # downsampling
        (1, 5, 4, 13),  # one-row maps
        (9, 4, 300, 7),  # up one way, down the other
    ],
)
def test_part_iou_matches_reference_on_random_maps(h, w, s, s2):
    maps = _relu_gaussians((2, 5, h, w), seed=h * 100 + s)
    maps[0, 0] = 0  # an all-zero map
    maps[1, 1, 1:, :] = 0  # a sparse map: fewer positive pixels than the top 10%
    parts = _random_parts(2, 3, s, s2, seed=s2)
    fast = part_iou(maps, parts)
    assert fast.shape == (2, 5, 3) and fast.dtype == torch.float64
    assert float((fast - _reference_iou(maps, parts)).abs().max()) <= 1e-9


@pytest.mark.parametrize("h,s", [(14, 56), (7, 32)])
def test_part_iou_matches_reference_with_many_ties(h, s):
    maps = (_relu_gaussians((2, 6, h, h), seed=h) * 4).round() / 4  # quarter steps: plateaus and ties at t
    parts = _random_parts(2, 4, s, s, seed=h)
    assert float((part_iou(maps, parts) - _reference_iou(maps, parts)).abs().max()) <= 1e-9


def test_part_iou_stays_exact_when_the_guessed_bracket_misses(monkeypatch):
    """With no slack around the sub-grid guess of t, most brackets miss t: the always-valid fallback runs."""
    import explainface.evaluate.topk as ex

    monkeypatch.setattr(ex, "_MARGIN", 0.0)
    monkeypatch.setattr(ex, "_REFINE_MARGIN", 0.0)
    fallbacks = []
    top_stats = ex._top_stats

    def spy(x, ay, ax, k, parts=None, wide=False):
        fallbacks.append(wide)
        return top_stats(x, ay, ax, k, parts, wide)

    monkeypatch.setattr(ex, "_top_stats", spy)
    maps = _relu_gaussians((2, 6, 14, 14), seed=12)
    parts = _random_parts(2, 3, 56, 56, seed=12)
    assert float((part_iou(maps, parts) - _reference_iou(maps, parts)).abs().max()) <= 1e-9
    assert any(fallbacks)


def test_part_iou_matches_reference_at_224_from_14():
    """The paper's geometry (14 x 14 maps, 224 x 224 input), with the synthetic faces' part masks."""
    from explainface.synthetic.generator import SyntheticFaces

    labels = torch.from_numpy(SyntheticFaces(seed=0).sample(identity=3, index=0, size=224).parts)[None]
    parts = masks_from_labels(labels)
    maps = _relu_gaussians((1, 3, 14, 14), seed=7)
    maps[0, 2] = torch.nn.functional.avg_pool2d(_relu_gaussians((1, 18, 18), seed=8), 5, 1)[0]  # a smooth map
    assert float((part_iou(maps, parts) - _reference_iou(maps, parts)).abs().max()) <= 1e-9


def test_top_masks_match_reference():
    maps = _relu_gaussians((2, 3, 7, 9), seed=3)
    maps[1, 2] = 0
    fast = top_masks(maps, (30, 25))
    slow = torch.tensor([[ref.top_mask(m, 30, 25) for m in img] for img in maps.tolist()])
    assert fast.shape == (2, 3, 30, 25)
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("fraction", [0.0005, 0.5, 1.0])
def test_top_masks_match_reference_for_other_fractions(fraction):
    maps = _relu_gaussians((1, 4, 14, 14), seed=6)
    fast = top_masks(maps, 56, fraction=fraction)
    slow = torch.tensor([[ref.top_mask(m, 56, 56, fraction) for m in img] for img in maps.tolist()])
    assert torch.equal(fast, slow)


def test_top_masks_and_part_iou_agree():
    maps = _relu_gaussians((1, 6, 14, 14), seed=11)
    parts = _random_parts(1, 7, 112, 112, seed=2)
    masks = top_masks(maps[0], 112).reshape(6, -1).double()
    flat = parts[0].reshape(7, -1).double()
    inter = masks @ flat.T
    union = masks.sum(1, keepdim=True) + flat.sum(1) - inter
    assert torch.equal(part_iou(maps, parts)[0], inter / union)


def test_top_masks_keep_ten_percent_of_distinct_values():
    maps = _relu_gaussians((4, 14, 14), seed=5) + 0.1  # all positive, no ties
    kept = top_masks(maps, 56).sum((1, 2))
    assert torch.equal(kept, torch.full((4,), math.ceil(0.1 * 56 * 56)))


def test_float32_maps_give_the_same_iou_as_the_same_values_in_float64():
    maps = _relu_gaussians((2, 4, 14, 14), seed=4, dtype=torch.float32)
    parts = _random_parts(2, 7, 56, 56, seed=4)
    assert torch.equal(part_iou(maps, parts), part_iou(maps.double(), parts))


def test_blob_on_the_nose_gives_the_hand_computed_iou():
    # one source pixel (3, 3) of an 8 x 8 map, upsampled x8 to 64 x 64 (align_corners=False): output row i
    # reads source rows around (i + 0.5) / 8 - 0.5, which lies strictly between 2 and 4 for i = 20..35, so
    # the blob covers rows and columns 20..35: 256 pixels, fewer than the top 10% (410), so all of them.
    maps = torch.zeros(1, 1, 8, 8)
    maps[0, 0, 3, 3] = 1.0
    parts = torch.zeros(1, 7, 64, 64, dtype=torch.bool)
    nose = PARTS.index("nose")
    parts[0, nose, 24:40, 16:32] = True  # overlaps the blob on rows 24..35 x columns 20..31: 144 pixels
    parts[0, PARTS.index("hair"), :10, :] = True  # far away
    iou = part_iou(maps, parts)[0, 0]
    assert float(iou[nose]) == pytest.approx(144 / (256 + 256 - 144), abs=1e-12)
    assert float(iou[PARTS.index("hair")]) == 0.0
    assert int(top_masks(maps, 64).sum()) == 256


def test_ties_at_the_threshold_keep_every_tied_pixel():
    # a column ramp 0..7 upsampled to 40 x 40: columns 37..39 sit on the clamped border (value 7, 120 pixels)
    # and column 36 reads source 6.8; the 160th largest value (k = 160) is 6.8, so the mask is columns 36..39
    maps = torch.arange(8.0).repeat(8, 1)[None, None]
    mask = top_masks(maps, 40)[0, 0]
    expected = torch.zeros(40, 40, dtype=torch.bool)
    expected[:, 36:] = True
    assert torch.equal(mask, expected)
    parts = torch.zeros(1, 1, 40, 40, dtype=torch.bool)
    parts[0, 0, :, 20:] = True  # the right half: 800 pixels, containing the mask
    assert float(part_iou(maps, parts)[0, 0, 0]) == pytest.approx(160 / 800, abs=1e-12)


def test_zero_map_has_an_empty_mask_and_zero_iou():
    maps = torch.zeros(1, 2, 14, 14)
    parts = torch.ones(1, 7, 56, 56, dtype=torch.bool)
    assert not top_masks(maps, 56).any()
    assert torch.equal(part_iou(maps, parts), torch.zeros(1, 2, 7, dtype=torch.float64))


def test_negative_values_never_enter_the_mask():
    maps = -_relu_gaussians((1, 1, 6, 6), seed=9)  # all <= 0
    assert not top_masks(maps, 24).any()


def test_part_iou_rejects_part_masks_of_another_size():
    with pytest.raises(ValueError, match="input size"):
        part_iou(torch.rand(1, 2, 14, 14), torch.ones(1, 7, 56, 56, dtype=torch.bool), size=112)


def test_part_iou_rejects_a_different_number_of_images():
    with pytest.raises(ValueError, match="images"):
        part_iou(torch.rand(2, 2, 14, 14), torch.ones(1, 7, 56, 56, dtype=torch.bool))


def test_part_iou_rejects_non_finite_maps():
    maps = torch.rand(1, 2, 14, 14)
    maps[0, 1, 3, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        part_iou(maps, torch.ones(1, 7, 56, 56, dtype=torch.bool))


def test_masks_from_labels_gives_one_mask_per_part():
    labels = torch.tensor([[[0, 1, 2], [5, 7, 0]]], dtype=torch.uint8)
    masks = masks_from_labels(labels)
    assert masks.shape == (1, 7, 2, 3)
    assert torch.equal(masks[0, PARTS.index("hair")], torch.tensor([[False, True, False], [False, False, False]]))
    assert torch.equal(masks[0, PARTS.index("jaw")], torch.tensor([[False, False, False], [False, True, False]]))
    assert int(masks.sum()) == 4  # background belongs to no part


# ------------------------------------------------------------------------------------------------------- PE


def _random_ious(n, c, k, seed=0, empty=0.2):
    g = torch.Generator().manual_seed(seed)
    iou = torch.rand(n, c, k, generator=g, dtype=torch.float64) * 0.5
    iou[torch.rand(n, c, generator=g) < empty] = 0  # empty masks
    return iou


def test_pe_per_image_matches_reference():
    iou = _random_ious(12, 9, 7)
    pe = part_explainability(iou, n_images=5, runs=3)
    expected = torch.tensor(ref.pe_per_image(iou.tolist()), dtype=torch.float64)
    assert float((pe["per_image"] - expected).abs().max()) <= 1e-12


def test_pe_of_a_draw_is_the_mean_of_its_images_and_se_is_sd_over_sqrt_runs():
    iou = _random_ious(30, 4, 7, seed=1)
    pe = part_explainability(iou, n_images=10, runs=4, seed=3)
    draws = torch.tensor(pe["pe_per_draw"], dtype=torch.float64)
    assert pe["draw_size"] == 10 and not pe["all_images_used"]
    assert pe["pe_mean"] == pytest.approx(float(draws.mean()), abs=1e-12)
    sd = math.sqrt(sum((d - float(draws.mean())) ** 2 for d in draws.tolist()) / 3)
    assert pe["pe_se"] == pytest.approx(sd / 2, abs=1e-12)
    per_image = ref.pe_per_image(iou.tolist())
    # every draw's value is the mean of 10 distinct images' PE_I
    for value in pe["pe_per_draw"]:
        assert min(per_image) <= value <= max(per_image)


def test_pe_uses_every_image_when_there_are_fewer_than_asked():
    iou = _random_ious(6, 4, 7, seed=2)
    pe = part_explainability(iou, n_images=100, runs=5)
    assert pe["all_images_used"] and pe["draw_size"] == 6
    assert pe["pe_mean"] == pytest.approx(sum(ref.pe_per_image(iou.tolist())) / 6, abs=1e-12)
    assert pe["pe_se"] == 0.0


def test_pe_draws_depend_on_the_seed_only():
    iou = _random_ious(40, 4, 7, seed=3)
    a = part_explainability(iou, n_images=10, runs=3, seed=1)
    b = part_explainability(iou, n_images=10, runs=3, seed=1)
    c = part_explainability(iou, n_images=10, runs=3, seed=2)
    assert a["pe_per_draw"] == b["pe_per_draw"] != c["pe_per_draw"]


def test_pe_se_is_undefined_for_one_draw():
    assert math.isnan(part_explainability(_random_ious(10, 3, 7), n_images=5, runs=1)["pe_se"])


# ------------------------------------------------------------------------------------------------------- LS


def test_ls_matches_reference():
    iou = _random_ious(15, 10, 7, seed=4, empty=0.3)
    iou[:, 3] = 0  # a channel that never fires
    ls = location_consistency(iou)
    r_ls, r_active, r_per = ref.location_consistency(iou.tolist())
    assert ls["ls"] == pytest.approx(r_ls, abs=1e-12)
    assert ls["channels_active"] == r_active == 9
    for fast, slow in zip(ls["per_channel"].tolist(), r_per):
        assert (slow is None and math.isnan(fast)) or fast == pytest.approx(slow, abs=1e-12)


def test_ls_when_every_image_picks_the_same_part():
    k = 7
    iou = torch.zeros(5, 2, k, dtype=torch.float64)
    iou[:, :, 4] = 0.3
    ls = location_consistency(iou)
    expected = math.sqrt((1 - 1 / k) ** 2 + (k - 1) / k**2) / k
    assert ls["ls"] == pytest.approx(expected, abs=1e-12)
    assert torch.equal(ls["A"][0], torch.eye(k, dtype=torch.float64)[4])


def test_ls_is_zero_when_parts_are_picked_equally_often():
    k = 7
    iou = torch.zeros(k, 1, k, dtype=torch.float64)
    iou[torch.arange(k), 0, torch.arange(k)] = 0.5
    assert location_consistency(iou)["ls"] == pytest.approx(0.0, abs=1e-15)


def test_ls_skips_images_whose_mask_is_empty():
    iou = torch.zeros(4, 1, 3, dtype=torch.float64)
    iou[:2, 0, 1] = 0.2  # two images pick part 1; the other two have empty masks
    active = torch.tensor([[True], [True], [False], [False]])
    ls = location_consistency(iou, active)
    assert int(ls["images_per_channel"][0]) == 2
    assert torch.equal(ls["A"][0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


def test_channel_dictionary_names_the_dominant_part():
    iou = torch.zeros(4, 2, 7, dtype=torch.float64)
    iou[:3, 0, PARTS.index("eyes")] = 0.4
    iou[3, 0, PARTS.index("mouth")] = 0.4
    entries = channel_dictionary(iou, PARTS)
    assert entries[0] == {"channel": 0, "part": "eyes", "frequency": 0.75, "active_images": 4}
    assert entries[1] == {"channel": 1, "part": None, "frequency": 0.0, "active_images": 0}


# --------------------------------------------------------------------------------------------------- report


def _report_inputs(n=6, c=8, seed=0):
    maps = _relu_gaussians((n, c, 14, 14), seed=seed)
    maps[:, 2] = 0  # a dead channel
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(PARTS) + 1, (n, 8, 8), generator=g)
    parts = masks_from_labels(labels.repeat_interleave(7, 1).repeat_interleave(7, 2))  # 56 x 56 blocks
    return maps, parts


def test_report_has_the_promised_keys_and_counts():
    maps, parts = _report_inputs()
    rep = explainability_report(maps, parts, n_images=4, runs=3)
    for key in ("pe_mean", "pe_se", "ls", "ls_channels", "ar_mean", "ar_std", "zero_share", "at_most_two_share"):
        assert isinstance(rep[key], float | int)
    assert rep["images"] == 6 and len(rep["channels"]) == 8
    assert rep["zero_share"] == pytest.approx(1 / 8)
    assert rep["channels"][2]["part"] is None
    assert rep["ls_channels"] == 7


def test_report_is_the_same_when_images_arrive_in_chunks():
    maps, parts = _report_inputs(n=7, seed=1)
    whole = explainability_report(maps, parts, n_images=5, runs=3)
    acc = ExplainabilityAccumulator()
    for s in (slice(0, 3), slice(3, 4), slice(4, 7)):
        acc.add(maps[s], parts[s])
    assert acc.images == 7
    assert acc.report(n_images=5, runs=3) == whole


def test_shuffling_channels_changes_no_metric():
    maps, parts = _report_inputs(n=5, seed=2)
    perm = torch.randperm(maps.shape[1], generator=torch.Generator().manual_seed(0))
    a = explainability_report(maps, parts, n_images=3, runs=3)
    b = explainability_report(maps[:, perm], parts, n_images=3, runs=3)
    for key in ("pe_mean", "pe_se", "ls", "ls_channels", "ar_mean", "ar_std", "zero_share", "at_most_two_share"):
        assert a[key] == pytest.approx(b[key], abs=1e-12), key


# ---------------------------------------------------------------------------------------------- channel overlap


def test_channel_overlap_matches_reference():
    from explainface.evaluate.explainability import channel_overlap

    maps = _relu_gaussians((3, 5, 6, 6), seed=4)
    maps[1, 2] = 0  # an empty mask among full ones
    maps[2, :2] = 0  # two empty masks: their pair counts 0
    fast = channel_overlap(maps, 24)
    slow = ref.channel_overlap(maps.tolist(), 24, 24)
    assert fast.tolist() == pytest.approx(slow, abs=1e-12)


def test_identical_channels_overlap_fully_and_disjoint_blobs_not_at_all():
    from explainface.evaluate.explainability import channel_overlap

    blob = torch.zeros(14, 14, dtype=torch.float64)
    blob[3:6, 3:6] = 1.0
    other = torch.zeros(14, 14, dtype=torch.float64)
    other[9:12, 9:12] = 1.0
    same = torch.stack([blob, blob, blob])[None]
    apart = torch.stack([blob, other])[None]
    assert channel_overlap(same, 56).item() == 1.0
    assert channel_overlap(apart, 56).item() == 0.0
    assert channel_overlap(blob[None, None], 56).item() == 0.0  # one channel: no pair


def test_the_report_gives_the_mean_channel_overlap_over_images():
    from explainface.evaluate.explainability import channel_overlap

    maps = _relu_gaussians((4, 6, 7, 7), seed=5)
    parts = _random_parts(4, len(PARTS), 28, 28, seed=5)
    rep = explainability_report(maps, parts, size=28, n_images=2, runs=2)
    assert rep["channel_overlap"] == pytest.approx(float(channel_overlap(maps, 28).mean()), abs=1e-15)


def test_channel_overlap_on_the_coarser_grid_stays_within_0005_of_the_full_size_one():
    """At 224 px the overlap is computed on 56 px masks (OVERLAP_GRID): measured against full-size masks on
    smooth, blob-like maps like a trained network's."""
    from explainface.evaluate.explainability import OVERLAP_GRID, channel_overlap

    g = torch.Generator().manual_seed(6)
    yy, xx = torch.meshgrid(torch.arange(14.0), torch.arange(14.0), indexing="ij")
    centres = torch.rand(6, 24, 2, 2, generator=g) * 13  # 6 faces x 24 channels x 2 blobs
    widths = 1 + 2 * torch.rand(6, 24, 2, generator=g)
    maps = sum(torch.exp(-((yy - centres[..., k, 0, None, None]) ** 2 + (xx - centres[..., k, 1, None, None]) ** 2)
                         / (2 * widths[..., k, None, None] ** 2)) for k in range(2))  # fmt: skip
    coarse, full = channel_overlap(maps, 224), channel_overlap(maps, 224, grid=None)
    assert OVERLAP_GRID == 56 and 0.02 < float(full.mean()) < 0.5
    assert (coarse - full).abs().max() < 0.005
