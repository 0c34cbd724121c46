"""Tests of dihedral test-time augmentation against hand-made views."""

from __future__ import annotations

import numpy as np
import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.models.hybrid import build_hybrid, feature_extractor
from mammohybrid.models.tta import average_over_views, dihedral_views, with_test_time_augmentation


def _images(n: int = 2, side: int = 32) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, side, side, 3)).astype(np.float32)


def test_the_eight_views_are_the_dihedral_group():
    images = _images(1, 4)
    views = [np.asarray(v) for v in dihedral_views(images)]
    expected = []
    for k in range(4):
        rotated = np.rot90(images, -k, axes=(1, 2))  # k quarter turns clockwise
        expected += [rotated, rotated[:, :, ::-1]]
    for view, reference in zip(views, expected, strict=True):
        np.testing.assert_array_equal(view, reference)
    assert len({v.tobytes() for v in views}) == 8  # a random image has 8 distinct views


def test_averaged_model_is_the_head_on_the_mean_pooled_features():
    model = build_hybrid(["tinycnn"], input_size=32, weights=None, augment="none")
    images = _images()
    extractor = feature_extractor(model)
    mean_features = np.mean([np.asarray(extractor([v])) for v in dihedral_views(images)], axis=0)
    kernel, bias = model.get_layer("prediction").get_weights()
    expected = 1 / (1 + np.exp(-(mean_features @ kernel + bias)))
    averaged = with_test_time_augmentation(model, "dihedral").predict(images, verbose=0)
    np.testing.assert_allclose(averaged, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(average_over_views(extractor, "dihedral").predict(
        images, verbose=0), mean_features, rtol=1e-5, atol=1e-6)


def test_averaged_model_does_not_depend_on_orientation():
    model = with_test_time_augmentation(
        build_hybrid(["tinycnn"], input_size=32, weights=None, augment="none"), "dihedral")
    images = _images()
    turned = np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2)))
    np.testing.assert_allclose(model.predict(turned, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)


def test_none_is_the_model_itself_and_unknown_modes_are_refused():
    model = build_hybrid(["tinycnn"], input_size=32, weights=None, augment="none")
    assert with_test_time_augmentation(model, "none") is model
    with pytest.raises(ConfigError, match=r"model\.tta"):
        with_test_time_augmentation(model, "flips")
