"""The CBIS-DDSM writer's output: the real CSV header and value styles, and a DICOM tree that
mixes the variants real downloads have."""

from __future__ import annotations

import csv
import re

import pandas as pd
import pytest

from mammohybrid.data.cbis_ddsm_csv import CSV_COLUMNS

# One worker writes the synthetic dataset once for these tests and synth_test.py's.
pytestmark = pytest.mark.xdist_group("synthetic_cbis_ddsm")


def test_csvs_have_the_real_columns_and_value_styles(synthetic_cbis_ddsm):
    train = synthetic_cbis_ddsm / "mass_case_description_train_set.csv"
    raw = train.read_bytes()
    assert raw.startswith(",".join(CSV_COLUMNS["mass"]).encode() + b"\r\n")
    assert b'000001.dcm\n"' in raw  # the quoted trailing newline of the real files
    frames = {split: pd.read_csv(synthetic_cbis_ddsm / f"mass_case_description_{split}_set.csv",
                                 dtype=str) for split in ("train", "test")}
    assert not set(frames["train"]["patient_id"]) & set(frames["test"]["patient_id"])
    rows = pd.concat(frames.values())
    assert rows["patient_id"].str.fullmatch(r"P_\d{5}").all()
    assert set(rows["pathology"]) <= {"MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"}
    assert set(rows["image view"]) == {"CC", "MLO"}
    assert set(rows["left or right breast"]) == {"LEFT", "RIGHT"}
    assert set(rows["abnormality type"]) == {"mass"}
    path = re.compile(r"^Mass-(Training|Test)_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)(_\d)?/"
                      r"1\.3\.6\.1\.4\.1\.9590\.100\.1\.2\.\d+/1\.3\.6\.1\.4\.1\.9590\.100\.1\.2"
                      r"\.\d+/00000[01]\.dcm\n?$")
    for column in ("image file path", "cropped image file path", "ROI mask file path"):
        assert rows[column].str.match(path).all(), column
    assert rows.groupby("patient_id").size().max() > 1  # several ROIs per patient


@pytest.mark.shared
def test_csv_header_is_the_real_one(synthetic_cbis_ddsm, cbis_csv_dir):
    for split in ("train", "test"):
        name = f"mass_case_description_{split}_set.csv"
        with open(cbis_csv_dir / name, newline="") as real, \
                open(synthetic_cbis_ddsm / name, newline="") as ours:
            assert next(csv.reader(ours)) == next(csv.reader(real))


def test_dicom_tree_mixes_the_real_variants(synthetic_cbis_ddsm):
    import pydicom

    files = sorted((synthetic_cbis_ddsm / "CBIS-DDSM").rglob("*.dcm"))
    names = {p.name for p in files}
    assert {"000000.dcm", "000001.dcm", "1-1.dcm", "1-2.dcm"} <= names  # both namings
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    crops = [h for h in headers if h.BitsAllocated == 16 and h.Rows * h.Columns < 600 * 600]
    assert sum(h.PhotometricInterpretation == "MONOCHROME1" for h in crops) == 1
    assert {int(h.BitsStored) for h in crops} == {12, 16}
    assert {h.file_meta.TransferSyntaxUID.name for h in crops} >= {
        "RLE Lossless", "Explicit VR Little Endian"}
    assert all(min(h.Rows, h.Columns) >= 100 and max(h.Rows, h.Columns) <= 650 for h in crops)
    # PatientID is per view (as in CBIS-DDSM), e.g. Mass-Training_P_00012_LEFT_CC_1
    assert all(re.fullmatch(r"Mass-(Training|Test)_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)(_\d)?",
                            str(h.PatientID)) for h in headers)
