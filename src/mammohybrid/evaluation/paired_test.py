"""The paired difference of pooled AUCs: its value, that both sides see the same resampled
patients, and refusal of tables that do not hold the same lesions and folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mammohybrid.evaluation.bootstrap import patient_resample_weights
from mammohybrid.evaluation.paired import (
    paired_auc_difference,
    pooled_auc,
    pooled_auc_with_interval,
)


def _table(probabilities: np.ndarray, labels: np.ndarray, repeats: int = 2) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame({
        "repeat": np.repeat(np.arange(repeats), n),
        "fold": np.tile(np.arange(n) % 3, repeats),
        "image": np.tile([f"img{i}.png" for i in range(n)], repeats),
        "patient": np.tile([f"P{i // 2}" for i in range(n)], repeats),  # two images each
        "label": np.tile(labels, repeats),
        "probability": probabilities})


def test_pooled_auc_is_the_mean_over_repeats_of_each_repeats_auc():
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 10)
    table = _table(rng.random(40), labels)
    expected = np.mean([roc_auc_score(g["label"], g["probability"])
                        for _, g in table.groupby("repeat")])
    assert pooled_auc(table["label"].to_numpy(), table["probability"].to_numpy(),
                      table["repeat"].to_numpy()) == pytest.approx(expected)


def test_paired_difference_resamples_the_same_patients_for_both():
    rng = np.random.default_rng(1)
    labels = np.tile([0, 0, 1, 1], 6)
    good = _table(np.tile(labels, 2) + rng.normal(0, 0.6, 48), labels)
    weak = _table(rng.random(48), labels)
    result = paired_auc_difference(good, weak, ("good", "weak"), n_resamples=500, seed=3)
    assert result.difference == pytest.approx(result.auc_a - result.auc_b)
    assert result.auc_a == pytest.approx(pooled_auc(good["label"].to_numpy(),
                                                    good["probability"].to_numpy(),
                                                    good["repeat"].to_numpy()))
    assert result.low <= result.difference <= result.high and result.low > 0
    assert result.patients == 12 and result.resamples == 500
    # The interval is the spread of differences on shared resamples, recomputed by hand.
    weights = patient_resample_weights(good["patient"].to_numpy(), 500,
                                       np.random.default_rng(3))
    by_hand = (pooled_auc(good["label"].to_numpy(), good["probability"].to_numpy(),
                          good["repeat"].to_numpy(), weights)
               - pooled_auc(weak["label"].to_numpy(), weak["probability"].to_numpy(),
                            weak["repeat"].to_numpy(), weights))
    assert result.low == pytest.approx(np.quantile(by_hand, 0.025))
    assert result.standard_error == pytest.approx(np.std(by_hand, ddof=1))
    # A configuration against itself: exactly no difference, in every resample.
    same = paired_auc_difference(weak, weak, n_resamples=200)
    assert (same.difference, same.low, same.high, same.standard_error) == (0, 0, 0, 0)
    assert "good - weak: +" in result.describe()


def test_tables_of_other_lesions_or_folds_are_refused():
    labels = np.tile([0, 1], 6)
    table = _table(np.linspace(0, 1, 24), labels)
    with pytest.raises(ValueError, match="same predictions"):
        paired_auc_difference(table, table.iloc[:-1])
    other_folds = table.assign(fold=(table["fold"] + 1) % 3)
    with pytest.raises(ValueError, match="disagree on the fold"):
        paired_auc_difference(table, other_folds)


def test_pooled_auc_interval_brackets_the_estimate():
    rng = np.random.default_rng(4)
    labels = np.tile([0, 1], 15)
    table = _table(np.tile(labels, 2) * 0.5 + rng.random(60), labels)
    auc, low, high = pooled_auc_with_interval(table, n_resamples=400)
    assert low < auc < high and 0.5 < auc <= 1
    assert pooled_auc_with_interval(table, n_resamples=400) == (auc, low, high)  # seeded
