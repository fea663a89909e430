"""Yin et al.'s average peak location: the fast accumulator against a float64 loop, and the figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explainface.evaluate.peak_locations import PeakLocations, peak_cells


def naive_peak_locations(maps: np.ndarray, size: int) -> list[dict]:
    """Per channel: mean and std of the strongest cell's centre in input pixels over faces where it fires."""
    b, c, h, w = maps.shape
    out = []
    for k in range(c):
        xs, ys = [], []
        for i in range(b):
            m = maps[i, k]
            best, bi, bj = -math.inf, 0, 0
            for r in range(h):
                for q in range(w):
                    if m[r, q] > best:
                        best, bi, bj = m[r, q], r, q
            if best > 0:
                xs.append((bj + 0.5) * size / w - 0.5)
                ys.append((bi + 0.5) * size / h - 0.5)
        if xs:
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            vx = sum((v - mx) ** 2 for v in xs) / len(xs)
            vy = sum((v - my) ** 2 for v in ys) / len(ys)
            out.append({"active": len(xs), "x": mx, "y": my, "std_x": vx**0.5, "std_y": vy**0.5,
                        "spread": (vx + vy) ** 0.5})  # fmt: skip
        else:
            out.append({"active": 0, "x": None})
    return out


def test_peak_locations_match_a_float64_loop_over_batches():
    g = torch.Generator().manual_seed(3)
    maps = torch.relu(torch.randn(9, 5, 14, 14, generator=g, dtype=torch.float64) - 0.5)
    maps[:, 4] = 0  # a channel that never fires
    maps[2:5, 1] = 0  # one that fires on some faces only
    acc = PeakLocations(112)
    acc.add(maps[:4])
    acc.add(maps[4:])
    rep = acc.report()
    ref = naive_peak_locations(maps.numpy(), 112)
    assert rep["faces"] == 9
    for got, want in zip(rep["channels"], ref):
        assert got["active"] == want["active"]
        if want["x"] is None:
            assert got["x"] is None and got["spread"] is None
            continue
        for key in ("x", "y", "std_x", "std_y", "spread"):
            assert got[key] == pytest.approx(want[key], abs=1e-9)
    assert rep["spread_mean"] == pytest.approx(np.mean([r["spread"] for r in ref if r["x"] is not None]))


def test_a_channel_fixed_on_one_cell_has_zero_spread_at_that_cells_centre():
    maps = torch.zeros(6, 2, 14, 14)
    maps[:, 0, 3, 10] = 1.0  # always the same cell
    maps[torch.arange(6), 1, torch.arange(6), torch.arange(6)] = 1.0  # moves along the diagonal
    acc = PeakLocations(112)
    acc.add(maps)
    rep = acc.report()
    fixed, moving = rep["channels"]
    assert fixed["x"] == pytest.approx(10.5 * 8 - 0.5) and fixed["y"] == pytest.approx(3.5 * 8 - 0.5)
    assert fixed["spread"] == pytest.approx(0.0, abs=1e-9)
    assert moving["spread"] > 10


def test_peak_cells_returns_the_first_maximum_in_raster_order():
    maps = torch.zeros(1, 1, 3, 4)
    maps[0, 0, 1, 2] = maps[0, 0, 2, 0] = 5.0
    r, c, v = peak_cells(maps)
    assert (int(r), int(c), float(v)) == (1, 2, 5.0)


def test_mean_face_and_figure(tmp_path):
    from explainface.evaluate.peak_locations import average_peak_figure

    acc = PeakLocations(32)
    images = np.stack([np.full((32, 32, 3), 10, np.uint8), np.full((32, 32, 3), 30, np.uint8)])
    acc.add(torch.rand(2, 3, 4, 4), images)
    assert (acc.mean_face() == 20).all()
    out = average_peak_figure(acc.mean_face(), acc.report(), {0: "eyes", 1: None}, tmp_path / "p.png")
    import cv2

    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 300


def test_mismatched_channels_are_an_error():
    acc = PeakLocations(112)
    acc.add(torch.rand(1, 3, 14, 14))
    with pytest.raises(ValueError, match="channels"):
        acc.add(torch.rand(1, 4, 14, 14))
