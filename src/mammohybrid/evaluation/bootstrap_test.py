import numpy as np
import pytest

from mammohybrid.evaluation.bootstrap import (
    bootstrap_intervals,
    bootstrap_metric_samples,
    patient_resample_weights,
)
from mammohybrid.evaluation.metrics import METRIC_NAMES, compute_metrics


def _two_views_per_patient(n_patients: int = 200, seed: int = 0):
    """Each patient has two images (CC and MLO) with one label and correlated scores."""
    rng = np.random.default_rng(seed)
    patient_labels = rng.integers(0, 2, n_patients)
    patient_scores = np.clip(0.25 * patient_labels + rng.normal(0.4, 0.2, n_patients), 0, 1)
    patients = np.repeat([f"P{i:04d}" for i in range(n_patients)], 2)
    labels = np.repeat(patient_labels, 2)
    scores = np.clip(np.repeat(patient_scores, 2) + rng.normal(0, 0.03, 2 * n_patients), 0, 1)
    return labels, scores, patients


def test_weights_resample_patients_not_images():
    patients = np.array(["a", "a", "b", "c", "c", "c"])
    weights = patient_resample_weights(patients, 500, np.random.default_rng(1))
    assert weights.shape == (500, 6)
    # All images of a patient always share a weight: drawn together or not at all.
    assert np.array_equal(weights[:, 0], weights[:, 1])
    assert np.array_equal(weights[:, 3], weights[:, 4]) and np.array_equal(weights[:, 4],
                                                                           weights[:, 5])
    # Each resample draws exactly as many patients as there are (3).
    assert np.array_equal(weights[:, [0, 2, 3]].sum(axis=1), np.full(500, 3.0))
    # Each patient is drawn once on average.
    assert weights[:, [0, 2, 3]].mean(axis=0) == pytest.approx([1, 1, 1], abs=0.15)


def test_samples_equal_metrics_on_explicitly_resampled_patients():
    labels, scores, patients = _two_views_per_patient(30, seed=2)
    samples = bootstrap_metric_samples(labels, scores, patients, 0.5, n_resamples=20, seed=7)
    # Rebuild the same resamples by hand: same generator, same draws.
    weights = patient_resample_weights(patients, 20, np.random.default_rng(7))
    for b in range(20):
        index = np.repeat(np.arange(labels.size), weights[b].astype(int))
        reference = compute_metrics(labels[index], scores[index], 0.5)
        for name in METRIC_NAMES:
            expected = np.nan if name in reference.undefined else reference[name]
            assert samples[name][b] == pytest.approx(expected, nan_ok=True), name


def test_intervals_cover_point_estimate_and_are_seeded():
    labels, scores, patients = _two_views_per_patient()
    point = compute_metrics(labels, scores, 0.5)
    result = bootstrap_intervals(labels, scores, patients, 0.5, n_resamples=2000, seed=3)
    for name in METRIC_NAMES:
        low, high = result.intervals[name]
        assert low <= point[name] <= high, name
        assert 0 < high - low < 0.3, name
    again = bootstrap_intervals(labels, scores, patients, 0.5, n_resamples=2000, seed=3)
    assert again.intervals == result.intervals
    other = bootstrap_intervals(labels, scores, patients, 0.5, n_resamples=2000, seed=4)
    assert other.intervals != result.intervals
    out = result.to_dict()
    assert out["auc_ci95"] == list(result.intervals["auc"])
    assert out["ci"]["patients"] == 200 and out["ci"]["resamples"] == 2000


def test_patient_bootstrap_is_wider_than_image_bootstrap_for_duplicated_views():
    # Two near-identical views per patient: treating images as independent halves the
    # variance; resampling patients must give a visibly wider interval.
    labels, scores, patients = _two_views_per_patient(150, seed=5)
    by_patient = bootstrap_intervals(labels, scores, patients, 0.5, 2000, seed=0)
    by_image = bootstrap_intervals(labels, scores, np.arange(labels.size), 0.5, 2000, seed=0)
    width = {name: r.intervals["auc"][1] - r.intervals["auc"][0]
             for name, r in (("patient", by_patient), ("image", by_image))}
    assert width["patient"] > 1.2 * width["image"]


def test_level_controls_width_and_key_name():
    labels, scores, patients = _two_views_per_patient(100)
    wide = bootstrap_intervals(labels, scores, patients, 0.5, 1000, level=0.95, seed=0)
    narrow = bootstrap_intervals(labels, scores, patients, 0.5, 1000, level=0.5, seed=0)
    assert (narrow.intervals["auc"][1] - narrow.intervals["auc"][0]
            < wide.intervals["auc"][1] - wide.intervals["auc"][0])
    assert "auc_ci50" in narrow.to_dict() and "auc_ci95" in wide.to_dict()


def test_undefined_resamples_are_counted_not_averaged():
    # One malignant patient among ten: about a third of the resamples miss it entirely.
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    scores = np.linspace(0.9, 0.0, 10)
    patients = np.arange(10)
    result = bootstrap_intervals(labels, scores, patients, 0.5, 1000, seed=0)
    missing = result.undefined_resamples["sensitivity"]
    assert 250 < missing < 450  # (9/10)^10 = 0.35
    assert result.undefined_resamples["auc"] == missing
    assert result.intervals["sensitivity"] == (1.0, 1.0)
    assert result.to_dict()["ci"]["undefined_resamples"]["sensitivity"] == missing


def test_no_resamples_gives_null_intervals():
    result = bootstrap_intervals([0, 1], [0.2, 0.8], ["a", "b"], 0.5, n_resamples=0)
    assert all(v is None for v in result.intervals.values())
    assert result.to_dict()["f1_ci95"] == [None, None]
