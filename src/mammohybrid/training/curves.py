"""Training curves like the paper's Figs. 11-13: loss, accuracy and AUC per epoch, training
and validation, with the best epoch (by validation AUC, ties by validation loss) marked."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt
import pandas as pd

from mammohybrid.fileio import atomic_path

PANELS = (("loss", "Loss (binary cross-entropy)"), ("accuracy", "Accuracy"), ("auc", "AUC"))


def plot_training_curves(history: pd.DataFrame, path: str | os.PathLike[str],
                         best_epoch: int | None = None, title: str = "") -> Path:
    """Write a PNG with one panel per metric (train and val curves); return its path."""
    figure, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 4), dpi=100)
    for axis, (key, label) in zip(axes, PANELS, strict=True):
        for column, name, style in ((key, "train", "-"), (f"val_{key}", "validation", "--")):
            if column in history.columns:
                axis.plot(history["epoch"], history[column], style, marker=".", label=name)
        if best_epoch is not None:
            axis.axvline(best_epoch, color="grey", linewidth=0.8, linestyle=":",
                         label=f"best epoch ({best_epoch})")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return path
