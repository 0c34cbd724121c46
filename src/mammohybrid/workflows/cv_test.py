from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import Config, with_overrides
from mammohybrid.errors import MammohybridError
from mammohybrid.workflows.cv import fold_manifests, run_cv


def _frame(n_patients: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    images = rng.integers(1, 4, n_patients)  # 1-3 images per patient
    patients = np.repeat([f"P{i}" for i in range(n_patients)], images)
    labels = np.repeat(rng.integers(0, 2, n_patients), images)
    return pd.DataFrame({"image_path": [f"{i}.png" for i in range(len(patients))],
                         "patient_id": patients, "label": labels, "split": "train"})


def test_folds_are_patient_grouped_stratified_and_cover_everything():
    frame = _frame()
    config = with_overrides(Config(), ["data.val_fraction=0.2"])
    manifests = fold_manifests(frame, 5, 0, config)
    assert len(manifests) == 5
    held_out = np.zeros(len(frame), int)
    for fold, manifest in enumerate(manifests):
        assert (manifest["cv_fold"] == manifests[0]["cv_fold"]).all()  # one assignment
        test = manifest["split"] == "test"
        held_out += test.to_numpy()
        assert (manifest.loc[test, "cv_fold"] == fold).all()
        # No patient in two splits of one fold.
        assert manifest.groupby("patient_id")["split"].nunique().max() == 1
        # Validation comes from the training folds only, about val_fraction of them.
        val = manifest["split"] == "val"
        assert val.any() and not (val & test).any()
        assert (manifest.loc[val, "cv_fold"] != fold).all()
        val_patients = manifest.loc[val, "patient_id"].nunique()
        development = manifest.loc[~test, "patient_id"].nunique()
        assert abs(val_patients / development - 0.2) < 0.07
        # Stratified: each held-out fold has both classes in a similar share.
        assert 0.2 < manifest.loc[test, "label"].mean() < 0.8
    assert (held_out == 1).all()  # every image held out exactly once


def test_repeats_reshuffle_and_are_reproducible():
    frame, config = _frame(), Config()
    first = fold_manifests(frame, 3, 0, config)[0]["cv_fold"]
    assert (fold_manifests(frame, 3, 0, config)[0]["cv_fold"] == first).all()
    assert not (fold_manifests(frame, 3, 1, config)[0]["cv_fold"] == first).all()


LOGISTIC = ["model.backbones=[tinycnn,smallcnn]", "model.trainable=none", "model.augment=none",
            "train.head=logistic", "model.tta=dihedral"]


@pytest.mark.slow
def test_logistic_head_cv_predicts_from_cached_features_as_the_saved_models_do(
        tmp_path, tiny_config, monkeypatch):
    from mammohybrid.evaluation.evaluate import RunPredictor
    from mammohybrid.run_dir import RunDir
    from mammohybrid.training.linear_head import CACHE_FOLDER, PooledFeatureCache
    from mammohybrid.training.toydata import make_toy_dataset

    manifest = make_toy_dataset(tmp_path / "data", {"train": 16, "val": 8, "test": 8},
                                config=tiny_config(tmp_path / "data" / "manifest.csv"))
    config = tiny_config(manifest, *LOGISTIC)
    computed: list[int] = []
    original = PooledFeatureCache._compute
    monkeypatch.setattr(PooledFeatureCache, "_compute",
                        lambda self, frame: computed.append(len(frame)) or original(self, frame))
    result = run_cv(config, tmp_path / "cv", folds=3, repeats=2)
    assert computed == [24]  # every image (test split left out) once, in one pass, for six folds
    check = result.summary["cached_feature_check"]
    assert check["images"] == 4 and check["max_abs_difference"] <= 1e-5
    oof = pd.read_csv(result.files["oof_predictions"])
    for (repeat, fold), rows in oof.groupby(["repeat", "fold"]):
        run = RunDir.at(tmp_path / "cv" / f"r{repeat}" / f"f{fold}" / "run")
        assert run.is_finished() and not run.curves.exists()  # one fit: no curves
        through_model = RunPredictor(run, config)(rows.rename(columns={"image": "image_path"}))
        np.testing.assert_allclose(through_model, rows["probability"], atol=1e-5)

    # Features that no longer match the images (a stale cache) are caught by the check.
    store = next((Path(manifest).parent / "images" / CACHE_FOLDER).glob("*.npz"))
    with np.load(store) as data:
        keys, vectors = data["keys"], data["X"]
    np.savez(store, keys=keys, X=vectors * 3 + 1)
    for metrics in (tmp_path / "cv").glob("r*/f*/metrics.json"):
        metrics.unlink()
    with pytest.raises(MammohybridError, match="differ from the cached-feature path"):
        run_cv(config, tmp_path / "cv", folds=3, repeats=2)
