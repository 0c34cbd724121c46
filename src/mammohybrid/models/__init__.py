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
    AUGMENT_NAME,
    CONCAT_NAME,
    HEAD_DROPOUT_NAME,
    OUTPUT_NAME,
    POOL_NAME,
    branches,
    build_hybrid,
    build_model,
    dropout_name,
    feature_extractor,
    float32_policy,
    inference_graph,
    load_model,
    parameter_counts,
    refresh_cached_state,
)
from mammohybrid.models.tta import average_over_views, with_test_time_augmentation
from mammohybrid.models.weights import load_weights_file

__all__ = [
    "AUGMENT_NAME",
    "CONCAT_NAME",
    "HEAD_DROPOUT_NAME",
    "OUTPUT_NAME",
    "POOL_NAME",
    "BackboneSpec",
    "InputScaling",
    "average_over_views",
    "backbone_names",
    "branches",
    "build_augmentation",
    "build_hybrid",
    "build_model",
    "compile_hybrid",
    "dropout_name",
    "feature_extractor",
    "float32_policy",
    "get_backbone",
    "inference_graph",
    "load_model",
    "load_weights_file",
    "parameter_counts",
    "refresh_cached_state",
    "register_backbone",
    "with_test_time_augmentation",
]
