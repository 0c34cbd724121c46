"""CBIS-DDSM case CSVs: the real ones (official split, patients shared across splits), and
missing ones."""

from __future__ import annotations

import pytest

from mammohybrid.config import DataConfig
from mammohybrid.data.cbis_ddsm import link_lesions
from mammohybrid.data.cbis_ddsm_csv import find_case_csvs, load_case_table
from mammohybrid.data.manifest import check_no_patient_leak
from mammohybrid.data.sources import IngestResult
from mammohybrid.data.splits import assign_splits
from mammohybrid.errors import DatasetError


@pytest.mark.shared
def test_real_mass_csvs_give_the_published_official_split(cbis_csv_dir):
    result = IngestResult("cbis-ddsm")
    table = load_case_table(find_case_csvs(cbis_csv_dir, cbis_csv_dir, "mass", result),
                            DataConfig(), result)
    assert result.errors == []
    by_split = table.groupby("split").agg(rois=("label", "size"),
                                          patients=("patient_id", "nunique"))
    assert by_split.loc["train"].tolist() == [1318, 691]
    assert by_split.loc["test"].tolist() == [378, 201]
    pathology = table.groupby(["split", "pathology"]).size()
    assert pathology["train"].to_dict() == {"BENIGN": 577, "BENIGN_WITHOUT_CALLBACK": 104,
                                            "MALIGNANT": 637}
    assert pathology["test"].to_dict() == {"BENIGN": 194, "BENIGN_WITHOUT_CALLBACK": 37,
                                           "MALIGNANT": 147}
    # BENIGN_WITHOUT_CALLBACK -> benign by default, and the summary says so.
    assert table["label"].sum() == 637 + 147
    assert any("BENIGN_WITHOUT_CALLBACK mapped to benign" in n for n in result.notes)

    table["lesion_id"] = link_lesions(table)
    frame, _ = assign_splits(table, DataConfig(val_fraction=0.15, split_seed=7))
    check_no_patient_leak(frame)
    test = frame[frame["split"] == "test"]
    assert (len(test), test["patient_id"].nunique()) == (378, 201)  # official test untouched
    development = frame[frame["split"] != "test"]
    assert (len(development), development["patient_id"].nunique()) == (1318, 691)
    val_patients = frame.loc[frame["split"] == "val", "patient_id"].nunique()
    assert abs(val_patients - 0.15 * 691) <= 3  # rounded per patient class
    assert (frame.loc[frame["split"] == "val", "official_split"] == "train").all()


@pytest.mark.shared
def test_real_csvs_with_calc_put_patients_shared_across_splits_in_test(cbis_csv_dir):
    result = IngestResult("cbis-ddsm")
    table = load_case_table(find_case_csvs(cbis_csv_dir, cbis_csv_dir, "all", result),
                            DataConfig(), result)
    assert len(table) == 1318 + 378 + 1546 + 326
    moved = table[(table["official_split"] == "train") & (table["split"] == "test")]
    # 13 mass-train/calc-test and 18 mass-test/calc-train patients (paper-spec.md).
    assert moved["patient_id"].nunique() == 13 + 18
    check_no_patient_leak(table)


def test_missing_csvs_are_a_clear_error(tmp_path):
    result = IngestResult("cbis-ddsm")
    with pytest.raises(DatasetError, match=r"mass_case_description_train_set\.csv"):
        find_case_csvs(tmp_path, None, "mass", result)
    with pytest.raises(DatasetError, match="unknown abnormality"):
        find_case_csvs(tmp_path, None, "tumour", result)
