"""End-to-end tests of ``mammohybrid predict`` on a run directory made by ``train``: mixed
good and bad inputs (8- and 16-bit, DICOM written with pydicom here), exit codes, Grad-CAM
overlays and the filter ensemble."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from mammohybrid.cli import app, main
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.imaging import read_image, write_png

runner = CliRunner()


def _write_dicom16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit MONOCHROME2 secondary-capture DICOM, written with pydicom directly."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "MG"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.PixelData = pixels.astype("<u2").tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture()
def inputs(tmp_path) -> dict[str, Path]:
    """Good crops of every kind in ``crops/``, bad files in ``crops/bad/``, an empty folder."""
    rng = np.random.default_rng(11)
    crops = tmp_path / "crops"
    crop16 = render_roi_crop(rng, 80, malignant=True)
    files = {
        "png8": write_png(crops / "png8.png",
                          (render_roi_crop(rng, 60, malignant=False) // 257).astype(np.uint8)),
        "png16": write_png(crops / "png16.png", crop16),
        "dicom16": _write_dicom16(crops / "dicom16.dcm", crop16),
        "pgm16": crops / "pgm16.pgm",
        "jpeg8": crops / "jpeg8.jpg",
    }
    cv2.imwrite(str(files["pgm16"]), render_roi_crop(rng, 50, malignant=False))
    cv2.imwrite(str(files["jpeg8"]), (render_roi_crop(rng, 70, malignant=True) // 257)
                .astype(np.uint8))
    bad = crops / "bad"
    bad.mkdir()
    data = files["png16"].read_bytes()
    (bad / "corrupt.png").write_bytes(data[:80] + b"\x00" * 64)
    data = files["dicom16"].read_bytes()
    (bad / "truncated.dcm").write_bytes(data[: len(data) // 3])
    (bad / "text.png").write_text("this is no image\n")
    (tmp_path / "empty").mkdir()
    return files


def test_help_lists_the_options() -> None:
    result = runner.invoke(app, ["predict", "--help"])
    assert result.exit_code == 0
    for option in ("--out", "--batch-size", "--workers", "--gradcam", "--filters"):
        assert option in result.output


@pytest.mark.slow
def test_bad_files_get_error_rows_and_a_non_zero_exit(run_dir, inputs, tmp_path) -> None:
    out = tmp_path / "predictions.csv"
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "crops"),
                                 str(tmp_path / "empty"), "--out", str(out),
                                 "--workers", "2", "--batch-size", "2"])
    assert result.exit_code == 3, result.output
    assert "predicted 5 of 9 image(s)" in result.output
    assert "4 FAILED (column 'error')" in result.output
    for name in ("corrupt.png", "truncated.dcm", "text.png", "empty"):
        assert name in result.output

    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 9
    failed = frame[frame["error"] != ""]
    assert sorted(Path(p).name for p in failed["path"]) == ["corrupt.png", "empty", "text.png",
                                                              "truncated.dcm"]
    assert (failed["probability"] == "").all() and (failed["label"] == "").all()
    good = frame[frame["error"] == ""].set_index(frame[frame["error"] == ""]["path"]
                                                 .map(lambda p: Path(p).name))
    assert sorted(good.index) == ["dicom16.dcm", "jpeg8.jpg", "pgm16.pgm", "png16.png",
                                  "png8.png"]
    probabilities = good["probability"].astype(float)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    threshold = good["threshold"].astype(float)
    assert (good["label"].astype(int) == (probabilities >= threshold).astype(int)).all()
    # The 16-bit DICOM holds the same pixels as the 16-bit PNG: same prediction.
    assert read_image(inputs["dicom16"]).dtype == np.uint16
    np.testing.assert_array_equal(read_image(inputs["dicom16"]), read_image(inputs["png16"]))
    assert probabilities["dicom16.dcm"] == pytest.approx(probabilities["png16.png"], abs=1e-7)
    assert (tmp_path / "predictions.config.yaml").is_file()


@pytest.mark.slow
def test_clean_run_with_gradcam_and_filter_ensemble(run_dir, inputs, tmp_path) -> None:
    out = tmp_path / "p.csv"
    good = [str(inputs[name]) for name in ("png8", "dicom16", "pgm16")]
    result = runner.invoke(app, ["predict", str(run_dir), *good, "-o", str(out),
                                 "--gradcam", str(tmp_path / "cam"),
                                 "--filters", "median,wiener", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "predicted 3 of 3 image(s)" in result.output and "none failed" in result.output
    assert "averaged over median, wiener" in result.output
    assert "chosen on validation for 'gaussian'" in result.output
    frame = pd.read_csv(out)
    assert list(frame.columns[-3:]) == ["probability_median", "probability_wiener", "gradcam"]
    np.testing.assert_allclose(frame["probability"],
                               frame[["probability_median", "probability_wiener"]].mean(axis=1))
    overlays = sorted(p.name for p in (tmp_path / "cam").glob("*.png"))
    assert len(overlays) == 6  # (one branch + combined) per image
    assert all(Path(p).is_file() for p in frame["gradcam"])


def test_errors_are_one_line(run_dir, tmp_path, capsys) -> None:
    image = write_png(tmp_path / "a.png", np.zeros((40, 40), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(tmp_path), str(image), "--out", str(tmp_path / "p.csv")])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "not a run directory (no config.yaml)" in error and "Traceback" not in error

    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run_dir), str(image), "--out", str(tmp_path / "p.csv"),
              "--filters", "median,bilateral"])
    assert exit_info.value.code == 1
    assert "unknown strategy bilateral" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_names_a_spreadsheet_would_run_are_written_as_text(run_dir, tmp_path,
                                                          monkeypatch) -> None:
    """CSV injection: a cell beginning with =, +, - or @ goes behind a single quote, so that a
    spreadsheet shows it instead of running it; numbers (a negative one too) stay numbers."""
    names = ["=HYPERLINK(A1).png", "+1.png", "@SUM(A1).png", "-2.png", "plain.png"]
    for name in names:
        write_png(tmp_path / name, np.full((40, 40), 200, np.uint8))
    (tmp_path / "=broken.png").write_text("no image")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(run_dir), "--out", str(out), "--workers", "0",
                                 "--", *names, "=broken.png"])
    assert result.exit_code == 3, result.output
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame["path"]) == [f"'{name}" for name in names[:4]] + ["plain.png",
                                                                       "'=broken.png"]
    assert frame["error"].iloc[-1].startswith("'=broken.png: ")
    assert (frame["probability"].iloc[:5].astype(float) >= 0).all()
