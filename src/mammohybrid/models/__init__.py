"""The hybrid model: backbone registry, augmentation, weights, the hybrid itself.

Imports ``keras`` only (never TensorFlow), so the same model builds on a machine whose Keras
runs on JAX or PyTorch.
"""

from mammohybrid.models.augment import build_augmentation
from mammohybrid.models.backbones import (
    BackboneSpec,
    InputScaling,
    backbone_names,
    get_backbone,
    register_backbone,
)
from mammohybrid.models.compile import compile_hybrid
from mammohybrid.models.hybrid import (
    branches,
    build_hybrid,
    build_model,
    feature_extractor,
    load_model,
    parameter_counts,
)
from mammohybrid.models.weights import load_weights_file

__all__ = [
    "BackboneSpec",
    "InputScaling",
    "backbone_names",
    "branches",
    "build_augmentation",
    "build_hybrid",
    "build_model",
    "compile_hybrid",
    "feature_extractor",
    "get_backbone",
    "load_model",
    "load_weights_file",
    "parameter_counts",
    "register_backbone",
]
