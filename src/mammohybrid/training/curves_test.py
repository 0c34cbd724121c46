"""Test of the training-curves figure."""

from __future__ import annotations

import cv2
import pandas as pd

from mammohybrid.training.curves import plot_training_curves


def test_curves_png_is_written(tmp_path) -> None:
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.7, 0.5, 0.4],
                            "accuracy": [0.5, 0.7, 0.8], "auc": [0.5, 0.8, 0.9],
                            "val_loss": [0.7, 0.6, 0.65],
                            "val_accuracy": [0.5, 0.6, 0.6], "val_auc": [0.5, 0.7, 0.68]})
    path = plot_training_curves(history, tmp_path / "curves.png", best_epoch=2, title="t")
    image = cv2.imread(str(path))
    assert image is not None
    assert image.shape == (400, 1500, 3)  # three 5x4-inch panels at 100 dpi
    assert image.std() > 10  # something is drawn
