"""The hybrid transfer-learning model of the paper (its Fig. 8-9), generalised to N backbones.

::

    image (S, S, 3) in [0, 255]
      -> augment (Table 2; training only; no parameters)
      -> per backbone: its own input scaling -> backbone (nested model named after it)
                       -> Dropout                                       (<name>_dropout)
      -> concat (channels of all branches)                                   (concat)
      -> global average or max pooling                                  (global_pool)
      -> Dropout                                                        (head_dropout)
      -> Dense(1, sigmoid), always float32                               (prediction)

One backbone is the paper's single-backbone ablation, two is the paper, more is ours. Other
modules rely on the layer names above (Grad-CAM reaches into the nested backbones; the
``features`` command exports ``global_pool``'s output).

Only ``keras`` is imported (no TensorFlow): the model builds on any Keras backend.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
from keras import layers

from mammohybrid.errors import ConfigError, MammohybridError
from mammohybrid.models.augment import build_augmentation
from mammohybrid.models.backbones import PretrainedWeights, get_backbone
from mammohybrid.models.weights import is_weights_file, load_weights_file

if TYPE_CHECKING:
    from mammohybrid.config import ModelConfig

POOLING_LAYERS = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}

INPUT_NAME = "image"
AUGMENT_NAME = "augment"
CONCAT_NAME = "concat"
POOL_NAME = "global_pool"
HEAD_DROPOUT_NAME = "head_dropout"
OUTPUT_NAME = "prediction"


def scaling_name(backbone: str) -> str:
    return f"{backbone}_scaling"


def dropout_name(backbone: str) -> str:
    return f"{backbone}_dropout"


def build_hybrid(backbones: Sequence[str] = ("resnet50v2", "efficientnetb7"),
                 pooling: str = "avg",
                 branch_dropout: float = 0.2,
                 head_dropout: float = 0.2,
                 input_size: int = 229,
                 weights: str | os.PathLike[str] | None = "imagenet",
                 trainable: str = "all",
                 augment: str = "paper") -> keras.Model:
    """Build the hybrid classifier (see the module docstring for its layers).

    ``weights``: ``"imagenet"`` (each backbone gets Keras' ImageNet weights), ``None``
    (random) or the path of a weights file of this whole model. ``trainable``: ``"all"``
    (the paper), ``"none"`` (frozen backbones: only the head trains) or ``"last:N"`` (the
    last N layers of each backbone train). Layer seeds come from Keras' global seed
    (``keras.utils.set_random_seed``).
    """
    names = list(backbones)
    if not names:
        raise ConfigError("model.backbones: at least one backbone is needed")
    if len(set(names)) != len(names):
        raise ConfigError(f"model.backbones: a backbone appears twice ({', '.join(names)})")
    if pooling not in POOLING_LAYERS:
        raise ConfigError(f"model.pooling: '{pooling}' is not one of "
                          f"{', '.join(POOLING_LAYERS)}")
    specs = [get_backbone(name) for name in names]
    frozen_layer_count(1, trainable)  # validate before the (slow) backbone builds
    pretrained: PretrainedWeights = "imagenet" if weights == "imagenet" else None

    image = keras.Input((input_size, input_size, 3), name=INPUT_NAME)
    augmentation = build_augmentation(augment)
    x = augmentation(image) if augmentation is not None else image
    branches = []
    for spec in specs:
        backbone = spec.build(input_size, pretrained)
        set_trainable(backbone, trainable)
        scaled = x if spec.scaling.is_identity else spec.scaling.layer(scaling_name(spec.name))(x)
        features = backbone(scaled)
        branches.append(layers.Dropout(branch_dropout, name=dropout_name(spec.name))(features))
    _check_same_grid(names, branches)
    merged = layers.Concatenate(name=CONCAT_NAME)(branches)
    pooled = POOLING_LAYERS[pooling](name=POOL_NAME)(merged)
    pooled = layers.Dropout(head_dropout, name=HEAD_DROPOUT_NAME)(pooled)
    # float32 output even under a mixed-precision policy: a float16 sigmoid saturates.
    output = layers.Dense(1, activation="sigmoid", dtype="float32", name=OUTPUT_NAME)(pooled)
    model = keras.Model(image, output, name="hybrid_" + "_".join(names))
    if is_weights_file(weights):
        load_weights_file(model, weights)
    return model


def _check_same_grid(names: list[str], features: list) -> None:
    grids = {name: tuple(f.shape[1:3]) for name, f in zip(names, features, strict=True)}
    if len(set(grids.values())) > 1:
        raise ConfigError(
            "model.backbones: the feature maps cannot be concatenated, their grids differ ("
            + ", ".join(f"{n} {g[0]}x{g[1]}" for n, g in grids.items())
            + "); change model.input_size or pick backbones with the same output grid")


@contextlib.contextmanager
def float32_policy() -> Iterator[None]:
    """Build models in float32 whatever the global (mixed-precision) policy: what is saved and
    predicted with."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(config: ModelConfig) -> keras.Model:
    """:func:`build_hybrid` from the config's ``model`` section."""
    return build_hybrid(backbones=config.backbones, pooling=config.pooling,
                        branch_dropout=config.branch_dropout, head_dropout=config.head_dropout,
                        input_size=config.input_size, weights=config.weights,
                        trainable=config.trainable, augment=config.augment)


def set_trainable(backbone: keras.Model, trainable: str) -> None:
    """Apply ``"all"``, ``"none"`` or ``"last:N"`` to a backbone's layers.

    A frozen Keras 3 BatchNormalization also runs in inference mode (fixed statistics), which
    is what fine-tuning on a small dataset wants. A frozen Dropout, though, still drops in
    training (EfficientNet's stochastic depth has one per block), so a wholly frozen backbone
    (``"none"``) also gets its dropout rates set to 0: it is then a fixed feature extractor,
    which the frozen-feature cache and the backups rely on.
    """
    frozen = frozen_layer_count(len(backbone.layers), trainable)
    backbone.trainable = frozen < len(backbone.layers)
    for layer in backbone.layers[:frozen]:
        layer.trainable = False
    if not backbone.trainable:
        for layer in nested_layers(backbone):
            if isinstance(layer, layers.Dropout):
                layer.rate = 0.0


def nested_layers(model: keras.Layer) -> Iterator[keras.Layer]:
    """Every layer of ``model``, depth first, those inside nested models included."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from nested_layers(layer)


def frozen_layer_count(n_layers: int, trainable: str) -> int:
    """How many of the first layers of an ``n_layers``-layer backbone ``trainable`` freezes."""
    fixed = {"all": 0, "none": n_layers}
    if trainable in fixed:
        return fixed[trainable]
    kind, _, number = trainable.partition(":")
    if kind != "last" or not number.isdigit() or int(number) < 1:
        raise ConfigError(f"model.trainable: '{trainable}' is not 'all', 'none' or 'last:N'")
    return max(n_layers - int(number), 0)


# --------------------------------------------------------------------------- parts of a model
@dataclass(frozen=True)
class Branch:
    """The layers of one branch of a built hybrid (scaling is None for raw 0-255 input)."""

    name: str
    scaling: layers.Layer | None
    backbone: keras.Model
    dropout: layers.Layer


def branches(model: keras.Model, backbones: Sequence[str]) -> list[Branch]:
    """The branch layers of a hybrid built with ``backbones``, found by their names."""
    layer_names = {layer.name for layer in model.layers}
    return [Branch(name,
                   model.get_layer(scaling_name(name)) if scaling_name(name) in layer_names
                   else None,
                   model.get_layer(name), model.get_layer(dropout_name(name)))
            for name in backbones]


def inference_graph(model: keras.Model) -> keras.Model:
    """The hybrid as an export traces it: a copy (same weights) with the augmentation block
    replaced by the identity and every cached constant held as a NumPy array.

    - Keras' export (``model.export``) traces the model without a ``training`` argument,
      which Keras' random layers take as training: the exported graph would augment every
      image, with random ops (``StatelessRandomUniformV2``) ONNX has no kernel for.
    - Keras' Normalization layer (inside EfficientNet) keeps its mean and variance as eager
      tensors, which a traced function captures as inputs: the ONNX graph would ask for them
      as two more inputs. NumPy arrays are embedded in the graph as constants instead.
    - A copy, not the same layers in a second graph: a layer called in two graphs gives its
      first graph's tensors as its ``output``, which :func:`feature_extractor` (and so
      test-time augmentation) builds on; and the model given is left as it is.
    """
    def copy(layer: keras.Layer) -> keras.Layer:
        # A Sequential, not a bare Identity: the block was called with a mask argument, which
        # the copy passes on and a Sequential accepts.
        if layer.name == AUGMENT_NAME:
            return keras.Sequential([layers.Identity()], name=AUGMENT_NAME)
        return layer.__class__.from_config(layer.get_config())

    graph = keras.models.clone_model(model, clone_function=copy)
    graph.set_weights(model.get_weights())  # the augmentation block holds no weights
    refresh_cached_state(graph)
    for layer in nested_layers(graph):
        if isinstance(layer, layers.Normalization) and layer.built:
            layer.mean = keras.ops.convert_to_numpy(layer.mean)
            layer.variance = keras.ops.convert_to_numpy(layer.variance)
    return graph


def refresh_cached_state(model: keras.Model) -> None:
    """Layers that cache tensors computed from their variables (Keras' Normalization) must
    recompute them after the variables were assigned directly."""
    for layer in nested_layers(model):
        if hasattr(layer, "finalize_state") and layer.built:
            layer.finalize_state()


def feature_extractor(model: keras.Model) -> keras.Model:
    """Image -> pooled feature vector (the ``global_pool`` output) of a hybrid."""
    return keras.Model(model.inputs, model.get_layer(POOL_NAME).output,
                       name=f"{model.name}_features")


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts, as ``model.summary`` reports them."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable,
            "non_trainable": non_trainable}


def load_model(path: str | os.PathLike[str], compile: bool = False) -> keras.Model:
    """Load a saved hybrid (``.keras``) in Keras' safe mode.

    The hybrid is made of built-in Keras layers only, so nothing needs registering first;
    a custom layer added to it must be registered (``keras.saving.register_keras_serializable``)
    in a module this one imports. A file that is not a ``.keras`` archive (a zip), such as a
    pickle saved under that name, is refused in one line before Keras sees it.
    """
    path = Path(path)
    if not path.is_file():
        raise MammohybridError(f"{path}: model file not found")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise MammohybridError(f"{path}: not a Keras .keras archive (a zip file); it may be a "
                               "pickle or another format saved under that name, and is not "
                               "loaded")
    return keras.saving.load_model(path, compile=compile, safe_mode=True)
