"""Comparing two configurations on the same folds: the paired difference of their pooled
out-of-fold AUCs, with a patient-bootstrap interval of the *difference*.

Two cross-validations on the same folds predict every lesion once per repeat each. Their AUCs
are strongly correlated (the same hard lesions hurt both), so two separate intervals overlap
even when one configuration is consistently better, and cannot rank them. The paired
bootstrap resamples patients once and recomputes both pooled AUCs on the *same* resample: the
spread of the difference is what decides.

Pooled AUC: the AUC of all out-of-fold predictions of one repeat, averaged over the repeats.
A resample draws as many patients as there are, with replacement; a patient drawn k times
weighs k in every repeat (:func:`~mammohybrid.evaluation.bootstrap.patient_resample_weights`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mammohybrid.evaluation.bootstrap import patient_resample_weights
from mammohybrid.evaluation.metrics import weighted_auc

# Columns an out-of-fold predictions table must have (``mammohybrid cv``'s oof_predictions.csv).
KEY_COLUMNS = ("repeat", "image")


def pooled_auc(labels: np.ndarray, scores: np.ndarray, repeats: np.ndarray,
               weights: np.ndarray | None = None) -> np.ndarray:
    """Mean over repeats of the AUC of each repeat's predictions; ``weights`` (resamples,
    rows) gives one value per resample."""
    per_repeat = [weighted_auc(labels[rows], scores[rows],
                               None if weights is None else weights[..., rows])
                  for rows in (repeats == r for r in np.unique(repeats))]
    return np.mean(per_repeat, axis=0)


@dataclass(frozen=True)
class PairedDifference:
    """``auc_a - auc_b`` on the same lesions and folds, with its bootstrap interval and standard
    error (the standard deviation of the resampled differences)."""

    a: str
    b: str
    auc_a: float
    auc_b: float
    difference: float
    low: float
    high: float
    standard_error: float
    level: float
    resamples: int
    patients: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.a} - {self.b}: {self.difference:+.3f} "
                f"[{self.low:+.3f}, {self.high:+.3f}] (SE {self.standard_error:.3f})")


def aligned(a: pd.DataFrame, b: pd.DataFrame, key: str = "image") -> pd.DataFrame:
    """The rows of two out-of-fold tables side by side (``probability_a``, ``probability_b``),
    matched on (repeat, ``key``); refused unless both hold exactly the same rows with the same
    labels and patients (i.e. the same lesions, repeats and folds)."""
    columns = ["repeat", key, "patient", "label", "probability"]
    if "fold" in a.columns and "fold" in b.columns:
        columns.append("fold")
    merged = a[columns].merge(b[columns], on=["repeat", key], how="outer",
                              suffixes=("_a", "_b"), indicator=True)
    unmatched = int((merged["_merge"] != "both").sum())
    if unmatched or len(merged) != len(a) or len(merged) != len(b):
        raise ValueError(f"the two tables do not hold the same predictions ({unmatched} row(s) "
                         "in one only, or duplicated rows): compare runs on the same folds")
    for column in ("patient", "label", "fold"):
        if f"{column}_a" in merged and not (
                merged[f"{column}_a"].astype(str) == merged[f"{column}_b"].astype(str)).all():
            raise ValueError(f"the two tables disagree on the {column} of some rows: compare "
                             "runs on the same folds")
    return merged.rename(columns={"patient_a": "patient", "label_a": "label"})


def paired_auc_difference(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("a", "b"),
                          n_resamples: int = 2000, level: float = 0.95, seed: int = 0,
                          key: str = "image") -> PairedDifference:
    """Pooled AUC of ``a`` minus that of ``b``, out-of-fold tables of the same lesions and
    folds (columns repeat, ``key``, patient, label, probability), with a percentile interval
    and standard error from ``n_resamples`` patient resamples shared by both."""
    merged = aligned(a, b, key)
    labels = merged["label"].to_numpy(int)
    repeats = merged["repeat"].to_numpy()
    scores_a = merged["probability_a"].to_numpy(float)
    scores_b = merged["probability_b"].to_numpy(float)
    weights = patient_resample_weights(merged["patient"].to_numpy(str), n_resamples,
                                       np.random.default_rng(seed))
    differences = (pooled_auc(labels, scores_a, repeats, weights)
                   - pooled_auc(labels, scores_b, repeats, weights))
    differences = differences[~np.isnan(differences)]
    auc_a = float(pooled_auc(labels, scores_a, repeats))
    auc_b = float(pooled_auc(labels, scores_b, repeats))
    tail = (1 - level) / 2
    low, high = ((float(np.quantile(differences, tail)), float(np.quantile(differences,
                                                                            1 - tail)))
                 if differences.size else (np.nan, np.nan))
    return PairedDifference(names[0], names[1], auc_a, auc_b, auc_a - auc_b, low, high,
                            float(np.std(differences, ddof=1)) if differences.size > 1
                            else np.nan, level, int(differences.size),
                            int(merged["patient"].nunique()))


def pooled_auc_with_interval(table: pd.DataFrame, n_resamples: int = 2000, level: float = 0.95,
                             seed: int = 0) -> tuple[float, float, float]:
    """The pooled AUC of one out-of-fold table and its patient-bootstrap percentile interval:
    ``(auc, low, high)``."""
    labels = table["label"].to_numpy(int)
    repeats = table["repeat"].to_numpy()
    scores = table["probability"].to_numpy(float)
    weights = patient_resample_weights(table["patient"].to_numpy(str), n_resamples,
                                       np.random.default_rng(seed))
    resampled = pooled_auc(labels, scores, repeats, weights)
    resampled = resampled[~np.isnan(resampled)]
    tail = (1 - level) / 2
    return (float(pooled_auc(labels, scores, repeats)),
            float(np.quantile(resampled, tail)), float(np.quantile(resampled, 1 - tail)))
