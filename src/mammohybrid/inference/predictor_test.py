"""Predictor on a real (tiny) run directory made by ``train``: results equal the pipeline run
by hand, bad inputs become error rows, workers/batches/ensemble/Grad-CAM behave."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import LimitsConfig, PreprocessConfig
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.errors import RunNotFinishedError
from mammohybrid.imaging import read_image, write_dicom, write_png
from mammohybrid.inference.backends import KerasScorer
from mammohybrid.inference.ensemble import strategy_config
from mammohybrid.inference.predictor import COLUMNS, Predictor, expand_inputs
from mammohybrid.preprocess import preprocess_image, to_model_input


@pytest.fixture(scope="module")
def predictor(run_dir: Path) -> Iterator[Predictor]:
    with Predictor.from_run(run_dir) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """8-bit PNG, 16-bit PNG, 16-bit DICOM (12 bits stored), all ROI-crop-like."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(5)
    crop16 = render_roi_crop(rng, 70, malignant=True)
    return {
        "png8": write_png(folder / "a_png8.png",
                          (render_roi_crop(rng, 50, malignant=False) // 257).astype(np.uint8)),
        "png16": write_png(folder / "b_png16.png", render_roi_crop(rng, 90, malignant=True)),
        "dicom16": write_dicom(folder / "c_dicom16.dcm", crop16, bits_stored=12),
    }


def _by_hand(predictor: Predictor, path: Path, config: PreprocessConfig) -> tuple[float, float]:
    """Probability and kept fraction with every step written out."""
    processed = preprocess_image(read_image(path), config)
    return (float(predictor.predict_batch(to_model_input([processed.image]))[0]),
            processed.kept_fraction)


def test_from_run_loads_config_threshold_and_model(run_dir: Path, predictor: Predictor) -> None:
    stored = json.loads((run_dir / "threshold.json").read_text())
    assert stored["method"] == "youden"
    assert predictor.threshold.value == stored["value"]
    assert predictor.config.preprocess.strategy == "gaussian"  # what the images went through
    assert predictor.strategies == ["gaussian"]
    assert isinstance(predictor.scorer, KerasScorer)
    assert predictor.scorer.model.input_shape == (None, 32, 32, 3)


def test_folders_that_are_no_finished_run_are_refused(run_dir: Path, tmp_path) -> None:
    with pytest.raises(RunNotFinishedError, match=r"no config\.yaml"):
        Predictor.from_run(tmp_path)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished, ignore=shutil.ignore_patterns("DONE"))
    with pytest.raises(RunNotFinishedError, match="has not finished"):
        Predictor.from_run(unfinished)


def test_images_are_resized_to_the_model_as_in_training(predictor: Predictor, tmp_path) -> None:
    """A run whose pre-processing output (48 px) is larger than the model input (32 px), as
    with the scratch-cnn preset: the predictor resizes exactly like the training pipeline."""
    from mammohybrid.training.input_pipeline import grey_to_model_rgb, read_resized_grey

    config = predictor.config.model_copy(deep=True)
    config.preprocess.output_size = 48
    resized = Predictor(predictor.scorer, config, predictor.threshold)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(3)]
    paths = [write_png(tmp_path / f"{k}.png", image) for k, image in enumerate(images)]
    expected = np.stack([grey_to_model_rgb(read_resized_grey(str(p), 32)).numpy() for p in paths])
    np.testing.assert_array_equal(resized.model_inputs(images), expected)
    assert resized.predict_arrays(images)["error"].eq("").all()  # the whole path runs at 48 px


def test_predict_paths_equals_the_pipeline_by_hand(predictor: Predictor, images, tmp_path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    (tmp_path / "empty").mkdir()
    inputs = [images["png8"], bad, images["png16"], tmp_path / "missing.dcm", images["dicom16"],
              tmp_path / "empty"]
    frame = predictor.predict_paths(inputs)
    assert list(frame.columns) == COLUMNS
    assert frame["path"].tolist() == [str(p) for p in inputs]  # input order
    assert read_image(images["dicom16"]).dtype == np.uint16
    threshold = predictor.threshold.value
    for index in (0, 2, 4):
        row = frame.iloc[index]
        probability, kept = _by_hand(predictor, Path(row["path"]), predictor.config.preprocess)
        assert row["probability"] == pytest.approx(probability, abs=1e-6)
        assert row["kept_fraction"] == pytest.approx(kept)
        assert row["label"] == int(row["probability"] >= threshold)
        assert row["prediction"] == ("malignant" if row["label"] == 1 else "benign")
        assert row["threshold"] == threshold and row["error"] == ""
    errors = frame.iloc[[1, 3, 5]]
    assert errors["probability"].isna().all() and errors["label"].isna().all()
    assert (errors["prediction"] == "").all()
    assert str(bad) in errors["error"].iloc[0]
    assert "no such file" in errors["error"].iloc[1]
    assert "no image files" in errors["error"].iloc[2]
    assert frame["label"].dtype == "Int64" and frame["roi_empty"].dtype == "boolean"


@pytest.mark.slow
def test_workers_and_batch_size_do_not_change_the_results(predictor: Predictor, images) -> None:
    inputs = list(images.values()) * 3
    expected = predictor.predict_paths(inputs, batch_size=8, workers=0)
    got = predictor.predict_paths(inputs, batch_size=2, workers=2)
    # Duplicates are dropped: one row per distinct file.
    assert got["path"].tolist() == expected["path"].tolist() == [str(p) for p in images.values()]
    np.testing.assert_allclose(got["probability"], expected["probability"], atol=1e-6)
    pd.testing.assert_series_equal(got["kept_fraction"], expected["kept_fraction"])


def test_filter_ensemble_averages_and_reports_each_strategy(predictor: Predictor, images) -> None:
    ensemble = Predictor(predictor.scorer, predictor.config, predictor.threshold,
                         ["median", "wiener"])
    frame = ensemble.predict_paths(list(images.values()))
    assert list(frame.columns) == [*COLUMNS, "probability_median", "probability_wiener"]
    for _, row in frame.iterrows():
        for strategy in ("median", "wiener"):
            config = strategy_config(predictor.config.preprocess, strategy)
            probability, kept = _by_hand(predictor, Path(row["path"]), config)
            assert row[f"probability_{strategy}"] == pytest.approx(probability, abs=1e-6)
        assert row["probability"] == pytest.approx(
            (row["probability_median"] + row["probability_wiener"]) / 2)
        assert row["kept_fraction"] == pytest.approx(kept)  # the ROI step is shared
    # One other strategy alone is reported under its name too (the threshold was not made
    # for it).
    single = Predictor(predictor.scorer, predictor.config, predictor.threshold, ["median"])
    assert "probability_median" in single.predict_paths([images["png8"]]).columns


def test_gradcam_writes_overlays_of_every_branch(predictor: Predictor, images, tmp_path) -> None:
    plain = predictor.predict_paths([images["png16"], images["dicom16"]])
    frame = predictor.predict_paths([images["png16"], images["dicom16"]],
                                    gradcam_dir=tmp_path / "cam")
    np.testing.assert_allclose(frame["probability"], plain["probability"], atol=1e-6)
    assert frame.columns[-1] == "gradcam"
    assert (tmp_path / "cam" / "config.yaml").is_file()
    for _, row in frame.iterrows():
        combined = Path(row["gradcam"])
        assert combined.is_file() and combined.name.endswith("_combined.png")
        branch = combined.with_name(combined.name.replace("_combined", "_tinycnn"))
        source = read_image(row["path"])
        for overlay_path in (combined, branch):
            overlay = read_image(overlay_path)  # greyscale view of the colour overlay
            assert overlay.shape == source.shape  # drawn on the input crop at its own size
    assert len(list((tmp_path / "cam").glob("*.png"))) == 4


def test_the_predictor_is_built_with_its_final_limits(run_dir: Path, images) -> None:
    small = LimitsConfig(max_image_pixels=100)
    with Predictor.from_run(run_dir, overrides=["limits.max_image_pixels=100"]) as overridden, \
            Predictor.from_run(run_dir, limits=small) as given:
        for predictor in (overridden, given):
            assert predictor.config.limits == small
            frame = predictor.predict_paths([images["png8"]])
            assert "limits.max_image_pixels" in frame["error"].iloc[0]


def test_predict_arrays_equals_predict_paths(predictor: Predictor, images) -> None:
    paths = list(images.values())
    by_path = predictor.predict_paths(paths)
    by_array = predictor.predict_arrays([read_image(p) for p in paths],
                                        names=[str(p) for p in paths], batch_size=2)
    pd.testing.assert_frame_equal(by_array, by_path)
    with pytest.raises(ValueError, match="names"):
        predictor.predict_arrays([read_image(paths[0])], names=["a", "b"])


def test_expand_inputs(tmp_path) -> None:
    crop = render_roi_crop(np.random.default_rng(0), 40, malignant=False)
    write_png(tmp_path / "in" / "b.png", crop)
    write_png(tmp_path / "in" / "sub" / "a.PNG", crop)
    write_dicom(tmp_path / "in" / "sub" / "no_suffix", crop)  # DICOM found by its magic
    (tmp_path / "in" / "list.csv").write_text("x\n")  # not an image: skipped in a folder
    write_png(tmp_path / "in" / ".hidden" / "c.png", crop)
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    explicit = tmp_path / "in" / "list.csv"  # named explicitly: kept, reading decides
    entries = expand_inputs([tmp_path / "in", explicit, tmp_path / "in" / "b.png",
                             tmp_path / "empty", tmp_path / "nope"])
    assert entries == [
        (str(tmp_path / "in" / "b.png"), ""),
        (str(tmp_path / "in" / "sub" / "a.PNG"), ""),
        (str(tmp_path / "in" / "sub" / "no_suffix"), ""),
        (str(explicit), ""),
        (str(tmp_path / "empty"), f"{tmp_path / 'empty'}: no image files (DICOM, PNG, JPEG, "
                                  "PGM, TIFF) in this folder"),
        (str(tmp_path / "nope"), f"{tmp_path / 'nope'}: no such file or folder"),
    ]


def test_a_model_with_python_code_is_refused(run_dir: Path, tmp_path) -> None:
    # A Lambda layer stores Python bytecode in the .keras file: safe mode must not load it.
    import keras

    unsafe = tmp_path / "unsafe"
    shutil.copytree(run_dir, unsafe)
    image = keras.Input((32, 32, 3))
    output = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(1, 2)))(image))
    keras.Model(image, output).save(unsafe / "model.keras")
    with pytest.raises(ValueError, match=r"[Ll]ambda"):
        Predictor.from_run(unsafe)
