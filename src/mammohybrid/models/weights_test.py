"""Tests of weights handling: the offline ImageNet error, local weight files."""

from __future__ import annotations

import socket
import urllib.error
from typing import Any

import keras
import numpy as np
import pytest

from mammohybrid.errors import WeightsUnavailableError
from mammohybrid.models import build_hybrid
from mammohybrid.models.weights import (
    imagenet_download_guard,
    is_weights_file,
    load_weights_file,
)

TINY: dict[str, Any] = {"backbones": ["tinycnn"], "input_size": 32, "augment": "none"}


def test_guard_turns_a_failed_download_into_a_clear_error() -> None:
    with (pytest.raises(WeightsUnavailableError,
                        match=r"'resnet50v2'.*cannot be downloaded.*model\.weights: none"),
          imagenet_download_guard("resnet50v2")):
        raise Exception("URL fetch failure on https://x: None -- no network")


def test_guard_lets_other_errors_through_and_restores_the_timeout() -> None:
    before = socket.getdefaulttimeout()
    with pytest.raises(ValueError, match="shape"), imagenet_download_guard("resnet50v2"):
        assert socket.getdefaulttimeout() is not None
        raise ValueError("bad input shape")
    assert socket.getdefaulttimeout() == before


def test_offline_imagenet_build_fails_fast_with_advice(monkeypatch, tmp_path) -> None:
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    calls = []

    def offline(*args, **kwargs):
        calls.append(args[0])
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # an empty weights cache
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        build_hybrid(["mobilenetv3small"], input_size=32, weights="imagenet", augment="none")
    assert len(calls) == 1  # one attempt, no retries
    message = str(error.value)
    assert "mobilenetv3small" in message and "Name or service not known" in message
    assert "model.weights: none" in message and ".weights.h5" in message


def test_weights_round_trip_through_a_local_file(tmp_path) -> None:
    keras.utils.set_random_seed(1)
    source = build_hybrid(weights=None, **TINY)
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(2)  # a different random start, overwritten by the file
    loaded = build_hybrid(weights=str(path), **TINY)
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_weights_file_errors_name_the_file(tmp_path) -> None:
    model = build_hybrid(weights=None, **TINY)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        load_weights_file(model, tmp_path / "missing.weights.h5")
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(WeightsUnavailableError, match="not a Keras weights file"):
        load_weights_file(model, text)
    other = build_hybrid(weights=None, **{**TINY, "backbones": ["tinycnn", "smallcnn"]})
    other.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(WeightsUnavailableError, match="does not fit this model"):
        load_weights_file(model, tmp_path / "other.weights.h5")


def test_is_weights_file() -> None:
    assert is_weights_file("run/model.keras")
    assert not is_weights_file("imagenet") and not is_weights_file(None)
