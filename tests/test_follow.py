"""The follow test: a channel whose peak moves with the face follows it; one fixed in the image stays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explainface.evaluate.follow import follow_test, peak_moves


def _naive_peak_moves(a: torch.Tensor, b: torch.Tensor, expected: float) -> dict:
    follows = stays = n = 0
    moves = []
    for i in range(a.shape[0]):
        for c in range(a.shape[1]):
            x, y = a[i, c], b[i, c]
            if x.max() <= 0 or y.max() <= 0:
                continue
            (ra, ca), (rb, cb) = divmod(int(x.argmax()), x.shape[1]), divmod(int(y.argmax()), y.shape[1])
            if abs(rb - ra) > 1:
                continue
            n += 1
            follows += abs((cb - ca) - expected) <= 0.5
            stays += cb == ca
            moves.append(cb - ca)
    return {"follows": follows / n, "stays": stays / n, "mean_move_cells": sum(moves) / n, "maps": n}


def test_peak_moves_matches_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(5, 7, 6, 9, generator=g))
    b = torch.relu(torch.randn(5, 7, 6, 9, generator=g))
    b[:2] = torch.roll(a[:2], 2, dims=3)  # some faces moved by exactly 2 cells
    b[2, :3] = a[2, :3]  # some channels that stay
    a[3, 0] = 0.0  # a dead map does not count
    fast, slow = peak_moves(a, b, 2.0), _naive_peak_moves(a, b, 2.0)
    assert fast == pytest.approx(slow)
    assert fast["maps"] < 35


class _Net(nn.Module):
    """Target layer = the image averaged to 14 x 14 (moves with the image), or a fixed map (never moves)."""

    input_size = 112
    target_layer = "features"

    def __init__(self, fixed: bool) -> None:
        super().__init__()
        self.fixed = fixed
        self.features = nn.Identity()
        m = torch.zeros(1, 3, 14, 14)
        m[0, :, 4, 6] = 1.0
        self.register_buffer("map", m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = (
            self.map.expand(x.shape[0], -1, -1, -1) + 0 * x[:, :, :14, :14]
            if self.fixed
            else nn.functional.avg_pool2d(x, 8)
        )
        return self.features(f).flatten(1)


def test_a_map_that_moves_with_the_image_follows_and_a_fixed_one_stays():
    rng = np.random.default_rng(0)
    images = []
    for _ in range(6):
        img = np.full((112, 112, 3), 20, np.uint8)
        y, x = rng.integers(20, 80, size=2)
        img[y : y + 8, x : x + 8] = 250  # a bright "part" well inside the image
        images.append(img)
    moving = follow_test(_Net(fixed=False), images, shift=16)
    assert moving["expected_cells"] == 2 and moving["follows"] > 0.9 and moving["stays"] < 0.1
    fixed = follow_test(_Net(fixed=True), images, shift=16)
    assert fixed["follows"] == 0 and fixed["stays"] == 1
