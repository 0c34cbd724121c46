"""Export of a (tiny) trained run: the ONNX file carries the run and gives the Keras model's
probabilities through the same Predictor; a SavedModel too; what cannot be exported, or does
not belong to the run, is refused in one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammohybrid.data.synth import render_roi_crop
from mammohybrid.errors import ExportError, MammohybridError, RunNotFinishedError
from mammohybrid.imaging import write_dicom, write_png
from mammohybrid.inference.backends import GradCamUnavailableError, KerasScorer, OnnxScorer
from mammohybrid.inference.export import (
    PARITY_TOLERANCE,
    SAVED_MODEL_CARD,
    SAVED_MODEL_METADATA,
    ExportedRun,
    export_run,
    file_sha256,
    probe_inputs,
)
from mammohybrid.inference.predictor import Predictor
from mammohybrid.run_dir import RunDir


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[Path]:
    """16-bit ROI-crop-like PNGs and DICOMs of both classes, and a file that is no image."""
    folder = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(8)
    paths = []
    for index in range(6):
        crop = render_roi_crop(rng, int(rng.integers(40, 120)), malignant=bool(index % 2))
        writer = write_png if index % 3 else write_dicom
        paths.append(writer(folder / f"crop{index}.{'png' if index % 3 else 'dcm'}", crop))
    (folder / "notes.png").write_text("no image")
    return [*paths, folder / "notes.png"]


@pytest.fixture(scope="module")
def onnx_export(run_dir: Path, tmp_path_factory) -> Path:
    return export_run(run_dir, "onnx", tmp_path_factory.mktemp("export") / "tiny.onnx").path


def assert_same_predictions(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same CSV to the promised parity: every column equal, probabilities to 1e-5."""
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got["probability"], expected["probability"],
                               atol=PARITY_TOLERANCE, rtol=0)
    others = [c for c in expected.columns if c != "probability"]
    pd.testing.assert_frame_equal(got[others], expected[others])


def test_onnx_export_predicts_as_the_keras_run(run_dir, onnx_export, crops) -> None:
    with Predictor.from_run(run_dir) as keras_predictor:
        expected = keras_predictor.predict_paths(crops)
    with Predictor.from_run(onnx_export, backend="onnxruntime") as onnx_predictor:
        assert onnx_predictor.scorer.backend == "onnxruntime"
        got = onnx_predictor.predict_paths(crops)
        with pytest.raises(GradCamUnavailableError, match="Grad-CAM is a Keras feature"):
            onnx_predictor.gradcam  # noqa: B018 - the property raises
    assert_same_predictions(got, expected)
    assert got["error"].iloc[-1] != "" and (got["error"].iloc[:-1] == "").all()
    assert got["probability"].iloc[:-1].std() > 1e-3  # a model that tells the crops apart


def test_export_carries_the_run(run_dir, onnx_export) -> None:
    run = RunDir.at(run_dir)
    with Predictor.from_run(onnx_export, backend="onnxruntime") as predictor:
        assert isinstance(predictor.scorer, OnnxScorer)
        exported = ExportedRun.from_metadata(predictor.scorer.metadata, str(onnx_export))
    assert exported.config == run.load_config()
    assert exported.threshold == run.load_threshold()
    assert exported.input_size == 32 and exported.tta == "none"
    assert exported.source_model_sha256 == file_sha256(run.model)
    assert exported.run_info == json.loads(run.info.read_text())
    assert exported.model_card == run.model_card.read_text()
    assert exported.parity_max_abs_diff is not None
    assert 0 <= exported.parity_max_abs_diff <= PARITY_TOLERANCE


def test_a_run_directory_predicts_with_its_own_export_only(run_dir, tmp_path) -> None:
    run = RunDir.at(shutil.copytree(run_dir, tmp_path / "run"))
    with pytest.raises(RunNotFinishedError, match=r"no model\.onnx.*mammohybrid export"):
        Predictor.from_run(run.root, backend="onnxruntime")
    result = export_run(run.root, "onnx")
    assert result.path == run.onnx_model and result.bytes == run.onnx_model.stat().st_size
    with Predictor.from_run(run.root, backend="onnxruntime") as predictor:
        assert predictor.threshold == run.load_threshold()
    with open(run.model, "ab") as handle:  # the run trained again: another model.keras
        handle.write(b"\0")
    with pytest.raises(ExportError, match=r"exported from another model\.keras.*export it again"):
        Predictor.from_run(run.root, backend="onnxruntime")
    with pytest.raises(MammohybridError, match=r"is a file.*--backend onnxruntime"):
        Predictor.from_run(run.onnx_model)


def test_the_converter_leaves_the_process_environment_as_it_was(run_dir, tmp_path,
                                                                monkeypatch) -> None:
    """tf2onnx sets TF_CPP_MIN_LOG_LEVEL when imported; the workers started later inherit the
    environment."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    export_run(run_dir, "onnx", tmp_path / "env.onnx")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def test_dihedral_views_are_exported_inside_the_graph(run_dir, tmp_path) -> None:
    from mammohybrid.models import load_model

    result = export_run(run_dir, "onnx", tmp_path / "tta.onnx", tta="dihedral")
    assert result.exported.tta == "dihedral" == result.exported.config.model.tta
    probe = probe_inputs(32)
    expected = KerasScorer(load_model(RunDir.at(run_dir).model), "dihedral").probabilities(probe)
    with Predictor.from_run(result.path, backend="onnxruntime") as predictor:
        np.testing.assert_allclose(predictor.predict_batch(probe), expected,
                                   atol=PARITY_TOLERANCE, rtol=0)


@pytest.mark.slow
def test_saved_model_export_carries_the_run_beside_the_graph(run_dir, tmp_path) -> None:
    import tensorflow as tf

    from mammohybrid.models import load_model

    target = tmp_path / "saved"
    result = export_run(run_dir, "savedmodel", target)
    fields = json.loads((target / SAVED_MODEL_METADATA).read_text())
    exported = ExportedRun.from_fields(fields, str(target))
    assert exported.threshold == RunDir.at(run_dir).load_threshold()
    assert (target / SAVED_MODEL_CARD).read_text() == exported.model_card != ""
    probe = probe_inputs(32)
    expected = KerasScorer(load_model(RunDir.at(run_dir).model)).probabilities(probe)
    loaded = tf.saved_model.load(str(target))  # kept: its functions need its variables
    got = np.asarray(loaded.serve(tf.constant(probe))).reshape(-1)
    np.testing.assert_allclose(got, expected, atol=PARITY_TOLERANCE, rtol=0)
    assert result.exported.parity_max_abs_diff is not None
    assert result.exported.parity_max_abs_diff <= PARITY_TOLERANCE
    export_run(run_dir, "savedmodel", target)  # an earlier export is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
    with pytest.raises(ExportError, match="holds something else than a SavedModel"):
        export_run(run_dir, "savedmodel", tmp_path)


def test_what_cannot_be_exported_is_refused_before_any_work(run_dir, tmp_path,
                                                            monkeypatch) -> None:
    run = RunDir.at(shutil.copytree(run_dir, tmp_path / "run"))
    resized = run.config.read_text().replace("output_size: 32", "output_size: 48")
    run.config.write_text(resized)
    with pytest.raises(ExportError, match=r"32-px images resized from the 48-px.*no ONNX"):
        export_run(run.root, "onnx")
    with pytest.raises(ExportError, match="is a folder"):
        export_run(run_dir, "onnx", tmp_path)
    with pytest.raises(MammohybridError, match=r"output .* is the input"):
        export_run(run_dir, "onnx", RunDir.at(run_dir).model)
    run.done.unlink()
    with pytest.raises(RunNotFinishedError):
        export_run(run.root, "onnx")
    monkeypatch.setattr("importlib.util.find_spec",
                        lambda name, *args: None if name == "tf2onnx" else object())
    with pytest.raises(ExportError, match=r"needs tf2onnx: pip install 'mammohybrid\[onnx\]'"):
        export_run(run_dir, "onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists() and not run.onnx_model.exists()


def test_an_onnx_file_without_the_runs_metadata_is_refused(run_dir, tmp_path) -> None:
    from mammohybrid.models import load_model
    from mammohybrid.models.hybrid import inference_graph

    model = inference_graph(load_model(RunDir.at(run_dir).model))
    model.predict_on_batch(probe_inputs(32))
    model.export(str(tmp_path / "bare.onnx"), format="onnx", verbose=False)
    with pytest.raises(ExportError, match=r"no mammohybrid export metadata.*export the run"):
        Predictor.from_run(tmp_path / "bare.onnx", backend="onnxruntime")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(MammohybridError, match="ONNX Runtime cannot load it"):
        Predictor.from_run(tmp_path / "text.onnx", backend="onnxruntime")
