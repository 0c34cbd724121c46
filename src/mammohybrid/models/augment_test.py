"""Tests of the Table 2 augmentation block."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.models.augment import POLICIES, build_augmentation


def _block(policy: str, seed: int | None = None) -> keras.Sequential:
    block = build_augmentation(policy, seed)
    assert block is not None
    return block


def _image() -> np.ndarray:
    ramp = np.linspace(0, 255, 32 * 32, dtype="float32").reshape(1, 32, 32, 1)
    return np.repeat(np.repeat(ramp, 3, axis=-1), 4, axis=0)


def test_paper_policy_maps_table_2_onto_keras_arguments() -> None:
    block = _block("paper")
    by_name = {layer.name: layer for layer in block.layers}
    assert list(by_name) == ["rotation", "width", "height", "zoom", "translation", "flip"]
    assert by_name["rotation"].factor == (-0.15, 0.15)

    def bounds(layer, axis):  # (lower, upper) Keras draws from
        return (getattr(layer, f"{axis}_lower"), getattr(layer, f"{axis}_upper"))

    assert bounds(by_name["width"], "width") == (-0.15, 0.15)
    assert bounds(by_name["width"], "height") == (0.0, 0.0)
    assert bounds(by_name["height"], "height") == (-0.15, 0.15)
    assert bounds(by_name["height"], "width") == (0.0, 0.0)
    assert bounds(by_name["zoom"], "height") == (-0.1, 0.01)
    assert by_name["zoom"].width_factor is None  # aspect ratio kept
    assert bounds(by_name["translation"], "height") == (-0.1, 0.1)
    assert bounds(by_name["translation"], "width") == (-0.1, 0.1)
    assert by_name["flip"].mode == "horizontal"
    assert block.name == "augment"


def test_strong_policy_turns_any_way_and_flips_both_axes() -> None:
    by_name = {layer.name: layer for layer in _block("strong").layers}
    assert by_name["rotation"].factor == (-0.5, 0.5)  # half a turn either way: any angle
    assert by_name["flip"].mode == "horizontal_and_vertical"
    assert (by_name["zoom"].height_lower, by_name["zoom"].height_upper) == (-0.2, 0.2)
    image = _image()
    turned = keras.ops.convert_to_numpy(_block("strong", seed=1)(image,
                                                                            training=True))
    assert turned.shape == image.shape and not np.allclose(turned, image)


def test_none_policy_builds_nothing_and_unknown_policy_fails() -> None:
    assert build_augmentation("none") is None
    with pytest.raises(ConfigError, match="unknown policy 'wild'"):
        build_augmentation("wild")
    assert set(POLICIES) == {"paper", "strong", "none"}


def test_block_is_parameter_free_and_identity_at_inference() -> None:
    block = _block("paper", seed=3)
    image = _image()
    out = keras.ops.convert_to_numpy(block(image, training=False))
    np.testing.assert_array_equal(out, image)
    assert block.count_params() == 0


def test_block_changes_images_in_training_reproducibly_with_a_seed() -> None:
    image = _image()
    first = keras.ops.convert_to_numpy(_block("paper", seed=3)(image, training=True))
    again = keras.ops.convert_to_numpy(_block("paper", seed=3)(image, training=True))
    other = keras.ops.convert_to_numpy(_block("paper", seed=4)(image, training=True))
    assert first.shape == image.shape
    assert not np.allclose(first, image)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_block_is_marked_jit_compilable_on_jax(monkeypatch) -> None:
    # Keras flags RandomRotation/Zoom/Translation as not jit-compilable, which would make the
    # whole train step run un-jitted on JAX, several times slower (figures in docs/model.md).
    assert not any(layer.supports_jit for layer in _block("paper").layers[:5])
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert all(layer.supports_jit for layer in _block("paper").layers)
