"""Keras callbacks and logs of a training run: Rich progress bars, TensorBoard scalars."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from rich.progress import Progress
from tensorflow.core.framework import summary_pb2

from mammohybrid.progress import progress_bar

METRICS = ("loss", "accuracy", "auc")


def format_logs(logs: dict[str, Any], keys: tuple[str, ...] = METRICS) -> str:
    parts = []
    for prefix in ("", "val_"):
        parts += [f"{prefix}{key} {float(logs[prefix + key]):.4f}" for key in keys
                  if prefix + key in logs]
    return "  ".join(parts)


def epoch_logs(labels: np.ndarray, probabilities: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Loss, accuracy and the exact ROC AUC of one split's predictions, named as Keras names
    its logs (``val_`` prefix for validation).

    The AUC is exact (scikit-learn, every distinct score a threshold), not Keras' binned
    ``AUC`` metric, which on small splits can differ by more than 0.2 and must not choose the
    kept epoch. NaN when the split holds one class. The loss is Keras' binary cross-entropy
    (probabilities clipped to [1e-7, 1 - 1e-7]), the accuracy at 0.5 as ``BinaryAccuracy``.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).reshape(-1).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    auc = roc_auc_score(labels, probabilities) if np.unique(labels).size == 2 else np.nan
    return {f"{prefix}loss": float(loss),
            f"{prefix}accuracy": float(np.mean((probabilities > 0.5) == labels)),
            f"{prefix}auc": float(auc)}


class BatchProgress(keras.callbacks.Callback):
    """A Rich progress bar over the batches of one ``predict`` call."""

    def __init__(self, description: str, total_batches: int) -> None:
        super().__init__()
        self.description = description
        self.total = total_batches
        self._bar: Progress | None = None

    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._bar = progress_bar()
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total)

    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class ExactValidation(keras.callbacks.Callback):
    """Adds the validation split's ``val_loss``, ``val_accuracy`` and exact ``val_auc``
    (:func:`epoch_logs`) to each epoch's logs. Put it first in ``fit``'s callbacks: the later
    ones, and the history ``fit`` returns, then see them."""

    def __init__(self, data: tf.data.Dataset, labels: np.ndarray) -> None:
        super().__init__()
        self.data, self.labels = data, labels

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs.update(epoch_logs(self.labels, self.model.predict(self.data, verbose=0),
                                   "val_"))


class EpochProgress(keras.callbacks.Callback):
    """A Rich progress bar over the training steps of each epoch, with the running metrics,
    and one summary line per finished epoch."""

    def __init__(self, bar: Progress, total_epochs: int, steps: int) -> None:
        super().__init__()
        self.bar = bar
        self.total_epochs = total_epochs
        self.steps = steps
        self._task: Any = None
        self._label = ""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._label = f"epoch {epoch + 1}/{self.total_epochs}"
        self._task = self.bar.add_task(self._label, total=self.steps)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # ``batch`` is the last step done (several per call with steps_per_execution > 1).
        self.bar.update(self._task, completed=batch + 1,
                        description=f"{self._label} {format_logs(logs or {})}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.bar.remove_task(self._task)
        self.bar.console.print(f"{self._label}  {format_logs(logs or {})}", highlight=False)


# What TensorBoard's scalar plugin reads; written with TensorFlow's core ``tf.summary.write``
# because ``tf.summary.scalar`` needs the tensorboard package, which training does not.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class TensorBoardLog:
    """Per-epoch scalars in TensorBoard's layout (``train/`` and ``validation/`` runs, tags
    ``epoch_loss``, ``epoch_accuracy``, ``epoch_auc``), as Keras' callback writes them. View
    with ``tensorboard --logdir RUN_DIR/tensorboard`` (``pip install tensorboard``)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._writers = {
            "": tf.summary.create_file_writer(os.fspath(os.path.join(folder, "train"))),
            "val_": tf.summary.create_file_writer(os.fspath(os.path.join(folder, "validation"))),
        }

    def write(self, epoch: int, logs: dict[str, float]) -> None:
        for prefix, writer in self._writers.items():
            with writer.as_default(step=epoch):
                for key in METRICS:
                    if prefix + key in logs:
                        tf.summary.write(f"epoch_{key}", tf.constant(logs[prefix + key],
                                                                     tf.float32),
                                         metadata=_SCALAR_METADATA)
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
