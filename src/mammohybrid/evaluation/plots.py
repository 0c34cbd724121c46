"""Figures for people: the confusion matrix (the paper's Figs. 14-16) and ROC curves with their
AUC (Fig. 17). The training curves (Figs. 11-13) are drawn by training
(:mod:`mammohybrid.training.curves`) and copied into evaluation reports.

Every function writes one PNG atomically and returns its path. Matplotlib runs on the
non-interactive Agg backend, so no display is needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from mammohybrid.evaluation.metrics import Confusion, weighted_auc
from mammohybrid.fileio import atomic_path

CLASS_NAMES = ("Benign", "Malignant")
_DPI = 120


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=_DPI, bbox_inches="tight", format="png")
    plt.close(figure)
    return path


def plot_confusion_matrix(confusion: Confusion, path: str | os.PathLike[str],
                          title: str = "Confusion matrix") -> Path:
    """A 2x2 matrix, rows = true class, columns = predicted class, each cell with its count and
    its share of the true class (so the diagonal reads as specificity and sensitivity)."""
    matrix = confusion.matrix()
    row_totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(row_totals > 0, matrix / np.maximum(row_totals, 1), 0.0)
    figure, axes = plt.subplots(figsize=(4.6, 4.0))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if shares[row, col] > 0.6 else "black"
        axes.text(col, row, f"{count}\n{shares[row, col]:.1%}", ha="center", va="center",
                  color=colour, fontsize=13)
    axes.set_xticks([0, 1], CLASS_NAMES)
    axes.set_yticks([0, 1], CLASS_NAMES)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")
    axes.set_title(title)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("share of the true class")
    return _save(figure, path)


@dataclass(frozen=True)
class RocInput:
    """One curve to draw: a name, the labels and scores, and optionally the operating point."""

    name: str
    labels: np.ndarray
    scores: np.ndarray
    threshold: float | None = None


def plot_roc(curves: Sequence[RocInput], path: str | os.PathLike[str],
             title: str = "ROC curve") -> Path:
    """ROC curves with the AUC in the legend, the chance diagonal, and the operating point at
    each curve's threshold (where given). Curves whose labels hold one class are skipped with a
    note in the legend (no ROC curve exists)."""
    figure, axes = plt.subplots(figsize=(5.0, 4.8))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance (0.50)")
    many = len(curves) > 3
    for curve in curves:
        labels = np.asarray(curve.labels).astype(int)
        scores = np.asarray(curve.scores, dtype=float)
        if np.unique(labels).size < 2:
            axes.plot([], [], " ", label=f"{curve.name}: one class only, no ROC")
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        auc = float(weighted_auc(labels, scores))
        line, = axes.plot(fpr, tpr, linewidth=1.0 if many else 2.0, alpha=0.6 if many else 1.0,
                          label=f"{curve.name} (AUC = {auc:.3f})")
        if curve.threshold is not None:
            predicted = scores >= curve.threshold
            op_tpr = predicted[labels == 1].mean()
            op_fpr = predicted[labels == 0].mean()
            axes.plot([op_fpr], [op_tpr], "o", color=line.get_color(), markersize=7,
                      markeredgecolor="black",
                      label=f"threshold {curve.threshold:.3g}" if not many else None)
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_xlabel("False positive rate (1 - specificity)")
    axes.set_ylabel("True positive rate (sensitivity)")
    axes.set_title(title)
    axes.set_aspect("equal")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8 if many else 9)
    return _save(figure, path)
