"""The decision: a case is malignant when its probability is at or above a threshold, chosen
on the validation split, never on test.

The chosen threshold is stored in the run directory (``threshold.json``) when training ends and
applied unchanged to the test split and to new images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import roc_curve

from mammohybrid.config import EvaluateConfig


def predict_labels(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """1 (malignant) where ``probability >= threshold``, else 0."""
    return (np.asarray(probabilities, dtype=float) >= threshold).astype(int)


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold and how it was obtained."""

    value: float
    method: str  # "fixed", "youden" or "sensitivity"
    split: str  # the split it was chosen on ("val"), or "none" for a fixed value
    detail: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def select_threshold(labels: np.ndarray, probabilities: np.ndarray, config: EvaluateConfig,
                     split: str = "val") -> ThresholdChoice:
    """Choose the threshold as ``config.threshold`` says, from one split's labels and scores.

    ``youden`` maximises TPR - FPR; ``sensitivity`` takes the highest threshold whose
    sensitivity reaches ``target_sensitivity``. Both fall back to the fixed threshold, saying so,
    when the split holds a single class (no ROC curve exists).
    """
    if split == "test":
        raise ValueError("a decision threshold is never chosen on the test split")
    fixed = ThresholdChoice(config.fixed_threshold, "fixed", "none",
                            f"fixed at {config.fixed_threshold:g}")
    if config.threshold == "fixed":
        return fixed
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    if labels.size == 0 or np.unique(labels).size < 2:
        return ThresholdChoice(config.fixed_threshold, "fixed", "none",
                               f"{config.threshold} needs both classes on {split}; "
                               f"fell back to {config.fixed_threshold:g}")
    # Every distinct score is a candidate: by default roc_curve drops points on straight segments
    # of the curve, which would skip the highest threshold reaching a target sensitivity.
    fpr, tpr, thresholds = roc_curve(labels, probabilities, drop_intermediate=False)
    # roc_curve's first threshold is +inf (nothing predicted positive): never a usable choice.
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]
    if config.threshold == "youden":
        best = int(np.argmax(tpr - fpr))
        value = float(np.clip(thresholds[best], 0.0, 1.0))
        return ThresholdChoice(value, "youden", split,
                               f"max Youden J = {tpr[best] - fpr[best]:.3f} on {split} "
                               f"(sensitivity {tpr[best]:.3f}, specificity {1 - fpr[best]:.3f})")
    reaching = np.flatnonzero(tpr >= config.target_sensitivity)
    best = int(reaching[0])  # thresholds decrease: the first index reaching the target is highest
    value = float(np.clip(thresholds[best], 0.0, 1.0))
    return ThresholdChoice(value, "sensitivity", split,
                           f"highest threshold with sensitivity >= {config.target_sensitivity:g} "
                           f"on {split} (sensitivity {tpr[best]:.3f}, "
                           f"specificity {1 - fpr[best]:.3f})")
