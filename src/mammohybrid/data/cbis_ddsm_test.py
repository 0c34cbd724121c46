"""CBIS-DDSM ingest: linking the two views of a lesion, bad input reported row by row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mammohybrid.config import Config, DataConfig
from mammohybrid.data.cbis_ddsm import link_lesions
from mammohybrid.data.conftest import crop_image, mask_image, write_case_csv, write_case_files
from mammohybrid.data.ingest import IngestOutputs, run_ingest
from mammohybrid.data.manifest import read_manifest
from mammohybrid.errors import DatasetError
from mammohybrid.imaging import write_dicom


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


def test_the_crops_dicom_pixel_spacing_reaches_the_manifest(tmp_path, synthetic_row):
    rows = [synthetic_row("P_00001", "LEFT", "CC"), synthetic_row("P_00002", "RIGHT", "MLO"),
            synthetic_row("P_00003", "LEFT", "CC"), synthetic_row("P_00004", "LEFT", "MLO")]
    for index, row in enumerate(rows):
        paths = write_case_files(tmp_path / "CBIS-DDSM", row, index)
        if index == 0:  # one crop's header gives its spacing; the others' give none
            write_dicom(paths["crop"], crop_image(index),
                        attributes={"ImagerPixelSpacing": [0.05, 0.05]})
    write_case_csv(tmp_path, rows, "mass", "train")
    run_ingest("cbis-ddsm", tmp_path, tmp_path / "m.csv", Config())
    spacing = read_manifest(tmp_path / "m.csv").set_index("patient_id")["pixel_spacing_mm"]
    assert spacing["P_00001"] == 0.05
    assert spacing.drop("P_00001").isna().all()  # unknown stays empty, never guessed
