"""The tf.data input pipeline: pre-processed manifest rows -> batches of model input.

Images are decoded in parallel as 8-bit greyscale, resized only when their side differs from
the model's input, cached in memory once (greyscale uint8: 1,318 CBIS-DDSM crops at 229 px
take 69 MB), shuffled per epoch, batched, then turned into the model's float32 RGB [0, 255]
input, with the next batches prefetched while the model works.

tf.data's autotuning is off (:func:`fixed_pipeline`): its thread wakes up at growing intervals
and deleting an iterator waits for the next wake-up, so every epoch and every ``predict``,
each of which deletes one, returned seconds after its last batch (``docs/model.md``,
"Performance"). Parallelism and prefetching are fixed instead.

Determinism: epoch ``e`` is shuffled with a seed derived from (seed, e) alone, so the order of
any epoch is the same whether the run went straight through or was resumed at ``e``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from mammohybrid.config import Config
from mammohybrid.data import check_no_patient_leak, read_manifest, usable_rows
from mammohybrid.errors import ConfigError, ManifestError
from mammohybrid.preprocess import ensure_preprocessed
from mammohybrid.training.callbacks import BatchProgress
from mammohybrid.workers import usable_cores

PARALLEL_CALLS = usable_cores()  # decoding and conversion: one image per core at a time
PREFETCH_BATCHES = 2  # ready while the model works on the current one


def fixed_pipeline(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with tf.data's autotuning off (see the module doc)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


# --------------------------------------------------------------------------- manifest
def training_manifest(config: Config) -> Path:
    if config.data.manifest is None:
        raise ConfigError("data.manifest is not set: pass a manifest (raw, or pre-processed "
                          "with the config's settings), e.g. --set data.manifest=data/cbis.csv")
    return Path(config.data.manifest)


def load_splits(config: Config) -> dict[str, pd.DataFrame]:
    """The usable ``train`` and ``val`` rows of the training manifest. The test split is read
    by nobody here."""
    path = training_manifest(config)
    frame = usable_rows(read_manifest(path))
    check_no_patient_leak(frame)
    splits = {name: frame[frame["split"] == name].reset_index(drop=True)
              for name in ("train", "val")}
    for name, rows in splits.items():
        if rows.empty:
            raise ManifestError(f"{path}: no usable '{name}' rows (training needs train and val "
                                "splits with status ok)")
    return splits


def with_preprocessed_manifest(config: Config) -> Config:
    """``config`` whose ``data.manifest`` is the pre-processed manifest its ``preprocess``
    section needs: a raw manifest is pre-processed with those settings (cached, resumable), a
    manifest pre-processed with other settings is refused
    (:func:`mammohybrid.preprocess.cache.ensure_preprocessed`)."""
    manifest = ensure_preprocessed(training_manifest(config), config)
    return config.model_copy(update={"data": config.data.model_copy(update={"manifest": manifest})})


# --------------------------------------------------------------------------- decoding
def read_resized_grey(path: tf.Tensor, size: int) -> tf.Tensor:
    """Read one image file as (size, size, 1) uint8, resizing only when needed."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=1, dtype=tf.uint8,
                               expand_animations=False)
    same_size = tf.reduce_all(tf.shape(image)[:2] == size)
    image = tf.cond(
        same_size,
        lambda: image,
        lambda: tf.cast(tf.round(tf.clip_by_value(
            tf.image.resize(image, (size, size), antialias=True), 0.0, 255.0)), tf.uint8))
    return tf.ensure_shape(image, (size, size, 1))


def grey_to_model_rgb(images: tf.Tensor) -> tf.Tensor:
    """uint8 greyscale (..., 1) -> the model's float32 RGB in [0, 255]."""
    return tf.image.grayscale_to_rgb(tf.cast(images, tf.float32))


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: a function of (seed, epoch) only."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


class ImageSplit:
    """One split's images and labels as tf.data datasets (decoded once, cached)."""

    def __init__(self, frame: pd.DataFrame, input_size: int, batch_size: int,
                 cache: bool = True) -> None:
        self.paths = [os.fspath(p) for p in frame["image_path"]]
        # Unlabelled rows (new images to predict) get a placeholder label nobody reads.
        self.labels = (frame["label"].to_numpy(dtype=np.float32) if "label" in frame.columns
                       else np.zeros(len(frame), dtype=np.float32))
        self.batch_size = batch_size
        missing = [p for p in self.paths if not os.path.isfile(p)]
        if missing:
            raise ManifestError(f"{len(missing)} image file(s) of the manifest are missing, "
                                f"e.g. {missing[0]}")
        images = tf.data.Dataset.from_tensor_slices(self.paths).map(
            lambda path: read_resized_grey(path, input_size), num_parallel_calls=PARALLEL_CALLS,
            deterministic=True)
        labels = tf.data.Dataset.from_tensor_slices(self.labels[:, None])
        decoded = tf.data.Dataset.zip(images, labels)
        self._decoded = decoded.cache() if cache else decoded

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def steps(self) -> int:
        return -(-len(self) // self.batch_size)

    def _batched(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return fixed_pipeline(
            dataset.batch(self.batch_size)
            .map(lambda x, y: (grey_to_model_rgb(x), y), num_parallel_calls=PARALLEL_CALLS)
            .prefetch(PREFETCH_BATCHES))

    def epoch(self, epoch: int, seed: int) -> tf.data.Dataset:
        """Shuffled (image, label) batches of training epoch ``epoch``."""
        shuffled = self._decoded.shuffle(len(self), seed=epoch_seed(seed, epoch),
                                         reshuffle_each_iteration=False)
        return self._batched(shuffled)

    def ordered(self) -> tf.data.Dataset:
        """(image, label) batches in manifest order (validation, prediction)."""
        return self._batched(self._decoded)

    def images(self) -> tf.data.Dataset:
        """Image batches in manifest order, without labels."""
        return self.ordered().map(lambda x, y: x)


def predict_manifest(model, frame: pd.DataFrame, config: Config) -> np.ndarray:
    """Malignancy probabilities of ``model`` for the rows of a pre-processed manifest frame,
    in row order, through the training pipeline's decoding."""
    split = ImageSplit(frame, config.model.input_size, config.train.batch_size, cache=False)
    probabilities = model.predict(split.images(), verbose=0,
                                  callbacks=[BatchProgress("predict", split.steps)])
    return np.asarray(probabilities, dtype=np.float64).reshape(-1)
