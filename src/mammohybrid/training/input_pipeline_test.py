"""Tests of the tf.data pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mammohybrid.config import load_config
from mammohybrid.data.manifest import usable_rows
from mammohybrid.errors import ConfigError, ManifestError
from mammohybrid.imaging import write_png
from mammohybrid.training.input_pipeline import (
    ImageSplit,
    grey_to_model_rgb,
    load_splits,
    predict_manifest,
    read_resized_grey,
    with_preprocessed_manifest,
)

BATCH_OF_4 = "train.batch_size=4"


def test_decode_keeps_or_resizes_to_the_model_size(tmp_path) -> None:
    image = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) % 256
    write_png(tmp_path / "a.png", image.astype(np.uint8))
    same = read_resized_grey(tf.constant(str(tmp_path / "a.png")), 40).numpy()
    np.testing.assert_array_equal(same[..., 0], image)
    smaller = read_resized_grey(tf.constant(str(tmp_path / "a.png")), 20).numpy()
    assert smaller.shape == (20, 20, 1) and smaller.dtype == np.uint8


def test_model_input_is_float_rgb_0_255() -> None:
    grey = tf.constant([[[[0], [255]]]], tf.uint8)
    rgb = grey_to_model_rgb(grey).numpy()
    assert rgb.dtype == np.float32 and rgb.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(rgb[0, 0, 1], [255, 255, 255])


def test_splits_exclude_failed_rows_and_never_return_test(toy: Path, tiny_config) -> None:
    splits = load_splits(tiny_config(toy, BATCH_OF_4))
    assert set(splits) == {"train", "val"}
    assert len(splits["train"]) == 16 and len(splits["val"]) == 8  # the failed row is gone
    assert (splits["train"]["status"] == "ok").all()
    frame = pd.DataFrame({"status": ["ok", "error", "ok"], "x": [1, 2, 3]})
    assert usable_rows(frame)["x"].tolist() == [1, 3]


def test_split_errors(tmp_path, toy: Path, tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"data\.manifest is not set"):
        load_splits(load_config(None, []))
    frame = pd.read_csv(toy)
    frame = frame[frame["split"] != "val"]
    frame.to_csv(tmp_path / "noval.csv", index=False)
    with pytest.raises(ManifestError, match="no usable 'val' rows"):
        load_splits(tiny_config(tmp_path / "noval.csv"))


def test_a_manifest_preprocessed_otherwise_is_refused_not_followed(toy: Path, tiny_config) -> None:
    config = tiny_config(toy, BATCH_OF_4)
    assert with_preprocessed_manifest(config).data.manifest == Path(toy)
    with pytest.raises(ConfigError, match=r"preprocess\.strategy differ"):
        with_preprocessed_manifest(tiny_config(toy, BATCH_OF_4, "preprocess.strategy=none"))


def test_epochs_are_shuffled_deterministically_and_differently(toy: Path, tiny_config) -> None:
    frame = load_splits(tiny_config(toy, BATCH_OF_4))["train"]
    split = ImageSplit(frame, 32, 4)

    def order(epoch: int) -> list[float]:
        # Image sums identify images (all differ).
        return [float(s) for x, _ in split.epoch(epoch, seed=7)
                for s in tf.reduce_sum(x, axis=[1, 2, 3]).numpy()]

    first = order(0)
    assert len(first) == 16 and split.steps == 4
    assert order(0) == first  # same (seed, epoch): same order, e.g. after a resume
    assert order(1) != first and sorted(order(1)) == sorted(first)
    fresh = ImageSplit(frame, 32, 4)
    assert [float(s) for x, _ in fresh.epoch(1, seed=7)
            for s in tf.reduce_sum(x, axis=[1, 2, 3]).numpy()] == order(1)


def test_ordered_batches_follow_the_manifest(toy: Path, tiny_config) -> None:
    frame = load_splits(tiny_config(toy, BATCH_OF_4))["val"]
    images, labels = zip(*ImageSplit(frame, 32, 3).ordered(), strict=True)
    assert [len(b) for b in images] == [3, 3, 2]
    np.testing.assert_array_equal(np.concatenate(labels)[:, 0], frame["label"].to_numpy())
    first = read_resized_grey(tf.constant(frame["image_path"][0]), 32).numpy()[..., 0]
    np.testing.assert_array_equal(images[0][0].numpy()[..., 1], first)


def test_missing_image_is_reported(toy: Path, tiny_config) -> None:
    frame = load_splits(tiny_config(toy, BATCH_OF_4))["val"].copy()
    frame.loc[0, "image_path"] = "/nowhere/x.png"
    with pytest.raises(ManifestError, match=r"missing.*nowhere"):
        ImageSplit(frame, 32, 4)


def test_predict_manifest_keeps_row_order(toy: Path, tiny_config) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Lambda(lambda m: m[:, :1] / 255.0)(mean))
    config = tiny_config(toy, BATCH_OF_4)
    frame = load_splits(config)["val"]
    probabilities = predict_manifest(model, frame, config)
    expected = [read_resized_grey(tf.constant(p), 32).numpy().mean() / 255
                for p in frame["image_path"]]
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)
