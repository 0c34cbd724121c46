"""The frozen-backbone fast path: backbone features computed once, the head trained on them.

With ``model.trainable: none`` only the head (branch dropouts, concatenation, pooling, head
dropout, dense) learns, and recomputing the frozen backbones every epoch is almost all of the
work. Here each backbone's feature map is computed once per training image and augmented
copy (``train.augment_copies``; epoch ``e`` trains on copy ``e mod copies``, so every epoch
still sees one augmented view of each image) and once for validation, stored under
``backup/features/``, and the head is trained on them. The head is made of the hybrid's own
layers, so training it trains the hybrid: the model saved at the end is the complete
image -> probability model.

The cached maps are the branch outputs *before* the branch dropouts, so training the head on
them is the same computation as training the full model with frozen backbones.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mammohybrid.config import Config
from mammohybrid.fileio import atomic_path, atomic_write_json
from mammohybrid.models import (
    CONCAT_NAME,
    HEAD_DROPOUT_NAME,
    OUTPUT_NAME,
    POOL_NAME,
    branches,
    build_augmentation,
)
from mammohybrid.progress import progress_bar
from mammohybrid.training.input_pipeline import (
    PREFETCH_BATCHES,
    ImageSplit,
    epoch_seed,
    fixed_pipeline,
)

META_FILE = "meta.json"


def uses_feature_cache(config: Config) -> bool:
    """True when the backbones are frozen and the cache is allowed."""
    return config.model.trainable == "none" and config.train.feature_cache == "auto"


def augmented_copies(config: Config) -> int:
    """Copies of the training features: one without augmentation."""
    return config.train.augment_copies if config.model.augment != "none" else 1


def head_model(model: keras.Model, backbones: Sequence[str]) -> keras.Model:
    """Branch feature maps -> probability, made of the hybrid's own head layers (shared)."""
    parts = branches(model, backbones)
    inputs = [keras.Input(tuple(part.backbone.output.shape[1:]), name=f"{part.name}_features")
              for part in parts]
    dropped = [part.dropout(features) for part, features in zip(parts, inputs, strict=True)]
    x = model.get_layer(CONCAT_NAME)(dropped)
    x = model.get_layer(POOL_NAME)(x)
    x = model.get_layer(HEAD_DROPOUT_NAME)(x)
    return keras.Model(inputs, model.get_layer(OUTPUT_NAME)(x), name="head")


class FeatureCache:
    """Backbone feature maps of the train copies and of the validation split, on disk."""

    def __init__(self, folder: Path, model: keras.Model, config: Config,
                 train: ImageSplit, val: ImageSplit) -> None:
        self.folder = folder
        self.model = model
        self.config = config
        self.train = train
        self.val = val
        self.copies = augmented_copies(config)
        self._loaded: tuple[str, list[np.ndarray]] | None = None
        self._validation: tf.data.Dataset | None = None

    # ------------------------------------------------------------------ building
    def _fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha256("\n".join([*self.train.paths, "--", *self.val.paths]).encode())
        return {"model": self.config.model.model_dump(mode="json"), "seed": self.config.seed,
                "copies": self.copies, "images": digest.hexdigest()}

    def ensure(self) -> float:
        """Compute whatever is missing (all of it when the settings changed); return seconds."""
        meta_path = self.folder / META_FILE
        fingerprint = self._fingerprint()
        if meta_path.is_file() and json.loads(meta_path.read_text()) != fingerprint:
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(meta_path, fingerprint)
        jobs: list[tuple[str, ImageSplit, int | None]] = [
            (f"train-c{copy}.npz", self.train, copy) for copy in range(self.copies)]
        jobs.append(("val.npz", self.val, None))
        start = time.perf_counter()
        for name, split, copy in jobs:
            if not (self.folder / name).is_file():
                self._compute(name, split, copy)
        return time.perf_counter() - start

    def _compute(self, name: str, split: ImageSplit, copy: int | None) -> None:
        parts = branches(self.model, self.config.model.backbones)
        # A fresh augmentation block per copy, seeded from (seed, copy): a copy's features do
        # not depend on which copies were computed before (resumption stays exact).
        augmentation = (build_augmentation(self.config.model.augment,
                                           seed=epoch_seed(self.config.seed, 10_000 + copy))
                        if copy is not None else None)

        @tf.function
        def features(images: tf.Tensor) -> list[tf.Tensor]:
            x = augmentation(images, training=True) if augmentation is not None else images
            return [part.backbone(part.scaling(x) if part.scaling is not None else x,
                                  training=False) for part in parts]

        outputs: list[list[np.ndarray]] = [[] for _ in parts]
        label = "features " + (f"train copy {copy + 1}/{self.copies}" if copy is not None
                               else "val")
        with progress_bar() as bar:
            task = bar.add_task(label, total=split.steps)
            for batch in split.images():
                for store, value in zip(outputs, features(batch), strict=True):
                    store.append(np.asarray(value, dtype=np.float32))
                bar.advance(task)
        with atomic_path(self.folder / name) as tmp:
            # Any: numpy's stubs type savez's keywords as its allow_pickle flag.
            named: dict[str, Any] = {f"b{i}": np.concatenate(o) for i, o in enumerate(outputs)}
            np.savez(tmp, **named)

    # ------------------------------------------------------------------ reading
    def _arrays(self, name: str) -> list[np.ndarray]:
        if self._loaded is None or self._loaded[0] != name:
            with np.load(self.folder / name) as data:
                self._loaded = (name, [data[f"b{i}"] for i in range(len(data.files))])
        return self._loaded[1]

    def train_epoch(self, epoch: int) -> tf.data.Dataset:
        """Shuffled (features, label) batches of epoch ``epoch`` (copy ``epoch mod copies``)."""
        arrays = self._arrays(f"train-c{epoch % self.copies}.npz")
        dataset = tf.data.Dataset.from_tensor_slices((tuple(arrays), self.train.labels[:, None]))
        return fixed_pipeline(
            dataset.shuffle(len(self.train), seed=epoch_seed(self.config.seed, epoch),
                            reshuffle_each_iteration=False)
            .batch(self.train.batch_size).prefetch(PREFETCH_BATCHES))

    def validation(self) -> tf.data.Dataset:
        """(features, label) batches of the validation split."""
        if self._validation is None:
            with np.load(self.folder / "val.npz") as data:
                arrays = tuple(data[f"b{i}"] for i in range(len(data.files)))
            self._validation = fixed_pipeline(tf.data.Dataset.from_tensor_slices(
                (arrays, self.val.labels[:, None])).batch(self.val.batch_size).cache())
        return self._validation

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
