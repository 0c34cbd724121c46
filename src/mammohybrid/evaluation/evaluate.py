"""``mammohybrid evaluate``: a trained run directory -> predictions, metrics with patient-level
bootstrap intervals, figures and a report, for one split (test by default).

Honest by construction: the model is the run's best epoch by *validation* AUC and the decision
threshold is the one chosen on *validation* when training ended (``threshold.json``); nothing
here looks at the evaluated split's labels before predicting it. When the evaluation settings
ask for another threshold rule than the run used, it is chosen again, on the validation split.

The pieces are reusable: :func:`metrics_report` (predictions -> ``metrics.json`` content),
:func:`write_evaluation` (predictions + metrics -> every artefact), :func:`evaluate_run` (all of
it from a run directory).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammohybrid.config import Config, EvaluateConfig, save_config, with_overrides
from mammohybrid.data import SPLITS, read_manifest, usable_rows
from mammohybrid.decision import ThresholdChoice, predict_labels, select_threshold
from mammohybrid.errors import ConfigError, ManifestError
from mammohybrid.evaluation.bootstrap import bootstrap_intervals
from mammohybrid.evaluation.metrics import (
    PAPER_EQ6_NOTE,
    Confusion,
    compute_metrics,
)
from mammohybrid.evaluation.plots import RocInput, plot_confusion_matrix, plot_roc
from mammohybrid.evaluation.report import DatasetSummary, Report, ReportSection, write_report
from mammohybrid.evaluation.run_evaluations import write_run_model_card
from mammohybrid.fileio import atomic_open, atomic_write_json
from mammohybrid.preprocess import ensure_preprocessed
from mammohybrid.run_dir import RunDir

PREDICTION_COLUMNS = ["image", "patient", "label", "probability", "predicted", "split"]

SPLIT_NOTES = {
    "test": "Test split, touched only here: the model (best epoch by validation AUC) and the "
            "decision threshold were chosen on the validation split.",
    "val": "Validation split: the model's best epoch (and the threshold, unless fixed) were "
           "chosen on it, so these figures are optimistic. Report test figures.",
    "train": "Training split: the model was fitted on it; these figures say nothing about "
             "generalisation.",
}


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate_run` wrote, and the metrics (``metrics.json`` content)."""

    out_dir: Path
    metrics: dict[str, Any]
    files: dict[str, Path]


# --------------------------------------------------------------------------- pure parts
def predictions_frame(frame: pd.DataFrame, probabilities: np.ndarray,
                      threshold: float) -> pd.DataFrame:
    """The ``predictions.csv`` table for manifest rows ``frame`` and their probabilities."""
    probabilities = np.asarray(probabilities, dtype=float).reshape(-1)
    if len(probabilities) != len(frame):
        raise ValueError(f"{len(probabilities)} probabilities for {len(frame)} manifest rows")
    return pd.DataFrame({
        "image": frame["image_path"].to_numpy(),
        "patient": frame["patient_id"].astype(str).to_numpy(),
        "label": frame["label"].astype(int).to_numpy(),
        "probability": probabilities,
        "predicted": predict_labels(probabilities, threshold),
        "split": (frame["split"].to_numpy() if "split" in frame.columns else ""),
    })


def metrics_report(predictions: pd.DataFrame, threshold: ThresholdChoice,
                   evaluate: EvaluateConfig, seed: int, split: str) -> dict[str, Any]:
    """The content of ``metrics.json``: every metric at the threshold, its bootstrap interval
    (patients resampled), the threshold and how it was chosen, and the counts."""
    labels = predictions["label"].to_numpy()
    probabilities = predictions["probability"].to_numpy()
    patients = predictions["patient"].to_numpy()
    point = compute_metrics(labels, probabilities, threshold.value)
    intervals = bootstrap_intervals(labels, probabilities, patients, threshold.value,
                                    evaluate.bootstrap_samples, evaluate.ci_level, seed)
    return {
        "split": split,
        **point.to_dict(),
        "n_patients": int(pd.unique(patients).size),
        "threshold_method": threshold.method,
        "threshold_split": threshold.split,
        "threshold_detail": threshold.detail,
        **intervals.to_dict(),
        "paper_eq6_note": PAPER_EQ6_NOTE,
    }


def write_evaluation(out_dir: str | os.PathLike[str], predictions: pd.DataFrame,
                     metrics: dict[str, Any], config: Config, *,
                     dataset: DatasetSummary | None = None,
                     training_curves: Path | None = None,
                     run_info: dict[str, Any] | None = None,
                     title: str = "mammohybrid evaluation",
                     subtitle: str = "",
                     sections: Sequence[ReportSection] = ()) -> dict[str, Path]:
    """Write every artefact of an evaluation into ``out_dir`` and return their paths:
    ``predictions.csv``, ``metrics.json``, ``confusion_matrix.png``, ``roc_curve.png``,
    ``training_curves.png`` (copied, when given), ``config.yaml``, ``report.html``,
    ``report.md``. Used by ``evaluate``, the grid's best run and the demo."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = metrics.get("split", "")
    files = {"predictions": out / "predictions.csv", "metrics": out / "metrics.json",
             "config": out / "config.yaml"}
    with atomic_open(files["predictions"], "w", newline="", encoding="utf-8") as handle:
        predictions.to_csv(handle, index=False)
    atomic_write_json(files["metrics"], metrics)
    save_config(config, files["config"])
    matrix = metrics["confusion_matrix"]
    files["confusion_matrix"] = plot_confusion_matrix(
        Confusion(**matrix), out / "confusion_matrix.png",
        title=f"Confusion matrix ({split}, threshold {metrics['threshold']:.3g})")
    files["roc_curve"] = plot_roc(
        [RocInput(split or "predictions", predictions["label"].to_numpy(),
                  predictions["probability"].to_numpy(), metrics["threshold"])],
        out / "roc_curve.png", title=f"ROC curve ({split})")
    figures = [("Confusion matrix (rows: true class; percentages of the true class)",
                files["confusion_matrix"]),
               ("ROC curve with AUC; the dot is the operating point at the threshold",
                files["roc_curve"])]
    if training_curves is not None and Path(training_curves).is_file():
        files["training_curves"] = out / "training_curves.png"
        if Path(training_curves).resolve() != files["training_curves"].resolve():
            shutil.copyfile(training_curves, files["training_curves"])
        figures.append(("Training curves (training and validation, per epoch)",
                        files["training_curves"]))
    report = Report(title=title, subtitle=subtitle, metrics=metrics, config=config,
                    dataset=dataset, figures=figures,
                    notes=[SPLIT_NOTES[split]] if split in SPLIT_NOTES else [],
                    run_info=run_info, sections=sections)
    files["report_html"], files["report_md"] = write_report(report, out)
    return files


# --------------------------------------------------------------------------- run directories
# What a run was trained and validated with: evaluating it must not change them.
FIXED_SECTIONS = ("model", "preprocess", "data")


def _check_evaluation_overrides(overrides: list[str]) -> list[str]:
    for override in overrides:
        section = override.partition("=")[0].strip().partition(".")[0]
        if section in FIXED_SECTIONS:
            raise ConfigError(
                f"--set {override}: the {section} section is the run's own (what it was trained "
                "and validated with) and cannot change at evaluation; evaluate.* settings can "
                "(use --manifest for another manifest)")
    return overrides


def _threshold_settings(evaluate: EvaluateConfig) -> tuple[Any, ...]:
    return evaluate.threshold, evaluate.fixed_threshold, evaluate.target_sensitivity


def run_manifest(config: Config, manifest: str | os.PathLike[str] | None = None) -> Path:
    """The manifest a run was trained on (``data.manifest``), or ``manifest`` when given."""
    path = manifest if manifest is not None else config.data.manifest
    if path is None:
        raise ManifestError("no manifest: the run's config has no data.manifest; pass --manifest")
    return Path(path)


class RunPredictor:
    """A finished run's model, loaded once, predicting manifest rows (lazy TensorFlow)."""

    def __init__(self, run: RunDir, config: Config):
        from mammohybrid.training import load_finished_run

        finished = load_finished_run(run, config)
        self.config = config
        self.model = finished.model
        self.scorer = finished.scoring_model()

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        from mammohybrid.training import predict_manifest

        if len(frame) == 0:
            return np.empty(0)
        return np.asarray(predict_manifest(self.scorer, frame, self.config), float).reshape(-1)


class CachedFeaturePredictor:
    """A finished logistic-head run (``train.head: logistic``) predicting manifest rows from the
    cached pooled features of its images and the Dense layer of its ``model.keras``, read
    without loading the model: the probabilities :class:`RunPredictor` gives, to round-off
    (the cross-validation checks it on a sample), in milliseconds instead of a model load and a
    forward pass per image and view."""

    def __init__(self, run: RunDir, config: Config):
        run.require_finished()
        if config.train.head != "logistic":
            raise ConfigError(f"{run.root}: cached features predict a logistic head only "
                              f"(train.head is {config.train.head})")
        from mammohybrid.training import PooledFeatureCache

        self.run = run
        self.cache = PooledFeatureCache(config)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        from mammohybrid.training import read_head

        if len(frame) == 0:
            return np.empty(0)
        features = self.cache.features(frame)
        return read_head(self.run.model, features.shape[1]).probabilities(features)


def release_models() -> None:
    """Free the Keras graphs and models of a finished training or evaluation, so that a grid or
    a cross-validation running dozens of them in one process does not accumulate memory."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def choose_threshold(run: RunDir, config: Config, frame: pd.DataFrame,
                     predict: Callable[[pd.DataFrame], np.ndarray]) -> ThresholdChoice:
    """The run's validation threshold, or a new one chosen on validation when the evaluation
    settings ask for another rule than the run used. ``predict`` is only ever given the
    validation rows of ``frame``."""
    stored = run.load_threshold()
    trained_with = run.load_config().evaluate
    if stored is not None and _threshold_settings(trained_with) == _threshold_settings(
            config.evaluate):
        return stored
    if config.evaluate.threshold == "fixed":
        return select_threshold(np.empty(0), np.empty(0), config.evaluate)
    if config.train.head == "logistic":
        raise ConfigError(f"{run.root}: a logistic head is fitted on the validation rows too "
                          "(its threshold comes from inner out-of-fold probabilities), so "
                          "another threshold rule cannot be chosen on them here; train the run "
                          "again with --set evaluate.threshold=...")
    val = frame[frame["split"] == "val"]
    return select_threshold(val["label"].to_numpy(), predict(val), config.evaluate, split="val")


def evaluate_run(run_dir: str | os.PathLike[str], split: str = "test",
                 out_dir: str | os.PathLike[str] | None = None,
                 manifest: str | os.PathLike[str] | None = None,
                 overrides: list[str] | None = None,
                 sections: Sequence[ReportSection] = ()) -> EvaluationResult:
    """Evaluate a finished run on ``split`` of its manifest and write every artefact into
    ``out_dir`` (default ``RUN_DIR/evaluation-<split>``). ``overrides`` (``key=value``) may change
    the ``evaluate`` section (threshold rule, bootstrap samples, interval level), not the
    ``model``, ``preprocess`` or ``data`` sections (:class:`ConfigError`); ``sections``
    are added to the report (the demo's Grad-CAM and filter-ensemble results). The run's
    ``model_card.md`` is written again with every evaluation found beside the run."""
    if split not in SPLITS:
        raise ManifestError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    run = RunDir.at(run_dir)
    config = run.load_config()
    run.require_finished()  # before any other complaint: an unfinished run has no model
    if overrides:
        config = with_overrides(config, _check_evaluation_overrides(overrides))
    # A raw manifest gets the run's pre-processing (cached); one pre-processed otherwise is
    # refused.
    manifest_path = ensure_preprocessed(run_manifest(config, manifest), config)
    everything = read_manifest(manifest_path)
    frame = usable_rows(everything)  # images that failed pre-processing cannot be predicted
    rows = frame[frame["split"] == split]
    if rows.empty:
        raise ManifestError(f"{manifest_path}: no usable rows in split '{split}'")
    predict = RunPredictor(run, config)
    threshold = choose_threshold(run, config, frame, predict)
    predictions = predictions_frame(rows, predict(rows), threshold.value)
    metrics = metrics_report(predictions, threshold, config.evaluate, config.seed, split)
    out = Path(out_dir) if out_dir is not None else run.root / f"evaluation-{split}"
    run_info = (json.loads(run.info.read_text(encoding="utf-8")) if run.info.is_file() else {})
    files = write_evaluation(
        out, predictions, metrics, config,
        dataset=DatasetSummary.from_manifest(everything, config, manifest_path),
        training_curves=run.curves, run_info={"run_dir": str(run.root.resolve()), **run_info},
        title=f"Evaluation of {run.root.resolve().name} on the {split} split",
        subtitle=f"Run directory {run.root.resolve()} · manifest {manifest_path}",
        sections=sections)
    write_run_model_card(run)  # the card now has this evaluation's figures
    return EvaluationResult(out, metrics, files)
