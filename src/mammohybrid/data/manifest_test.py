"""The manifest contract: required columns, label and split values, relative paths on disk and
absolute paths in memory, atomic writing, the split summary."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from mammohybrid.data.manifest import read_manifest, split_summary, write_manifest
from mammohybrid.errors import ManifestError


def _frame(folder) -> pd.DataFrame:
    return pd.DataFrame({
        "image_path": [str(folder / "img" / f"{k}.png") for k in range(4)],
        "label": [0, 1, 1, 0],
        "patient_id": ["P_1", "P_1", "P_2", "0003"],
        "lesion_id": ["a", "a", "b", "c"],
        "split": ["train", "train", "val", "test"],
        "extra": [1, 2, 3, 4],
        "pathology": ["BENIGN", "MALIGNANT", "MALIGNANT", "BENIGN_WITHOUT_CALLBACK"],
    })


def test_write_then_read_round_trip(tmp_path) -> None:
    path = write_manifest(_frame(tmp_path), tmp_path / "manifest.csv")
    on_disk = pd.read_csv(path)
    assert list(on_disk.columns[:4]) == ["image_path", "label", "pathology", "patient_id"]
    assert on_disk["image_path"][0] == "img/0.png"  # relative to the manifest's folder
    frame = read_manifest(path)
    assert frame["image_path"][0] == str((tmp_path / "img" / "0.png").resolve())
    assert frame["patient_id"].tolist() == ["P_1", "P_1", "P_2", "0003"]  # ids stay text
    assert frame["label"].tolist() == [0, 1, 1, 0]


def test_paths_relative_to_the_working_directory(tmp_path, monkeypatch) -> None:
    # An ingest given a relative ROOT builds paths relative to the working directory.
    monkeypatch.chdir(tmp_path)
    frame = _frame(tmp_path).assign(image_path=[f"data/img/{k}.png" for k in range(4)])
    path = write_manifest(frame, "out/manifest.csv")
    assert pd.read_csv(path)["image_path"][0] == "../data/img/0.png"
    assert read_manifest(path)["image_path"][0] == str(tmp_path.resolve() / "data/img/0.png")


def test_paths_far_outside_stay_absolute(tmp_path) -> None:
    frame = _frame(tmp_path).assign(image_path="/elsewhere/entirely/x.png")
    path = write_manifest(frame, tmp_path / "a" / "b" / "c" / "manifest.csv")
    assert pd.read_csv(path)["image_path"][0] == "/elsewhere/entirely/x.png"


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["patient_id"]), "missing column"),
    (lambda f: f.assign(label=[0, 1, 2, 0]), "label must be 0 or 1"),
    (lambda f: f.assign(split=["train", "dev", "val", "test"]), "split must be one of"),
])
def test_invalid_manifests_are_refused(tmp_path, change, message) -> None:
    path = tmp_path / "m.csv"
    change(_frame(tmp_path)).to_csv(path, index=False)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_missing_and_unreadable_files(tmp_path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.csv")
    with pytest.raises(ManifestError, match="missing column"):
        write_manifest(pd.DataFrame({"image_path": ["x"]}), tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_split_summary_counts_images_lesions_patients(tmp_path) -> None:
    table = split_summary(_frame(tmp_path))
    rows = {(r.split, r[2]): (r.images, r.lesions, r.patients) for r in table.itertuples()}
    assert rows[("train", "all")] == (2, 1, 1)
    assert rows[("train", "benign")] == (1, 1, 1)
    assert rows[("val", "malignant")] == (1, 1, 1)
    assert table["split"].tolist()[0] == "train" and table["split"].tolist()[-1] == "test"


def test_a_manifest_that_is_no_regular_file_is_named_for_what_it_is(tmp_path):
    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="it is a named pipe \\(FIFO\\), not a regular file"):
        read_manifest(fifo)
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "missing.csv")
