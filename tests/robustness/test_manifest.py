"""Every command validates its manifest through the one reader (``read_manifest``), so a bad
manifest gets the same one-line error whichever command reads it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mammohybrid.cli import app
from mammohybrid.data.manifest import read_manifest
from mammohybrid.errors import ManifestError
from mammohybrid.imaging import write_png

from .conftest import small_crop

runner = CliRunner()


def _manifest(folder: Path, rows: list[dict[str, object]]) -> Path:
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _rows(folder: Path, count: int = 3) -> list[dict[str, object]]:
    return [{"image_path": str(write_png(folder / f"i{k}.png", small_crop(k)).name),
             "label": k % 2, "patient_id": f"P{k}", "split": "train"} for k in range(count)]


def test_a_good_manifest_is_read(tmp_path: Path) -> None:
    frame = read_manifest(_manifest(tmp_path, _rows(tmp_path)))
    assert list(frame["label"]) == [0, 1, 0]
    assert all(Path(p).is_absolute() for p in frame["image_path"])


def test_an_empty_label_cell_is_named_by_row(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    rows[1]["label"] = None
    with pytest.raises(ManifestError, match=r"label must be 0 or 1: row 2 \(empty\)"):
        read_manifest(_manifest(tmp_path, rows))


def test_bad_labels_and_splits_are_named(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    rows[0]["label"] = "maybe"
    with pytest.raises(ManifestError, match=r"row 1 \('maybe'\)"):
        read_manifest(_manifest(tmp_path, rows))
    rows = _rows(tmp_path)
    rows[2]["split"] = "holdout"
    with pytest.raises(ManifestError, match=r"split must be one of .* row 3 \('holdout'\)"):
        read_manifest(_manifest(tmp_path, rows))


def test_duplicate_rows_are_refused(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    rows.append(dict(rows[0]))
    with pytest.raises(ManifestError, match=r"same image_path on more than one row: row 1 "
                                            r".* row 4"):
        read_manifest(_manifest(tmp_path, rows))


def test_one_image_under_two_spellings_is_refused(tmp_path: Path) -> None:
    """./0.png and 0.png are one file: with labels 0 and 1 in two splits it would leak."""
    rows = _rows(tmp_path)
    rows.append({**rows[0], "image_path": "./" + rows[0]["image_path"], "label": 1,
                 "patient_id": "P9", "split": "test"})
    with pytest.raises(ManifestError, match=r"same image_path on more than one row: row 1 "
                                            r".* row 4 \('\./"):
        read_manifest(_manifest(tmp_path, rows))


def test_a_patient_in_two_splits_is_refused(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    rows[1].update(patient_id="P0", split="test")
    with pytest.raises(ManifestError, match="patient leak: 1 patient"):
        read_manifest(_manifest(tmp_path, rows))


def test_missing_columns_and_unreadable_files_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("image_path,label\na.png,0\n")
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest(path)
    path.write_bytes(b"\xff\xfe\x00garbage\x00\n\x00")
    with pytest.raises(ManifestError, match=r"m\.csv"):
        read_manifest(path)


def test_the_data_root_confines_paths_with_links_resolved(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    rows = _rows(root)
    outside = write_png(tmp_path / "secret.png", small_crop(9))
    (root / "link.png").symlink_to(outside)
    rows.append({"image_path": "link.png", "label": 0, "patient_id": "P9", "split": "val"})
    manifest = _manifest(root, rows)
    assert len(read_manifest(manifest)) == 4  # no root given: the user opted out
    with pytest.raises(ManifestError, match=r"outside the data root .* row 4"):
        read_manifest(manifest, data_root=root)
    result = runner.invoke(app, ["preprocess", str(manifest), "--out", str(tmp_path / "out"),
                                 "--data-root", str(root)])
    assert result.exit_code == 1 and isinstance(result.exception, ManifestError)


def test_preprocess_refuses_a_leaking_manifest_before_any_work(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    rows[1].update(patient_id="P0", split="val")
    manifest = _manifest(tmp_path, rows)
    result = runner.invoke(app, ["preprocess", str(manifest), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "patient leak" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_a_nul_character_in_a_path_is_named_by_row(tmp_path: Path) -> None:
    """Found by the fuzzer: Path.resolve raised ValueError('embedded null byte')."""
    path = tmp_path / "m.csv"
    path.write_bytes(b"image_path,label,patient_id,split\na\0b.png,0,P1,train\n")
    with pytest.raises(ManifestError, match=r"a NUL character in image_path: row 1"):
        read_manifest(path)
