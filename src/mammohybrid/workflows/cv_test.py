import numpy as np
import pandas as pd

from mammohybrid.config import Config, with_overrides
from mammohybrid.workflows.cv import fold_manifests


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
