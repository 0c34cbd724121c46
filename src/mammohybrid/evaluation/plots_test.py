import cv2
import numpy as np

from mammohybrid.evaluation.metrics import Confusion
from mammohybrid.evaluation.plots import (
    RocInput,
    plot_confusion_matrix,
    plot_roc,
)


def _image(path):
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 200
    return image


def test_confusion_matrix_png(tmp_path):
    path = plot_confusion_matrix(Confusion(tn=40, fp=10, fn=5, tp=45), tmp_path / "cm.png")
    image = _image(path)
    assert image.std() > 20  # not a blank canvas


def test_confusion_matrix_with_an_empty_row(tmp_path):
    _image(plot_confusion_matrix(Confusion(tn=3, fp=1, fn=0, tp=0), tmp_path / "cm.png"))


def test_roc_png_with_operating_point_and_single_class_curve(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 100)
    scores = np.clip(0.3 * labels + rng.normal(0.4, 0.2, 100), 0, 1)
    path = plot_roc([RocInput("test", labels, scores, 0.5),
                     RocInput("one class", np.zeros(5), np.linspace(0, 1, 5))],
                    tmp_path / "roc.png")
    _image(path)
