"""The figures of a training run: frequency-band monitors (``bands.png``) and the reliability diagram.

Unlike :mod:`tokembed.training.loop` and :mod:`tokembed.training.evaluate` (which compute), this
module only draws; matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..artifacts import make_folder
from .evaluate import EvalResult

__all__ = ["plot_bands", "plot_reliability"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_bands(band_stats: dict, path: Path) -> None:
    """Mean embedding row norm and embedding-gradient row norm per frequency band over the steps (PNG)."""
    plt = _pyplot()

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    steps = band_stats["steps"]
    for i, b in enumerate(band_stats["bands"]):
        label = f"count {b['name']} ({b['n_types']} types)"
        a1.plot(steps, [row[i] for row in band_stats["norm"]], label=label)
        a2.plot(steps, [row[i] if row[i] is not None else float("nan") for row in band_stats["grad_norm"]], label=label)
    a1.set(title="mean embedding row norm per frequency band", xlabel="step", ylabel="‖e_i‖")
    a2.set(title="mean embedding-gradient row norm", xlabel="step", ylabel="‖∂L/∂e_i‖", yscale="log")
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def plot_reliability(result: EvalResult, path: str | os.PathLike, *, title: str = "") -> Path:
    """Reliability diagram: accuracy vs confidence per bin (bars), the diagonal, and the ECE (PNG)."""
    plt = _pyplot()

    rel = result.reliability
    n = len(rel["count"])
    centers = (np.arange(n) + 0.5) / n
    acc = [a if a is not None else 0.0 for a in rel["accuracy"]]
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.bar(centers, acc, width=1.0 / n, edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="accuracy",
           title=title or f"reliability, ECE = {result.ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    make_folder(path.parent, for_path=path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
