"""Tests of the per-epoch logs computed outside Keras' metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mammohybrid.training.callbacks import epoch_logs


def test_epoch_logs_match_hand_computed_values():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.4, 0.9])
    logs = epoch_logs(labels, probabilities, "val_")
    # Pairs (positive, negative) ordered correctly: (0.4 > 0.1), (0.9 > 0.1), (0.9 > 0.6): 3 of 4.
    assert logs["val_auc"] == pytest.approx(0.75)
    assert logs["val_accuracy"] == pytest.approx(0.5)  # 0.1 and 0.9 right at 0.5
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert logs["val_loss"] == pytest.approx(expected_loss)


def test_exact_auc_separates_probabilities_a_binned_auc_lumps_together():
    # All within one of Keras' 200 AUC bins: the binned AUC cannot order them; the exact can.
    labels = np.array([0, 1, 0, 1])
    probabilities = 0.5 + np.array([1e-5, 2e-5, 3e-5, 4e-5])
    assert epoch_logs(labels, probabilities)["auc"] == pytest.approx(0.75)


def test_one_class_gives_nan_auc_and_clipped_loss():
    logs = epoch_logs(np.array([1, 1]), np.array([1.0, 0.0]))
    assert math.isnan(logs["auc"])
    assert logs["loss"] == pytest.approx(-np.log(1e-7) / 2)
