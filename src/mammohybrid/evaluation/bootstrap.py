"""Confidence intervals by bootstrap resampling of patients (a cluster bootstrap).

Images of one patient are not independent (a lesion is usually seen in two views, CC and MLO,
and a patient can have several lesions), so resampling images would make the intervals too
narrow. Each resample draws patients with replacement, and a patient drawn k times contributes
all of their images k times.

The resamples are represented as a weight matrix ``(resamples, images)`` (weight = how many
times the image's patient was drawn), so every metric of every resample is a few matrix
products: 2000 resamples of 400 images take a fraction of a second.

Intervals are percentile intervals over the resamples in which a metric is defined (a resample
without malignant cases has no sensitivity); how many resamples were left out is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mammohybrid.decision import predict_labels
from mammohybrid.evaluation.metrics import METRIC_NAMES, metrics_from_counts, weighted_auc

# Upper bound on the size of one block of the weight matrix (resamples x images), to keep
# memory flat for large test sets (8 bytes each: 32 MB).
_BLOCK_ELEMENTS = 4_000_000


def patient_resample_weights(patient_ids: np.ndarray, n_resamples: int,
                             rng: np.random.Generator) -> np.ndarray:
    """Weights ``(n_resamples, n_images)``: how often each image's patient was drawn.

    Each row draws as many patients as there are, uniformly with replacement; all images of one
    patient always share a weight.
    """
    patients, index = np.unique(np.asarray(patient_ids).astype(str), return_inverse=True)
    draws = rng.multinomial(len(patients), np.full(len(patients), 1.0 / len(patients)),
                            size=n_resamples)
    return draws[:, index].astype(float)


def bootstrap_metric_samples(labels: np.ndarray, probabilities: np.ndarray,
                             patient_ids: np.ndarray, threshold: float, n_resamples: int,
                             seed: int = 0) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRIC_NAMES` on ``n_resamples`` patient resamples (NaN where a
    resample leaves a metric undefined). Deterministic for a given ``seed``."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = predict_labels(probabilities, threshold)
    indicators = np.stack([(labels == 1) & (predicted == 1), (labels == 0) & (predicted == 1),
                           (labels == 0) & (predicted == 0), (labels == 1) & (predicted == 0)],
                          axis=1).astype(float)  # columns: tp, fp, tn, fn
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // max(1, labels.size))
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    for start in range(0, n_resamples, block):
        weights = patient_resample_weights(patient_ids, min(block, n_resamples - start), rng)
        tp, fp, tn, fn = (weights @ indicators).T
        values = metrics_from_counts(tp, fp, tn, fn)
        values["auc"] = weighted_auc(labels, probabilities, weights)
        for name in METRIC_NAMES:
            chunks[name].append(values[name])
    return {name: np.concatenate(parts) if parts else np.empty(0)
            for name, parts in chunks.items()}


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals of every metric, and how they were obtained."""

    intervals: dict[str, tuple[float, float] | None]  # None: undefined in every resample
    level: float
    n_resamples: int
    n_patients: int
    seed: int
    undefined_resamples: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        """``<metric>_ciNN`` keys plus a ``ci`` block describing the method."""
        out: dict[str, object] = {}
        for name in METRIC_NAMES:
            interval = self.intervals.get(name)
            out[interval_key(name, self.level)] = (list(interval) if interval is not None
                                                else [None, None])
        out["ci"] = {
            "method": "percentile bootstrap, resampling patients with replacement",
            "level": self.level, "resamples": self.n_resamples, "patients": self.n_patients,
            "seed": self.seed,
            "undefined_resamples": {k: v for k, v in self.undefined_resamples.items() if v},
        }
        return out


def interval_key(name: str, level: float) -> str:
    """The metrics.json key of a metric's interval: ``auc_ci95`` for AUC at a 95 % level."""
    return f"{name}_ci{round(level * 100):d}"


def bootstrap_intervals(labels: np.ndarray, probabilities: np.ndarray, patient_ids: np.ndarray,
                        threshold: float, n_resamples: int = 2000, level: float = 0.95,
                        seed: int = 0) -> BootstrapIntervals:
    """Patient-level percentile bootstrap intervals of every metric at ``threshold``."""
    n_patients = int(np.unique(np.asarray(patient_ids).astype(str)).size)
    if n_resamples <= 0 or n_patients == 0:
        return BootstrapIntervals({name: None for name in METRIC_NAMES}, level, 0, n_patients,
                                  seed, {name: 0 for name in METRIC_NAMES})
    samples = bootstrap_metric_samples(labels, probabilities, patient_ids, threshold,
                                       n_resamples, seed)
    tail = (1.0 - level) / 2.0
    intervals: dict[str, tuple[float, float] | None] = {}
    undefined: dict[str, int] = {}
    for name, values in samples.items():
        defined = values[~np.isnan(values)]
        undefined[name] = int(values.size - defined.size)
        intervals[name] = (None if defined.size == 0 else
                           (float(np.quantile(defined, tail)),
                            float(np.quantile(defined, 1.0 - tail))))
    return BootstrapIntervals(intervals, level, n_resamples, n_patients, seed, undefined)
