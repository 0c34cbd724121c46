"""Damaged and hostile inputs through the commands: exit statuses (0 all done, 3 some failed, 1
nothing done), ingest's rejected rows, links out of the root, blank splits, a pickle saved as
model.keras, a stored threshold out of range, a 1x1 image, predict's output over an input."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mammohybrid.cli import app
from mammohybrid.errors import OutputConflictError
from mammohybrid.imaging import write_png

from .conftest import small_crop

runner = CliRunner()


def _listing(tmp_path: Path, rows: list[str]) -> Path:
    for k in range(4):
        write_png(tmp_path / f"img{k}.png", small_crop(k))
    path = tmp_path / "list.csv"
    path.write_text("path,label,patient,split\n" + "\n".join(rows) + "\n")
    return path


def test_ingest_exits_0_when_every_row_is_ingested(tmp_path: Path) -> None:
    listing = _listing(tmp_path, [f"img{k}.png,{'BM'[k % 2]},p{k},train" for k in range(4)])
    result = runner.invoke(app, ["ingest", "folder", str(listing), "--out",
                                 str(tmp_path / "m.csv")])
    assert result.exit_code == 0, result.output


def test_ingest_exits_3_when_rows_were_rejected(tmp_path: Path) -> None:
    listing = _listing(tmp_path, ["img0.png,B,p0,train", "img1.png,M,p1,train",
                                  "img2.png,M,p2,train", "img3.png,B,p3,train",
                                  "missing.png,B,p4,train", "img0.png,M,p5,train"])
    result = runner.invoke(app, ["ingest", "folder", str(listing), "--out",
                                 str(tmp_path / "m.csv")])
    assert result.exit_code == 3, result.output
    errors = pd.read_csv(tmp_path / "m.errors.csv")
    assert sorted(errors["kind"]) == ["duplicate_row", "missing_file"]
    duplicate = errors[errors["kind"] == "duplicate_row"]["message"].iloc[0]
    assert "the same file as img0.png on row 1" in duplicate and "first kept" not in duplicate


def test_a_blank_split_cell_is_unassigned_not_an_error(tmp_path: Path) -> None:
    listing = _listing(tmp_path, ["img0.png,B,p0,", "img1.png,M,p1,", "img2.png,M,p2,test",
                                  "img3.png,B,p3,"])
    result = runner.invoke(app, ["ingest", "folder", str(listing), "--out",
                                 str(tmp_path / "m.csv")])
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert set(manifest["split"]) <= {"train", "val", "test"} and len(manifest) == 4


def test_a_link_out_of_the_root_is_refused_unless_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for k, cls in enumerate(["benign", "malignant", "benign", "malignant"]):
        write_png(root / cls / f"i{k}.png", small_crop(k))
    outside = tmp_path / "hostname.png"
    write_png(outside, small_crop(9))
    (root / "benign" / "link.png").symlink_to(outside)
    result = runner.invoke(app, ["ingest", "folder", str(root), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 3, result.output
    errors = pd.read_csv(tmp_path / "m.errors.csv")
    assert list(errors["kind"]) == ["path_outside_root"]
    assert "symbolic link" in errors["message"].iloc[0]
    followed = runner.invoke(app, ["ingest", "folder", str(root), "--out",
                                   str(tmp_path / "m2.csv"), "--follow-links"])
    assert followed.exit_code == 0, followed.output
    assert len(pd.read_csv(tmp_path / "m2.csv")) == 5


def test_ingest_exits_1_when_nothing_is_ingested(tmp_path: Path) -> None:
    listing = _listing(tmp_path, ["missing.png,B,p0,train"])
    result = runner.invoke(app, ["ingest", "folder", str(listing), "--out",
                                 str(tmp_path / "m.csv")])
    assert result.exit_code == 1 and "no usable image" in str(result.exception)


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_predict_warns_on_a_1x1_image_and_exits_3_on_a_bad_one(run_dir: Path,
                                                               tmp_path: Path) -> None:
    good = write_png(tmp_path / "in" / "good.png", small_crop(1, (60, 60)))
    dot = write_png(tmp_path / "in" / "dot.png", np.full((1, 1), 230, np.uint8))
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(run_dir), str(good), str(dot), str(bad),
                                 "--out", str(out), "--workers", "0"])
    assert result.exit_code == 3, result.output
    rows = pd.read_csv(out, keep_default_na=False).set_index("path")
    assert "tiny image (1x1 pixels)" in rows.loc[str(dot), "warnings"]
    assert rows.loc[str(dot), "error"] == "" and rows.loc[str(good), "error"] == ""
    assert "bad.png" in rows.loc[str(bad), "error"]
    only_bad = runner.invoke(app, ["predict", str(run_dir), str(bad), "--out",
                                   str(tmp_path / "q.csv"), "--workers", "0"])
    assert only_bad.exit_code == 1, only_bad.output


def test_predict_refuses_an_output_over_an_input(run_dir: Path, tmp_path: Path) -> None:
    image = write_png(tmp_path / "a.png", small_crop(2))
    before = image.read_bytes()
    result = runner.invoke(app, ["predict", str(run_dir), str(image), "--out", str(image)])
    assert result.exit_code == 1 and "is the input" in str(result.exception)
    assert image.read_bytes() == before


def _refused(args: list[str], kept: Path) -> str:
    """Run ``args``; it must exit 1 with an OutputConflictError, ``kept`` unchanged. Returns
    the message."""
    before = kept.read_bytes()
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, OutputConflictError), result.exception
    assert kept.read_bytes() == before
    return str(result.exception)


def test_predict_refuses_an_output_over_an_image_of_an_input_folder(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    crops = tmp_path / "crops"
    image = write_png(crops / "0.png", small_crop(2))
    write_png(crops / "deeper" / "1.png", small_crop(3))
    message = _refused(["predict", str(run_dir), str(crops), "--out", str(image)], image)
    assert f"is a file the command reads in its input folder {crops.resolve()}" in message
    _refused(["predict", str(run_dir), str(crops), "--out", str(tmp_path / "p.csv"),
              "--gradcam", str(crops)], image)
    deeper = crops / "deeper" / "1.png"
    _refused(["predict", str(run_dir), str(crops), "--out", str(deeper)], deeper)
    # A CSV written beside the images is no input: predicted.
    beside = runner.invoke(app, ["predict", str(run_dir), str(crops), "--out",
                                 str(crops / "p.csv"), "--workers", "0"])
    assert beside.exit_code == 0, beside.output


def test_ingest_folder_refuses_an_output_over_one_of_its_images(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for k, cls in enumerate(["benign", "malignant", "benign", "malignant"]):
        write_png(root / cls / f"b{k}.png", small_crop(k))
    image = root / "benign" / "b0.png"
    message = _refused(["ingest", "folder", str(root), "--out", str(image)], image)
    assert "is a file the command reads in its input folder" in message
    # The manifest beside the class folders is no image: ingested.
    beside = runner.invoke(app, ["ingest", "folder", str(root), "--out",
                                 str(root / "manifest.csv")])
    assert beside.exit_code == 0, beside.output


def test_ingest_refuses_an_output_over_a_file_its_list_names(tmp_path: Path) -> None:
    """A CSV list may name an image without an image suffix: refused once the rows are read,
    before anything is written."""
    listing = _listing(tmp_path, [f"img{k}.png,{'BM'[k % 2]},p{k},train" for k in range(3)]
                       + ["scan,M,p3,train"])
    scan = tmp_path / "scan"
    scan.write_bytes((tmp_path / "img3.png").read_bytes())
    message = _refused(["ingest", "folder", str(listing), "--out", str(scan)], scan)
    assert f"is the input {scan.resolve()}" in message
    assert not list(tmp_path.glob("scan.*"))  # no companion file either


def test_ingest_cbis_ddsm_refuses_an_output_over_a_case_csv_or_a_dicom(tmp_path: Path) -> None:
    from mammohybrid.data.synth import generate_cbis_ddsm

    root = generate_cbis_ddsm(tmp_path / "cbis", patients=4, seed=1).root
    case_csv = root / "mass_case_description_train_set.csv"
    message = _refused(["ingest", "cbis-ddsm", str(root), "--out", str(case_csv)], case_csv)
    assert "is a file the command reads in its input folder" in message
    dicom = sorted(root.rglob("*.dcm"))[0]
    _refused(["ingest", "cbis-ddsm", str(root), "--out", str(dicom)], dicom)
    elsewhere = tmp_path / "csvs"
    elsewhere.mkdir()
    moved = Path(shutil.move(case_csv, elsewhere / case_csv.name))
    _refused(["ingest", "cbis-ddsm", str(root), "--csv-dir", str(elsewhere), "--out",
              str(moved)], moved)
    # The documented layout, the manifest inside the tree, is no input.
    shutil.move(moved, case_csv)
    done = runner.invoke(app, ["ingest", "cbis-ddsm", str(root), "--out",
                               str(root / "manifest.csv")])
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("value", ["NaN", "7", "-1"])
def test_predict_refuses_a_stored_threshold_out_of_range(run_dir: Path, tmp_path: Path,
                                                         value: str) -> None:
    copy = _copy_run(run_dir, tmp_path)
    (copy / "threshold.json").write_text(f'{{"value": {value}, "method": "youden", '
                                         '"split": "val"}')
    image = write_png(tmp_path / "a.png", small_crop(2))
    result = runner.invoke(app, ["predict", str(copy), str(image), "--out",
                                 str(tmp_path / "p.csv")])
    assert result.exit_code == 1
    assert "threshold.json: not a valid threshold file (" in str(result.exception)
    assert "'value'" in str(result.exception) or "NaN is not a number" in str(result.exception)


def test_a_pickle_saved_as_model_keras_gets_a_clear_message(run_dir: Path,
                                                           tmp_path: Path) -> None:
    copy = _copy_run(run_dir, tmp_path)
    (copy / "model.keras").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    image = write_png(tmp_path / "a.png", small_crop(2))
    result = runner.invoke(app, ["predict", str(copy), str(image), "--out",
                                 str(tmp_path / "p.csv")])
    assert result.exit_code == 1
    assert "not a Keras .keras archive" in str(result.exception)
