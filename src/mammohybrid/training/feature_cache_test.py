"""Tests of the frozen-backbone feature cache."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from mammohybrid.models import build_model
from mammohybrid.training.feature_cache import (
    FeatureCache,
    augmented_copies,
    head_model,
    uses_feature_cache,
)
from mammohybrid.training.input_pipeline import ImageSplit, load_splits

BACKBONES = ["tinycnn", "smallcnn"]
CACHED = ["model.trainable=none", f"model.backbones=[{','.join(BACKBONES)}]",
          "train.batch_size=4", "train.augment_copies=3"]


def _cache(tmp_path, config) -> FeatureCache:
    keras.utils.set_random_seed(config.seed)
    splits = load_splits(config)
    model = build_model(config.model)
    return FeatureCache(tmp_path / "features", model, config,
                        ImageSplit(splits["train"], 32, 4), ImageSplit(splits["val"], 32, 4))


def test_when_the_cache_is_used(toy: Path, tiny_config) -> None:
    assert uses_feature_cache(tiny_config(toy, *CACHED))
    assert not uses_feature_cache(tiny_config(toy, *CACHED, "train.feature_cache=off"))
    assert not uses_feature_cache(tiny_config(toy, *CACHED, "model.trainable=all"))
    assert augmented_copies(tiny_config(toy, *CACHED)) == 3
    assert augmented_copies(tiny_config(toy, *CACHED, "model.augment=none")) == 1


@pytest.mark.slow
def test_cache_holds_backbone_maps_per_copy(tmp_path, toy: Path, tiny_config) -> None:
    cache = _cache(tmp_path, tiny_config(toy, *CACHED))
    cache.ensure()
    names = sorted(p.name for p in cache.folder.iterdir())
    assert names == ["meta.json", "train-c0.npz", "train-c1.npz", "train-c2.npz", "val.npz"]
    copies = [np.load(cache.folder / f"train-c{c}.npz")["b0"] for c in range(3)]
    assert copies[0].shape == (16, 1, 1, 16)  # tinycnn: 32 px / 32, 16 channels
    assert not np.allclose(copies[0], copies[1])  # each copy has its own augmentation
    # Validation maps are the plain backbone outputs of the scaled images.
    images = np.concatenate(list(cache.val.images().as_numpy_iterator()))
    backbone = cache.model.get_layer("smallcnn")
    scaling = cache.model.get_layer("smallcnn_scaling")
    expected = keras.ops.convert_to_numpy(backbone(scaling(images), training=False))
    np.testing.assert_allclose(np.load(cache.folder / "val.npz")["b1"], expected, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.slow
def test_cache_is_reused_and_invalidated(tmp_path, toy: Path, tiny_config) -> None:
    cache = _cache(tmp_path, tiny_config(toy, *CACHED))
    cache.ensure()
    stamp = (cache.folder / "train-c1.npz").stat().st_mtime_ns
    (cache.folder / "train-c2.npz").unlink()  # e.g. killed while computing copy 3
    cache.ensure()
    assert (cache.folder / "train-c1.npz").stat().st_mtime_ns == stamp
    assert (cache.folder / "train-c2.npz").is_file()
    other = _cache(tmp_path, tiny_config(toy, *CACHED, "train.augment_copies=2"))
    other.ensure()
    assert not (cache.folder / "train-c2.npz").exists()  # other settings: recomputed


@pytest.mark.slow
def test_epochs_cycle_through_the_copies(tmp_path, toy: Path, tiny_config) -> None:
    cache = _cache(tmp_path, tiny_config(toy, *CACHED))
    cache.ensure()
    features = [np.concatenate([x[0].numpy() for x, _ in cache.train_epoch(e)])
                for e in (0, 3, 1)]
    assert sorted(features[0].ravel().tolist()) == sorted(features[1].ravel().tolist())
    assert sorted(features[0].ravel().tolist()) != sorted(features[2].ravel().tolist())


def test_head_model_is_the_hybrid_head(toy: Path, tiny_config) -> None:
    config = tiny_config(toy, *CACHED)
    model = build_model(config.model)
    head = head_model(model, BACKBONES)
    assert [w.path for w in head.trainable_weights] == [w.path for w in model.trainable_weights]
    assert head.get_layer("prediction") is model.get_layer("prediction")
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    maps = [keras.ops.convert_to_numpy(model.get_layer(n)(model.get_layer(f"{n}_scaling")(images)))
            for n in BACKBONES]
    np.testing.assert_allclose(head.predict(maps, verbose=0), model.predict(images, verbose=0),
                               rtol=1e-5)
