import numpy as np
import pytest

from mammohybrid.config import EvaluateConfig
from mammohybrid.decision import ThresholdChoice, select_threshold
from mammohybrid.evaluation.metrics import compute_metrics


def _validation(seed: int = 0, n: int = 120):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.clip(np.round(0.3 * labels + rng.normal(0.35, 0.18, n), 2), 0, 1)
    return labels, scores


def _brute_force(labels, scores, objective):
    """Best candidate among all distinct scores (predicted malignant: score >= t)."""
    best_value, best_t = -np.inf, None
    for t in np.unique(scores)[::-1]:  # highest first: ties keep the highest threshold
        m = compute_metrics(labels, scores, t)
        value = objective(m)
        if value > best_value:
            best_value, best_t = value, t
    return best_t


def test_fixed_ignores_the_data():
    choice = select_threshold(np.array([0, 1]), np.array([0.9, 0.1]),
                              EvaluateConfig(threshold="fixed", fixed_threshold=0.4))
    assert choice == ThresholdChoice(0.4, "fixed", "none", "fixed at 0.4")
    assert choice.to_dict()["value"] == 0.4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_youden_maximises_j_on_validation(seed):
    labels, scores = _validation(seed)
    choice = select_threshold(labels, scores, EvaluateConfig(threshold="youden"))
    expected = _brute_force(labels, scores, lambda m: m["sensitivity"] + m["specificity"] - 1)
    assert choice.value == pytest.approx(expected)
    assert (choice.method, choice.split) == ("youden", "val")
    m = compute_metrics(labels, scores, choice.value)
    assert f"sensitivity {m['sensitivity']:.3f}" in choice.detail


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [0.5, 0.9, 1.0])
def test_target_sensitivity_is_the_highest_threshold_reaching_it(seed, target):
    labels, scores = _validation(seed)
    choice = select_threshold(labels, scores,
                              EvaluateConfig(threshold="sensitivity", target_sensitivity=target))
    reaching = [t for t in np.unique(scores)
                if compute_metrics(labels, scores, t)["sensitivity"] >= target]
    assert choice.value == pytest.approx(max(reaching))
    assert compute_metrics(labels, scores, choice.value)["sensitivity"] >= target


def test_single_class_validation_falls_back_to_fixed():
    choice = select_threshold(np.zeros(5), np.linspace(0, 1, 5),
                              EvaluateConfig(threshold="youden", fixed_threshold=0.5))
    assert (choice.value, choice.method, choice.split) == (0.5, "fixed", "none")
    assert "needs both classes on val" in choice.detail


@pytest.mark.parametrize("method", ["fixed", "youden", "sensitivity"])
def test_never_chosen_on_test(method):
    labels, scores = _validation()
    with pytest.raises(ValueError, match="never chosen on the test split"):
        select_threshold(labels, scores, EvaluateConfig(threshold=method), split="test")


def test_target_sensitivity_sees_every_threshold():
    # Three malignant cases above every benign one: the ROC curve climbs a vertical segment, whose
    # intermediate points scikit-learn drops by default; 0.8 (sensitivity 2/3) is the answer.
    labels = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    choice = select_threshold(labels, scores,
                              EvaluateConfig(threshold="sensitivity", target_sensitivity=0.5))
    assert choice.value == pytest.approx(0.8)
