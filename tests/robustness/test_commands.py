"""Issue 12's weak cases through the commands: exit statuses (0 all done, 3 some failed, 1
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
    assert "also on row 1" in duplicate and "first kept" not in duplicate


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
