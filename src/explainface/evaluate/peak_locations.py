"""Where each channel peaks, on average over many faces: Yin et al.'s "average location" of a filter's response.

For every face and channel the strongest cell of the target map is its peak; its centre is mapped to input
pixels (cell (i, j) of an h x w map of an S-pixel input is centred at ((j + 0.5) S / w - 0.5, (i + 0.5) S / h -
0.5)). Over the faces where the channel fires at all (its maximum > 0), the mean location and the standard
deviation per axis say where the channel looks and how steadily: a part detector on roughly aligned faces has a
small spread (its part moves only with the face), a channel that fires anywhere a large one. ``spread`` is
sqrt(var_x + var_y) in pixels; a channel that never fires has none (NaN). The mean face (the average input crop)
is kept for the figure (`average_peak_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from explainface.parts.labels import PART_COLORS
from explainface.tiles import TileGrid, figure_header, save_figure


def peak_cells(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, col, max value) of each map's strongest cell, each [B, C]; ties go to the first cell in raster order."""
    b, c, h, w = maps.shape
    value, flat = maps.reshape(b, c, h * w).max(dim=2)
    return torch.div(flat, w, rounding_mode="floor"), flat % w, value


class PeakLocations:
    """Accumulates, per channel, the count, sum and sum of squares of its peak location over faces (float64)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.n = self.sx = self.sy = self.sxx = self.syy = None
        self.faces = 0
        self.face_sum: np.ndarray | None = None

    def add(self, maps: torch.Tensor, images: np.ndarray | None = None) -> None:
        """Add a batch of target maps [B, C, h, w] (and, for the mean face, the uint8 crops [B, S, S, 3])."""
        if maps.dim() != 4:
            raise ValueError(f"expected maps [B, C, H, W], got shape {tuple(maps.shape)}")
        _, c, h, w = maps.shape
        rows, cols, value = peak_cells(maps.detach().float().cpu())
        x = (cols.double() + 0.5) * self.size / w - 0.5
        y = (rows.double() + 0.5) * self.size / h - 0.5
        on = (value > 0).double()
        if self.n is None:
            self.n, self.sx, self.sy, self.sxx, self.syy = (torch.zeros(c, dtype=torch.float64) for _ in range(5))
        elif self.n.numel() != c:
            raise ValueError(f"maps have {c} channels, earlier batches had {self.n.numel()}")
        self.n += on.sum(0)
        self.sx += (on * x).sum(0)
        self.sy += (on * y).sum(0)
        self.sxx += (on * x * x).sum(0)
        self.syy += (on * y * y).sum(0)
        self.faces += maps.shape[0]
        if images is not None:
            s = np.asarray(images, dtype=np.float64).sum(0)
            self.face_sum = s if self.face_sum is None else self.face_sum + s

    def report(self) -> dict:
        """{"channels": [{channel, active, x, y, std_x, std_y, spread}], "spread_mean": mean spread of the channels
        that fire, "faces": N}; coordinates in input pixels."""
        if self.n is None:
            raise ValueError("no maps added")
        n = self.n
        safe = n.clamp(min=1)
        mx, my = self.sx / safe, self.sy / safe
        vx = (self.sxx / safe - mx * mx).clamp(min=0)
        vy = (self.syy / safe - my * my).clamp(min=0)
        channels = []
        for k in range(n.numel()):
            active = int(n[k])
            channels.append({
                "channel": k,
                "active": active,
                "x": float(mx[k]) if active else None,
                "y": float(my[k]) if active else None,
                "std_x": float(vx[k].sqrt()) if active else None,
                "std_y": float(vy[k].sqrt()) if active else None,
                "spread": float((vx[k] + vy[k]).sqrt()) if active else None,
            })  # fmt: skip
        spreads = [ch["spread"] for ch in channels if ch["spread"] is not None]
        return {
            "faces": self.faces,
            "size": self.size,
            "channels": channels,
            "spread_mean": float(np.mean(spreads)) if spreads else None,
        }

    def mean_face(self) -> np.ndarray | None:
        """The average input crop, uint8 [S, S, 3] (None when no images were added)."""
        if self.face_sum is None:
            return None
        return np.clip(np.rint(self.face_sum / self.faces), 0, 255).astype(np.uint8)


def average_peak_figure(
    mean_face: np.ndarray,
    report: Mapping,
    channel_parts: Mapping[int, str | None] | None = None,
    out_png: str | Path = "average_peaks.png",
    title: str = "Average peak location of each channel",
) -> Path:
    """Yin et al.'s "average location" figure: on the mean face, each channel's mean peak location (a dot in the
    colour of its dominant part, grey when it has none) with its one-standard-deviation ellipse
    (`evaluate.peak_locations.PeakLocations.report`)."""
    from matplotlib.patches import Ellipse

    grid = TileGrid(1, 1, left=0.15, top=0.75, tile=3.6, min_width=3.9)
    fig = grid.figure()
    spread = report.get("spread_mean")
    sub = (f"{report['faces']} faces; dot = mean peak, ellipse = 1 s.d.; mean spread "
           f"{spread:.1f} px" if spread is not None else f"{report['faces']} faces")  # fmt: skip
    figure_header(fig, grid, grid.left, title, sub)
    ax = grid.tile_axes(fig, 0, 0)
    size = int(report["size"])
    ax.imshow(mean_face, extent=(-0.5, size - 0.5, size - 0.5, -0.5))
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    for ch in report["channels"]:
        if ch["x"] is None:
            continue
        part = (channel_parts or {}).get(ch["channel"])
        rgb = np.array(PART_COLORS.get(part, (160, 160, 160)) if part else (160, 160, 160)) / 255.0
        ax.add_patch(Ellipse((ch["x"], ch["y"]), 2 * ch["std_x"], 2 * ch["std_y"], fill=False, lw=0.6,
                             edgecolor=(*rgb, 0.55)))  # fmt: skip
        ax.plot(ch["x"], ch["y"], "o", ms=3.2, color=rgb, mec="white", mew=0.4)
    return save_figure(fig, out_png)
