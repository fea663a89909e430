"""Training curves as a picture: losses, MI and beta per step, verification accuracy."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def plot_curves(out_dir: str | Path, path: str | Path | None = None, runs: dict[str, Path] | None = None) -> Path:
    """Draw `curves.png` for one run directory (or several runs, `runs={label: dir}`, into `path`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from explainface.train.trainer import read_metrics

    runs = runs or {Path(out_dir).name: Path(out_dir)}
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for label, d in runs.items():
        m = read_metrics(d)
        if len(m["step"]) == 0:
            continue
        axes[0].plot(m["step"], m["id_loss"], label=label)
        axes[1].plot(m["step"], m["mi"], label=label)
        axes[2].semilogy(m["step"], np.maximum(m["beta"], 1e-12), label=label)
        val = Path(d) / "val.csv"
        if val.is_file():
            with val.open() as f:
                rows = list(csv.DictReader(f))
            if rows:
                axes[3].plot(
                    [int(r["step"]) for r in rows], [100 * float(r["accuracy"]) for r in rows], "o-", label=label
                )
    titles = ["identity loss", "MI(T; X) (nats; ECLoss = -MI)", "beta", "verification accuracy (%)"]
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.tight_layout()
    target = Path(path) if path else Path(out_dir) / "curves.png"
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target
