import json

import cv2
import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import Config, save_config, with_overrides
from mammohybrid.decision import ThresholdChoice, select_threshold
from mammohybrid.evaluation.evaluate import (
    PREDICTION_COLUMNS,
    choose_threshold,
    metrics_report,
    predictions_frame,
    write_evaluation,
)
from mammohybrid.evaluation.metrics import compute_metrics
from mammohybrid.evaluation.report import DatasetSummary
from mammohybrid.run_dir import RunDir


def _manifest(n_patients: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 2, n_patients), 2)
    splits = np.repeat(rng.choice(["train", "val", "test"], n_patients, p=[.5, .25, .25]), 2)
    return pd.DataFrame({
        "image_path": [f"/data/{i}.png" for i in range(2 * n_patients)],
        "patient_id": np.repeat([f"P{i:03d}" for i in range(n_patients)], 2),
        "label": labels, "split": splits,
        "pathology": np.where(labels == 1, "MALIGNANT",
                              np.where(np.arange(2 * n_patients) % 3 == 0,
                                       "BENIGN_WITHOUT_CALLBACK", "BENIGN")),
        "roi_empty": np.arange(2 * n_patients) % 10 == 0,
        "status": ["ok"] * (2 * n_patients),
    })


def _scores(frame: pd.DataFrame, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.35 * frame["label"].to_numpy() + rng.normal(0.35, 0.2, len(frame)), 0, 1)


def test_predictions_frame_columns_and_labels():
    frame = _manifest()
    probabilities = _scores(frame)
    predictions = predictions_frame(frame, probabilities, 0.4)
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert predictions["predicted"].tolist() == (probabilities >= 0.4).astype(int).tolist()
    assert predictions["patient"].tolist() == frame["patient_id"].tolist()
    with pytest.raises(ValueError, match="3 probabilities for 80"):
        predictions_frame(frame, np.zeros(3), 0.5)


def test_metrics_report_has_every_key_and_is_valid_json():
    frame = _manifest()
    predictions = predictions_frame(frame, _scores(frame), 0.5)
    choice = ThresholdChoice(0.5, "fixed", "none", "fixed at 0.5")
    config = Config().evaluate.model_copy(update={"bootstrap_samples": 300})
    report = metrics_report(predictions, choice, config, seed=0, split="test")
    for name in ("accuracy", "sensitivity", "specificity", "precision", "f1", "auc",
                 "paper_eq6_score"):
        low, high = report[f"{name}_ci95"]
        assert low <= report[name] <= high
    point = compute_metrics(frame["label"], _scores(frame), 0.5)
    assert report["auc"] == pytest.approx(point["auc"])
    assert (report["threshold"], report["n"], report["n_patients"]) == (0.5, 80, 40)
    assert report["threshold_method"] == "fixed" and report["ci"]["resamples"] == 300
    assert "not the F1 score" in report["paper_eq6_note"]
    json.dumps(report, allow_nan=False)


def _run_dir(tmp_path, trained_with: Config, stored: ThresholdChoice | None) -> RunDir:
    run = RunDir.at(tmp_path / "run")
    run.root.mkdir()
    save_config(trained_with, run.config)
    if stored is not None:
        run.threshold.write_text(json.dumps(stored.to_dict()))
    return run


class _Recorder:
    """A stand-in for the model: scores from a table, and the splits it was asked about."""

    def __init__(self, scores: pd.Series):
        self.scores = scores
        self.splits: list[str] = []

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        self.splits += sorted(set(rows["split"]))
        return self.scores.loc[rows.index].to_numpy()


def test_stored_validation_threshold_is_applied_unchanged(tmp_path):
    config = with_overrides(Config(), ["evaluate.threshold=youden"])
    stored = ThresholdChoice(0.37, "youden", "val", "chosen when training ended")
    run = _run_dir(tmp_path, config, stored)
    frame = _manifest()
    predict = _Recorder(pd.Series(_scores(frame), index=frame.index))
    assert run.load_threshold() == stored
    assert choose_threshold(run, config, frame, predict) == stored
    assert predict.splits == []  # nothing predicted, the test split least of all


def test_new_rule_is_chosen_on_validation_never_on_test(tmp_path):
    trained = Config()  # fixed 0.5 when training ended
    run = _run_dir(tmp_path, trained, ThresholdChoice(0.5, "fixed", "none", "fixed at 0.5"))
    wanted = with_overrides(trained, ["evaluate.threshold=youden"])
    frame = _manifest(200)
    scores = pd.Series(_scores(frame), index=frame.index)
    # Make the test split's own optimum very different: a test-chosen threshold would differ.
    scores[frame["split"] == "test"] = scores[frame["split"] == "test"] * 0.3
    predict = _Recorder(scores)
    choice = choose_threshold(run, wanted, frame, predict)
    val = frame["split"] == "val"
    expected = select_threshold(frame.loc[val, "label"], scores[val], wanted.evaluate)
    assert choice == expected and choice.split == "val"
    assert predict.splits == ["val"]
    test = frame["split"] == "test"
    on_test = select_threshold(frame.loc[test, "label"], scores[test], wanted.evaluate,
                               split="val")  # what a leaky evaluation would have chosen
    assert on_test.value != pytest.approx(choice.value)


def test_write_evaluation_writes_every_artefact(tmp_path):
    frame = _manifest()
    config = Config()
    test = frame[frame["split"] == "test"]
    predictions = predictions_frame(test, _scores(test), 0.5)
    choice = ThresholdChoice(0.5, "fixed", "none", "fixed at 0.5")
    metrics = metrics_report(predictions, choice, config.evaluate.model_copy(
        update={"bootstrap_samples": 200}), 0, "test")
    curves = tmp_path / "curves.png"  # stands for the run's training_curves.png
    cv2.imwrite(str(curves), np.full((40, 60, 3), 200, np.uint8))
    files = write_evaluation(tmp_path / "out", predictions, metrics, config,
                             dataset=DatasetSummary.from_manifest(frame, config, "m.csv"),
                             training_curves=curves, title="T", subtitle="S")
    expected = {"predictions", "metrics", "config", "confusion_matrix", "roc_curve",
                "training_curves", "report_html", "report_md"}
    assert set(files) == expected and all(p.is_file() for p in files.values())
    assert pd.read_csv(files["predictions"]).shape == (len(test), len(PREDICTION_COLUMNS))
    assert json.loads(files["metrics"].read_text())["n"] == len(test)
    html = files["report_html"].read_text()
    assert html.count("data:image/png;base64,") == 3 and 'src="confusion' not in html
    assert "not the F1 score" in html and "Test split, touched only here" in html
    md = files["report_md"].read_text()
    assert "](confusion_matrix.png)" in md and "| ROC AUC |" in md
    assert "BENIGN_WITHOUT_CALLBACK" in md and "mapped to benign (label 0)" in md
    empty = int(frame["roi_empty"].sum())
    assert f"{empty} of {len(frame)} ROIs" in md


@pytest.mark.parametrize("override", ["model.input_size=64", "preprocess.strategy=wiener",
                                      "data.benign_without_callback=malignant"])
def test_evaluation_cannot_change_what_the_run_was_trained_with(tmp_path, override):
    from mammohybrid.errors import ConfigError
    from mammohybrid.evaluation.evaluate import evaluate_run

    run = _run_dir(tmp_path, Config(), None)
    run.model.write_bytes(b"")  # a finished run as far as the layout goes
    run.done.write_text("done\n")
    with pytest.raises(ConfigError, match=f"--set {override}: the {override.split('.')[0]} "):
        evaluate_run(run.root, overrides=[override])
