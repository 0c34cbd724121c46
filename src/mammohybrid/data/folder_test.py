"""Folder and user-CSV ingest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import Config, DataConfig, with_overrides
from mammohybrid.data.folder import ingest_folder
from mammohybrid.data.ingest import run_ingest
from mammohybrid.data.manifest import read_manifest
from mammohybrid.errors import DatasetError
from mammohybrid.imaging import write_dicom


def _png(path: Path, value: int = 100, dtype: type = np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image: np.ndarray = np.full((24, 20), value, dtype)
    image[5:10, 5:10] = value // 2
    assert cv2.imwrite(str(path), image)
    return path


def test_class_folders_with_patient_subfolders(tmp_path):
    _png(tmp_path / "benign" / "anna" / "cc.png")
    _png(tmp_path / "benign" / "anna" / "mlo.png")
    _png(tmp_path / "malignant" / "anna" / "left.png", 30000, np.uint16)  # 16-bit PNG
    _png(tmp_path / "malignant" / "x1.png")
    _png(tmp_path / "malignant" / "x2.jpg")
    (tmp_path / "benign" / "notes.txt").write_text("not an image")
    _png(tmp_path / "other" / "y.png")
    result = ingest_folder(tmp_path, DataConfig())
    frame = result.frame.sort_values("image_path")
    assert frame["patient_id"].tolist() == ["anna", "anna", "anna", "malignant/x1",
                                            "malignant/x2"]
    assert frame["label"].tolist() == [0, 0, 1, 1, 1]
    assert frame["lesion_id"].tolist() == ["benign/anna/cc", "benign/anna/mlo",
                                           "malignant/anna/left", "malignant/x1", "malignant/x2"]
    assert "split" not in frame.columns
    assert result.counts["skipped: files that are not images"] == 1
    assert any("2 image(s) lie directly in a class folder" in n for n in result.notes)
    assert any("ignored folder" in n and "other" in n for n in result.notes)


def test_split_folders_are_kept(tmp_path):
    for split in ("train", "test"):
        for cls in ("benign", "malignant"):
            for i in range(4):
                _png(tmp_path / split / cls / f"{split}_{cls}_{i}.png")
    out = tmp_path / "m.csv"
    run_ingest("folder", tmp_path, out, Config())
    manifest = read_manifest(out)
    test = manifest[manifest["split"] == "test"]
    assert len(test) == 8 and test["image_path"].str.contains("/test/").all()
    assert set(manifest["split"]) == {"train", "val", "test"}  # val carved from train
    assert manifest.loc[manifest["split"] == "val", "image_path"].str.contains("/train/").all()


def test_files_numbered_per_class_and_split_are_distinct_patients(tmp_path):
    # A common layout: every class folder of every split numbers its files from 0. A loose
    # file is its own patient, so "0.png" in four folders is four patients, not one that
    # crosses splits (which used to abort the ingest with a patient leak).
    for split in ("train", "test"):
        for cls in ("benign", "malignant"):
            for i in range(3):
                _png(tmp_path / split / cls / f"{i}.png")
    out = tmp_path / "m.csv"
    result = run_ingest("folder", tmp_path, out, Config())
    manifest = read_manifest(out)
    assert manifest["patient_id"].nunique() == len(manifest) == 12
    assert "train/benign/0" in set(manifest["patient_id"])
    assert manifest["lesion_id"].nunique() == 12
    assert any("12 image(s) lie directly in a class folder" in n for n in result.notes)


def test_user_csv_with_aliases_and_bad_rows(tmp_path):
    for i in range(6):
        _png(tmp_path / "img" / f"{i}.png")
    (tmp_path / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rows = [
        ["img/0.png", "benign", "p1"], ["img/1.png", "MALIGNANT", "p1"], ["img/2.png", "0", "p2"],
        ["img/3.png", "1", "p3"], ["img/4.png", "B", "p4"], ["img/5.png", "M", "p5"],
        ["img/5.png", "M", "p5"],  # duplicate
        ["img/corrupt.png", "benign", "p6"],
        ["img/missing.png", "benign", "p7"],
        ["../outside.png", "benign", "p8"],
        ["img/0.png_", "maybe", "p9"],  # unknown label (file missing is checked first)
        ["img/2.png_", "benign", ""],  # no patient
    ]
    csv_path = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["File", "Class", "Patient"]).to_csv(csv_path, index=False)
    result = ingest_folder(csv_path, DataConfig())
    assert result.frame["label"].tolist() == [0, 1, 0, 1, 0, 1]
    assert result.frame["patient_id"].tolist() == ["p1", "p1", "p2", "p3", "p4", "p5"]
    assert [(e.kind, e.row) for e in result.errors] == [
        ("missing_value", 12), ("duplicate_row", 7), ("unreadable_image", 8),
        ("missing_file", 9), ("path_outside_root", 10), ("missing_file", 11)]


def test_user_csv_unknown_label_and_split_column(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png")
    pd.DataFrame({"image_path": ["0.png", "1.png", "2.png"], "label": ["benign", "maybe", "1"],
                  "patient_id": ["a", "b", "c"], "split": ["train", "test", "holdout"]}
                 ).to_csv(tmp_path / "l.csv", index=False)
    result = ingest_folder(tmp_path / "l.csv", DataConfig())
    assert result.frame["image_path"].map(lambda p: Path(p).name).tolist() == ["0.png"]
    assert result.frame["split"].tolist() == ["train"]
    assert sorted(e.kind for e in result.errors) == ["bad_value", "unknown_pathology"]


def test_user_csv_missing_columns_and_bad_layouts_are_clear_errors(tmp_path):
    pd.DataFrame({"path": ["a.png"], "label": [0]}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(DatasetError, match="patient_id"):
        ingest_folder(tmp_path / "l.csv", DataConfig())
    (tmp_path / "pictures").mkdir()
    with pytest.raises(DatasetError, match="expected class folders"):
        ingest_folder(tmp_path / "pictures", DataConfig())


def test_pixel_spacing_from_the_csv_column_else_the_dicom_header(tmp_path):
    for name in ("a.png", "b.png", "c.png", "e.png"):
        _png(tmp_path / name)
    write_dicom(tmp_path / "d.dcm", np.full((24, 20), 900, np.uint16),
                attributes={"PixelSpacing": [0.07, 0.07]})
    table = tmp_path / "list.csv"
    pd.DataFrame({"path": ["a.png", "b.png", "c.png", "d.dcm", "e.png"],
                  "label": [0, 1, 0, 1, 1], "patient": ["p1", "p2", "p3", "p4", "p5"],
                  "spacing_mm": ["0.2", "", "-1", "", "wide"]}).to_csv(table, index=False)
    result = ingest_folder(table, DataConfig())
    spacing = result.frame.set_index("lesion_id")["pixel_spacing_mm"]
    assert spacing["a"] == 0.2 and spacing["d"] == 0.07 and pd.isna(spacing["b"])
    assert sorted(Path(e.path).name for e in result.errors if e.kind == "bad_value") == \
        ["c.png", "e.png"]
    assert all("pixel_spacing_mm" in e.message for e in result.errors)


def test_one_file_under_two_spellings_or_a_link_is_a_duplicate(tmp_path):
    """./0.png and 0.png name one image: with two labels it would be in train and in test."""
    for i in range(4):
        _png(tmp_path / f"{i}.png")
    (tmp_path / "alias.png").symlink_to(tmp_path / "2.png")
    pd.DataFrame({"image_path": ["0.png", "./0.png", "sub/../1.png", "1.png", "2.png",
                                 "alias.png", "3.png"],
                  "label": [0, 1, 0, 1, 1, 0, 0],
                  "patient_id": ["a", "b", "c", "d", "e", "f", "g"],
                  "split": ["train", "test", "train", "test", "train", "val", "train"]}
                 ).to_csv(tmp_path / "l.csv", index=False)
    result = ingest_folder(tmp_path / "l.csv", DataConfig())
    assert [Path(p).name for p in result.frame["image_path"]] == ["0.png", "1.png", "2.png",
                                                                  "3.png"]
    assert [(e.kind, e.row) for e in result.errors] == [("duplicate_row", 2),
                                                        ("duplicate_row", 4),
                                                        ("duplicate_row", 6)]
    assert result.errors[0].message == ("duplicate path ./0.png (the same file as 0.png on row "
                                        "1; only that one is considered)")


def test_a_link_between_class_folders_is_a_duplicate(tmp_path):
    _png(tmp_path / "benign" / "a.png")
    _png(tmp_path / "malignant" / "b.png")
    (tmp_path / "malignant" / "a.png").symlink_to(tmp_path / "benign" / "a.png")
    result = ingest_folder(tmp_path, DataConfig())
    assert len(result.frame) == 2
    error, = result.errors
    assert error.kind == "duplicate_row"
    assert error.message.startswith("duplicate path malignant/a.png (the same file as "
                                    "benign/a.png;")


def test_ingest_reads_images_within_the_configs_limits(tmp_path):
    for cls in ("benign", "malignant"):
        for i in range(4):
            _png(tmp_path / cls / f"{cls}_{i}.png")
    within = run_ingest("folder", tmp_path, tmp_path / "within.csv", Config())
    assert len(within.frame) == 8 and not within.errors
    small = with_overrides(Config(), ["limits.max_image_pixels=100"])  # each image is 24 x 20
    with pytest.raises(DatasetError, match=r"over the 0\.0001 megapixel budget"):
        run_ingest("folder", tmp_path, tmp_path / "refused.csv", small)
    assert len(pd.read_csv(tmp_path / "refused.errors.csv")) == 8
    # The default budgets were not changed for anyone else in this process.
    assert ingest_folder(tmp_path, DataConfig()).frame.shape[0] == 8
