"""Binary classification metrics with the positive class = malignant (label 1).

Every metric is computed from the confusion counts by one vectorised function
(:func:`metrics_from_counts`), so the point estimate and each bootstrap resample
(:mod:`mammohybrid.evaluation.bootstrap`) use exactly the same arithmetic.

A case is predicted malignant when its probability is **at or above** the threshold
(``probability >= threshold``), the convention of :func:`sklearn.metrics.roc_curve` and therefore
of the thresholds chosen on validation (:mod:`mammohybrid.decision`).

Undefined metrics (the convention, identical to scikit-learn's with ``zero_division=0``):

- a ratio whose denominator is zero (sensitivity without malignant cases, specificity without
  benign cases, precision when nothing is predicted malignant, F1 when there is neither a
  malignant case nor a malignant prediction, accuracy of an empty set) is ``zero_division``
  (0.0 by default) in :class:`Metrics` values;
- the AUC of a set holding a single class is NaN: no number would be honest there;
- every undefined metric is named in :attr:`Metrics.undefined` with the reason; in JSON
  (:meth:`Metrics.to_dict`, ``metrics.json``) it is ``null``, and reports show the reason instead
  of a number.

``paper_eq6_score`` is the paper's Eq. 6, 2·specificity·precision / (specificity + precision).
The paper calls it F1; it is not (F1 is 2·precision·recall / (precision + recall)). It is kept,
under its own name, only so that the paper's Table 5 can be compared with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from mammohybrid.decision import predict_labels

# The metrics every evaluation reports, in the order reports show them.
METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "precision", "f1", "auc",
                "paper_eq6_score")

METRIC_LABELS = {
    "accuracy": "Accuracy",
    "sensitivity": "Sensitivity (TPR, recall)",
    "specificity": "Specificity (TNR)",
    "precision": "Precision (PPV)",
    "f1": "F1 = 2PR/(P+R)",
    "auc": "ROC AUC",
    "paper_eq6_score": "Paper's Eq. 6 = 2·Spec·Prec/(Spec+Prec) (not F1)",
}

PAPER_EQ6_NOTE = ("paper_eq6_score is the paper's Eq. 6, 2·specificity·precision / "
                  "(specificity + precision), which the paper calls F1. It is not the F1 score "
                  "(2·precision·sensitivity / (precision + sensitivity)) and is shown only to "
                  "compare with the paper's Table 5.")

_UNDEFINED_REASONS = {
    "accuracy": "no case (n = 0)",
    "sensitivity": "no malignant case (TP + FN = 0)",
    "specificity": "no benign case (TN + FP = 0)",
    "precision": "no case predicted malignant (TP + FP = 0)",
    "f1": "no malignant case and none predicted malignant (2TP + FP + FN = 0)",
    "auc": "needs both classes",
    "paper_eq6_score": "specificity or precision undefined, or both zero",
}


@dataclass(frozen=True)
class Confusion:
    """Confusion counts for positive = malignant."""

    tn: int
    fp: int
    fn: int
    tp: int

    @classmethod
    def from_labels(cls, labels: np.ndarray, predicted: np.ndarray) -> Confusion:
        labels = np.asarray(labels).astype(int)
        predicted = np.asarray(predicted).astype(int)
        return cls(tn=int(np.sum((labels == 0) & (predicted == 0))),
                   fp=int(np.sum((labels == 0) & (predicted == 1))),
                   fn=int(np.sum((labels == 1) & (predicted == 0))),
                   tp=int(np.sum((labels == 1) & (predicted == 1))))

    def matrix(self) -> np.ndarray:
        """``[[TN, FP], [FN, TP]]``: rows true class, columns predicted (scikit-learn's layout)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]])

    def to_dict(self) -> dict[str, int]:
        return {"tn": self.tn, "fp": self.fp, "fn": self.fn, "tp": self.tp}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is zero."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                        np.nan)


def paper_eq6_score(specificity: np.ndarray | float, precision: np.ndarray | float) -> np.ndarray:
    """The paper's Eq. 6: 2·specificity·precision / (specificity + precision). **Not F1.**

    NaN where both inputs are zero or either is NaN.
    """
    specificity = np.asarray(specificity, dtype=float)
    precision = np.asarray(precision, dtype=float)
    return _ratio(2 * specificity * precision, specificity + precision)


def metrics_from_counts(tp: ArrayLike, fp: ArrayLike, tn: ArrayLike,
                        fn: ArrayLike) -> dict[str, np.ndarray]:
    """Every threshold metric from confusion counts (scalars or arrays of any shape).

    Counts may be non-integer (bootstrap weights). Undefined values are NaN here; see the module
    doc for how :func:`compute_metrics` reports them.
    """
    tp, fp, tn, fn = (np.asarray(x, dtype=float) for x in (tp, fp, tn, fn))
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    precision = _ratio(tp, tp + fp)
    return {
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        # 2TP / (2TP + FP + FN) equals 2PR / (P + R) wherever both are defined, and is still
        # defined (0) when TP = 0 but there are malignant cases or malignant predictions.
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "paper_eq6_score": paper_eq6_score(specificity, precision),
    }


def weighted_auc(labels: np.ndarray, scores: np.ndarray,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """ROC AUC as the Mann-Whitney statistic, optionally with case weights.

    ``weights`` of shape ``(n,)`` or ``(b, n)`` (one row per bootstrap resample; integer weights
    mean "this case drawn k times") gives one AUC per row. Ties count one half. Equal to
    :func:`sklearn.metrics.roc_auc_score` (with ``sample_weight``). NaN where a row holds a single
    class. Cost O(b·n) after one sort: the scores are sorted once for all resamples.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    w = np.ones(labels.shape, dtype=float) if weights is None else np.asarray(weights, float)
    if labels.size == 0:
        return np.full(w.shape[:-1], np.nan)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    w = w[..., order]
    # Group tied scores: a positive and a negative with the same score count 1/2.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    positive = np.add.reduceat(np.where(sorted_labels, w, 0.0), starts, axis=-1)
    negative = np.add.reduceat(np.where(sorted_labels, 0.0, w), starts, axis=-1)
    negatives_below = np.cumsum(negative, axis=-1) - negative
    wins = np.sum(positive * (negatives_below + 0.5 * negative), axis=-1)
    return _ratio(wins, positive.sum(axis=-1) * negative.sum(axis=-1))


@dataclass(frozen=True)
class Metrics:
    """Point estimates at one threshold, with the confusion counts they come from."""

    values: dict[str, float]
    confusion: Confusion
    threshold: float
    n: int
    n_malignant: int
    n_benign: int
    undefined: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def to_dict(self) -> dict[str, object]:
        """Flat JSON-ready mapping: metric values (undefined ones None, their reason under
        ``undefined``), threshold, counts."""
        out: dict[str, object] = {
            name: None if name in self.undefined else _json_float(self.values[name])
            for name in METRIC_NAMES}
        out.update(threshold=self.threshold, n=self.n, n_malignant=self.n_malignant,
                   n_benign=self.n_benign, confusion_matrix=self.confusion.to_dict(),
                   undefined=dict(self.undefined))
        return out


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5,
                    zero_division: float = 0.0) -> Metrics:
    """All metrics of :data:`METRIC_NAMES` for one set of cases at ``threshold``.

    Undefined ratios become ``zero_division`` and the AUC of a single-class set is NaN; each is
    listed with its reason in :attr:`Metrics.undefined` (see the module doc).
    """
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    if labels.shape != probabilities.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {probabilities.shape} differ")
    if np.isnan(probabilities).any():
        raise ValueError("probabilities contain NaN")
    confusion = Confusion.from_labels(labels, predict_labels(probabilities, threshold))
    raw = metrics_from_counts(confusion.tp, confusion.fp, confusion.tn, confusion.fn)
    raw["auc"] = weighted_auc(labels, probabilities)
    values, undefined = {}, {}
    for name in METRIC_NAMES:
        value = float(raw[name])
        if np.isnan(value):
            undefined[name] = _UNDEFINED_REASONS[name]
            value = value if name == "auc" else float(zero_division)
        values[name] = value
    return Metrics(values=values, confusion=confusion, threshold=float(threshold),
                   n=int(labels.size), n_malignant=int(labels.sum()),
                   n_benign=int(labels.size - labels.sum()), undefined=undefined)


def mean_and_std(per_fold: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """``<name>_mean`` and ``<name>_std`` (sample std, ddof=1) of each metric over folds.

    Folds where a metric is undefined (None/NaN) are left out of that metric's mean and std.
    """
    out: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        values = np.array([np.nan if f.get(name) is None else f[name] for f in per_fold], float)
        values = values[~np.isnan(values)]
        out[f"{name}_mean"] = float(values.mean()) if values.size else None
        out[f"{name}_std"] = float(values.std(ddof=1)) if values.size > 1 else None
    return out


def _json_float(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)
