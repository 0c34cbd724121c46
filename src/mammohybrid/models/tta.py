"""Test-time augmentation: a hybrid's pooled features averaged over the eight dihedral views of
its input (the four 90-degree rotations, each with and without a horizontal flip).

A lesion has no preferred orientation on a crop, so a model's answer should not depend on it.
Averaging the *pooled features* (not the probabilities) keeps the model linear in them after
the pooling layer: the head of a hybrid is one Dense layer on the pooled features, so the
averaged model is exactly "the head applied to the mean feature vector" - which is also what
the logistic head (:mod:`mammohybrid.training.linear_head`) is fitted on. The wrapping model is
built in memory around a loaded hybrid and never saved: ``model.keras`` stays the plain hybrid,
and Grad-CAM explains its un-rotated view.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from mammohybrid.errors import ConfigError
from mammohybrid.models.hybrid import OUTPUT_NAME, feature_extractor

TTA_MODES = ("none", "dihedral")


def dihedral_views(images):  # backend tensors or arrays of (N, H, W, C)
    """The 8 dihedral views of square images: rotations by 0, 90, 180, 270 degrees, each
    followed by its mirror image; the first view is the input itself."""
    views = []
    rotated = images
    for _ in range(4):
        views += [rotated, ops.flip(rotated, axis=2)]
        rotated = ops.flip(ops.transpose(rotated, (0, 2, 1, 3)), axis=2)  # 90 degrees clockwise
    return views


class _ViewAverage(layers.Layer):
    """``model`` applied to every dihedral view of the input, outputs averaged."""

    def __init__(self, model: keras.Model, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.model = model

    def call(self, images):
        # All views in one batch: one pass through the model (one graph to trace, not eight).
        views = dihedral_views(images)
        # A one-element list: the structure the single-input functional model was built with.
        outputs = self.model([ops.concatenate(views, axis=0)], training=False)
        outputs = ops.reshape(outputs, (len(views), -1, *outputs.shape[1:]))
        return ops.mean(outputs, axis=0)


def average_over_views(model: keras.Model, mode: str) -> keras.Model:
    """``model`` (images -> any output) with its output averaged over the views of ``mode``."""
    _check_mode(mode)
    if mode == "none":
        return model
    height, width = model.input_shape[1:3]
    if height != width:
        raise ConfigError(f"model.tta: dihedral views need a square input, not {height}x{width}")
    image = keras.Input(model.input_shape[1:])
    return keras.Model(image, _ViewAverage(model)(image), name=f"{model.name}_{mode}")


def with_test_time_augmentation(hybrid: keras.Model, mode: str) -> keras.Model:
    """The hybrid's probability from its pooled features averaged over the views of ``mode``
    (``none``: the hybrid itself)."""
    _check_mode(mode)
    if mode == "none":
        return hybrid
    features = average_over_views(feature_extractor(hybrid), mode)
    image = keras.Input(hybrid.input_shape[1:])
    return keras.Model(image, hybrid.get_layer(OUTPUT_NAME)(features(image)),
                       name=f"{hybrid.name}_{mode}")


def _check_mode(mode: str) -> None:
    if mode not in TTA_MODES:
        raise ConfigError(f"model.tta: '{mode}' is not one of {', '.join(TTA_MODES)}")
