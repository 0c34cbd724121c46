"""Patient-level splits, folds and the leak check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import DataConfig
from mammohybrid.data.manifest import check_no_patient_leak
from mammohybrid.data.splits import TEST_FOLD, assign_splits, patient_strata, sample_patients
from mammohybrid.errors import DatasetError, ManifestError


def _frame(patients: int = 60, seed: int = 0) -> pd.DataFrame:
    """1-3 images per patient; a third of patients malignant, a tenth mixed."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(patients):
        kind = p % 10
        for image in range(int(rng.integers(1, 4))):
            label = 1 if kind < 3 else (image % 2 if kind == 3 else 0)
            rows.append({"image_path": f"p{p}_{image}.png", "patient_id": f"P{p:03d}",
                         "label": label})
    return pd.DataFrame(rows)


def test_check_no_patient_leak_names_the_leaking_patient():
    frame = pd.DataFrame({"patient_id": ["A", "A", "B"], "split": ["train", "test", "test"]})
    with pytest.raises(ManifestError, match=r"1 patient\(s\).*e\.g\. A"):
        check_no_patient_leak(frame)
    check_no_patient_leak(frame.assign(split=["test", "test", "train"]))


def test_patient_strata():
    frame = pd.DataFrame({"patient_id": ["a", "a", "b", "c", "c"], "label": [0, 1, 1, 0, 0]})
    assert patient_strata(frame).to_dict() == {"a": "mixed", "b": "malignant", "c": "benign"}


def test_sample_patients_takes_the_fraction_of_every_stratum():
    strata = pd.Series(["benign"] * 40 + ["malignant"] * 20 + ["mixed"] * 10,
                       index=[f"p{i}" for i in range(70)])
    chosen = sample_patients(strata, 0.2, np.random.default_rng(0))
    assert strata[sorted(chosen)].value_counts().to_dict() == {"benign": 8, "malignant": 4,
                                                               "mixed": 2}
    # a tiny pool still gets one patient
    assert len(sample_patients(strata[:3], 0.1, np.random.default_rng(0))) == 1


def test_datasets_without_splits_get_stratified_patient_grouped_train_val_test():
    frame = _frame()
    config = DataConfig(val_fraction=0.2, test_fraction=0.25, n_folds=4, split_seed=3)
    result, notes = assign_splits(frame, config)
    check_no_patient_leak(result)
    patients = result.groupby("split")["patient_id"].nunique()
    # 60 patients: 18 malignant, 6 mixed, 36 benign -> test round(.25 x each) = 4 + 2 + 9
    assert patients["test"] == 15
    # val: round(.2 x remaining 14, 4, 27) = 3 + 1 + 5
    assert patients["val"] == 9 and patients["train"] == 36
    for split in ("train", "val", "test"):
        assert set(result.loc[result["split"] == split, "label"]) == {0, 1}
    assert any("test: 15 patient(s)" in n for n in notes)
    # the same seed gives the same split; another seed another one
    again, _ = assign_splits(frame, config)
    assert again["split"].tolist() == result["split"].tolist()
    other, _ = assign_splits(frame, config.model_copy(update={"split_seed": 4}))
    assert other["split"].tolist() != result["split"].tolist()


def test_folds_group_patients_and_leave_test_out():
    result, _ = assign_splits(_frame(100), DataConfig(n_folds=5))
    assert (result.loc[result["split"] == "test", "fold"] == TEST_FOLD).all()
    development = result[result["split"] != "test"]
    assert development.groupby("patient_id")["fold"].nunique().max() == 1
    sizes = development.groupby("fold")["patient_id"].nunique()
    assert sorted(sizes.index) == [0, 1, 2, 3, 4] and sizes.max() - sizes.min() <= 1
    per_fold_classes = development.groupby("fold")["label"].nunique()
    assert (per_fold_classes == 2).all()


def test_given_splits_are_kept_and_only_missing_ones_carved():
    frame = _frame()
    test_patients = {f"P{p:03d}" for p in range(0, 60, 4)}
    frame["split"] = np.where(frame["patient_id"].isin(test_patients), "test", "train")
    result, notes = assign_splits(frame, DataConfig(val_fraction=0.2))
    assert set(result.loc[result["split"] == "test", "patient_id"]) == test_patients
    assert (result.loc[frame["split"] == "train", "split"] != "test").all()
    assert (result["split"] == "val").any()
    assert not any(n.startswith("test:") for n in notes)


def test_given_splits_that_leak_fail_loudly():
    frame = _frame(10)
    frame["split"] = "train"
    frame.loc[0, "split"] = "test"
    patient = frame.loc[0, "patient_id"]
    if (frame["patient_id"] == patient).sum() == 1:  # make sure the patient has two images
        frame = pd.concat([frame, frame.iloc[[0]].assign(split="train")], ignore_index=True)
    with pytest.raises(ManifestError, match="patient leak"):
        assign_splits(frame, DataConfig())


def test_partly_given_or_unknown_splits_are_errors():
    frame = _frame(10)
    frame["split"] = None
    frame.loc[0, "split"] = "train"
    with pytest.raises(DatasetError, match="no split"):
        assign_splits(frame, DataConfig())
    with pytest.raises(DatasetError, match="holdout"):
        assign_splits(frame.assign(split="holdout"), DataConfig())
