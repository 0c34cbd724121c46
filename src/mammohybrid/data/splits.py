"""Patient-level train/val/test splits and cross-validation folds that never leak.

Rules (the same for every dataset):

- A patient's images all go to one split. Patients are the dataset's patient ids (CBIS-DDSM
  ``P_xxxxx``, never the per-view DICOM PatientID).
- Splits a source already knows are kept: CBIS-DDSM's official test split, or the ``<split>/``
  folders of a folder dataset. Whatever is missing is carved out of the training patients:
  ``test`` takes ``data.test_fraction`` of them (only datasets without an official test split),
  then ``val`` takes ``data.val_fraction`` of the remaining training patients.
- Carving is stratified by patient class (all-benign, all-malignant, mixed): each class of
  patients contributes ``round(fraction * count)`` patients, drawn with ``data.split_seed``.
- ``fold`` (0 .. ``data.n_folds`` - 1) deals the train+val patients into folds, stratified the
  same way, for cross-validation; test rows get fold -1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mammohybrid.config import DataConfig
from mammohybrid.data.manifest import SPLITS, check_no_patient_leak
from mammohybrid.errors import DatasetError

TEST_FOLD = -1


def patient_strata(frame: pd.DataFrame) -> pd.Series:
    """Each patient's class: ``benign``, ``malignant`` or ``mixed`` (index: patient_id)."""
    labels = frame.groupby("patient_id")["label"].agg(["min", "max"])
    strata = np.where(labels["min"] == labels["max"],
                      np.where(labels["max"] == 1, "malignant", "benign"), "mixed")
    return pd.Series(strata, index=labels.index.astype(str), name="stratum")


def sample_patients(strata: pd.Series, fraction: float, rng: np.random.Generator) -> set[str]:
    """About ``fraction`` of the patients, the same fraction from every stratum.

    A non-empty pool of at least three patients always gives at least one patient, so that a
    small dataset still gets a validation (or test) split.
    """
    chosen: list[str] = []
    for stratum in sorted(strata.unique()):
        patients = sorted(strata.index[strata == stratum])
        order = rng.permutation(len(patients))
        chosen += [patients[i] for i in order[: round(fraction * len(patients))]]
    if not chosen and len(strata) >= 3:
        largest = strata.value_counts().index[0]
        patients = sorted(strata.index[strata == largest])
        chosen = [patients[int(rng.integers(len(patients)))]]
    return set(chosen)


def assign_splits(frame: pd.DataFrame, config: DataConfig) -> tuple[pd.DataFrame, list[str]]:
    """Fill ``split`` and ``fold`` (see module doc); returns the new frame and statements for
    the summary. Raises :class:`ManifestError` if given splits already share a patient."""
    frame = frame.copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    if "split" not in frame.columns:
        frame["split"] = None
    given = frame["split"].notna()
    if given.any() and not given.all():
        raise DatasetError(f"{int((~given).sum())} row(s) have no split while others do")
    if not given.any():
        frame["split"] = "train"
    unknown = sorted(set(frame["split"]) - set(SPLITS))
    if unknown:
        raise DatasetError(f"unknown split name(s) {', '.join(unknown)} (expected "
                           f"{', '.join(SPLITS)})")
    check_no_patient_leak(frame)

    rng = np.random.default_rng(config.split_seed)
    notes = []
    for split, fraction, key in (("test", config.test_fraction, "data.test_fraction"),
                                 ("val", config.val_fraction, "data.val_fraction")):
        if (frame["split"] == split).any():
            continue
        train = frame["split"] == "train"
        chosen = sample_patients(patient_strata(frame[train]), fraction, rng)
        frame.loc[train & frame["patient_id"].isin(chosen), "split"] = split
        notes.append(f"{split}: {len(chosen)} patient(s) carved from train ({key}={fraction}, "
                     f"stratified by patient class, data.split_seed={config.split_seed})")
    frame["fold"] = assign_folds(frame, config.n_folds, rng)
    notes.append(f"fold: train+val patients dealt into {config.n_folds} stratified folds "
                 f"(data.n_folds); test rows have fold {TEST_FOLD}")
    return frame, notes


def assign_folds(frame: pd.DataFrame, n_folds: int, rng: np.random.Generator) -> pd.Series:
    """Cross-validation fold of every row: train+val patients dealt round-robin into
    ``n_folds`` folds within each patient class; test rows get :data:`TEST_FOLD`."""
    development = frame["split"] != "test"
    strata = patient_strata(frame[development])
    fold_of: dict[str, int] = {}
    offset = 0  # continue dealing where the previous stratum stopped: folds stay balanced
    for stratum in sorted(strata.unique()):
        patients = sorted(strata.index[strata == stratum])
        for i, index in enumerate(rng.permutation(len(patients))):
            fold_of[patients[index]] = (offset + i) % n_folds
        offset += len(patients)
    folds = frame["patient_id"].map(fold_of)
    return folds.where(development, TEST_FOLD).fillna(TEST_FOLD).astype(int)
