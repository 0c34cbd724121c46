import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mammohybrid.decision import predict_labels
from mammohybrid.evaluation.metrics import (
    METRIC_NAMES,
    Confusion,
    compute_metrics,
    mean_and_std,
    metrics_from_counts,
    paper_eq6_score,
    weighted_auc,
)


def _random_case(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    # Informative but imperfect scores, rounded so that ties occur.
    scores = np.clip(np.round(0.3 * labels + rng.normal(0.35, 0.2, n), 2), 0, 1)
    return labels, scores


def test_hand_computed_case():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    probs = np.array([0.9, 0.6, 0.2, 0.1, 0.7, 0.3, 0.5, 0.5])
    # threshold 0.5 (>=): predicted 1,1,0,0,1,0,1,1 -> TP=3 (0.9, 0.6, 0.5), FN=1, FP=2, TN=2
    m = compute_metrics(labels, probs, 0.5)
    assert m.confusion == Confusion(tn=2, fp=2, fn=1, tp=3)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(2 / 4)
    assert m["precision"] == pytest.approx(3 / 5)
    p, r = 3 / 5, 3 / 4
    assert m["f1"] == pytest.approx(2 * p * r / (p + r))
    assert m["paper_eq6_score"] == pytest.approx(2 * 0.5 * 0.6 / (0.5 + 0.6))
    # Pairs (pos, neg): 16; wins counted by hand: 0.9 beats 4, 0.6 beats 3 (0.1, 0.3, 0.5),
    # 0.2 beats 1 (0.1), 0.5 beats 2 (0.1, 0.3) and ties 1 (0.5) -> 10.5 / 16.
    assert m["auc"] == pytest.approx(10.5 / 16)
    assert (m.n, m.n_malignant, m.n_benign, m.undefined) == (8, 4, 4, {})


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
def test_against_scikit_learn(seed, threshold):
    labels, scores = _random_case(seed)
    m = compute_metrics(labels, scores, threshold)
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    assert m.confusion == Confusion(tn=tn, fp=fp, fn=fn, tp=tp)
    assert np.array_equal(m.confusion.matrix(), skm.confusion_matrix(labels, predicted))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(labels, predicted))
    assert m["specificity"] == pytest.approx(skm.recall_score(labels, predicted, pos_label=0))
    assert m["precision"] == pytest.approx(skm.precision_score(labels, predicted))
    assert m["f1"] == pytest.approx(skm.f1_score(labels, predicted))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(labels, scores))


def test_weighted_auc_matches_sample_weights_and_repetition():
    labels, scores = _random_case(3, 60)
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 4, (5, labels.size)).astype(float)
    aucs = weighted_auc(labels, scores, weights)
    assert aucs.shape == (5,)
    for row, auc in zip(weights, aucs, strict=True):
        repeated = np.repeat(np.arange(labels.size), row.astype(int))
        assert auc == pytest.approx(skm.roc_auc_score(labels[repeated], scores[repeated]))
        assert auc == pytest.approx(skm.roc_auc_score(labels, scores, sample_weight=row))


def test_paper_table5_eq6_arithmetic():
    # Table 5, Gaussian, average pooling, LR 1e-4, dropout 0.2: specificity 92.41 %, precision
    # 95.35 %, and the paper's "F1" column says 93.86 %: the paper's Eq. 6, not F1.
    assert float(paper_eq6_score(0.9241, 0.9535)) == pytest.approx(0.9386, abs=5e-5)
    # The same row's sensitivity (98.26 %) would give a real F1 of 96.75 %, not 93.86 %.
    p, r = 0.9535, 0.9826
    assert 2 * p * r / (p + r) == pytest.approx(0.9678, abs=5e-4)
    # Vectorised over rows.
    assert paper_eq6_score(np.array([1.0, 0.5]), np.array([1.0, 0.5])) == pytest.approx([1, .5])


def test_paper_table5_row_is_consistent_with_its_confusion_counts():
    # Same row: accuracy 96.00 %, TNR 92.41 %, TPR 98.26 %. The malignant share p follows from
    # accuracy = p * TPR + (1 - p) * TNR; counts (as fractions of the test set) then give the
    # row's precision (95.35 %) and its Eq. 6 "F1" (93.86 %) through our own arithmetic.
    accuracy, tnr, tpr = 0.9600, 0.9241, 0.9826
    p = (accuracy - tnr) / (tpr - tnr)
    values = metrics_from_counts(tp=p * tpr, fp=(1 - p) * (1 - tnr), tn=(1 - p) * tnr,
                                 fn=p * (1 - tpr))
    assert values["accuracy"] == pytest.approx(accuracy)
    assert values["precision"] == pytest.approx(0.9535, abs=5e-4)
    assert values["paper_eq6_score"] == pytest.approx(0.9386, abs=5e-4)
    assert values["f1"] == pytest.approx(0.9678, abs=5e-4)  # the real F1 the paper did not give


def test_single_class_labels():
    # Only benign cases: sensitivity, precision, F1 and AUC are undefined.
    m = compute_metrics([0, 0, 0, 0], [0.1, 0.6, 0.2, 0.3], 0.5)
    assert m.confusion == Confusion(tn=3, fp=1, fn=0, tp=0)
    assert m["specificity"] == 0.75 and m["accuracy"] == 0.75
    assert m["sensitivity"] == 0.0 and "sensitivity" in m.undefined
    assert m["precision"] == 0.0 and "precision" not in m.undefined  # TP + FP = 1: defined, 0
    assert m["f1"] == 0.0 and "f1" not in m.undefined  # sklearn: f1 = 0 here as well
    assert math.isnan(m["auc"]) and m.undefined["auc"] == "needs both classes"
    assert m.to_dict()["auc"] is None
    json.dumps(m.to_dict(), allow_nan=False)  # valid JSON: no NaN literal


def test_all_predicted_benign_matches_sklearn_zero_division():
    labels = np.array([0, 1, 0, 1, 0])
    m = compute_metrics(labels, np.full(5, 0.1), 0.5)
    predicted = np.zeros(5, int)
    assert m["precision"] == skm.precision_score(labels, predicted, zero_division=0) == 0.0
    assert m["f1"] == skm.f1_score(labels, predicted, zero_division=0) == 0.0
    assert m["sensitivity"] == 0.0 and m["specificity"] == 1.0
    assert set(m.undefined) == {"precision", "paper_eq6_score"}
    assert m["auc"] == 0.5  # every score tied
    # In JSON an undefined metric is null, not the convention's 0: the reason explains it.
    stored = json.loads(json.dumps(m.to_dict()))
    assert stored["precision"] is None and stored["paper_eq6_score"] is None
    assert stored["sensitivity"] == 0.0 and "precision" in stored["undefined"]


def test_all_true_negatives_and_empty():
    m = compute_metrics([0, 0], [0.1, 0.2], 0.5)
    assert set(m.undefined) == {"sensitivity", "precision", "f1", "auc", "paper_eq6_score"}
    assert m["f1"] == skm.f1_score([0, 0], [0, 0], zero_division=0)
    custom = compute_metrics([0, 0], [0.1, 0.2], 0.5, zero_division=1.0)
    assert custom["precision"] == custom["sensitivity"] == 1.0
    empty = compute_metrics([], [], 0.5)
    assert empty.n == 0 and set(empty.undefined) == set(METRIC_NAMES)


def test_counts_vectorised_nan_where_undefined():
    values = metrics_from_counts(np.array([2, 0]), np.array([1, 0]), np.array([3, 5]),
                                 np.array([0, 0]))
    assert values["precision"][0] == pytest.approx(2 / 3)
    assert np.isnan(values["precision"][1]) and np.isnan(values["sensitivity"][1])
    assert values["specificity"] == pytest.approx([0.75, 1.0])


def test_threshold_is_inclusive_and_input_checked():
    assert predict_labels(np.array([0.49, 0.5, 0.51]), 0.5).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="differ"):
        compute_metrics([0, 1], [0.5], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics([0, 1], [0.5, np.nan], 0.5)


def test_mean_and_std_skips_undefined_folds():
    folds = [{name: 0.5 for name in METRIC_NAMES}, {name: 0.7 for name in METRIC_NAMES}]
    folds[1]["auc"] = None
    summary = mean_and_std(folds)
    assert summary["accuracy_mean"] == pytest.approx(0.6)
    assert summary["accuracy_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summary["auc_mean"] == 0.5 and summary["auc_std"] is None
