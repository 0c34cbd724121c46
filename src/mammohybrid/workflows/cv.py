"""``mammohybrid cv``: stratified, patient-grouped K-fold cross-validation, repeated R times, for
datasets too small for a fixed split (mini-MIAS has about 120 lesions).

For repeat r and fold k:

- the patients are dealt into K folds, stratified by patient class
  (:func:`mammohybrid.data.splits.assign_folds`, seeded by ``data.split_seed + r``);
- fold k is the held-out fold (``split = test`` in the fold's manifest);
- the validation split used for early model selection (best epoch by validation AUC) and for the
  threshold is carved, by patient and stratified, out of the *training folds only*
  (``data.val_fraction``), so nothing about the held-out fold is used before it is predicted.

Output: ``OUT/r<r>/f<k>/`` (``manifest.csv`` of the fold, ``run/`` its run directory,
``predictions.csv``, ``metrics.json``), ``OUT/oof_predictions.csv`` (every out-of-fold
prediction), ``OUT/cv_folds.csv``, ``OUT/cv_roc.png`` (pooled out-of-fold ROC per repeat),
``OUT/cv_summary.json`` and ``OUT/config.yaml``. Finished folds are skipped when the command is
run again; an interrupted fold resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammohybrid.config import Config, save_config
from mammohybrid.data import (
    assign_folds,
    patient_strata,
    read_manifest,
    sample_patients,
    usable_rows,
    write_manifest,
)
from mammohybrid.errors import ConfigError, MammohybridError
from mammohybrid.evaluation import (
    METRIC_NAMES,
    CachedFeaturePredictor,
    RocInput,
    RunPredictor,
    bootstrap_intervals,
    choose_threshold,
    interval_key,
    mean_and_std,
    metrics_report,
    plot_roc,
    predictions_frame,
    release_models,
    run_manifest,
    weighted_auc,
)
from mammohybrid.fileio import atomic_open, atomic_write_json
from mammohybrid.preprocess import SETTINGS_FILE, ensure_preprocessed
from mammohybrid.progress import console
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.executors import Executor, SerialExecutor, check_callbacks
from mammohybrid.workflows.tracking import open_tracker
from mammohybrid.workflows.training_runs import ensure_trained


@dataclass(frozen=True)
class CVResult:
    out_dir: Path
    summary: dict[str, Any]
    files: dict[str, Path]


def fold_manifests(frame: pd.DataFrame, folds: int, repeat: int, config: Config) -> list[
        pd.DataFrame]:
    """The K fold manifests of one repeat: ``split`` = test (held-out fold), val (carved from
    the training folds' patients) or train; column ``cv_fold`` records the fold of each row."""
    development = frame.assign(split="train")
    rng = np.random.default_rng(config.data.split_seed + repeat)
    fold_of_row = assign_folds(development, folds, rng).to_numpy()
    manifests = []
    for fold in range(folds):
        held_out = fold_of_row == fold
        training = development[~held_out]
        val_patients = sample_patients(patient_strata(training), config.data.val_fraction, rng)
        split = np.where(held_out, "test",
                         np.where(development["patient_id"].isin(val_patients), "val", "train"))
        manifests.append(development.assign(split=split, cv_fold=fold_of_row))
    return manifests


def run_cv(config: Config, out_dir: str | os.PathLike[str], folds: int = 5, repeats: int = 1,
           manifest: str | os.PathLike[str] | None = None, include_test: bool = False,
           tracking_uri: str | None = None, callbacks: Sequence[Any] = (),
           executor: Executor | None = None) -> CVResult:
    """Run (or resume) K x R fold trainings and summarise them (see module doc).

    ``manifest`` defaults to ``data.manifest``; a raw manifest is pre-processed first with the
    config's settings (:func:`~mammohybrid.preprocess.cache.ensure_preprocessed`). The rows
    of its ``test`` split are left out (kept for a final, untouched evaluation) unless
    ``include_test``; ``summary["rows"]`` says which rows were used. The folds run on
    ``executor`` (default: one after the other in this process); ``callbacks`` (Keras
    callbacks, serial executor only) are passed to every training.
    """
    executor = executor or SerialExecutor()
    check_callbacks(executor, callbacks)
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    manifest_path, frame, rows = cv_rows(config, manifest, include_test)
    n_patients = frame["patient_id"].nunique()
    if n_patients < folds:
        raise ConfigError(f"{manifest_path}: {n_patients} patients cannot fill {folds} folds")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    if config.train.head == "logistic":
        from mammohybrid.training import PooledFeatureCache

        # Every image's pooled features in one pass, before the folds: each fold then only
        # fits its head on them (executors' processes read them from the disk cache).
        PooledFeatureCache(config).features(frame)

    with open_tracker(tracking_uri, run_name=f"cv {folds}x{repeats}") as parent:
        tasks = [FoldTask((out / f"r{repeat}" / f"f{fold}").resolve(), repeat, fold, repeats,
                          folds, fold_frame, config, tracking_uri,
                          parent.run_id if parent else None, callbacks)
                 for repeat in range(repeats)
                 for fold, fold_frame in enumerate(fold_manifests(frame, folds, repeat, config))]
        outcomes = executor.map(run_fold, tasks)
        fold_rows = [{"repeat": task.repeat, "fold": task.fold, **metrics}
                     for task, (_, metrics) in zip(tasks, outcomes, strict=True)]
        oof = [predictions.assign(repeat=task.repeat, fold=task.fold)
               for task, (predictions, _) in zip(tasks, outcomes, strict=True)]
        summary, files = _summarise(out, fold_rows, pd.concat(oof, ignore_index=True), folds,
                                    repeats, config, manifest_path, rows)
        if config.train.head == "logistic":
            summary["cached_feature_check"] = check_cached_features(tasks[0], outcomes[0][0])
            atomic_write_json(files["summary"], summary)
        if parent:
            parent.log_metrics({k: v for k, v in summary.items() if k.endswith(("_mean", "_std"))})
            for path in files.values():
                parent.log_artifact(path)
    return CVResult(out, summary, files)


def cv_rows(config: Config, manifest: str | os.PathLike[str] | None = None,
            include_test: bool = False) -> tuple[Path, pd.DataFrame, str]:
    """The pre-processed manifest a cross-validation of ``config`` uses, its usable rows (the
    test split left out unless ``include_test``) and a sentence saying which rows these are.
    A raw manifest is pre-processed once (cached beside it), shared by every fold and repeat."""
    manifest_path = ensure_preprocessed(run_manifest(config, manifest), config)
    frame = usable_rows(read_manifest(manifest_path, require_split=False))
    in_test = (frame["split"] == "test") if "split" in frame.columns else frame.index < 0
    if include_test:
        return manifest_path, frame, f"all rows ({int(in_test.sum())} of the test split included)"
    return (manifest_path, frame[~in_test].reset_index(drop=True),
            f"all rows but the test split ({int(in_test.sum())} left out)")


@dataclass(frozen=True)
class FoldTask:
    """One fold's training and evaluation, as sent to an executor (picklable)."""

    folder: Path
    repeat: int
    fold: int
    repeats: int
    folds: int
    frame: pd.DataFrame  # the fold's manifest rows (split = train / val / test)
    config: Config
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    callbacks: Sequence[Any] = ()


def run_fold(task: FoldTask) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train (or resume) one fold and return its out-of-fold predictions and metrics."""
    console.print(f"[bold]cv repeat {task.repeat + 1}/{task.repeats}, fold "
                  f"{task.fold + 1}/{task.folds}[/bold]")
    folder = task.folder
    manifest_path = folder / "manifest.csv"
    if not manifest_path.is_file():  # kept once written: a resumed fold sees the same split
        # The pre-processing settings beside it: the fold's images are the pre-processed ones.
        save_config(task.config, folder / SETTINGS_FILE)
        write_manifest(task.frame, manifest_path)
    fold_config = task.config.model_copy(deep=True)
    fold_config.data.manifest = manifest_path
    run = RunDir.at(folder / "run")
    try:
        with open_tracker(task.tracking_uri, run_name=f"r{task.repeat}/f{task.fold}",
                          parent_run_id=task.parent_run_id) as tracker:
            ensure_trained(tracker, fold_config, run, task.callbacks)
            predictions, metrics = _fold_evaluation(folder, run, fold_config)
            if tracker:
                tracker.log_metrics(metrics, prefix="eval_test_")
    finally:
        if task.config.train.head == "keras":  # a logistic head builds no model per fold
            release_models()
    return predictions, metrics


def _fold_evaluation(folder: Path, run: RunDir,
                     config: Config) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions and metrics of a fold's held-out rows, cached in the fold's folder (redone
    when the fold's model is newer than the cache)."""
    metrics_path, predictions_path = folder / "metrics.json", folder / "predictions.csv"
    if metrics_path.is_file() and metrics_path.stat().st_mtime >= run.model.stat().st_mtime:
        return (pd.read_csv(predictions_path, dtype={"patient": str}),
                json.loads(metrics_path.read_text(encoding="utf-8")))
    frame = usable_rows(read_manifest(run_manifest(config)))
    predict = (CachedFeaturePredictor if config.train.head == "logistic"
               else RunPredictor)(run, config)
    threshold = choose_threshold(run, config, frame, predict)
    held_out = frame[frame["split"] == "test"]
    predictions = predictions_frame(held_out, predict(held_out), threshold.value)
    metrics = metrics_report(predictions, threshold, config.evaluate, config.seed, "test")
    with atomic_open(predictions_path, "w", newline="", encoding="utf-8") as handle:
        predictions.to_csv(handle, index=False)
    atomic_write_json(metrics_path, metrics)
    return predictions, metrics


def source_predictions(cv_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """A finished cross-validation's out-of-fold predictions with ``image`` naming the source
    image (not its pre-processed copy), so that cross-validations of other pre-processings of
    the same manifest can be paired row by row."""
    folder = Path(cv_dir)
    summary_path = folder / "cv_summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"{folder}: not a finished cross-validation (no cv_summary.json)")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    oof = pd.read_csv(folder / "oof_predictions.csv", dtype={"patient": str})
    frame = read_manifest(summary["manifest"], require_split=False)
    source = frame["source_path"] if "source_path" in frame.columns else frame["image_path"]
    sources = dict(zip(frame["image_path"].astype(str), source.astype(str), strict=True))
    return oof.assign(image=oof["image"].astype(str).map(sources))


# How far the saved model.keras may be from the cached-feature path: float32 round-off.
CACHED_FEATURES_TOLERANCE = 1e-5
CHECKED_IMAGES = 4


def check_cached_features(task: FoldTask, predictions: pd.DataFrame) -> dict[str, Any]:
    """A logistic-head fold's held-out probabilities come from cached features and the saved
    Dense layer (:class:`~mammohybrid.evaluation.evaluate.CachedFeaturePredictor`). Predict a
    sample of them again through the saved ``model.keras`` itself, as ``evaluate`` and
    ``predict`` would, and refuse a difference above :data:`CACHED_FEATURES_TOLERANCE`."""
    sample = predictions.head(CHECKED_IMAGES)
    frame = pd.DataFrame({"image_path": sample["image"]})
    through_model = RunPredictor(RunDir.at(task.folder / "run"), task.config)(frame)
    difference = float(np.max(np.abs(through_model - sample["probability"].to_numpy())))
    if not difference <= CACHED_FEATURES_TOLERANCE:
        raise MammohybridError(
            f"{task.folder / 'run' / 'model.keras'}: the saved model's probabilities differ from "
            f"the cached-feature path's by {difference:.2g} (> {CACHED_FEATURES_TOLERANCE:g}); "
            f"delete the folder's .pooled-features cache and run again")
    release_models()
    return {"fold": f"r{task.repeat}/f{task.fold}", "images": len(sample),
            "max_abs_difference": difference, "tolerance": CACHED_FEATURES_TOLERANCE}


def _summarise(out: Path, fold_rows: list[dict[str, Any]], oof: pd.DataFrame, folds: int,
               repeats: int, config: Config, manifest_path: Path,
               rows: str) -> tuple[dict[str, Any], dict[str, Path]]:
    files = {"oof_predictions": out / "oof_predictions.csv", "folds": out / "cv_folds.csv",
             "roc": out / "cv_roc.png", "summary": out / "cv_summary.json"}
    with atomic_open(files["oof_predictions"], "w", newline="", encoding="utf-8") as handle:
        oof.to_csv(handle, index=False)
    per_fold = [{key: row.get(key) for key in
                 ("repeat", "fold", *METRIC_NAMES, "threshold", "threshold_method", "n",
                  "n_malignant", "n_benign", "n_patients")} for row in fold_rows]
    with atomic_open(files["folds"], "w", newline="", encoding="utf-8") as handle:
        pd.DataFrame(per_fold).to_csv(handle, index=False)
    pooled, curves = [], []
    for repeat, group in oof.groupby("repeat"):
        labels, scores = group["label"].to_numpy(), group["probability"].to_numpy()
        intervals = bootstrap_intervals(labels, scores, group["patient"].to_numpy(), 0.5,
                                        config.evaluate.bootstrap_samples,
                                        config.evaluate.ci_level, config.seed)
        auc = float(weighted_auc(labels, scores))
        pooled.append({"repeat": int(repeat), "n": len(group),
                       "auc": None if np.isnan(auc) else auc,
                       interval_key("auc", intervals.level): intervals.to_dict()[
                           interval_key("auc", intervals.level)]})
        curves.append(RocInput(f"repeat {repeat + 1}, pooled out-of-fold", labels, scores))
    plot_roc(curves, files["roc"], title=f"Pooled out-of-fold ROC ({folds}-fold x {repeats})")
    summary = {
        "n_folds": folds, "n_repeats": repeats, "n_runs": len(fold_rows),
        **mean_and_std(per_fold),
        "folds": per_fold,
        "pooled_out_of_fold": pooled,
        "manifest": str(manifest_path),
        "rows": rows,
        "n_images": int(oof.groupby("repeat").size().iloc[0]),
        "n_patients": int(oof["patient"].nunique()),
        "method": ("stratified patient-grouped K-fold (data.splits.assign_folds, seed "
                   f"data.split_seed + repeat = {config.data.split_seed} + r); validation for "
                   f"model selection and threshold carved from the training folds' patients "
                   f"(data.val_fraction = {config.data.val_fraction}); std is the sample std "
                   "(ddof 1) over all folds of all repeats"),
    }
    atomic_write_json(files["summary"], summary)
    return summary, files
