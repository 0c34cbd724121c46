"""CBIS-DDSM JPEG re-export: rows mapped through series UIDs, missing images, dicom_info.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import DataConfig
from mammohybrid.data.cbis_ddsm import ingest_cbis_ddsm_jpeg
from mammohybrid.data.conftest import FULL_SHAPE, crop_image, mask_image, real_rows, write_case_csv
from mammohybrid.errors import DatasetError

# Columns of the re-export's csv/dicom_info.csv (the ones ingest uses, plus the others it has).
DICOM_INFO_COLUMNS = [
    "file_path", "image_path", "AccessionNumber", "BitsAllocated", "BitsStored",
    "BodyPartExamined", "Columns", "ContentDate", "ContentTime", "ConversionType", "HighBit",
    "InstanceNumber", "LargestImagePixelValue", "Laterality", "Modality", "PatientBirthDate",
    "PatientID", "PatientName", "PatientOrientation", "PatientSex", "PhotometricInterpretation",
    "PixelRepresentation", "ReferringPhysicianName", "Rows", "SOPClassUID", "SOPInstanceUID",
    "SamplesPerPixel", "SecondaryCaptureDeviceManufacturer",
    "SecondaryCaptureDeviceManufacturerModelName", "SeriesDescription", "SeriesInstanceUID",
    "SeriesNumber", "SmallestImagePixelValue", "SpecificCharacterSet", "StudyDate", "StudyID",
    "StudyInstanceUID", "StudyTime"]


def _jpeg_export(root: Path, rows: list[dict[str, str]], undescribed: set[int]) -> list[dict]:
    """Write jpeg/<series UID>/1-N.jpg and csv/dicom_info.csv for ``rows``; the entries of the
    rows in ``undescribed`` have no SeriesDescription. Returns the crop/mask/full jpg paths."""
    import cv2

    info, expected = [], []
    counter = iter(range(100, 1000))
    for index, row in enumerate(rows):
        files = {}
        for kind, column, image in (
                ("full", "image file path", crop_image(index, FULL_SHAPE)),
                ("crop", "cropped image file path", crop_image(index)),
                ("mask", "ROI mask file path", mask_image(index))):
            case, study, series, _ = row[column].strip().split("/")
            name = f"1-{next(counter)}.jpg"
            path = root / "jpeg" / series / name
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), (image >> 8).astype(np.uint8) if image.dtype == np.uint16
                        else image)
            files[kind] = path
            description = {"full": "full mammogram images", "crop": "cropped images",
                           "mask": "ROI mask images"}[kind]
            info.append({"file_path": f"CBIS-DDSM/dicom/{series}/{name[:-4]}.dcm",
                         "image_path": f"CBIS-DDSM/jpeg/{series}/{name}",
                         "PatientID": case, "SeriesInstanceUID": series,
                         "StudyInstanceUID": study, "Rows": image.shape[0],
                         "Columns": image.shape[1], "BitsAllocated": 8, "Modality": "MG",
                         "SeriesDescription": "" if index in undescribed else description})
        expected.append(files)
    (root / "csv").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(info, columns=DICOM_INFO_COLUMNS).to_csv(root / "csv" / "dicom_info.csv",
                                                          index=False)
    return expected


def test_jpeg_export_maps_rows_through_series_uids(tmp_path, synthetic_row):
    rows = [synthetic_row("P_00001", "LEFT", "CC", shared=True),
            synthetic_row("P_00001", "LEFT", "MLO", shared=False),
            synthetic_row("P_00002", "RIGHT", "CC", pathology="BENIGN", shared=True),
            synthetic_row("P_00003", "RIGHT", "CC", pathology="BENIGN", split="Test")]
    expected = _jpeg_export(tmp_path, rows, undescribed={1, 2})
    write_case_csv(tmp_path / "csv", rows[:3], "mass", "train")
    write_case_csv(tmp_path / "csv", rows[3:], "mass", "test")
    result = ingest_cbis_ddsm_jpeg(tmp_path, DataConfig())
    assert result.errors == []
    got = result.frame.sort_values(["official_split", "source_row"], ascending=[False, True])
    # Rows 1 and 2 have no SeriesDescription: the full-size image is the mask.
    assert [Path(p) for p in got["image_path"]] == [e["crop"] for e in expected]
    assert [Path(p) for p in got["mask_path"]] == [e["mask"] for e in expected]
    assert [Path(p) for p in got["full_image_path"]] == [e["full"] for e in expected]
    assert list(got["split"]) == ["train", "train", "train", "test"]


@pytest.mark.shared
def test_jpeg_export_with_real_csv_rows(cbis_csv_dir, tmp_path):
    rows = real_rows(cbis_csv_dir, "mass", "train", ["P_00001", "P_00004"])
    expected = _jpeg_export(tmp_path, rows, undescribed={0})
    write_case_csv(tmp_path / "csv", rows, "mass", "train")
    result = ingest_cbis_ddsm_jpeg(tmp_path, DataConfig())
    assert result.errors == [] and len(result.frame) == len(rows)
    assert sorted(result.frame["image_path"]) == sorted(str(e["crop"]) for e in expected)


def test_jpeg_export_reports_missing_images_and_needs_dicom_info(tmp_path, synthetic_row):
    with pytest.raises(DatasetError, match=r"dicom_info\.csv"):
        ingest_cbis_ddsm_jpeg(tmp_path, DataConfig())
    rows = [synthetic_row("P_00001"), synthetic_row("P_00002", view="MLO")]
    expected = _jpeg_export(tmp_path, rows, undescribed=set())
    expected[1]["crop"].unlink()
    write_case_csv(tmp_path / "csv", rows, "mass", "train")
    result = ingest_cbis_ddsm_jpeg(tmp_path, DataConfig())
    assert list(result.frame["patient_id"]) == ["P_00001"]
    assert [(e.kind, e.row) for e in result.errors] == [("missing_file", 2)]
