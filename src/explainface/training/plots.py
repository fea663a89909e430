"""Training curves as a picture: identity loss, each regulariser's loss and beta per step, verification accuracy."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def plot_curves(
    out_dir: str | Path,
    path: str | Path | None = None,
    runs: dict[str, Path] | None = None,
    colors: dict[str, str] | None = None,
) -> Path:
    """Draw `curves.png` for one run directory (or several runs, `runs={label: dir}`, into `path`; `colors`
    optionally gives a run label its colour, e.g. one per method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from explainface.training.trainer import read_metrics

    runs = runs or {Path(out_dir).name: Path(out_dir)}
    colors = colors or {}
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for label, d in runs.items():
        m = read_metrics(d)
        if len(m["step"]) == 0:
            continue
        style = {"color": colors[label]} if label in colors else {}
        axes[0].plot(m["step"], m["id_loss"], label=label, **style)
        for col in m:
            if col.endswith(".loss") or col.endswith(".beta"):
                name = col.rsplit(".", 1)[0]
                tag = label if len(runs) > 1 else name
                if col.endswith(".loss"):
                    axes[1].plot(m["step"], m[col], label=tag, **style)
                else:
                    axes[2].semilogy(m["step"], np.maximum(m[col], 1e-12), label=tag, **style)
        val = Path(d) / "val.csv"
        if val.is_file():
            with val.open() as f:
                rows = list(csv.DictReader(f))
            if rows:
                axes[3].plot(
                    [int(r["step"]) for r in rows],
                    [100 * float(r["accuracy"]) for r in rows],
                    "o-",
                    label=label,
                    **style,
                )
    titles = ["identity loss", "regulariser loss (ECLoss = -MI, nats)", "beta", "verification accuracy (%)"]
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if not ax.has_data():
            ax.text(0.5, 0.5, "not logged in these runs", ha="center", va="center", transform=ax.transAxes,
                    color="0.4")  # fmt: skip
            ax.set_xticks([]), ax.set_yticks([])
        elif len(ax.get_legend_handles_labels()[1]) <= 12:
            ax.legend(fontsize=8)
    fig.tight_layout()
    target = Path(path) if path else Path(out_dir) / "curves.png"
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target
