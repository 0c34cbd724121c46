"""Contracts every entry of every registry keeps, checked over the registry's own listing (as
timm's tests run over ``list_models()``), so that a backbone, a pre-processing strategy or an
ingest source added later is held to them without a test of its own.

Every entry is *named* (its registry name is a lowercase name and finds the entry again),
*picklable* (worker processes and Ray tasks receive it pickled), *keeps its dtype* (a chain
gives the documented uint8 model-input image, a backbone's input scaling stays float32), and
*refuses bad input* with the package's own one-line error naming the choices, never a raw
NumPy, OpenCV or KeyError.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable

import keras
import numpy as np
import pytest

from mammohybrid.config import Config, PreprocessConfig

# The ingest sources through their public names only: the one import to change if the source
# registry moves to a module of its own.
from mammohybrid.data.ingest import run_ingest
from mammohybrid.data.sources import get_source, ingest_sources
from mammohybrid.errors import ConfigError, DatasetError, InvalidImageError, WeightsUnavailableError
from mammohybrid.models.backbones import backbone_names, get_backbone
from mammohybrid.preprocess import chain
from mammohybrid.preprocess.chain import build_chain, register_strategy, strategy_names

# Lowercase words joined by single hyphens or underscores: usable in YAML, on the command line
# and in file names unquoted.
REGISTRY_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
UNKNOWN = "no-such-entry"


def _known_names(message: str) -> list[str]:
    """The names an unknown-name error lists, from its ``(known: a, b, ...)`` ending."""
    listed = re.search(r"\(known: (.*)\)$", message)
    assert listed, message
    return listed.group(1).split(", ")


# --------------------------------------------------------------------------- backbones
# Keras' applications refuse inputs under 32 px; at 32 every backbone's stride-32 feature map
# is 1 x 1, which makes each build as cheap as it can be.
SMALLEST_INPUT = 32
# One of each kind of factory (plain CNN, Keras application, PyPI-weighted inverted residual
# net) builds in the fast loop; the rest, EfficientNetB7 and ResNet50V2 among them, are slow.
QUICK_BACKBONES = {"tinycnn", "smallcnn", "mobilenetv3small", "efficientnetlite0"}


def _backbone_params() -> list[object]:
    return [pytest.param(name, marks=() if name in QUICK_BACKBONES else pytest.mark.slow)
            for name in backbone_names()]


@pytest.mark.parametrize("name", backbone_names())
def test_backbone_is_named(name: str) -> None:
    assert REGISTRY_NAME.fullmatch(name)
    assert get_backbone(name).name == name


@pytest.mark.parametrize("name", backbone_names())
def test_backbone_spec_pickles(name: str) -> None:
    spec = get_backbone(name)
    restored = pickle.loads(pickle.dumps(spec))
    assert (restored.name, restored.channels, restored.scaling, restored.pretrained,
            restored.offline) == (spec.name, spec.channels, spec.scaling, spec.pretrained,
                                  spec.offline)
    assert callable(restored.factory)


@pytest.mark.parametrize("name", _backbone_params())
def test_a_pickled_backbone_spec_builds_what_it_declares(name: str) -> None:
    spec = pickle.loads(pickle.dumps(get_backbone(name)))
    model = spec.build(SMALLEST_INPUT, weights=None)
    assert model.name == name
    assert tuple(model.output.shape) == (None, 1, 1, spec.channels)
    assert model.output.dtype == "float32"


@pytest.mark.parametrize("name", backbone_names())
def test_backbone_input_scaling_keeps_float32(name: str) -> None:
    scaling = get_backbone(name).scaling
    image = np.linspace(0, 255, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    assert scaling.apply(image).dtype == np.float32
    assert keras.ops.convert_to_numpy(scaling.layer("scaling")(image)).dtype == np.float32


@pytest.mark.parametrize("name", [n for n in backbone_names() if not get_backbone(n).pretrained])
def test_a_backbone_without_imagenet_weights_refuses_them_before_building(name: str) -> None:
    with pytest.raises(WeightsUnavailableError, match=f"backbone '{name}' has no ImageNet"):
        get_backbone(name).build(SMALLEST_INPUT, weights="imagenet")


# --------------------------------------------------------------------------- strategies
def _strategy_config(name: str) -> PreprocessConfig:
    # ``custom`` takes its steps from the config; any step list will do.
    return PreprocessConfig(strategy=name, steps=["nlm", "clahe"] if name == "custom" else None)


def _mass_crop(dtype: type) -> np.ndarray:
    """A small crop with a bright round mass, so that every step has something to keep."""
    rows, cols = np.mgrid[0:64, 0:48]
    mass = np.hypot(rows - 30, cols - 25) < 12
    fraction = np.where(mass, 0.9, 0.3) + 0.05 * np.sin(rows / 3.0) * np.cos(cols / 5.0)
    if dtype is np.float32:
        return fraction.astype(np.float32)
    return np.rint(fraction * np.iinfo(dtype).max).astype(dtype)


@pytest.mark.parametrize("name", strategy_names())
def test_strategy_is_named_and_survives_a_config_round_trip(name: str) -> None:
    assert REGISTRY_NAME.fullmatch(name)
    config = _strategy_config(name)
    reloaded = PreprocessConfig.model_validate(config.model_dump())
    assert reloaded.strategy == name
    assert build_chain(reloaded).names == build_chain(config).names


@pytest.mark.parametrize("name", strategy_names())
def test_strategy_chain_pickles_and_gives_the_same_image(name: str) -> None:
    built = build_chain(_strategy_config(name))
    restored = pickle.loads(pickle.dumps(built))
    assert restored.names == built.names
    image = _mass_crop(np.uint16)
    np.testing.assert_array_equal(restored(image).image, built(image).image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("name", strategy_names())
def test_strategy_chain_gives_a_uint8_image_of_the_output_size(name: str, dtype: type) -> None:
    config = _strategy_config(name)
    image = _mass_crop(dtype)
    processed = build_chain(config)(image)
    assert processed.image.dtype == np.uint8
    assert processed.image.shape == (config.output_size, config.output_size)
    assert processed.input_shape == image.shape


BAD_IMAGES = {
    "empty": np.zeros((0, 0), np.uint8),
    "no columns": np.zeros((5, 0), np.uint16),
    "nan": np.full((8, 8), np.nan, np.float32),
    "infinity": np.full((8, 8), np.inf, np.float64),
    "rgb": np.zeros((8, 8, 3), np.uint8),
    "stack": np.zeros((2, 8, 8), np.uint16),
    "one-d": np.zeros(8, np.uint8),
    "signed": np.zeros((8, 8), np.int16),
    "list": [[0, 1], [2, 3]],
}


@pytest.mark.parametrize("image", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
@pytest.mark.parametrize("name", strategy_names())
def test_strategy_chain_refuses_a_bad_image_with_one_line(name: str, image: object) -> None:
    with pytest.raises(InvalidImageError) as caught:
        build_chain(_strategy_config(name))(image)
    assert "\n" not in str(caught.value)


def test_a_registered_strategy_is_held_to_the_step_list(monkeypatch) -> None:
    # A copy of the registry, so that what this test registers is gone afterwards.
    monkeypatch.setattr(chain, "_STRATEGIES", dict(chain._STRATEGIES))
    with pytest.raises(ValueError, match="unknown step"):
        register_strategy("median-twice", ("median", "no-such-step"))
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("median", ("median",))
    register_strategy("median-twice", ("median", "median"))
    assert "median-twice" in strategy_names()
    assert build_chain(_strategy_config("median-twice")).names.count("median") == 2


# --------------------------------------------------------------------------- ingest sources
@pytest.mark.parametrize("name", list(ingest_sources()))
def test_ingest_source_is_named_and_pickles(name: str) -> None:
    assert REGISTRY_NAME.fullmatch(name)
    source = get_source(name)
    assert source.name == name
    assert source.summary and "\n" not in source.summary  # one line of `ingest --help`
    assert pickle.loads(pickle.dumps(source)) == source


@pytest.mark.parametrize("name", list(ingest_sources()))
def test_ingest_source_refuses_an_empty_folder_with_one_line(name: str, tmp_path) -> None:
    root = tmp_path / "dataset"
    root.mkdir()
    with pytest.raises(DatasetError) as caught:
        run_ingest(name, root, tmp_path / "out" / "manifest.csv", Config())
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out" / "manifest.csv").exists()


# --------------------------------------------------------------------------- every registry
LOOK_UPS: dict[str, tuple[Callable[[str], object], Callable[[], list[str]], type[Exception]]] = {
    "backbone": (get_backbone, backbone_names, ConfigError),
    "strategy": (lambda name: build_chain(PreprocessConfig(strategy=name)), strategy_names,
                 ConfigError),
    "ingest source": (get_source, lambda: list(ingest_sources()), DatasetError),
}


@pytest.mark.parametrize("registry", LOOK_UPS)
def test_an_unknown_name_is_a_one_line_error_listing_the_known_names(registry: str) -> None:
    look_up, names, error = LOOK_UPS[registry]
    with pytest.raises(error) as caught:
        look_up(UNKNOWN)
    message = str(caught.value)
    assert "\n" not in message and f"'{UNKNOWN}'" in message
    assert sorted(_known_names(message)) == sorted(names())
