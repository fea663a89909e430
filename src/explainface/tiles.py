"""Figures as grids of square tiles at fixed positions in inches (`TileGrid`): a figure's size follows from its rows
and columns alone, and a tile can be found again in the PNG. Every picture the package draws is built on it
(`explanations.figures`, `evaluate.peak_locations`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Figure resolution (pixels per inch) and tile geometry in inches.
DPI = 100
TILE = 1.25
GAP = 0.08
#: Room above a tile for its title (e.g. "ch 17 (0.83)").
TITLE = 0.28


@dataclass(frozen=True)
class TileGrid:
    """`rows` x `cols` square tiles of `tile` inches, `hgap` apart horizontally and `vgap` vertically, inside
    margins (inches); `top` holds the figure title, `left` the row labels. The figure is at least `min_width`
    wide (the title must fit), widened on the right."""

    rows: int
    cols: int
    left: float = 0.75
    right: float = 0.12
    top: float = 0.55
    bottom: float = 0.12
    hgap: float = GAP
    vgap: float = GAP
    tile: float = TILE
    min_width: float = 3.2

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) in inches."""
        w = max(self.left + self.cols * self.tile + (self.cols - 1) * self.hgap + self.right, self.min_width)
        h = self.top + self.rows * self.tile + (self.rows - 1) * self.vgap + self.bottom
        return w, h

    def box(self, r: int, c: int) -> tuple[float, float]:
        """Top-left corner of tile (r, c) in inches from the figure's top-left."""
        return self.left + c * (self.tile + self.hgap), self.top + r * (self.tile + self.vgap)

    def box_px(self, r: int, c: int, dpi: int = DPI) -> tuple[int, int, int, int]:
        """Tile (r, c) in PNG pixels: (x0, y0, x1, y1), x1/y1 exclusive."""
        x, y = self.box(r, c)
        return round(x * dpi), round(y * dpi), round((x + self.tile) * dpi), round((y + self.tile) * dpi)

    def rect(self, x: float, y: float, w: float, h: float) -> list[float]:
        """An axes rectangle given in inches from the top-left, as matplotlib's figure fractions."""
        fw, fh = self.size
        return [x / fw, 1.0 - (y + h) / fh, w / fw, h / fh]

    def figure(self):
        from matplotlib.figure import Figure

        return Figure(figsize=self.size, dpi=DPI, facecolor="white")

    def tile_axes(self, fig, r: int, c: int):
        x, y = self.box(r, c)
        ax = fig.add_axes(self.rect(x, y, self.tile, self.tile))
        ax.set_axis_off()
        return ax

    def text(self, fig, x: float, y: float, s: str, **kw):
        """Text at (x, y) inches from the top-left."""
        fw, fh = self.size
        return fig.text(x / fw, 1.0 - y / fh, s, **kw)


def save_figure(fig, out_png: str | Path) -> Path:
    """`fig` written as a PNG at `DPI` on white (folders made as needed)."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, facecolor="white")
    return out


def figure_header(fig, grid: TileGrid, x: float, title: str, subtitle: str = "") -> None:
    """The figure's title (one line) and a small subtitle wrapped to the figure's width (at most two lines)."""
    import textwrap

    grid.text(fig, x, 0.25, title, fontsize=11, va="center")
    if subtitle:
        chars = max(20, int((grid.size[0] - x - 0.1) / 0.066))  # about 0.066 inch per character at 8 pt
        lines = textwrap.wrap(subtitle, chars)
        text = "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")
        grid.text(fig, x, 0.4, text, fontsize=8, va="top", color="0.3", linespacing=1.3)
