"""Tests of the backbone registry: entries build, output what they declare, scale correctly."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammohybrid.errors import ConfigError, WeightsUnavailableError
from mammohybrid.models import backbones
from mammohybrid.models.backbones import (
    IMAGENET_MEAN_STD,
    IMAGENET_STD_RGB,
    LITE_SCALING,
    RAW_0_255,
    SYMMETRIC,
    UNIT,
    BackboneSpec,
    PretrainedWeights,
    backbone_names,
    fold_imagenet_std,
    get_backbone,
    register_backbone,
)

# Quick to build: their output stride is checked in the fast loop. Every entry builds what it
# declares at the smallest input in tests/test_registries.py.
CHEAP = ["tinycnn", "smallcnn", "mobilenetv3small"]


def test_registry_holds_the_required_backbones() -> None:
    for name in ["resnet50v2", "efficientnetb7", "efficientnetb0", "densenet121",
                 "mobilenetv3small", "mobilenetv3large"]:
        assert get_backbone(name).name == name


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown backbone 'resnet9000'.*resnet50v2"):
        get_backbone("resnet9000")


def test_register_refuses_a_duplicate_unless_asked() -> None:
    spec = get_backbone("tinycnn")
    with pytest.raises(ValueError, match="already registered"):
        register_backbone(spec)
    assert register_backbone(spec, overwrite=True) is spec


@pytest.mark.parametrize("name", CHEAP)
def test_backbone_builds_with_declared_channels_and_stride_32(name: str) -> None:
    spec = get_backbone(name)
    model = spec.build(64)
    assert model.name == name
    assert model.output.shape[-1] == spec.channels
    assert model.output.shape[1] == model.output.shape[2] == 2


# Keras' own preprocess_input functions are the reference for each declared scaling.
@pytest.mark.parametrize("scaling, reference", [
    (SYMMETRIC, keras.applications.resnet_v2.preprocess_input),
    (SYMMETRIC, keras.applications.mobilenet_v2.preprocess_input),
    (IMAGENET_MEAN_STD, keras.applications.densenet.preprocess_input),
    (RAW_0_255, keras.applications.efficientnet.preprocess_input),
    (RAW_0_255, keras.applications.mobilenet_v3.preprocess_input),
    (RAW_0_255, keras.applications.convnext.preprocess_input),
])
def test_scaling_matches_keras_preprocess_input(scaling, reference) -> None:
    image = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = np.asarray(reference(image.copy()))
    np.testing.assert_allclose(scaling.apply(image), expected, rtol=1e-5, atol=1e-5)
    layer_output = keras.ops.convert_to_numpy(scaling.layer("s")(image))
    np.testing.assert_allclose(layer_output, expected, rtol=1e-5, atol=1e-5)


def test_unit_scaling_and_parameter_free_layers() -> None:
    assert UNIT.apply(np.float32(255.0)) == pytest.approx(1.0)
    layer = SYMMETRIC.layer("s")
    layer.build((None, 4, 4, 3))
    assert layer.count_params() == 0
    assert RAW_0_255.is_identity and not SYMMETRIC.is_identity
    # TensorFlow EfficientNet-Lite: (x - 127) / 128
    np.testing.assert_allclose(LITE_SCALING.apply(np.array([0.0, 127.0, 255.0])),
                               [-127 / 128, 0.0, 1.0])


def test_every_entry_declares_a_known_scaling() -> None:
    known = {RAW_0_255, SYMMETRIC, UNIT, IMAGENET_MEAN_STD, LITE_SCALING}
    for name in backbone_names():
        assert get_backbone(name).scaling in known, name


def test_from_scratch_backbone_refuses_imagenet() -> None:
    with pytest.raises(WeightsUnavailableError, match=r"no ImageNet weights.*model\.weights: none"):
        get_backbone("tinycnn").build(32, "imagenet")


def test_fold_imagenet_std_equals_keras_extra_rescaling() -> None:
    # Keras' ImageNet EfficientNet: Normalization(mean, variance=std) then Rescaling(1/sqrt(std)).
    model = get_backbone("efficientnetb0").build(32)
    (norm,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    mean = np.array([0.485, 0.456, 0.406], "float32")
    norm.adapt_mean.assign(mean)
    norm.adapt_variance.assign(np.array(IMAGENET_STD_RGB, "float32"))
    norm.finalize_state()
    x = np.random.default_rng(1).uniform(0, 1, (1, 4, 4, 3)).astype("float32")
    keras_result = keras.ops.convert_to_numpy(norm(x)) / np.sqrt(IMAGENET_STD_RGB)
    fold_imagenet_std(model)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm(x)), keras_result, rtol=1e-5)
    np.testing.assert_allclose(keras_result, (x - mean) / np.array(IMAGENET_STD_RGB), rtol=1e-5)


@pytest.mark.slow
def test_imagenet_efficientnet_has_the_plain_architecture(monkeypatch) -> None:
    # Stand-in for the download: the "pretrained" network gets the ImageNet statistics.
    def fake_constructor(include_top, weights, input_shape, name):
        model = keras.applications.EfficientNetB0(include_top=include_top, weights=None,
                                                  input_shape=input_shape, name=name)
        if weights == "imagenet":
            (norm,) = [la for la in model.layers if isinstance(la, keras.layers.Normalization)]
            norm.adapt_variance.assign(np.array(IMAGENET_STD_RGB, "float32"))
        return model

    factory = backbones.efficientnet_application(fake_constructor)
    spec = BackboneSpec("efficientnetb0", factory, 1280, RAW_0_255)
    model = spec.factory((32, 32, 3), "imagenet", "efficientnetb0")
    plain = spec.factory((32, 32, 3), None, "efficientnetb0")
    assert [type(la) for la in model.layers] == [type(la) for la in plain.layers]
    (norm,) = [la for la in model.layers if isinstance(la, keras.layers.Normalization)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.adapt_variance),
                               np.square(IMAGENET_STD_RGB), rtol=1e-6)


@pytest.mark.slow
def test_offline_backbones_use_the_from_scratch_batchnorm_momentum_only_when_random() -> None:
    def momenta(weights: PretrainedWeights) -> set[float]:
        model = get_backbone("mobilenetv2_torch").build(64, weights)
        return {layer.momentum for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)}

    assert momenta(None) == {backbones.BN_MOMENTUM_FROM_SCRATCH}
    assert momenta("imagenet") == {0.99}
