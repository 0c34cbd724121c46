"""mini-MIAS ingest on files in the exact mini-MIAS format (Info.txt, 1024 x 1024 8-bit PGM)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import Config, DataConfig
from mammohybrid.data.ingest import run_ingest
from mammohybrid.data.manifest import check_no_patient_leak, read_manifest
from mammohybrid.data.mias import crop_box, ingest_mias, read_info
from mammohybrid.data.sources import IngestResult
from mammohybrid.errors import DatasetError
from mammohybrid.imaging import read_image

# Free text as the real Info.txt opens with (credits, column descriptions), ~100 lines.
HEADER = ["MAMMOGRAPHIC IMAGE ANALYSIS SOCIETY", "MiniMammographic Database", "",
          "LICENCE AGREEMENT", "This is a legal agreement between you, the end user and the",
          "Mammographic Image Analysis Society ('MIAS'). ...", "",
          *[f"   free text line {i}: the database mdb files are described below" for i in
            range(80)],
          "1st column: MIAS database reference number.",
          "2nd column: Character of background tissue: F Fatty, G Fatty-glandular, D Dense",
          "3rd column: Class of abnormality present: CALC CIRC SPIC MISC ARCH ASYM NORM",
          "4th column: Severity of abnormality; B Benign, M Malignant",
          "5th,6th columns: x,y image-coordinates of centre of abnormality.",
          "7th column: Approximate radius (in pixels) of a circle enclosing the abnormality.",
          "NOTES", "1) The list is arranged in pairs of films, where each pair represents the",
          "   left (even filename numbers) and right mammograms (odd filename numbers) of a",
          "   single patient.", "2) The size of ALL the images is 1024 pixels x 1024 pixels. "
          "The images have been centered in the matrix.",
          "3) When calcifications are present, centre locations and radii apply to clusters",
          "   rather than individual calcifications. Coordinate system origin is the bottom-left",
          "   corner.", "4) In some cases calcifications are widely distributed throughout the",
          "   image rather than concentrated at a single site. In these cases centre locations",
          "   and radii are inappropriate and have been omitted.", ""]
LINES = [
    "mdb001 G CIRC B 535 425 197",
    "mdb002 G CIRC B 522 280 69",
    "mdb003 D NORM ",  # NORM lines end with a trailing space in the real file
    "mdb004 D NORM ",
    "mdb005 F CIRC B 477 133 30",
    "mdb005 F CIRC B 500 168 26",  # a film with two lesions
    "mdb006 F SPIC M 40 1000 20",  # at the top-left corner: the crop is clamped
    "mdb007 G CALC B 300 500 15",  # not a mass
    "mdb008 F MISC M",  # no coordinates
    "mdb010 G CIRC B 980 40 20",  # in the film background: skipped
    "mdb012 G XXXX B 1 2 3",  # malformed
    "mdb013 G SPIC M 500 500 30",  # film missing
    "mdb002 G CIRC B 522 280 69",  # duplicate
]
TISSUE, LESION = 120, 240


def _film(lesions: list[tuple[int, int, int]]) -> np.ndarray:
    """A 1024 x 1024 8-bit film: a breast against the left edge, bright discs at lesions."""
    film = np.zeros((1024, 1024), np.uint8)
    cv2.ellipse(film, (0, 512), (700, 560), 0, -90, 90, TISSUE, -1)
    for x, y, radius in lesions:
        cv2.circle(film, (x, 1024 - y), max(radius // 2, 4), LESION, -1)  # origin bottom-left
    return film


@pytest.fixture
def mias_root(tmp_path: Path) -> Path:
    root = tmp_path / "mias"
    root.mkdir()
    (root / "Info.txt").write_text("\n".join(HEADER + LINES) + "\n", encoding="latin-1")
    lesions: dict[str, list[tuple[int, int, int]]] = {}
    for line in LINES:
        tokens = line.split()
        lesions.setdefault(tokens[0], [])
        if len(tokens) == 7 and tokens[2] != "XXXX":
            lesions[tokens[0]].append((int(tokens[4]), int(tokens[5]), int(tokens[6])))
    for refnum, spots in lesions.items():
        if refnum != "mdb013":
            assert cv2.imwrite(str(root / f"{refnum}.pgm"), _film(spots))
    return root


def test_real_format_files_are_pgm_1024_8_bit(mias_root):
    assert (mias_root / "mdb001.pgm").read_bytes()[:2] == b"P5"
    film = read_image(mias_root / "mdb001.pgm")
    assert film.dtype == np.uint8 and film.shape == (1024, 1024)


def test_read_info_skips_free_text_and_counts_what_it_skips(mias_root):
    result = IngestResult("mini-mias")
    lesions = read_info(mias_root / "Info.txt", result)
    assert [(x["refnum"], x["mias_class"]) for x in lesions] == [
        ("mdb001", "CIRC"), ("mdb002", "CIRC"), ("mdb005", "CIRC"), ("mdb005", "CIRC"),
        ("mdb006", "SPIC"), ("mdb007", "CALC"), ("mdb010", "CIRC"), ("mdb013", "SPIC")]
    assert result.counts == {"normal films (NORM lines)": 2}
    first_line = len(HEADER) + 1
    assert [(e.kind, e.row) for e in result.errors] == [
        ("no_crop", first_line + 8), ("bad_value", first_line + 10),
        ("duplicate_row", first_line + 12)]
    assert "mdb008 MISC M: no lesion coordinates" in result.errors[0].message


def test_crop_box_rule_and_clamping():
    # side = max(64, round(2.5 r)); centre row = 1024 - y
    assert crop_box(522, 280, 69, 1024, 1024) == (1024 - 280 - 86, 522 - 86, 172)
    assert crop_box(40, 1000, 20, 1024, 1024) == (0, 8, 64)  # clamped at the top
    assert crop_box(1020, 3, 10, 1024, 1024) == (960, 960, 64)  # clamped bottom-right
    assert crop_box(500, 500, 600, 1024, 1024) == (0, 0, 1024)  # never larger than the film


def test_ingest_mias_mass_task(mias_root, tmp_path):
    result = ingest_mias(mias_root, DataConfig(), out_dir=tmp_path / "out")
    frame = result.frame
    assert frame["lesion_id"].tolist() == ["mdb001_1", "mdb002_1", "mdb005_1", "mdb005_2",
                                           "mdb006_1"]
    # film n belongs to patient (n + 1) // 2
    assert frame["patient_id"].tolist() == ["001", "001", "003", "003", "003"]
    assert frame["label"].tolist() == [0, 0, 0, 0, 1]
    assert frame["pathology"].tolist() == ["B", "B", "B", "B", "M"]
    assert result.counts["skipped: crop almost all background"] == 1  # mdb010
    assert result.counts["skipped: lesions outside the task's classes (CALC 1)"] == 1
    assert [(e.kind, e.row) for e in result.errors if e.kind == "missing_file"] == \
        [("missing_file", len(HEADER) + 12)]
    for _, row in frame.iterrows():
        crop = read_image(row["image_path"])
        film = read_image(row["full_image_path"])
        r0, c0, side = row["crop_row"], row["crop_col"], row["crop_size"]
        np.testing.assert_array_equal(crop, film[r0:r0 + side, c0:c0 + side])
        # the lesion (drawn at row 1024 - y) is inside the crop
        assert crop[1024 - row["lesion_y"] - r0, row["lesion_x"] - c0] == LESION
    mdb002 = frame.set_index("lesion_id").loc["mdb002_1"]
    assert (mdb002["crop_row"], mdb002["crop_col"], mdb002["crop_size"]) == (658, 436, 172)
    # 200 micron pixels; the lesion centre inside the crop, even where the crop was clamped
    assert (frame["pixel_spacing_mm"] == 0.2).all()
    mdb006 = frame.set_index("lesion_id").loc["mdb006_1"]  # clamped at the top: (0, 8, 64)
    assert (mdb006["center_row"], mdb006["center_col"]) == (1024 - 1000 - 0, 40 - 8)
    assert (mdb002["center_row"], mdb002["center_col"]) == (86, 86)


def test_rows_outside_the_task_are_counted_by_class_never_errors(tmp_path):
    root = tmp_path / "mias"
    root.mkdir()
    lines = ["mdb001 G CIRC B 535 425 197", "mdb002 G CALC M", "mdb003 G CALC B *NOTE 3*",
             "mdb004 G ARCH M 300 500 40"]
    (root / "Info.txt").write_text("\n".join(HEADER + lines) + "\n", encoding="latin-1")
    for number in range(1, 5):
        assert cv2.imwrite(str(root / f"mdb{number:03d}.pgm"), _film([(535, 425, 197)]))
    mass = ingest_mias(root, DataConfig(), out_dir=tmp_path / "mass", task="mass")
    assert mass.errors == []  # the calcifications without coordinates are not the task's
    assert mass.counts["skipped: lesions outside the task's classes (ARCH 1, CALC 2)"] == 3
    calc = ingest_mias(root, DataConfig(), out_dir=tmp_path / "calc", task="calc")
    assert [e.kind for e in calc.errors] == ["no_crop", "no_crop"]
    assert calc.counts["skipped: lesions outside the task's classes (ARCH 1, CIRC 1)"] == 2


def test_ingest_mias_all_task_includes_calcifications(mias_root, tmp_path):
    result = ingest_mias(mias_root, DataConfig(), out_dir=tmp_path, task="all")
    assert "mdb007_1" in set(result.frame["lesion_id"])
    calc = ingest_mias(mias_root, DataConfig(), out_dir=tmp_path, task="calc")
    assert calc.frame["mias_class"].tolist() == ["CALC"]
    nonmass = ingest_mias(mias_root, DataConfig(), out_dir=tmp_path, task="nonmass")
    assert nonmass.frame["mias_class"].tolist() == ["CALC"]
    with pytest.raises(DatasetError, match="unknown MIAS task"):
        ingest_mias(mias_root, DataConfig(), out_dir=tmp_path, task="norm")


def test_run_ingest_mias_writes_crops_manifest_and_grouped_splits(mias_root, tmp_path):
    out = tmp_path / "out" / "manifest.csv"
    result = run_ingest("mias", mias_root, out, Config())
    manifest = read_manifest(out)
    check_no_patient_leak(manifest)
    assert len(manifest) == 5 and set(manifest["split"]) <= {"train", "val", "test"}
    assert all(Path(p).is_file() and Path(p).parent.name == "mias_crops"
               for p in manifest["image_path"])
    assert "fold" in manifest.columns
    assert pd.read_csv(out, dtype=str)["patient_id"].tolist()[0] == "001"  # kept as text
    summary = (tmp_path / "out" / "manifest.summary.md").read_text()
    assert "crops: square of side max(64, 2.5 x radius)" in summary
    assert len(result.errors) == 4  # no coordinates, bad line, duplicate, missing film


def test_a_corrupt_film_is_a_row_error_and_the_rest_ingests(mias_root, tmp_path):
    (mias_root / "mdb005.pgm").write_bytes(b"P5\n1024 1024\n255\n" + b"\0" * 100)  # truncated
    result = ingest_mias(mias_root, DataConfig(), out_dir=tmp_path)
    assert result.frame["lesion_id"].tolist() == ["mdb001_1", "mdb002_1", "mdb006_1"]
    unreadable = [e for e in result.errors if e.kind == "unreadable_image"]
    # both lesion lines of the film are reported, each with its Info.txt line
    assert [e.row for e in unreadable] == [len(HEADER) + 5, len(HEADER) + 6]
    assert all("mdb005.pgm" in e.message for e in unreadable)


def test_missing_info_txt_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"Info\.txt not found"):
        ingest_mias(tmp_path, DataConfig(), out_dir=tmp_path)


def test_cli_offers_exactly_the_ingest_tasks():
    from mammohybrid.cli.data import MiasTask
    from mammohybrid.data.mias import TASKS

    assert {task.value for task in MiasTask} == set(TASKS)


@pytest.mark.shared
def test_real_mias_dev_set_ingests_with_an_error_row_per_film_without_coordinates(shared_dir,
                                                                                tmp_path):
    root = shared_dir / "data" / "mias-dev"
    if not (root / "Info.txt").is_file():
        pytest.skip(f"{root} is absent: the mini-MIAS development set is needed for this test")
    result = ingest_mias(root, DataConfig(), out_dir=tmp_path, task="nonmass")
    no_crop = [e for e in result.errors if e.kind == "no_crop"]
    assert len(no_crop) == 3 and all("CALC" in e.message for e in no_crop)
    frame = result.frame
    # 63 lesion rows - 3 without coordinates - 2 crops that are almost all background.
    assert len(frame) == 58 and result.counts["skipped: crop almost all background"] == 2
    assert set(frame["mias_class"]) == {"CALC", "ARCH", "ASYM"}
    assert frame["patient_id"].nunique() == 51 and frame["label"].sum() == 30
    # The mass task finds no lesion there, and no error row either: the three calcifications
    # without coordinates are outside it.
    with pytest.raises(DatasetError, match="no usable image found") as raised:
        run_ingest("mias", root, tmp_path / "mass.csv", Config(), task="mass")
    assert "error" not in str(raised.value)
    assert "outside the task's classes (ARCH 19, ASYM 14, CALC 30)" in str(raised.value)
