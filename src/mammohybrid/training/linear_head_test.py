"""Tests of the logistic head: strength selection, the exact fold into the hybrid's Dense layer,
the shared feature cache, and a run directory that evaluate/predict use unchanged."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from mammohybrid.config import load_config
from mammohybrid.data.manifest import read_manifest, usable_rows
from mammohybrid.errors import ConfigError
from mammohybrid.imaging import read_image
from mammohybrid.models.hybrid import feature_extractor, load_model
from mammohybrid.training.input_pipeline import ImageSplit, load_splits
from mammohybrid.training.linear_head import (
    CACHE_FOLDER,
    LogisticHead,
    PooledFeatureCache,
    choose_strength,
    fit_logistic_head,
    frozen_model,
    read_head,
    write_model_with_head,
)
from mammohybrid.training.toydata import make_toy_dataset

LOGISTIC = ["model.backbones=[tinycnn,smallcnn]", "model.trainable=none", "model.augment=none",
            "train.head=logistic"]


@pytest.fixture(scope="module")
def toy(toy_dataset) -> Path:
    """24 train images: enough for the inner cross-validation that picks the strength."""
    return toy_dataset({"train": 24, "val": 8, "test": 8})


def test_logistic_head_needs_frozen_backbones():
    with pytest.raises(ConfigError, match=r"model\.trainable: none"):
        load_config(None, ["train.head=logistic", "model.trainable=all"])
    with pytest.raises(ConfigError, match=r"train\.logistic_c"):
        load_config(None, ["train.logistic_c=[1.0, 0]"])


def test_strength_is_chosen_by_patient_grouped_inner_cv():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    patients = np.array([f"p{i // 2}" for i in range(40)])  # two images per patient
    informative = labels[:, None] * 1.5 + rng.normal(size=(40, 1))
    features = np.hstack([informative, rng.normal(size=(40, 30))])
    config = load_config(None, ["train.logistic_c=[0.001, 0.1, 10]", "train.inner_folds=4"])
    choice = choose_strength(features, labels, patients, config)
    assert choice.folds == 4 and set(choice.scores) == {0.001, 0.1, 10.0}
    assert choice.scores[choice.c] == max(choice.scores.values())
    assert all(0.5 < auc <= 1 for auc in choice.scores.values())
    assert "4-fold patient-grouped inner cross-validation" in choice.describe()
    # Every row's out-of-fold probability at the chosen C: what the threshold is chosen on.
    assert choice.out_of_fold is not None and choice.out_of_fold.shape == (40,)
    assert roc_auc_score(labels, choice.out_of_fold) == pytest.approx(choice.scores[choice.c])
    # Fewer patients in a class than folds: fewer folds; one patient per class: no inner CV.
    assert choose_strength(features[18:24], labels[18:24], patients[18:24], config).folds == 0
    few = choose_strength(features[14:26], labels[14:26], patients[14:26], config)
    assert few.folds == 3


@pytest.mark.slow
def test_fitted_head_is_exactly_the_standardised_logistic_regression(toy, tmp_path,
                                                                    tiny_config):
    config = tiny_config(toy, *LOGISTIC, "train.logistic_c=[0.5]")
    splits = load_splits(config)
    fitted = fit_logistic_head(config, splits)
    head = fitted.head
    assert head.choice is not None and head.choice.c == 0.5
    assert "the only value of train.logistic_c" in head.choice.describe()
    # Fitted on the train and val rows together, in the feature space itself, converged as far
    # as the head is (it is fitted in the span of the rows: the same optimum).
    cache = PooledFeatureCache(config)
    rows = pd.concat([splits["train"], splits["val"]])
    test = usable_rows(read_manifest(toy)).query("split == 'test'")
    fit_x = cache.features(rows).astype(np.float64)
    test_x = cache.features(test)
    scaler = StandardScaler().fit(fit_x)
    regression = LogisticRegression(C=0.5, max_iter=100_000, tol=1e-10).fit(
        scaler.transform(fit_x), rows["label"])
    expected = regression.predict_proba(scaler.transform(test_x.astype(np.float64)))[:, 1]
    np.testing.assert_allclose(head.probabilities(test_x), expected, rtol=1e-4, atol=1e-5)
    # The "validation" logs are those of the inner out-of-fold probabilities of those rows.
    assert len(fitted.labels) == len(rows) == len(fitted.out_of_fold)
    assert fitted.logs["val_auc"] == pytest.approx(roc_auc_score(fitted.labels,
                                                                 fitted.out_of_fold))
    # Written into the hybrid's Dense layer, the saved image -> probability model agrees.
    path = write_model_with_head(config.model, head, tmp_path / "model.keras")
    images = ImageSplit(test, 32, 8, cache=False).images()
    np.testing.assert_allclose(load_model(path).predict(images, verbose=0).reshape(-1),
                               head.probabilities(test_x), atol=1e-5)
    back = read_head(path, test_x.shape[1])
    np.testing.assert_array_equal(back.weights, head.weights)
    assert back.bias == head.bias


@pytest.mark.slow
def test_model_written_with_a_head_is_the_template_with_two_arrays_replaced(tmp_path,
                                                                           tiny_config):
    config = tiny_config(tmp_path / "unused.csv", *LOGISTIC)
    features = int(frozen_model(config.model).get_layer("prediction").kernel.shape[0])
    rng = np.random.default_rng(1)
    heads = [LogisticHead(rng.normal(size=features).astype(np.float32), float(b))
             for b in (-0.5, 2.0)]
    first, second = (write_model_with_head(config.model, head, tmp_path / f"m{i}.keras")
                     for i, head in enumerate(heads))
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        assert a.namelist() == b.namelist() == ["metadata.json", "config.json",
                                                "model.weights.h5"]
        assert a.read("config.json") == b.read("config.json")
    images = rng.uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    pooled = feature_extractor(frozen_model(config.model)).predict(images, verbose=0)
    for path, head in ((first, heads[0]), (second, heads[1])):
        loaded = load_model(path)
        np.testing.assert_allclose(loaded.predict(images, verbose=0).reshape(-1),
                                   head.probabilities(pooled), atol=1e-6)
        # The backbones are the template's, untouched.
        for mine, theirs in zip(loaded.get_layer("tinycnn").weights,
                                frozen_model(config.model).get_layer("tinycnn").weights,
                                strict=True):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


@pytest.mark.slow
def test_feature_cache_is_shared_and_only_fills_what_is_missing(tmp_path, monkeypatch,
                                                                tiny_config):
    # A dataset of its own: the cache is written beside its images.
    manifest = make_toy_dataset(tmp_path, {"train": 8, "val": 2},
                                config=tiny_config(tmp_path / "manifest.csv"))
    config = tiny_config(manifest, *LOGISTIC)
    splits = load_splits(config)
    cache = PooledFeatureCache(config)
    first = cache.features(splits["train"].iloc[:5])
    computed: list[int] = []
    original = PooledFeatureCache._compute

    def counting(self, frame):
        computed.append(len(frame))
        return original(self, frame)

    monkeypatch.setattr(PooledFeatureCache, "_compute", counting)
    again = PooledFeatureCache(config)
    np.testing.assert_array_equal(again.features(splits["train"].iloc[:5]), first)
    assert computed == []
    again.features(splits["train"].iloc[:8])
    assert computed == [3]
    images_folder = Path(splits["train"]["image_path"].iloc[0]).parent
    assert len(list((images_folder / CACHE_FOLDER).glob("*.npz"))) == 1


@pytest.mark.slow
def test_logistic_run_directory_works_with_evaluate_and_predict(toy, tmp_path, tiny_config):
    from mammohybrid.evaluation.evaluate import evaluate_run
    from mammohybrid.inference.predictor import Predictor
    from mammohybrid.training import train

    config = tiny_config(toy, *LOGISTIC, "model.tta=dihedral", "evaluate.threshold=youden")
    run = train(config, tmp_path / "run")
    assert run.is_finished() and run.threshold.is_file() and run.last_model.is_file()
    history = pd.read_csv(run.history)
    assert len(history) == 1 and 0 <= history["val_auc"].iloc[0] <= 1
    # Chosen on the inner out-of-fold probabilities, never on rows the head was fitted on.
    assert run.load_threshold().split == "train + val, inner out-of-fold"
    result = evaluate_run(run.root, "test")
    assert result.metrics["n"] == 8
    with pytest.raises(ConfigError, match="fitted on the validation rows too"):
        evaluate_run(run.root, "test", tmp_path / "other",
                     overrides=["evaluate.threshold=sensitivity"])
    with Predictor.from_run(run.root) as predictor:
        images = [read_image(p) for p in load_splits(config)["val"]["image_path"][:2]]
        rows = predictor.predict_arrays(images)
    assert rows["probability"].between(0, 1).all() and (rows["error"].fillna("") == "").all()
