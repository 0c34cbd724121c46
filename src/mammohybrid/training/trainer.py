"""Training the hybrid on a pre-processed manifest (``mammohybrid train``).

Optimizer and loss follow the paper's Table 3 (:mod:`mammohybrid.models.compile`: SGD with
Nesterov momentum, binary cross-entropy on the sigmoid's probabilities).

Each epoch is one ``fit`` call on a dataset shuffled with that epoch's own seed; after it, a
backup is committed (see :mod:`mammohybrid.training.checkpoint`), so ``resume=True`` continues
a killed run exactly. The run directory is laid out as :class:`mammohybrid.run_dir.RunDir`
describes; ``DONE`` is written last.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from mammohybrid import __version__
from mammohybrid.config import Config, TrainConfig, config_to_dict, load_config, save_config
from mammohybrid.decision import ThresholdChoice, select_threshold
from mammohybrid.errors import ConfigError, MammohybridError
from mammohybrid.fileio import atomic_open, atomic_path, atomic_write_json, atomic_write_text
from mammohybrid.model_card import data_summary, write_model_card
from mammohybrid.models import (
    build_model,
    compile_hybrid,
    float32_policy,
    refresh_cached_state,
    with_test_time_augmentation,
)
from mammohybrid.progress import console, progress_bar
from mammohybrid.run_dir import RunDir
from mammohybrid.training.callbacks import EpochProgress, ExactValidation, TensorBoardLog
from mammohybrid.training.checkpoint import Backup, TrainingState, restore, snapshot
from mammohybrid.training.curves import plot_training_curves
from mammohybrid.training.feature_cache import FeatureCache, head_model, uses_feature_cache
from mammohybrid.training.input_pipeline import (
    ImageSplit,
    load_splits,
    predict_manifest,
    with_preprocessed_manifest,
)
from mammohybrid.training.linear_head import fit_logistic_head, write_model_with_head
from mammohybrid.training.runtime import Runtime, training_runtime

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"]


# --------------------------------------------------------------------------- building blocks
def compile_for_training(model: keras.Model, train: TrainConfig, steps_per_epoch: int,
                         steps_per_execution: int = 1) -> None:
    """Table 3's SGD and binary cross-entropy (:func:`mammohybrid.models.compile.compile_hybrid`)
    with the config's learning rate (constant, or cosine-decayed over all epochs) and
    momentum."""
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = train.learning_rate
    if train.lr_schedule == "cosine":
        # A function of the optimizer's step count, which the backup restores: a resumed run
        # continues on the same curve.
        learning_rate = keras.optimizers.schedules.CosineDecay(
            train.learning_rate, decay_steps=max(1, train.epochs * steps_per_epoch), alpha=0.01)
    compile_hybrid(model, learning_rate=learning_rate, momentum=train.momentum,
                   nesterov=train.nesterov, steps_per_execution=steps_per_execution)


def class_weights(labels: np.ndarray, mode: str) -> dict[int, float] | None:
    """``balanced``: n / (2 n_c) per class (each class weighs half of the loss); ``none``."""
    if mode == "none":
        return None
    counts = np.bincount(labels.astype(int), minlength=2)
    if (counts == 0).any():
        raise ConfigError("train.class_weight: balanced needs both classes in the train split")
    return {c: float(len(labels) / (2 * counts[c])) for c in (0, 1)}


def export_model(config: Config, weights: list[np.ndarray], path: Path) -> keras.Model:
    """Save a clean float32 inference model (no optimizer, no distribution) with ``weights``."""
    with float32_policy():
        model = build_model(config.model.model_copy(update={"weights": None}))
    model.set_weights(weights)
    refresh_cached_state(model)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return model


@dataclass(frozen=True)
class _Tracked:
    """The model variables training can change: what a backup holds.

    Frozen backbones (``model.trainable: none``) never change (their BatchNorm runs in
    inference mode, their dropout rates are 0: :func:`~mammohybrid.models.hybrid.set_trainable`)
    and are rebuilt identically from the config on resume, so they are left out: a backup of
    a frozen EfficientNetB7 hybrid then holds the head's kilobytes instead of 256 MB, which
    keeps the cached-feature epochs fast.
    """

    state: list[Any]  # every changing variable, random-generator states included
    weights: list[Any]  # the subset that are weights (the best model's)

    @classmethod
    def of(cls, model: keras.Model, config: Config) -> _Tracked:
        frozen: set[int] = set()
        if config.model.trainable == "none":
            frozen = {id(v) for name in config.model.backbones
                      for v in model.get_layer(name).variables}
        return cls([v for v in model.variables if id(v) not in frozen],
                   [v for v in model.weights if id(v) not in frozen])


class _Plan(Protocol):
    """What one epoch trains on: the full model on images, or the head on cached features."""

    fit_model: keras.Model
    steps: int
    steps_per_execution: int
    val_labels: np.ndarray

    def train_data(self, epoch: int) -> tf.data.Dataset: ...
    def val_data(self) -> tf.data.Dataset: ...
    def finish(self) -> None: ...


class _ImagePlan:
    def __init__(self, model: keras.Model, train: ImageSplit, val: ImageSplit, seed: int):
        self.fit_model, self.train, self.val, self.seed = model, train, val, seed
        self.steps = train.steps
        self.steps_per_execution = 1
        self.val_labels = val.labels

    def train_data(self, epoch: int) -> tf.data.Dataset:
        return self.train.epoch(epoch, self.seed)

    def val_data(self) -> tf.data.Dataset:
        return self.val.ordered()

    def finish(self) -> None:
        return None


class _FeaturePlan:
    def __init__(self, model: keras.Model, cache: FeatureCache, backbones: list[str]):
        self.fit_model = head_model(model, backbones)
        self.cache = cache
        self.steps = cache.train.steps
        # A head step is tiny, so Keras' per-call overhead dominates: the whole epoch runs in
        # one call of the compiled step (same updates as step by step, faster per epoch; see
        # docs/model.md, "Performance").
        self.steps_per_execution = self.steps
        self.val_labels = cache.val.labels

    def train_data(self, epoch: int) -> tf.data.Dataset:
        return self.cache.train_epoch(epoch)

    def val_data(self) -> tf.data.Dataset:
        return self.cache.validation()

    def finish(self) -> None:
        self.cache.remove()


# --------------------------------------------------------------------------- run directory
def _comparable(config: Config) -> dict[str, Any]:
    data = config_to_dict(config)
    # A resumed run may be given more epochs, unless they shape the learning-rate schedule:
    # a cosine decay spans all epochs, and a new count would move the resumed run to
    # another curve.
    if config.train.lr_schedule == "constant":
        data["train"].pop("epochs")
    return data


def _open_run(run: RunDir, config: Config, resume: bool) -> TrainingState | None:
    """Create or reopen the run directory; the state to start from, None when a finished run
    already has all its epochs."""
    backup = Backup(run.backup)
    if resume and run.config.is_file():
        if _comparable(load_config(run.config)) != _comparable(config):
            raise ConfigError(f"{run.config}: the run was started with another configuration; "
                              "resume it with the same one (only train.epochs may change, and "
                              "not with train.lr_schedule: cosine)")
    elif not resume and (run.config.is_file() or run.backup.exists()):
        raise MammohybridError(f"{run.root} already holds a training run; pass --resume to "
                               "continue it, or choose another --out")
    state = (backup.load_state() if resume else None) or TrainingState()
    if run.is_finished() and state.epochs_done >= config.train.epochs:
        return None
    if state.epochs_done:
        state.resumed_at.append(state.epochs_done)
    run.root.mkdir(parents=True, exist_ok=True)
    run.done.unlink(missing_ok=True)
    save_config(config, run.config)
    return state


def _write_history(path: Path, history: list[dict[str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        frame.to_csv(handle, index=False)
    return frame


# --------------------------------------------------------------------------- train
def train(config: Config, out_dir: str | os.PathLike[str], resume: bool = False,
          callbacks: list[keras.callbacks.Callback] | None = None) -> RunDir:
    """Train ``config``'s model on the train split of ``config.data.manifest`` and write the
    run directory ``out_dir``; with ``resume``, continue the run found there."""
    run = RunDir.at(out_dir)
    config = with_preprocessed_manifest(config)
    splits = load_splits(config)
    state = _open_run(run, config, resume)
    if state is None:
        console.print(f"{run.root}: all {config.train.epochs} epochs were already trained")
        return run
    started = time.time()
    with training_runtime(config.train, config.seed) as runtime:
        if config.train.head == "logistic":
            threshold = _train_logistic_head(config, run, splits, state)
        else:
            best = _train_keras_head(config, run, splits, runtime, state, callbacks or [])
    if config.train.head == "keras":
        with float32_policy():
            val_probabilities = predict_manifest(
                with_test_time_augmentation(best, config.model.tta), splits["val"], config)
        threshold = select_threshold(splits["val"]["label"].to_numpy(), val_probabilities,
                                     config.evaluate)
    _finish(config, run, state, threshold, splits, runtime, time.time() - started)
    return run


def _train_keras_head(config: Config, run: RunDir, splits: dict[str, pd.DataFrame],
                      runtime: Runtime, state: TrainingState,
                      callbacks: list[keras.callbacks.Callback]) -> keras.Model:
    """The model (or its head on cached features) trained by Keras, epoch by epoch with a
    backup after each; ``last.keras`` and the best epoch's ``model.keras`` are written."""
    model, plan = _prepare(config, run, splits, runtime, state)
    tracked = _Tracked.of(model, config)
    _train_epochs(config, run, plan, tracked, state, callbacks,
                  class_weights(splits["train"]["label"].to_numpy(), config.train.class_weight))
    export_model(config, snapshot(model.weights), run.last_model)
    restore(tracked.weights, Backup(run.backup).load_arrays(state.best_file or ""), "best weights")
    best = export_model(config, snapshot(model.weights), run.model)
    plan.finish()
    return best


def _train_logistic_head(config: Config, run: RunDir, splits: dict[str, pd.DataFrame],
                         state: TrainingState) -> ThresholdChoice:
    """``train.head: logistic`` (:mod:`mammohybrid.training.linear_head`): one fit on the cached
    pooled features of the train and val rows, recorded as the run's only epoch;
    ``model.keras`` and ``last.keras`` are the same model. Returns the threshold, chosen on the
    inner out-of-fold probabilities."""
    start = time.perf_counter()
    fitted = fit_logistic_head(config, splits)
    choice = fitted.head.choice
    console.print(f"logistic head on {len(fitted.labels) or 'the'} train + val rows: "
                  f"{choice.describe() if choice else ''}", highlight=False)
    state.record(fitted.logs, time.perf_counter() - start)
    state.extra.update(fitted.head.describe())
    _write_history(run.history, state.history)
    write_model_with_head(config.model, fitted.head, run.model)
    with atomic_path(run.last_model) as tmp:
        try:  # the same bytes: a second name for the file, not a second copy of it
            tmp.unlink()
            os.link(run.model, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(run.model, tmp)
    return select_threshold(fitted.labels, fitted.out_of_fold, config.evaluate,
                            split="train + val, inner out-of-fold")


def _prepare(config: Config, run: RunDir, splits: dict[str, pd.DataFrame], runtime: Runtime,
             state: TrainingState) -> tuple[keras.Model, _Plan]:
    """Build the model and what it trains on; restore the last backup when resuming."""
    train_split = ImageSplit(splits["train"], config.model.input_size, config.train.batch_size,
                             cache=config.train.cache)
    val_split = ImageSplit(splits["val"], config.model.input_size, config.train.batch_size,
                           cache=config.train.cache)
    with runtime.strategy.scope():
        model = build_model(config.model)
    plan: _Plan
    if uses_feature_cache(config):
        cache = FeatureCache(run.backup / "features", model, config, train_split, val_split)
        # Computed outside the strategy: one pass of inference needs no replicas.
        state.extra["feature_cache_seconds"] = (
            state.extra.get("feature_cache_seconds", 0.0) + cache.ensure())
        plan = _FeaturePlan(model, cache, config.model.backbones)
    else:
        plan = _ImagePlan(model, train_split, val_split, config.seed)
    with runtime.strategy.scope():
        compile_for_training(plan.fit_model, config.train, plan.steps, plan.steps_per_execution)
        plan.fit_model.optimizer.build(plan.fit_model.trainable_variables)
    if state.state_file:
        arrays = Backup(run.backup).load_arrays(state.state_file)
        tracked = _Tracked.of(model, config)
        n_model = len(tracked.state)
        restore(tracked.state, arrays[:n_model], "model state")
        restore(plan.fit_model.optimizer.variables, arrays[n_model:], "optimizer state")
        refresh_cached_state(model)
        console.print(f"resuming {run.root} after epoch {state.epochs_done}")
    return model, plan


def _train_epochs(config: Config, run: RunDir, plan: _Plan, tracked: _Tracked,
                  state: TrainingState, callbacks: list[keras.callbacks.Callback],
                  weights: dict[int, float] | None) -> None:
    backup = Backup(run.backup)
    tensorboard = TensorBoardLog(run.tensorboard)
    _write_history(run.history, state.history)  # drops rows of an epoch that never committed
    try:
        with progress_bar() as bar:
            progress = EpochProgress(bar, config.train.epochs, plan.steps)
            validation = ExactValidation(plan.val_data(), plan.val_labels)
            for epoch in range(state.epochs_done, config.train.epochs):
                start = time.perf_counter()
                result = plan.fit_model.fit(
                    plan.train_data(epoch), epochs=epoch + 1, initial_epoch=epoch,
                    class_weight=weights, shuffle=False, verbose=0,
                    callbacks=[validation, progress, *callbacks])
                logs = {key: float(values[-1]) for key, values in result.history.items()}
                improved = state.record(logs, time.perf_counter() - start)
                backup.save(state,
                            snapshot(tracked.state) + snapshot(plan.fit_model.optimizer.variables),
                            snapshot(tracked.weights) if improved else None)
                _write_history(run.history, state.history)
                tensorboard.write(epoch, logs)
    finally:
        tensorboard.close()


def _finish(config: Config, run: RunDir, state: TrainingState, threshold: ThresholdChoice,
            splits: dict[str, pd.DataFrame], runtime: Runtime, seconds: float) -> None:
    """Curves (of a head trained in epochs), the threshold, run.json, the model card, then
    DONE."""
    if config.train.head == "keras":
        plot_training_curves(pd.read_csv(run.history), run.curves, state.best_epoch,
                             title=" + ".join(config.model.backbones))
    atomic_write_json(run.threshold, threshold.to_dict())
    atomic_write_json(run.info, {
        "package_version": __version__,
        "seed": config.seed,
        "manifest": str(config.data.manifest),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "epochs": state.epochs_done,
        "best_epoch": state.best_epoch,
        "best_val_auc": state.best_val_auc,
        "seconds_last_session": round(seconds, 3),
        "epoch_seconds": [round(s, 3) for s in state.epoch_seconds],
        "resumed_at_epochs": state.resumed_at,
        "feature_cache": uses_feature_cache(config),
        **state.extra,
        "images": {name: len(frame) for name, frame in splits.items()},
        "data": data_summary(splits, config.data.manifest),
        "runtime": runtime.describe(),
        "environment": {"python": platform.python_version(), "platform": platform.platform()},
    })
    write_model_card(run)
    atomic_write_text(run.done, dt.datetime.now(dt.UTC).isoformat() + "\n")
